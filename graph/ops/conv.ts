/**
 * Convolutions and pools (Conv, ConvTranspose, MaxPool, AveragePool,
 * BatchNormalization in inference form): emitter, shape rule and gradient
 * rule of each. Gradients use only standard ops that run on the CUDA EP:
 *  - Conv's input gradient is a ConvTranspose with symmetric pads;
 *  - Conv's weight gradient is a Conv of the (transposed) input by the
 *    (transposed) output gradient, with stride and dilation swapped;
 *  - MaxPool's gradient scatters dy to the argmax indices (ScatterElements, add);
 *  - AveragePool's gradient is a depthwise ConvTranspose with a constant kernel;
 *  - inference-form BatchNormalization (frozen statistics) is a per-channel affine map.
 */
import { A, attrFloat, attrInt, attrInts, numel, tensorOf, type Attrs, type Graph, type Value } from '../ir.js';
import { registerOp, type OutSpec } from './registry.js';
import { requireInputs } from './util.js';
import { reshape, scatterAdd, slice, transpose, zeros } from './shape.js';
import { add, mul, pow, sub } from './elementwise.js';
import { reduceSum } from './reduce.js';
import { einsum } from './einsum.js';
import { matmulTransB } from './fusedmatmul.js';
import { convOut, geom, geomAttrs, type Geom } from './conv-geom.js';
import {
  depthwiseForward,
  depthwiseInputGrad,
  depthwiseWeightGrad,
  inputGradPads,
  nchwcDepthwise,
  reorderInput,
} from './nchwc.js';

export interface ConvOpts {
  stride?: number;
  pad?: number;
  dilation?: number;
  group?: number;
}

// ---- Conv ------------------------------------------------------------------
export function conv(g: Graph, x: Value, w: Value, o: ConvOpts = {}, bias: Value | null = null): Value {
  const k = w.shape.slice(2);
  const s = o.stride ?? 1;
  const p = o.pad ?? 0;
  const d = o.dilation ?? 1;
  return g.op('Conv', bias ? [x, w, bias] : [x, w], {
    kernel_shape: A.ints(k),
    strides: A.ints(k.map(() => s)),
    pads: A.ints([...k.map(() => p), ...k.map(() => p)]),
    dilations: A.ints(k.map(() => d)),
    group: A.i(o.group ?? 1),
  });
}

registerOp({
  type: 'Conv',
  infer: (xs, attrs) => {
    const [x, w] = requireInputs(xs, 2);
    const r = x!.shape.length - 2;
    const k = attrInts(attrs, 'kernel_shape', w!.shape.slice(2));
    const gm = geom(attrs, k);
    const [n, ci] = x!.shape;
    const co = w!.shape[0]!;
    if (w!.shape.length !== r + 2) throw new Error('weight rank mismatch');
    if (ci! % gm.group || co % gm.group || w!.shape[1]! * gm.group !== ci) {
      throw new Error(`channels ${ci} / weight ${w!.shape.join('×')} do not fit group ${gm.group}`);
    }
    if (xs[2] && (xs[2].shape.length !== 1 || xs[2].shape[0] !== co)) throw new Error('bias must be [Cout]');
    const sp = x!.shape.slice(2).map((h, i) => convOut(h, k[i]!, gm.s[i]!, gm.d[i]!, gm.p[i]!, gm.p[i + r]!));
    return [{ dtype: 'float32', shape: [n!, co, ...sp] }];
  },
  grad: (a) => {
    const { g } = a;
    const [x, w, b] = a.x;
    const dy = a.dy[0]!;
    const gm = geom(a.node.attrs, attrInts(a.node.attrs, 'kernel_shape', w!.shape.slice(2)));
    const db = b && a.needs[2] ? reduceSum(g, dy, [0, ...dy.shape.slice(2).map((_, i) => i + 2)], false) : null;
    if (nchwcDepthwise(g, x!, w!, gm)) return [...depthwiseGrads(g, x!, w!, dy, gm, a.needs), db];
    return [
      a.needs[0] ? convInputGrad(g, dy, w!, gm, x!.shape) : null,
      a.needs[1] ? convWeightGrad(g, x!, dy, gm, w!.shape) : null,
      db,
    ];
  },
  // CPU lowering: a depthwise conv runs in ORT's NCHWc layout (graph/ops/nchwc.ts)
  lowerFor: ({ g, node, x }) => {
    const [xv, w, b] = x;
    const gm = geom(node.attrs, attrInts(node.attrs, 'kernel_shape', w!.shape.slice(2)));
    return !b && nchwcDepthwise(g, xv!, w!, gm) ? [depthwiseForward(g, xv!, w!, gm)] : null;
  },
});

