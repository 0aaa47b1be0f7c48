/**
 * SSWP-NAS graphs: the gated network's gate gradients (vs finite differences),
 * zero weight gradients of inactive ops, parameter names shared by gated and
 * discretized cells, and the SimCLR objective (taskHead 'simclr' vs a direct
 * TypeScript InfoNCE, and the view layout of the data loader).
 */
import { describe, expect, it } from 'vitest';
import { Graph, numel, type Value } from '../graph/ir.js';
import { Rng } from '../graph/rng.js';
import { serialize } from '../graph/onnx.js';
import { EDGES } from '../graph/genotype.js';
import { Layers } from '../graph/nets/layers.js';
import { taskHead } from '../graph/nets/tasks.js';
import { NUM_OPS, PARAMETRIC_OPS, buildSswpForward, opKey, type CellOps } from '../graph/nets/sswp.js';
import { assembleStep } from '../graph/training.js';
import { runMask, sampleGates } from '../train/search/sswp/sampler.js';
import { initParams } from '../train/runtime/params.js';
import { Session, bool, f32, toF32 } from '../train/runtime/session.js';
import { DataLoader } from '../train/data/index.js';
import { cudaIssues } from './helpers/gradcheck.js';
import type { Dataset } from '../train/data/index.js';

const SIMCLR = {
  name: 'simclr' as const,
  numClasses: 0,
  groupSize: 1,
  inputShape: [1, 6, 6] as [number, number, number],
};
const SGD = { kind: 'sgd' as const, momentum: 0.9, weightDecay: 0 };

function feedsOf(
  g: Graph,
  values: Map<string, Float32Array>,
  extra: Record<string, Float32Array>,
): Record<string, ReturnType<typeof f32>> {
  const feeds: Record<string, ReturnType<typeof f32>> = {};
  for (const p of g.params.values()) feeds[p.name] = f32(values.get(p.name)!, p.shape);
  for (const [k, v] of Object.entries(extra)) feeds[k] = f32(v, g.value(k).shape);
  return feeds;
}

