/**
 * What a genotype's evaluation network costs: parameters, multiply-adds per
 * sample and measured latency at batch 1 of its inference form (random
 * weights: the time does not depend on their values), on the machine and
 * execution provider at hand. Search logs and `derive` report it so that a
 * user can pick a genotype by cost as well as by accuracy.
 */
import { BATCH_DIM } from '../../graph/deploy.js';
import { genotypeJson, type Genotype } from '../../graph/genotype.js';
import { buildEvalNet } from '../../graph/nets/models.js';
import { modelInfo, serialize } from '../../graph/onnx.js';
import { benchModel } from '../runtime/bench.js';
import { initParams } from '../runtime/params.js';
import type { EP } from '../runtime/session.js';

/** The evaluation network `nas-onnx train` builds unless told otherwise (one place for its defaults). */
export const EVAL_NET_DEFAULTS = { net: 'cifar' as 'cifar' | 'imagenet', C: 16, layers: 8 };

export interface EvalNetShape {
  net: 'cifar' | 'imagenet';
  C: number;
  layers: number;
  classes: number;
  channels: number;
  size: number;
}

export interface EvalNetCost extends EvalNetShape {
  params: number;
  /** Multiply-adds per sample. */
  macs: number;
  /** Median latency of one sample (batch 1), milliseconds. */
  latency_ms: number;
  ep: EP;
}

/** The evaluation network for images like `data`'s (classes: the data's, else 10), `o` over the defaults. */
export function evalNetShape(
  o: Partial<Pick<EvalNetShape, 'net' | 'C' | 'layers'>> | undefined,
  data: { c: number; h: number; classes: number },
): EvalNetShape {
  return {
    net: o?.net ?? EVAL_NET_DEFAULTS.net,
    C: o?.C ?? EVAL_NET_DEFAULTS.C,
    layers: o?.layers ?? EVAL_NET_DEFAULTS.layers,
    classes: data.classes || 10,
    channels: data.c,
    size: data.h,
  };
}

/** The inference form of `genotype`'s evaluation network as ONNX bytes (random weights, any batch). */
export function evalNetModel(genotype: Genotype, s: EvalNetShape, seed = 0): Uint8Array {
  const { g, logits } = buildEvalNet({ ...s, genotype, batch: 1, training: false, auxiliary: false });
  g.output(logits, 'logits');
  g.prune();
  return serialize(g, { params: 'initializers', values: initParams(g, seed), batchDim: BATCH_DIM });
}

/** Parameters, multiply-adds and batch-1 latency of `genotype`'s evaluation network. */
export async function evalNetCost(
  genotype: Genotype,
  s: EvalNetShape,
  o: { ep?: EP; runs?: number; threads?: number } = {},
): Promise<EvalNetCost> {
  const bytes = evalNetModel(genotype, s);
  const info = modelInfo(bytes);
  const b = await benchModel(bytes, { ep: o.ep, batch: 1, warmup: 2, runs: o.runs ?? 10, threads: o.threads });
  return { ...s, params: info.parameters, macs: info.multiplyAdds, latency_ms: b.medianMs, ep: b.ep };
}

/** evalNetCost with a cache per genotype (a search derives the same genotype epoch after epoch). */
export class EvalNetCoster {
  private readonly cache = new Map<string, EvalNetCost>();

  constructor(
    readonly shape: EvalNetShape,
    readonly o: { ep?: EP; runs?: number; threads?: number } = {},
  ) {}

  async cost(genotype: Genotype): Promise<EvalNetCost> {
    const key = genotypeJson({ ...genotype, name: undefined });
    let c = this.cache.get(key);
    if (!c) this.cache.set(key, (c = await evalNetCost(genotype, this.shape, this.o)));
    return c;
  }
}

/** One line: "0.31M parameters, 41.2M multiply-adds, 3.1 ms at batch 1 (cpu)". */
export function formatCost(c: EvalNetCost): string {
  const si = (n: number): string =>
    n >= 1e9 ? `${(n / 1e9).toFixed(2)}G` : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : `${(n / 1e3).toFixed(1)}k`;
  return `${si(c.params)} parameters, ${si(c.macs)} multiply-adds, ${c.latency_ms.toFixed(c.latency_ms < 10 ? 2 : 1)} ms at batch 1 (${c.ep})`;
}
