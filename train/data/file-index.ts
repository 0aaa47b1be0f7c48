/**
 * File indexes of image sets too large for memory: which files (and labels,
 * and label maps) make up a split, for the layouts nas-onnx reads:
 *  - an image folder, flat (unlabelled) or with class sub-folders, optionally
 *    split in train/ and test/ (or val/) — the ImageNet layout
 *    `train/<class>/*.JPEG`, `val/<class>/*.JPEG` is this one;
 *  - the Cityscapes layout `leftImg8bit/{train,val}/<city>/*_leftImg8bit.png`
 *    with label maps `gtFine/{train,val}/<city>/*_gtFine_labelTrainIds.png`,
 *    or — the official download has only these — `*_gtFine_labelIds.png`,
 *    mapped to the 19 training classes when read (seg-labels.ts);
 *  - a pair of folders `images/` and `masks/` (optionally inside train/ and
 *    val/ or test/): image `images/<path>.<ext>` has the label map
 *    `masks/<path>.png` (class ids, 255 ignored);
 *  - a text file listing one image per line: `path`, or `path<TAB>label`
 *    (or `path label`: the last space-separated token), paths relative to the
 *    list's folder, labels integers or class names.
 * The test split takes its class numbering from the train split's class names.
 *
 * `PathTable` packs the paths into shared memory (one UTF-8 buffer and an
 * offset array on SharedArrayBuffers), so that worker threads look any file up
 * without copies. An index is saved as JSON (`saveIndex`) so that a resumed run
 * does not scan the disk again and sees exactly the same files.
 */
import type { Dirent } from 'node:fs';
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { basename, dirname, extname, isAbsolute, join, relative, resolve } from 'node:path';
import { writeFileAtomic } from '../runtime/fsutil.js';
import { DataError, errorText } from './errors.js';
import type { LabelMapping } from './seg-labels.js';

/** The layouts of a file index. */
export type IndexLayout = 'folder' | 'classes' | 'cityscapes' | 'masks' | 'list';

/** The files of one split. Paths are relative to `root`. */
export interface FileIndex {
  layout: IndexLayout;
  /** Absolute directory the paths are relative to. */
  root: string;
  split: 'train' | 'test';
  files: string[];
  /** Class per file (0..classes-1), or null when unlabelled. */
  labels: Int32Array | null;
  classNames: string[] | null;
  /** Label map per file ('' when a file has none), or null when the layout has none. */
  masks: string[] | null;
  /** How the label maps' values become class ids (default identity). */
  maskMapping?: LabelMapping;
  /** Short name for messages: `<folder>/<split folder>`. */
  name: string;
  /** What the scan ignored (images outside the class sub-folders). */
  warnings?: string[];
}

const IMAGE_EXT = new Set(['.png', '.jpg', '.jpeg', '.webp']);
const LIST_EXT = new Set(['.txt', '.lst', '.list', '.tsv']);

/** Whether a file name has an image extension (case-insensitive). */
export function isImageName(name: string): boolean {
  return IMAGE_EXT.has(extname(name).toLowerCase());
}

