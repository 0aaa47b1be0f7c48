/**
 * Convolutions and pools (Conv, ConvTranspose, MaxPool, AveragePool,
 * BatchNormalization in inference form): emitter, shape rule and gradient
 * rule of each. Gradients use only standard ops that run on the CUDA EP:
 *  - Conv's input gradient is a ConvTranspose with symmetric pads;
 *  - Conv's weight gradient is a Conv of the (transposed) input by the
 *    (transposed) output gradient, with stride and dilation swapped;
 *  - MaxPool's gradient scatters dy to the argmax indices (ScatterElements, add);
 *  - AveragePool's gradient is a depthwise ConvTranspose with a ones kernel.
 */
import { A, attrInt, attrInts, attrString, numel, tensorOf, type Attrs, type Graph, type Value } from '../ir.js';
import { registerOp, type OutSpec } from './registry.js';
import { requireInputs } from './util.js';
import { expand, reshape, scatterAdd, slice, transpose, zeros } from './shape.js';
import { mul } from './elementwise.js';
import { reduceSum } from './reduce.js';

export interface ConvOpts {
  stride?: number;
  pad?: number;
  dilation?: number;
  group?: number;
}

interface Geom {
  k: number[];
  s: number[];
  d: number[];
  p: number[]; // [begin..., end...]
  group: number;
}

function geom(attrs: Attrs, k: number[]): Geom {
  const r = k.length;
  const p = attrInts(attrs, 'pads', new Array<number>(2 * r).fill(0));
  if (attrString(attrs, 'auto_pad', 'NOTSET') !== 'NOTSET') throw new Error('auto_pad is not supported; give pads');
  return {
    k,
    s: attrInts(attrs, 'strides', new Array<number>(r).fill(1)),
    d: attrInts(attrs, 'dilations', new Array<number>(r).fill(1)),
    p,
    group: attrInt(attrs, 'group', 1),
  };
}

function convOut(inp: number, k: number, s: number, d: number, pb: number, pe: number, ceil = false): number {
  const span = inp + pb + pe - d * (k - 1) - 1;
  if (span < 0) throw new Error(`kernel ${k} (dilation ${d}) larger than padded input ${inp + pb + pe}`);
  return (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
}

function geomAttrs(gm: Geom, extra: Attrs = {}): Attrs {
  return { kernel_shape: A.ints(gm.k), strides: A.ints(gm.s), dilations: A.ints(gm.d), pads: A.ints(gm.p), group: A.i(gm.group), ...extra };
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
    return [
      a.needs[0] ? convInputGrad(g, dy, w!, gm, x!.shape) : null,
      a.needs[1] ? convWeightGrad(g, x!, dy, gm, w!.shape) : null,
      b && a.needs[2] ? reduceSum(g, dy, [0, ...dy.shape.slice(2).map((_, i) => i + 2)], false) : null,
    ];
  },
});

/** dX of a conv: ConvTranspose of dy by the same weights, output_padding restoring the input size. */
function convInputGrad(g: Graph, dy: Value, w: Value, gm: Geom, xShape: readonly number[]): Value {
  const r = gm.k.length;
  const adj = gm.k.map((k, i) => {
    const full = (dy.shape[i + 2]! - 1) * gm.s[i]! + gm.d[i]! * (k - 1) + 1 - gm.p[i]! - gm.p[i + r]!;
    return xShape[i + 2]! - full;
  });
  return g.op('ConvTranspose', [dy, w], geomAttrs(gm, adj.some((v) => v) ? { output_padding: A.ints(adj) } : {}));
}

/**
 * dW of a conv y = conv(x, W): dW[co,ci,i,j] = Σ_{n,oh,ow} dy[n,co,oh,ow]·x_pad[n,ci,oh·s+i·d,ow·s+j·d],
 * computed as a conv over the batch axis with stride and dilation swapped.
 */
