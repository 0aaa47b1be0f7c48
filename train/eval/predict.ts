/**
 * Running a shipped model on image files: decode and normalize each image as
 * its metadata says (train/data/images.ts) and run the model in batches (a
 * model with a fixed batch gets its batches padded). A classifier's logits
 * are softmaxed and the top k classes kept per image; when the images lie in
 * sub-folders named like the model's classes, the accuracy against those
 * names comes along. A segmentation model's per-pixel argmax is written as a
 * class-id PNG (8-bit gray, value = class index) of the image's own size.
 */
import { mkdirSync } from 'node:fs';
import { basename, dirname, extname, join, relative } from 'node:path';
import sharp from 'sharp';
import type { DeployMeta } from '../../graph/deploy.js';
import { decodeForModel, decodePadded, type ImageList, type PlacedImage } from '../data/images.js';
import { writeFileAtomic } from '../runtime/fsutil.js';
import { RuntimeError, Session, f32, toF32, type EP } from '../runtime/session.js';

export interface PredictOptions {
  top?: number;
  /** Images per run (default 32). */
  batch?: number;
  /** Convert gray/colour images to the model's channel count instead of refusing them. */
  convert?: boolean;
  ep?: EP;
}

export interface ClassScore {
  index: number;
  label: string;
  probability: number;
}

export interface Prediction {
  file: string;
  top: ClassScore[];
  /** The class sub-folder the image lies in, if any. */
  folder: string | null;
}

export interface PredictResult {
  predictions: Prediction[];
  /** Top-1 against the sub-folder names, when every image lies in a folder named like a class. */
  accuracy: { correct: number; total: number } | null;
}

/** Probabilities of one row of logits (numerically stable softmax). */
export function softmaxRow(logits: Float32Array, from: number, k: number): Float64Array {
  let mx = -Infinity;
  for (let j = 0; j < k; j++) mx = Math.max(mx, logits[from + j]!);
  const p = new Float64Array(k);
  let sum = 0;
  for (let j = 0; j < k; j++) sum += p[j] = Math.exp(logits[from + j]! - mx);
  for (let j = 0; j < k; j++) p[j]! /= sum;
  return p;
}

function topK(p: Float64Array, k: number, names: readonly string[] | undefined): ClassScore[] {
  const idx = Array.from(p.keys()).sort((a, b) => p[b]! - p[a]! || a - b);
  return idx.slice(0, k).map((i) => ({ index: i, label: names?.[i] ?? String(i), probability: p[i]! }));
}

function accuracyOf(preds: Prediction[], names: readonly string[] | undefined): PredictResult['accuracy'] {
  if (!names || !preds.length || !preds.every((x) => x.folder !== null && names.includes(x.folder))) return null;
  return { correct: preds.filter((x) => x.top[0]!.label === x.folder).length, total: preds.length };
}

/**
 * Predict classes of `images` with the classifier `model` (ONNX bytes) whose
 * deploy metadata is `meta`; `staticBatch` is the model's fixed batch, or null
 * when it takes any.
 */
export async function predictImages(
  model: Uint8Array,
  meta: DeployMeta,
  staticBatch: number | null,
  images: ImageList,
  o: PredictOptions = {},
): Promise<PredictResult> {
  const batch = staticBatch ?? Math.max(1, o.batch ?? 32);
  const per = meta.channels * meta.height * meta.width;
  const s = await Session.create(model, { ep: o.ep ?? 'cpu' });
  const predictions: Prediction[] = [];
  try {
    for (let start = 0; start < images.files.length; start += batch) {
      const files = images.files.slice(start, start + batch);
      const rows = staticBatch ?? files.length;
      const x = new Float32Array(rows * per);
      for (let i = 0; i < files.length; i++)
        x.set(await decodeForModel(files[i]!, { ...meta, convert: o.convert }), i * per);
      const out = await s.run({ [s.inputNames[0]!]: f32(x, [rows, meta.channels, meta.height, meta.width]) }, [
        meta.output,
      ]);
      const logits = toF32(out[meta.output], `output '${meta.output}'`);
      const k = logits.length / rows;
      if (meta.classNames && meta.classNames.length !== k)
        throw new RuntimeError(`the model names ${meta.classNames.length} classes but outputs ${k} scores`);
      files.forEach((file, i) =>
        predictions.push({
          file,
          top: topK(softmaxRow(logits, i * k, k), o.top ?? 5, meta.classNames),
          folder: images.folders[start + i] ?? null,
        }),
      );
    }
  } finally {
    await s.release();
  }
  return { predictions, accuracy: accuracyOf(predictions, meta.classNames) };
}

