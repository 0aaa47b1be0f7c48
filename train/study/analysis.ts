/**
 * Analyses of the UnNAS sample-based study: rank correlations between a
 * pretext objective's accuracy and the supervised accuracy of the same
 * architectures, the random-experiment curve, a JSON / text summary and
 * dependency-free SVG charts.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../../graph/rng.js';
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

/** Correlations and random-experiment curve of one objective against the reference task. */
export interface ObjectiveSummary {
  objective: string;
  /** Architectures that have both this objective's and the reference accuracy. */
  n: number;
  spearman: number;
  pearson: number;
  kendall: number;
  /** Supervised (reference) accuracy of the best-by-this-objective architecture. */
  randomExperiment: RandomExperimentPoint[];
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
  objectives: ObjectiveSummary[];
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
  /** Seed of the random experiment; default 0. */
  seed?: number;
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
    objectives: objectives.map((objective) => {
      const p = pairs(rows, objective, reference);
      const n = p.x.length;
      return {
        objective,
        n,
        spearman: n >= 2 ? spearman(p.x, p.y) : NaN,
        pearson: n >= 2 ? pearson(p.x, p.y) : NaN,
        kendall: n >= 2 ? kendallTau(p.x, p.y) : NaN,
        randomExperiment: n ? randomExperiment(p.x, p.y, sizesFor(n), seed) : [],
      };
    }),
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

/** A human-readable text report of a summary (correlation table and random-experiment table). */
export function formatSummaryTable(s: StudySummary): string {
  const out: string[] = [];
  out.push(
    `Sample-based study${s.space ? ` (${s.space})` : ''}: ${s.nArchs} architectures with a ${s.reference} accuracy`,
  );
  out.push('');
  out.push(`Rank correlation of each objective's accuracy with the ${s.reference} accuracy`);
  out.push(
    table(
      ['objective', 'n', 'spearman', 'kendall', 'pearson'],
      s.objectives.map((o) => [o.objective, String(o.n), fmt(o.spearman), fmt(o.kendall), fmt(o.pearson)]),
    ),
  );
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
// SVG charts (plain strings, no dependency)
// ---------------------------------------------------------------------------

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];

/** Escapes text for SVG/XML content and attribute values. */
export function escapeXml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

interface Axis {
  ticks: number[];
  map: (v: number) => number;
  label: (v: number) => string;
}

function niceStep(span: number, target: number): number {
  const raw = span / Math.max(1, target);
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
}

/** Linear axis over [min, max] (padded to nice bounds) mapped onto pixels [p0, p1]. */
function linearAxis(min: number, max: number, p0: number, p1: number, target = 5): Axis {
  if (!(max > min)) {
    const d = Math.abs(min) > 0 ? Math.abs(min) * 0.01 : 0.5;
    min -= d;
    max += d;
  } else {
    // keep marks off the frame
    const pad = 0.03 * (max - min);
    min -= pad;
    max += pad;
  }
  const step = niceStep(max - min, target);
  const lo = Math.floor(min / step) * step;
  const hi = Math.ceil(max / step) * step;
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  const ticks: number[] = [];
  for (let k = 0; lo + k * step <= hi + step * 1e-9; k++) ticks.push(Number((lo + k * step).toFixed(decimals + 2)));
  return { ticks, map: (v) => p0 + ((v - lo) / (hi - lo)) * (p1 - p0), label: (v) => v.toFixed(decimals) };
}

/** Log-10 axis over [min, max] (> 0) with ticks at 1-2-5 multiples of powers of 10. */
function logAxis(min: number, max: number, p0: number, p1: number): Axis {
  const lmin = Math.log10(min);
  const lmax = Math.max(Math.log10(max), lmin + 1e-9);
  const ticks: number[] = [];
  for (let e = Math.floor(lmin); e <= Math.ceil(lmax); e++) {
    for (const f of [1, 2, 5]) {
      const v = f * 10 ** e;
      if (v >= min * (1 - 1e-9) && v <= max * (1 + 1e-9)) ticks.push(v);
    }
  }
  return {
    ticks,
    map: (v) => p0 + ((Math.log10(v) - lmin) / (lmax - lmin)) * (p1 - p0),
    label: (v) => (v >= 1 ? String(Math.round(v)) : String(v)),
  };
}

interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

function frame(width: number, height: number): Frame {
  return { width, height, left: 64, right: width - 16, top: 40, bottom: height - 48 };
}

function n2(v: number): string {
  return (Math.round(v * 100) / 100).toString();
}

/** Axes, grid, tick labels, axis labels and title. */
function axesSvg(f: Frame, xa: Axis, ya: Axis, title: string, xLabel: string, yLabel: string): string[] {
  const s: string[] = [];
  s.push(`<rect x="0" y="0" width="${f.width}" height="${f.height}" fill="white"/>`);
  s.push(`<g stroke="#e5e5e5" stroke-width="1">`);
  for (const t of xa.ticks)
    s.push(`<line x1="${n2(xa.map(t))}" y1="${f.top}" x2="${n2(xa.map(t))}" y2="${f.bottom}"/>`);
  for (const t of ya.ticks)
    s.push(`<line x1="${f.left}" y1="${n2(ya.map(t))}" x2="${f.right}" y2="${n2(ya.map(t))}"/>`);
  s.push(`</g>`);
  s.push(`<g stroke="black" stroke-width="1" fill="none">`);
  s.push(`<line x1="${f.left}" y1="${f.bottom}" x2="${f.right}" y2="${f.bottom}"/>`);
  s.push(`<line x1="${f.left}" y1="${f.top}" x2="${f.left}" y2="${f.bottom}"/>`);
  for (const t of xa.ticks)
    s.push(`<line x1="${n2(xa.map(t))}" y1="${f.bottom}" x2="${n2(xa.map(t))}" y2="${f.bottom + 5}"/>`);
  for (const t of ya.ticks)
    s.push(`<line x1="${f.left - 5}" y1="${n2(ya.map(t))}" x2="${f.left}" y2="${n2(ya.map(t))}"/>`);
  s.push(`</g>`);
  s.push(`<g font-family="sans-serif" font-size="11" fill="black">`);
  for (const t of xa.ticks)
    s.push(`<text x="${n2(xa.map(t))}" y="${f.bottom + 18}" text-anchor="middle">${escapeXml(xa.label(t))}</text>`);
  for (const t of ya.ticks)
    s.push(`<text x="${f.left - 8}" y="${n2(ya.map(t) + 4)}" text-anchor="end">${escapeXml(ya.label(t))}</text>`);
  s.push(
    `<text x="${n2((f.left + f.right) / 2)}" y="${f.height - 10}" text-anchor="middle" font-size="12">${escapeXml(xLabel)}</text>`,
  );
  const cy = n2((f.top + f.bottom) / 2);
  s.push(
    `<text x="14" y="${cy}" text-anchor="middle" font-size="12" transform="rotate(-90 14 ${cy})">${escapeXml(yLabel)}</text>`,
  );
  s.push(
    `<text x="${n2(f.width / 2)}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
  );
  s.push(`</g>`);
  return s;
}

function svgDoc(f: Frame, body: string[]): string {
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${f.width}" height="${f.height}" viewBox="0 0 ${f.width} ${f.height}">`,
    ...body,
    `</svg>`,
    '',
  ].join('\n');
}

export interface ScatterOptions {
  x: readonly number[];
  y: readonly number[];
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
  color?: string;
}

/** A scatter plot as an SVG document string. */
export function scatterPlotSvg(o: ScatterOptions): string {
  checkPaired(o.x, o.y, 'scatterPlotSvg');
  const f = frame(o.width ?? 480, o.height ?? 420);
  const range = (v: readonly number[]): [number, number] => (v.length ? [Math.min(...v), Math.max(...v)] : [0, 1]);
  const xa = linearAxis(...range(o.x), f.left, f.right);
  const ya = linearAxis(...range(o.y), f.bottom, f.top);
  const body = axesSvg(f, xa, ya, o.title, o.xLabel, o.yLabel);
  body.push(`<g fill="${o.color ?? PALETTE[0]}" fill-opacity="0.6" stroke="none">`);
  for (let i = 0; i < o.x.length; i++)
    body.push(`<circle cx="${n2(xa.map(o.x[i]!))}" cy="${n2(ya.map(o.y[i]!))}" r="2.5"/>`);
  body.push(`</g>`);
  return svgDoc(f, body);
}

/** Scatter plot of an objective's accuracy (x) against the reference accuracy (y), ρ in the title. */
export function objectiveScatterSvg(
  rows: readonly ArchAccuracies[],
  objective: string,
  reference = 'cls',
  space = '',
): string {
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

export interface CurveSeries {
  label: string;
  points: readonly RandomExperimentPoint[];
  color?: string;
}

export interface LineChartOptions {
  title: string;
  xLabel?: string;
  yLabel?: string;
  /** Log-scale x axis (default true when every m > 0). */
  logX?: boolean;
  /** What the lines and bands show (default: mean, mean ± 2σ). */
  bandLabel?: string;
  width?: number;
  height?: number;
}

/** Random-experiment curves: mean line with a shaded mean ± 2σ band per series, and a legend. */
export function randomExperimentSvg(series: readonly CurveSeries[], o: LineChartOptions): string {
  const f = frame(o.width ?? 560, o.height ?? 420);
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) throw new Error('randomExperimentSvg: no points');
  const ms = all.map((p) => p.m);
  const logX = o.logX ?? ms.every((m) => m > 0);
  const xa = logX
    ? logAxis(Math.min(...ms), Math.max(...ms), f.left, f.right)
    : linearAxis(Math.min(...ms), Math.max(...ms), f.left, f.right);
  const ya = linearAxis(Math.min(...all.map((p) => p.lo)), Math.max(...all.map((p) => p.hi)), f.bottom, f.top);
  const body = axesSvg(
    f,
    xa,
    ya,
    o.title,
    o.xLabel ?? 'experiment size m (architectures per experiment)',
    o.yLabel ?? 'supervised accuracy of the selected architecture',
  );
  const colors = series.map((s, k) => s.color ?? PALETTE[k % PALETTE.length]!);
  series.forEach((s, k) => {
    const pts = [...s.points].sort((a, b) => a.m - b.m);
    if (pts.length === 0) return;
    const upper = pts.map((p) => `${n2(xa.map(p.m))},${n2(ya.map(p.hi))}`);
    const lower = pts.map((p) => `${n2(xa.map(p.m))},${n2(ya.map(p.lo))}`).reverse();
    body.push(
      `<polygon points="${[...upper, ...lower].join(' ')}" fill="${colors[k]}" fill-opacity="0.12" stroke="none"/>`,
    );
  });
  series.forEach((s, k) => {
    const pts = [...s.points].sort((a, b) => a.m - b.m);
    if (pts.length === 0) return;
    body.push(
      `<polyline points="${pts.map((p) => `${n2(xa.map(p.m))},${n2(ya.map(p.mean))}`).join(' ')}" fill="none" stroke="${colors[k]}" stroke-width="2"/>`,
    );
    for (const p of pts)
      body.push(`<circle cx="${n2(xa.map(p.m))}" cy="${n2(ya.map(p.mean))}" r="3" fill="${colors[k]}"/>`);
  });
  // legend, bottom right (curves rise with m, so that corner is usually empty)
  const lw = 36 + 7 * Math.max(...series.map((s) => s.label.length));
  const lh = 8 + 16 * series.length;
  const lx = f.right - lw - 8;
  const ly0 = f.bottom - lh - 8;
  body.push(
    `<rect x="${n2(lx)}" y="${n2(ly0)}" width="${n2(lw)}" height="${lh}" fill="white" fill-opacity="0.85" stroke="#999999"/>`,
  );
  series.forEach((s, k) => {
    const y = ly0 + 16 + 16 * k;
    body.push(
      `<line x1="${n2(lx + 6)}" y1="${y - 4}" x2="${n2(lx + 26)}" y2="${y - 4}" stroke="${colors[k]}" stroke-width="2"/>`,
    );
    body.push(`<text x="${n2(lx + 32)}" y="${y}" font-family="sans-serif" font-size="11">${escapeXml(s.label)}</text>`);
  });
  body.push(
    `<text x="${n2(f.left + 6)}" y="${f.top + 14}" font-family="sans-serif" font-size="10" fill="#555555">${escapeXml(o.bandLabel ?? 'lines: mean; bands: mean ± 2σ')}</text>`,
  );
  return svgDoc(f, body);
}

/**
 * Writes a study report into `dir`: summary.json, summary.txt,
 * random_experiment.svg and scatter_<objective>.svg for every objective with
 * data (all written atomically). Returns the paths written.
 */
export function writeStudyReport(dir: string, summary: StudySummary, rows: readonly ArchAccuracies[]): string[] {
  mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  const put = (name: string, data: string) => {
    const p = join(dir, name);
    writeFileAtomic(p, data);
    written.push(p);
  };
  put('summary.json', `${JSON.stringify(summary, null, 1)}\n`);
  put('summary.txt', formatSummaryTable(summary));
  const series: CurveSeries[] = [
    ...(summary.referenceCurve.length
      ? [{ label: `${summary.reference} (oracle)`, points: summary.referenceCurve, color: '#000000' }]
      : []),
    ...summary.objectives
      .filter((o) => o.randomExperiment.length)
      .map((o, k) => ({ label: o.objective, points: o.randomExperiment, color: PALETTE[k % PALETTE.length]! })),
  ];
  if (series.length) {
    put(
      'random_experiment.svg',
      randomExperimentSvg(series, { title: `Random experiment${summary.space ? ` (${summary.space})` : ''}` }),
    );
  }
  for (const o of summary.objectives) {
    if (o.n < 1 || !/^[A-Za-z0-9_.-]+$/.test(o.objective)) continue;
    put(`scatter_${o.objective}.svg`, objectiveScatterSvg(rows, o.objective, summary.reference, summary.space));
  }
  return written;
}
