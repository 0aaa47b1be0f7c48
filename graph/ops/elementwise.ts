/**
 * Element-wise ops: each entry holds the forward emitter, the shape rule and
 * the gradient rule of one ONNX op.
 */
import { A, attrInt, type DType, type Graph, type Value } from '../ir.js';
import { registerOp, type GradArgs, type OutSpec } from './registry.js';
import { broadcastShapes, requireInputs, sumToShape } from './util.js';

const float = (x: Value): void => {
  if (x.dtype !== 'float32') throw new Error(`expects float32, got ${x.dtype} (${x.name})`);
};

function unaryInfer(xs: (Value | null)[]): OutSpec[] {
  const [x] = requireInputs(xs, 1);
  return [{ dtype: x!.dtype, shape: [...x!.shape] }];
}

function binaryInfer(xs: (Value | null)[], dtype?: DType): OutSpec[] {
  const [a, b] = requireInputs(xs, 2);
  if (a!.dtype !== b!.dtype) throw new Error(`dtype mismatch ${a!.dtype} vs ${b!.dtype}`);
  return [{ dtype: dtype ?? a!.dtype, shape: broadcastShapes(a!.shape, b!.shape) }];
}

/** Both operands' gradients of a broadcasting binary op, each reduced to its operand's shape. */
function binaryGrad(a: GradArgs, da: () => Value, db: () => Value): (Value | null)[] {
  const [x0, x1] = a.x as Value[];
  return [a.needs[0] ? sumToShape(a.g, da(), x0!.shape) : null, a.needs[1] ? sumToShape(a.g, db(), x1!.shape) : null];
}

// ---- Add -------------------------------------------------------------------
export const add = (g: Graph, a: Value, b: Value): Value => g.op('Add', [a, b]);
registerOp({
  type: 'Add',
  infer: (xs) => binaryInfer(xs),
  grad: (a) =>
    binaryGrad(
      a,
      () => a.dy[0]!,
      () => a.dy[0]!,
    ),
});

// ---- Sub -------------------------------------------------------------------
export const sub = (g: Graph, a: Value, b: Value): Value => g.op('Sub', [a, b]);
registerOp({
  type: 'Sub',
  infer: (xs) => binaryInfer(xs),
  grad: (a) => {
    const [x0, x1] = a.x as Value[];
    // negate after reducing: the Neg then runs on the (smaller) operand shape
    return [
      a.needs[0] ? sumToShape(a.g, a.dy[0]!, x0!.shape) : null,
      a.needs[1] ? neg(a.g, sumToShape(a.g, a.dy[0]!, x1!.shape)) : null,
    ];
  },
});

// ---- Mul -------------------------------------------------------------------
export const mul = (g: Graph, a: Value, b: Value): Value => g.op('Mul', [a, b]);
registerOp({
  type: 'Mul',
  infer: (xs) => binaryInfer(xs),
  grad: (a) =>
    binaryGrad(
      a,
      () => mul(a.g, a.dy[0]!, a.x[1]!),
      () => mul(a.g, a.dy[0]!, a.x[0]!),
    ),
});

// ---- Div -------------------------------------------------------------------
export const div = (g: Graph, a: Value, b: Value): Value => g.op('Div', [a, b]);
registerOp({
  type: 'Div',
  infer: (xs) => binaryInfer(xs),
  // da = dy/b; db = −dy·a/b² = −(dy/b)·y, sharing dy/b when both are needed
  grad: (a) => {
    const { g } = a;
    const [x0, x1] = a.x as Value[];
    const q = div(g, a.dy[0]!, x1!);
    return [
      a.needs[0] ? sumToShape(g, q, x0!.shape) : null,
      a.needs[1] ? neg(g, sumToShape(g, mul(g, q, a.y[0]!), x1!.shape)) : null, // Neg after the reduction: on b's shape
    ];
  },
});

// ---- Pow (exponent must be a scalar constant) -------------------------------
export const pow = (g: Graph, x: Value, p: number): Value => g.op('Pow', [x, g.scalar(p)]);
registerOp({
  type: 'Pow',
  infer: (xs) => {
    const [x, p] = requireInputs(xs, 2);
    float(x!);
    return [{ dtype: 'float32', shape: broadcastShapes(x!.shape, p!.shape) }];
  },
  grad: (a) => {
    const { g } = a;
    if (a.needs[1]) throw new Error('Pow: gradient w.r.t. the exponent is not supported');
    const pv = g.constants.get(a.x[1]!.name);
    if (pv?.data.length !== 1) throw new Error('Pow: gradient needs a constant scalar exponent');
    const p = Number(pv.data[0]);
    // dy · p · x^(p−1), without the Pow for p = 2 and without anything for p = 1
    const x = a.x[0]!;
    const d = p === 1 ? a.dy[0]! : mul(g, mul(g, a.dy[0]!, p === 2 ? x : pow(g, x, p - 1)), g.scalar(p));
    return [sumToShape(g, d, x.shape), null];
  },
});

