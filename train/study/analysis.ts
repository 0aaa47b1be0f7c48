/**
 * Analyses of the UnNAS sample-based study: rank correlations between a
 * pretext objective's accuracy and the supervised accuracy of the same
 * architectures, the random-experiment curve, a JSON / text summary, and
 * its charts and HTML report (drawn by train/report).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../../graph/rng.js';
import { bandChart, scatterChart } from '../report/charts.js';
import { esc, figure, htmlPage, keyValueTable, type Section } from '../report/html.js';
import { SERIES_COLORS } from '../report/palette.js';
import { writeFileAtomic } from '../runtime/fsutil.js';
import type { TrialResult } from './store.js';

// ---------------------------------------------------------------------------
// Correlations
// ---------------------------------------------------------------------------

function checkPaired(x: readonly number[], y: readonly number[], fn: string): void {
  if (x.length !== y.length) throw new Error(`${fn}: arrays differ in length (${x.length} vs ${y.length})`);
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i]) || !Number.isFinite(y[i])) throw new Error(`${fn}: non-finite value at index ${i}`);
  }
}

/**
 * 1-based ranks with ties given the average of the ranks they span
 * (e.g. [10, 20, 20, 30] → [1, 2.5, 2.5, 4]), as scipy.stats.rankdata.
 */
export function averageRanks(xs: readonly number[]): number[] {
  const idx = xs.map((_, i) => i).sort((a, b) => xs[a]! - xs[b]!);
  const ranks = new Array<number>(xs.length);
  let i = 0;
  while (i < idx.length) {
    let j = i;
    while (j + 1 < idx.length && xs[idx[j + 1]!] === xs[idx[i]!]) j++;
    const r = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[idx[k]!] = r;
    i = j + 1;
  }
  return ranks;
}

/** Pearson's correlation coefficient; NaN when n < 2 or either variable is constant. */
export function pearson(x: readonly number[], y: readonly number[]): number {
  checkPaired(x, y, 'pearson');
  const n = x.length;
  if (n < 2) return NaN;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i]!;
    my += y[i]!;
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i]! - mx;
    const dy = y[i]! - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx === 0 || syy === 0) return NaN;
  return Math.max(-1, Math.min(1, sxy / Math.sqrt(sxx * syy)));
}

/** Spearman's ρ with ties handled: Pearson's r of the average ranks (as scipy.stats.spearmanr). */
export function spearman(x: readonly number[], y: readonly number[]): number {
  checkPaired(x, y, 'spearman');
  return pearson(averageRanks(x), averageRanks(y));
}

/**
 * Kendall's τ-b (ties in either variable corrected, as scipy.stats.kendalltau's
 * default): (C − D) / √((n0 − n1)(n0 − n2)). O(n²). NaN if n < 2 or a variable is constant.
 */
export function kendallTau(x: readonly number[], y: readonly number[]): number {
  checkPaired(x, y, 'kendallTau');
  const n = x.length;
  let concordant = 0;
  let discordant = 0;
  let tiesX = 0; // pairs tied in x only
  let tiesY = 0; // pairs tied in y only
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const dx = Math.sign(x[i]! - x[j]!);
      const dy = Math.sign(y[i]! - y[j]!);
      if (dx === 0 && dy === 0) continue;
      if (dx === 0) tiesX++;
      else if (dy === 0) tiesY++;
      else if (dx === dy) concordant++;
      else discordant++;
    }
  }
  const denom = Math.sqrt((concordant + discordant + tiesX) * (concordant + discordant + tiesY));
  return denom === 0 ? NaN : (concordant - discordant) / denom;
}

/** A confidence interval and how many resamples it rests on. */
export interface Interval {
  lo: number;
  hi: number;
  /** Resamples whose statistic was defined (a resample with a constant variable has none). */
  resamples: number;
}