/** dx and dw of a depthwise conv in NCHWc; one reorder of dy serves both where it can. */
function depthwiseGrads(g: Graph, x: Value, w: Value, dy: Value, gm: Geom, needs: boolean[]): (Value | null)[] {
  const block = g.lowering.nchwcBlock!;
  const nchwcDx = needs[0] && inputGradPads(gm) !== null;
  const dyr = nchwcDx || (needs[1] && x.shape[1]! % block === 0) ? reorderInput(g, dy) : null;
  const dx = needs[0]
    ? nchwcDx
      ? depthwiseInputGrad(g, dyr!, w, gm, x.shape[1]!)
      : convInputGrad(g, dy, w, gm, x.shape)
    : null;
  const dw = needs[1] ? depthwiseWeightGrad(g, x, dy, dyr, gm) : null;
  return [dx, dw];
}

/** A 1×1 conv of one group with stride 1 and no padding. */
function isPointwise(gm: Geom): boolean {
  return gm.group === 1 && gm.k.every((k) => k === 1) && gm.s.every((s) => s === 1) && gm.p.every((p) => p === 0);
}

/**
 * dX of a conv: ConvTranspose of dy by the same weights, output_padding
 * restoring the input size. The CUDA EP rejects asymmetric ConvTranspose
 * pads, so for a conv padded asymmetrically the ConvTranspose crops the
 * smaller pad of each axis and a Slice takes off the rest.
 */
function convInputGrad(g: Graph, dy: Value, w: Value, gm: Geom, xShape: readonly number[]): Value {
  // CPU lowering: a pointwise conv's dx is the conv of dy by the transposed weights (ORT threads its
  // Conv over the batch, its ConvTranspose not at all)
  if (g.lowering.cpu && isPointwise(gm)) return g.op('Conv', [dy, transpose(g, w, [1, 0, 2, 3])], geomAttrs(gm));
  const r = gm.k.length;
  const q = gm.k.map((_, i) => Math.min(gm.p[i]!, gm.p[i + r]!));
  const symmetric = q.every((v, i) => v === gm.p[i] && v === gm.p[i + r]);
  // length of the ConvTranspose output (pads q) before output_padding, and the length it must reach
  const full = gm.k.map((k, i) => (dy.shape[i + 2]! - 1) * gm.s[i]! + gm.d[i]! * (k - 1) + 1 - 2 * q[i]!);
  const need = gm.k.map((_, i) => xShape[i + 2]! + gm.p[i]! - q[i]!);
  const adj = full.map((f, i) => Math.max(0, need[i]! - f));
  const ct = g.op(
    'ConvTranspose',
    [dy, w],
    geomAttrs({ ...gm, p: [...q, ...q] }, adj.some((v) => v) ? { output_padding: A.ints(adj) } : {}),
  );
  if (symmetric) return ct;
  const axes = gm.k.map((_, i) => i + 2);
  const begin = gm.k.map((_, i) => gm.p[i]! - q[i]!);
  return slice(
    g,
    ct,
    begin,
    begin.map((b, i) => b + xShape[i + 2]!),
    axes,
  );
}

/**
 * dW of a conv y = conv(x, W) with G groups (Cig input, Cog output channels each):
 *   dW[g·Cog+j, c, i, i'] = Σ_{n,oh,ow} dy[n, g·Cog+j, oh, ow] · x_pad[n, g·Cig+c, oh·s+i·d, ow·s+i'·d]
 * computed as one grouped conv with stride and dilation swapped, whose batch is
 * c, whose channels are (g, n) and whose kernels are the dy planes (Co, N):
 *   X' = x → [Cig, G·N, H, W],  K = dyᵀ [Co, N, Ho, Wo],  conv(X', K, group G) → [Cig, Co, k', k'].
 * k' exceeds k by ⌊((H + 2p − d(k−1) − 1) mod s) / d⌋ rows, cropped away.
 */
