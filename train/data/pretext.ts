/**
 * Pretext tasks (UnNAS: rotation, colorization, jigsaw; SSWP-NAS: SimCLR
 * views; and ordinary supervised labels) as batch builders.
 *
 * `resolveTask` turns task options and a dataset shape into a `PretextTask`
 * descriptor (input shape per row, target kind, number of classes, rows per
 * image) from which network heads are built. `buildBatch` turns a list of
 * dataset rows into a ready-to-feed `Batch`; it is a pure function of its job
 * (pixels, rows, task, normalization, seed, epoch, batch index): all randomness
 * comes from `Rng.derive(seed, AUG_STREAM, epoch, batchIndex)`, so a batch is
 * the same whichever thread builds it and whenever it is built.
 */
import { readFileSync } from 'node:fs';
import { Rng } from '../../graph/rng.js';
import { abQuantizer, linearRgbToLab, SRGB_LINEAR_U8 } from './color.js';
import { DataError } from './errors.js';
import { modelDataPath } from './paths.js';
import type { StreamJob } from './stream.js';
import {
  colorJitter,
  cutout,
  jigsawGeometry,
  jigsawTiles,
  type JitterStrength,
  randomResizedCropBox,
  resizedCropBilinear,
  rot90,
  toGrayscale3,
} from './transforms.js';

/** The tasks: supervised labels, rotation, colorization, jigsaw, SimCLR views. */
export type TaskName = 'cls' | 'rot' | 'col' | 'jig' | 'simclr' | 'seg';
export const TASK_NAMES: readonly TaskName[] = ['cls', 'rot', 'col', 'jig', 'simclr', 'seg'];

/** What the targets `y` of a batch are. */
export type TargetKind = 'class' | 'pixel-class' | 'none';

/** SimCLR view options (defaults: SimCLR's CIFAR recipe). */
export interface SimclrOptions {
  /** RandomResizedCrop area fraction range, default [0.08, 1]. */
  scale: [number, number];
  /** RandomResizedCrop aspect ratio range, default [3/4, 4/3]. */
  ratio: [number, number];
  /** Horizontal flip with p = 0.5, default true. */
  flip: boolean;
  /** ColorJitter strengths, default 0.4/0.4/0.4/0.1. */
  jitter: JitterStrength;
  /** Probability of applying the colour jitter, default 0.8. */
  jitterProb: number;
  /** Probability of converting to grayscale, default 0.2. */
  grayProb: number;
}

/** Options of a task (all optional except the name). */
export interface TaskOptions {
  name: TaskName;
  /**
   * Standard random augmentation (training): flip, padded crop, cutout, jigsaw
   * grayscale. Default true; false for evaluation. It does not turn off what
   * makes the task (rotations, jigsaw permutations and gaps, SimCLR views).
   */
  augment?: boolean;
  /** Horizontal flip with p = 0.5 (cls, rot, col, jig). Default true. */
  flip?: boolean;
  /** Zero padding of the random crop in pixels (cls, rot), after normalization. Default 4; 0 = no crop. */
  cropPad?: number;
  /** Cutout square side (cls, rot), 0 = off (default). DARTS evaluation uses 16. */
  cutout?: number;
  /** Jigsaw grid G: default 2 for images smaller than 64 px, else 3. */
  jigsawGrid?: number;
  /** Number K of jigsaw permutations (the first K of the set): default all (24 for G = 2, 1000 for G = 3). */
  jigsawPerms?: number;
  /** Tile side as a fraction of the patch side, default 0.76 (1 = no gap). */
  tileFraction?: number;
  /** Normalize each jigsaw tile by its own mean/std, default true. */
  normalizeTiles?: boolean;
  /** Jigsaw: probability of making the image gray before tiling (UnNAS GRAY_PERCENTAGE): default 0.3 for a 3×3 grid, else 0. */
  grayProb?: number;
  /** SimCLR view options. */
  simclr?: Partial<SimclrOptions>;
  /** cls: number of classes (default: the dataset's). */
  numClasses?: number;
}