describe('SSWP gated graph', () => {
  it('gives ∂L/∂gate for every op (finite differences) and zero weight gradients to inactive ops', async () => {
    // one gated reduction cell, C = 2, 6×6 inputs, 2 images × 2 views
    const fw = buildSswpForward(SIMCLR, { C: 2, layers: 1, cells: [null], rows: 4, projectionDim: 4 });
    const weightNames = [...fw.g.params.values()].filter((p) => p.role === 'weight').map((p) => p.name);
    assembleStep(fw.g, {
      loss: fw.loss,
      update: () => false,
      outputGrads: (p) => p.role === 'weight',
      gradientsOnly: true,
      inputGrads: ['gates'],
      optimizer: SGD,
      stateOutputs: false,
    });
    const s = await Session.create(serialize(fw.g, { params: 'inputs', valueInfo: false }), {
      optimization: 'disabled',
    });
    const values = initParams(fw.g, 1);
    const rng = new Rng(2);
    const x = Float32Array.from({ length: 4 * 36 }, () => rng.normal());
    const alpha = [new Float32Array(EDGES * NUM_OPS)];
    const sample = sampleGates(new Rng(3), alpha, [true], 'two-path', null);
    const gates = sample.gates;
    // every op computed (`run` all true), so every op has a gate gradient
    const out = await s.run({
      ...feedsOf(fw.g, values, { x, gates }),
      run: bool(new Uint8Array(gates.length).fill(1), [1, EDGES, NUM_OPS]),
    });
    const gg = toF32(out['gates@grad']);
    const lossAt = async (gv: Float32Array): Promise<number> =>
      toF32(
        (
          await s.run(
            {
              ...feedsOf(fw.g, values, { x, gates: gv }),
              run: bool(new Uint8Array(gv.length).fill(1), [1, EDGES, NUM_OPS]),
            },
            ['loss'],
          )
        ).loss,
      )[0]!;
    // finite differences on the gates of a few edges (active and inactive ops)
    let worst = 0;
    let scale = 0;
    for (const e of [0, 4, 9, 13]) {
      for (let k = 0; k < NUM_OPS; k++) {
        const i = e * NUM_OPS + k;
        const h = 1e-2;
        const up = gates.slice();
        const dn = gates.slice();
        up[i]! += h;
        dn[i]! -= h;
        const fd = ((await lossAt(up)) - (await lossAt(dn))) / (2 * h);
        worst = Math.max(worst, Math.abs(fd - gg[i]!));
        scale = Math.max(scale, Math.abs(fd));
      }
    }
    expect(scale).toBeGreaterThan(1e-3);
    expect(worst).toBeLessThan(0.03 * scale + 1e-4);
    // weights: exactly zero for the ops with gate 0, nonzero for active parametric ops
    let activeParametric = 0;
    for (let e = 0; e < EDGES; e++) {
      const active = sample.edges[0]![e]!.active;
      for (let k = 0; k < NUM_OPS; k++) {
        for (const name of fw.trunk.opParams.get(opKey(0, e, k))!) {
          expect(weightNames).toContain(name);
          const d = toF32(out[`${name}@grad`]);
          const maxAbs = d.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
          if (k !== active) expect(maxAbs).toBe(0);
          else if (PARAMETRIC_OPS.includes(k) && name.endsWith('weight')) {
            expect(maxAbs).toBeGreaterThan(0);
            activeParametric++;
          }
        }
      }
    }
    expect(activeParametric).toBeGreaterThan(0);
    await s.release();
  });

  it('If-gated ops (only the sampled ones run) give the loss and gradients of the all-ops graph', async () => {
    // two gated cells (normal + reduction): gradients cross a gated cell into the one before
    const shape = { C: 2, layers: 2, cells: [null, null], rows: 4, projectionDim: 4 };
    const results: Record<string, Float32Array>[] = [];
    const rng = new Rng(5);
    const x = Float32Array.from({ length: 4 * 36 }, () => rng.normal());
    const alpha = [0, 1].map(() => Float32Array.from({ length: EDGES * NUM_OPS }, () => rng.normal()));
    const sample = sampleGates(new Rng(6), alpha, [true, true], 'two-path', null);
    const nodes: number[] = [];
    for (const ifGates of [true, false]) {
      const fw = buildSswpForward(SIMCLR, { ...shape, ifGates });
      expect(fw.trunk.run !== null).toBe(ifGates);
      assembleStep(fw.g, {
        loss: fw.loss,
        update: () => false,
        outputGrads: (p) => p.role === 'weight',
        gradientsOnly: true,
        inputGrads: ['gates'],
        optimizer: SGD,
        stateOutputs: false,
      });
      nodes.push(fw.g.nodes.length);
      expect(cudaIssues(fw.g.nodes)).toEqual([]); // branches included
      const s = await Session.create(serialize(fw.g, { params: 'inputs', valueInfo: false }), {
        optimization: 'disabled',
      });
      const feeds = feedsOf(fw.g, initParams(fw.g, 1), { x, gates: sample.gates });
      if (ifGates) feeds.run = bool(runMask(sample, 'involved'), [2, EDGES, NUM_OPS]);
      const out = await s.run(feeds);
      await s.release();
      results.push(Object.fromEntries(Object.entries(out).map(([k, v]) => [k, toF32(v)])));
    }
    const [gatedIf, all] = results as [Record<string, Float32Array>, Record<string, Float32Array>];
    expect(nodes[0]!).toBeLessThan(nodes[1]!);
    expect(Math.abs(gatedIf.loss![0]! - all.loss![0]!)).toBeLessThan(1e-5 * Math.abs(all.loss![0]!));
    const involved = runMask(sample, 'involved');
    let compared = 0;
    for (const [k, ref] of Object.entries(all)) {
      const got = gatedIf[k]!;
      expect(got, k).toBeDefined();
      const scale = Math.max(
        1e-3,
        ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0),
      );
      for (let i = 0; i < ref.length; i++) {
        // gate gradients exist for the involved ops only (the others were not computed)
        if (k === 'gates@grad' && !involved[i]) continue;
        expect(Math.abs(got[i]! - ref[i]!), `${k}[${i}]`).toBeLessThan(2e-4 * scale);
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(1000);
  });

  it('discretized cells read the very parameters the gated cells trained (same names and shapes)', () => {
    const cell: CellOps = [
      ['sep_conv_3x3', 0],
      ['skip_connect', 1],
      ['dil_conv_5x5', 2],
      ['max_pool_3x3', 0],
      ['sep_conv_5x5', 1],
      ['avg_pool_3x3', 3],
      ['dil_conv_3x3', 4],
      ['skip_connect', 0],
    ];
    const task = { ...SIMCLR, inputShape: [3, 8, 8] as [number, number, number] };
    const gated = buildSswpForward(task, { C: 4, layers: 3, cells: [null, null, null], rows: 4 });
    const mixed = buildSswpForward(task, { C: 4, layers: 3, cells: [cell, null, cell], rows: 4 });
    const discrete = buildSswpForward(task, { C: 4, layers: 3, cells: [cell, cell, cell], rows: 4 });
    for (const net of [mixed, discrete]) {
      for (const p of net.g.params.values()) {
        const q = gated.g.params.get(p.name);
        expect(q, p.name).toBeDefined();
        expect(q!.shape).toEqual(p.shape);
      }
    }
    expect(discrete.trunk.gates).toBeNull();
    expect(mixed.trunk.gates!.shape).toEqual([3, EDGES, NUM_OPS]);
    // pruning cuts the graph: all ops of 14 edges → 8 kept ops
    expect(discrete.g.nodes.length).toBeLessThan(mixed.g.nodes.length);
    expect(mixed.g.nodes.length).toBeLessThan(gated.g.nodes.length);
    // affine BN in parametric ops (kept in the final network), none after pools
    expect([...gated.g.params.keys()].some((n) => /edge0\/sep_conv_3x3\/.*\/op3\/bias$/.test(n))).toBe(true);
    expect([...gated.g.params.keys()].some((n) => /edge0\/max_pool_3x3\//.test(n))).toBe(false);
  });
});

describe('SimCLR objective', () => {
  it("taskHead 'simclr' (projection MLP, cosine similarity, τ, InfoNCE over 2N views) equals a direct computation", async () => {
    const n2 = 6;
    const F = 5;
    const D = 3;
    const tau = 0.5;
    const g = new Graph('simclr_head');
    g.training = true;
    const L = new Layers(g, { trackRunningStats: false });
    const feat: Value = g.input('features', 'float32', [n2, F, 2, 2]);
    const head = taskHead(
      L,
      feat,
      { name: 'simclr', numClasses: 0, groupSize: 1, inputShape: [F, 2, 2] },
      { temperature: tau, projectionDim: D },
    );
    g.output(head.loss, 'loss');
    const values = initParams(g, 4);
    const rng = new Rng(8);
    const x = Float32Array.from({ length: n2 * F * 4 }, () => rng.normal());
    const s = await Session.create(serialize(g, { params: 'inputs', valueInfo: false }));
    const got = toF32((await s.run(feedsOf(g, values, { features: x }))).loss)[0]!;
    await s.release();
    // direct: pool → W0 x + b0 → ReLU → W2 h + b2 → L2-normalize → sim/τ → InfoNCE with positive (i+N) mod 2N
    const w0 = values.get('projection/0/weight')!;
    const b0 = values.get('projection/0/bias')!;
    const w2 = values.get('projection/2/weight')!;
    const b2 = values.get('projection/2/bias')!;
    const z: number[][] = [];
    for (let i = 0; i < n2; i++) {
      const pooled = Array.from(
        { length: F },
        (_, c) =>
          (x[(i * F + c) * 4]! + x[(i * F + c) * 4 + 1]! + x[(i * F + c) * 4 + 2]! + x[(i * F + c) * 4 + 3]!) / 4,
      );
      const h = Array.from({ length: F }, (_, o) =>
        Math.max(0, b0[o]! + pooled.reduce((a, v, c) => a + v * w0[o * F + c]!, 0)),
      );
      const zi = Array.from({ length: D }, (_, o) => b2[o]! + h.reduce((a, v, c) => a + v * w2[o * F + c]!, 0));
      const norm = Math.sqrt(zi.reduce((a, v) => a + v * v, 0));
      z.push(zi.map((v) => v / norm));
    }
    let loss = 0;
    for (let i = 0; i < n2; i++) {
      const sim = (k: number): number => z[i]!.reduce((a, v, d) => a + v * z[k]![d]!, 0) / tau;
      const pos = (i + n2 / 2) % n2;
      let denom = 0;
      for (let k = 0; k < n2; k++) if (k !== i) denom += Math.exp(sim(k));
      loss += -Math.log(Math.exp(sim(pos)) / denom);
    }
    loss /= n2;
    expect(got).toBeCloseTo(loss, 4);
  });

  it("the loader's two views of image i are rows i and N+i, the positives InfoNCE expects", async () => {
    // constant images: every crop, flip and resize of image i keeps its value
    const n = 5;
    const images = new Uint8Array(n * 64);
    for (let i = 0; i < n; i++) images.fill(20 + 40 * i, i * 64, (i + 1) * 64);
    const ds: Dataset = {
      images,
      labels: null,
      n,
      c: 1,
      h: 8,
      w: 8,
      classes: 0,
      name: 'constant',
      mean: [0],
      std: [1],
    };
    const loader = new DataLoader(ds, { task: 'simclr', batchSize: 4, seed: 1, workers: 0, dropLast: true });
    const b = await loader.batch(0, 0);
    await loader.close();
    expect(b.xShape).toEqual([8, 1, 8, 8]);
    const per = 64;
    for (let i = 0; i < 4; i++) {
      const want = (20 + 40 * b.rows[i]!) / 255;
      for (const r of [i, i + 4]) {
        const row = b.x.subarray(r * per, (r + 1) * per);
        for (const v of row) expect(v).toBeCloseTo(want, 5);
      }
    }
    expect(numel(b.xShape)).toBe(b.x.length);
  });
});
