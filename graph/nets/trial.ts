/**
 * The graphs of one study trial: an architecture of the study's space (a
 * DARTS genotype or a NAS-Bench-101 cell) with the head of the trial's
 * objective (graph/nets/tasks.ts), in three forms that share parameter names:
 *
 *   step   training form, loss → gradients → SGD (Nesterov) update in-graph
 *   bn     training form, trunk only, outputs the BN state updates (for the
 *          precise recomputation of BN statistics before evaluation)
 *   eval   inference form (BN running statistics), outputs `loss` and `correct`
 */
import type { Genotype } from '../genotype.js';
import { Graph, type Lowering, type Value } from '../ir.js';
import type { Nb101Spec } from '../spaces/nasbench101.js';
import { assembleStep, bnStatsGraph, type OptimizerSpec, type StepGraphInfo } from '../training.js';
import { evalTrunk } from './darts.js';
import { Layers } from './layers.js';
import { nb101Trunk } from './nasbench101.js';
import { taskHead, type Objective, type TaskHead, type TaskShape } from './tasks.js';

/** The search spaces of the sample-based study. */
export type StudySpace = 'darts' | 'nb101';
export const STUDY_SPACES: readonly StudySpace[] = ['darts', 'nb101'];

/** What a trial's graphs need to know of its pretext task (structurally a subset of train/data's PretextTask). */
export interface TrialTask extends Omit<TaskShape, 'name'> {
  name: string;
  /** Shape of x for a batch of n source images. */
  xShape(n: number): number[];
}

/** Network width/depth of a study's trials. */
export interface TrialNetConfig {
  space: StudySpace;
  /** DARTS: initial channels and number of cells (CIFAR layout, no auxiliary head, no drop path). */
  C: number;
  layers: number;
  /** NAS-Bench-101: stem width, stacks and cells per stack. */
  width: number;
  stacks: number;
  cellsPerStack: number;
}

/** The trunk of an architecture on x (feature map before pooling). */
export function studyTrunk(L: Layers, x: Value, arch: unknown, net: TrialNetConfig): Value {
  if (net.space === 'darts') {
    return evalTrunk(L, x, arch as Genotype, { C: net.C, layers: net.layers, net: 'cifar' }).features;
  }
  return nb101Trunk(L, x, arch as Nb101Spec, {
    stemChannels: net.width,
    numStacks: net.stacks,
    cellsPerStack: net.cellsPerStack,
  });
}

interface Forward {
  g: Graph;
  head: TaskHead | null;
}

/** Trunk (+ head) on a batch of `images` source images of `task`. */
function forward(
  net: TrialNetConfig,
  arch: unknown,
  task: TrialTask,
  images: number,
  training: boolean,
  withHead: boolean,
  lowering: Lowering = {},
): Forward {
  const g = new Graph(`study_${net.space}_${task.name}`);
  g.training = training;
  g.lowering = lowering;
  const L = new Layers(g, { trackRunningStats: true });
  const x = g.input('x', 'float32', task.xShape(images));
  const features = studyTrunk(L, x, arch, net);
  const head = withHead
    ? taskHead(L, features, {
        name: task.name as Objective,
        numClasses: task.numClasses,
        groupSize: task.groupSize,
        inputShape: task.inputShape,
      })
    : null;
  return { g, head };
}

export interface TrialGraphs {
  step: Graph;
  stepInfo: StepGraphInfo;
  optimizer: OptimizerSpec;
  /** Predictions counted by `correct` per training batch. */
  stepPredictions: number;
  /** Training-form trunk whose outputs are `<bn state>@new`; null when the net has no BN. */
  bn: Graph | null;
  eval: Graph;
  /** Predictions per source image (rot 4, col H·W, else 1). */
  predictionsPerImage: number;
}

/**
 * Builds the three graphs of a trial: training batches of `batch` images,
 * evaluation batches of `evalBatch` images.
 */
export function buildTrialGraphs(
  net: TrialNetConfig,
  arch: unknown,
  task: TrialTask,
  o: { batch: number; evalBatch: number; optimizer: OptimizerSpec; lowering?: Lowering },
): TrialGraphs {
  // the EP's lowering (train/runtime/session.ts loweringFor) for all three graphs: none of them is shipped
  const s = forward(net, arch, task, o.batch, true, true, o.lowering);
  const stepInfo = assembleStep(s.g, {
    loss: s.head!.loss,
    metrics: s.head!.metrics,
    update: (p) => p.role === 'weight',
    optimizer: o.optimizer,
  });

  const bn = bnStatsGraph(forward(net, arch, task, o.batch, true, false, o.lowering).g);

  const e = forward(net, arch, task, o.evalBatch, false, true, o.lowering);
  e.g.output(e.head!.loss, 'loss');
  e.g.output(e.head!.metrics.correct!, 'correct');
  e.g.prune();

  return {
    step: s.g,
    stepInfo,
    optimizer: o.optimizer,
    stepPredictions: s.head!.predictions,
    bn,
    eval: e.g,
    predictionsPerImage: e.head!.predictions / o.evalBatch,
  };
}
