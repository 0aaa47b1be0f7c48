/**
 * Data-movement ops (Reshape, Transpose, Concat, Split, Slice, Pad, Squeeze,
 * Unsqueeze, Flatten, Expand, Gather, ScatterElements): emitter, shape rule
 * and gradient rule of each, side by side.
 */
import { A, attrInt, attrInts, attrString, numel, shapeStr, type Graph, type Value } from '../ir.js';
import { registerOp } from './registry.js';
import { broadcastShapes, constInts, inversePerm, normAxis, requireInputs, sumToShape } from './util.js';

// ---- Reshape ---------------------------------------------------------------
export const reshape = (g: Graph, x: Value, shape: readonly number[]): Value => g.op('Reshape', [x, g.int64s(shape)]);
registerOp({
  type: 'Reshape',
  infer: (xs, _attrs, g) => {
    const [x, s] = requireInputs(xs, 2);
    const spec = constInts(g, s, 'Reshape shape');
    const out = spec.map((d, i) => (d === 0 ? x!.shape[i]! : d));
    const known = out.filter((d) => d !== -1).reduce((p, d) => p * d, 1);
    const holes = out.filter((d) => d === -1).length;
    if (holes > 1) throw new Error('at most one -1 in a shape');
    if (holes === 1) out[out.indexOf(-1)] = numel(x!.shape) / known;
    if (numel(out) !== numel(x!.shape) || !out.every(Number.isInteger)) {
      throw new Error(`cannot reshape ${shapeStr(x!.shape)} to ${shapeStr(spec)}`);
    }
    return [{ dtype: x!.dtype, shape: out }];
  },
  grad: (a) => [reshape(a.g, a.dy[0]!, a.x[0]!.shape), null],
});

// ---- Transpose -------------------------------------------------------------
export const transpose = (g: Graph, x: Value, perm: number[]): Value => g.op('Transpose', [x], { perm: A.ints(perm) });
registerOp({
  type: 'Transpose',
  infer: (xs, attrs) => {
    const [x] = requireInputs(xs, 1);
    const perm = attrInts(attrs, 'perm', [...x!.shape.keys()].reverse());
    if (perm.length !== x!.shape.length) throw new Error('perm rank mismatch');
    return [{ dtype: x!.dtype, shape: perm.map((p) => x!.shape[p]!) }];
  },
  grad: (a) => {
    const perm = attrInts(a.node.attrs, 'perm', [...a.x[0]!.shape.keys()].reverse());
    return [transpose(a.g, a.dy[0]!, inversePerm(perm))];
  },
});

// ---- Concat ----------------------------------------------------------------
export const concat = (g: Graph, xs: Value[], axis: number): Value =>
  xs.length === 1 ? xs[0]! : g.op('Concat', xs, { axis: A.i(axis) });
registerOp({
  type: 'Concat',
  infer: (xs, attrs) => {
    const vs = requireInputs(xs, xs.length);
    const r = vs[0]!.shape.length;
    const axis = normAxis(attrInt(attrs, 'axis', 0), r);
    const out = [...vs[0]!.shape];
    out[axis] = 0;
    for (const v of vs) {
      if (v.shape.length !== r || v.shape.some((d, i) => i !== axis && d !== vs[0]!.shape[i])) {
        throw new Error(`shapes ${vs.map((u) => shapeStr(u.shape)).join(' ')} do not concatenate on axis ${axis}`);
      }
      out[axis] += v.shape[axis]!;
    }
    return [{ dtype: vs[0]!.dtype, shape: out }];
  },
  // one Split node hands every input its slice of the gradient
  grad: (a) => {
    const axis = normAxis(attrInt(a.node.attrs, 'axis', 0), a.x[0]!.shape.length);
    const parts = split(
      a.g,
      a.dy[0]!,
      a.x.map((x) => x!.shape[axis]!),
      axis,
    );
    return parts.map((p, i) => (a.needs[i] ? p : null));
  },
});

// ---- Split -----------------------------------------------------------------
export const split = (g: Graph, x: Value, sizes: number[], axis: number): Value[] =>
  g.node('Split', [x, g.int64s(sizes)], { axis: A.i(axis) });
registerOp({
  type: 'Split',
  infer: (xs, attrs, g) => {
    const [x, s] = requireInputs(xs, 2);
    const axis = normAxis(attrInt(attrs, 'axis', 0), x!.shape.length);
    const sizes = constInts(g, s, 'Split sizes');
    if (sizes.reduce((p, q) => p + q, 0) !== x!.shape[axis]) throw new Error('split sizes do not add up');
    return sizes.map((d) => {
      const sh = [...x!.shape];
      sh[axis] = d;
      return { dtype: x!.dtype, shape: sh };
    });
  },
  grad: (a) => {
    const axis = normAxis(attrInt(a.node.attrs, 'axis', 0), a.x[0]!.shape.length);
    const parts = a.dy.map((d, i) => d ?? zerosLike(a.g, a.y[i]!));
    return [concat(a.g, parts, axis), null];
  },
});

