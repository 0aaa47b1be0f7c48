/**
 * onnxruntime's NCHWc CPU kernels (domain com.microsoft.nchwc) and the
 * depthwise-convolution formulations built on them, used when g.lowering sets
 * an NCHWc block size B (graphs run on ORT's CPU EP). ORT's plain Conv runs a
 * depthwise conv as one small GEMM per (image, channel), its ConvTranspose is
 * not threaded over groups, and the standard weight gradient (a grouped conv
 * with an H×W kernel) is slower still; the blocked kernels vectorize over B
 * channels at once.
 *
 * Layout: NCHWc holds [N, ⌈C/B⌉, H, W, B] (channels zero-padded to a multiple of B)
 * under the IR shape [N, ⌈C/B⌉·B, H, W]. A depthwise filter [C, 1, kh, kw] is
 * reordered to [⌈C/B⌉, kh·kw, B] (MLAS's OIHWBo format).
 *
 * For y = depthwise(x, w) with stride s, dilation d, pads p:
 *  - forward: ReorderInput(x) → nchwc.Conv → ReorderOutput;
 *  - dx (stride 1): the correlation of dy with the spatially flipped filter, pads d(k−1) − p;
 *  - dw[c, i, j] = Σ_n Σ_hw dy[n, c, h, w] · x_pad[n, c, h·s + i·d, w·s + j·d]: a
 *    depthwise conv over the N·C planes of x (as [1, N·C, H, W]) whose kernels
 *    are the dy planes, with stride d and dilation s, summed over n.
 * The filter form of the N·C planes of dy is the NCHWc form of dy seen as
 * [1, N·C, Ho, Wo]; when B divides C it is also that of dy itself (same bytes),
 * so one reorder of dy serves both gradients.
 */
import { A, attrInt, attrInts, tensorOf, type Graph, type Value } from '../ir.js';
import { convOut, geom, geomAttrs, type Geom } from './conv-geom.js';
import { registerOp } from './registry.js';
import { gather, pad, reshape, slice } from './shape.js';
import { reduceSum } from './reduce.js';
import { requireInputs } from './util.js';

export const NCHWC_DOMAIN = 'com.microsoft.nchwc';

function blockOf(g: Graph): number {
  const b = g.lowering.nchwcBlock;
  if (!b) throw new Error('NCHWc ops need g.lowering.nchwcBlock');
  return b;
}

const roundUp = (c: number, b: number): number => Math.ceil(c / b) * b;

registerOp({
  type: 'NchwcReorderInput',
  domain: NCHWC_DOMAIN,
  onnxType: 'ReorderInput',
  infer: (xs, _attrs, g) => {
    const [x] = requireInputs(xs, 1);
    const [n, c, h, w] = x!.shape as [number, number, number, number];
    if (x!.shape.length !== 4) throw new Error('NCHWc reorder needs a rank-4 tensor');
    if (c % 4) throw new Error(`NCHWc reorder needs a channel count divisible by 4 (got ${c})`);
    return [{ dtype: 'float32', shape: [n, roundUp(c, blockOf(g)), h, w] }];
  },
});

registerOp({
  type: 'NchwcReorderOutput',
  domain: NCHWC_DOMAIN,
  onnxType: 'ReorderOutput',
  infer: (xs, attrs, g) => {
    const [x] = requireInputs(xs, 1);
    const [n, cp, h, w] = x!.shape as [number, number, number, number];
    const c = attrInt(attrs, 'channels', 0);
    const b = blockOf(g);
    if (cp % b || c > cp || cp - c >= b) throw new Error(`${c} channels do not fit an NCHWc tensor of ${cp}`);
    return [{ dtype: 'float32', shape: [n, c, h, w] }];
  },
});

registerOp({
  type: 'NchwcConv',
  domain: NCHWC_DOMAIN,
  onnxType: 'Conv',
  infer: (xs, attrs, g) => {
    const [x, w] = requireInputs(xs, 2);
    const b = blockOf(g);
    const k = attrInts(attrs, 'kernel_shape', w!.shape.slice(2));
    const gm = geom(attrs, k);
    const [n, c] = x!.shape as [number, number];
    if (c >= b && c % b) throw new Error(`NCHWc conv input of ${c} channels (block ${b})`);
    if (w!.shape[0]! % b || w!.shape[1]! * gm.group !== c) throw new Error('NCHWc conv filter does not fit');
    const sp = x!.shape.slice(2).map((h, i) => convOut(h, k[i]!, gm.s[i]!, gm.d[i]!, gm.p[i]!, gm.p[i + 2]!));
    return [{ dtype: 'float32', shape: [n, w!.shape[0]!, ...sp] }];
  },
});

export const reorderInput = (g: Graph, x: Value): Value => g.op('NchwcReorderInput', [x]);
export const reorderOutput = (g: Graph, x: Value, channels: number): Value =>
  g.op('NchwcReorderOutput', [x], { channels: A.i(channels) });

/**
 * Depthwise filter [C, 1, kh, kw] → NCHWc filter [⌈C/B⌉·B, 1, kh, kw] (OIHWBo order: block,
 * kernel position, channel in block), spatially flipped when `flip` (the flip of both
 * axes reverses the kh·kw index): one Gather of the flat filter by a constant permutation.
 */
