/** Shape helpers shared by the shape and gradient rules. */
import { type Graph, type Value, shapeStr } from '../ir.js';

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Numpy-style multidirectional broadcasting. */
export function broadcastShapes(...shapes: (readonly number[])[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const k = s.length - rank + i;
      const sd = k >= 0 ? s[k]! : 1;
      if (sd === 1) continue;
      if (d !== 1 && d !== sd) throw new Error(`cannot broadcast ${shapes.map(shapeStr).join(' and ')}`);
      d = sd;
    }
    out.push(d);
  }
  return out;
}

export function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

export function requireInputs(xs: readonly (Value | null)[], n: number): Value[] {
  for (let i = 0; i < n; i++) if (!xs[i]) throw new Error(`input ${i} is required`);
  return xs as Value[];
}

/**
 * Reduce a gradient of a broadcast result back to an operand's shape:
 * ReduceSum over broadcast axes, then Reshape if the rank differs.
 */
export function sumToShape(g: Graph, dy: Value, shape: readonly number[]): Value {
  if (sameShape(dy.shape, shape)) return dy;
  const r = dy.shape.length;
  const lead = r - shape.length;
  if (lead < 0) throw new Error(`cannot reduce a gradient of shape ${shapeStr(dy.shape)} to ${shapeStr(shape)}`);
  const padded = [...new Array<number>(lead).fill(1), ...shape];
  const axes: number[] = [];
  for (let i = 0; i < r; i++) if (padded[i] === 1 && dy.shape[i] !== 1) axes.push(i);
  // only leading (broadcast-added) axes to sum: keepdims 0 lands on the shape in one node
  if (axes.length && axes.length === lead && axes.every((a, i) => a === i) && sameShape(dy.shape.slice(lead), shape)) {
    return g.op('ReduceSum', [dy, g.int64s(axes)], { keepdims: { kind: 'int', v: 0 } });
  }
  let out = dy;
  if (axes.length) out = g.op('ReduceSum', [dy, g.int64s(axes)], { keepdims: { kind: 'int', v: 1 } });
  if (!sameShape(out.shape, shape)) out = g.op('Reshape', [out, g.int64s(shape as number[])]);
  return out;
}

/** The values of a constant int64 tensor (shape, axes, pads...), which shape rules need statically. */
export function constInts(g: Graph, v: Value | null | undefined, what: string): number[] {
  if (!v) throw new Error(`${what} is required`);
  const t = g.constants.get(v.name);
  if (!t) throw new Error(`${what} must be a constant (got graph value '${v.name}')`);
  return Array.from(t.data as ArrayLike<number | bigint>, Number);
}

export function inversePerm(perm: readonly number[]): number[] {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return inv;
}