export interface BootstrapOptions {
  /** Resamples drawn (default 2000). */
  resamples?: number;
  /** Coverage (default 0.95). */
  level?: number;
  /** Seed of the resampling (default 0). */
  seed?: number;
}

/**
 * Percentile bootstrap interval of a paired statistic (Efron & Tibshirani 1993,
 * ch. 13): resample the n (x, y) pairs — the architectures — with replacement,
 * recompute the statistic, take the (1 − level)/2 and (1 + level)/2 quantiles
 * (linear interpolation, as numpy.quantile). Resamples where the statistic is
 * undefined are dropped; NaN bounds when fewer than half remain or n < 3.
 */
export function bootstrapInterval(
  x: readonly number[],
  y: readonly number[],
  stat: (x: number[], y: number[]) => number,
  o: BootstrapOptions = {},
): Interval {
  checkPaired(x, y, 'bootstrapInterval');
  const n = x.length;
  const B = o.resamples ?? 2000;
  const level = o.level ?? 0.95;
  const rng = Rng.derive(o.seed ?? 0, n);
  const values: number[] = [];
  const bx = new Array<number>(n);
  const by = new Array<number>(n);
  for (let b = 0; b < B && n >= 3; b++) {
    for (let i = 0; i < n; i++) {
      const j = rng.int(n);
      bx[i] = x[j]!;
      by[i] = y[j]!;
    }
    const v = stat(bx, by);
    if (Number.isFinite(v)) values.push(v);
  }
  if (values.length < B / 2 || n < 3) return { lo: NaN, hi: NaN, resamples: values.length };
  values.sort((a, b) => a - b);
  return { lo: quantile(values, (1 - level) / 2), hi: quantile(values, (1 + level) / 2), resamples: values.length };
}

/** The q-quantile of sorted values, interpolating linearly between order statistics. */
export function quantile(sorted: readonly number[], q: number): number {
  const h = (sorted.length - 1) * q;
  const i = Math.floor(h);
  const lo = sorted[i]!;
  return i + 1 < sorted.length ? lo + (h - i) * (sorted[i + 1]! - lo) : lo;
}

/** ρ and τ of paired accuracies, each with its bootstrap interval. */
export interface RankAgreement {
  n: number;
  spearman: number;
  spearmanCI: Interval;
  kendall: number;
  kendallCI: Interval;
  pearson: number;
}

/** (Each statistic is NaN below two pairs by itself, each interval NaN below three.) */
export function rankAgreement(x: readonly number[], y: readonly number[], o: BootstrapOptions = {}): RankAgreement {
  return {
    n: x.length,
    spearman: spearman(x, y),
    spearmanCI: bootstrapInterval(x, y, spearman, o),
    kendall: kendallTau(x, y),
    kendallCI: bootstrapInterval(x, y, kendallTau, o),
    pearson: pearson(x, y),
  };
}

// ---------------------------------------------------------------------------
// Random experiment
// ---------------------------------------------------------------------------

/** One point of the random-experiment curve. */
export interface RandomExperimentPoint {
  /** Experiment size: architectures drawn per experiment. */
  m: number;
  /** Number of experiments (random draws) averaged: ⌈n/m⌉ by default. */
  draws: number;
  /** Mean supervised accuracy of the architecture each draw selects. */
  mean: number;
  /** Population standard deviation (ddof 0) of those accuracies. */
  std: number;
  /** mean − 2·std. */
  lo: number;
  /** mean + 2·std. */
  hi: number;
}

export interface RandomExperimentOptions {
  /** Number of draws for size m out of n architectures; default ⌈n/m⌉. */
  draws?: (m: number, n: number) => number;
}

/**
 * The UnNAS random-experiment analysis. For each experiment size m: ⌈n/m⌉
 * times, draw m of the n architectures uniformly without replacement, select
 * the one with the highest `objective` accuracy (ties: the first in the random
 * draw order) and record its `supervised` accuracy; report their mean and
 * ±2σ. Each size uses its own stream `Rng.derive(seed, m)`, so a point does
 * not depend on which other sizes are requested.
 */