/** Fully resolved, serializable task options (sent to workers). */
export interface ResolvedTask {
  name: TaskName;
  augment: boolean;
  flip: boolean;
  cropPad: number;
  cutout: number;
  jigsawGrid: number;
  jigsawPerms: number;
  tileFraction: number;
  normalizeTiles: boolean;
  grayProb: number;
  simclr: SimclrOptions;
  numClasses: number;
  /** Source image shape. */
  c: number;
  h: number;
  w: number;
}

/** Everything a network head and a loss need to know about a task on a dataset. */
export interface PretextTask {
  name: TaskName;
  /** Shape [C, H, W] of one row of x (one network input). */
  inputShape: [number, number, number];
  targetKind: TargetKind;
  /** Classes of the target (per image or per pixel); 0 for 'none'. */
  numClasses: number;
  /** Rows of x per source image: rot 4, jig G², simclr 2, else 1. */
  batchMultiplier: number;
  /**
   * Consecutive rows of x that form one sample for the head: jig G² (the trunk's
   * pooled features of an image's tiles are concatenated in slot order), else 1.
   */
  groupSize: number;
  /** Shape of x for a batch of n source images. */
  xShape(n: number): number[];
  /** Shape of y for a batch of n source images. */
  yShape(n: number): number[];
  /** Resolved options (what the batch builders use). */
  options: ResolvedTask;
}

/** A ready-to-feed batch. */
export interface Batch {
  /** Network input, NCHW float32, normalized. */
  x: Float32Array;
  xShape: number[];
  /** Targets (class indices); empty for SimCLR. */
  y: Int32Array;
  yShape: number[];
  /** Number of source images N (x has N·batchMultiplier rows). */
  size: number;
  epoch: number;
  /** Index of the batch within its epoch. */
  index: number;
  /** Dataset rows of the N source images. */
  rows: Int32Array;
  /** Ground-truth labels of the N source images (when the dataset is labelled). */
  labels: Int32Array | null;
  /** Streamed sets with label maps: N × H × W labels cut like their images (255 = none). */
  masks?: Uint8Array | null;
  /** Streamed sets: unreadable files met in this batch (their places taken by other images of the batch). */
  corrupt?: string[];
}

/** RNG stream labels (see Rng.derive). */
export const SHUFFLE_STREAM = 0x5f1;
export const AUG_STREAM = 0xa09;

const DEFAULT_SIMCLR: SimclrOptions = {
  scale: [0.08, 1],
  ratio: [3 / 4, 4 / 3],
  flip: true,
  jitter: { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 },
  jitterProb: 0.8,
  grayProb: 0.2,
};

// ---------------------------------------------------------------------------
// Jigsaw permutation sets

const permCache = new Map<number, Int32Array[]>();

/** The jigsaw permutation set of a G×G grid (models/data/jigsaw_permutations.json): 24 for G = 2, 1000 for G = 3. */
export function jigsawPermutations(grid: number): Int32Array[] {
  const hit = permCache.get(grid);
  if (hit) return hit;
  if (grid !== 2 && grid !== 3)
    throw new DataError(`jigsaw grid ${grid} has no permutation set (only 2x2 and 3x3 are provided)`);
  const file = modelDataPath('jigsaw_permutations.json');
  let raw: unknown;
  try {
    raw = (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>)[grid === 2 ? 'perms_2x2' : 'perms_3x3'];
  } catch (e) {
    throw new DataError(`cannot read the jigsaw permutations ${file}: ${(e as Error).message}`);
  }
  if (!Array.isArray(raw)) throw new DataError(`${file}: no permutation list for a ${grid}x${grid} grid`);
  const perms = raw.map((p) => Int32Array.from(p as number[]));
  for (const p of perms) {
    const seen = new Set(p);
    if (p.length !== grid * grid || seen.size !== p.length || p.some((v) => v < 0 || v >= p.length)) {
      throw new DataError(`${file}: invalid ${grid}x${grid} permutation [${Array.from(p).join(',')}]`);
    }
  }
  permCache.set(grid, perms);
  return perms;
}

/** The inverse of a permutation: inv[perm[k]] = k. */
export function invertPermutation(perm: ArrayLike<number>): Int32Array {
  const inv = new Int32Array(perm.length);
  for (let k = 0; k < perm.length; k++) inv[perm[k]!] = k;
  return inv;
}