/** Whether a path is an image list: a .txt/.lst/.list/.tsv file whose first entry names an image. */
export function isListFile(path: string): boolean {
  if (!LIST_EXT.has(extname(path).toLowerCase()) || !isFileSync(path)) return false;
  let head: string;
  try {
    const fd = openSync(path, 'r');
    const buf = Buffer.alloc(4096);
    try {
      head = buf.subarray(0, readSync(fd, buf, 0, buf.length, 0)).toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
  const first = head.split(/\r?\n/).find((l) => l.trim() !== '' && !l.startsWith('#'));
  return first !== undefined && isImageName(parseListLine(first)[0]);
}

function isFileSync(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

function isDirSync(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

async function entries(dir: string): Promise<Dirent[]> {
  try {
    const list = await readdir(dir, { withFileTypes: true });
    return list.filter((e) => !e.name.startsWith('.')).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  } catch (e) {
    throw new DataError(`cannot list ${dir}: ${errorText(e)}`);
  }
}

/** Resolves a directory entry that is a symbolic link. */
function kind(dir: string, e: Dirent): 'file' | 'dir' | 'other' {
  if (e.isFile()) return 'file';
  if (e.isDirectory()) return 'dir';
  if (e.isSymbolicLink())
    return isDirSync(join(dir, e.name)) ? 'dir' : isFileSync(join(dir, e.name)) ? 'file' : 'other';
  return 'other';
}

/** Images below `dir` (recursively when asked), as paths relative to `base`, sorted by path. */
export async function imagesBelow(
  dir: string,
  base: string,
  recursive: boolean,
  out: string[] = [],
): Promise<string[]> {
  for (const e of await entries(dir)) {
    const k = kind(dir, e);
    if (k === 'file' && isImageName(e.name)) out.push(relative(base, join(dir, e.name)));
    else if (k === 'dir' && recursive) await imagesBelow(join(dir, e.name), base, true, out);
  }
  return out;
}

/** `dir/train` or `dir/test` (`val`) when an image folder is split in sub-folders of those names, else `dir`. */
export function splitFolder(dir: string, split: 'train' | 'test'): string {
  if (!isDirSync(join(dir, 'train'))) return dir;
  const names = split === 'train' ? ['train'] : ['test', 'val'];
  for (const n of names) if (isDirSync(join(dir, n))) return join(dir, n);
  throw new DataError(`image folder ${dir} has a train/ sub-folder but no ${names.join('/')}/ for the ${split} split`);
}

/** Labels of `files` (class names per file) numbered by `classNames`; a name outside them is an error. */
function numberLabels(names: string[], classNames: string[], where: string): Int32Array {
  const id = new Map(classNames.map((c, i) => [c, i]));
  const out = new Int32Array(names.length);
  names.forEach((n, i) => {
    const k = id.get(n);
    if (k === undefined) throw new DataError(`${where}: class '${n}' is not a class of the train split`);
    out[i] = k;
  });
  return out;
}

/** Class sub-folders of a split folder that hold images (sorted). */
async function classFolders(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await entries(root)) {
    if (kind(root, e) !== 'dir') continue;
    if ((await imagesBelow(join(root, e.name), root, true)).length > 0) out.push(e.name);
  }
  return out;
}

async function indexFolder(dir: string, split: 'train' | 'test'): Promise<FileIndex> {
  const root = splitFolder(dir, split);
  const name = `${basename(resolve(dir))}${root !== dir ? `/${basename(root)}` : ''}`;
  const classes = await classFolders(root);
  if (classes.length === 0) {
    const files = await imagesBelow(root, root, false);
    return { layout: 'folder', root: resolve(root), split, files, labels: null, classNames: null, masks: null, name };
  }
  // the test split numbers its classes by the train split's names
  const trainRoot = splitFolder(dir, 'train');
  const classNames = trainRoot === root ? classes : await classFolders(trainRoot);
  const files: string[] = [];
  const names: string[] = [];
  for (const c of classes) {
    const fs = await imagesBelow(join(root, c), root, true);
    files.push(...fs);
    for (let i = 0; i < fs.length; i++) names.push(c);
  }
  const labels = numberLabels(names, classNames, root);
  const loose = (await imagesBelow(root, root, false)).length;
  const warnings = loose > 0 ? [`${root}: ignored ${loose} image(s) outside the class sub-folders`] : [];
  return { layout: 'classes', root: resolve(root), split, files, labels, classNames, masks: null, name, warnings };
}

/** Whether a directory is a Cityscapes root (has leftImg8bit/train). */
export function isCityscapesRoot(dir: string): boolean {
  return isDirSync(join(dir, 'leftImg8bit', 'train'));
}

const CITY_IMAGE = '_leftImg8bit.png';
const CITY_TRAIN_IDS = '_gtFine_labelTrainIds.png';
const CITY_LABEL_IDS = '_gtFine_labelIds.png';

/** The label map of each image with `suffix` ('' where there is none). */
function cityMasks(dir: string, part: string, files: string[], suffix: string): string[] {
  return files.map((f) => {
    const city = basename(dirname(f));
    const m = join('gtFine', part, city, basename(f).slice(0, -CITY_IMAGE.length) + suffix);
    return isFileSync(join(dir, m)) ? m : '';
  });
}

async function indexCityscapes(dir: string, split: 'train' | 'test'): Promise<FileIndex> {
  const part = split === 'train' ? 'train' : 'val';
  const imgRoot = join(dir, 'leftImg8bit', part);
  if (!isDirSync(imgRoot)) throw new DataError(`Cityscapes root ${dir} has no leftImg8bit/${part}/`);
  const files = (await imagesBelow(imgRoot, dir, true)).filter((f) => f.endsWith(CITY_IMAGE));
  let masks: string[] | null = null;
  let maskMapping: LabelMapping = 'identity';
  if (isDirSync(join(dir, 'gtFine', part))) {
    // labelTrainIds (made by cityscapesScripts) when every image has one, else the official labelIds, mapped
    masks = cityMasks(dir, part, files, CITY_TRAIN_IDS);
    if (masks.some((m) => m === '')) {
      const ids = cityMasks(dir, part, files, CITY_LABEL_IDS);
      if (ids.filter((m) => m !== '').length > masks.filter((m) => m !== '').length) {
        masks = ids;
        maskMapping = 'cityscapes-labelIds';
      }
    }
    if (masks.every((m) => m === '')) masks = null;
  }
  const name = `${basename(resolve(dir))}/leftImg8bit/${part}`;
  const index: FileIndex = {
    layout: 'cityscapes',
    root: resolve(dir),
    split,
    files,
    labels: null,
    classNames: null,
    masks,
    name,
  };
  if (masks && maskMapping !== 'identity') index.maskMapping = maskMapping;
  return index;
}

/** Whether `dir` (or its train/ split) holds an images/ and a masks/ folder. */
export function isMaskPairRoot(dir: string): boolean {
  const root = isDirSync(join(dir, 'train')) ? join(dir, 'train') : dir;
  return isDirSync(join(root, 'images')) && isDirSync(join(root, 'masks'));
}

/** images/<path>.<ext> with masks/<path>.png ('' when missing), inside the split's folder. */
async function indexMaskPairs(dir: string, split: 'train' | 'test'): Promise<FileIndex> {
  const root = splitFolder(dir, split);
  if (!isDirSync(join(root, 'images')) || !isDirSync(join(root, 'masks')))
    throw new DataError(`${root} needs an images/ and a masks/ folder (image images/x.jpg, label map masks/x.png)`);
  const files = await imagesBelow(join(root, 'images'), root, true);
  const masks = files.map((f) => {
    const rel = relative('images', f);
    const m = join('masks', `${rel.slice(0, rel.length - extname(rel).length)}.png`);
    return isFileSync(join(root, m)) ? m : '';
  });
  const missing = masks.filter((m) => m === '').length;
  const warnings = missing ? [`${root}: ${missing} image(s) without a label map in masks/ (all pixels ignored)`] : [];
  const name = `${basename(resolve(dir))}${root !== dir ? `/${basename(root)}` : ''}`;
  return { layout: 'masks', root: resolve(root), split, files, labels: null, classNames: null, masks, name, warnings };
}

/** `train.txt` → `val.txt` / `test.txt` beside it for the test split (else the same list). */
function listForSplit(file: string, split: 'train' | 'test'): string {
  if (split === 'train') return file;
  const b = basename(file);
  if (!b.includes('train')) return file;
  for (const alt of ['val', 'test']) {
    const f = join(dirname(file), b.replace('train', alt));
    if (isFileSync(f)) return f;
  }
  return file;
}

/** One list line → path and label text (null when unlabelled). */
function parseListLine(line: string): [string, string | null] {
  const tab = line.indexOf('\t');
  if (tab >= 0) return [line.slice(0, tab).trim(), line.slice(tab + 1).trim() || null];
  const sp = line.lastIndexOf(' ');
  if (sp < 0) return [line, null];
  return [line.slice(0, sp).trim(), line.slice(sp + 1)];
}

async function readList(list: string): Promise<[string, string | null][]> {
  const text = await readFile(list, 'utf8');
  return text
    .split(/\r?\n/)
    .filter((l) => l.trim() !== '' && !l.startsWith('#'))
    .map(parseListLine);
}

/**
 * Labels of a list: integers as given (classes 0..max over both lists), or
 * names numbered in the sorted order of the train list's names.
 */
function listLabels(
  texts: string[],
  trainTexts: string[],
  where: string,
): { labels: Int32Array; classNames: string[] } {
  if ([...texts, ...trainTexts].every((t) => /^\d+$/.test(t))) {
    const labels = Int32Array.from(texts, Number);
    const classes = Math.max(...labels, ...trainTexts.map(Number)) + 1;
    return { labels, classNames: Array.from({ length: classes }, (_, i) => String(i)) };
  }
  const classNames = [...new Set(trainTexts)].sort();
  return { labels: numberLabels(texts, classNames, where), classNames };
}

async function indexList(file: string, split: 'train' | 'test'): Promise<FileIndex> {
  const list = listForSplit(file, split);
  const parsed = await readList(list);
  const labelled = parsed.filter(([, l]) => l !== null).length;
  if (labelled !== 0 && labelled !== parsed.length)
    throw new DataError(`${list}: ${labelled} of ${parsed.length} lines have a label (all or none must)`);
  const root = resolve(dirname(list));
  const files = parsed.map(([p]) => (isAbsolute(p) ? relative(root, p) : p));
  let labels: Int32Array | null = null;
  let classNames: string[] | null = null;
  if (labelled > 0) {
    const texts = parsed.map(([, l]) => l!);
    const trainTexts = list === file ? texts : (await readList(file)).map(([, l]) => l ?? '');
    ({ labels, classNames } = listLabels(texts, trainTexts, list));
  }
  return { layout: 'list', root, split, files, labels, classNames, masks: null, name: basename(list) };
}

/** Builds the file index of a folder (any layout above) or list file, scanning the disk. */
export async function buildIndex(path: string, split: 'train' | 'test'): Promise<FileIndex> {
  if (!existsSync(path)) throw new DataError(`no such file or directory: ${path}`);
  let index: FileIndex;
  if (isListFile(path)) index = await indexList(path, split);
  else if (!isDirSync(path)) throw new DataError(`${path} is neither an image folder nor an image list (.txt)`);
  else if (isCityscapesRoot(path)) index = await indexCityscapes(path, split);
  else if (isMaskPairRoot(path)) index = await indexMaskPairs(path, split);
  else index = await indexFolder(path, split);
  if (index.files.length === 0) throw new DataError(`no PNG or JPEG images in ${index.root} (${index.layout} layout)`);
  return index;
}

const INDEX_VERSION = 1;

interface StoredIndex {
  version: number;
  source: string;
  layout: IndexLayout;
  root: string;
  split: 'train' | 'test';
  name: string;
  files: string[];
  labels: number[] | null;
  classNames: string[] | null;
  masks: string[] | null;
  maskMapping?: LabelMapping;
}

/** The file an index of `split` is kept in, inside a run's data folder. */
export function indexFile(dir: string, split: 'train' | 'test'): string {
  return join(dir, `index-${split}.json`);
}

/** Writes an index (atomically) for `loadIndex`. */
export function saveIndex(dir: string, source: string, index: FileIndex): void {
  const s: StoredIndex = {
    version: INDEX_VERSION,
    source: resolve(source),
    layout: index.layout,
    root: index.root,
    split: index.split,
    name: index.name,
    files: index.files,
    labels: index.labels ? Array.from(index.labels) : null,
    classNames: index.classNames,
    masks: index.masks,
    maskMapping: index.maskMapping,
  };
  writeFileAtomic(indexFile(dir, index.split), JSON.stringify(s));
}

/** A saved index of `source` and `split`, or null when there is none (or it was made from another source). */
export function loadIndex(dir: string, source: string, split: 'train' | 'test'): FileIndex | null {
  const f = indexFile(dir, split);
  if (!existsSync(f)) return null;
  let s: StoredIndex;
  try {
    s = JSON.parse(readFileSync(f, 'utf8')) as StoredIndex;
  } catch (e) {
    throw new DataError(`cannot read the file index ${f}: ${errorText(e)}`);
  }
  if (s.version !== INDEX_VERSION || s.source !== resolve(source) || s.split !== split) return null;
  return {
    layout: s.layout,
    root: s.root,
    split: s.split,
    name: s.name,
    files: s.files,
    labels: s.labels ? Int32Array.from(s.labels) : null,
    classNames: s.classNames,
    masks: s.masks,
    ...(s.maskMapping ? { maskMapping: s.maskMapping } : {}),
  };
}

/** The index of `source`'s split: the one saved in `dir` when there is one, else scanned (and saved in `dir`). */
export async function openIndex(source: string, split: 'train' | 'test', dir?: string): Promise<FileIndex> {
  const saved = dir ? loadIndex(dir, source, split) : null;
  if (saved) return saved;
  const index = await buildIndex(source, split);
  if (dir) saveIndex(dir, source, index);
  return index;
}

// ---------------------------------------------------------------------------
// Paths in shared memory

/** Paths packed on SharedArrayBuffers: path i is bytes[offsets[i] .. offsets[i+1]) (UTF-8), relative to `root`. */
export interface PathTable {
  root: string;
  count: number;
  bytes: Uint8Array;
  offsets: Uint32Array;
}

/** Packs paths (relative to `root`) into shared memory. */
export function pathTable(root: string, paths: readonly string[]): PathTable {
  const enc = paths.map((p) => Buffer.from(p, 'utf8'));
  const total = enc.reduce((s, b) => s + b.length, 0);
  if (total >= 2 ** 32) throw new DataError(`the file index is too large (${total} bytes of paths)`);
  const bytes = new Uint8Array(new SharedArrayBuffer(Math.max(1, total)));
  const offsets = new Uint32Array(new SharedArrayBuffer(4 * (paths.length + 1)));
  let o = 0;
  enc.forEach((b, i) => {
    offsets[i] = o;
    bytes.set(b, o);
    o += b.length;
  });
  offsets[paths.length] = o;
  return { root, count: paths.length, bytes, offsets };
}

/** The relative path of entry i. */
export function relativePathAt(t: PathTable, i: number): string {
  if (!(i >= 0 && i < t.count)) throw new DataError(`file index entry ${i} is outside 0..${t.count - 1}`);
  // TextDecoder does not read shared memory: copy the few bytes out
  return Buffer.from(t.bytes.subarray(t.offsets[i]!, t.offsets[i + 1]!)).toString('utf8');
}

/** The absolute path of entry i. */
export function pathAt(t: PathTable, i: number): string {
  return join(t.root, relativePathAt(t, i));
}