export function randomExperiment(
  objective: readonly number[],
  supervised: readonly number[],
  sizes: readonly number[],
  seed: number,
  opts: RandomExperimentOptions = {},
): RandomExperimentPoint[] {
  checkPaired(objective, supervised, 'randomExperiment');
  const n = objective.length;
  const drawsOf = opts.draws ?? ((m: number, nn: number) => Math.ceil(nn / m));
  return sizes.map((m) => {
    if (!Number.isInteger(m) || m < 1 || m > n)
      throw new Error(`randomExperiment: experiment size ${m} not in 1..${n}`);
    const draws = drawsOf(m, n);
    if (!Number.isInteger(draws) || draws < 1) throw new Error(`randomExperiment: invalid draw count ${draws}`);
    const rng = Rng.derive(seed, m);
    const perm = Array.from({ length: n }, (_, i) => i);
    const picked = new Array<number>(draws);
    for (let d = 0; d < draws; d++) {
      // Partial Fisher-Yates: perm[0..m) becomes a uniform random m-subset in random order
      // (whatever order perm was left in by the previous draw).
      let best = -1;
      for (let k = 0; k < m; k++) {
        const j = k + rng.int(n - k);
        const t = perm[k]!;
        perm[k] = perm[j]!;
        perm[j] = t;
        if (best < 0 || objective[perm[k]!]! > objective[best]!) best = perm[k]!;
      }
      picked[d] = supervised[best]!;
    }
    const mean = picked.reduce((a, b) => a + b, 0) / draws;
    const std = Math.sqrt(picked.reduce((a, b) => a + (b - mean) ** 2, 0) / draws);
    return { m, draws, mean, std, lo: mean - 2 * std, hi: mean + 2 * std };
  });
}

/** Default experiment sizes for n architectures: 1, 2, 5, 10, 20, 50, … below n, then n. */
export function defaultExperimentSizes(n: number): number[] {
  const out: number[] = [];
  for (let p = 1; p < n; p *= 10) for (const f of [1, 2, 5]) if (f * p < n) out.push(f * p);
  if (n >= 1) out.push(n);
  return out;
}

// ---------------------------------------------------------------------------
// Summary
// ---------------------------------------------------------------------------

/** Per-architecture accuracies: task name → accuracy (e.g. averaged over seeds). */
export interface ArchAccuracies {
  arch: string;
  acc: Record<string, number>;
}

/**
 * Groups trial results by architecture and averages `metrics[metric]` over
 * seeds per objective. Architectures keep their first-seen order.
 */
export function aggregateAccuracies(results: readonly TrialResult[], metric = 'accuracy'): ArchAccuracies[] {
  const sums = new Map<string, Map<string, { s: number; k: number }>>();
  for (const r of results) {
    const v = r.metrics[metric];
    if (v === undefined || !Number.isFinite(v)) continue;
    let byObj = sums.get(r.archId);
    if (!byObj) sums.set(r.archId, (byObj = new Map()));
    const e = byObj.get(r.objective) ?? { s: 0, k: 0 };
    e.s += v;
    e.k += 1;
    byObj.set(r.objective, e);
  }
  return [...sums].map(([arch, byObj]) => ({
    arch,
    acc: Object.fromEntries([...byObj].map(([o, e]) => [o, e.s / e.k])),
  }));
}

/**
 * Correlations (with bootstrap intervals) and random-experiment curve of one objective against the
 * reference task; `n`: architectures that have both accuracies.
 */
export interface ObjectiveSummary extends RankAgreement {
  objective: string;
  /** Supervised (reference) accuracy of the best-by-this-objective architecture. */
  randomExperiment: RandomExperimentPoint[];
}

/** Rank agreement of two objectives other than the reference. */
export interface PairSummary extends RankAgreement {
  a: string;
  b: string;
}

