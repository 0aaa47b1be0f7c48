/**
 * DARTS's collapse to parameter-free ops, watched and optionally guarded.
 *
 * Monitoring (every epoch): the derived normal cell's count of
 * parameter-free ops (skip_connect, pools) by DARTS's rule, and the share of
 * softmax(α) mass on skip_connect and on the pools (mean over the 14 edges);
 * a warning when the count exceeds a threshold.
 *
 * Guards from the literature, each off unless asked for:
 *  - early stop (DARTS+, Liang et al. 2019, sec. 3.2: stop the search once
 *    the normal cell holds two or more skip-connects): the search ends after
 *    the epoch whose derived normal cell holds more than k skip_connects;
 *  - skip cap (P-DARTS, Chen et al. 2019, sec. 3.3, which keeps 2): the
 *    normal cell is derived with at most k skip_connects
 *    (graph/genotype.ts deriveCellCapped).
 * Decisions are returned as records for the log and the report.
 */
import {
  deriveCellCapped,
  edgeWeights,
  PRIMITIVES,
  type Genotype,
  type OpName,
  type SkipRemoval,
  STEPS,
} from '../../graph/genotype.js';

/** Collapse settings of a DARTS search (the CLI's --collapse-warn, --early-stop-skip, --max-skip). */
export interface CollapseOptions {
  /** Warn when the derived normal cell has more than this many parameter-free ops (default 3; < 0: never). */
  warnParamFree?: number;
  /** DARTS+ early stop: end the search once the derived normal cell has more than k skip_connects. */
  earlyStopSkip?: number;
  /** P-DARTS cap: derive normal cells with at most k skip_connects. */
  maxSkip?: number;
}

export const DEFAULT_WARN_PARAM_FREE = 3;

/** What one epoch's α look like (normal cell, DARTS's rule without any cap). */
export interface CollapseStats {
  /** Parameter-free ops (skip_connect, max/avg pool) among the derived normal cell's 8. */
  param_free: number;
  skip: number;
  pools: number;
  /** Mean over the edges of softmax(α) on skip_connect. */
  skip_mass: number;
  /** Mean over the edges of softmax(α) on max_pool_3x3 + avg_pool_3x3. */
  pool_mass: number;
  /** The warning threshold in force (set in a search's records). */
  warn_above?: number;
  /** Set when param_free exceeds the warning threshold. */
  warning?: string;
}

export type GuardDecision =
  | { guard: 'max-skip'; k: number; removed: SkipRemoval[] }
  | { guard: 'early-stop-skip'; k: number; skip: number; action: 'stop' };

const POOLS: readonly OpName[] = ['max_pool_3x3', 'avg_pool_3x3'];

const round = (v: number): number => Number(v.toFixed(6));

/** Collapse statistics of one cell's α (logits, [14 × ops]) and its derived ops. */
export function collapseStats(
  alpha: ArrayLike<number>,
  ops: readonly OpName[],
  cell: readonly (readonly [OpName, number])[],
): CollapseStats {
  const w = edgeWeights(alpha, ops);
  const mass = (names: readonly OpName[]): number => {
    const cols = names.map((n) => ops.indexOf(n)).filter((k) => k >= 0);
    return w.reduce((s, row) => s + cols.reduce((t, k) => t + row[k]!, 0), 0) / w.length;
  };
  const skip = cell.filter(([op]) => op === 'skip_connect').length;
  const pools = cell.filter(([op]) => POOLS.includes(op)).length;
  return {
    param_free: skip + pools,
    skip,
    pools,
    skip_mass: round(mass(['skip_connect'])),
    pool_mass: round(mass(POOLS)),
  };
}

/** The warning line for stats over the threshold, or undefined. */
export function collapseWarning(s: CollapseStats, threshold = DEFAULT_WARN_PARAM_FREE): string | undefined {
  if (threshold < 0 || s.param_free <= threshold) return undefined;
  return (
    `derived normal cell: ${s.param_free} of ${2 * STEPS} ops parameter-free (skip_connect ${s.skip}, pools ${s.pools}; ` +
    `softmax(α) mass: skip ${s.skip_mass.toFixed(3)}, pools ${s.pool_mass.toFixed(3)}) — more than ${threshold}: ` +
    'the search may be collapsing (guards: --early-stop-skip, --max-skip)'
  );
}

/** An epoch's end, checked: the genotype to record (capped if asked), the stats, the guards' decisions. */
export interface EpochCheck {
  genotype: Genotype;
  collapse: CollapseStats;
  guards: GuardDecision[];
  /** The early-stop guard ends the search. */
  stop: boolean;
}

/** Derive the genotype of α, watch the normal cell for collapse and apply the guards that are on. */
export function checkEpoch(
  alphaNormal: ArrayLike<number>,
  alphaReduce: ArrayLike<number>,
  ops: readonly OpName[] = PRIMITIVES,
  o: CollapseOptions = {},
): EpochCheck {
  const plain = deriveCellCapped(alphaNormal, ops).cell;
  const stats = collapseStats(alphaNormal, ops, plain);
  const warnAbove = o.warnParamFree ?? DEFAULT_WARN_PARAM_FREE;
  const warning = collapseWarning(stats, warnAbove);
  const collapse: CollapseStats = { ...stats, warn_above: warnAbove, ...(warning ? { warning } : {}) };
  const guards: GuardDecision[] = [];
  let normal = plain;
  if (o.maxSkip !== undefined) {
    const capped = deriveCellCapped(alphaNormal, ops, o.maxSkip);
    normal = capped.cell;
    if (capped.removed.length) guards.push({ guard: 'max-skip', k: o.maxSkip, removed: capped.removed });
  }
  const stop = o.earlyStopSkip !== undefined && stats.skip > o.earlyStopSkip;
  if (stop) guards.push({ guard: 'early-stop-skip', k: o.earlyStopSkip!, skip: stats.skip, action: 'stop' });
  const concat = Array.from({ length: STEPS }, (_, i) => i + 2);
  const genotype: Genotype = {
    normal,
    normal_concat: concat,
    reduce: deriveCellCapped(alphaReduce, ops).cell,
    reduce_concat: [...concat],
  };
  return { genotype, collapse, guards, stop };
}

/** A cell state's name: c_{k-2}, c_{k-1}, node 0, … */
const stateName = (s: number): string => (s < 2 ? `c_{k-${2 - s}}` : `node ${s - 2}`);

/** One line per decision, for the terminal. */
export function describeGuard(d: GuardDecision): string {
  if (d.guard === 'max-skip')
    return `skip cap (P-DARTS, k = ${d.k}): skip_connect taken off ${d.removed.map((r) => `${stateName(r.from)} → node ${r.node} (weight ${r.weight.toFixed(3)})`).join(', ')}`;
  return `early stop (DARTS+, k = ${d.k}): the derived normal cell has ${d.skip} skip_connects; the search ends here`;
}

/** softmax(α) (rounded) and collapse statistics of every cell: SSWP-NAS's per-epoch record fields. */
export function perCellAlphaRecord(
  alphas: readonly ArrayLike<number>[],
  ops: readonly OpName[],
  cells: readonly (readonly (readonly [OpName, number])[])[],
): { alpha: number[][][]; collapse: CollapseStats[] } {
  return {
    alpha: alphas.map((a) => edgeWeights(a, ops).map((row) => row.map((v) => Number(v.toFixed(4))))),
    collapse: alphas.map((a, i) => collapseStats(a, ops, cells[i]!)),
  };
}