// ---------------------------------------------------------------------------
// Resolution

/** The shape of a task's data: what resolveTask derives per task. */
interface TaskLayout {
  inputShape: [number, number, number];
  targetKind: TargetKind;
  /** Rows of x per source image. */
  mult: number;
  group: number;
  yShape: (n: number) => number[];
}

type DataShape = { c: number; h: number; w: number; classes?: number; labelled?: boolean; name?: string };

/** Task options with their defaults, checked (numClasses and jigsawPerms are set by the task's layout). */
function resolvedOptions(o: TaskOptions, shape: DataShape): ResolvedTask {
  const { c, h, w } = shape;
  const grid = o.jigsawGrid ?? (Math.min(h, w) < 64 ? 2 : 3);
  const r: ResolvedTask = {
    name: o.name,
    augment: o.augment ?? true,
    flip: o.flip ?? true,
    cropPad: o.cropPad ?? 4,
    cutout: o.cutout ?? 0,
    jigsawGrid: grid,
    jigsawPerms: 0,
    tileFraction: o.tileFraction ?? 0.76,
    normalizeTiles: o.normalizeTiles ?? true,
    // UnNAS turns 30% of the images gray for its 3×3 jigsaw on large images
    grayProb: o.grayProb ?? (grid === 3 ? 0.3 : 0),
    simclr: {
      ...DEFAULT_SIMCLR,
      ...(o.simclr ?? {}),
      jitter: { ...DEFAULT_SIMCLR.jitter, ...(o.simclr?.jitter ?? {}) },
    },
    numClasses: 0,
    c,
    h,
    w,
  };
  if (!Number.isInteger(r.cropPad) || r.cropPad < 0)
    throw new DataError(`cropPad must be a non-negative integer, got ${r.cropPad}`);
  if (!Number.isInteger(r.cutout) || r.cutout < 0)
    throw new DataError(`cutout must be a non-negative integer, got ${r.cutout}`);
  if (!(r.grayProb >= 0 && r.grayProb <= 1)) throw new DataError(`grayProb must be in [0, 1], got ${r.grayProb}`);
  return r;
}

/** Jigsaw: G² tiles per image folded into the batch, one permutation label per image. */
function jigLayout(o: TaskOptions, r: ResolvedTask, what: string): TaskLayout {
  const grid = r.jigsawGrid;
  if (!Number.isInteger(grid) || grid < 2) throw new DataError(`jigsaw grid must be an integer ≥ 2, got ${grid}`);
  if (!(r.tileFraction > 0 && r.tileFraction <= 1))
    throw new DataError(`tileFraction must be in (0, 1], got ${r.tileFraction}`);
  const perms = jigsawPermutations(grid);
  r.jigsawPerms = o.jigsawPerms ?? perms.length;
  if (!Number.isInteger(r.jigsawPerms) || r.jigsawPerms < 2 || r.jigsawPerms > perms.length) {
    throw new DataError(`jigsawPerms must be in 2..${perms.length} for a ${grid}x${grid} grid, got ${r.jigsawPerms}`);
  }
  const g = jigsawGeometry(r.h, r.w, grid, r.tileFraction);
  if (g.ph < 1 || g.pw < 1) throw new DataError(`image too small for a ${grid}x${grid} jigsaw${what}`);
  r.numClasses = r.jigsawPerms;
  const mult = grid * grid;
  return { inputShape: [r.c, g.th, g.tw], targetKind: 'class', mult, group: mult, yShape: (n) => [n] };
}

