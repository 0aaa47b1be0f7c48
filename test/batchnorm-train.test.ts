/**
 * BatchNormTrain, the composite training-form BN with a fused gradient rule:
 * finite-difference gradients (affine and not), agreement with the plain-op
 * formulation, and its lowering leaving no composite in the ONNX file.
 */
import { describe, expect, test } from 'vitest';
import { Graph, numel } from '../graph/ir.js';
import { batchNormTrain } from '../graph/ops/index.js';
import { Layers, LEVERS } from '../graph/nets/layers.js';
import { gradients } from '../graph/autodiff.js';
import { serialize } from '../graph/onnx.js';
import { lowerComposites } from '../graph/lower.js';
import { Session, f32, toF32 } from '../train/runtime/session.js';
import { Rng } from '../graph/rng.js';
import { gradCheck } from './helpers/gradcheck.js';

describe('BatchNormTrain', () => {
  test('gradient w.r.t. x matches central differences (non-affine, as in the supernet)', async () => {
    const r = await gradCheck(
      [{ name: 'x', shape: [3, 4, 5, 5] }],
      (g, [x]) => batchNormTrain(g, x!, null, null, 1e-5).y,
      { h: 1e-2 },
    );
    expect(r.maxAbsGrad).toBeGreaterThan(0.1);
    expect(r.maxRelErr).toBeLessThan(3e-3);
  });

  test('gradients w.r.t. x, γ and β match central differences (affine)', async () => {
    const r = await gradCheck(
      [
        { name: 'x', shape: [4, 3, 4, 4] },
        { name: 'gamma', shape: [3] },
        { name: 'beta', shape: [3] },
      ],
      (g, [x, gm, bt]) => batchNormTrain(g, x!, gm!, bt!, 1e-5).y,
      { h: 1e-2 },
    );
    expect(r.maxRelErr).toBeLessThan(3e-3);
    // the fused rule: far fewer gradient nodes than differentiating the expansion
    expect(r.gradNodes).toBeLessThan(16);
  });

  test('fused and plain-op formulations give the same forward values and gradients', async () => {
    const rng = new Rng(3);
    const shape = [8, 6, 5, 5];
    const xv = Float32Array.from({ length: numel(shape) }, () => rng.normal() * 2 + 0.5);
    const dyv = Float32Array.from({ length: numel(shape) }, () => rng.normal());
    const results: Float32Array[][] = [];
    for (const fused of [true, false]) {
      const g = new Graph('bn');
      g.training = true;
      const x = g.input('x', 'float32', shape);
      const dy = g.input('dy', 'float32', shape);
      const L = new Layers(g, { trackRunningStats: true, fusedBn: fused });
      const y = L.bn(x, true);
      const loss = g.op('ReduceSum', [g.op('Mul', [y, dy]), g.int64s([0, 1, 2, 3])], {
        keepdims: { kind: 'int', v: 0 },
      });
      const params = [...g.params.values()].filter((p) => p.role === 'weight').map((p) => g.value(p.name));
      const grads = gradients(g, loss, [x, ...params]);
      g.output(y, 'y');
      g.output(grads.get('x')!, 'dx');
      params.forEach((p, i) => g.output(grads.get(p.name)!, `dp${i}`));
      for (const [name, v] of g.stateUpdates) g.output(v, `${name}@new`);
      const sess = await Session.create(serialize(g, { params: 'inputs' }), { optimization: 'disabled' });
      const feeds: Record<string, ReturnType<typeof f32>> = { x: f32(xv, shape), dy: f32(dyv, shape) };
      for (const p of g.params.values())
        feeds[p.name] = f32(
          Float32Array.from({ length: numel(p.shape) }, (_, i) => 0.5 + 0.1 * i),
          p.shape,
        );
      const out = await sess.run(feeds);
      results.push(sess.outputNames.map((n) => toF32(out[n])));
      await sess.release();
    }
    const [a, b] = results;
    expect(a!.length).toBe(b!.length);
    a!.forEach((t, k) => {
      let m = 0;
      for (let i = 0; i < t.length; i++) m = Math.max(m, Math.abs(t[i]! - b![k]![i]!));
      expect(m).toBeLessThan(2e-5);
    });
  });

  test('lowering expands every composite into standard ops, keeping output names', () => {
    const g = new Graph('bn');
    g.training = true;
    const x = g.input('x', 'float32', [2, 3, 4, 4]);
    const { y } = batchNormTrain(g, x, null, null, 1e-5);
    g.output(y, 'y');
    expect(lowerComposites(g)).toBe(1);
    expect(g.nodes.some((n) => n.op === 'BatchNormTrain')).toBe(false);
    expect(g.nodes.some((n) => n.outputs.includes(y.name))).toBe(true);
    expect(g.nodes.length).toBe(7);
  });

  test('the search supernet step is smaller with the fused BN and the shared ReLU', () => {
    const count = (share: boolean, fused: boolean): number => {
      const saved = { ...LEVERS };
      Object.assign(LEVERS, { shareRelu: share, fusedBn: fused });
      try {
        const g = new Graph('s');
        g.training = true;
        const L = new Layers(g, { trackRunningStats: false });
        const x = g.input('x', 'float32', [2, 4, 8, 8]);
        let y = L.sepConv(x, 4, 3, 1, 1, false);
        y = g.op('Add', [y, L.dilConv(x, 4, 3, 1, 2, 2, false)]);
        const loss = g.op('ReduceSum', [y, g.int64s([0, 1, 2, 3])], { keepdims: { kind: 'int', v: 0 } });
        gradients(
          g,
          loss,
          [...g.params.values()].map((p) => g.value(p.name)),
        );
        lowerComposites(g);
        return g.nodes.length;
      } finally {
        Object.assign(LEVERS, saved);
      }
    };
    const base = count(false, false);
    expect(count(true, false)).toBeLessThan(base);
    expect(count(true, true)).toBeLessThan(count(true, false));
  });
});
