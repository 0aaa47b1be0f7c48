/**
 * Dataset readers: CIFAR-10/100 binary batches, IDX files (plain or .gz, as
 * MNIST / Fashion-MNIST ship them) and image folders (PNG/JPEG decoded with
 * sharp; class sub-folders give labels, a flat folder is unlabelled), and
 * `loadDataset(spec)` which takes a dataset name or a path and detects the
 * format. With `crop`, image folders, Cityscapes roots and image lists are
 * streamed from disk instead (stream.ts). Every failure is a one-line
 * `DataError` naming the file; with `skipCorrupt: true` corrupt records/files
 * are dropped and counted instead.
 */
import { existsSync, statSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { constants as zc, createGunzip, gunzipSync } from 'node:zlib';
import sharp, { type OutputInfo } from 'sharp';
import { DataError, errorText } from './errors.js';
import { computeMeanStd, type Dataset, limitDataset, sharedBytes, validateDataset } from './dataset.js';
import { imageHeader, readImageBytes, toPlanar } from './decode.js';
import { buildIndex, type FileIndex, imagesBelow, isImageName, isListFile } from './file-index.js';
import type { GeometryKind } from './geometry.js';
import { openImageStream, STREAM_DEFAULTS } from './stream.js';

/** Which part of a dataset to read. */
export type SplitName = 'train' | 'test';

/** Options common to all readers. */
export interface ReadOptions {
  /** 'train' (default) or 'test'. */
  split?: SplitName;
  /** Keep only the first `limit` images (cheap small real runs). */
  limit?: number;
  /** Drop corrupt/truncated records or files (counted in `dataset.skipped`) instead of failing. */
  skipCorrupt?: boolean;
}

/** Options of the image-folder reader. */
export interface FolderOptions extends ReadOptions {
  /** Resize every image to this size (`n` → n×n, or [h, w]). Without it all images must share one size. */
  size?: number | [number, number];
  /** Output channels: 3 (RGB, default) or 1 (grayscale). */
  channels?: 1 | 3;
  /** How to resize to a different aspect ratio: 'cover' (crop, default) or 'fill' (stretch). */
  fit?: 'cover' | 'fill';
  /** Images decoded at the same time (default 8). */
  concurrency?: number;
  /** Decoded images are held in memory up to this many bytes (default 256 MiB): beyond, --size is needed. */
  memoryBytes?: number;
}

/** Options of `loadDataset` (the union of the readers' options). */
export interface LoadOptions extends FolderOptions {
  /** CIFAR-100 label kind: 'fine' (100 classes, default) or 'coarse' (20 superclasses). */
  cifar100Labels?: 'fine' | 'coarse';
  /**
   * Stream image folders, Cityscapes roots and image lists as crop×crop
   * samples (random-sized crops in training, resize + centre crop in test)
   * instead of reading them into memory (stream.ts). CIFAR and IDX sets
   * accept only their own size.
   */
  crop?: number;
  /** Streamed sets: folder where the file index is kept and reused (a run directory's data folder). */
  indexDir?: string;
  /** Streamed sets: crop recipe (default: cityscapes for that layout, else imagenet). */
  geometry?: GeometryKind;
  /** Streamed sets: PCA lighting strength in training (default 0.1; 0 = off). */
  lighting?: number;
}

/** Standard normalization constants (per-channel mean/std of pixel/255 on the training sets). */
export const KNOWN_STATS: Record<string, { mean: number[]; std: number[]; classes: number }> = {
  cifar10: { mean: [0.4914, 0.4822, 0.4465], std: [0.247, 0.2435, 0.2616], classes: 10 },
  cifar100: { mean: [0.5071, 0.4865, 0.4409], std: [0.2673, 0.2564, 0.2762], classes: 100 },
  'fashion-mnist': { mean: [0.286], std: [0.353], classes: 10 },
  mnist: { mean: [0.1307], std: [0.3081], classes: 10 },
};

/** Class names of the known labelled sets, by label (the data sets' own documentation). */
export const KNOWN_CLASS_NAMES: Record<string, string[]> = {
  cifar10: ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'],
  'fashion-mnist': [
    'T-shirt/top',
    'Trouser',
    'Pullover',
    'Dress',
    'Coat',
    'Sandal',
    'Shirt',
    'Sneaker',
    'Bag',
    'Ankle boot',
  ],
  mnist: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
};

/** `ds` with the class names of known set `kind` when it has their labels and no names yet. */
function withKnownNames(ds: Dataset, kind: string): Dataset {
  const names = KNOWN_CLASS_NAMES[kind];
  if (names && !ds.classNames && ds.labels && ds.classes === names.length) ds.classNames = names;
  return ds;
}

/** Where `loadDataset('fashion-mnist')` looks (override with $FASHION_MNIST_DIR). */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

const CIFAR_PIXELS = 3 * 32 * 32;

// ---------------------------------------------------------------------------
// small helpers

async function readBytes(file: string): Promise<Uint8Array> {
  try {
    const b = await readFile(file);
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new DataError(`no such file: ${file}`);
    if (code === 'EISDIR') throw new DataError(`expected a file but found a directory: ${file}`);
    throw new DataError(`cannot read ${file}: ${errorText(e)}`);
  }
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((n) => !n.startsWith('.')).sort();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new DataError(`no such directory: ${dir}`);
    if (code === 'ENOTDIR') throw new DataError(`not a directory: ${dir}`);
    throw new DataError(`cannot list ${dir}: ${errorText(e)}`);
  }
}

