/**
 * Semantic segmentation networks of UnNAS (ECCV 2020, Table 2; the public
 * release's pycls/models/common.py ASPP and pycls/models/nas/nas.py):
 *  - the trunk is DARTS's ImageNet layout (three stride-2 stem convs) with a
 *    single reduction cell at ⌊L/3⌋, so features are at 1/16 of the input;
 *  - the head is ASPP(in, Ca, classes, rates) — 1×1 branch, one dilated 3×3
 *    branch per rate, image-pool branch (global average pool → 1×1 → BN → ReLU
 *    → broadcast back), concat → 1×1 → BN → ReLU → 1×1 with bias — followed by
 *    bilinear upsampling (align_corners) to the input size;
 *  - search: supernet cells (BN not affine), Ca = 64, rates [6];
 *    evaluation: genotype cells, Ca = 256, rates [6, 12, 18];
 *  - loss: per-pixel cross entropy with label 255 ignored (CrossEntropyIgnore);
 *    metric: a confusion matrix summed over a split, mIoU from it.
 */
import { Graph, type Value } from '../ir.js';
import type { Genotype, OpName } from '../genotype.js';
import {
  add,
  argMax,
  cast,
  concat,
  crossEntropyIgnore,
  globalAvgPool,
  less,
  mul,
  reshape,
  scatterAdd,
  where,
  zeros,
} from '../ops/index.js';
import { correctCount } from '../training.js';
import { evalTrunk, searchTrunk, type SearchTrunk } from './darts.js';
import { Layers } from './layers.js';
import { upsampleBilinear } from './upsample.js';

/** ASPP width and dilation rates. */
export interface AsppSpec {
  channels: number;
  rates: number[];
}

/** UnNAS's ASPP of the search network and of the evaluation network. */
export const ASPP_SEARCH: AsppSpec = { channels: 64, rates: [6] };
export const ASPP_EVAL: AsppSpec = { channels: 256, rates: [6, 12, 18] };

/** Segmentation networks reduce once, at cell ⌊L/3⌋. */
export function segReductions(layers: number): number[] {
  return [Math.floor(layers / 3)];
}

/** conv (no bias) → affine BN → ReLU, the unit of every ASPP branch. */
function convBnRelu(L: Layers, x: Value, cout: number, k: number, dilation = 1): Value {
  const y = L.scope('0', () => L.conv(x, cout, k, { pad: k === 1 ? 0 : dilation, dilation }));
  return L.relu(L.scope('1', () => L.bn(y, true)));
}

/**
 * ASPP logits at the feature map's resolution. Parameters are created in the
 * release's registration order (aspp1, aspp2, aspp3, aspp4, aspp5, classifier).
 */
export function aspp(L: Layers, x: Value, spec: AsppSpec, classes: number): Value {
  if (spec.rates.length !== 1 && spec.rates.length !== 3)
    throw new Error(`ASPP takes one or three rates, got [${spec.rates}]`);
  const ca = spec.channels;
  const [b, , h, w] = x.shape as [number, number, number, number];
  return L.scope('aspp', () => {
    const branches = [L.scope('aspp1', () => convBnRelu(L, x, ca, 1))];
    spec.rates.forEach((r, i) => branches.push(L.scope(`aspp${i + 2}`, () => convBnRelu(L, x, ca, 3, r))));
    const pooled = L.scope('aspp5', () => convBnRelu(L, globalAvgPool(L.g, x), ca, 1));
    branches.push(upsampleBilinear(L.g, pooled, h, w));
    return L.scope('classifier', () => {
      const y = convBnRelu(L, concat(L.g, branches, 1), ca, 1);
      const out = L.scope('3', () => L.conv(y, classes, 1, { bias: true }));
      if (out.shape[0] !== b) throw new Error('ASPP batch bookkeeping');
      return out;
    });
  });
}

/** ASPP → bilinear upsampling (align_corners) to H×W: per-pixel logits [N, classes, H, W]. */
export function segHead(L: Layers, features: Value, spec: AsppSpec, classes: number, H: number, W: number): Value {
  return upsampleBilinear(L.g, aspp(L, features, spec, classes), H, W);
}

export interface SegLoss {
  loss: Value;
  /** Pixels whose label is a class (not 255), float scalar. */
  valid: Value;
  /** Valid pixels predicted right, float scalar. */
  correct: Value;
}

/** Per-pixel cross entropy (label 255 ignored) and pixel-accuracy counts. */
export function segLoss(g: Graph, logits: Value, labels: Value): SegLoss {
  const { loss, count } = crossEntropyIgnore(g, logits, labels);
  // arg-max is never 255: ignored pixels never count as correct
  return { loss, valid: count, correct: correctCount(g, logits, labels, 1) };
}

/**
 * The confusion matrix [K, K] (rows: label, columns: prediction, float counts)
 * of a batch: ScatterElements-add of one per valid pixel at label·K + arg-max,
 * so no [N, K, H, W] one-hot is built (ignored pixels add 0 to cell 0).
 * Counts are exact while a batch has fewer than 2²⁴ pixels.
 */
