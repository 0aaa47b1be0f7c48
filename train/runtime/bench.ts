/**
 * Measured inference latency of an .onnx model: one session, a few warm-up
 * runs, then timed runs on a fixed random batch; median and 90th percentile
 * of the run times and the throughput at the median. A symbolic batch
 * dimension takes the requested batch; a static one must match it.
 */
import { GraphError } from '../../graph/ir.js';
import { modelInfo, type ModelInfo } from '../../graph/onnx.js';
import { Rng } from '../../graph/rng.js';
import { RuntimeError, Session, f32, type EP } from './session.js';

export interface BenchOptions {
  ep?: EP;
  /** Samples per run (default: 1, or the model's fixed batch). */
  batch?: number;
  /** Untimed runs first (default 3). */
  warmup?: number;
  /** Timed runs (default 20). */
  runs?: number;
  /** Intra-op threads on CPU (default: ORT's choice). */
  threads?: number;
}

export interface BenchResult {
  ep: EP;
  batch: number;
  warmup: number;
  runs: number;
  /** Median and 90th percentile (nearest rank) of the timed runs, in milliseconds. */
  medianMs: number;
  p90Ms: number;
  minMs: number;
  /** Samples per second at the median latency. */
  throughput: number;
}

/** Nearest-rank percentile q (0..1] of ascending `xs`. */
export function percentile(sorted: readonly number[], q: number): number {
  if (!sorted.length) throw new RangeError('percentile of no values');
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** The median of ascending `xs` (the mean of the middle two for an even count). */
export function median(sorted: readonly number[]): number {
  if (!sorted.length) throw new RangeError('median of no values');
  const m = sorted.length >> 1;
  return sorted.length % 2 ? sorted[m]! : (sorted[m - 1]! + sorted[m]!) / 2;
}

/** Feeds of `batch` samples for every graph input (float32 only), seeded normal noise. */
function benchFeeds(info: ModelInfo, batch: number): Record<string, ReturnType<typeof f32>> {
  const rng = new Rng(0x6e6368);
  const feeds: Record<string, ReturnType<typeof f32>> = {};
  for (const v of info.inputs) {
    if (v.dtype !== 'float32')
      throw new RuntimeError(`input '${v.name}' is ${v.dtype}: only float32 inputs can be timed`);
    const shape = v.shape.map((d, i) => {
      if (i === 0 && typeof d === 'string') return batch;
      if (typeof d === 'string')
        throw new RuntimeError(`input '${v.name}' has a symbolic dimension '${d}' past axis 0`);
      return d;
    });
    if (shape[0] !== batch)
      throw new RuntimeError(
        `the model's input '${v.name}' has a fixed batch of ${shape[0]}: time it with --batch ${shape[0]}`,
      );
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = rng.normal();
    feeds[v.name] = f32(data, shape);
  }
  return feeds;
}

/** Time `bytes` (an ONNX model) on `o.ep`. */
export async function benchModel(bytes: Uint8Array, o: BenchOptions = {}): Promise<BenchResult> {
  const warmup = o.warmup ?? 3;
  const runs = o.runs ?? 20;
  if (runs < 1) throw new RuntimeError('at least one timed run is needed');
  let info: ModelInfo;
  try {
    info = modelInfo(bytes);
  } catch (e) {
    if (e instanceof GraphError) throw new RuntimeError(e.message);
    throw e;
  }
  const b0 = info.inputs[0]?.shape[0];
  const batch = o.batch ?? (typeof b0 === 'number' ? b0 : 1);
  const feeds = benchFeeds(info, batch);
  const s = await Session.create(bytes, { ep: o.ep ?? 'cpu', threads: o.threads });
  const times: number[] = [];
  try {
    for (let i = 0; i < warmup; i++) await s.run(feeds);
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await s.run(feeds);
      times.push(performance.now() - t0);
    }
  } finally {
    await s.release();
  }
  times.sort((a, b) => a - b);
  const med = median(times);
  return {
    ep: s.ep,
    batch,
    warmup,
    runs,
    medianMs: med,
    p90Ms: percentile(times, 0.9),
    minMs: times[0]!,
    throughput: (1000 * batch) / med,
  };
}