function depthwiseFilter(g: Graph, w: Value, flip: boolean): Value {
  const b = blockOf(g);
  const [c, , kh, kw] = w.shape as [number, number, number, number];
  const k = kh * kw;
  const cp = roundUp(c, b);
  const perm = new Array<number>(cp * k);
  for (let cb = 0; cb < cp / b; cb++)
    for (let q = 0; q < k; q++)
      for (let j = 0; j < b; j++) perm[(cb * k + q) * b + j] = (cb * b + j) * k + (flip ? k - 1 - q : q);
  const flat = pad(g, flatView(g, w), [0, (cp - c) * k]); // padded channels read zeros
  // indices shaped as the filter: the Gather's output has that shape, no Reshape after it
  const idx = g.constant(
    tensorOf('int64', [cp, 1, kh, kw], perm),
    'nchwc_filter',
    `nchwc_filter|${cp}|${k}|${b}|${flip}`,
  );
  return gather(g, flat, idx, 0);
}

/** x as a 1-D value: the 1-D value a Reshape made it from (a flat-buffer parameter's Split piece), or a Reshape. */
function flatView(g: Graph, x: Value): Value {
  const n = x.shape.reduce((p, d) => p * d, 1);
  const p = g.producerOf(x.name);
  if (p?.op === 'Reshape' && p.inputs[0]) {
    const src = g.value(p.inputs[0]);
    if (src.shape.length === 1 && src.shape[0] === n) return src;
  }
  return reshape(g, x, [n]);
}

const reorderCache = new WeakMap<Graph, Map<string, Value>>();

/**
 * ReorderInput of x, once per x and `site`: the forward convs of one input (an edge's
 * four conv ops read one shared ReLU) share one reorder, and so do their weight
 * gradients; forward and backward do not share, so no reordered copy lives from
 * the forward pass to the backward pass.
 */
function reorderOnce(g: Graph, x: Value, site: 'forward' | 'backward', view?: number[]): Value {
  let m = reorderCache.get(g);
  if (!m) reorderCache.set(g, (m = new Map()));
  const key = `${site}|${x.name}|${view ?? ''}`;
  let r = m.get(key);
  if (!r) m.set(key, (r = reorderInput(g, view ? reshape(g, x, view) : x)));
  return r;
}

/** Whether the NCHWc formulations apply to conv(x, w) of geometry gm in graph g. */
export function nchwcDepthwise(g: Graph, x: Value, w: Value, gm: Geom): boolean {
  const c = x.shape[1]!;
  return (
    !!g.lowering.nchwcBlock &&
    x.shape.length === 4 &&
    gm.group === c &&
    w.shape[0] === c &&
    w.shape[1] === 1 &&
    c % 4 === 0 &&
    (x.shape[0]! * c) % 4 === 0
  );
}

function nchwcConv(g: Graph, xr: Value, wr: Value, gm: Geom): Value {
  return g.op('NchwcConv', [xr, wr], geomAttrs(gm));
}

/** y = depthwise conv of x (NCHW) by w, in NCHWc. */
export function depthwiseForward(g: Graph, x: Value, w: Value, gm: Geom): Value {
  const c = x.shape[1]!;
  const cp = roundUp(c, blockOf(g));
  const xr = reorderOnce(g, x, 'forward');
  return reorderOutput(g, nchwcConv(g, xr, depthwiseFilter(g, w, false), { ...gm, group: cp }), c);
}

/** The pads of the flipped-filter correlation that gives dx of a depthwise conv (null: it does not apply). */
export function inputGradPads(gm: Geom): number[] | null {
  if (gm.s.some((s) => s !== 1)) return null;
  const q = gm.p.map((p, i) => gm.d[i % 2]! * (gm.k[i % 2]! - 1) - p);
  return q.some((v) => v < 0) ? null : q;
}

/** dx of a stride-1 depthwise conv from the reordered dy (callers check inputGradPads first). */
export function depthwiseInputGrad(g: Graph, dyr: Value, w: Value, gm: Geom, channels: number): Value {
  const q = inputGradPads(gm);
  if (!q) throw new Error('depthwiseInputGrad: strided conv or pads beyond the kernel reach');
  const filter = depthwiseFilter(g, w, true);
  return reorderOutput(g, nchwcConv(g, dyr, filter, { ...gm, p: q, group: dyr.shape[1]! }), channels);
}

/** dw of a depthwise conv: the N·C planes of x convolved with the dy planes, summed over the batch. */
export function depthwiseWeightGrad(g: Graph, x: Value, dy: Value, dyr: Value | null, gm: Geom): Value {
  const b = blockOf(g);
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const [ho, wo] = dy.shape.slice(2) as [number, number];
  const nc = n * c;
  const ncp = roundUp(nc, b);
  const xr = reorderOnce(g, x, 'backward', [1, nc, h, w]);
  // the filter form of dy's N·C planes is the NCHWc form of dy seen as [1, N·C, Ho, Wo]: when B
  // divides C, also that of dy itself (no padding between images), so dx's reorder serves
  const planes = dyr && c % b === 0 ? dyr : reorderInput(g, reshape(g, dy, [1, nc, ho, wo]));
  const kernel = reshape(g, planes, [ncp, 1, ho, wo]);
  const kgm: Geom = { k: [ho, wo], s: gm.d, d: gm.s, p: gm.p, group: ncp };
  let out = reorderOutput(g, nchwcConv(g, xr, kernel, kgm), nc); // [1, N·C, k1, k2] (k1 ≥ kh)
  const [kh, kw] = gm.k as [number, number];
  if (out.shape[2] !== kh || out.shape[3] !== kw) out = slice(g, out, [0, 0], [kh, kw], [2, 3]);
  return reduceSum(g, reshape(g, out, [n, c, 1, kh, kw]), [0], false);
}

registerOp({
  type: 'Shape',
  infer: (xs) => {
    const [x] = requireInputs(xs, 1);
    return [{ dtype: 'int64', shape: [x!.shape.length] }];
  },
});