/** Input and target shapes of a task on data of the given shape; sets the number of classes. */
function taskLayout(o: TaskOptions, r: ResolvedTask, shape: DataShape, what: string): TaskLayout {
  const { c, h, w } = shape;
  const plain: TaskLayout = { inputShape: [c, h, w], targetKind: 'class', mult: 1, group: 1, yShape: (n) => [n] };
  switch (o.name) {
    case 'cls':
      if (shape.labelled === false) throw new DataError(`task cls needs labels but the dataset${what} is unlabelled`);
      r.numClasses = o.numClasses ?? shape.classes ?? 0;
      if (!(r.numClasses > 0)) throw new DataError(`task cls needs the number of classes${what}`);
      return plain;
    case 'rot':
      if (h !== w) throw new DataError(`task rot needs square images${what}`);
      r.numClasses = 4;
      return { ...plain, mult: 4, yShape: (n) => [4 * n] };
    case 'col':
      // On gray images every pixel's ab is (0, 0): one target class, a meaningless task.
      if (c !== 3) throw new DataError(`task col needs RGB images${what}`);
      r.numClasses = 313;
      return { ...plain, inputShape: [1, h, w], targetKind: 'pixel-class', yShape: (n) => [n, h, w] };
    case 'jig':
      return jigLayout(o, r, what);
    case 'simclr':
      r.numClasses = 0;
      return { ...plain, targetKind: 'none', mult: 2, yShape: () => [0] };
    case 'seg':
      // the label maps are cut with their images (stream.ts): no flip or crop here
      r.numClasses = o.numClasses ?? 0;
      if (!(r.numClasses > 0 && r.numClasses < 255)) throw new DataError(`task seg needs 1..254 classes${what}`);
      r.flip = false;
      r.cropPad = 0;
      return { ...plain, targetKind: 'pixel-class', yShape: (n) => [n, h, w] };
  }
}

/**
 * Resolves task options for a dataset shape into a task descriptor. Throws a
 * DataError when the task cannot run on such data (rotation of a non-square
 * image, supervised task without labels, jigsaw grid too fine, …).
 */
export function resolveTask(opts: TaskOptions | TaskName, shape: DataShape): PretextTask {
  const o: TaskOptions = typeof opts === 'string' ? { name: opts } : opts;
  if (!TASK_NAMES.includes(o.name))
    throw new DataError(`unknown task '${String(o.name)}' (expected one of ${TASK_NAMES.join(', ')})`);
  const { c, h, w } = shape;
  const what = shape.name ? ` (${shape.name}: ${c}x${h}x${w})` : ` (${c}x${h}x${w})`;
  const r = resolvedOptions(o, shape);
  const t = taskLayout(o, r, shape, what);
  const ish = t.inputShape;
  return {
    name: o.name,
    inputShape: ish,
    targetKind: t.targetKind,
    numClasses: r.numClasses,
    batchMultiplier: t.mult,
    groupSize: t.group,
    xShape: (n) => [n * t.mult, ...ish],
    yShape: t.yShape,
    options: r,
  };
}

// ---------------------------------------------------------------------------
// Batch building

/** Everything needed to build one batch (structured-cloneable; `images` may be shared). */
export interface BatchJob {
  /** All pixels of the dataset (NCHW uint8), typically on a SharedArrayBuffer. */
  images: Uint8Array;
  /** Labels of the batch's rows, in order (not the whole dataset's), or null. */
  labels: Int32Array | null;
  /** Dataset rows of the batch's images. */
  rows: Int32Array;
  task: ResolvedTask;
  mean: number[];
  std: number[];
  seed: number;
  epoch: number;
  index: number;
  /** Per-row RGB offsets added before normalization (PCA lighting; n × c, pixel/255 units): cls, rot, jig. */
  lighting?: Float32Array | null;
  /** Streamed sets: how the rows' images are cut (then `images` is empty; see stream.ts). */
  stream?: StreamJob;
  /** Label maps of the rows, cut like their images (n × h × w, 255 = ignored): task seg. */
  masks?: Uint8Array | null;
}

/** The RNG of batch `index` of epoch `epoch`. */
export function batchRng(seed: number, epoch: number, index: number): Rng {
  return Rng.derive(seed, AUG_STREAM, epoch, index);
}

/** Per-channel lookup table uint8 → normalized float: ((v/255) − mean[c]) / std[c]. */
export function normalizationLut(mean: number[], std: number[], c: number): Float32Array {
  if (mean.length !== c || std.length !== c)
    throw new DataError(`normalization needs ${c} means and stds, got ${mean.length} and ${std.length}`);
  const lut = new Float32Array(c * 256);
  for (let ch = 0; ch < c; ch++) for (let v = 0; v < 256; v++) lut[ch * 256 + v] = (v / 255 - mean[ch]!) / std[ch]!;
  return lut;
}

