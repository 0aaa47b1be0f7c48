/**
 * Parameter values: materializing a graph's parameters from their Init specs
 * with the seeded RNG (in creation order, so a seed always gives the same
 * network), and small helpers over name → Float32Array maps.
 */
import { numel, type Graph, type Init, type Param } from '../../graph/ir.js';
import { Rng } from '../../graph/rng.js';

export type ParamValues = Map<string, Float32Array>;

export function initValue(p: Pick<Param, 'shape' | 'init'>, rng: Rng): Float32Array {
  const n = numel(p.shape);
  const v = new Float32Array(n);
  const init: Init = p.init;
  switch (init.kind) {
    case 'zeros':
      break;
    case 'ones':
      v.fill(1);
      break;
    case 'normal':
      for (let i = 0; i < n; i++) v[i] = init.std * rng.normal();
      break;
    case 'uniform':
      for (let i = 0; i < n; i++) v[i] = rng.uniform(-init.bound, init.bound);
      break;
    case 'fan_in_uniform': {
      const b = 1 / Math.sqrt(init.fanIn);
      for (let i = 0; i < n; i++) v[i] = rng.uniform(-b, b);
      break;
    }
  }
  return v;
}

/** Fresh values for every parameter of `g` (or only those passing `filter`). */
export function initParams(g: Graph, seed: number, filter: (p: Param) => boolean = () => true): ParamValues {
  const rng = new Rng(seed);
  const out: ParamValues = new Map();
  for (const p of g.params.values()) {
    // draw for every parameter so a filter does not shift the stream of the others
    const v = initValue(p, rng);
    if (filter(p)) out.set(p.name, v);
  }
  return out;
}

/** Copy the values a graph needs from `src`, failing with the first missing or mis-sized name. */
export function pickParams(g: Graph, src: ReadonlyMap<string, Float32Array>, roles?: Param['role'][]): ParamValues {
  const out: ParamValues = new Map();
  for (const p of g.params.values()) {
    if (roles && !roles.includes(p.role)) continue;
    const v = src.get(p.name);
    if (!v) throw new Error(`no value for parameter '${p.name}'`);
    if (v.length !== numel(p.shape))
      throw new Error(`parameter '${p.name}' has ${v.length} values, expected ${numel(p.shape)}`);
    out.set(p.name, v);
  }
  return out;
}
