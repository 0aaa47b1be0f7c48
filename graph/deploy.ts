/**
 * What a shipped model says about its use, in the ONNX metadata_props: the
 * task, the input an image must be brought to (channels, height, width; pixel
 * values v/255 normalized per channel by mean/std; other sizes resized to cover
 * and centre-cropped, as the image-folder reader does), and the class names
 * when the training data had them. `serializeInference` writes a model with
 * this metadata and a symbolic batch dimension; `readDeployMeta` reads it back
 * (falling back to the input shape for models written before it existed).
 */
import { GraphError, type Graph } from './ir.js';
import { serialize } from './onnx.js';

/**
 * `classification`: an output of class scores (logits); `features`: an
 * embedding (SSWP search); `segmentation`: per-pixel class scores [N, K, H, W]
 * (`logits`) at the input size.
 */
export type ModelTask = 'classification' | 'features' | 'segmentation';

export interface DeployMeta {
  task: ModelTask;
  /** The output holding the task's result (`logits`, `features`). */
  output: string;
  channels: number;
  height: number;
  width: number;
  /** Per-channel mean and standard deviation of v/255 the model was trained with. */
  mean: number[];
  std: number[];
  /**
   * How an image of another size is brought to height×width: scale to cover and
   * centre-crop; or (segmentation) pad at the bottom and right with zeros after
   * normalization, for images no larger than the input (the labels with 255).
   */
  resize: 'cover' | 'pad';
  /** Class names by output index, when the training data named its classes. */
  classNames?: string[];
}

/** The symbolic batch dimension's name in shipped models. */
export const BATCH_DIM = 'N';

export const META_KEYS = {
  task: 'nas_onnx.task',
  input: 'nas_onnx.input',
  classes: 'nas_onnx.classes',
  /** Written before `nas_onnx.input` existed; still written and read. */
  normalization: 'nas_onnx.normalization',
} as const;

/** Deploy metadata of a model trained on images of `data`'s shape (a Dataset fits) with normalization `norm`. */
export function deployMeta(
  data: { c: number; h: number; w: number; classNames?: string[] },
  norm: { mean: number[]; std: number[] },
  task: ModelTask = 'classification',
): DeployMeta {
  return {
    task,
    output: task === 'features' ? 'features' : 'logits',
    channels: data.c,
    height: data.h,
    width: data.w,
    mean: norm.mean,
    std: norm.std,
    resize: task === 'segmentation' ? 'pad' : 'cover',
    classNames: task === 'features' ? undefined : data.classNames,
  };
}

/** Record `m` in the graph's metadata (checked: one mean and std per channel, one name per class). */
export function setDeployMeta(g: Graph, m: DeployMeta): void {
  if (m.mean.length !== m.channels || m.std.length !== m.channels)
    throw new GraphError(`normalization needs ${m.channels} means and stds, got ${m.mean.length} and ${m.std.length}`);
  g.meta.set(META_KEYS.task, m.task);
  g.meta.set(
    META_KEYS.input,
    JSON.stringify({
      layout: 'NCHW',
      channels: m.channels,
      height: m.height,
      width: m.width,
      scale: '1/255',
      mean: m.mean,
      std: m.std,
      resize: m.resize,
      output: m.output,
    }),
  );
  g.meta.set(META_KEYS.normalization, JSON.stringify({ mean: m.mean, std: m.std }));
  if (m.classNames?.length) g.meta.set(META_KEYS.classes, JSON.stringify(m.classNames));
  else g.meta.delete(META_KEYS.classes);
}

/** Serialize inference graph `g` with embedded `values`, its deploy metadata and a symbolic batch. */
export function serializeInference(g: Graph, values: ReadonlyMap<string, Float32Array>, meta: DeployMeta): Uint8Array {
  setDeployMeta(g, meta);
  return serialize(g, { params: 'initializers', values, batchDim: BATCH_DIM });
}

function parse(s: string | undefined): unknown {
  if (s === undefined) return undefined;
  try {
    return JSON.parse(s) as unknown;
  } catch {
    return undefined;
  }
}

const isNums = (x: unknown, n: number): x is number[] =>
  Array.isArray(x) && x.length === n && x.every((v) => typeof v === 'number' && Number.isFinite(v));

/**
 * The deploy metadata of a model from its metadata_props and its first input's
 * shape ([batch, C, H, W]). Missing pieces fall back: task from the outputs
 * (`logits` → classification), normalization to mean 0 / std 1 (`normalized`
 * false then). Throws a GraphError when the input is no image tensor.
 */
export function readDeployMeta(
  metadata: Readonly<Record<string, string>>,
  input: { name: string; shape: readonly (number | string)[] },
  outputs: readonly string[],
): DeployMeta & { normalized: boolean } {
  const shape = input.shape;
  if (shape.length !== 4 || !shape.slice(1).every((d) => typeof d === 'number' && d > 0))
    throw new GraphError(`input '${input.name}' is not an image batch [N, C, H, W] (shape [${shape.join(',')}])`);
  const [c, h, w] = shape.slice(1) as number[];
  const inp = (parse(metadata[META_KEYS.input]) ?? {}) as Record<string, unknown>;
  const norm = (parse(metadata[META_KEYS.normalization]) ?? {}) as Record<string, unknown>;
  const mean = isNums(inp.mean, c!) ? inp.mean : isNums(norm.mean, c!) ? norm.mean : null;
  const std = isNums(inp.std, c!) ? inp.std : isNums(norm.std, c!) ? norm.std : null;
  const taskMeta = metadata[META_KEYS.task];
  const task: ModelTask =
    taskMeta === 'classification' || taskMeta === 'features' || taskMeta === 'segmentation'
      ? taskMeta
      : outputs.includes('logits')
        ? 'classification'
        : 'features';
  const names = parse(metadata[META_KEYS.classes]);
  const output =
    typeof inp.output === 'string' && outputs.includes(inp.output)
      ? inp.output
      : outputs.includes('logits')
        ? 'logits'
        : outputs[0]!;
  return {
    task,
    output,
    channels: c!,
    height: h!,
    width: w!,
    mean: mean && std ? mean : new Array<number>(c!).fill(0),
    std: mean && std ? std : new Array<number>(c!).fill(1),
    normalized: !!(mean && std),
    resize: inp.resize === 'pad' ? 'pad' : 'cover',
    classNames: Array.isArray(names) && names.every((x) => typeof x === 'string') ? names : undefined,
  };
}
