/**
 * The segmentation pieces against PyTorch (bench/torch_ref/seg_reference.py,
 * float64): the ignore-label loss and its gradient (F.cross_entropy with
 * ignore_index=255), bilinear upsampling with align_corners (F.interpolate),
 * and the ASPP head with its image-pool branch in training form — loss, the
 * input gradient, every parameter gradient and the BN running statistics —
 * for one rate and for three, all within 1e-4 (relative, per tensor).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findTorchPython } from '../bench/torch-ref.js';
import { gradients } from '../graph/autodiff.js';
import { Graph, type Value } from '../graph/ir.js';
import { Layers } from '../graph/nets/layers.js';
import { segHead, segLoss } from '../graph/nets/seg.js';
import { upsampleBilinear } from '../graph/nets/upsample.js';
import { serialize } from '../graph/onnx.js';
import { repoPath } from '../graph/paths.js';
import { Rng } from '../graph/rng.js';
import { initParams } from '../train/runtime/params.js';
import { Session, f32, i64, toF32 } from '../train/runtime/session.js';

const TOL = 1e-4;
const rng = new Rng(2024);
const normal = (n: number, s = 1): number[] => Array.from({ length: n }, () => s * rng.normal());
const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
const labelsWithIgnore = (n: number, k: number): number[] =>
  Array.from({ length: n }, (_, i) => (i % 5 === 2 ? 255 : rng.int(k)));
const tensor = (data: ArrayLike<number>, shape: readonly number[]) => ({ data: Array.from(data), shape: [...shape] });

/** Run `g` (parameters as inputs) once on the CPU. */
async function run(g: Graph, feeds: Record<string, ReturnType<typeof f32>>): Promise<Record<string, Float32Array>> {
  const s = await Session.create(serialize(g, { params: 'inputs' }), { threads: 1 });
  try {
    const out = await s.run(feeds);
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, toF32(v, k)]));
  } finally {
    await s.release();
  }
}

async function lossCase() {
  const shape = [2, 5, 6, 7];
  const logits = normal(numel(shape), 2);
  const labels = labelsWithIgnore(2 * 6 * 7, 5);
  const g = new Graph('ce');
  g.training = true;
  const x = g.input('x', 'float32', shape);
  const y = g.input('labels', 'int64', [2, 6, 7]);
  const { loss } = segLoss(g, x, y);
  g.output(loss, 'loss');
  g.output(gradients(g, loss, [x]).get('x')!, 'dx');
  const out = await run(g, { x: f32(Float32Array.from(logits), shape), labels: i64(labels, [2, 6, 7]) });
  return {
    logits: tensor(logits, shape),
    labels: tensor(labels, [2, 6, 7]),
    ours: { loss: out.loss![0], dlogits: tensor(out.dx!, shape) },
  };
}

async function upsampleCase() {
  const cases = [];
  for (const [shape, size] of [
    [
      [2, 3, 4, 5],
      [9, 13],
    ],
    [
      [2, 3, 1, 1],
      [3, 4],
    ],
    [
      [1, 2, 6, 3],
      [6, 8],
    ],
  ] as const) {
    const g = new Graph('up');
    const x = g.input('x', 'float32', shape);
    const y = upsampleBilinear(g, x, size[0], size[1]);
    const r = normal(numel(y.shape));
    const loss = g.op(
      'ReduceSum',
      [g.op('Mul', [y, g.constant({ dtype: 'float32', shape: [...y.shape], data: Float32Array.from(r) })])],
      {
        keepdims: { kind: 'int', v: 0 },
      },
    );
    g.output(y, 'y');
    g.output(gradients(g, loss, [x]).get('x')!, 'dx');
    const xs = normal(numel(shape));
    const out = await run(g, { x: f32(Float32Array.from(xs), shape) });
    cases.push({
      x: tensor(xs, shape),
      size,
      r: tensor(r, y.shape),
      ours: { y: tensor(out.y!, y.shape), dx: tensor(out.dx!, shape) },
    });
  }
  return { cases };
}