interface Skips {
  skipped: number;
  warnings: string[];
}

function skipOrThrow(skipCorrupt: boolean | undefined, skips: Skips, message: string, count = 1): void {
  if (!skipCorrupt) throw new DataError(message);
  skips.skipped += count;
  skips.warnings.push(message);
}

function finish(ds: Dataset, skips: Skips): Dataset {
  if (skips.skipped > 0 || skips.warnings.length > 0) {
    ds.skipped = skips.skipped;
    ds.warnings = skips.warnings;
  }
  validateDataset(ds);
  return ds;
}

// ---------------------------------------------------------------------------
// CIFAR

/** Which CIFAR binary layout: CIFAR-10 (1 label byte) or CIFAR-100 (coarse and fine label bytes). */
export type CifarKind = 'cifar10' | 'cifar100';

/** The batch files of a CIFAR binary release for a split. */
export function cifarFiles(kind: CifarKind, split: SplitName): string[] {
  if (kind === 'cifar10') {
    return split === 'train' ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`) : ['test_batch.bin'];
  }
  return split === 'train' ? ['train.bin'] : ['test.bin'];
}

/** The directory holding the batch files: `dir` itself or its standard sub-folder (cifar-10-batches-bin, cifar-100-binary). */
export function cifarBaseDir(dir: string, kind: CifarKind): string {
  const sub = kind === 'cifar10' ? 'cifar-10-batches-bin' : 'cifar-100-binary';
  const probe = kind === 'cifar10' ? ['data_batch_1.bin', 'test_batch.bin'] : ['train.bin', 'test.bin'];
  if (probe.some((f) => isFile(join(dir, f)))) return dir;
  if (probe.some((f) => isFile(join(dir, sub, f)))) return join(dir, sub);
  return dir;
}

/**
 * Reads CIFAR binary batch files into one dataset. Each record is 1 label
 * byte (CIFAR-10) or 2 (CIFAR-100: coarse, fine) followed by 3072 pixel bytes
 * (1024 R, 1024 G, 1024 B: already CHW).
 */
export async function readCifarFiles(
  files: string[],
  kind: CifarKind,
  opts: ReadOptions & { cifar100Labels?: 'fine' | 'coarse'; name?: string } = {},
): Promise<Dataset> {
  const labelBytes = kind === 'cifar10' ? 1 : 2;
  const rec = labelBytes + CIFAR_PIXELS;
  const classes = kind === 'cifar10' ? 10 : opts.cifar100Labels === 'coarse' ? 20 : 100;
  const labelOffset = kind === 'cifar100' && opts.cifar100Labels !== 'coarse' ? 1 : 0;
  const limit = opts.limit ?? Infinity;
  const skips: Skips = { skipped: 0, warnings: [] };
  const parts: { buf: Uint8Array; records: number[] }[] = [];
  let total = 0;
  for (const file of files) {
    if (total >= limit) break;
    const buf = await readBytes(file);
    if (buf.length === 0) {
      skipOrThrow(opts.skipCorrupt, skips, `${file} is empty (expected ${kind.toUpperCase()} records of ${rec} bytes)`);
      continue;
    }
    let count = Math.floor(buf.length / rec);
    if (buf.length % rec !== 0) {
      skipOrThrow(
        opts.skipCorrupt,
        skips,
        `${file} is truncated or not a ${kind} binary batch: ${buf.length} bytes is not a multiple of the ${rec}-byte record`,
      );
    }
    const records: number[] = [];
    for (let r = 0; r < count && total + records.length < limit; r++) {
      const lab = buf[r * rec + labelOffset]!;
      const coarseOk = kind === 'cifar10' || buf[r * rec]! < 20;
      if (lab >= classes || !coarseOk) {
        skipOrThrow(
          opts.skipCorrupt,
          skips,
          `${file} is corrupt: record ${r} has label ${lab} outside 0..${classes - 1} (not a ${kind} binary batch?)`,
        );
        continue;
      }
      records.push(r);
    }
    count = records.length;
    total += count;
    parts.push({ buf, records });
  }
  const n = total;
  const images = sharedBytes(n * CIFAR_PIXELS);
  const labels = new Int32Array(n);
  let k = 0;
  for (const { buf, records } of parts) {
    for (const r of records) {
      labels[k] = buf[r * rec + labelOffset]!;
      images.set(buf.subarray(r * rec + labelBytes, (r + 1) * rec), k * CIFAR_PIXELS);
      k++;
    }
  }
  const stats = KNOWN_STATS[kind]!;
  const ds: Dataset = {
    images,
    labels,
    n,
    c: 3,
    h: 32,
    w: 32,
    classes,
    name: opts.name ?? kind,
    mean: stats.mean,
    std: stats.std,
  };
  return finish(ds, skips);
}

/** Reads the train or test split of a CIFAR-10/100 binary release directory. */
export async function readCifarDir(
  dir: string,
  kind: CifarKind,
  opts: ReadOptions & { cifar100Labels?: 'fine' | 'coarse' } = {},
): Promise<Dataset> {
  if (!isDir(dir)) throw new DataError(existsSync(dir) ? `not a directory: ${dir}` : `no such directory: ${dir}`);
  const split = opts.split ?? 'train';
  const base = cifarBaseDir(dir, kind);
  const files = cifarFiles(kind, split).map((f) => join(base, f));
  const missing = files.filter((f) => !isFile(f));
  if (missing.length > 0) {
    throw new DataError(`${kind} ${split} split: missing ${missing.map((f) => basename(f)).join(', ')} in ${base}`);
  }
  return readCifarFiles(files, kind, { ...opts, name: `${kind}/${split}` });
}

// ---------------------------------------------------------------------------
// IDX

/** A parsed IDX file (unsigned-byte data only). */
export interface IdxData {
  dims: number[];
  data: Uint8Array;
}

function gunzipFile(file: string, buf: Uint8Array, skipCorrupt: boolean | undefined, skips: Skips): Uint8Array {
  try {
    return new Uint8Array(gunzipSync(buf));
  } catch (e) {
    if (!skipCorrupt) throw new DataError(`${file}: corrupt or truncated gzip data (${errorText(e)})`);
    try {
      // Salvage what decompresses; the IDX parser below counts the missing items.
      const partial = gunzipSync(buf, { finishFlush: zc.Z_SYNC_FLUSH });
      skips.warnings.push(`${file}: corrupt or truncated gzip data (${errorText(e)}); using the readable part`);
      return new Uint8Array(partial);
    } catch {
      throw new DataError(`${file}: corrupt gzip data (${errorText(e)})`);
    }
  }
}

/**
 * Parses an IDX buffer: magic 0x00 0x00 <type> <ndims>, ndims big-endian
 * uint32 sizes, then the data. Only type 0x08 (unsigned byte) is supported.
 * A truncated file is an error, or with `skipCorrupt` keeps the complete items.
 */
export function parseIdx(buf: Uint8Array, file: string, skipCorrupt?: boolean, skips?: Skips): IdxData {
  const sk = skips ?? { skipped: 0, warnings: [] };
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0) {
    throw new DataError(`${file} is not an IDX file (bad magic number)`);
  }
  const type = buf[2]!;
  const nd = buf[3]!;
  if (type !== 0x08)
    throw new DataError(`${file}: IDX data type 0x${type.toString(16)} is not supported (only unsigned bytes, 0x08)`);
  if (nd < 1 || nd > 4) throw new DataError(`${file}: IDX file with ${nd} dimensions is not supported`);
  const header = 4 + 4 * nd;
  if (buf.length < header)
    throw new DataError(`${file} is truncated: the IDX header needs ${header} bytes, found ${buf.length}`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < nd; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const per = dims.slice(1).reduce((a, b) => a * b, 1);
  const expected = dims[0]! * per;
  const avail = buf.length - header;
  if (avail < expected) {
    const have = per > 0 ? Math.floor(avail / per) : 0;
    skipOrThrow(
      skipCorrupt,
      sk,
      `${file} is truncated: expected ${expected} data bytes (${dims.join('x')}), found ${avail}`,
      dims[0]! - have,
    );
    dims[0] = have;
  }
  return { dims, data: buf.subarray(header, header + dims[0]! * per) };
}

/**
 * Decompresses only the beginning of a gzip buffer: stops once `enough(head)`
 * bytes are out (head = what is decompressed so far). Returns null when the
 * data ends (or is corrupt) before that, so the caller falls back to a full read.
 */
async function gunzipPrefix(buf: Uint8Array, enough: (head: Uint8Array) => number): Promise<Uint8Array | null> {
  const parts: Buffer[] = [];
  let have = 0;
  let need = Infinity;
  const slices = function* (): Generator<Uint8Array> {
    for (let o = 0; o < buf.length; o += 1 << 16) yield buf.subarray(o, Math.min(buf.length, o + (1 << 16)));
  };
  const gz = Readable.from(slices()).pipe(createGunzip());
  try {
    for await (const chunk of gz as AsyncIterable<Buffer>) {
      parts.push(chunk);
      have += chunk.length;
      if (need === Infinity && have >= 16) need = enough(new Uint8Array(Buffer.concat(parts)));
      if (have >= need) break;
    }
  } catch {
    return null;
  } finally {
    gz.destroy();
  }
  if (have < need) return null;
  return new Uint8Array(Buffer.concat(parts));
}

/** Bytes of an IDX file holding its header and its first `items` items (from the first ≥16 bytes). */
function idxPrefixBytes(head: Uint8Array, items: number): number {
  if (head[0] !== 0 || head[1] !== 0) return Infinity;
  const nd = head[3]!;
  if (head.length < 4 + 4 * nd) return Infinity;
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  let per = 1;
  for (let i = 1; i < nd; i++) per *= dv.getUint32(4 + 4 * i, false);
  const n = Math.min(items, dv.getUint32(4, false));
  return 4 + 4 * nd + n * per;
}

/**
 * Reads an IDX file, plain or gzip-compressed (by magic bytes, whatever the
 * name). With `maxItems`, a gzip file is only decompressed as far as needed and
 * the result holds at most that many items.
 */
export async function readIdxFile(
  file: string,
  skipCorrupt?: boolean,
  skips?: Skips,
  maxItems?: number,
): Promise<IdxData> {
  const sk = skips ?? { skipped: 0, warnings: [] };
  let buf = await readBytes(file);
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    const prefix = maxItems !== undefined ? await gunzipPrefix(buf, (h) => idxPrefixBytes(h, maxItems)) : null;
    if (prefix) {
      // Patch the item count so that the parser sees a complete file of maxItems items.
      const dv = new DataView(prefix.buffer, prefix.byteOffset, prefix.byteLength);
      const n = Math.min(maxItems!, dv.getUint32(4, false));
      dv.setUint32(4, n, false);
      buf = prefix.subarray(0, idxPrefixBytes(prefix, n));
    } else {
      buf = gunzipFile(file, buf, skipCorrupt, sk);
    }
  }
  const idx = parseIdx(buf, file, skipCorrupt, sk);
  if (maxItems !== undefined && idx.dims[0]! > maxItems) {
    const per = idx.dims.slice(1).reduce((a, b) => a * b, 1);
    idx.dims[0] = maxItems;
    idx.data = idx.data.subarray(0, maxItems * per);
  }
  return idx;
}

function idxRole(name: string): { role: 'images' | 'labels'; split: SplitName } | null {
  const n = name.toLowerCase();
  if (!/idx\d/.test(n)) return null;
  const role = n.includes('image') ? 'images' : n.includes('label') ? 'labels' : null;
  if (!role) return null;
  const split: SplitName = n.startsWith('t10k') || n.startsWith('test') ? 'test' : 'train';
  return { role, split };
}

/** Finds the images and labels IDX files of a split in a directory (MNIST naming, plain or .gz). */
export async function findIdxFiles(
  dir: string,
  split: SplitName,
): Promise<{ images: string; labels: string | null } | null> {
  let images: string | null = null;
  let labels: string | null = null;
  for (const name of await listDir(dir)) {
    const r = idxRole(name);
    if (!r || r.split !== split) continue;
    if (r.role === 'images' && (images === null || name.endsWith('.gz') === false)) images = join(dir, name);
    if (r.role === 'labels' && (labels === null || name.endsWith('.gz') === false)) labels = join(dir, name);
  }
  return images ? { images, labels } : null;
}

/** The labels file matching an IDX images file (images→labels, idx3→idx1, with or without .gz). */
export function idxLabelsFor(imagesFile: string): string | null {
  const dir = dirname(imagesFile);
  const stem = basename(imagesFile).replace(/\.gz$/i, '');
  const lab = stem.replace(/images/i, 'labels').replace(/idx3/i, 'idx1');
  if (lab === stem) return null;
  for (const cand of [lab, `${lab}.gz`]) if (isFile(join(dir, cand))) return join(dir, cand);
  return null;
}

/**
 * Reads an IDX images file ([N, H, W] → 1 channel, or [N, H, W, C] interleaved)
 * and optionally its labels file (idx1, [N]).
 */
export async function readIdxDataset(
  imagesFile: string,
  labelsFile: string | null,
  opts: ReadOptions & { name?: string; classes?: number } = {},
): Promise<Dataset> {
  const skips: Skips = { skipped: 0, warnings: [] };
  const img = await readIdxFile(imagesFile, opts.skipCorrupt, skips, opts.limit);
  if (img.dims.length !== 3 && img.dims.length !== 4) {
    throw new DataError(
      `${imagesFile}: expected an IDX image file of 3 or 4 dimensions, found ${img.dims.length} (${img.dims.join('x')})`,
    );
  }
  let n = img.dims[0]!;
  const h = img.dims[1]!;
  const w = img.dims[2]!;
  const c = img.dims.length === 4 ? img.dims[3]! : 1;
  let lab: Uint8Array | null = null;
  if (labelsFile) {
    const l = await readIdxFile(labelsFile, opts.skipCorrupt, skips, opts.limit);
    if (l.dims.length !== 1)
      throw new DataError(`${labelsFile}: expected a 1-dimensional IDX label file, found ${l.dims.join('x')}`);
    if (l.dims[0] !== n) {
      skipOrThrow(
        opts.skipCorrupt,
        skips,
        `${labelsFile} has ${l.dims[0]} labels but ${imagesFile} has ${n} images`,
        Math.abs(l.dims[0]! - n),
      );
      n = Math.min(n, l.dims[0]!);
    }
    lab = l.data;
  }
  n = Math.min(n, opts.limit ?? Infinity);
  const per = c * h * w;
  const images = sharedBytes(n * per);
  if (c === 1) {
    images.set(img.data.subarray(0, n * per));
  } else {
    const plane = h * w;
    for (let i = 0; i < n; i++) {
      const src = i * per;
      for (let p = 0; p < plane; p++)
        for (let ch = 0; ch < c; ch++) images[src + ch * plane + p] = img.data[src + p * c + ch]!;
    }
  }
  let labels: Int32Array | null = null;
  let classes = 0;
  if (lab) {
    labels = new Int32Array(n);
    let max = -1;
    for (let i = 0; i < n; i++) {
      labels[i] = lab[i]!;
      if (lab[i]! > max) max = lab[i]!;
    }
    classes = opts.classes ?? max + 1;
  }
  const ds: Dataset = { images, labels, n, c, h, w, classes, name: opts.name ?? basename(imagesFile) };
  return finish(ds, skips);
}

/** Reads the train or test split of an IDX directory (or the given images file and its labels file). */
export async function readIdxPath(
  path: string,
  opts: ReadOptions & { name?: string; classes?: number } = {},
): Promise<Dataset> {
  const split = opts.split ?? 'train';
  if (isDir(path)) {
    const f = await findIdxFiles(path, split);
    if (!f)
      throw new DataError(
        `no IDX ${split} images file (e.g. ${split === 'train' ? 'train' : 't10k'}-images-idx3-ubyte[.gz]) in ${path}`,
      );
    return readIdxDataset(f.images, f.labels, { ...opts, name: opts.name ?? `${basename(path)}/${split}` });
  }
  if (!isFile(path)) throw new DataError(`no such file or directory: ${path}`);
  return readIdxDataset(path, idxLabelsFor(path), opts);
}

// ---------------------------------------------------------------------------
// Image folders (in memory; folders too large for memory are streamed: stream.ts)

/** Whether a file name has an image extension. */
export function isImageFile(name: string): boolean {
  return isImageName(name);
}

/** The images in `dir` (recursively when asked), as paths joined to `dir`, sorted. */
export async function imagesUnder(dir: string, recursive: boolean): Promise<string[]> {
  return (await imagesBelow(dir, dir, recursive)).map((f) => join(dir, f));
}

/** Decoding state of an in-memory folder: pixels by file index, the common size, failures by file index. */
interface FolderDecode {
  decoded: (Uint8Array | null)[];
  h: number;
  w: number;
  /** The file that fixed the size ('' when the size option did). */
  from: string;
  failures: Map<number, { message: string; skippable: boolean }>;
}

/** Decodes file i into the state (CHW), recording a failure instead of throwing. */
async function decodeFolderImage(files: string[], i: number, st: FolderDecode, opts: FolderOptions): Promise<void> {
  const file = files[i]!;
  const channels = opts.channels ?? 3;
  let img = sharp(file, { failOn: 'warning' });
  if (opts.size !== undefined) {
    const [h, w] = typeof opts.size === 'number' ? [opts.size, opts.size] : opts.size;
    img = img.resize(w, h, { fit: opts.fit ?? 'cover' });
  }
  img = img.removeAlpha();
  img = channels === 1 ? img.grayscale() : img.toColourspace('srgb');
  let out: { data: Buffer; info: OutputInfo };
  try {
    out = await img.raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    st.failures.set(i, { message: `cannot decode image ${file}: ${errorText(e)}`, skippable: true });
    return;
  }
  const { width, height } = out.info;
  if (out.info.channels !== channels) {
    const message = `image ${file} decoded to ${out.info.channels} channels, expected ${channels}`;
    st.failures.set(i, { message, skippable: true });
    return;
  }
  if (st.h < 0) {
    [st.h, st.w, st.from] = [height, width, file];
  } else if (height !== st.h || width !== st.w) {
    const message = `images differ in size: ${file} is ${width}x${height} but ${st.from || 'the size option'} is ${st.w}x${st.h}; pass a size (--size N crops them)`;
    st.failures.set(i, { message, skippable: false });
    return;
  }
  st.decoded[i] = toPlanar({ data: new Uint8Array(out.data), h: height, w: width, c: channels });
}

/**
 * Decodes every file. Without a size option the first decodable image fixes
 * the size: files are decoded in order until one succeeds, then the rest with
 * bounded concurrency, stopping early on a fatal failure (every earlier file
 * has been decoded by then, so the failure reported is the first in file order).
 */
async function decodeFolder(files: string[], opts: FolderOptions): Promise<FolderDecode> {
  const size = opts.size === undefined ? null : typeof opts.size === 'number' ? [opts.size, opts.size] : opts.size;
  const st: FolderDecode = {
    decoded: new Array(files.length).fill(null),
    h: size ? size[0]! : -1,
    w: size ? size[1]! : -1,
    from: '',
    failures: new Map(),
  };
  const fatal = (): boolean => [...st.failures.values()].some((f) => !f.skippable || !opts.skipCorrupt);
  let next = 0;
  while (next < files.length && st.h < 0 && !fatal()) await decodeFolderImage(files, next++, st, opts);
  const conc = Math.max(1, opts.concurrency ?? 8);
  const runners = Array.from({ length: Math.min(conc, files.length) }, async () => {
    while (next < files.length && !fatal()) await decodeFolderImage(files, next++, st, opts);
  });
  await Promise.all(runners);
  return st;
}

/** Packs the decoded images (failures reported in file order: thrown, or skipped and counted). */
function folderDataset(index: FileIndex, labelsIn: Int32Array | null, st: FolderDecode, opts: FolderOptions): Dataset {
  const skips: Skips = { skipped: 0, warnings: [] };
  for (const i of [...st.failures.keys()].sort((a, b) => a - b)) {
    const f = st.failures.get(i)!;
    if (!f.skippable || !opts.skipCorrupt) throw new DataError(f.message);
    skips.skipped++;
    skips.warnings.push(f.message);
  }
  skips.warnings.push(...(index.warnings ?? []));
  if (st.h < 0) throw new DataError(`no decodable images in ${index.root}`);
  const keep = st.decoded.flatMap((d, i) => (d ? [i] : []));
  const channels = opts.channels ?? 3;
  const per = channels * st.h * st.w;
  const images = sharedBytes(keep.length * per);
  keep.forEach((i, k) => images.set(st.decoded[i]!, k * per));
  const ds: Dataset = {
    images,
    labels: labelsIn ? Int32Array.from(keep, (i) => labelsIn[i]!) : null,
    n: keep.length,
    c: channels,
    h: st.h,
    w: st.w,
    classes: labelsIn ? index.classNames!.length : 0,
    name: index.name,
  };
  if (labelsIn) ds.classNames = index.classNames!;
  return finish(ds, skips);
}

/**
 * Reads an image folder into memory. Sub-folders are classes (sorted by name
 * → label 0..K-1; images anywhere below them); a folder with images and no
 * class sub-folders is unlabelled (file-index.ts). PNG and JPEG are decoded
 * with sharp, converted to RGB (or gray with `channels: 1`) and resized to
 * `size` when given.
 */
export async function readImageFolder(dir: string, opts: FolderOptions = {}): Promise<Dataset> {
  if (!isDir(dir)) throw new DataError(existsSync(dir) ? `not a directory: ${dir}` : `no such directory: ${dir}`);
  const index = await buildIndex(dir, opts.split ?? 'train');
  const n = Math.min(index.files.length, opts.limit ?? Infinity);
  await checkFolderFits(index, n, opts);
  const files = index.files.slice(0, n).map((f) => join(index.root, f));
  const st = await decodeFolder(files, opts);
  return folderDataset(index, index.labels ? index.labels.slice(0, n) : null, st, opts);
}

/**
 * Checks, from the first image's header, that n images read into memory at
 * their own size fit `memoryBytes`; otherwise one clear error naming --size.
 */
async function checkFolderFits(index: FileIndex, n: number, opts: FolderOptions): Promise<void> {
  if (index.layout === 'cityscapes')
    throw new DataError(`${index.name} is a Cityscapes layout: its images are streamed, pass --size N (the crop size)`);
  if (opts.size !== undefined) return;
  const first = join(index.root, index.files[0]!);
  let head: { h: number; w: number };
  try {
    head = await imageHeader(await readImageBytes(first), first);
  } catch {
    return; // decoding reports it
  }
  const bytes = n * (opts.channels ?? 3) * head.h * head.w;
  if (bytes > (opts.memoryBytes ?? STREAM_DEFAULTS.cacheBytes)) {
    const gib = (bytes / 2 ** 30).toFixed(2);
    throw new DataError(
      `${n} images of ${head.w}x${head.h} (${index.name}) need ${gib} GiB in memory: pass --size N to stream them as N×N crops`,
    );
  }
}

// ---------------------------------------------------------------------------
// Format detection and loadDataset

/** The on-disk formats `loadDataset` understands. */
export type DataFormat = 'cifar10' | 'cifar100' | 'idx' | 'folder' | 'list';

async function hasImagesWithin(dir: string, depth: number): Promise<boolean> {
  for (const name of await listDir(dir)) {
    const p = join(dir, name);
    if (isFile(p) && isImageName(name)) return true;
    if (depth > 0 && isDir(p) && (await hasImagesWithin(p, depth - 1))) return true;
  }
  return false;
}

/** Detects the format of a directory or file; throws a DataError when none fits. */
export async function detectFormat(path: string): Promise<DataFormat> {
  if (!existsSync(path)) throw new DataError(`no such file or directory: ${path}`);
  if (isDir(path)) {
    if (
      cifarBaseDir(path, 'cifar10') !== path ||
      isFile(join(path, 'data_batch_1.bin')) ||
      isFile(join(path, 'test_batch.bin'))
    )
      return 'cifar10';
    if (cifarBaseDir(path, 'cifar100') !== path || isFile(join(path, 'train.bin')) || isFile(join(path, 'test.bin')))
      return 'cifar100';
    const names = await listDir(path);
    if (names.some((n) => idxRole(n) !== null)) return 'idx';
    if (await hasImagesWithin(path, 3)) return 'folder';
    throw new DataError(
      `cannot detect the dataset format of ${path}: expected CIFAR .bin batches, IDX files or PNG/JPEG images`,
    );
  }
  if (isListFile(path)) return 'list';
  const name = basename(path).toLowerCase();
  if (name.endsWith('.bin')) {
    if (name.startsWith('data_batch') || name.startsWith('test_batch')) return 'cifar10';
    if (name === 'train.bin' || name === 'test.bin') return 'cifar100';
    const size = statSync(path).size;
    if (size > 0 && size % (CIFAR_PIXELS + 1) === 0) return 'cifar10';
    if (size > 0 && size % (CIFAR_PIXELS + 2) === 0) return 'cifar100';
    throw new DataError(
      `cannot detect the format of ${path}: a .bin file whose size is not a whole number of CIFAR records`,
    );
  }
  if (/idx\d/.test(name)) return 'idx';
  // Sniff the IDX magic, plain or inside gzip, for an IDX file with an unusual name.
  const bytes = await readBytes(path);
  let head: Uint8Array | null = bytes.subarray(0, 4);
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) head = await gunzipPrefix(bytes, () => 4);
  if (head && head.length >= 4 && head[0] === 0 && head[1] === 0 && head[2] === 0x08) return 'idx';
  if (isImageName(name)) throw new DataError(`${path} is a single image; pass the folder that holds the images`);
  throw new DataError(
    `cannot detect the dataset format of ${path}: expected a CIFAR .bin batch, an IDX file or an image folder`,
  );
}

const NAMED = ['fashion-mnist', 'mnist', 'cifar10', 'cifar100', 'idx', 'folder'] as const;

/** A spec's dataset kind (a name, or null for a path to detect) and its location, which must exist. */
function parseSpec(spec: string): { kind: string | null; path: string } {
  if (typeof spec !== 'string' || spec.length === 0) throw new DataError('empty dataset spec');
  const colon = spec.indexOf(':');
  let kind: string | null = null;
  let path = spec;
  if (colon > 0 && (NAMED as readonly string[]).includes(spec.slice(0, colon).toLowerCase())) {
    kind = spec.slice(0, colon).toLowerCase();
    path = spec.slice(colon + 1);
  } else if ((NAMED as readonly string[]).includes(spec.toLowerCase()) && !existsSync(spec)) {
    kind = spec.toLowerCase();
    path = '';
  }
  if (kind === 'fashion-mnist' && path === '') path = process.env.FASHION_MNIST_DIR ?? FASHION_MNIST_DIR;
  if (kind !== null && path === '') {
    throw new DataError(`dataset '${kind}' needs a location: use ${kind}:<path>`);
  }
  if (!existsSync(path)) {
    const hint =
      kind === null ? ` (or use a dataset name: fashion-mnist, cifar10:<dir>, cifar100:<dir>, mnist:<dir>)` : '';
    throw new DataError(`no such file or directory: ${path}${hint}`);
  }
  return { kind, path };
}

/** Reads an in-memory set of a known kind (the detected format for kind null); null mean/std are computed. */
async function readKind(kind: string | null, path: string, opts: LoadOptions, split: SplitName): Promise<Dataset> {
  switch (kind) {
    case 'fashion-mnist':
    case 'mnist': {
      const ds = await readIdxPath(path, { ...opts, split, name: `${kind}/${split}`, classes: 10 });
      const st = KNOWN_STATS[kind]!;
      return withKnownNames({ ...ds, mean: st.mean, std: st.std }, kind);
    }
    case 'cifar10':
    case 'cifar100':
      if (isDir(path)) return withKnownNames(await readCifarDir(path, kind, opts), kind);
      return withKnownNames(await readCifarFiles([path], kind, { ...opts, name: basename(path) }), kind);
    case 'idx':
      return readIdxPath(path, opts);
    case 'folder':
      return readImageFolder(path, opts);
    default: {
      const fmt = await detectFormat(path);
      if (fmt === 'list')
        throw new DataError(`${path} is an image list: its images are streamed, pass --size N (the crop size)`);
      return readKind(fmt, path, opts, split);
    }
  }
}

/** Whether a location is read as a streamed image set when a crop size is given. */
async function streamable(kind: string | null, path: string): Promise<boolean> {
  if (kind === 'folder') return true;
  if (kind !== null) return false;
  const fmt = await detectFormat(path);
  return fmt === 'folder' || fmt === 'list';
}

/**
 * Loads a dataset from a spec: a name (`fashion-mnist`, `fashion-mnist:<dir>`,
 * `mnist:<dir>`, `cifar10:<dir>`, `cifar100:<dir>`, `idx:<path>`,
 * `folder:<dir>`) or a path whose format is detected (directory of CIFAR .bin
 * batches, IDX file or directory, image folder, image list). Known datasets
 * get their standard normalization constants; others get mean/std computed
 * from the data. With `crop`, folders and lists are streamed (stream.ts).
 */
export async function loadDataset(spec: string, opts: LoadOptions = {}): Promise<Dataset> {
  const split = opts.split ?? 'train';
  if (split !== 'train' && split !== 'test')
    throw new DataError(`unknown split '${String(split)}' (expected train or test)`);
  const { kind, path } = parseSpec(spec);
  if (opts.crop !== undefined && (await streamable(kind, path))) {
    return openImageStream(path, {
      ...opts,
      crop: opts.crop,
      split,
      cacheBytes: opts.memoryBytes,
    });
  }
  const ds = await readKind(kind, path, opts, split);
  if (opts.crop !== undefined && (ds.h !== opts.crop || ds.w !== opts.crop)) {
    throw new DataError(
      `--size ${opts.crop}: ${ds.name} holds ${ds.w}x${ds.h} images; crop sizes apply to image folders and lists`,
    );
  }
  if (!ds.mean || !ds.std) {
    const st = computeMeanStd(ds);
    ds.mean = st.mean;
    ds.std = st.std;
  }
  return limitDataset(ds, opts.limit);
}