/** How far the reference accuracies spread over the architectures. */
export interface AccuracySpread {
  n: number;
  min: number;
  q25: number;
  median: number;
  q75: number;
  max: number;
  mean: number;
  /** Sample standard deviation (ddof 1). */
  std: number;
}

/**
 * The seed-noise check: the same architectures' reference accuracies under two training
 * seeds. Their agreement bounds what any objective can show against one seed.
 */
export interface SeedCheck {
  seeds: [number, number];
  agreement: RankAgreement;
  /** ρ of each objective with the reference accuracy of each single seed. */
  byObjective: { objective: string; seed: number; n: number; spearman: number }[];
}

/** Summary of a sample-based study (JSON-serializable; NaN correlations become null in JSON). */
export interface StudySummary {
  space: string;
  /** The supervised task all objectives are compared with. */
  reference: string;
  /** Architectures having a reference accuracy. */
  nArchs: number;
  seed: number;
  /** Reference task's own curve (selecting by supervised accuracy): the upper bound. */
  referenceCurve: RandomExperimentPoint[];
  /** The reference accuracies' spread (averaged over seeds). */
  spread: AccuracySpread;
  objectives: ObjectiveSummary[];
  /** Every pair of the other objectives. */
  pairs: PairSummary[];
  /** Bootstrap settings of every interval. */
  bootstrap: { resamples: number; level: number; seed: number };
  /** Present when the reference task ran under two or more seeds (the first two are compared). */
  seedCheck: SeedCheck | null;
}

export interface SummaryOptions {
  /** Search space name, for titles; default ''. */
  space?: string;
  /** Supervised task name; default 'cls'. */
  reference?: string;
  /** Objectives to summarize; default every task found except the reference, sorted. */
  objectives?: string[];
  /** Experiment sizes; default defaultExperimentSizes(n) per objective. */
  sizes?: number[];
  /** Seed of the random experiment and of the bootstrap; default 0. */
  seed?: number;
  /** Bootstrap resamples (default 2000) and coverage (default 0.95) of the intervals. */
  bootstrap?: { resamples?: number; level?: number };
  /** The reference accuracies of each training seed (for the seed-noise check). */
  referenceBySeed?: Map<number, ArchAccuracies[]>;
}

function pairs(rows: readonly ArchAccuracies[], a: string, b: string): { x: number[]; y: number[]; arch: string[] } {
  const x: number[] = [];
  const y: number[] = [];
  const arch: string[] = [];
  for (const r of rows) {
    const va = r.acc[a];
    const vb = r.acc[b];
    if (va !== undefined && vb !== undefined && Number.isFinite(va) && Number.isFinite(vb)) {
      x.push(va);
      y.push(vb);
      arch.push(r.arch);
    }
  }
  return { x, y, arch };
}

/** Builds the study summary from per-architecture accuracies. */
export function buildStudySummary(rows: readonly ArchAccuracies[], opts: SummaryOptions = {}): StudySummary {
  const reference = opts.reference ?? 'cls';
  const seed = opts.seed ?? 0;
  const boot = { resamples: opts.bootstrap?.resamples ?? 2000, level: opts.bootstrap?.level ?? 0.95, seed };
  const tasks = new Set<string>();
  for (const r of rows) for (const k of Object.keys(r.acc)) tasks.add(k);
  const objectives = opts.objectives ?? [...tasks].filter((t) => t !== reference).sort();
  const sizesFor = (n: number) => (opts.sizes ?? defaultExperimentSizes(n)).filter((m) => m <= n);
  const ref = pairs(rows, reference, reference);
  return {
    space: opts.space ?? '',
    reference,
    nArchs: ref.x.length,
    seed,
    referenceCurve: ref.x.length ? randomExperiment(ref.x, ref.y, sizesFor(ref.x.length), seed) : [],
    spread: accuracySpread(ref.x),
    objectives: objectives.map((objective) => {
      const p = pairs(rows, objective, reference);
      const n = p.x.length;
      return {
        objective,
        ...rankAgreement(p.x, p.y, boot),
        randomExperiment: n ? randomExperiment(p.x, p.y, sizesFor(n), seed) : [],
      };
    }),
    pairs: objectives.flatMap((a, k) =>
      objectives.slice(k + 1).map((b) => {
        const p = pairs(rows, a, b);
        return { a, b, ...rankAgreement(p.x, p.y, boot) };
      }),
    ),
    bootstrap: boot,
    seedCheck: opts.referenceBySeed ? seedCheck(rows, opts.referenceBySeed, reference, objectives, boot) : null,
  };
}