/** The lookup table of row i: the batch's, plus the row's lighting offsets when there are any. */
function rowLut(lut: Float32Array, job: BatchJob, i: number, c: number): Float32Array {
  const off = job.lighting;
  if (!off) return lut;
  const out = new Float32Array(lut.length);
  for (let ch = 0; ch < c; ch++) {
    const d = off[i * c + ch]! / job.std[ch]!;
    for (let v = 0; v < 256; v++) out[ch * 256 + v] = lut[ch * 256 + v]! + d;
  }
  return out;
}

/**
 * Writes one normalized, flipped (optional) and padded-cropped image into
 * `out` at `off`: out[c][y][x] = lut(src[c][sy][sx]) with sy = y+oy−pad and
 * sx' = x+ox−pad in the flipped image (sx = w−1−sx' if flipped), 0 outside.
 */
export function writeAugmented(
  images: Uint8Array,
  srcOff: number,
  c: number,
  h: number,
  w: number,
  lut: Float32Array,
  flip: boolean,
  pad: number,
  oy: number,
  ox: number,
  out: Float32Array,
  off: number,
): void {
  for (let ch = 0; ch < c; ch++) {
    const lb = ch * 256;
    for (let y = 0; y < h; y++) {
      const d = off + (ch * h + y) * w;
      const sy = y + oy - pad;
      if (sy < 0 || sy >= h) {
        out.fill(0, d, d + w);
        continue;
      }
      const s = srcOff + (ch * h + sy) * w;
      for (let x = 0; x < w; x++) {
        const fx = x + ox - pad;
        if (fx < 0 || fx >= w) out[d + x] = 0;
        else out[d + x] = lut[lb + images[s + (flip ? w - 1 - fx : fx)]!]!;
      }
    }
  }
}

interface StdAug {
  flip: boolean;
  oy: number;
  ox: number;
  cy: number;
  cx: number;
}

/** Draws flip, crop offsets and cutout centre (in that order; only those enabled). */
function drawStdAug(t: ResolvedTask, rng: Rng): StdAug {
  const a: StdAug = { flip: false, oy: t.cropPad, ox: t.cropPad, cy: -1, cx: -1 };
  if (!t.augment) return a;
  if (t.flip) a.flip = rng.next() < 0.5;
  if (t.cropPad > 0) {
    a.oy = rng.int(2 * t.cropPad + 1);
    a.ox = rng.int(2 * t.cropPad + 1);
  }
  if (t.cutout > 0) {
    a.cy = rng.int(t.h);
    a.cx = rng.int(t.w);
  }
  return a;
}

function buildCls(job: BatchJob, rng: Rng, x: Float32Array, lut: Float32Array): void {
  const { c, h, w } = job.task;
  const per = c * h * w;
  job.rows.forEach((row, i) => {
    const a = drawStdAug(job.task, rng);
    const l = rowLut(lut, job, i, c);
    writeAugmented(job.images, row * per, c, h, w, l, a.flip, job.task.cropPad, a.oy, a.ox, x, i * per);
    if (a.cy >= 0) cutout(x, c, h, w, a.cy, a.cx, job.task.cutout, i * per);
  });
}

function buildRot(job: BatchJob, rng: Rng, x: Float32Array, y: Int32Array, lut: Float32Array): void {
  const { c, h, w } = job.task;
  const per = c * h * w;
  const tmp = new Float32Array(per);
  job.rows.forEach((row, i) => {
    const a = drawStdAug(job.task, rng);
    const l = rowLut(lut, job, i, c);
    writeAugmented(job.images, row * per, c, h, w, l, a.flip, job.task.cropPad, a.oy, a.ox, tmp, 0);
    if (a.cy >= 0) cutout(tmp, c, h, w, a.cy, a.cx, job.task.cutout, 0);
    for (let k = 0; k < 4; k++) {
      rot90(tmp, c, h, w, k, x, (4 * i + k) * per);
      y[4 * i + k] = k;
    }
  });
}