// ---- Neg -------------------------------------------------------------------
export const neg = (g: Graph, x: Value): Value => g.op('Neg', [x]);
registerOp({ type: 'Neg', infer: unaryInfer, grad: (a) => [neg(a.g, a.dy[0]!)] });

// ---- Identity --------------------------------------------------------------
export const identity = (g: Graph, x: Value): Value => g.op('Identity', [x]);
registerOp({ type: 'Identity', infer: unaryInfer, grad: (a) => [a.dy[0]!] });

// ---- Relu ------------------------------------------------------------------
export const relu = (g: Graph, x: Value): Value => g.op('Relu', [x]);
registerOp({
  type: 'Relu',
  infer: unaryInfer,
  // dy where y > 0 else 0 (the subgradient at 0 is 0, as in PyTorch). CPU lowering: dy times the mask
  // as floats: ORT's Where runs on one thread through its generic broadcasting path (≈ 7 ns per element),
  // Greater and Mul run on all threads (C=16 search step: ReLU gradients 19% of the time with Where)
  grad: (a) => {
    const { g } = a;
    const positive = greater(g, a.y[0]!, g.scalar(0));
    if (g.lowering.cpu) return [mul(g, a.dy[0]!, cast(g, positive, 'float32'))];
    return [where(g, positive, a.dy[0]!, g.scalar(0))];
  },
});

// ---- Exp -------------------------------------------------------------------
export const exp = (g: Graph, x: Value): Value => g.op('Exp', [x]);
registerOp({ type: 'Exp', infer: unaryInfer, grad: (a) => [mul(a.g, a.dy[0]!, a.y[0]!)] });

// ---- Log -------------------------------------------------------------------
export const log = (g: Graph, x: Value): Value => g.op('Log', [x]);
registerOp({ type: 'Log', infer: unaryInfer, grad: (a) => [div(a.g, a.dy[0]!, a.x[0]!)] });

// ---- Sqrt ------------------------------------------------------------------
export const sqrt = (g: Graph, x: Value): Value => g.op('Sqrt', [x]);
registerOp({
  type: 'Sqrt',
  infer: unaryInfer,
  grad: (a) => [div(a.g, mul(a.g, a.dy[0]!, a.g.scalar(0.5)), a.y[0]!)],
});

// ---- Reciprocal ------------------------------------------------------------
export const reciprocal = (g: Graph, x: Value): Value => g.op('Reciprocal', [x]);
registerOp({
  type: 'Reciprocal',
  infer: unaryInfer,
  grad: (a) => [neg(a.g, mul(a.g, a.dy[0]!, mul(a.g, a.y[0]!, a.y[0]!)))],
});

// ---- Sigmoid ---------------------------------------------------------------
export const sigmoid = (g: Graph, x: Value): Value => g.op('Sigmoid', [x]);
registerOp({
  type: 'Sigmoid',
  infer: unaryInfer,
  grad: (a) => [mul(a.g, a.dy[0]!, mul(a.g, a.y[0]!, sub(a.g, a.g.scalar(1), a.y[0]!)))],
});

// ---- Tanh ------------------------------------------------------------------
export const tanh = (g: Graph, x: Value): Value => g.op('Tanh', [x]);
registerOp({
  type: 'Tanh',
  infer: unaryInfer,
  grad: (a) => [mul(a.g, a.dy[0]!, sub(a.g, a.g.scalar(1), mul(a.g, a.y[0]!, a.y[0]!)))],
});

// ---- Abs -------------------------------------------------------------------
export const abs = (g: Graph, x: Value): Value => g.op('Abs', [x]);
registerOp({
  type: 'Abs',
  infer: unaryInfer,
  grad: (a) => [mul(a.g, a.dy[0]!, a.g.op('Sign', [a.x[0]!]))],
});
// Sign is piecewise constant: its gradient is 0 (a.e.), so nothing flows back through it
registerOp({ type: 'Sign', infer: unaryInfer, grad: () => [null] });