/** Quartiles, range, mean and sample standard deviation of accuracies. */
export function accuracySpread(xs: readonly number[]): AccuracySpread {
  const v = [...xs].sort((a, b) => a - b);
  const n = v.length;
  const mean = n ? v.reduce((a, b) => a + b, 0) / n : NaN;
  const std = n > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : NaN;
  const q = (p: number) => (n ? quantile(v, p) : NaN);
  return { n, min: q(0), q25: q(0.25), median: q(0.5), q75: q(0.75), max: q(1), mean, std };
}

/**
 * `rows` with the reference accuracy under each of the first two seeds of `bySeed` added as tasks
 * `s0` and `s1` (the seed check's pairs); null with fewer seeds.
 */
function withSeedTasks(
  rows: readonly ArchAccuracies[],
  bySeed: Map<number, ArchAccuracies[]>,
  reference: string,
): { seeds: [number, number]; rows: ArchAccuracies[] } | null {
  const seeds = [...bySeed.keys()].sort((a, b) => a - b).slice(0, 2);
  if (seeds.length < 2) return null;
  const accOf = seeds.map((s) => new Map(bySeed.get(s)!.map((r) => [r.arch, r.acc[reference]])));
  const joined = rows.map((r) => {
    const acc = { ...r.acc };
    accOf.forEach((m, k) => {
      const v = m.get(r.arch);
      if (v !== undefined) acc[`s${k}`] = v;
    });
    return { arch: r.arch, acc };
  });
  return { seeds: [seeds[0]!, seeds[1]!], rows: joined };
}

/** The seed-noise check of the first two seeds in `bySeed`; null with fewer. */
function seedCheck(
  rows: readonly ArchAccuracies[],
  bySeed: Map<number, ArchAccuracies[]>,
  reference: string,
  objectives: readonly string[],
  boot: BootstrapOptions,
): SeedCheck | null {
  const j = withSeedTasks(rows, bySeed, reference);
  if (!j) return null;
  const both = pairs(j.rows, 's0', 's1');
  return {
    seeds: j.seeds,
    agreement: rankAgreement(both.x, both.y, boot),
    byObjective: objectives.flatMap((objective) =>
      j.seeds.map((seed, k) => {
        const p = pairs(j.rows, objective, `s${k}`);
        return { objective, seed, n: p.x.length, spearman: spearman(p.x, p.y) };
      }),
    ),
  };
}

function fmt(v: number, digits = 3): string {
  return Number.isFinite(v) ? v.toFixed(digits) : 'n/a';
}

function table(header: string[], body: string[][]): string {
  const w = header.map((h, c) => Math.max(h.length, ...body.map((r) => (r[c] ?? '').length)));
  // the first column is left-aligned unless it is numeric; the others are right-aligned
  const leftFirst = !body.every((r) => /^-?[\d.]+$/.test(r[0] ?? ''));
  const line = (r: string[]) =>
    r
      .map((s, c) => (c === 0 && leftFirst ? s.padEnd(w[c]!) : s.padStart(w[c]!)))
      .join('  ')
      .trimEnd();
  return [line(header), w.map((k) => '-'.repeat(k)).join('  '), ...body.map(line)].join('\n');
}

