/** The UnNAS sample-based study: samplers, NAS-Bench-101 utilities, analysis and the trial store. */
export * from './darts-sampler.js';
export * from '../../graph/spaces/nasbench101.js';
export * from './analysis.js';
export * from './store.js';