function convWeightGrad(g: Graph, x: Value, dy: Value, gm: Geom, wShape: readonly number[]): Value {
  const r = gm.k.length;
  if (r !== 2) throw new Error('weight gradient implemented for 2-D convs');
  const [n, ci, h, w] = x.shape as [number, number, number, number];
  const groups = gm.group;
  const cig = ci / groups;
  if (isPointwise(gm)) {
    // pointwise conv: dW = Σ_{n,h,w} dy ⊗ x, one GEMM-backed Einsum instead of a conv with an H×W kernel;
    // CPU lowering: dy_n · x_nᵀ per image (ORT's FusedMatMul reads x transposed), summed over the batch:
    // ~1.8× faster than ORT's Einsum
    if (!g.lowering.cpu) return reshape(g, einsum(g, 'nchw,nkhw->kc', x, dy), [...wShape]);
    const k = wShape[0]!;
    const prod = matmulTransB(g, reshape(g, dy, [n, k, h * w]), reshape(g, x, [n, ci, h * w])); // [N, K, C]
    return reshape(g, reduceSum(g, prod, [0], false), [...wShape]);
  }
  let xg: Value;
  if (groups === 1)
    xg = transpose(g, x, [1, 0, 2, 3]); // [Ci, N, H, W]
  else if (cig === 1)
    xg = reshape(g, transpose(g, x, [1, 0, 2, 3]), [1, ci * n, h, w]); // depthwise: [1, (C, N), H, W]
  else xg = reshape(g, transpose(g, reshape(g, x, [n, groups, cig, h, w]), [2, 1, 0, 3, 4]), [cig, groups * n, h, w]);
  const dyT = transpose(g, dy, [1, 0, 2, 3]); // [Co, N, Ho, Wo]
  let out = g.op('Conv', [xg, dyT], {
    strides: A.ints(gm.d),
    dilations: A.ints(gm.s),
    pads: A.ints(gm.p),
    group: A.i(groups),
  });
  const kk = out.shape.slice(2);
  if (kk[0] !== gm.k[0] || kk[1] !== gm.k[1]) out = slice(g, out, [0, 0], gm.k, [2, 3]);
  // [Cig, Co, k, k] → [Co, Cig, k, k]: a Reshape when Cig = 1
  return cig === 1 ? reshape(g, out, [...wShape]) : transpose(g, out, [1, 0, 2, 3]);
}

// ---- ConvTranspose ---------------------------------------------------------
export interface ConvTransposeOpts extends ConvOpts {
  /** Extra rows/cols at the end of the output (less than the stride). */
  outputPadding?: number;
}

/** Transposed conv; weight [Cin, Cout/group, k...], symmetric pads (as the CUDA EP needs). */
export function convTranspose(
  g: Graph,
  x: Value,
  w: Value,
  o: ConvTransposeOpts = {},
  bias: Value | null = null,
): Value {
  const k = w.shape.slice(2);
  const p = o.pad ?? 0;
  const attrs: Attrs = {
    kernel_shape: A.ints(k),
    strides: A.ints(k.map(() => o.stride ?? 1)),
    pads: A.ints([...k.map(() => p), ...k.map(() => p)]),
    dilations: A.ints(k.map(() => o.dilation ?? 1)),
    group: A.i(o.group ?? 1),
  };
  if (o.outputPadding) attrs.output_padding = A.ints(k.map(() => o.outputPadding!));
  return g.op('ConvTranspose', bias ? [x, w, bias] : [x, w], attrs);
}