export function confusionMatrix(g: Graph, logits: Value, labels: Value): Value {
  const k = logits.shape[1]!;
  const pred = argMax(g, logits, 1, false);
  const valid = less(g, labels, g.scalar(k, 'int64'));
  const cell = add(g, mul(g, labels, g.scalar(k, 'int64')), pred);
  const idx = reshape(g, where(g, valid, cell, g.scalar(0, 'int64')), [-1]);
  const ones = reshape(g, cast(g, valid, 'float32'), [-1]);
  return reshape(g, scatterAdd(g, zeros(g, [k * k]), idx, ones, 0), [k, k]);
}

export interface SegInput {
  batch: number;
  channels: number;
  height: number;
  width: number;
}

export interface SegNetOptions extends SegInput {
  genotype: Genotype;
  C: number;
  layers: number;
  classes: number;
  training: boolean;
  aspp?: AsppSpec;
}

export interface BuiltSegNet {
  g: Graph;
  x: Value;
  /** Per-pixel logits [N, classes, H, W]. */
  logits: Value;
}

function segConfig(o: SegInput & { C: number; layers: number; classes: number }, spec: AsppSpec): string {
  return JSON.stringify({
    task: 'seg',
    net: 'seg',
    C: o.C,
    layers: o.layers,
    classes: o.classes,
    aspp: spec,
    input: [o.channels, o.height, o.width],
  });
}

/** The evaluation network: genotype cells, ImageNet stem, one reduction, ASPP (default 256, [6, 12, 18]). */
export function buildSegNet(o: SegNetOptions): BuiltSegNet {
  const spec = o.aspp ?? ASPP_EVAL;
  const g = new Graph(`${o.genotype.name ?? 'genotype'}_seg`);
  g.training = o.training;
  const L = new Layers(g, { trackRunningStats: true });
  const x = g.input('x', 'float32', [o.batch, o.channels, o.height, o.width]);
  const trunk = evalTrunk(L, x, o.genotype, {
    C: o.C,
    layers: o.layers,
    net: 'imagenet',
    reductions: segReductions(o.layers),
  });
  const logits = segHead(L, trunk.features, spec, o.classes, o.height, o.width);
  g.meta.set('nas_onnx.kind', 'network');
  g.meta.set('nas_onnx.genotype', JSON.stringify(o.genotype));
  g.meta.set('nas_onnx.config', segConfig(o, spec));
  return { g, x, logits };
}

export interface SegSupernetOptions extends SegInput {
  C: number;
  layers: number;
  classes: number;
  training: boolean;
  aspp?: AsppSpec;
  primitives?: readonly OpName[];
  /** Emit BN running-stat updates in training form (not needed for search). */
  trackRunningStats?: boolean;
}

export interface BuiltSegSupernet extends BuiltSegNet {
  trunk: SearchTrunk;
}

/** The search supernet of the seg objective: ImageNet stem, one reduction, ASPP (default 64, [6]). */
export function buildSegSupernet(o: SegSupernetOptions): BuiltSegSupernet {
  const spec = o.aspp ?? ASPP_SEARCH;
  const g = new Graph('darts_supernet_seg');
  g.training = o.training;
  const L = new Layers(g, { trackRunningStats: o.trackRunningStats ?? false });
  const x = g.input('x', 'float32', [o.batch, o.channels, o.height, o.width]);
  const trunk = segSearchTrunk(L, x, o);
  const logits = segHead(L, trunk.features, spec, o.classes, o.height, o.width);
  g.meta.set('nas_onnx.kind', 'supernet');
  g.meta.set('nas_onnx.config', segConfig(o, spec));
  return { g, x, logits, trunk };
}

/** The supernet trunk of segmentation search: ImageNet stem, one reduction. */
export function segSearchTrunk(
  L: Layers,
  x: Value,
  o: { C: number; layers: number; primitives?: readonly OpName[] },
): SearchTrunk {
  return searchTrunk(L, x, {
    C: o.C,
    layers: o.layers,
    primitives: o.primitives,
    stem: 'imagenet',
    reductions: segReductions(o.layers),
  });
}

/**
 * The labels input of a segmentation graph: int32 [N, H, W] (class ids, 255
 * ignored; half the bytes of int64 to feed), cast to int64 in the graph.
 */
export function segLabelsInput(g: Graph, n: number, h: number, w: number): Value {
  return cast(g, g.input('labels', 'int32', [n, h, w]), 'int64');
}

export interface SegTrainForward extends BuiltSegNet {
  loss: Value;
  /** `correct` and `valid` pixel counts of the batch. */
  metrics: Record<string, Value>;
}

/** The evaluation network in training form with its loss: what a training step differentiates. */
export function buildSegTrainForward(o: Omit<SegNetOptions, 'training'>): SegTrainForward {
  const net = buildSegNet({ ...o, training: true });
  const labels = segLabelsInput(net.g, o.batch, o.height, o.width);
  const { loss, valid, correct } = segLoss(net.g, net.logits, labels);
  return { ...net, loss, metrics: { correct, valid } };
}

/**
 * The evaluation network in inference form that outputs only the confusion
 * matrix `confusion` [K, K] of its batch against `labels`: a frame's logits
 * stay on the device, only K² counts come back.
 */
export function buildSegEvalGraph(o: Omit<SegNetOptions, 'training'>): Graph {
  const net = buildSegNet({ ...o, training: false });
  const labels = segLabelsInput(net.g, o.batch, o.height, o.width);
  net.g.output(confusionMatrix(net.g, net.logits, labels), 'confusion');
  net.g.prune();
  return net.g;
}
