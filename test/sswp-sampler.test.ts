/**
 * SSWP-NAS sampling (train/search/sswp/sampler.ts): two-path and full distributions,
 * the α-gradient estimator, op dropout, rescaling; and the phase schedule
 * (train/search/sswp/schedule.ts). Pure host code: fast.
 */
import { describe, expect, it } from 'vitest';
import { Rng } from '../graph/rng.js';
import { EDGES } from '../graph/genotype.js';
import { NUM_OPS, PARAMETRIC_OPS, POOL_OPS, SKIP_OP, SSWP_OPS } from '../graph/nets/sswp.js';
import {
  addAlphaGrad,
  alphaGradients,
  rescaleInvolved,
  runMask,
  sampleEdge,
  sampleGates,
  softmaxAt,
  twoPathActiveProbs,
} from '../train/search/sswp/sampler.js';
import { makeSchedule, phaseOf } from '../train/search/sswp/schedule.js';

const ALPHA = Float32Array.from([0.3, -0.5, 1.1, 0.8, -0.2, 0.0, 0.5]);

/** Pearson χ² of observed counts against expected probabilities. */
function chi2(counts: number[], probs: number[], n: number): number {
  return counts.reduce((s, c, k) => s + (c - n * probs[k]!) ** 2 / (n * probs[k]!), 0);
}
// χ² critical value, 6 degrees of freedom, p = 0.001
const CHI2_6_999 = 22.46;

