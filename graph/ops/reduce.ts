/**
 * Reductions, matrix products and softmaxes: emitter, shape rule and
 * gradient rule of each op side by side.
 */
import { A, attrFloat, attrInt, numel, shapeStr, tensorOf, type Attrs, type Graph, type Value } from '../ir.js';
import { registerOp, type GradArgs, type OutSpec } from './registry.js';
import { broadcastShapes, constInts, normAxis, requireInputs, sameShape, sumToShape } from './util.js';
import { expand, reshape, transpose } from './shape.js';
import { exp, mul, sub } from './elementwise.js';

/**
 * The reduced axes. As in ONNX, omitted or empty axes reduce every axis,
 * unless noop_with_empty_axes = 1 (then nothing is reduced).
 */
function reduceAxes(g: Graph, xs: (Value | null)[], attrs: Attrs): { x: Value; axes: number[] } {
  const x = xs[0]!;
  const given = xs[1] ? constInts(g, xs[1], 'reduce axes').map((a) => normAxis(a, x.shape.length)) : [];
  if (given.length) return { x, axes: given };
  return { x, axes: attrInt(attrs, 'noop_with_empty_axes', 0) === 1 ? [] : [...x.shape.keys()] };
}

function reduceInfer(xs: (Value | null)[], attrs: Attrs, g: Graph): OutSpec[] {
  requireInputs(xs, 1);
  const { x, axes } = reduceAxes(g, xs, attrs);
  const keep = attrInt(attrs, 'keepdims', 1) === 1;
  const shape = keep ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !axes.includes(i));
  return [{ dtype: x.dtype, shape }];
}

/**
 * dy of a reduction in a shape that broadcasts against x: as is for keepdims 1
 * or when the reduced axes are leading ones (numpy broadcasting aligns the
 * rest), else reshaped to the keepdims form.
 */
function keptGrad(a: GradArgs): { dy: Value; x: Value; count: number } {
  const { x, axes } = reduceAxes(a.g, a.x, a.node.attrs);
  const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const leading = axes.every((ax) => ax < axes.length);
  const dy = a.dy[0]!.shape.length === kept.length || leading ? a.dy[0]! : reshape(a.g, a.dy[0]!, kept);
  return { dy, x, count: axes.reduce((p, ax) => p * x.shape[ax]!, 1) };
}

const keepAttr = (keepdims: boolean) => ({ keepdims: A.i(keepdims ? 1 : 0) });

// ---- ReduceSum -------------------------------------------------------------
export const reduceSum = (g: Graph, x: Value, axes: number[], keepdims = true): Value =>
  g.op('ReduceSum', [x, g.int64s(axes)], keepAttr(keepdims));
registerOp({
  type: 'ReduceSum',
  infer: reduceInfer,
  grad: (a) => {
    const { dy, x } = keptGrad(a);
    return [expand(a.g, dy, [...x.shape]), null];
  },
});

// ---- ReduceMean ------------------------------------------------------------
export const reduceMean = (g: Graph, x: Value, axes: number[], keepdims = true): Value =>
  g.op('ReduceMean', [x, g.int64s(axes)], keepAttr(keepdims));
registerOp({
  type: 'ReduceMean',
  infer: reduceInfer,
  grad: (a) => {
    const { dy, x, count } = keptGrad(a);
    return [expand(a.g, mul(a.g, dy, a.g.scalar(1 / count)), [...x.shape]), null];
  },
});

// ---- ReduceSumSquare -------------------------------------------------------
export const reduceSumSquare = (g: Graph, x: Value, axes: number[], keepdims = true): Value =>
  g.op('ReduceSumSquare', [x, g.int64s(axes)], keepAttr(keepdims));
registerOp({
  type: 'ReduceSumSquare',
  infer: reduceInfer,
  grad: (a) => {
    const { dy, x } = keptGrad(a);
    return [mul(a.g, x, mul(a.g, dy, a.g.scalar(2))), null];
  },
});