// ---- Sum (variadic) --------------------------------------------------------
export const sum = (g: Graph, xs: Value[]): Value => (xs.length === 1 ? xs[0]! : g.op('Sum', xs));
registerOp({
  type: 'Sum',
  infer: (xs) => {
    const vs = requireInputs(xs, xs.length);
    if (!vs.length) throw new Error('Sum needs at least one input');
    return [{ dtype: vs[0]!.dtype, shape: broadcastShapes(...vs.map((v) => v.shape)) }];
  },
  grad: (a) => a.x.map((x, i) => (a.needs[i] ? sumToShape(a.g, a.dy[0]!, x!.shape) : null)),
  // ORT's CPU Sum runs on one thread, its Add on all: a balanced tree of Adds
  lowerFor: ({ g, x }) => {
    if (!g.lowering.cpu) return null;
    let level = x as Value[];
    while (level.length > 1) {
      const next: Value[] = [];
      for (let i = 0; i + 1 < level.length; i += 2) next.push(add(g, level[i]!, level[i + 1]!));
      if (level.length % 2) next.push(level[level.length - 1]!);
      level = next;
    }
    return [level[0]!];
  },
});

// ---- Where -----------------------------------------------------------------
export const where = (g: Graph, cond: Value, a: Value, b: Value): Value => g.op('Where', [cond, a, b]);
registerOp({
  type: 'Where',
  infer: (xs) => {
    const [c, a, b] = requireInputs(xs, 3);
    if (c!.dtype !== 'bool') throw new Error('Where condition must be bool');
    if (a!.dtype !== b!.dtype) throw new Error('Where branches differ in dtype');
    return [{ dtype: a!.dtype, shape: broadcastShapes(c!.shape, a!.shape, b!.shape) }];
  },
  grad: (a) => {
    const { g } = a;
    const [c, x1, x2] = a.x as Value[];
    const zero = g.scalar(0);
    return [
      null,
      a.needs[1] ? sumToShape(g, where(g, c!, a.dy[0]!, zero), x1!.shape) : null,
      a.needs[2] ? sumToShape(g, where(g, c!, zero, a.dy[0]!), x2!.shape) : null,
    ];
  },
});

// ---- Comparisons and logic (not differentiable) ----------------------------
export const greater = (g: Graph, a: Value, b: Value): Value => g.op('Greater', [a, b]);
export const less = (g: Graph, a: Value, b: Value): Value => g.op('Less', [a, b]);
export const equal = (g: Graph, a: Value, b: Value): Value => g.op('Equal', [a, b]);
for (const type of ['Greater', 'Less', 'Equal', 'GreaterOrEqual', 'LessOrEqual']) {
  registerOp({ type, infer: (xs) => binaryInfer(xs, 'bool') });
}
registerOp({ type: 'Not', infer: unaryInfer });
registerOp({ type: 'And', infer: (xs) => binaryInfer(xs) });

// ---- Cast ------------------------------------------------------------------
const ONNX_DTYPE_CODE: Record<DType, number> = { float32: 1, int32: 6, int64: 7, bool: 9 };
const DTYPE_OF_CODE = new Map(Object.entries(ONNX_DTYPE_CODE).map(([k, v]) => [v, k as DType]));
export const cast = (g: Graph, x: Value, to: DType): Value => g.op('Cast', [x], { to: A.i(ONNX_DTYPE_CODE[to]) });
registerOp({
  type: 'Cast',
  infer: (xs, attrs) => {
    const [x] = requireInputs(xs, 1);
    const to = DTYPE_OF_CODE.get(attrInt(attrs, 'to', -1));
    if (!to) throw new Error('Cast: unsupported target type');
    return [{ dtype: to, shape: [...x!.shape] }];
  },
  // float -> float casts pass the gradient through; integer results have none
  grad: (a) => [a.x[0]!.dtype === 'float32' && a.y[0]!.dtype === 'float32' ? a.dy[0]! : null],
});

// ---- Min / Max (two inputs) -------------------------------------------------
export const min = (g: Graph, a: Value, b: Value): Value => g.op('Min', [a, b]);
export const max = (g: Graph, a: Value, b: Value): Value => g.op('Max', [a, b]);
for (const [type, pick] of [
  ['Min', 'LessOrEqual'],
  ['Max', 'GreaterOrEqual'],
] as const) {
  registerOp({
    type,
    infer: (xs) => binaryInfer(xs),
    // ties send the gradient to the first operand
    grad: (a) => {
      const first = a.g.op(pick, [a.x[0]!, a.x[1]!]);
      const zero = a.g.scalar(0);
      return binaryGrad(
        a,
        () => where(a.g, first, a.dy[0]!, zero),
        () => where(a.g, first, zero, a.dy[0]!),
      );
    },
  });
}