export interface SegPrediction {
  file: string;
  /** The class-id PNG written. */
  mask: string;
  width: number;
  height: number;
  /** The classes covering most pixels; `probability` is the share of the image's pixels. */
  top: ClassScore[];
}

/** Where the mask of `file` goes: its path below the listed folder (or its name), as .png under `outDir`. */
function maskPath(images: ImageList, file: string, outDir: string): string {
  const rel = images.root === null ? basename(file) : relative(images.root, file);
  return join(outDir, `${rel.slice(0, rel.length - extname(rel).length)}.png`);
}

/** Per-pixel argmax over the k class planes of sample i of [n, k, H, W] logits, over the image's region. */
function argmaxMask(logits: Float32Array, i: number, k: number, H: number, W: number, img: PlacedImage): Uint8Array {
  const mask = new Uint8Array(img.width * img.height);
  const base = i * k * H * W;
  for (let y = 0; y < img.height; y++)
    for (let x = 0; x < img.width; x++) {
      let best = 0;
      let mx = -Infinity;
      for (let c = 0; c < k; c++) {
        const v = logits[base + (c * H + y) * W + x]!;
        if (v > mx) (mx = v), (best = c);
      }
      mask[y * img.width + x] = best;
    }
  return mask;
}

/** Write `mask` as a gray PNG of the file's size (nearest-neighbour back up when the image was scaled to fit). */
async function writeMask(path: string, mask: Uint8Array, img: PlacedImage): Promise<Uint8Array> {
  const raw = (width: number, height: number) => ({ raw: { width, height, channels: 1 as const } });
  let full = mask;
  if (img.width !== img.fileWidth || img.height !== img.fileHeight) {
    const up = sharp(mask, raw(img.width, img.height)).resize(img.fileWidth, img.fileHeight, {
      kernel: 'nearest',
      fit: 'fill',
    });
    full = new Uint8Array(await up.toColourspace('b-w').raw().toBuffer());
  }
  const png = await sharp(full, raw(img.fileWidth, img.fileHeight)).toColourspace('b-w').png().toBuffer();
  mkdirSync(dirname(path), { recursive: true });
  writeFileAtomic(path, png);
  return full;
}

function pixelShares(mask: Uint8Array, k: number, top: number, names: readonly string[] | undefined): ClassScore[] {
  const counts = new Float64Array(k);
  for (const c of mask) counts[c]! += 1;
  for (let c = 0; c < k; c++) counts[c]! /= Math.max(mask.length, 1);
  return topK(counts, top, names).filter((t) => t.probability > 0);
}

/**
 * Segment `images` with the segmentation model `model` (logits [N, K, H, W]):
 * one class-id PNG per image under `outDir`, and the classes covering most of it.
 */
export async function segmentImages(
  model: Uint8Array,
  meta: DeployMeta,
  staticBatch: number | null,
  images: ImageList,
  o: PredictOptions & { outDir: string },
): Promise<SegPrediction[]> {
  const batch = staticBatch ?? Math.max(1, o.batch ?? 4);
  const { channels: C, height: H, width: W } = meta;
  const s = await Session.create(model, { ep: o.ep ?? 'cpu' });
  const out: SegPrediction[] = [];
  try {
    for (let start = 0; start < images.files.length; start += batch) {
      const files = images.files.slice(start, start + batch);
      const rows = staticBatch ?? files.length;
      const x = new Float32Array(rows * C * H * W);
      const placed: PlacedImage[] = [];
      for (let i = 0; i < files.length; i++) {
        placed.push(await decodePadded(files[i]!, { ...meta, convert: o.convert }));
        x.set(placed[i]!.x, i * C * H * W);
      }
      const res = await s.run({ [s.inputNames[0]!]: f32(x, [rows, C, H, W]) }, [meta.output]);
      const logits = toF32(res[meta.output], `output '${meta.output}'`);
      const k = logits.length / (rows * H * W);
      if (!Number.isInteger(k) || k > 256)
        throw new RuntimeError(`output '${meta.output}' is not [N, K ≤ 256, ${H}, ${W}] class scores`);
      for (let i = 0; i < files.length; i++) {
        const path = maskPath(images, files[i]!, o.outDir);
        const mask = await writeMask(path, argmaxMask(logits, i, k, H, W, placed[i]!), placed[i]!);
        out.push({
          file: files[i]!,
          mask: path,
          width: placed[i]!.fileWidth,
          height: placed[i]!.fileHeight,
          top: pixelShares(mask, k, o.top ?? 5, meta.classNames),
        });
      }
    }
  } finally {
    await s.release();
  }
  return out;
}
