/**
 * The ORT step graphs of one SSWP prune state: the weight step (in-graph SGD)
 * and, while some cell is still gated, the α-gradient graph (gradients w.r.t.
 * the `gates` input only). Rebuilt whenever a cell is pruned.
 */
import type * as ort from 'onnxruntime-node';
import { EDGES } from '../../../graph/genotype.js';
import type { Param } from '../../../graph/ir.js';
import { NUM_OPS, buildSswpForward, type CellSpec, type SswpNetShape } from '../../../graph/nets/sswp.js';
import type { TaskShape } from '../../../graph/nets/tasks.js';
import { assembleStep, type OptimizerSpec } from '../../../graph/training.js';
import { StepRunner } from '../../runtime/engine.js';
import { bool, f32, type EP, type SessionOptions } from '../../runtime/session.js';
import { runMask, type GateSample } from './sampler.js';

const isWeight = (p: Param): boolean => p.role === 'weight';

export type RunnerShape = SswpNetShape & { rows: number; temperature: number; projectionDim: number };

/** The step graphs of one prune state. */
export class Runners {
  private constructor(
    readonly cells: CellSpec[],
    readonly w: StepRunner,
    readonly a: StepRunner | null,
    readonly opParams: Map<string, string[]>,
    readonly hasLabels: boolean,
    readonly predictions: number,
    readonly nodes: { w: number; a: number },
    /** The graphs take `run` (If-gated ops). */
    readonly ifGates: boolean,
  ) {}

  /** The `gates` (and `run`) feeds of a sampled path: run the active ops (w step) or all involved ones (α step). */
  pathFeeds(sample: GateSample, run: 'active' | 'involved'): Record<string, ort.Tensor> {
    const shape = [this.cells.length, EDGES, NUM_OPS];
    const feeds: Record<string, ort.Tensor> = { gates: f32(sample.gates, shape) };
    if (this.ifGates) feeds.run = bool(runMask(sample, run), shape);
    return feeds;
  }

  static async create(
    task: TaskShape,
    shape: RunnerShape,
    sgd: OptimizerSpec,
    clip: number,
    session: { ep?: EP; optimization?: SessionOptions['optimization'] },
  ): Promise<Runners> {
    const fw = buildSswpForward(task, shape);
    const wInfo = assembleStep(fw.g, {
      loss: fw.loss,
      metrics: fw.metrics,
      update: isWeight,
      optimizer: sgd,
      clipNorm: clip,
      stateOutputs: false,
    });
    const w = await StepRunner.create(fw.g, wInfo, sgd, { ...session, group: 'w' });
    let a: StepRunner | null = null;
    let aNodes = 0;
    if (fw.trunk.gates) {
      const fa = buildSswpForward(task, shape);
      const aInfo = assembleStep(fa.g, {
        loss: fa.loss,
        metrics: fa.metrics,
        update: () => false,
        gradientsOnly: true,
        inputGrads: ['gates'],
        optimizer: sgd,
        stateOutputs: false,
      });
      a = await StepRunner.create(fa.g, aInfo, null, { ...session, group: 'alpha_grad' });
      aNodes = fa.g.nodes.length;
    }
    return new Runners(
      [...shape.cells],
      w,
      a,
      fw.trunk.opParams,
      fw.hasLabels,
      fw.predictions,
      { w: fw.g.nodes.length, a: aNodes },
      fw.trunk.run !== null,
    );
  }

  async release(): Promise<void> {
    await this.w.release();
    await this.a?.release();
  }
}