registerOp({
  type: 'ConvTranspose',
  infer: (xs, attrs) => {
    const [x, w] = requireInputs(xs, 2);
    const r = x!.shape.length - 2;
    const k = attrInts(attrs, 'kernel_shape', w!.shape.slice(2));
    const gm = geom(attrs, k);
    const adj = attrInts(attrs, 'output_padding', new Array<number>(r).fill(0));
    if (attrs.output_shape) throw new Error('output_shape is not supported; give pads and output_padding');
    if (w!.shape[0] !== x!.shape[1]) throw new Error('weight must be [Cin, Cout/group, k...]');
    if (xs[2] && (xs[2].shape.length !== 1 || xs[2].shape[0] !== w!.shape[1]! * gm.group))
      throw new Error('bias must be [Cout]');
    const sp = x!.shape
      .slice(2)
      .map((h, i) => gm.s[i]! * (h - 1) + adj[i]! + gm.d[i]! * (k[i]! - 1) + 1 - gm.p[i]! - gm.p[i + r]!);
    return [{ dtype: 'float32', shape: [x!.shape[0]!, w!.shape[1]! * gm.group, ...sp] }];
  },
  // the adjoint of a transposed conv is a conv; its weight gradient is Conv's with x and dy swapped
  grad: (a) => {
    const { g } = a;
    const [x, w] = a.x;
    const dy = a.dy[0]!;
    const gm = geom(a.node.attrs, attrInts(a.node.attrs, 'kernel_shape', w!.shape.slice(2)));
    const dx = a.needs[0] ? g.op('Conv', [dy, w!], geomAttrs(gm)) : null;
    const dw = a.needs[1] ? convWeightGrad(g, dy, x!, gm, w!.shape) : null;
    const db = a.x[2] && a.needs[2] ? reduceSum(g, dy, [0, ...dy.shape.slice(2).map((_, i) => i + 2)], false) : null;
    return [dx, dw, db];
  },
});

// ---- MaxPool ---------------------------------------------------------------
export function maxPool(g: Graph, x: Value, k: number, stride: number, pad: number): Value {
  const attrs = {
    kernel_shape: A.ints([k, k]),
    strides: A.ints([stride, stride]),
    pads: A.ints([pad, pad, pad, pad]),
  };
  // training graphs keep the argmax indices for the backward pass
  return g.node('MaxPool', [x], attrs, g.training ? 2 : 1)[0]!;
}
function poolInfer(xs: (Value | null)[], attrs: Attrs): OutSpec[] {
  const [x] = requireInputs(xs, 1);
  const k = attrInts(attrs, 'kernel_shape', []);
  const gm = geom(attrs, k);
  const r = k.length;
  const ceil = attrInt(attrs, 'ceil_mode', 0) === 1;
  const sp = x!.shape.slice(2).map((h, i) => convOut(h, k[i]!, gm.s[i]!, gm.d[i]!, gm.p[i]!, gm.p[i + r]!, ceil));
  return [{ dtype: x!.dtype, shape: [x!.shape[0]!, x!.shape[1]!, ...sp] }];
}
registerOp({
  type: 'MaxPool',
  infer: (xs, attrs) => {
    const [y] = poolInfer(xs, attrs);
    return [y!, { dtype: 'int64', shape: [...y!.shape] }];
  },
  grad: (a) => {
    const { g } = a;
    const x = a.x[0]!;
    let idx = a.y[1];
    if (!idx) idx = g.node('MaxPool', [x], a.node.attrs, 2)[1]!; // inference-form node: recompute the argmax
    const flat = [numel(x.shape)];
    const dxFlat = scatterAdd(g, zeros(g, flat), reshape(g, idx, [-1]), reshape(g, a.dy[0]!, [-1]), 0);
    return [reshape(g, dxFlat, [...x.shape])];
  },
});

