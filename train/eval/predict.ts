/**
 * Running a shipped classifier on image files: decode and normalize each image
 * as its metadata says (train/data/images.ts), run the model in batches
 * (a model with a fixed batch gets its batches padded), softmax the logits and
 * keep the top k classes per image. When the images lie in sub-folders named
 * like the model's classes, the accuracy against those names comes along.
 */
import type { DeployMeta } from '../../graph/deploy.js';
import { decodeForModel, type ImageList } from '../data/images.js';
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
