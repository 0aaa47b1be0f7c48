/**
 * Full-frame evaluation of a segmentation network: every validation frame
 * (padded to the frame size, labels with 255) goes through the inference
 * network whose only output is the frame's confusion matrix; the matrices are
 * summed over the split and scored once (seg-score.ts). The next frame is
 * decoded while the network runs on the current one.
 */
import type { Genotype } from '../../graph/genotype.js';
import type { Graph } from '../../graph/ir.js';
import { type AsppSpec, buildSegEvalGraph } from '../../graph/nets/seg.js';
import type { SegFrames } from '../data/index.js';
import { ForwardRunner } from '../runtime/engine.js';
import type { ParamValues } from '../runtime/params.js';
import { Progress } from '../runtime/progress.js';
import { f32, i32, toF32, type EP } from '../runtime/session.js';
import { accumulate, segScores, type SegScores } from './seg-score.js';

export interface SegEvalNet {
  genotype: Genotype;
  C: number;
  layers: number;
  classes: number;
  aspp: AsppSpec;
  /** [H, W] of the (padded) frames. */
  frame: [number, number];
}

/** The confusion-matrix graph of a network at one frame size, with its session. */
export class SegEvaluator {
  private constructor(
    readonly runner: ForwardRunner,
    readonly graph: Graph,
    readonly net: SegEvalNet,
  ) {}

  static async create(net: SegEvalNet, o: { ep?: EP } = {}): Promise<SegEvaluator> {
    const g = buildSegEvalGraph({
      genotype: net.genotype,
      C: net.C,
      layers: net.layers,
      classes: net.classes,
      aspp: net.aspp,
      batch: 1,
      channels: 3,
      height: net.frame[0],
      width: net.frame[1],
    });
    return new SegEvaluator(await ForwardRunner.create(g, { ep: o.ep }), g, net);
  }

  /** The confusion matrix of one frame (x: 3×H×W normalized, labels: H×W). */
  async confusion(params: ParamValues, x: Float32Array, labels: Int32Array): Promise<Float32Array> {
    const [h, w] = this.net.frame;
    const out = await this.runner.run(params, { x: f32(x, [1, 3, h, w]), labels: i32(labels, [1, h, w]) });
    return toF32(out.confusion, 'confusion');
  }

  async release(): Promise<void> {
    await this.runner.release();
  }
}

/** mIoU, per-class IoU and pixel accuracy of the network over every frame of `frames`. */
export async function evaluateSeg(
  ev: SegEvaluator,
  params: ParamValues,
  frames: SegFrames,
  quiet?: boolean,
): Promise<SegScores> {
  const k = ev.net.classes;
  const total = new Float64Array(k * k);
  const bar = new Progress('validation', frames.count, quiet);
  const load = (i: number) => {
    const p = frames.frameAt(i);
    p.catch(() => undefined); // surfaced when awaited
    return p;
  };
  let next = frames.count > 0 ? load(0) : null;
  for (let i = 0; i < frames.count; i++) {
    const cur = await next!;
    next = i + 1 < frames.count ? load(i + 1) : null;
    accumulate(total, await ev.confusion(params, cur.x, cur.labels));
    bar.update(i + 1);
  }
  return segScores(total, k);
}
