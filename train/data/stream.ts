/**
 * Streamed image sets: a `Dataset` whose pixels stay on disk. Its rows are the
 * entries of a file index; each batch is cut in the worker that builds it:
 * read → header → crop geometry (geometry.ts, from a per-sample seeded RNG) →
 * decode (at a reduced size when the crop allows it) → bilinear resample to
 * size×size → the pretext batch builder. A label map (Cityscapes) follows
 * its image through the same geometry with nearest sampling. Memory is flat
 * in the number of files: only the packed paths are held.
 *
 * A set whose decoded images fit the cache budget is decoded once when opened
 * and held in shared memory (CHW per image, native size); the cuts are then
 * taken from there. Which of the two happens depends only on the files and the
 * budget.
 *
 * Reproducibility: sample i of batch b of epoch e draws from
 * `Rng.derive(seed, SAMPLE_STREAM, e, b, i)`, so a batch is the same whatever
 * the worker count. With `skipCorrupt`, an unreadable file's place in a batch
 * is taken by the next readable image of the same batch (its own draw), and
 * the file is reported with the batch.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../../graph/rng.js';
import type { Dataset } from './dataset.js';
import { type Batch, type BatchJob, buildBatch } from './pretext.js';
import { decodeImage, decodeLabelMap, imageHeader, readImageBytes, toPlanar, UnreadableImage } from './decode.js';
import { DataError } from './errors.js';
import { checkLabels, labelLut, mapLabels } from './seg-labels.js';
import {
  type FileIndex,
  type IndexLayout,
  openIndex,
  type PathTable,
  pathAt,
  pathTable,
  relativePathAt,
} from './file-index.js';
import {
  chwLayout,
  type CropGeometry,
  drawGeometry,
  GEOMETRY_DEFAULTS,
  type GeometryKind,
  type GeometrySettings,
  hwcLayout,
  lightingOffsets,
  type PixelLayout,
  resampleBilinear,
  resampleNearest,
  scaleGeometry,
} from './geometry.js';

/** Defaults of streamed sets (one place). */
export const STREAM_DEFAULTS = {
  ...GEOMETRY_DEFAULTS,
  /** Decoded images are kept in memory when they take at most this many bytes. */
  cacheBytes: 256 * 2 ** 20,
  /** JPEGs are decoded at 1/k of their size when the crop shrinks them by k ≥ this (libvips shrink-on-load). */
  reducedDecodeFrom: 3,
  /** Images of one batch decoded at the same time in a worker. */
  decodeConcurrency: 2,
  /** Normalization of streamed sets: the ImageNet RGB statistics (UnNAS uses them for every data set). */
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
};

/** RNG stream label of the per-sample draws. */
export const SAMPLE_STREAM = 0x5a3;

/** Decoded images in shared memory: image i is CHW at `offsets[i]`, of size dims[2i] × dims[2i+1]. */
export interface DecodedCache {
  pixels: Uint8Array;
  offsets: Float64Array;
  dims: Int32Array;
}

/** Where a streamed set's rows come from and how they are cut (`Dataset.stream`). */
export interface ImageStream extends GeometrySettings {
  layout: IndexLayout;
  paths: PathTable;
  /** Label maps, row-aligned ('' for a row without one), or null. */
  masks: PathTable | null;
  /** Byte value → class id of the label maps (Cityscapes labelIds → trainIds), or null (as they are). */
  maskLut: Uint8Array | null;
  /** Label maps must hold ids below this or 255 (0: not checked). */
  maskClasses: number;
  channels: 1 | 3;
  skipCorrupt: boolean;
  cache: DecodedCache | null;
}

/** Options of `openImageStream`. */
export interface StreamOptions {
  /** Output side of every sample (the crop size). */
  crop: number;
  split?: 'train' | 'test';
  channels?: 1 | 3;
  /** Skip (and report) unreadable images instead of failing. */
  skipCorrupt?: boolean;
  /** Folder where the file index is kept (a run directory's data folder): reused when present. */
  indexDir?: string;
  /** Cache budget in bytes (default STREAM_DEFAULTS.cacheBytes; 0 = always stream). */
  cacheBytes?: number;
  /** Use only the first `limit` files of the index. */
  limit?: number;
  /** Crop recipe (default: cityscapes for the Cityscapes layout, else imagenet). */
  geometry?: GeometryKind;
  /** PCA lighting strength in training (default 0.1; 0 = off). */
  lighting?: number;
  /** Cityscapes crops: the shorter side is scaled to max(crop, scaleBase·2^u) (default 512, UnNAS's search). */
  scaleBase?: number;
  /** Label maps must hold class ids below this or 255; a map that does not fails its batch, naming the file. */
  maskClasses?: number;
}