// ---- ReduceMax / ArgMax (not differentiated here) ---------------------------
export const reduceMax = (g: Graph, x: Value, axes: number[], keepdims = true): Value =>
  g.op('ReduceMax', [x, g.int64s(axes)], keepAttr(keepdims));
registerOp({ type: 'ReduceMax', infer: reduceInfer });

export const argMax = (g: Graph, x: Value, axis: number, keepdims = false): Value =>
  g.op('ArgMax', [x], { axis: A.i(axis), ...keepAttr(keepdims) });
registerOp({
  type: 'ArgMax',
  infer: (xs, attrs) => {
    const [x] = requireInputs(xs, 1);
    const axis = normAxis(attrInt(attrs, 'axis', 0), x!.shape.length);
    const keep = attrInt(attrs, 'keepdims', 1) === 1;
    const shape = keep ? x!.shape.map((d, i) => (i === axis ? 1 : d)) : x!.shape.filter((_, i) => i !== axis);
    return [{ dtype: 'int64', shape }];
  },
});

// ---- GlobalAveragePool -----------------------------------------------------
export const globalAvgPool = (g: Graph, x: Value): Value => g.op('GlobalAveragePool', [x]);
registerOp({
  type: 'GlobalAveragePool',
  infer: (xs) => {
    const [x] = requireInputs(xs, 1);
    if (x!.shape.length < 3) throw new Error('needs N×C×spatial');
    return [{ dtype: x!.dtype, shape: x!.shape.map((d, i) => (i < 2 ? d : 1)) }];
  },
  // broadcast dy / (H·W) over the spatial extent with one Mul against a constant map
  grad: (a) => {
    const x = a.x[0]!;
    const spatial = x.shape.slice(2);
    const n = numel(spatial);
    const c = a.g.constant(tensorOf('float32', [1, 1, ...spatial], new Array<number>(n).fill(1 / n)), 'gap_scale');
    return [mul(a.g, a.dy[0]!, c)];
  },
});

// ---- MatMul (rank ≥ 2, batch dims broadcast) --------------------------------
export const matmul = (g: Graph, a: Value, b: Value): Value => g.op('MatMul', [a, b]);
const swapLast = (g: Graph, v: Value): Value => {
  const r = v.shape.length;
  const perm = [...v.shape.keys()];
  perm[r - 1] = r - 2;
  perm[r - 2] = r - 1;
  return transpose(g, v, perm);
};
registerOp({
  type: 'MatMul',
  infer: (xs) => {
    const [a, b] = requireInputs(xs, 2);
    if (a!.shape.length < 2 || b!.shape.length < 2) throw new Error('MatMul operands must have rank ≥ 2 here');
    const [m, k] = a!.shape.slice(-2);
    const [k2, n] = b!.shape.slice(-2);
    if (k !== k2) throw new Error(`inner dimensions differ: ${shapeStr(a!.shape)} × ${shapeStr(b!.shape)}`);
    // batch dims broadcast numpy-style ([2,1] with [5] gives [2,5])
    const batch = broadcastShapes(a!.shape.slice(0, -2), b!.shape.slice(0, -2));
    return [{ dtype: a!.dtype, shape: [...batch, m!, n!] }];
  },
  grad: (a) => {
    const { g } = a;
    const [x0, x1] = a.x as Value[];
    const dy = a.dy[0]!;
    // 2-D: Gemm's transpose flags replace the Transpose nodes
    if (x0!.shape.length === 2 && x1!.shape.length === 2) {
      return [
        a.needs[0] ? gemm(g, dy, x1!, null, false, true) : null,
        a.needs[1] ? gemm(g, x0!, dy, null, true, false) : null,
      ];
    }
    return [
      a.needs[0] ? sumToShape(g, matmul(g, a.dy[0]!, swapLast(g, x1!)), x0!.shape) : null,
      a.needs[1] ? sumToShape(g, matmul(g, swapLast(g, x0!), a.dy[0]!), x1!.shape) : null,
    ];
  },
});