function convWeightGrad(g: Graph, x: Value, dy: Value, gm: Geom, wShape: readonly number[]): Value {
  const r = gm.k.length;
  if (r !== 2) throw new Error('weight gradient implemented for 2-D convs');
  const [n, ci] = x.shape as number[];
  const co = dy.shape[1]!;
  const groups = gm.group;
  const cig = ci! / groups;
  const cog = co / groups;
  const attrs = (grp: number): Attrs => ({
    strides: A.ints(gm.d),
    dilations: A.ints(gm.s),
    pads: A.ints(gm.p),
    group: A.i(grp),
  });
  // the conv may produce a few extra rows/cols past the kernel when (H + 2p − k) % s ≠ 0
  const crop = (v: Value): Value => {
    const kk = v.shape.slice(-2);
    return kk[0] === gm.k[0] && kk[1] === gm.k[1] ? v : slice(g, v, [0, 0], gm.k, [2, 3]);
  };
  const xT = transpose(g, x, [1, 0, 2, 3]); // [Ci, N, H, W]
  const dyT = transpose(g, dy, [1, 0, 2, 3]); // [Co, N, Ho, Wo]
  if (groups === 1) {
    // batch := Ci, channels := N; kernels := dy planes → [Ci, Co, k', k']
    const out = g.op('Conv', [xT, dyT], attrs(1));
    return transpose(g, crop(out), [1, 0, 2, 3]);
  }
  // grouped: one conv group per input channel ci, reading its N planes and producing the
  // Cog kernels of the outputs of ci's group → [1, Ci·Cog, k', k']
  const xr = reshape(g, xT, [1, ci! * n!, ...x.shape.slice(2)]);
  let wr: Value = dyT;
  if (cig > 1) {
    wr = reshape(g, expand(g, reshape(g, dyT, [groups, 1, cog, n!, ...dy.shape.slice(2)]), [groups, cig, cog, n!, ...dy.shape.slice(2)]), [ci! * cog, n!, ...dy.shape.slice(2)]);
  }
  const out = g.op('Conv', [xr, wr], attrs(ci!)); // [1, Ci·Cog, k', k']
  if (cog === 1) return reshape(g, crop(out), [...wShape]);
  const o5 = reshape(g, crop(out), [groups, cig, cog, gm.k[0]!, gm.k[1]!]);
  return reshape(g, transpose(g, o5, [0, 2, 1, 3, 4]), [...wShape]);
}

// ---- ConvTranspose ---------------------------------------------------------
registerOp({
  type: 'ConvTranspose',
  infer: (xs, attrs) => {
    const [x, w] = requireInputs(xs, 2);
    const r = x!.shape.length - 2;
    const k = attrInts(attrs, 'kernel_shape', w!.shape.slice(2));
    const gm = geom(attrs, k);
    const adj = attrInts(attrs, 'output_padding', new Array<number>(r).fill(0));
    if (w!.shape[0] !== x!.shape[1]) throw new Error('weight must be [Cin, Cout/group, k...]');
    const sp = x!.shape.slice(2).map((h, i) => gm.s[i]! * (h - 1) + adj[i]! + gm.d[i]! * (k[i]! - 1) + 1 - gm.p[i]! - gm.p[i + r]!);
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
    return [dx, dw, null];
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
    const scaled = mul(g, dy, g.constant({ dtype: 'float32', shape: [1, 1, ho, wo], data: inv }, 'avgpool_inv_count'));
    const c = x.shape[1]!;
    const ones = g.constant(tensorOf('float32', [c, 1, k[0]!, k[1]!], new Array<number>(c * k[0]! * k[1]!).fill(1)), 'ones_kernel', `ones|${c}|${k.join('x')}`);
    return [convInputGrad(g, scaled, ones, { ...gm, d: [1, 1], group: c }, x.shape)];
  },
});

// ---- BatchNormalization (inference form: running statistics) ----------------
export function batchNormInference(g: Graph, x: Value, scale: Value, bias: Value, mean: Value, variance: Value, eps: number): Value {
  return g.op('BatchNormalization', [x, scale, bias, mean, variance], { epsilon: A.f(eps) });
}
registerOp({
  type: 'BatchNormalization',
  infer: (xs) => {
    const [x] = requireInputs(xs, 5);
    return [{ dtype: x!.dtype, shape: [...x!.shape] }];
  },
});