describe('SSWP sampler', () => {
  it('draws two-path active ops with the expected probabilities (χ²)', () => {
    const rng = new Rng(11);
    const n = 40_000;
    const counts = new Array<number>(NUM_OPS).fill(0);
    let malformed = 0;
    for (let t = 0; t < n; t++) {
      const s = sampleEdge(rng, ALPHA, 0, 'two-path', null);
      if (s.involved.length !== 2 || s.involved[0] !== s.active || s.involved[1] === s.active) malformed++;
      counts[s.active]!++;
    }
    expect(malformed).toBe(0);
    const want = twoPathActiveProbs(ALPHA);
    expect(want.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    expect(chi2(counts, want, n)).toBeLessThan(CHI2_6_999);
    // two-path flattens softmax(α): it is not the full-mode distribution
    const p = softmaxAt(ALPHA, 0, NUM_OPS);
    expect(Math.abs(want[2]! - p[2]!)).toBeGreaterThan(0.02);
  });

  it('draws the two-path pairs with the probabilities of sampling without replacement', () => {
    const rng = new Rng(5);
    const n = 30_000;
    const p = softmaxAt(ALPHA, 0, NUM_OPS);
    const pairCounts = new Map<string, number>();
    for (let t = 0; t < n; t++) {
      const s = sampleEdge(rng, ALPHA, 0, 'two-path', null);
      const key = [...s.involved].sort().join(',');
      pairCounts.set(key, (pairCounts.get(key) ?? 0) + 1);
    }
    const keys: string[] = [];
    const probs: number[] = [];
    for (let a = 0; a < NUM_OPS; a++) {
      for (let b = a + 1; b < NUM_OPS; b++) {
        keys.push(`${a},${b}`);
        probs.push((p[a]! * p[b]!) / (1 - p[a]!) + (p[b]! * p[a]!) / (1 - p[b]!));
      }
    }
    const stat = chi2(
      keys.map((k) => pairCounts.get(k) ?? 0),
      probs,
      n,
    );
    expect(stat).toBeLessThan(50); // 20 dof, p ≈ 0.0002
  });

  it('draws full-mode active ops from softmax(α), every op involved', () => {
    const rng = new Rng(3);
    const n = 30_000;
    const counts = new Array<number>(NUM_OPS).fill(0);
    let malformed = 0;
    for (let t = 0; t < n; t++) {
      const s = sampleEdge(rng, ALPHA, 0, 'full', null);
      if (s.involved.join() !== '0,1,2,3,4,5,6') malformed++;
      counts[s.active]!++;
    }
    expect(malformed).toBe(0);
    expect(chi2(counts, softmaxAt(ALPHA, 0, NUM_OPS), n)).toBeLessThan(CHI2_6_999);
  });

  it('is a pure function of the seed (reproducible and resumable paths)', () => {
    const alphas = Array.from({ length: 3 }, (_, i) =>
      Float32Array.from({ length: EDGES * NUM_OPS }, (_, k) => Math.sin(k + i)),
    );
    const a = sampleGates(Rng.derive(7, 0x55a9, 12, 1), alphas, [true, false, true], 'two-path', {
      skip: 0.2,
      pool: 0,
    });
    const b = sampleGates(Rng.derive(7, 0x55a9, 12, 1), alphas, [true, false, true], 'two-path', {
      skip: 0.2,
      pool: 0,
    });
    expect(Array.from(a.gates)).toEqual(Array.from(b.gates));
    // one gate per edge of gated cells, none in the others
    for (let i = 0; i < 3; i++) {
      const row = a.gates.subarray(i * EDGES * NUM_OPS, (i + 1) * EDGES * NUM_OPS);
      expect(row.reduce((s, v) => s + v, 0)).toBe(i === 1 ? 0 : EDGES);
    }
    expect(a.edges[1]).toBeNull();
  });

  it('runMask: the active op per edge (w steps) or every involved op (α steps), gated cells only', () => {
    const rng = new Rng(11);
    const alphas = [0, 1, 2].map(() => Float32Array.from({ length: EDGES * NUM_OPS }, () => rng.normal()));
    for (const mode of ['two-path', 'full'] as const) {
      const s = sampleGates(new Rng(12), alphas, [true, false, true], mode, null);
      const active = runMask(s, 'active');
      const involved = runMask(s, 'involved');
      expect(Array.from(active)).toEqual(Array.from(s.gates, (v) => (v ? 1 : 0)));
      for (let c = 0; c < 3; c++) {
        for (let e = 0; e < EDGES; e++) {
          const row = Array.from(involved.subarray((c * EDGES + e) * NUM_OPS, (c * EDGES + e + 1) * NUM_OPS));
          const want = c === 1 ? 0 : mode === 'full' ? NUM_OPS : 2;
          expect(row.reduce((a, b) => a + b, 0)).toBe(want);
          if (c !== 1) for (const k of s.edges[c]![e]!.involved) expect(row[k]).toBe(1);
        }
      }
    }
  });
  it('op dropout redraws skip_connect among parametric ops at rate 0.2 × P(skip drawn), weight steps only', () => {
    const alpha = Float32Array.from([0.0, 0.0, 1.5, 0.0, 0.0, 0.0, 0.0]); // skip favoured
    const p = softmaxAt(alpha, 0, NUM_OPS);
    const pSkipInPair = p.reduce((s, pa, a) => (a === SKIP_OP ? s + pa : s + (pa * p[SKIP_OP]!) / (1 - pa)), 0);
    const n = 40_000;
    const rng = new Rng(21);
    let dropped = 0;
    let skipActive = 0;
    let droppedHasSkipOrPool = 0;
    for (let t = 0; t < n; t++) {
      const s = sampleEdge(rng, alpha, 0, 'two-path', { skip: 0.2, pool: 0 });
      if (s.dropped) {
        dropped++;
        if (s.involved.some((k) => !PARAMETRIC_OPS.includes(k))) droppedHasSkipOrPool++;
      }
      if (s.active === SKIP_OP) skipActive++;
    }
    const se = (q: number) => 4 * Math.sqrt((q * (1 - q)) / n);
    expect(Math.abs(dropped / n - 0.2 * pSkipInPair)).toBeLessThan(se(0.2 * pSkipInPair));
    expect(droppedHasSkipOrPool).toBe(0);
    const pSkipActive = twoPathActiveProbs(alpha)[SKIP_OP]!;
    expect(Math.abs(skipActive / n - 0.8 * pSkipActive)).toBeLessThan(se(0.8 * pSkipActive));
    // full mode: the sampled op itself
    let fullDropped = 0;
    for (let t = 0; t < n; t++) if (sampleEdge(rng, alpha, 0, 'full', { skip: 0.2, pool: 0 }).dropped) fullDropped++;
    expect(Math.abs(fullDropped / n - 0.2 * p[SKIP_OP]!)).toBeLessThan(se(0.2 * p[SKIP_OP]!));
    // pools are left alone by default, and redrawn when asked to
    let poolDrops = 0;
    for (let t = 0; t < n / 4; t++)
      if (sampleEdge(rng, Float32Array.from([2, 2, -9, -9, -9, -9, -9]), 0, 'full', { skip: 0.2, pool: 0 }).dropped)
        poolDrops++;
    expect(poolDrops).toBe(0);
    let poolActive = 0;
    for (let t = 0; t < n / 4; t++)
      if (
        POOL_OPS.includes(
          sampleEdge(rng, Float32Array.from([2, 2, -9, -9, -9, -9, -9]), 0, 'full', { skip: 0, pool: 1 }).active,
        )
      )
        poolActive++;
    expect(poolActive).toBe(0);
    // α steps sample without dropout: the undropped distribution
    const counts = new Array<number>(NUM_OPS).fill(0);
    for (let t = 0; t < n; t++) counts[sampleEdge(rng, alpha, 0, 'two-path', null).active]!++;
    expect(chi2(counts, twoPathActiveProbs(alpha), n)).toBeLessThan(CHI2_6_999);
  });
});

describe('SSWP α-gradient estimator', () => {
  it('matches the chain rule through softmax over the involved ops (direct computation from gate gradients)', () => {
    const gg = Float32Array.from([0.7, -1.2, 0.4, 2.0, -0.3, 0.9, -0.6]);
    for (const involved of [
      [3, 1],
      [1, 3],
      [0, 1, 2, 3, 4, 5, 6],
      [6, 2],
    ]) {
      const out = new Float32Array(NUM_OPS);
      addAlphaGrad(out, ALPHA, gg, 0, involved);
      // f(α) = Σ_j gg_j · softmax(α_involved)_j: its exact gradient, by central differences in float64
      const f = (a: number[]): number => {
        const p = softmaxAt(
          involved.map((k) => a[k]!),
          0,
          involved.length,
        );
        return involved.reduce((s, k, j) => s + gg[k]! * p[j]!, 0);
      };
      const base = Array.from(ALPHA);
      for (let k = 0; k < NUM_OPS; k++) {
        const h = 1e-6;
        const up = base.slice();
        const dn = base.slice();
        up[k]! += h;
        dn[k]! -= h;
        const fd = (f(up) - f(dn)) / (2 * h);
        expect(out[k]).toBeCloseTo(fd, 5);
        if (!involved.includes(k)) expect(out[k]).toBe(0);
      }
    }
  });

  it('full mode: equals the exact gradient of the expected loss (brute force over all paths, loss linear in the gates)', () => {
    // one edge, L(g) = Σ_k g_k c_k: E_α[L] = Σ_k softmax(α)_k c_k; ∂L/∂g = c whatever the sample
    const c = [0.5, -1.0, 2.0, 0.1, -0.4, 1.3, 0.0];
    const expected = (a: number[]): number => softmaxAt(a, 0, NUM_OPS).reduce((s, p, k) => s + p * c[k]!, 0);
    const rng = new Rng(9);
    const s = sampleEdge(rng, ALPHA, 0, 'full', null);
    const est = new Float32Array(NUM_OPS);
    addAlphaGrad(est, ALPHA, Float32Array.from(c), 0, s.involved);
    for (let k = 0; k < NUM_OPS; k++) {
      const up = Array.from(ALPHA);
      const dn = Array.from(ALPHA);
      up[k]! += 1e-6;
      dn[k]! -= 1e-6;
      expect(est[k]).toBeCloseTo((expected(up) - expected(dn)) / 2e-6, 5);
    }
  });

  it('two-path mode: the mean estimate over sampled pairs equals its brute-force expectation over all pairs', () => {
    const c = Float32Array.from([0.5, -1.0, 2.0, 0.1, -0.4, 1.3, 0.0]);
    const p = softmaxAt(ALPHA, 0, NUM_OPS);
    // brute force: Σ over ordered draws (a then b) and active choice; the estimate depends on the pair only
    const exact = new Float64Array(NUM_OPS);
    for (let a = 0; a < NUM_OPS; a++) {
      for (let b = 0; b < NUM_OPS; b++) {
        if (a === b) continue;
        const pr = (p[a]! * p[b]!) / (1 - p[a]!);
        const g = new Float32Array(NUM_OPS);
        addAlphaGrad(g, ALPHA, c, 0, [a, b]);
        for (let k = 0; k < NUM_OPS; k++) exact[k] = exact[k]! + pr * g[k]!;
      }
    }
    const rng = new Rng(13);
    const n = 40_000;
    const mean = new Float64Array(NUM_OPS);
    for (let t = 0; t < n; t++) {
      const s = sampleEdge(rng, ALPHA, 0, 'two-path', null);
      const g = new Float32Array(NUM_OPS);
      addAlphaGrad(g, ALPHA, c, 0, s.involved);
      for (let k = 0; k < NUM_OPS; k++) mean[k] = mean[k]! + g[k]! / n;
    }
    for (let k = 0; k < NUM_OPS; k++) expect(Math.abs(mean[k]! - exact[k]!)).toBeLessThan(0.01);
    // and it points the way the expected loss grows: positive correlation with the exact full gradient
    const full = p.map((pk, k) => pk * (c[k]! - p.reduce((s, q, j) => s + q * c[j]!, 0)));
    expect(full.reduce((s, v, k) => s + v * exact[k]!, 0)).toBeGreaterThan(0);
  });

  it('maps gate gradients of every gated cell and edge, and rescales the involved α', () => {
    const alphas = [
      Float32Array.from({ length: EDGES * NUM_OPS }, (_, k) => Math.cos(k)),
      Float32Array.from({ length: EDGES * NUM_OPS }, (_, k) => Math.sin(k)),
    ];
    const sample = sampleGates(new Rng(1), alphas, [true, false], 'two-path', null);
    const gg = Float32Array.from({ length: 2 * EDGES * NUM_OPS }, (_, k) => Math.sin(3 * k));
    const grads = alphaGradients(alphas, gg, sample);
    expect(grads[1]).toBeNull();
    for (let e = 0; e < EDGES; e++) {
      const want = new Float32Array(NUM_OPS * EDGES);
      addAlphaGrad(want, alphas[0]!, gg, e * NUM_OPS, sample.edges[0]![e]!.involved);
      for (let k = 0; k < NUM_OPS; k++) expect(grads[0]![e * NUM_OPS + k]).toBeCloseTo(want[e * NUM_OPS + k]!, 6);
    }
    // rescaling keeps Σ exp over the involved ops, hence the others' probabilities
    const before = Float32Array.from(ALPHA);
    const after = Float32Array.from(ALPHA);
    after[2]! += 0.3;
    after[5]! -= 0.1;
    rescaleInvolved(after, before, 0, [2, 5]);
    expect(Math.exp(after[2]!) + Math.exp(after[5]!)).toBeCloseTo(Math.exp(before[2]!) + Math.exp(before[5]!), 5);
    const pb = softmaxAt(before, 0, NUM_OPS);
    const pa = softmaxAt(after, 0, NUM_OPS);
    for (const k of [0, 1, 3, 4, 6]) expect(pa[k]).toBeCloseTo(pb[k]!, 6);
    expect(pa[2]! > pb[2]!).toBe(true);
  });

  it('has the 7 DARTS ops without none', () => {
    expect(SSWP_OPS).toEqual([
      'max_pool_3x3',
      'avg_pool_3x3',
      'skip_connect',
      'sep_conv_3x3',
      'sep_conv_5x5',
      'dil_conv_3x3',
      'dil_conv_5x5',
    ]);
    expect(PARAMETRIC_OPS).toEqual([3, 4, 5, 6]);
  });
});

describe('SSWP phase schedule', () => {
  it('FPP [0.2, 0.4, 0.4]: prunes cells 0, 1, … every T = E·0.4/L epochs from the input side', () => {
    // 300 epochs, 20 cells: T = 6 epochs, pruning from epoch 180 to 294
    const s = makeSchedule({ epochs: 300, stepsPerEpoch: 10, layers: 20, prune: 'fpp' });
    expect(s.warmupEnd).toBe(600);
    expect(s.bilevelEnd).toBe(1800);
    expect(s.intervalEpochs).toBe(6);
    expect(s.inSteps).toBe(false);
    expect(s.order).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(s.pruneAt).toEqual(Array.from({ length: 20 }, (_, i) => 1800 + 60 * i));
    expect(phaseOf(s, 'fpp', 0)).toBe('warmup');
    expect(phaseOf(s, 'fpp', 599)).toBe('warmup');
    expect(phaseOf(s, 'fpp', 600)).toBe('bilevel');
    expect(phaseOf(s, 'fpp', 1799)).toBe('bilevel');
    expect(phaseOf(s, 'fpp', 1800)).toBe('fpp');
    expect(phaseOf(s, 'fpp', 2999)).toBe('fpp');
  });

  it('FPP with T < 1 epoch prunes in steps', () => {
    // 5 epochs × 6 steps, 3 cells: T = 5·0.4/3 = 2/3 epoch = 4 steps
    const s = makeSchedule({ epochs: 5, stepsPerEpoch: 6, layers: 3, prune: 'fpp' });
    expect([s.warmupEnd, s.bilevelEnd, s.total]).toEqual([6, 18, 30]);
    expect(s.inSteps).toBe(true);
    expect(s.pruneAt).toEqual([18, 22, 26]);
  });

  it('BPP prunes from the output side; none prunes everything at the end with split [0.2, 0.8]', () => {
    const b = makeSchedule({ epochs: 10, stepsPerEpoch: 4, layers: 4, prune: 'bpp' });
    expect(b.order).toEqual([3, 2, 1, 0]);
    expect(b.intervalEpochs).toBe(1);
    expect(b.pruneAt).toEqual([36, 32, 28, 24]);
    expect(phaseOf(b, 'bpp', 24)).toBe('bpp');
    const n = makeSchedule({ epochs: 10, stepsPerEpoch: 4, layers: 4, prune: 'none' });
    expect(n.split).toEqual([0.2, 0.8]);
    expect([n.warmupEnd, n.bilevelEnd]).toEqual([8, 40]);
    expect(n.pruneAt).toEqual([40, 40, 40, 40]);
    expect(phaseOf(n, 'none', 39)).toBe('bilevel');
    expect(() =>
      makeSchedule({ epochs: 10, stepsPerEpoch: 4, layers: 4, prune: 'none', split: [0.2, 0.4, 0.4] }),
    ).toThrow(/split of 2/);
    expect(() =>
      makeSchedule({ epochs: 10, stepsPerEpoch: 4, layers: 4, prune: 'fpp', split: [0.2, 0.4, 0.5] }),
    ).toThrow(/adding up to 1/);
  });
});
