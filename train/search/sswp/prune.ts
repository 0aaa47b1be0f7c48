/**
 * The pruning rules of SSWP-NAS's progressive pruning, pure functions of a
 * cell's α [14 × 7] (softmax per edge over the SSWP ops):
 *  - `op-per-edge` (default; the paper's §3.4, as its public release freezes
 *    a cell): every one of the 14 edges keeps its op of highest α, and every
 *    node still sums all its incoming edges. At the end of the search the
 *    DARTS rule derives the final cell: per node the two incoming edges whose
 *    kept op has the largest softmax weight.
 *  - `two-per-node`: the cell is discretized to that final DARTS form at once
 *    (8 edges) and trains in it for the rest of the search.
 * Once pruned, a cell's α is frozen, so both rules give the same final cells;
 * they differ in what the concomitant weights were trained as (see README).
 */
import { EDGES, STEPS, deriveCell } from '../../../graph/genotype.js';
import {
  NUM_OPS,
  SSWP_OPS,
  edgeOf,
  isEdgeOps,
  type CellOps,
  type CellSpec,
  type EdgeOps,
} from '../../../graph/nets/sswp.js';
import { softmaxAt } from './sampler.js';

export type PruneRule = 'op-per-edge' | 'two-per-node';
export const PRUNE_RULES: readonly PruneRule[] = ['op-per-edge', 'two-per-node'];

/** The op of highest α on every edge (the first on ties). */
export function bestOpPerEdge(alpha: ArrayLike<number>): EdgeOps {
  return Array.from({ length: EDGES }, (_, e) => {
    let best = 0;
    for (let k = 1; k < NUM_OPS; k++) if (alpha[e * NUM_OPS + k]! > alpha[e * NUM_OPS + best]!) best = k;
    return SSWP_OPS[best]!;
  });
}

/** A cell pruned by `rule`. */
export function pruneCell(alpha: ArrayLike<number>, rule: PruneRule): CellOps | EdgeOps {
  return rule === 'op-per-edge' ? bestOpPerEdge(alpha) : deriveCell(alpha, SSWP_OPS);
}

/**
 * The final (two inputs per node) form of a cell: a searched cell by DARTS's
 * rule on its α, a cell pruned per edge by the same rule over its kept ops
 * (strength = softmax weight of the kept op; ties to the lower input), a
 * discretized cell as it is.
 */
export function finalCell(alpha: ArrayLike<number>, spec: CellSpec): CellOps {
  if (spec === null) return deriveCell(alpha, SSWP_OPS);
  if (!isEdgeOps(spec)) return spec;
  const out: CellOps = [];
  for (let n = 0; n < STEPS; n++) {
    const cands = Array.from({ length: n + 2 }, (_, j) => {
      const e = edgeOf(n, j);
      const k = SSWP_OPS.indexOf(spec[e]!);
      return { input: j, op: spec[e]!, w: softmaxAt(alpha, e * NUM_OPS, NUM_OPS)[k]! };
    });
    cands.sort((a, b) => b.w - a.w || a.input - b.input);
    for (const c of cands.slice(0, 2)) out.push([c.op, c.input]);
  }
  return out;
}
