import { describe, expect, it } from 'vitest';
import { checkReportHtml } from './helpers/report.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../graph/rng.js';
import {
  aggregateAccuracies,
  averageRanks,
  buildStudySummary,
  defaultExperimentSizes,
  formatSummaryTable,
  kendallTau,
  objectiveScatterSvg,
  pearson,
  randomExperiment,
  randomExperimentSvg,
  scatterPlotSvg,
  spearman,
  writeStudyReport,
  type ArchAccuracies,
} from '../train/study/analysis.js';
import type { TrialResult } from '../train/study/store.js';

describe('correlations', () => {
  it('average ranks handle ties (scipy.stats.rankdata)', () => {
    expect(averageRanks([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5])).toEqual([4.5, 1.5, 6, 1.5, 8, 11, 3, 10, 8, 4.5, 8]);
    expect(averageRanks([10, 20, 20, 30])).toEqual([1, 2.5, 2.5, 4]);
    expect(averageRanks([])).toEqual([]);
  });

  it('Spearman with ties matches a hand computation', () => {
    // x ranks [1, 2.5, 2.5, 4, 5], y ranks [1, 3, 2, 5, 4]; deviations from 3:
    // Σdxdy = 4 + 0 + 0.5 + 2 + 2 = 8.5, Σdx² = 9.5, Σdy² = 10 → ρ = 8.5 / √95
    const x = [10, 20, 20, 30, 40];
    const y = [1, 3, 2, 5, 4];
    expect(spearman(x, y)).toBeCloseTo(8.5 / Math.sqrt(95), 12);
    expect(spearman(x, y)).toBeCloseTo(0.8720815992723809, 12); // scipy.stats.spearmanr
    expect(kendallTau(x, y)).toBeCloseTo(0.7378647873726218, 12); // scipy.stats.kendalltau (τ-b)
    expect(pearson(x, y)).toBeCloseTo(0.8320502943378437, 12);
  });

  it('matches scipy on examples with ties in both variables', () => {
    const x = [1, 1, 2, 2, 3, 3, 4, 5, 5, 5];
    const y = [2, 1, 2, 3, 3, 5, 4, 4, 6, 6];
    expect(spearman(x, y)).toBeCloseTo(0.8903215036738585, 12);
    expect(kendallTau(x, y)).toBeCloseTo(0.8002501172485685, 12);
    expect(pearson(x, y)).toBeCloseTo(0.8703502707267547, 12);
    const a = [0.91, 0.85, 0.88, 0.93, 0.8, 0.85, 0.9, 0.87];
    const b = [0.62, 0.55, 0.61, 0.7, 0.5, 0.58, 0.61, 0.57];
    expect(spearman(a, b)).toBeCloseTo(0.9518072289156626, 12);
    expect(kendallTau(a, b)).toBeCloseTo(0.8888888888888888, 12);
    expect(pearson(a, b)).toBeCloseTo(0.9418464538245411, 12);
  });

  it('known values: monotone → ±1, rank invariance, degenerate → NaN', () => {
    const x = [1, 2, 3, 4, 5, 6];
    expect(
      spearman(
        x,
        x.map((v) => v ** 3),
      ),
    ).toBe(1);
    expect(
      spearman(
        x,
        x.map((v) => -Math.exp(v)),
      ),
    ).toBe(-1);
    expect(
      kendallTau(
        x,
        x.map((v) => Math.log(v)),
      ),
    ).toBe(1);
    expect(
      pearson(
        x,
        x.map((v) => 2 * v + 1),
      ),
    ).toBeCloseTo(1, 14);
    // Spearman only sees ranks
    const y = [3, 1, 4, 1, 5, 9];
    expect(
      spearman(
        x.map((v) => v * v),
        y.map((v) => v + 100),
      ),
    ).toBeCloseTo(spearman(x, y), 14);
    expect(spearman([1, 1, 1], [1, 2, 3])).toBeNaN();
    expect(pearson([1], [2])).toBeNaN();
    expect(() => spearman([1, 2], [1])).toThrow(/length/);
    expect(() => pearson([1, NaN], [1, 2])).toThrow(/non-finite/);
  });
});

