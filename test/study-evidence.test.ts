/**
 * The evidence report of a sample-based study (`nas-onnx study --report-only`)
 * rendered from a small stored result set whose numbers are known by hand:
 * Spearman ρ and Kendall τ of known rankings, percentile-bootstrap intervals
 * that contain their point estimates, the spread of the supervised
 * accuracies, the pretext pair and the seed-noise check (cls under two seeds).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bootstrapInterval, kendallTau, quantile, spearman, type StudySummary } from '../train/study/analysis.js';
import { defaultStudyConfig, openOrCreateStudy, selectArchitectures } from '../train/study/runner.js';
import { runCli } from './helpers/cli-process.js';
import { checkReportHtml } from './helpers/report.js';

const dir = mkdtempSync(join(tmpdir(), 'nas-onnx-evidence-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('bootstrap intervals', () => {
  it('quantiles interpolate as numpy.quantile', () => {
    expect(quantile([1, 2, 3, 4], 0.25)).toBeCloseTo(1.75, 12);
    expect(quantile([1, 2, 3, 4], 0.5)).toBeCloseTo(2.5, 12);
    expect(quantile([1, 2, 3, 4], 1)).toBe(4);
    expect(quantile([7], 0.975)).toBe(7);
  });

  it('a perfect ranking gives [1, 1]; a noisy one an interval around ρ, reproducible per seed', () => {
    const x = Array.from({ length: 12 }, (_, i) => i);
    expect(bootstrapInterval(x, x, spearman)).toMatchObject({ lo: 1, hi: 1 });
    const y = [3, 0, 1, 5, 2, 4, 9, 6, 11, 7, 8, 10];
    const rho = spearman(x, y);
    const c = bootstrapInterval(x, y, spearman, { resamples: 1000, seed: 3 });
    expect(c.lo).toBeLessThan(rho);
    expect(c.hi).toBeGreaterThan(rho);
    expect(c.lo).toBeGreaterThan(0); // ρ ≈ 0.85 on 12 points is far from 0
    expect(c.hi).toBeLessThanOrEqual(1);
    expect(c.resamples).toBe(1000);
    expect(bootstrapInterval(x, y, spearman, { resamples: 1000, seed: 3 })).toEqual(c);
    expect(bootstrapInterval(x, y, spearman, { resamples: 1000, seed: 4 })).not.toEqual(c);
    // a wider coverage gives a wider interval
    const w = bootstrapInterval(x, y, spearman, { resamples: 1000, seed: 3, level: 0.99 });
    expect(w.lo).toBeLessThanOrEqual(c.lo);
    expect(w.hi).toBeGreaterThanOrEqual(c.hi);
    // too few pairs for an interval
    expect(bootstrapInterval([1, 2], [2, 1], spearman).lo).toBeNaN();
  });
});

/** A study of 10 pool architectures with accuracies set by hand (no training). */
function storedStudy(out: string) {
  const archs = selectArchitectures('darts', { source: 'pool', count: 10 });
  const store = openOrCreateStudy(out, {
    config: { ...defaultStudyConfig('darts'), limit: 64 },
    archs,
    objectives: ['cls', 'rot', 'jig'],
    seeds: [0],
    clsSeeds: [0, 1],
    archSource: { source: 'pool', count: 10 },
  });
  // cls seed 0: 0.60, 0.62, …, 0.78; seed 1 the same but arch 1 at 0.65 (above arch 2): the mean keeps
  // the seed-0 order (0.635 < 0.64). rot: adjacent pairs swapped; jig: the cls order exactly.
  const rotRank = [2, 1, 4, 3, 6, 5, 8, 7, 10, 9];
  archs.forEach((a, i) => {
    const cls0 = 0.6 + 0.02 * i;
    store.recordResult(`${a.archId}-cls-s0`, { accuracy: cls0 });
    store.recordResult(`${a.archId}-cls-s1`, { accuracy: i === 1 ? 0.65 : cls0 });
    store.recordResult(`${a.archId}-rot-s0`, { accuracy: 0.3 + 0.05 * rotRank[i]! });
    store.recordResult(`${a.archId}-jig-s0`, { accuracy: 0.5 + 0.01 * i });
  });
  return store;
}

