/**
 * Task heads and losses on a trunk's feature map, one per objective (UnNAS,
 * Liu et al., ECCV 2020, github.com/facebookresearch/unnas; SimCLR, Chen et al.,
 * ICML 2020, as SSWP-NAS uses it):
 *  - cls / rot: global average pool → linear → cross entropy;
 *  - jig: the trunk ran on every tile (tiles folded into the batch); pooled tile
 *    features of an image are concatenated → linear over the permutations;
 *  - col: 1×1 conv to the colour bins at the trunk's resolution, bilinear
 *    upsampling (align_corners) to the input size as two constant matrix
 *    products, per-pixel cross entropy averaged over pixels;
 *  - simclr: projection MLP, cosine similarities, InfoNCE over the 2N views;
 *  - seg (supervised, UnNAS's Cityscapes baseline): ASPP 64 [6] and bilinear
 *    upsampling (graph/nets/seg.ts), per-pixel cross entropy, label 255 ignored.
 */
import { numel, tensorOf, type Graph, type Value } from '../ir.js';
import {
  add,
  div,
  flatten,
  globalAvgPool,
  matmul,
  mul,
  reduceSumSquare,
  reshape,
  sqrt,
  transpose,
} from '../ops/index.js';
import { correctCount, crossEntropy } from '../training.js';
import { classifierHead } from './heads.js';
import type { Layers } from './layers.js';
import { ASPP_SEARCH, segHead, segLoss } from './seg.js';
import { upsampleBilinear } from './upsample.js';

export type Objective = 'cls' | 'rot' | 'col' | 'jig' | 'simclr' | 'seg';
export const OBJECTIVES: readonly Objective[] = ['cls', 'rot', 'col', 'jig', 'simclr', 'seg'];

/** What a head needs to know of a task (structurally a subset of train/data's PretextTask). */
export interface TaskShape {
  name: Objective;
  /** Classes per image (cls, rot, jig) or per pixel (col). */
  numClasses: number;
  /** Consecutive rows of x forming one sample (jig: G², else 1). */
  groupSize: number;
  /** [C, H, W] of one row of x. */
  inputShape: readonly number[];
}

export interface TaskOptions {
  /** SimCLR temperature τ (default 0.5). */
  temperature?: number;
  /** SimCLR projection output size (default 128). */
  projectionDim?: number;
  labelSmoothing?: number;
}

export interface TaskHead {
  loss: Value;
  /** Scalar metrics: `correct` (count of correct predictions) and `count` is given by `predictions`. */
  metrics: Record<string, Value>;
  /** Labels input (int64), null for SimCLR (targets are implied by the view layout). */
  labels: Value | null;
  /** Number of predictions `correct` counts over, per batch. */
  predictions: number;
  /** Logits (or similarity rows for SimCLR). */
  logits: Value;
}

/** Row-wise L2 normalization of [N, D]. */
function l2normalize(g: Graph, z: Value): Value {
  return div(g, z, sqrt(g, add(g, reduceSumSquare(g, z, [1], true), g.scalar(1e-12))));
}

/**
 * InfoNCE (NT-Xent) over 2N views, view i's positive being view (i + N) mod 2N:
 * ℓ_i = −log softmax_{k≠i}(sim(z_i, z_k)/τ)[pos(i)], averaged over the 2N views.
 */
export function infoNce(g: Graph, z: Value, temperature: number): { loss: Value; logits: Value; labels: Value } {
  const n2 = z.shape[0]!;
  if (n2 % 2) throw new Error('SimCLR needs an even number of views');
  const zn = l2normalize(g, z);
  const sim = mul(g, matmul(g, zn, transpose(g, zn, [1, 0])), g.scalar(1 / temperature));
  const mask = new Float32Array(n2 * n2);
  for (let i = 0; i < n2; i++) mask[i * n2 + i] = -1e9; // exclude k = i
  const logits = add(g, sim, g.constant(tensorOf('float32', [n2, n2], mask), 'self_mask'));
  const pos = Array.from({ length: n2 }, (_, i) => (i + n2 / 2) % n2);
  const labels = g.constant(tensorOf('int64', [n2], pos), 'positives');
  return { loss: crossEntropy(g, logits, labels), logits, labels };
}

