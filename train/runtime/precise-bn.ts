/**
 * Precise BN statistics (pycls's precise_bn, after Wu & Johnson, "Rethinking
 * 'Batch' in BatchNorm", 2021): with the weights fixed, the BN running
 * statistics are recomputed as the mean of the per-batch statistics (batch
 * mean, unbiased batch variance) over a number of training batches.
 *
 * The graph is the network in training form whose outputs are the BN state
 * updates `<state>@new` (graph/training.ts bnStatsGraph). Fed zero running
 * statistics, each output is BN_MOMENTUM · the batch statistic.
 */
import type * as ort from 'onnxruntime-node';
import { numel, type Graph } from '../../graph/ir.js';
import { BN_MOMENTUM } from '../../graph/nets/layers.js';
import { ForwardRunner } from './engine.js';
import { TrainError } from './errors.js';
import type { ParamValues } from './params.js';
import { toF32, type EP } from './session.js';

export interface PreciseBnOptions {
  /** Use at most this many batches of `batches`. */
  maxBatches?: number;
  ep?: EP;
  threads?: number;
}

/**
 * The BN running statistics of `g`'s network, by state parameter name, from
 * forward passes over `batches` (feeds besides the parameters, e.g. `x`).
 * `weights` holds the values of the graph's other parameters.
 */
export async function preciseBnStats(
  g: Graph,
  weights: ParamValues,
  batches: AsyncIterable<Record<string, ort.Tensor>> | Iterable<Record<string, ort.Tensor>>,
  o: PreciseBnOptions = {},
): Promise<{ stats: ParamValues; batches: number }> {
  const state = [...g.params.values()].filter((p) => p.role === 'state');
  const feed: ParamValues = new Map();
  for (const p of g.params.values()) {
    const v = p.role === 'state' ? new Float32Array(numel(p.shape)) : weights.get(p.name);
    if (!v) throw new Error(`precise BN: no value for parameter '${p.name}'`);
    feed.set(p.name, v);
  }
  const sums = new Map(state.map((p) => [p.name, new Float64Array(numel(p.shape))]));
  const max = o.maxBatches ?? Infinity;
  let n = 0;
  const runner = await ForwardRunner.create(g, { ep: o.ep, threads: o.threads });
  try {
    for await (const batch of batches) {
      if (n >= max) break;
      const out = await runner.run(feed, batch);
      for (const [name, s] of sums) {
        const v = toF32(out[`${name}@new`], `${name}@new`);
        for (let i = 0; i < v.length; i++) s[i] = s[i]! + v[i]!;
      }
      n++;
    }
  } finally {
    await runner.release();
  }
  if (n === 0) throw new TrainError('precise BN: no batch to compute the statistics on');
  const stats: ParamValues = new Map();
  for (const [name, s] of sums)
    stats.set(
      name,
      Float32Array.from(s, (v) => v / (n * BN_MOMENTUM)),
    );
  return { stats, batches: n };
}