const ci = (c: Interval): string => `[${fmt(c.lo)}, ${fmt(c.hi)}]`;
const pct = (v: number): string => (Number.isFinite(v) ? `${(100 * v).toFixed(2)}%` : 'n/a');

/** ρ and τ with their intervals, one row per objective (vs the reference) or pair of objectives. */
function agreementTable(first: string, rows: { name: string; r: RankAgreement }[], level: number): string {
  const l = `${Math.round(level * 100)}% CI`;
  return table(
    [first, 'n', 'spearman ρ', `ρ ${l}`, 'kendall τ', `τ ${l}`, 'pearson'],
    rows.map(({ name, r }) => [
      name,
      String(r.n),
      fmt(r.spearman),
      ci(r.spearmanCI),
      fmt(r.kendall),
      ci(r.kendallCI),
      fmt(r.pearson),
    ]),
  );
}

/** The correlation part of the report: agreement with the reference, spread, pairs, seed check. */
function correlationText(s: StudySummary): string[] {
  const out: string[] = [];
  const b = s.bootstrap;
  out.push(
    `Rank correlation of each objective's accuracy with the ${s.reference} accuracy ` +
      `(intervals: percentile bootstrap over architectures, ${b.resamples} resamples, seed ${b.seed})`,
  );
  out.push(
    agreementTable(
      'objective',
      s.objectives.map((o) => ({ name: o.objective, r: o })),
      b.level,
    ),
  );
  const sp = s.spread;
  out.push('');
  out.push(
    `Spread of the ${s.reference} accuracies over ${sp.n} architectures: min ${pct(sp.min)}, quartiles ${pct(sp.q25)} / ` +
      `${pct(sp.median)} / ${pct(sp.q75)}, max ${pct(sp.max)}; mean ${pct(sp.mean)}, sd ${pct(sp.std)}`,
  );
  if (s.pairs.length) {
    out.push('');
    out.push('Rank correlation between the other objectives');
    out.push(
      agreementTable(
        'pair',
        s.pairs.map((p) => ({ name: `${p.a} / ${p.b}`, r: p })),
        b.level,
      ),
    );
  }
  if (s.seedCheck) out.push('', ...seedCheckText(s.seedCheck, s.reference, b.level));
  return out;
}

function seedCheckText(c: SeedCheck, reference: string, level: number): string[] {
  const [s0, s1] = c.seeds;
  const objectives = [...new Set(c.byObjective.map((o) => o.objective))];
  const rho = (o: string, seed: number) => c.byObjective.find((r) => r.objective === o && r.seed === seed)?.spearman;
  return [
    `Seed noise: ${reference} accuracies of the same architectures under training seeds ${s0} and ${s1}`,
    agreementTable('pair', [{ name: `${reference} seed ${s0} / seed ${s1}`, r: c.agreement }], level),
    '',
    `Spearman ρ of each objective with the ${reference} accuracy of one seed`,
    table(
      ['objective', `vs seed ${s0}`, `vs seed ${s1}`],
      objectives.map((o) => [o, fmt(rho(o, s0) ?? NaN), fmt(rho(o, s1) ?? NaN)]),
    ),
  ];
}

/** A human-readable text report of a summary (correlation tables and random-experiment table). */
export function formatSummaryTable(s: StudySummary): string {
  const out: string[] = [];
  out.push(
    `Sample-based study${s.space ? ` (${s.space})` : ''}: ${s.nArchs} architectures with a ${s.reference} accuracy`,
  );
  out.push('');
  out.push(...correlationText(s));
  out.push('');
  out.push(
    `Random experiment: ${s.reference} accuracy of the best-by-objective architecture, mean ± 2σ (seed ${s.seed})`,
  );
  const curves = [
    { name: `${s.reference} (oracle)`, pts: s.referenceCurve },
    ...s.objectives.map((o) => ({ name: o.objective, pts: o.randomExperiment })),
  ];
  const ms = [...new Set(curves.flatMap((c) => c.pts.map((p) => p.m)))].sort((a, b) => a - b);
  out.push(
    table(
      ['m', 'draws', ...curves.map((c) => c.name)],
      ms.map((m) => {
        const any = curves.flatMap((c) => c.pts).find((p) => p.m === m);
        // (every curve uses ⌈n/m⌉ draws; n may differ between objectives with missing results)
        return [
          String(m),
          String(any?.draws ?? ''),
          ...curves.map((c) => {
            const p = c.pts.find((q) => q.m === m);
            return p ? `${fmt(p.mean, 4)} ± ${fmt(2 * p.std, 4)}` : '-';
          }),
        ];
      }),
    ),
  );
  return `${out.join('\n')}\n`;
}