/**
 * Build the head, loss and metrics of an objective on `features` (the trunk's
 * output for all rows of x). Adds the `labels` graph input where the task has targets.
 */
export function taskHead(L: Layers, features: Value, task: TaskShape, o: TaskOptions = {}): TaskHead {
  const g = L.g;
  const rows = features.shape[0]!;
  switch (task.name) {
    case 'cls':
    case 'rot': {
      const logits = classifierHead(L, features, task.numClasses);
      const labels = g.input('labels', 'int64', [rows]);
      return {
        loss: crossEntropy(g, logits, labels, { labelSmoothing: o.labelSmoothing }),
        metrics: { correct: correctCount(g, logits, labels) },
        labels,
        predictions: rows,
        logits,
      };
    }
    case 'jig': {
      const gsz = task.groupSize;
      if (rows % gsz) throw new Error(`jigsaw: ${rows} rows are not a multiple of ${gsz} tiles`);
      const pooled = flatten(g, globalAvgPool(g, features), 1); // [rows, F]
      const perImage = reshape(g, pooled, [rows / gsz, gsz * pooled.shape[1]!]);
      const logits = L.scope('classifier', () => L.linear(perImage, task.numClasses));
      const labels = g.input('labels', 'int64', [rows / gsz]);
      return {
        loss: crossEntropy(g, logits, labels),
        metrics: { correct: correctCount(g, logits, labels) },
        labels,
        predictions: rows / gsz,
        logits,
      };
    }
    case 'col': {
      const [, H, W] = task.inputShape as [number, number, number];
      const small = L.scope('color_head', () => L.conv(features, task.numClasses, 1, { bias: true }));
      const logits = upsampleBilinear(g, small, H, W);
      const labels = g.input('labels', 'int64', [rows, H, W]);
      return {
        loss: crossEntropy(g, logits, labels, { axis: 1 }),
        metrics: { correct: correctCount(g, logits, labels, 1) },
        labels,
        predictions: rows * H * W,
        logits,
      };
    }
    case 'seg': {
      // UnNAS's supervised search baseline: ASPP 64 [6] → upsampling, per-pixel CE with 255 ignored
      const [, H, W] = task.inputShape as [number, number, number];
      const logits = segHead(L, features, ASPP_SEARCH, task.numClasses, H, W);
      const labels = g.input('labels', 'int64', [rows, H, W]);
      const m = segLoss(g, logits, labels);
      return {
        loss: m.loss,
        metrics: { correct: m.correct, valid: m.valid },
        labels,
        predictions: rows * H * W,
        logits,
      };
    }
    case 'simclr': {
      const pooled = flatten(g, globalAvgPool(g, features), 1);
      const f = pooled.shape[1]!;
      const z = L.scope('projection', () => {
        const h = L.relu(L.scope('0', () => L.linear(pooled, f)));
        return L.scope('2', () => L.linear(h, o.projectionDim ?? 128));
      });
      const nce = infoNce(g, z, o.temperature ?? 0.5);
      return {
        loss: nce.loss,
        metrics: { correct: correctCount(g, nce.logits, nce.labels) },
        labels: null,
        predictions: rows,
        logits: nce.logits,
      };
    }
  }
}

/** Number of elements of the labels input for `rows` rows of x. */
export function labelCount(task: TaskShape, rows: number): number {
  if (task.name === 'simclr') return 0;
  if (task.name === 'jig') return rows / task.groupSize;
  if (task.name === 'col' || task.name === 'seg') return rows * numel(task.inputShape.slice(1));
  return rows;
}