/**
 * The folder of a run directory where a streamed set's file index is kept:
 * emptied for a fresh run (which rescans the data), kept for a resumed one.
 */
export function runDataDir(out: string, fresh: boolean): string {
  const dir = join(out, 'data');
  if (fresh) rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** A per-image shape estimate from up to 16 evenly spaced headers: mean decoded bytes. */
async function meanImageBytes(t: PathTable, n: number, channels: number): Promise<number> {
  const k = Math.min(16, n);
  let sum = 0;
  let seen = 0;
  for (let j = 0; j < k; j++) {
    const i = Math.floor((j * n) / k);
    try {
      const h = await imageHeader(await readImageBytes(pathAt(t, i)), pathAt(t, i));
      sum += h.h * h.w * channels;
      seen++;
    } catch {
      // a corrupt file is reported when it is decoded
    }
  }
  return seen ? sum / seen : 0;
}

interface CacheFill {
  cache: DecodedCache;
  /** Rows kept (readable), in order. */
  keep: number[];
  failures: string[];
}

/** Decodes every image into shared memory, or returns null as soon as they exceed `budget` bytes. */
async function fillCache(
  t: PathTable,
  n: number,
  channels: 1 | 3,
  budget: number,
  skip: boolean,
): Promise<CacheFill | null> {
  const planes: (Uint8Array | null)[] = new Array(n).fill(null);
  const dims = new Int32Array(new SharedArrayBuffer(8 * Math.max(1, n)));
  const errors = new Map<number, UnreadableImage>();
  let total = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n && total <= budget) {
      const i = next++;
      try {
        const d = await decodeImage(await readImageBytes(pathAt(t, i)), pathAt(t, i), channels);
        planes[i] = toPlanar(d);
        dims[2 * i] = d.h;
        dims[2 * i + 1] = d.w;
        total += planes[i]!.length;
      } catch (e) {
        if (!(e instanceof UnreadableImage)) throw e;
        errors.set(i, e);
      }
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  if (total > budget) return null;
  const failed = [...errors.keys()].sort((a, b) => a - b);
  if (failed.length > 0 && !skip) throw errors.get(failed[0]!)!;
  const keep = planes.flatMap((p, i) => (p ? [i] : []));
  const pixels = new Uint8Array(new SharedArrayBuffer(Math.max(1, total)));
  const offsets = new Float64Array(new SharedArrayBuffer(8 * Math.max(1, keep.length)));
  const kdims = new Int32Array(new SharedArrayBuffer(8 * Math.max(1, keep.length)));
  let o = 0;
  keep.forEach((i, k) => {
    pixels.set(planes[i]!, o);
    offsets[k] = o;
    kdims[2 * k] = dims[2 * i]!;
    kdims[2 * k + 1] = dims[2 * i + 1]!;
    o += planes[i]!.length;
  });
  return { cache: { pixels, offsets, dims: kdims }, keep, failures: failed.map((i) => errors.get(i)!.message) };
}

/** The index restricted to some of its rows (in order). */
function pickRows(index: FileIndex, rows: number[]): FileIndex {
  return {
    ...index,
    files: rows.map((i) => index.files[i]!),
    labels: index.labels ? Int32Array.from(rows, (i) => index.labels![i]!) : null,
    masks: index.masks ? rows.map((i) => index.masks![i]!) : null,
  };
}

/**
 * Opens a folder (any layout of file-index.ts) or image list as a streamed
 * `Dataset` of size×size samples (c × crop × crop), normalized with the
 * ImageNet statistics. The file index is read from `indexDir` when saved
 * there, else scanned and saved.
 */
export async function openImageStream(path: string, o: StreamOptions): Promise<Dataset> {
  if (!Number.isInteger(o.crop) || o.crop < 1)
    throw new DataError(`crop size must be a positive integer, got ${o.crop}`);
  const channels = o.channels ?? 3;
  let index = await openIndex(path, o.split ?? 'train', o.indexDir);
  if (o.limit !== undefined && o.limit < index.files.length)
    index = pickRows(
      index,
      Array.from({ length: o.limit }, (_, i) => i),
    );
  const budget = o.cacheBytes ?? STREAM_DEFAULTS.cacheBytes;
  const n = index.files.length;
  let paths = pathTable(index.root, index.files);
  let fill: CacheFill | null = null;
  if (budget > 0 && n * (await meanImageBytes(paths, n, channels)) <= budget)
    fill = await fillCache(paths, n, channels, budget, !!o.skipCorrupt);
  if (fill && fill.keep.length < n) {
    index = pickRows(index, fill.keep);
    paths = pathTable(index.root, index.files);
  }
  if (index.files.length === 0) throw new DataError(`no readable images in ${index.root}`);
  const stream: ImageStream = {
    ...STREAM_DEFAULTS,
    kind: o.geometry ?? (index.layout === 'cityscapes' ? 'cityscapes' : 'imagenet'),
    size: o.crop,
    lighting: o.lighting ?? STREAM_DEFAULTS.lighting,
    scaleBase: o.scaleBase ?? STREAM_DEFAULTS.scaleBase,
    layout: index.layout,
    paths,
    masks: index.masks ? pathTable(index.root, index.masks) : null,
    maskLut: index.maskMapping && index.maskMapping !== 'identity' ? labelLut(index.maskMapping) : null,
    maskClasses: o.maskClasses ?? 0,
    channels,
    skipCorrupt: !!o.skipCorrupt,
    cache: fill?.cache ?? null,
  };
  const ds: Dataset = {
    images: new Uint8Array(0),
    labels: index.labels,
    n: index.files.length,
    c: channels,
    h: o.crop,
    w: o.crop,
    classes: index.classNames?.length ?? 0,
    name: index.name,
    mean: channels === 3 ? STREAM_DEFAULTS.mean : [0.449],
    std: channels === 3 ? STREAM_DEFAULTS.std : [0.226],
    stream,
  };
  if (index.classNames && index.labels) ds.classNames = index.classNames;
  if (fill && fill.failures.length > 0) {
    ds.skipped = fill.failures.length;
    ds.warnings = fill.failures;
  }
  return ds;
}

// ---------------------------------------------------------------------------
// Cutting the samples of a batch (runs in the workers)

/** How a batch's samples are cut (part of a BatchJob of a streamed set). */
export interface StreamJob {
  set: ImageStream;
  /** Training transform (random crop, flip, lighting) or test transform (resize + centre crop). */
  augment: boolean;
  flip: boolean;
  /** Also cut the label maps. */
  masks: boolean;
}

/** The cut samples of a batch. */
export interface StreamSamples {
  /** n × c × size × size. */
  images: Uint8Array;
  /** Labels of the samples (a substitute's label where a file was unreadable), or null. */
  labels: Int32Array | null;
  /** Per-sample RGB lighting offsets (n × c, in pixel/255 units), or null. */
  lighting: Float32Array | null;
  /** n × size × size label maps (255 where a row has none), or null. */
  masks: Uint8Array | null;
  /** Unreadable files met in this batch. */
  corrupt: string[];
}

interface Target {
  images: Uint8Array;
  lighting: Float32Array | null;
  masks: Uint8Array | null;
}

/** A row's decoded pixels, the geometry on them, and the geometry on the full-size image of h×w (`size`). */
interface Source {
  pixels: Uint8Array;
  layout: PixelLayout;
  g: CropGeometry;
  full: CropGeometry;
  size: [number, number];
}

/** The source pixels of a row and the geometry on them, drawing the sample's crop from `rng`. */
async function sourceOf(set: ImageStream, row: number, rng: Rng, job: StreamJob): Promise<Source> {
  const c = set.channels;
  if (set.cache) {
    const [h, w] = [set.cache.dims[2 * row]!, set.cache.dims[2 * row + 1]!];
    const g = drawGeometry(rng, h, w, set, job);
    return { pixels: set.cache.pixels, layout: chwLayout(h, w, set.cache.offsets[row]!), g, full: g, size: [h, w] };
  }
  const path = pathAt(set.paths, row);
  const bytes = await readImageBytes(path);
  const head = await imageHeader(bytes, path);
  const g = drawGeometry(rng, head.h, head.w, set, job);
  const k = Math.floor(Math.min(g.height / g.oh, g.width / g.ow));
  if (head.format === 'jpeg' && k >= STREAM_DEFAULTS.reducedDecodeFrom) {
    const size: [number, number] = [Math.max(1, Math.floor(head.h / k)), Math.max(1, Math.floor(head.w / k))];
    const d = await decodeImage(bytes, path, c, size);
    const scaled = scaleGeometry(g, d.h / head.h, d.w / head.w, d.h, d.w);
    return { pixels: d.data, layout: hwcLayout(d.w, c), g: scaled, full: g, size: [head.h, head.w] };
  }
  const d = await decodeImage(bytes, path, c);
  if (d.h !== head.h || d.w !== head.w)
    throw new UnreadableImage(path, `header says ${head.w}x${head.h}, decoded ${d.w}x${d.h}`);
  return { pixels: d.data, layout: hwcLayout(d.w, c), g, full: g, size: [head.h, head.w] };
}

/** Cuts the label map of a row (h×w like its image) with the image's full-size geometry into `out` (255 where none). */
async function cutMask(
  set: ImageStream,
  row: number,
  g: CropGeometry,
  size: [number, number],
  out: Uint8Array,
  off: number,
): Promise<void> {
  if (!set.masks || relativePathAt(set.masks, row) === '') {
    out.fill(255, off, off + g.oh * g.ow);
    return;
  }
  const path = pathAt(set.masks, row);
  const m = await decodeLabelMap(await readImageBytes(path), path);
  if (m.h !== size[0] || m.w !== size[1])
    throw new UnreadableImage(path, `label map is ${m.w}x${m.h} but its image is ${size[1]}x${size[0]}`);
  if (set.maskLut) mapLabels(m.data, set.maskLut);
  if (set.maskClasses > 0) checkLabels(m.data, set.maskClasses, path);
  resampleNearest(m.data, hwcLayout(m.w, 1), g, out, off);
}

/** Cuts sample `i` of a batch (the image of `row`) into the batch buffers. */
async function cutSample(set: ImageStream, row: number, i: number, rng: Rng, job: StreamJob, t: Target): Promise<void> {
  const s = await sourceOf(set, row, rng, job);
  const c = set.channels;
  resampleBilinear(s.pixels, s.layout, c, s.g, t.images, i * c * set.size * set.size);
  if (t.lighting) t.lighting.set(lightingOffsets(rng, set.lighting), i * c);
  if (t.masks) await cutMask(set, row, s.full, s.size, t.masks, i * set.size * set.size);
}

/**
 * Cuts the samples of one batch: rows in order, `decodeConcurrency` at a
 * time; unreadable files fail the batch, or with `skipCorrupt` are replaced by
 * the next readable sample of the batch.
 */
export async function cutBatch(
  job: StreamJob,
  rows: Int32Array,
  labels: Int32Array | null,
  seed: number,
  epoch: number,
  index: number,
): Promise<StreamSamples> {
  const set = job.set;
  const n = rows.length;
  const c = set.channels;
  const plane = set.size * set.size;
  const t: Target = {
    images: new Uint8Array(n * c * plane),
    lighting: job.augment && set.lighting > 0 && c === 3 ? new Float32Array(n * c) : null,
    masks: job.masks ? new Uint8Array(n * plane) : null,
  };
  const rngOf = (i: number): Rng => Rng.derive(seed, SAMPLE_STREAM, epoch, index, i);
  const failed = new Map<number, UnreadableImage>();
  let next = 0;
  const run = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      try {
        await cutSample(set, rows[i]!, i, rngOf(i), job, t);
      } catch (e) {
        if (!(e instanceof UnreadableImage)) throw e;
        failed.set(i, e);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, STREAM_DEFAULTS.decodeConcurrency) }, run));
  const order = [...failed.keys()].sort((a, b) => a - b);
  if (order.length > 0 && !set.skipCorrupt) throw failed.get(order[0]!)!;
  if (order.length === n) throw new DataError(`every image of a batch is unreadable, e.g. ${failed.get(0)!.path}`);
  const out = labels ? labels.slice() : null;
  for (const i of order) {
    let j = (i + 1) % n;
    while (failed.has(j)) j = (j + 1) % n;
    await cutSample(set, rows[j]!, i, rngOf(i), job, t);
    if (out && labels) out[i] = labels[j]!;
  }
  return { ...t, labels: out, corrupt: order.map((i) => failed.get(i)!.path) };
}

/**
 * Builds a batch of a streamed set: cuts its samples, then runs the task's
 * batch builder on them (its own flips and padded crops are off: the cut did
 * them). The batch reports the dataset rows, the label maps and the
 * unreadable files met.
 */
export async function buildStreamBatch(job: BatchJob): Promise<Batch> {
  const st = job.stream;
  if (!st) throw new DataError('buildStreamBatch needs a streamed batch job');
  const s = await cutBatch(st, job.rows, job.labels, job.seed, job.epoch, job.index);
  const rows = Int32Array.from(job.rows, (_, i) => i);
  const b = buildBatch({
    ...job,
    images: s.images,
    rows,
    labels: s.labels,
    lighting: s.lighting,
    masks: s.masks,
    stream: undefined,
  });
  return { ...b, rows: job.rows, masks: s.masks, corrupt: s.corrupt };
}