function buildCol(job: BatchJob, rng: Rng, x: Float32Array, y: Int32Array): void {
  const { c, h, w, augment, flip } = job.task;
  const plane = h * w;
  const per = c * plane;
  // UnNAS's ad hoc normalization of L/100: the means of the dataset's channel means and stds.
  const mMean = job.mean.reduce((s, v) => s + v, 0) / job.mean.length;
  const mStd = job.std.reduce((s, v) => s + v, 0) / job.std.length;
  const q = abQuantizer();
  const lab = new Float64Array(3);
  const g1 = plane;
  const g2 = 2 * plane;
  job.rows.forEach((row, i) => {
    const fl = augment && flip ? rng.next() < 0.5 : false;
    const src = row * per;
    const dst = i * plane;
    for (let yy = 0; yy < h; yy++) {
      for (let xx = 0; xx < w; xx++) {
        const p = yy * w + (fl ? w - 1 - xx : xx);
        const r = SRGB_LINEAR_U8[job.images[src + p]!]!;
        const g = SRGB_LINEAR_U8[job.images[src + g1 + p]!]!;
        const b = SRGB_LINEAR_U8[job.images[src + g2 + p]!]!;
        linearRgbToLab(r, g, b, lab);
        const o = dst + yy * w + xx;
        x[o] = (lab[0]! / 100 - mMean) / mStd;
        y[o] = q.nearest(lab[1]!, lab[2]!);
      }
    }
  });
}

// skimage's rgb2gray weights (used by UnNAS's jigsaw grayscale).
const SK_GRAY = [0.2125, 0.7154, 0.0721];

/**
 * Writes image `row` (flipped and/or gray when asked, plus row i's lighting
 * offsets) normalized into the planar float `img`.
 */
function jigSource(job: BatchJob, row: number, i: number, flip: boolean, gray: boolean, img: Float32Array): void {
  const { c, h, w } = job.task;
  const plane = h * w;
  const src = row * c * plane;
  const off = job.lighting;
  for (let yy = 0; yy < h; yy++) {
    for (let xx = 0; xx < w; xx++) {
      const sp = src + yy * w + (flip ? w - 1 - xx : xx);
      const dp = yy * w + xx;
      const v = gray
        ? (SK_GRAY[0]! * job.images[sp]! +
            SK_GRAY[1]! * job.images[sp + plane]! +
            SK_GRAY[2]! * job.images[sp + 2 * plane]!) /
          255
        : 0;
      for (let ch = 0; ch < c; ch++) {
        const p = (gray ? v : job.images[sp + ch * plane]! / 255) + (off ? off[i * c + ch]! : 0);
        img[ch * plane + dp] = (p - job.mean[ch]!) / job.std[ch]!;
      }
    }
  }
}

function buildJig(job: BatchJob, rng: Rng, x: Float32Array, y: Int32Array): void {
  const t = job.task;
  const { c, h, w } = t;
  const g = jigsawGeometry(h, w, t.jigsawGrid, t.tileFraction);
  const perms = jigsawPermutations(t.jigsawGrid);
  const g2 = t.jigsawGrid * t.jigsawGrid;
  const tileSize = c * g.th * g.tw;
  const img = new Float32Array(c * h * w);
  const offsets = new Int32Array(2 * g2);
  job.rows.forEach((row, i) => {
    const fl = t.augment && t.flip ? rng.next() < 0.5 : false;
    const gray = t.augment && t.grayProb > 0 && c === 3 ? rng.next() < t.grayProb : false;
    jigSource(job, row, i, fl, gray, img);
    const label = rng.int(t.jigsawPerms);
    for (let k = 0; k < g2; k++) {
      offsets[2 * k] = rng.int(g.ph - g.th + 1);
      offsets[2 * k + 1] = rng.int(g.pw - g.tw + 1);
    }
    jigsawTiles(img, c, h, w, g, offsets, perms[label]!, t.normalizeTiles, x, i * g2 * tileSize);
    y[i] = label;
  });
}

