/**
 * The flat-parameter lever changes the graph, not the arithmetic: two SGD
 * steps (momentum, weight decay, clipping) and two Adam steps give the same
 * parameters, optimizer state and loss with and without it.
 */
import { describe, expect, test } from 'vitest';
import { loadGenotype } from '../graph/genotype.js';
import { buildEvalNet } from '../graph/nets/models.js';
import { assembleStep, crossEntropy, type OptimizerSpec } from '../graph/training.js';
import { StepRunner, newTrainState } from '../train/runtime/engine.js';
import { initParams } from '../train/runtime/params.js';
import { f32, i64 } from '../train/runtime/session.js';
import { Rng } from '../graph/rng.js';

async function twoSteps(flat: boolean, opt: OptimizerSpec) {
  const m = buildEvalNet({
    genotype: loadGenotype('darts_v2'),
    net: 'cifar',
    C: 4,
    layers: 3,
    classes: 5,
    training: true,
    batch: 4,
    channels: 1,
    size: 12,
  });
  const labels = m.g.input('labels', 'int64', [4]);
  const info = assembleStep(m.g, {
    loss: crossEntropy(m.g, m.logits, labels),
    update: (p) => p.role === 'weight',
    optimizer: opt,
    clipNorm: 0.5,
    flat,
  });
  const runner = await StepRunner.create(m.g, info, opt);
  const st = newTrainState(initParams(m.g, 7));
  const rng = new Rng(1);
  const losses: number[] = [];
  for (let i = 0; i < 2; i++) {
    const x = Float32Array.from({ length: 4 * 144 }, () => rng.normal());
    const r = await runner.run(st, { x: f32(x, [4, 1, 12, 12]), labels: i64([0, 1, 2, 3], [4]) }, 0.01);
    losses.push(r.loss, r.gradNorm ?? NaN);
  }
  await runner.release();
  return { st, losses, nodes: m.g.nodes.length, flat: info.flat };
}

describe('flat parameter buffer', () => {
  for (const opt of [
    { kind: 'sgd', momentum: 0.9, weightDecay: 3e-4 },
    { kind: 'adam', beta1: 0.5, beta2: 0.999, eps: 1e-8, weightDecay: 1e-3 },
  ] as OptimizerSpec[]) {
    test(`${opt.kind}: same parameters, state and losses as per-parameter updates, with fewer nodes`, async () => {
      const a = await twoSteps(true, opt);
      const b = await twoSteps(false, opt);
      expect(a.flat).not.toBeNull();
      expect(b.flat).toBeNull();
      expect(a.nodes).toBeLessThan(b.nodes);
      // summation order differs (one norm over the flat gradient vs per-tensor sums): float32 rounding only
      a.losses.forEach((l, i) =>
        expect(Math.abs(l - b.losses[i]!)).toBeLessThan(1e-5 * Math.max(1, Math.abs(b.losses[i]!))),
      );
      const maxDiff = (x: Map<string, Float32Array>, y: Map<string, Float32Array>): number => {
        expect(x.size).toBe(y.size);
        let m = 0;
        for (const [k, v] of y) {
          const w = x.get(k)!;
          expect(w.length).toBe(v.length);
          for (let i = 0; i < v.length; i++) m = Math.max(m, Math.abs(v[i]! - w[i]!));
        }
        return m;
      };
      // optimizer state is linear in the gradient: equal up to float32 rounding
      expect(maxDiff(a.st.opt, b.st.opt)).toBeLessThan(1e-6);
      // SGD parameters likewise. Adam's m/√v turns rounding-level gradients of parameters whose true
      // gradient is 0 into updates of up to a few % of lr, so its parameters agree to 5% of lr (= 5e-4).
      expect(maxDiff(a.st.params, b.st.params)).toBeLessThan(opt.kind === 'sgd' ? 1e-6 : 5e-4);
    });
  }
});
