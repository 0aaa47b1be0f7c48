/**
 * onnxruntime's FusedMatMul (domain com.microsoft): a batched MatMul whose
 * operands may be read transposed (last two axes) without a Transpose pass.
 * Only the CPU lowering emits it (in gradient rules), so it has no gradient rule.
 */
import { A, attrInt, shapeStr, type Graph, type Value } from '../ir.js';
import { registerOp } from './registry.js';
import { broadcastShapes, requireInputs } from './util.js';

registerOp({
  type: 'FusedMatMul',
  domain: 'com.microsoft',
  infer: (xs, attrs) => {
    const [a, b] = requireInputs(xs, 2);
    if (a!.shape.length < 2 || b!.shape.length < 2) throw new Error('FusedMatMul operands must have rank ≥ 2');
    const last = (v: Value, t: boolean): [number, number] => {
      const [r, c] = v.shape.slice(-2) as [number, number];
      return t ? [c, r] : [r, c];
    };
    const [m, k] = last(a!, attrInt(attrs, 'transA', 0) === 1);
    const [k2, n] = last(b!, attrInt(attrs, 'transB', 0) === 1);
    if (k !== k2) throw new Error(`inner dimensions differ: ${shapeStr(a!.shape)} × ${shapeStr(b!.shape)}`);
    const batch = broadcastShapes(a!.shape.slice(0, -2), b!.shape.slice(0, -2));
    return [{ dtype: 'float32', shape: [...batch, m, n] }];
  },
});

/** a·bᵀ over the last two axes (batched), with no Transpose of b. */
export const matmulTransB = (g: Graph, a: Value, b: Value): Value => g.op('FusedMatMul', [a, b], { transB: A.i(1) });