describe('random experiment', () => {
  const rng = new Rng(99);
  const n = 60;
  const sup = Array.from({ length: n }, () => 0.8 + 0.15 * rng.next());

  it('uses ⌈n/m⌉ draws and reports mean ± 2σ', () => {
    const pts = randomExperiment(sup, sup, [1, 7, 60], 0);
    expect(pts.map((p) => p.draws)).toEqual([60, 9, 1]);
    for (const p of pts) {
      expect(p.lo).toBeCloseTo(p.mean - 2 * p.std, 14);
      expect(p.hi).toBeCloseTo(p.mean + 2 * p.std, 14);
    }
  });

  it('objective == supervised: m = n picks the global max; means grow with m', () => {
    const pts = randomExperiment(sup, sup, [1, 2, 5, 10, 20, 60], 1);
    const last = pts[pts.length - 1]!;
    expect(last.mean).toBe(Math.max(...sup));
    expect(last.std).toBe(0);
    // selecting by the true accuracy: every point is at least the mean of all architectures' accuracies (in expectation)
    expect(pts[3]!.mean).toBeGreaterThan(pts[0]!.mean);
    // with objective = −supervised the worst is picked
    const worst = randomExperiment(
      sup.map((v) => -v),
      sup,
      [60],
      1,
    )[0]!;
    expect(worst.mean).toBe(Math.min(...sup));
  });

  it('objective == supervised: the mean matches the exact expectation of the max of m draws without replacement', () => {
    // E[max of a uniform m-subset] = Σ_k v_(k) · C(k−1, m−1) / C(n, m) over sorted values.
    const m = 5;
    const nn = 20;
    const vals = Array.from({ length: nn }, (_, i) => i + 1); // 1..20
    const choose = (a: number, b: number) => {
      let r = 1;
      for (let i = 0; i < b; i++) r = (r * (a - i)) / (i + 1);
      return r;
    };
    let exact = 0;
    for (let k = m; k <= nn; k++) exact += k * (choose(k - 1, m - 1) / choose(nn, m));
    // exact = m(n+1)/(m+1) = 17.5
    expect(exact).toBeCloseTo(17.5, 10);
    const draws = 20000;
    const p = randomExperiment(vals, vals, [m], 4, { draws: () => draws })[0]!;
    expect(p.draws).toBe(draws);
    expect(Math.abs(p.mean - exact)).toBeLessThan((4 * p.std) / Math.sqrt(draws));
    // the std matches the exact one too (Var = m(n−m)(n+1)/((m+1)²(m+2)))
    const exactStd = Math.sqrt((m * (nn - m) * (nn + 1)) / ((m + 1) ** 2 * (m + 2)));
    expect(Math.abs(p.std - exactStd) / exactStd).toBeLessThan(0.05);
  });

  it('a constant objective selects a uniformly random architecture', () => {
    const vals = Array.from({ length: 10 }, (_, i) => i);
    const p = randomExperiment(new Array(10).fill(0.5), vals, [4], 2, { draws: () => 20000 })[0]!;
    expect(Math.abs(p.mean - 4.5)).toBeLessThan(0.1);
  });

  it('is reproducible by seed and a point does not depend on the other sizes', () => {
    const obj = sup.map((v, i) => v + 0.05 * Math.sin(i));
    const a = randomExperiment(obj, sup, [3, 10], 5);
    expect(randomExperiment(obj, sup, [3, 10], 5)).toEqual(a);
    expect(randomExperiment(obj, sup, [10], 5)[0]).toEqual(a[1]);
    expect(randomExperiment(obj, sup, [3], 6)[0]).not.toEqual(a[0]);
    expect(() => randomExperiment(obj, sup, [61], 5)).toThrow(/size/);
  });

  it('default sizes', () => {
    expect(defaultExperimentSizes(500)).toEqual([1, 2, 5, 10, 20, 50, 100, 200, 500]);
    expect(defaultExperimentSizes(60)).toEqual([1, 2, 5, 10, 20, 50, 60]);
    expect(defaultExperimentSizes(1)).toEqual([1]);
  });
});

function syntheticRows(n: number): ArchAccuracies[] {
  const rng = new Rng(8);
  return Array.from({ length: n }, (_, i) => {
    const cls = 0.85 + 0.1 * rng.next();
    const acc: Record<string, number> = {
      cls,
      rot: 0.5 + 2 * (cls - 0.85),
      col: 1 - cls,
      jig: cls + 0.03 * rng.normal(),
    };
    if (i % 4 === 0) delete acc.jig;
    return { arch: `a${i}`, acc };
  });
}