/** A zero tensor of the given shape: a constant scalar Expanded, one node (no large constant). */
export function zeros(g: Graph, shape: readonly number[]): Value {
  return g.op('Expand', [g.scalar(0), g.int64s(shape)]);
}

export const zerosLike = (g: Graph, v: Value): Value => zeros(g, v.shape);

// ---- Slice (constant starts/ends/axes, step 1) ------------------------------
export function slice(g: Graph, x: Value, starts: number[], ends: number[], axes: number[]): Value {
  return g.op('Slice', [x, g.int64s(starts), g.int64s(ends), g.int64s(axes)]);
}
function sliceBounds(g: Graph, xs: (Value | null)[]): { x: Value; begin: number[]; end: number[] } {
  const [x] = requireInputs(xs, 3);
  const starts = constInts(g, xs[1], 'Slice starts');
  const ends = constInts(g, xs[2], 'Slice ends');
  const r = x!.shape.length;
  const axes = xs[3] ? constInts(g, xs[3], 'Slice axes').map((a) => normAxis(a, r)) : starts.map((_, i) => i);
  if (xs[4] && constInts(g, xs[4], 'Slice steps').some((s) => s !== 1)) throw new Error('only step 1 is supported');
  const begin = x!.shape.map(() => 0);
  const end = [...x!.shape];
  axes.forEach((ax, i) => {
    const d = x!.shape[ax]!;
    const clamp = (v: number): number => Math.min(Math.max(v < 0 ? v + d : v, 0), d);
    begin[ax] = clamp(starts[i]!);
    end[ax] = Math.max(clamp(ends[i]!), begin[ax]!);
  });
  return { x: x!, begin, end };
}
registerOp({
  type: 'Slice',
  infer: (xs, _a, g) => {
    const { x, begin, end } = sliceBounds(g, xs);
    return [{ dtype: x.dtype, shape: begin.map((b, i) => end[i]! - b) }];
  },
  // zero-pad the gradient back to the input's extent
  grad: (a) => {
    const { x, begin, end } = sliceBounds(a.g, a.x);
    const pads = [...begin, ...end.map((e, i) => x.shape[i]! - e)];
    return [pad(a.g, a.dy[0]!, pads), null, null, null, null];
  },
});

// ---- Pad (constant mode, constant pads) ------------------------------------
export const pad = (g: Graph, x: Value, pads: number[], value = 0): Value =>
  pads.every((p) => p === 0) ? x : g.op('Pad', [x, g.int64s(pads), g.scalar(value)], { mode: A.s('constant') });
registerOp({
  type: 'Pad',
  infer: (xs, attrs, g) => {
    const [x] = requireInputs(xs, 2);
    if (attrString(attrs, 'mode', 'constant') !== 'constant') throw new Error('only constant padding');
    if (xs[3]) throw new Error('the Pad axes input is not supported; give pads for every axis');
    const pads = constInts(g, xs[1], 'Pad pads');
    const r = x!.shape.length;
    if (pads.length !== 2 * r) throw new Error('pads must have 2×rank entries');
    const out = x!.shape.map((d, i) => d + pads[i]! + pads[i + r]!);
    if (out.some((d) => d < 0)) throw new Error('negative size after padding');
    return [{ dtype: x!.dtype, shape: out }];
  },
  grad: (a) => {
    const x = a.x[0]!;
    const r = x.shape.length;
    const pads = constInts(a.g, a.x[1], 'Pad pads');
    if (pads.some((p) => p < 0)) throw new Error('Pad gradient: negative pads are not supported');
    const axes = [...x.shape.keys()];
    return [
      slice(
        a.g,
        a.dy[0]!,
        pads.slice(0, r),
        axes.map((i) => pads[i]! + x.shape[i]!),
        axes,
      ),
      null,
      null,
    ];
  },
});

