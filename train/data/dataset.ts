/**
 * The in-memory dataset type shared by all readers, plus subsets and splits.
 *
 * Images are stored once as NCHW uint8 (`images[((i*c + ch)*h + y)*w + x]`),
 * preferably in a SharedArrayBuffer so that worker threads read them without
 * copies. Splits (train/val, DARTS's two halves) are index lists into a dataset
 * (`Subset`), so splitting never copies pixels; `materialize` makes a copy when
 * an independent dataset is really wanted. A streamed set (stream.ts) has no
 * pixels in memory: `images` is empty and `stream` says where each row's
 * image comes from; h×w is then the size of the cut samples.
 */
import { Rng } from '../../graph/rng.js';
import { DataError } from './errors.js';
import { pathTable, relativePathAt } from './file-index.js';
import type { ImageStream } from './stream.js';

/** A labelled or unlabelled image set in memory (NCHW uint8). */
export interface Dataset {
  /** N×C×H×W pixels, row-major NCHW. */
  images: Uint8Array;
  /** One label per image (0..classes-1), or null for an unlabelled set. */
  labels: Int32Array | null;
  n: number;
  c: number;
  h: number;
  w: number;
  /** Number of classes (0 when unlabelled). */
  classes: number;
  /** Short name, e.g. "cifar10/train", used in messages and to pick normalization constants. */
  name: string;
  /** Per-channel mean of pixel/255 used for normalization (standard constants for known sets). */
  mean?: number[];
  /** Per-channel standard deviation of pixel/255 used for normalization. */
  std?: number[];
  /** Class names (image folders: the sub-folder names). */
  classNames?: string[];
  /** Records or files dropped by `skipCorrupt` while reading. */
  skipped?: number;
  /** One line per dropped file/record (with `skipCorrupt`). */
  warnings?: string[];
  /** Streamed sets: the files and transforms of the rows (`images` is then empty). */
  stream?: ImageStream;
}

/** A view of some rows of a dataset (no pixel copy). */
export interface Subset {
  dataset: Dataset;
  /** Row indices into `dataset`, in the subset's order. */
  indices: Int32Array;
  name: string;
}

/** Either a whole dataset or a subset of one: what the loaders accept. */
export type DataSource = Dataset | Subset;

export function isSubset(s: DataSource): s is Subset {
  return (s as Subset).indices !== undefined && (s as Subset).dataset !== undefined;
}

/** Normalizes a source to (dataset, indices). */
export function sourceRows(s: DataSource): { dataset: Dataset; indices: Int32Array } {
  if (isSubset(s)) return { dataset: s.dataset, indices: s.indices };
  const idx = new Int32Array(s.n);
  for (let i = 0; i < s.n; i++) idx[i] = i;
  return { dataset: s, indices: idx };
}

/** Allocates a zeroed byte array backed by a SharedArrayBuffer (shared with workers for free). */
export function sharedBytes(length: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer(length));
}

/** Returns the pixels in a SharedArrayBuffer, copying them once if they are not already shared. */
export function toSharedImages(images: Uint8Array): Uint8Array {
  if (images.buffer instanceof SharedArrayBuffer) return images;
  const out = sharedBytes(images.length);
  out.set(images);
  return out;
}

/** Checks that a dataset's fields are consistent; throws a DataError otherwise. */
export function validateDataset(ds: Dataset): void {
  const { n, c, h, w } = ds;
  if (![n, c, h, w].every((v) => Number.isInteger(v) && v >= 0)) {
    throw new DataError(`dataset ${ds.name}: bad shape ${n}x${c}x${h}x${w}`);
  }
  if (ds.stream) {
    if (ds.images.length !== 0 || ds.stream.paths.count < n)
      throw new DataError(`dataset ${ds.name}: a streamed set of ${n} rows with ${ds.stream.paths.count} files`);
  } else if (ds.images.length !== n * c * h * w) {
    throw new DataError(`dataset ${ds.name}: ${ds.images.length} pixel bytes for shape ${n}x${c}x${h}x${w}`);
  }
  if (ds.labels) {
    if (ds.labels.length !== n) throw new DataError(`dataset ${ds.name}: ${ds.labels.length} labels for ${n} images`);
    for (let i = 0; i < n; i++) {
      const l = ds.labels[i]!;
      if (l < 0 || l >= ds.classes)
        throw new DataError(`dataset ${ds.name}: label ${l} of image ${i} is outside 0..${ds.classes - 1}`);
    }
  }
}