function buildSimclr(job: BatchJob, rng: Rng, x: Float32Array): void {
  const t = job.task;
  const { c, h, w } = t;
  const s = t.simclr;
  const per = c * h * w;
  const n = job.rows.length;
  const src = new Float32Array(per);
  const view = new Float32Array(per);
  job.rows.forEach((row, i) => {
    const base = row * per;
    for (let p = 0; p < per; p++) src[p] = job.images[base + p]! / 255;
    for (let v = 0; v < 2; v++) {
      const box = randomResizedCropBox(rng, h, w, s.scale, s.ratio);
      resizedCropBilinear(src, c, h, w, box, h, w, view, 0);
      if (s.flip && rng.next() < 0.5) {
        for (let ch = 0; ch < c; ch++) {
          for (let yy = 0; yy < h; yy++) view.subarray((ch * h + yy) * w, (ch * h + yy + 1) * w).reverse();
        }
      }
      if (c === 3) {
        if (rng.next() < s.jitterProb) colorJitter(view, h, w, s.jitter, rng);
        if (rng.next() < s.grayProb) toGrayscale3(view, h, w);
      }
      const dst = (v * n + i) * per;
      for (let ch = 0; ch < c; ch++) {
        const m = job.mean[ch]!;
        const sd = job.std[ch]!;
        const pb = ch * h * w;
        for (let p = 0; p < h * w; p++) x[dst + pb + p] = (view[pb + p]! - m) / sd;
      }
    }
  });
}

/**
 * Builds one batch. Layouts (image i of the N source images):
 * - cls: x [N, C, H, W], y [N] labels;
 * - rot: x [4N, C, H, W], row 4i+k is image i rotated by k·90° counter-clockwise, y = k;
 * - col: x [N, 1, H, W] normalized L, y [N, H, W] ab-bin indices (0..312);
 * - jig: x [N·G², C, t, t], rows G²·i + s hold image i's tile for slot s
 *   (tile from grid cell k goes to slot perm[k]), y [N] permutation indices;
 * - simclr: x [2N, C, H, W], rows i and N+i are the two views of image i, y empty;
 * - seg: x [N, C, H, W], y [N, H, W] the label maps cut with the images (class ids, 255 ignored).
 */
export function buildBatch(job: BatchJob): Batch {
  const t = job.task;
  const n = job.rows.length;
  const task = resolveTaskFromResolved(t);
  const xShape = task.xShape(n);
  const yShape = task.yShape(n);
  const x = new Float32Array(xShape.reduce((a, b) => a * b, 1));
  const y = new Int32Array(yShape.reduce((a, b) => a * b, 1));
  const rng = batchRng(job.seed, job.epoch, job.index);
  if (job.labels && job.labels.length !== n)
    throw new DataError(`batch job: ${job.labels.length} labels for ${n} rows`);
  const labels = job.labels ? job.labels.slice() : null;
  switch (t.name) {
    case 'cls':
      if (!labels) throw new DataError('task cls needs labels but the dataset is unlabelled');
      buildCls(job, rng, x, normalizationLut(job.mean, job.std, t.c));
      y.set(labels);
      break;
    case 'rot':
      buildRot(job, rng, x, y, normalizationLut(job.mean, job.std, t.c));
      break;
    case 'col':
      buildCol(job, rng, x, y);
      break;
    case 'jig':
      buildJig(job, rng, x, y);
      break;
    case 'simclr':
      buildSimclr(job, rng, x);
      break;
    case 'seg':
      if (!job.masks || job.masks.length !== y.length)
        throw new DataError('task seg needs the label maps of its images (a streamed set with masks)');
      buildCls(job, rng, x, normalizationLut(job.mean, job.std, t.c));
      y.set(job.masks);
      break;
  }
  return { x, xShape, y, yShape, size: n, epoch: job.epoch, index: job.index, rows: job.rows, labels };
}

/** Rebuilds the descriptor from resolved options (used inside workers). */
export function resolveTaskFromResolved(t: ResolvedTask): PretextTask {
  return resolveTask(
    {
      name: t.name,
      augment: t.augment,
      flip: t.flip,
      cropPad: t.cropPad,
      cutout: t.cutout,
      jigsawGrid: t.jigsawGrid,
      jigsawPerms: t.name === 'jig' ? t.jigsawPerms : undefined,
      tileFraction: t.tileFraction,
      normalizeTiles: t.normalizeTiles,
      grayProb: t.grayProb,
      simclr: t.simclr,
      numClasses: t.numClasses || undefined,
    },
    { c: t.c, h: t.h, w: t.w, classes: t.numClasses },
  );
}