async function asppCase(rates: number[]) {
  const [n, cin, h, w] = [4, 6, 5, 6];
  const [H, W, classes, ca] = [9, 11, 3, 4];
  const g = new Graph('aspp');
  g.training = true;
  const L = new Layers(g, { trackRunningStats: true });
  const x = g.input('x', 'float32', [n, cin, h, w]);
  const labels = g.input('labels', 'int64', [n, H, W]);
  const logits = segHead(L, x, { channels: ca, rates }, classes, H, W);
  const { loss } = segLoss(g, logits, labels);
  const weights = [...g.params.values()].filter((p) => p.role === 'weight');
  const grads = gradients(g, loss, [x, ...weights.map((p) => g.value(p.name))]);
  g.output(loss, 'loss');
  g.output(grads.get('x')!, 'dx');
  for (const p of weights) g.output(grads.get(p.name)!, `${p.name}@grad`);
  for (const [name, v] of g.stateUpdates) g.output(v as Value, `${name}@new`);
  const values = initParams(g, 7);
  // γ and β away from their initial 1 and 0, so a swapped or ignored one shows
  for (const p of weights)
    if (p.name.includes('/1/'))
      values.set(
        p.name,
        Float32Array.from(values.get(p.name)!, (v) => v + 0.3 * rng.normal()),
      );
  const xs = normal(n * cin * h * w);
  const lab = labelsWithIgnore(n * H * W, classes);
  const feeds: Record<string, ReturnType<typeof f32>> = {
    x: f32(Float32Array.from(xs), [n, cin, h, w]),
    labels: i64(lab, [n, H, W]),
  };
  for (const p of g.params.values()) feeds[p.name] = f32(values.get(p.name)!, p.shape);
  const out = await run(g, feeds);
  const params: Record<string, unknown> = {};
  for (const p of g.params.values()) params[p.name] = tensor(values.get(p.name)!, p.shape);
  const gradsOut: Record<string, unknown> = {};
  for (const p of weights) gradsOut[p.name] = tensor(out[`${p.name}@grad`]!, p.shape);
  const state: Record<string, unknown> = {};
  for (const name of g.stateUpdates.keys()) state[name] = tensor(out[`${name}@new`]!, g.params.get(name)!.shape);
  return {
    in: cin,
    channels: ca,
    classes,
    rates,
    size: [H, W],
    x: tensor(xs, [n, cin, h, w]),
    labels: tensor(lab, [n, H, W]),
    params,
    ours: { loss: out.loss![0], dx: tensor(out.dx!, [n, cin, h, w]), grads: gradsOut, state },
  };
}

interface Err {
  rel_norm: number;
  rel_max: number;
}

describe('segmentation pieces against PyTorch (float64)', () => {
  it('ignore-label loss, align_corners upsampling and the ASPP head match torch within 1e-4', async () => {
    const { python } = findTorchPython();
    const dir = mkdtempSync(join(tmpdir(), 'nas-onnx-seg-torch-'));
    try {
      const cases = {
        loss: await lossCase(),
        upsample: await upsampleCase(),
        aspp: { 'rates [6]-like [2]': await asppCase([2]), 'rates [1,2,3]': await asppCase([1, 2, 3]) },
      };
      writeFileSync(join(dir, 'case.json'), JSON.stringify(cases));
      const r = spawnSync(python, [repoPath('bench', 'torch_ref', 'seg_reference.py'), dir], {
        encoding: 'utf8',
        env: { ...process.env, OMP_NUM_THREADS: '1' },
      });
      expect(r.status, r.stderr).toBe(0);
      const res = JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8')) as Record<string, Record<string, Err>>;
      const rows = Object.entries(res)
        .filter(([k]) => k !== 'torch')
        .flatMap(([c, figs]) => Object.entries(figs).map(([k, e]) => ({ what: `${c}: ${k}`, e })));
      // the loss, 3 upsamplings × 2, and per ASPP case loss + dx + every parameter gradient + running stats
      // five branches (conv, γ, β) and the classifier (conv, γ, β, conv weight and bias)
      expect(rows.filter((r) => r.what.startsWith('aspp rates [1,2,3]: grad ')).length).toBe(5 * 3 + 5);
      expect(rows.filter((r) => r.what.startsWith('aspp rates [1,2,3]: state ')).length).toBe(2 * 6);
      const bad = rows.filter((r) => Math.max(r.e.rel_norm, r.e.rel_max) > TOL);
      expect(bad.map((b) => `${b.what} ${JSON.stringify(b.e)}`)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 600_000);
});