// ---------------------------------------------------------------------------
// Charts and the HTML report (train/report: Vega-Lite, rendered to SVG)
// ---------------------------------------------------------------------------

export interface ScatterOptions {
  x: readonly number[];
  y: readonly number[];
  title: string;
  xLabel: string;
  yLabel: string;
  color?: string;
}

/** A scatter plot as an SVG document string. */
export function scatterPlotSvg(o: ScatterOptions): Promise<string> {
  checkPaired(o.x, o.y, 'scatterPlotSvg');
  return scatterChart({ x: o.x, y: o.y, title: o.title, xTitle: o.xLabel, yTitle: o.yLabel, color: o.color });
}

/** Scatter plot of an objective's accuracy (x) against the reference accuracy (y), ρ in the title. */
export function objectiveScatterSvg(
  rows: readonly ArchAccuracies[],
  objective: string,
  reference = 'cls',
  space = '',
): Promise<string> {
  const p = pairs(rows, objective, reference);
  const rho = p.x.length >= 2 ? spearman(p.x, p.y) : NaN;
  return scatterPlotSvg({
    x: p.x,
    y: p.y,
    title: `${space ? `${space}: ` : ''}${objective} vs ${reference} (ρ = ${fmt(rho)}, n = ${p.x.length})`,
    xLabel: `${objective} accuracy`,
    yLabel: `${reference} accuracy`,
  });
}

/** Scatter plot of the reference accuracies under the seed check's two seeds. */
function seedScatterSvg(
  summary: StudySummary,
  rows: readonly ArchAccuracies[],
  bySeed: Map<number, ArchAccuracies[]>,
): Promise<string> {
  const ref = summary.reference;
  const j = withSeedTasks(rows, bySeed, ref)!;
  const [s0, s1] = j.seeds;
  const p = pairs(j.rows, 's0', 's1');
  return scatterPlotSvg({
    x: p.x,
    y: p.y,
    title: `${summary.space ? `${summary.space}: ` : ''}${ref} seed ${s0} vs seed ${s1} (ρ = ${fmt(summary.seedCheck!.agreement.spearman)}, n = ${p.x.length})`,
    xLabel: `${ref} accuracy, seed ${s0}`,
    yLabel: `${ref} accuracy, seed ${s1}`,
  });
}

export interface CurveSeries {
  label: string;
  points: readonly RandomExperimentPoint[];
  color?: string;
}

export interface CurveChartOptions {
  title: string;
  xLabel?: string;
  yLabel?: string;
  /** Log-scale x axis (default true when every m > 0). */
  logX?: boolean;
  /** What the lines and bands show (default: mean, mean ± 2σ). */
  bandLabel?: string;
}

/** Random-experiment curves: mean line with a shaded mean ± 2σ band per series, and a legend. */
export function randomExperimentSvg(series: readonly CurveSeries[], o: CurveChartOptions): Promise<string> {
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) throw new Error('randomExperimentSvg: no points');
  return bandChart(
    series.map((s) => ({ label: s.label, color: s.color, points: [...s.points].sort((a, b) => a.m - b.m) })),
    {
      title: o.title,
      note: o.bandLabel ?? 'lines: mean; bands: mean ± 2σ',
      xTitle: o.xLabel ?? 'experiment size m (architectures per experiment)',
      yTitle: o.yLabel ?? 'supervised accuracy of the selected architecture',
      logX: o.logX ?? all.every((p) => p.m > 0),
    },
  );
}

