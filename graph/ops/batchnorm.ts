/**
 * BatchNormTrain: batch normalization in training form (batch statistics over
 * N·H·W, biased variance) as a composite op. Forward it lowers to 7 standard
 * nodes (ReduceMean, Sub, ReduceSumSquare, Mul, Add, Sqrt, Div: four passes over
 * the tensor; the affine form adds one inference-form BatchNormalization, which
 * applies γ and β with the batch statistics in one pass); backward it uses the fused rule
 *     dx = (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂)) / σ,   ĝ = γ ⊙ dy
 *     dγ = Σ dy ⊙ x̂,   dβ = Σ dy
 * — 7 nodes instead of the ~15 that differentiating the expansion node by node
 * emits. Outputs: y, batch mean, batch variance (both [1,C,1,…], for the
 * running statistics), σ = √(var + ε), and x̂ (affine form only).
 */
import { A, attrFloat, type Graph, type Value } from '../ir.js';
import { registerOp } from './registry.js';
import { requireInputs } from './util.js';
import { add, div, mul, sqrt, sub } from './elementwise.js';
import { reduceMean, reduceSum, reduceSumSquare } from './reduce.js';
import { reshape } from './shape.js';

export interface BatchNormTrainOut {
  y: Value;
  mean: Value;
  variance: Value;
}

export function batchNormTrain(
  g: Graph,
  x: Value,
  gamma: Value | null,
  beta: Value | null,
  eps: number,
): BatchNormTrainOut {
  if (!gamma !== !beta) throw new Error('BatchNormTrain: give both γ and β or neither');
  const outs = g.node('BatchNormTrain', gamma ? [x, gamma, beta] : [x], { epsilon: A.f(eps) });
  return { y: outs[0]!, mean: outs[1]!, variance: outs[2]! };
}

const statAxes = (x: Value): number[] => [0, ...x.shape.slice(2).map((_, i) => i + 2)];
const statShape = (x: Value): number[] => x.shape.map((d, i) => (i === 1 ? d : 1));

registerOp({
  type: 'BatchNormTrain',
  infer: (xs) => {
    const [x] = requireInputs(xs, 1);
    const c = x!.shape[1]!;
    if (x!.shape.length < 2) throw new Error('needs N×C×…');
    const affine = xs.length > 1;
    if (affine)
      for (const p of xs.slice(1, 3)) if (!p || p.shape.join() !== String(c)) throw new Error(`γ and β must be [${c}]`);
    const st = { dtype: 'float32' as const, shape: statShape(x!) };
    const full = { dtype: 'float32' as const, shape: [...x!.shape] };
    return affine ? [full, st, st, st, full] : [full, st, st, st];
  },
  lower: ({ g, node, x }) => {
    const v = x[0]!;
    const eps = attrFloat(node.attrs, 'epsilon', 1e-5);
    const axes = statAxes(v);
    const n = v.shape.reduce((p, d) => p * d, 1) / v.shape[1]!;
    const mean = reduceMean(g, v, axes);
    const xc = sub(g, v, mean);
    // Σ (x − μ)² in one reduction (no squared tensor materialized)
    const variance = mul(g, reduceSumSquare(g, xc, axes), g.scalar(1 / n));
    const std = sqrt(g, add(g, variance, g.scalar(eps)));
    const xhat = div(g, xc, std);
    if (!x[1]) return [xhat, mean, variance, std];
    // γ x̂ + β in one pass: ONNX's inference-form BatchNormalization with the batch statistics
    const c = [v.shape[1]!];
    const y = g.op('BatchNormalization', [v, x[1], x[2]!, reshape(g, mean, c), reshape(g, variance, c)], {
      epsilon: A.f(eps),
    });
    return [y, mean, variance, std, xhat];
  },
  grad: (a) => {
    const { g } = a;
    if (a.dy.slice(1).some(Boolean))
      throw new Error('BatchNormTrain: gradients through the batch statistics outputs are not supported');
    const x = a.x[0]!;
    const dy = a.dy[0]!;
    const affine = !!a.x[1];
    const [y, , , std, xhatOut] = a.y;
    const xhat = affine ? xhatOut! : y!;
    const axes = statAxes(x);
    const out: (Value | null)[] = [null, null, null];
    if (a.needs[0]) {
      const gh = affine ? mul(g, dy, reshape(g, a.x[1]!, statShape(x))) : dy;
      const m1 = reduceMean(g, gh, axes);
      const m2 = reduceMean(g, mul(g, gh, xhat), axes);
      out[0] = div(g, sub(g, sub(g, gh, m1), mul(g, xhat, m2)), std!);
    }
    if (affine && a.needs[1]) out[1] = reduceSum(g, mul(g, dy, xhat), axes, false);
    if (affine && a.needs[2]) out[2] = reduceSum(g, dy, axes, false);
    return affine ? out : [out[0]!];
  },
});