// ---- Gemm (alpha = beta = 1): Y = op(A)·op(B) + C ----------------------------
export function gemm(g: Graph, a: Value, b: Value, c: Value | null, transA = false, transB = false): Value {
  return g.op('Gemm', [a, b, c], { transA: A.i(transA ? 1 : 0), transB: A.i(transB ? 1 : 0) });
}
registerOp({
  type: 'Gemm',
  infer: (xs, attrs) => {
    const [a, b] = requireInputs(xs, 2);
    if (attrFloat(attrs, 'alpha', 1) !== 1 || attrFloat(attrs, 'beta', 1) !== 1)
      throw new Error('only alpha = beta = 1');
    const ta = attrInt(attrs, 'transA', 0) === 1;
    const tb = attrInt(attrs, 'transB', 0) === 1;
    const [m, k] = ta ? [a!.shape[1]!, a!.shape[0]!] : [a!.shape[0]!, a!.shape[1]!];
    const [k2, n] = tb ? [b!.shape[1]!, b!.shape[0]!] : [b!.shape[0]!, b!.shape[1]!];
    if (k !== k2) throw new Error(`inner dimensions differ: ${shapeStr(a!.shape)} × ${shapeStr(b!.shape)}`);
    // C broadcasts one way to [M, N]
    const c = xs[2];
    if (c && (c.shape.length > 2 || !sameShape(broadcastShapes([m, n], c.shape), [m, n])))
      throw new Error(`bias ${shapeStr(c.shape)} does not broadcast to [${m},${n}]`);
    return [{ dtype: a!.dtype, shape: [m, n] }];
  },
  grad: (a) => {
    const { g } = a;
    const [x0, x1, c] = a.x;
    const dy = a.dy[0]!;
    const ta = attrInt(a.node.attrs, 'transA', 0) === 1;
    const tb = attrInt(a.node.attrs, 'transB', 0) === 1;
    // Y = op(A) op(B): d op(A) = dY op(B)ᵀ, d op(B) = op(A)ᵀ dY
    const dA = !a.needs[0] ? null : ta ? gemm(g, x1!, dy, null, tb, true) : gemm(g, dy, x1!, null, false, !tb);
    const dB = !a.needs[1] ? null : tb ? gemm(g, dy, x0!, null, true, ta) : gemm(g, x0!, dy, null, !ta, false);
    const dC = a.needs[2] && c ? sumToShape(g, dy, c.shape) : null;
    return [dA, dB, dC];
  },
});

// ---- Softmax / LogSoftmax ---------------------------------------------------
export const softmax = (g: Graph, x: Value, axis = -1): Value => g.op('Softmax', [x], { axis: A.i(axis) });
export const logSoftmax = (g: Graph, x: Value, axis = -1): Value => g.op('LogSoftmax', [x], { axis: A.i(axis) });
const softmaxInfer = (xs: (Value | null)[]): OutSpec[] => {
  const [x] = requireInputs(xs, 1);
  return [{ dtype: x!.dtype, shape: [...x!.shape] }];
};
registerOp({
  type: 'Softmax',
  infer: softmaxInfer,
  // dx = y ⊙ (dy − Σ dy⊙y)
  grad: (a) => {
    const { g } = a;
    const y = a.y[0]!;
    const axis = normAxis(attrInt(a.node.attrs, 'axis', -1), y.shape.length);
    const s = reduceSum(g, mul(g, a.dy[0]!, y), [axis]);
    return [mul(g, y, sub(g, a.dy[0]!, s))];
  },
});
registerOp({
  type: 'LogSoftmax',
  infer: softmaxInfer,
  // dx = dy − softmax ⊙ Σ dy
  grad: (a) => {
    const { g } = a;
    const y = a.y[0]!;
    const axis = normAxis(attrInt(a.node.attrs, 'axis', -1), y.shape.length);
    return [sub(g, a.dy[0]!, mul(g, exp(g, y), reduceSum(g, a.dy[0]!, [axis])))];
  },
});