describe('nas-onnx study --report-only on a stored result set', () => {
  it('reports ρ, τ and their intervals, the spread, the pair and the seed check, with the charts', async () => {
    const out = join(dir, 'study');
    storedStudy(out);
    const r = await runCli(['study', '--out', out, '--report-only'], { cwd: dir });
    expect(r.code).toBe(0);
    const s = JSON.parse(readFileSync(join(out, 'report', 'summary.json'), 'utf8')) as StudySummary;
    const n = 10;
    // rot: 5 adjacent swaps → Σd² = 10, ρ = 1 − 6·10/(n(n²−1)); 5 discordant pairs of 45 → τ = 35/45
    const rot = s.objectives.find((o) => o.objective === 'rot')!;
    expect(rot.n).toBe(n);
    expect(rot.spearman).toBeCloseTo(1 - 60 / (n * (n * n - 1)), 12);
    expect(rot.kendall).toBeCloseTo(35 / 45, 12);
    for (const [v, c] of [
      [rot.spearman, rot.spearmanCI],
      [rot.kendall, rot.kendallCI],
    ] as const) {
      expect(c.lo).toBeLessThanOrEqual(v);
      expect(c.hi).toBeGreaterThanOrEqual(v);
      expect(c.lo).toBeLessThan(c.hi);
    }
    const jig = s.objectives.find((o) => o.objective === 'jig')!;
    expect([jig.spearman, jig.kendall, jig.spearmanCI.lo, jig.spearmanCI.hi]).toEqual([1, 1, 1, 1]);
    expect(s.pairs).toHaveLength(1);
    expect(s.pairs[0]).toMatchObject({ a: 'jig', b: 'rot' });
    expect(s.pairs[0]!.spearman).toBeCloseTo(rot.spearman, 12);
    // the reference is the mean over the two seeds: 0.60 … 0.78, arch 1 at 0.635
    expect(s.spread).toMatchObject({ n, min: 0.6, max: 0.78 });
    expect(s.spread.mean).toBeCloseTo((0.6 * 10 + 0.02 * 45 + 0.015) / 10, 12);
    // seed check: one swap between seeds → Σd² = 2
    const sc = s.seedCheck!;
    expect(sc.seeds).toEqual([0, 1]);
    expect(sc.agreement.spearman).toBeCloseTo(1 - 12 / (n * (n * n - 1)), 12);
    expect(sc.agreement.kendall).toBeCloseTo(43 / 45, 12);
    expect(sc.agreement.spearmanCI.lo).toBeLessThanOrEqual(sc.agreement.spearman);
    const byRot = sc.byObjective.filter((o) => o.objective === 'rot').map((o) => o.spearman);
    expect(byRot[0]).toBeCloseTo(rot.spearman, 12);
    expect(byRot[1]).toBeCloseTo(spearman([2, 1, 4, 3, 6, 5, 8, 7, 10, 9], [1, 3, 2, 4, 5, 6, 7, 8, 9, 10]), 12);
    expect(kendallTau([1, 2], [1, 2])).toBe(1);

    const html = readFileSync(join(out, 'report', 'report.html'), 'utf8');
    checkReportHtml(html, ['summary', 'scatter', 'random', 'text', 'config']);
    expect(html).toContain('ρ 95% CI');
    expect(html).toContain('Seed noise');
    expect((html.match(/<svg/g) ?? []).length).toBe(4); // scatter rot, jig, cls seeds; random experiment
    const txt = readFileSync(join(out, 'report', 'summary.txt'), 'utf8');
    expect(txt).toMatch(/^rot\s+10\s+0\.939\s+\[0\.\d{3}, (0\.\d{3}|1\.000)\]\s+0\.778/m);
    expect(r.stdout).toContain(txt.split('\n')[0]!);
  }, 600_000);
});