/** The first `limit` images of a dataset (a copy; cheap small real runs). */
export function limitDataset(ds: Dataset, limit: number | undefined): Dataset {
  if (limit === undefined || limit >= ds.n) return ds;
  if (!Number.isInteger(limit) || limit < 0) throw new DataError(`limit must be a non-negative integer, got ${limit}`);
  // a streamed set's first `limit` rows are the first entries of its file table
  if (ds.stream) return { ...ds, n: limit, labels: ds.labels ? ds.labels.slice(0, limit) : null };
  const per = ds.c * ds.h * ds.w;
  const images = sharedBytes(limit * per);
  images.set(ds.images.subarray(0, limit * per));
  return { ...ds, images, n: limit, labels: ds.labels ? ds.labels.slice(0, limit) : null };
}

/** Copies the rows of a subset into a new, independent dataset. */
export function materialize(s: DataSource): Dataset {
  if (!isSubset(s)) return s;
  const ds = s.dataset;
  if (ds.stream) return materializeStream(ds, ds.stream, s);
  const per = ds.c * ds.h * ds.w;
  const m = s.indices.length;
  const images = sharedBytes(m * per);
  const labels = ds.labels ? new Int32Array(m) : null;
  for (let k = 0; k < m; k++) {
    const i = s.indices[k]!;
    images.set(ds.images.subarray(i * per, (i + 1) * per), k * per);
    if (labels) labels[k] = ds.labels![i]!;
  }
  return { ...ds, images, labels, n: m, name: s.name, skipped: undefined, warnings: undefined };
}

/** A streamed subset as a streamed set of its own (its paths copied, no pixels). */
function materializeStream(ds: Dataset, st: ImageStream, s: Subset): Dataset {
  const rows = Array.from(s.indices);
  const masks = st.masks;
  const cache = st.cache;
  const stream: ImageStream = {
    ...st,
    // the cached pixels are shared; only the row tables are new
    cache: cache
      ? {
          pixels: cache.pixels,
          offsets: Float64Array.from(rows, (i) => cache.offsets[i]!),
          dims: Int32Array.from(rows.flatMap((i) => [cache.dims[2 * i]!, cache.dims[2 * i + 1]!])),
        }
      : null,
    paths: pathTable(
      st.paths.root,
      rows.map((i) => relativePathAt(st.paths, i)),
    ),
    masks: masks
      ? pathTable(
          masks.root,
          rows.map((i) => relativePathAt(masks, i)),
        )
      : null,
  };
  const labels = ds.labels ? Int32Array.from(rows, (i) => ds.labels![i]!) : null;
  return { ...ds, labels, n: rows.length, name: s.name, stream, skipped: undefined, warnings: undefined };
}

/** The subset of the given rows of a dataset. */
export function subset(ds: Dataset, indices: Int32Array | number[], name?: string): Subset {
  const idx = indices instanceof Int32Array ? indices : Int32Array.from(indices);
  for (const i of idx)
    if (i < 0 || i >= ds.n) throw new DataError(`subset of ${ds.name}: index ${i} out of range 0..${ds.n - 1}`);
  return { dataset: ds, indices: idx, name: name ?? `${ds.name}[${idx.length}]` };
}

function orderFor(n: number, seed: number | undefined, label: number): Int32Array {
  if (seed === undefined) {
    const idx = new Int32Array(n);
    for (let i = 0; i < n; i++) idx[i] = i;
    return idx;
  }
  return Rng.derive(seed, label).permutation(n);
}