// ---- AveragePool -----------------------------------------------------------
/** Average pool; `countIncludePad` false excludes padding from the divisor, as DARTS does. */
export function avgPool(g: Graph, x: Value, k: number, stride: number, pad: number, countIncludePad = false): Value {
  return g.op('AveragePool', [x], {
    kernel_shape: A.ints([k, k]),
    strides: A.ints([stride, stride]),
    pads: A.ints([pad, pad, pad, pad]),
    count_include_pad: A.i(countIncludePad ? 1 : 0),
  });
}
registerOp({
  type: 'AveragePool',
  infer: poolInfer,
  grad: (a) => {
    const { g } = a;
    const x = a.x[0]!;
    const dy = a.dy[0]!;
    const k = attrInts(a.node.attrs, 'kernel_shape', []);
    if (k.length !== 2) throw new Error('AveragePool gradient implemented for 2-D pools');
    const gm = geom(a.node.attrs, k);
    const [ho, wo] = dy.shape.slice(2) as [number, number];
    const [h, w] = x.shape.slice(2) as [number, number];
    if (attrInt(a.node.attrs, 'ceil_mode', 0) === 1)
      throw new Error('AveragePool gradient: ceil_mode is not supported');
    const includePad = attrInt(a.node.attrs, 'count_include_pad', 0) === 1;
    // 1/count per output position (count = window cells inside the unpadded input)
    const inv = new Float32Array(ho * wo);
    for (let i = 0; i < ho; i++) {
      for (let j = 0; j < wo; j++) {
        const span = (o: number, s: number, p: number, kk: number, lim: number): number => {
          const b = o * s - p;
          return includePad ? kk : Math.min(b + kk, lim) - Math.max(b, 0);
        };
        inv[i * wo + j] = 1 / (span(i, gm.s[0]!, gm.p[0]!, k[0]!, h) * span(j, gm.s[1]!, gm.p[1]!, k[1]!, w));
      }
    }
    // one divisor everywhere (count_include_pad, or no window reaches the padding): fold it into the kernel
    const uniform = inv.every((v) => v === inv[0]);
    const scaled = uniform
      ? dy
      : mul(g, dy, g.constant({ dtype: 'float32', shape: [1, 1, ho, wo], data: inv }, 'avgpool_inv_count'));
    const c = x.shape[1]!;
    const kv = uniform ? inv[0]! : 1;
    const kernel = g.constant(
      tensorOf('float32', [c, 1, k[0]!, k[1]!], new Array<number>(c * k[0]! * k[1]!).fill(kv)),
      'avgpool_kernel',
      `avgpool_kernel|${c}|${k.join('x')}|${kv}`,
    );
    const kgm = { ...gm, d: [1, 1], group: c };
    // CPU lowering: a stride-1 pool's gradient as an NCHWc depthwise conv (ConvTranspose is not threaded over groups)
    const nchwc = nchwcDepthwise(g, x, kernel, kgm) && inputGradPads(kgm) !== null;
    return [
      nchwc
        ? depthwiseInputGrad(g, reorderInput(g, scaled), kernel, kgm, c)
        : convInputGrad(g, scaled, kernel, kgm, x.shape),
    ];
  },
});

// ---- BatchNormalization (inference form: running statistics) ----------------
export function batchNormInference(
  g: Graph,
  x: Value,
  scale: Value,
  bias: Value,
  mean: Value,
  variance: Value,
  eps: number,
): Value {
  return g.op('BatchNormalization', [x, scale, bias, mean, variance], { epsilon: A.f(eps) });
}
registerOp({
  type: 'BatchNormalization',
  infer: (xs, attrs) => {
    const [x] = requireInputs(xs, 5);
    if (attrInt(attrs, 'training_mode', 0) !== 0)
      throw new Error('only the inference form (training_mode 0); training BN is built from standard ops');
    return [{ dtype: x!.dtype, shape: [...x!.shape] }];
  },
  // y = γ·(x − μ)/√(v + ε) + β with μ, v fixed (frozen BN): dx = dy·γ/√(v + ε),
  // dγ = Σ dy·(x − μ) / √(v + ε), dβ = Σ dy (sums over all axes but the channel)
  grad: (a) => {
    const { g } = a;
    const [x, scale, , mean, variance] = a.x as Value[];
    if (a.needs[3] || a.needs[4]) throw new Error('BatchNormalization: no gradient w.r.t. the running statistics');
    const dy = a.dy[0]!;
    const c = x!.shape[1]!;
    const bshape = [1, c, ...x!.shape.slice(2).map(() => 1)];
    const axes = [0, ...x!.shape.slice(2).map((_, i) => i + 2)];
    const invStd = pow(g, add(g, variance!, g.scalar(attrFloat(a.node.attrs, 'epsilon', 1e-5))), -0.5); // [C]
    return [
      a.needs[0] ? mul(g, dy, reshape(g, mul(g, scale!, invStd), bshape)) : null,
      a.needs[1] ? mul(g, reduceSum(g, mul(g, dy, sub(g, x!, reshape(g, mean!, bshape))), axes, false), invStd) : null,
      a.needs[2] ? reduceSum(g, dy, axes, false) : null,
      null,
      null,
    ];
  },
});