describe('summary and reports', () => {
  it('aggregates trial results over seeds', () => {
    const mk = (archId: string, objective: string, seed: number, accuracy: number): TrialResult => ({
      trialId: `${archId}-${objective}-s${seed}`,
      archId,
      objective,
      seed,
      metrics: { accuracy, loss: 1 },
      finishedAt: '',
    });
    const rows = aggregateAccuracies([
      mk('a', 'cls', 0, 0.9),
      mk('a', 'cls', 1, 0.8),
      mk('a', 'rot', 0, 0.5),
      mk('b', 'cls', 0, 0.7),
    ]);
    expect(rows).toEqual([
      { arch: 'a', acc: { cls: expect.closeTo(0.85, 12), rot: 0.5 } },
      { arch: 'b', acc: { cls: 0.7 } },
    ]);
    expect(aggregateAccuracies([mk('a', 'cls', 0, 0.9)], 'loss')).toEqual([{ arch: 'a', acc: { cls: 1 } }]);
  });

  it('builds the summary, its JSON and the text table', () => {
    const rows = syntheticRows(40);
    const s = buildStudySummary(rows, { space: 'darts', seed: 3 });
    expect(s.nArchs).toBe(40);
    expect(s.objectives.map((o) => o.objective)).toEqual(['col', 'jig', 'rot']);
    const by = Object.fromEntries(s.objectives.map((o) => [o.objective, o]));
    expect(by.rot!.spearman).toBeCloseTo(1, 12);
    expect(by.rot!.kendall).toBeCloseTo(1, 12);
    expect(by.col!.spearman).toBeCloseTo(-1, 12);
    expect(by.jig!.n).toBe(30);
    expect(by.jig!.spearman).toBeGreaterThan(0.3);
    // rot ranks exactly like cls, so its curve equals the oracle curve
    expect(by.rot!.randomExperiment).toEqual(s.referenceCurve);
    expect(s.referenceCurve.map((p) => p.m)).toEqual([1, 2, 5, 10, 20, 40]);
    const json = JSON.parse(JSON.stringify(s)) as typeof s;
    expect(json.objectives[0]!.randomExperiment.length).toBe(6);
    const txt = formatSummaryTable(s);
    expect(txt).toMatch(/Sample-based study \(darts\): 40 architectures/);
    expect(txt).toMatch(/^rot\s+40\s+1\.000\s+\[1\.000, 1\.000\]\s+1\.000\s+\[1\.000, 1\.000\]/m);
    expect(txt).toMatch(/^col\s+40\s+-1\.000\s+\[-1\.000, -1\.000\]/m);
    expect(txt).toMatch(/^40\s+1\s/m);
    expect(txt).toMatch(/^ 1\s+40\s/m); // numeric first column right-aligned
  });

  it('draws the study charts as well-formed SVG (Vega-Lite, headless)', async () => {
    const rows = syntheticRows(40);
    const svg = await objectiveScatterSvg(rows, 'jig', 'cls', 'darts');
    expect(svg).toMatch(/^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    // one circle per architecture that has both accuracies
    expect(svg.match(/aria-roledescription="circle"/g)).toHaveLength(30);
    expect(svg).toMatch(/jig vs cls \(ρ = 0\.\d{3}, n = 30\)/);
    expect(svg).not.toMatch(/NaN|undefined|Infinity/);
    // every opened group is closed
    expect(svg.match(/<g[ >]/g)!.length).toBe(svg.match(/<\/g>/g)!.length);

    const s = buildStudySummary(rows);
    const line = await randomExperimentSvg(
      [
        { label: 'cls <oracle>', points: s.referenceCurve },
        { label: 'jig', points: s.objectives[1]!.randomExperiment },
      ],
      { title: 'Random experiment & more' },
    );
    // a band (area) and a mean line per series, their points, and the legend
    expect(line.match(/aria-roledescription="area mark"/g)).toHaveLength(2);
    expect(line.match(/aria-roledescription="line mark"/g)).toHaveLength(2);
    expect(line).toContain('cls &lt;oracle&gt;');
    expect(line).toContain('Random experiment &amp; more');
    expect(line).not.toMatch(/NaN|undefined|Infinity/);
    // degenerate inputs still give a valid chart
    const flat = await scatterPlotSvg({ x: [1, 1], y: [2, 2], title: 't', xLabel: 'x', yLabel: 'y' });
    expect(flat).not.toMatch(/NaN|Infinity/);
    expect(await scatterPlotSvg({ x: [], y: [], title: 't', xLabel: 'x', yLabel: 'y' })).not.toMatch(/NaN|Infinity/);
  });

  it('writeStudyReport writes summary.json, summary.txt, the charts and report.html', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'study-report-'));
    try {
      const rows = syntheticRows(20);
      const s = buildStudySummary(rows, { space: 'nb101' });
      const files = (await writeStudyReport(dir, s, rows)).map((p) => p.slice(dir.length + 1)).sort();
      expect(files).toEqual([
        'random_experiment.svg',
        'report.html',
        'scatter_col.svg',
        'scatter_jig.svg',
        'scatter_rot.svg',
        'summary.json',
        'summary.txt',
      ]);
      expect(JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8'))).toMatchObject({ space: 'nb101', nArchs: 20 });
      // one offline page with the same charts
      const html = readFileSync(join(dir, 'report.html'), 'utf8');
      checkReportHtml(html, ['summary', 'scatter', 'random', 'text']);
      // a point per architecture and objective that has both accuracies
      expect(html.match(/aria-roledescription="circle"/g)).toHaveLength(s.objectives.reduce((a, o) => a + o.n, 0));
      expect(html).toContain('Random experiment (nb101)');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
