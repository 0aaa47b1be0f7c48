/**
 * Gated regions (graph/ops/gated.ts): the If-lowered composite SSWP uses to run
 * only the sampled ops. Checked against the same region left ungated: output
 * and gradients equal when it runs, zeros when it does not, and no gradient
 * when only the backward condition is false.
 */
import { describe, expect, it } from 'vitest';
import { Graph, tensorOf, type Value } from '../graph/ir.js';
import { gradients } from '../graph/autodiff.js';
import { serialize } from '../graph/onnx.js';
import * as ops from '../graph/ops/index.js';
import { Rng } from '../graph/rng.js';
import { Session, bool, toF32 } from '../train/runtime/session.js';
import * as ort from 'onnxruntime-node';

const X = [2, 3, 6, 6];
const W = [4, 3, 3, 3];

/** loss = Σ R ⊙ (region(x) + x-path), gradients to x, w, γ, β; gated or not. */
function build(gated: boolean): Graph {
  const g = new Graph('gated-test');
  g.training = true;
  const x = g.input('x', 'float32', X);
  const w = g.input('w', 'float32', W);
  const gm = g.input('gamma', 'float32', [4]);
  const bt = g.input('beta', 'float32', [4]);
  const run = g.input('run', 'bool', []);
  const grad = g.input('grad', 'bool', []);
  const start = g.nodes.length;
  let y: Value = ops.avgPool(
    g,
    ops.batchNormTrain(g, ops.conv(g, ops.relu(g, x), w, { pad: 1, stride: 2 }), gm, bt, 1e-5).y,
    3,
    1,
    1,
    false,
  );
  if (gated) y = ops.gateRegion(g, start, y, [run, grad]);
  else {
    // the ungated graph reads the conditions too, so both graphs take the same feeds
    g.output(ops.cast(g, run, 'float32'), 'run_f');
    g.output(ops.cast(g, grad, 'float32'), 'grad_f');
  }
  const r = new Rng(3);
  const R = g.constant(
    tensorOf(
      'float32',
      [...y.shape],
      Array.from({ length: y.shape.reduce((a, b) => a * b, 1) }, () => r.normal()),
    ),
    'R',
  );
  const loss = ops.reduceSum(g, ops.mul(g, y, R), [0, 1, 2, 3], false);
  g.output(y, 'y');
  g.output(loss, 'loss');
  const gr = gradients(g, loss, [x, w, gm, bt]);
  for (const [k, v] of gr)
    g.output(
      v ??
        g.constant(
          tensorOf('float32', [...g.value(k).shape], new Array(g.value(k).shape.reduce((a, b) => a * b, 1)).fill(0)),
        ),
      `d_${k}`,
    );
  return g;
}

async function run(g: Graph, runOn: boolean, gradOn: boolean): Promise<Record<string, Float32Array>> {
  const s = await Session.create(serialize(g, { params: 'inputs' }), { optimization: 'disabled' });
  const r = new Rng(9);
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, shape] of [
    ['x', X],
    ['w', W],
    ['gamma', [4]],
    ['beta', [4]],
  ] as const) {
    const n = shape.reduce((a, b) => a * b, 1);
    feeds[name] = new ort.Tensor(
      'float32',
      Float32Array.from({ length: n }, () => r.normal()),
      [...shape],
    );
  }
  feeds.run = bool(Uint8Array.of(+runOn), []);
  feeds.grad = bool(Uint8Array.of(+gradOn), []);
  const out = await s.run(feeds);
  await s.release();
  const res: Record<string, Float32Array> = {};
  for (const k of ['y', 'loss', 'd_x', 'd_w', 'd_gamma', 'd_beta']) res[k] = toF32(out[k], k);
  return res;
}

const maxAbs = (a: Float32Array): number => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxDiff = (a: Float32Array, b: Float32Array): number =>
  a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe('Gated regions', () => {
  it('lower to If nodes: one forward, one backward', () => {
    const g = build(true);
    expect(g.nodes.filter((n) => n.op === 'Gated')).toHaveLength(2);
    expect(g.nodes.some((n) => n.op === 'Conv')).toBe(false); // the conv lives in the branches only
    serialize(g, { params: 'inputs' });
    expect(g.nodes.filter((n) => n.op === 'If')).toHaveLength(2);
  });

  it('equal the ungated region when both conditions hold', async () => {
    const a = await run(build(true), true, true);
    const b = await run(build(false), true, true);
    for (const k of Object.keys(b)) {
      expect(maxAbs(b[k]!), k).toBeGreaterThan(1e-3);
      expect(maxDiff(a[k]!, b[k]!), k).toBeLessThan(1e-5 * Math.max(1, maxAbs(b[k]!)));
    }
  });

  it('give zeros and no gradient when the region does not run', async () => {
    const a = await run(build(true), false, false);
    for (const k of Object.keys(a)) expect(maxAbs(a[k]!), k).toBe(0);
  });

  it('compute the output but no gradient when only the backward condition is false', async () => {
    const a = await run(build(true), true, false);
    const b = await run(build(false), true, true);
    expect(maxDiff(a.y!, b.y!)).toBeLessThan(1e-6);
    expect(maxDiff(a.loss!, b.loss!)).toBeLessThan(1e-4);
    for (const k of ['d_x', 'd_w', 'd_gamma', 'd_beta']) expect(maxAbs(a[k]!), k).toBe(0);
  });
});

describe('gateRegion', () => {
  it('refuses a later read of a value inside the region', () => {
    const g = new Graph('t');
    const x = g.input('x', 'float32', [1, 2, 3, 3]);
    const c = g.input('c', 'bool', []);
    const start = g.nodes.length;
    const r = ops.relu(g, x);
    const y = ops.mul(g, r, r);
    ops.gateRegion(g, start, y, [c]);
    expect(() => ops.add(g, r, x)).toThrow(/unknown value/);
  });
});
