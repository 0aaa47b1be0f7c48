/**
 * Precise BN statistics (train/runtime/precise-bn.ts, used by the study's
 * trials and SSWP's final network): the running statistics are the mean of the
 * per-batch means and unbiased variances, computed here by hand.
 */
import { describe, expect, it } from 'vitest';
import { Graph } from '../graph/ir.js';
import { Layers } from '../graph/nets/layers.js';
import { Rng } from '../graph/rng.js';
import { bnStatsGraph } from '../graph/training.js';
import { configDiff } from '../train/runtime/config.js';
import { preciseBnStats } from '../train/runtime/precise-bn.js';
import { f32 } from '../train/runtime/session.js';

const [N, C, H, W] = [4, 2, 3, 3];

function bnNet(): Graph {
  const g = new Graph('bn');
  g.training = true;
  const L = new Layers(g, { trackRunningStats: true });
  L.relu(L.bn(g.input('x', 'float32', [N, C, H, W]), true));
  return g;
}

/** Per-channel mean and unbiased variance of one NCHW batch. */
function batchStats(x: Float32Array): { mean: number[]; variance: number[] } {
  const n = N * H * W;
  const mean: number[] = [];
  const variance: number[] = [];
  for (let c = 0; c < C; c++) {
    const v: number[] = [];
    for (let i = 0; i < N; i++) for (let p = 0; p < H * W; p++) v.push(x[(i * C + c) * H * W + p]!);
    const m = v.reduce((a, b) => a + b, 0) / n;
    mean.push(m);
    variance.push(v.reduce((a, b) => a + (b - m) ** 2, 0) / (n - 1));
  }
  return { mean, variance };
}

describe('preciseBnStats', () => {
  it('averages the batch means and unbiased variances over the batches it is given', async () => {
    const rng = new Rng(7);
    const xs = Array.from({ length: 4 }, (_, b) =>
      Float32Array.from({ length: N * C * H * W }, () => rng.normal() * (b + 1) + b),
    );
    const g = bnStatsGraph(bnNet());
    expect(g).not.toBeNull();
    const weights = new Map<string, Float32Array>();
    for (const p of g!.params.values()) if (p.role !== 'state') weights.set(p.name, new Float32Array(C).fill(1));
    async function* feeds() {
      for (const x of xs) yield { x: f32(x, [N, C, H, W]) };
    }
    const r = await preciseBnStats(g!, weights, feeds(), { maxBatches: 3 });
    expect(r.batches).toBe(3);
    const per = xs.slice(0, 3).map(batchStats);
    const want = (k: 'mean' | 'variance', c: number): number => per.reduce((a, s) => a + s[k][c]!, 0) / 3;
    const [mean, variance] = [...r.stats.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, v]) => v);
    for (let c = 0; c < C; c++) {
      expect(mean![c]).toBeCloseTo(want('mean', c), 5);
      expect(variance![c]).toBeCloseTo(want('variance', c), 4);
    }
    // the third and fourth batches differ: a fourth batch would change the result
    const all = await preciseBnStats(
      g!,
      weights,
      xs.map((x) => ({ x: f32(x, [N, C, H, W]) })),
    );
    expect(all.batches).toBe(4);
    expect([...all.stats.values()][0]![0]).not.toBeCloseTo(mean![0]!, 3);
  });

  it('has no graph for a network without BN statistics, and needs a batch', async () => {
    const g = new Graph('plain');
    g.training = true;
    new Layers(g).linear(g.input('x', 'float32', [2, 3]), 2);
    expect(bnStatsGraph(g)).toBeNull();
    const bn = bnStatsGraph(bnNet())!;
    await expect(preciseBnStats(bn, new Map(), [])).rejects.toThrow(/no value for parameter/);
  });
});

describe('configDiff', () => {
  it('lists the settings that differ, one line, in key order', () => {
    expect(configDiff({ a: 1, b: [1, 2], c: 'x' }, { a: 1, b: [1, 3], c: 'y' })).toBe('b [1,2] → [1,3], c "x" → "y"');
    expect(configDiff({ a: 1 }, { a: 1 })).toBe('');
    expect(configDiff<Record<string, unknown>>({ a: 1 }, { b: 2 })).toBe('a 1 → undefined, b undefined → 2');
    expect(configDiff({ a: 1, b: 2 }, { a: 2, b: 3 }, ['b'])).toBe('b 2 → 3');
  });
});