// ---- Squeeze / Unsqueeze / Flatten: pure reshapes ---------------------------
export const unsqueeze = (g: Graph, x: Value, axes: number[]): Value => g.op('Unsqueeze', [x, g.int64s(axes)]);
export const squeeze = (g: Graph, x: Value, axes: number[]): Value => g.op('Squeeze', [x, g.int64s(axes)]);
export const flatten = (g: Graph, x: Value, axis = 1): Value => g.op('Flatten', [x], { axis: A.i(axis) });
const reshapeGrad = (a: { g: Graph; x: (Value | null)[]; dy: (Value | null)[] }): (Value | null)[] => [
  reshape(a.g, a.dy[0]!, a.x[0]!.shape),
  null,
];
registerOp({
  type: 'Unsqueeze',
  infer: (xs, _a, g) => {
    const [x] = requireInputs(xs, 2);
    const r = x!.shape.length + constInts(g, xs[1], 'Unsqueeze axes').length;
    const axes = constInts(g, xs[1], 'Unsqueeze axes').map((a) => normAxis(a, r));
    const out: number[] = [];
    let k = 0;
    for (let i = 0; i < r; i++) out.push(axes.includes(i) ? 1 : x!.shape[k++]!);
    return [{ dtype: x!.dtype, shape: out }];
  },
  grad: reshapeGrad,
});
registerOp({
  type: 'Squeeze',
  infer: (xs, _a, g) => {
    const [x] = requireInputs(xs, 2);
    const axes = constInts(g, xs[1], 'Squeeze axes').map((a) => normAxis(a, x!.shape.length));
    if (axes.some((a) => x!.shape[a] !== 1)) throw new Error('can only squeeze size-1 axes');
    return [{ dtype: x!.dtype, shape: x!.shape.filter((_, i) => !axes.includes(i)) }];
  },
  grad: reshapeGrad,
});
registerOp({
  type: 'Flatten',
  infer: (xs, attrs) => {
    const [x] = requireInputs(xs, 1);
    const axis = attrInt(attrs, 'axis', 1);
    return [{ dtype: x!.dtype, shape: [numel(x!.shape.slice(0, axis)), numel(x!.shape.slice(axis))] }];
  },
  grad: reshapeGrad,
});

// ---- Expand ----------------------------------------------------------------
export const expand = (g: Graph, x: Value, shape: number[]): Value => g.op('Expand', [x, g.int64s(shape)]);
registerOp({
  type: 'Expand',
  infer: (xs, _a, g) => {
    const [x] = requireInputs(xs, 2);
    return [{ dtype: x!.dtype, shape: broadcastShapes(x!.shape, constInts(g, xs[1], 'Expand shape')) }];
  },
  grad: (a) => [sumToShape(a.g, a.dy[0]!, a.x[0]!.shape), null],
});

// ---- Gather ----------------------------------------------------------------
export const gather = (g: Graph, data: Value, indices: Value, axis = 0): Value =>
  g.op('Gather', [data, indices], { axis: A.i(axis) });
registerOp({
  type: 'Gather',
  infer: (xs, attrs) => {
    const [d, i] = requireInputs(xs, 2);
    if (i!.dtype !== 'int64' && i!.dtype !== 'int32') throw new Error('indices must be integers');
    const axis = normAxis(attrInt(attrs, 'axis', 0), d!.shape.length);
    return [{ dtype: d!.dtype, shape: [...d!.shape.slice(0, axis), ...i!.shape, ...d!.shape.slice(axis + 1)] }];
  },
  // scatter-add the gradient back along the axis (ScatterElements, reduction add: repeated
  // indices accumulate). Indices of rank ≠ 1 are flattened, dy reshaped to match.
  grad: (a) => {
    const { g } = a;
    const [d, idx] = a.x as Value[];
    const axis = normAxis(attrInt(a.node.attrs, 'axis', 0), d!.shape.length);
    const m = numel(idx!.shape);
    const dyShape = d!.shape.map((s, k) => (k === axis ? m : s));
    const dy = idx!.shape.length === 1 ? a.dy[0]! : reshape(g, a.dy[0]!, dyShape);
    const view = d!.shape.map((_, k) => (k === axis ? m : 1));
    const full = expand(g, reshape(g, idx!, view), dyShape);
    return [scatterAdd(g, zerosLike(g, d!), full, dy, axis), null];
  },
});

// ---- ScatterElements (reduction add; used by gradient rules) ----------------
export const scatterAdd = (g: Graph, data: Value, indices: Value, updates: Value, axis: number): Value =>
  g.op('ScatterElements', [data, indices, updates], { axis: A.i(axis), reduction: A.s('add') });
registerOp({
  type: 'ScatterElements',
  infer: (xs) => {
    const [d, i, u] = requireInputs(xs, 3);
    if (i!.shape.length !== d!.shape.length || u!.shape.join() !== i!.shape.join())
      throw new Error('ScatterElements shape mismatch');
    return [{ dtype: d!.dtype, shape: [...d!.shape] }];
  },
});
