/**
 * The phase schedule of an SSWP-NAS search (Li et al., SSWP-NAS, §3), in steps.
 *
 * With E epochs of S steps (N = E·S steps) and split [w, b, p] (default
 * [0.2, 0.4, 0.4]):
 *  - warm-up (weights only):       steps [0, round(w·N))
 *  - bilevel (α and w alternately): steps [round(w·N), round((w+b)·N))
 *  - progressive prune (`fpp` from the input side, `bpp` from the output side):
 *    the rest. Every T = E·p / cells epochs the next cell is pruned (discretized,
 *    α frozen): the k-th cell in pruning order (k = 0, 1, …) is pruned before
 *    step bilevelEnd + ⌊k·T⌋·S when T ≥ 1 epoch (epoch boundaries), else before
 *    step bilevelEnd + ⌊k·T·S⌋ (T in steps). So the first cell is pruned as the
 *    phase starts, and the fully discretized network still trains for T.
 *  - `none` (ablation, split [w, b], default [0.2, 0.8]): no progressive
 *    pruning; all cells are pruned at the end (pruneAt = N).
 */
import { TrainError } from '../../runtime/errors.js';

export type PruneMode = 'fpp' | 'bpp' | 'none';
export const PRUNE_MODES: readonly PruneMode[] = ['fpp', 'bpp', 'none'];
/** A step's phase ('pretrain': a fixed architecture trained without search). */
export type Phase = 'warmup' | 'bilevel' | 'fpp' | 'bpp' | 'pretrain';

export interface ScheduleOptions {
  epochs: number;
  stepsPerEpoch: number;
  layers: number;
  prune: PruneMode;
  /** Phase fractions: 3 for fpp/bpp, 2 for none. */
  split?: readonly number[];
}

export interface Schedule {
  total: number;
  warmupEnd: number;
  bilevelEnd: number;
  split: number[];
  /** Cells in pruning order. */
  order: number[];
  /** Per cell index: the step before which it is pruned (`total`: at the end of the search). */
  pruneAt: number[];
  /** T_step in epochs (0 for `none`). */
  intervalEpochs: number;
  /** True when T_step is applied in steps (T < 1 epoch). */
  inSteps: boolean;
}

export function defaultSplit(prune: PruneMode): number[] {
  return prune === 'none' ? [0.2, 0.8] : [0.2, 0.4, 0.4];
}

/** Parse "0.2,0.4,0.4". */
export function parseSplit(s: string): number[] {
  const xs = s.split(',').map((t) => Number(t.trim()));
  if (!xs.length || xs.some((x) => !Number.isFinite(x)))
    throw new TrainError(`bad phase split '${s}' (expected fractions like 0.2,0.4,0.4)`);
  return xs;
}

export function makeSchedule(o: ScheduleOptions): Schedule {
  const split = [...(o.split ?? defaultSplit(o.prune))];
  const want = o.prune === 'none' ? 2 : 3;
  if (split.length !== want)
    throw new TrainError(
      `--prune ${o.prune} takes a split of ${want} phase fractions (${o.prune === 'none' ? 'warm-up, bilevel' : 'warm-up, bilevel, prune'}), got ${split.length}`,
    );
  if (split.some((x) => x < 0) || Math.abs(split.reduce((a, b) => a + b, 0) - 1) > 1e-6)
    throw new TrainError(`the phase split ${split.join(',')} must be non-negative fractions adding up to 1`);
  if (!(o.epochs >= 1 && o.stepsPerEpoch >= 1 && o.layers >= 1))
    throw new TrainError('the schedule needs at least one epoch, one step per epoch and one cell');
  const S = o.stepsPerEpoch;
  const total = o.epochs * S;
  const warmupEnd = Math.round(split[0]! * total);
  const bilevelEnd = o.prune === 'none' ? total : Math.round((split[0]! + split[1]!) * total);
  const cells = Array.from({ length: o.layers }, (_, i) => i);
  const order = o.prune === 'bpp' ? cells.slice().reverse() : cells;
  const pruneAt = new Array<number>(o.layers).fill(total);
  let intervalEpochs = 0;
  let inSteps = false;
  if (o.prune !== 'none') {
    intervalEpochs = (o.epochs * split[2]!) / o.layers;
    inSteps = intervalEpochs < 1;
    order.forEach((cell, k) => {
      const at = bilevelEnd + (inSteps ? Math.floor(k * intervalEpochs * S) : Math.floor(k * intervalEpochs) * S);
      pruneAt[cell] = Math.min(at, total);
    });
  }
  return { total, warmupEnd, bilevelEnd, split, order, pruneAt, intervalEpochs, inSteps };
}

/** The phase of a step. */
export function phaseOf(s: Schedule, prune: PruneMode, step: number): Phase {
  if (step < s.warmupEnd) return 'warmup';
  if (step < s.bilevelEnd || prune === 'none') return 'bilevel';
  return prune;
}