/**
 * Splits a dataset into a training part and a held-out validation part.
 * With a seed the rows are shuffled first (seeded, reproducible); without one
 * the last `valFraction` of the rows is the validation part.
 */
export function splitTrainVal(
  ds: Dataset,
  opts: { valFraction?: number; valCount?: number; seed?: number } = {},
): { train: Subset; val: Subset } {
  const n = ds.n;
  const nVal = opts.valCount ?? Math.round((opts.valFraction ?? 0.1) * n);
  if (!Number.isInteger(nVal) || nVal < 0 || nVal > n)
    throw new DataError(`validation size ${nVal} is outside 0..${n}`);
  const order = orderFor(n, opts.seed, 0x7a1);
  return {
    train: { dataset: ds, indices: order.slice(0, n - nVal), name: `${ds.name}:train` },
    val: { dataset: ds, indices: order.slice(n - nVal), name: `${ds.name}:val` },
  };
}

/**
 * DARTS's split of the training set in two halves: `weights` trains the network
 * weights w, `arch` trains the architecture α. `portion` (0.5 in DARTS) is the
 * fraction going to `weights`. With `shuffle: false` the split is DARTS's own
 * (first rows / last rows); by default the rows are permuted with the seed first.
 */
export function dartsSplit(
  ds: Dataset,
  opts: { seed: number; portion?: number; shuffle?: boolean },
): { weights: Subset; arch: Subset } {
  const portion = opts.portion ?? 0.5;
  if (!(portion > 0 && portion < 1)) throw new DataError(`DARTS split portion must be in (0, 1), got ${portion}`);
  const split = Math.floor(portion * ds.n);
  const order = orderFor(ds.n, opts.shuffle === false ? undefined : opts.seed, 0xda7);
  return {
    weights: { dataset: ds, indices: order.slice(0, split), name: `${ds.name}:darts-w` },
    arch: { dataset: ds, indices: order.slice(split), name: `${ds.name}:darts-a` },
  };
}

/** Per-channel mean and standard deviation of pixel/255 (over all rows of the source). */
export function computeMeanStd(src: DataSource): { mean: number[]; std: number[] } {
  const { dataset: ds, indices } = sourceRows(src);
  if (ds.stream)
    throw new DataError(`${ds.name} is streamed from disk: its normalization constants are fixed, not computed`);
  const { c, h, w } = ds;
  const plane = h * w;
  const sum = new Float64Array(c);
  const sq = new Float64Array(c);
  // Histogram per channel: exact and fast for uint8 data.
  const hist = new Float64Array(c * 256);
  for (const i of indices) {
    const base = i * c * plane;
    for (let ch = 0; ch < c; ch++) {
      const off = base + ch * plane;
      const hb = ch * 256;
      for (let p = 0; p < plane; p++) hist[hb + ds.images[off + p]!]!++;
    }
  }
  const count = indices.length * plane;
  const mean: number[] = [];
  const std: number[] = [];
  for (let ch = 0; ch < c; ch++) {
    for (let v = 0; v < 256; v++) {
      const k = hist[ch * 256 + v]!;
      sum[ch] = sum[ch]! + k * (v / 255);
      sq[ch] = sq[ch]! + k * (v / 255) * (v / 255);
    }
    const m = count > 0 ? sum[ch]! / count : 0;
    const varc = count > 0 ? Math.max(0, sq[ch]! / count - m * m) : 0;
    mean.push(m);
    std.push(Math.sqrt(varc) || 1);
  }
  return { mean, std };
}

/** Normalization constants of a dataset: its own `mean`/`std` if set, else computed from its pixels. */
export function normalizationOf(src: DataSource): { mean: number[]; std: number[] } {
  const ds = isSubset(src) ? src.dataset : src;
  if (ds.mean && ds.std && ds.mean.length === ds.c && ds.std.length === ds.c) return { mean: ds.mean, std: ds.std };
  const s = computeMeanStd(ds);
  ds.mean = s.mean;
  ds.std = s.std;
  return s;
}