/** The random-experiment series of a summary: the reference's own curve first, in black. */
function curveSeries(summary: StudySummary): CurveSeries[] {
  return [
    ...(summary.referenceCurve.length
      ? [{ label: `${summary.reference} (oracle)`, points: summary.referenceCurve, color: '#000000' }]
      : []),
    ...summary.objectives
      .filter((o) => o.randomExperiment.length)
      .map((o, k) => ({
        label: o.objective,
        points: o.randomExperiment,
        color: SERIES_COLORS[k % SERIES_COLORS.length]!,
      })),
  ];
}

/** The study report page: correlations, scatter plots, random experiment, config. */
export function studyReportHtml(
  summary: StudySummary,
  charts: { random: string | null; scatters: string[] },
  config?: Record<string, unknown>,
): string {
  const corr = correlationText(summary).join('\n');
  const sections: Section[] = [
    {
      id: 'summary',
      title: 'Summary',
      body: `<p>${esc(`${summary.nArchs} architectures with a ${summary.reference} accuracy.`)}</p><pre>${esc(corr)}</pre>`,
    },
    {
      id: 'scatter',
      title: 'Objective vs reference accuracy',
      body: charts.scatters.map((c) => figure(c)).join('\n') || '<p>No data yet.</p>',
    },
    { id: 'random', title: 'Random experiment', body: charts.random ? figure(charts.random) : '<p>No data yet.</p>' },
    { id: 'text', title: 'All tables (summary.txt)', body: `<pre>${esc(formatSummaryTable(summary))}</pre>` },
  ];
  if (config) sections.push({ id: 'config', title: 'Config', body: keyValueTable(config) });
  return htmlPage({
    title: `Sample-based study${summary.space ? ` (${summary.space})` : ''}`,
    subtitle: `nas-onnx study report, written ${new Date().toISOString()}`,
    sections,
  });
}

/**
 * Writes a study report into `dir`: summary.json, summary.txt,
 * random_experiment.svg, scatter_<objective>.svg for every objective with
 * data, and report.html with all of them (all written atomically). Returns
 * the paths written.
 */
export async function writeStudyReport(
  dir: string,
  summary: StudySummary,
  rows: readonly ArchAccuracies[],
  config?: Record<string, unknown>,
  referenceBySeed?: Map<number, ArchAccuracies[]>,
): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  const put = (name: string, data: string) => {
    const p = join(dir, name);
    writeFileAtomic(p, data);
    written.push(p);
  };
  put('summary.json', `${JSON.stringify(summary, null, 1)}\n`);
  put('summary.txt', formatSummaryTable(summary));
  const series = curveSeries(summary);
  const random = series.length
    ? await randomExperimentSvg(series, { title: `Random experiment${summary.space ? ` (${summary.space})` : ''}` })
    : null;
  if (random) put('random_experiment.svg', random);
  const scatters: string[] = [];
  for (const o of summary.objectives) {
    if (o.n < 1 || !/^[A-Za-z0-9_.-]+$/.test(o.objective)) continue;
    const svg = await objectiveScatterSvg(rows, o.objective, summary.reference, summary.space);
    scatters.push(svg);
    put(`scatter_${o.objective}.svg`, svg);
  }
  const seedSvg = summary.seedCheck && referenceBySeed ? await seedScatterSvg(summary, rows, referenceBySeed) : null;
  if (seedSvg) {
    scatters.push(seedSvg);
    put(`scatter_${summary.reference}_seeds.svg`, seedSvg);
  }
  put('report.html', studyReportHtml(summary, { random, scatters }, config));
  return written;
}
