/** The op library: importing this module registers every op. */
export * from './elementwise.js';
export * from './shape.js';
export * from './reduce.js';
export * from './conv.js';
export * from './nchwc.js';
export * from './fusedmatmul.js';
export * from './einsum.js';
export * from './batchnorm.js';
export * from './gated.js';
export * from './crossentropy.js';
export { registeredOps, getOp } from './registry.js';
