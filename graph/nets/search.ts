/**
 * The step graphs of a DARTS search (all share parameter names):
 *   wStep     forward + backward + clipped SGD update of the weights (in-graph)
 *   alphaGrad forward + ∇α only
 *   allGrad   forward + ∇w and ∇α (second order only)
 * The forward is the search supernet (graph/nets/darts.ts searchTrunk) with the
 * head of the pretext objective (graph/nets/tasks.ts).
 */
import type { OpName } from '../genotype.js';
import { Graph, numel, type Lowering, type Param, type Value } from '../ir.js';
import { lowerComposites } from '../lower.js';
import { assembleStep, type OptimizerSpec, type StepGraphInfo, type StepSpec } from '../training.js';
import { type StemKind, searchTrunk } from './darts.js';
import { Layers } from './layers.js';
import { segReductions } from './seg.js';
import { taskHead, type TaskShape } from './tasks.js';

export const isArch = (p: Param): boolean => p.role === 'arch';
export const isWeight = (p: Param): boolean => p.role === 'weight';

export type SgdSpec = Extract<OptimizerSpec, { kind: 'sgd' }>;

/** The supernet + task head in training form. */
export interface SearchForward {
  g: Graph;
  loss: StepSpec['loss'];
  metrics: Record<string, StepSpec['loss']>;
  hasLabels: boolean;
  predictions: number;
  /** The head's logits (SimCLR: the similarity rows). */
  logits: Value;
}

/** The search network's stem when none is asked for: the ImageNet stem for crops of 64 px or more (UnNAS). */
export function defaultStem(side: number): StemKind {
  return side >= 64 ? 'imagenet' : 'cifar';
}

/** The shape of a search supernet (graph/nets/darts.ts searchTrunk). */
export interface SearchNetShape {
  C: number;
  layers: number;
  /** Rows of x per batch (task.xShape(batch)[0]). */
  batchRows: number;
  primitives?: readonly OpName[];
  /** Default: `defaultStem` of the task's input side (pass the crop's for jigsaw, whose input is a tile). */
  stem?: StemKind;
  /** Training form (default; batch-statistics BN, what search runs) or inference form (running statistics). */
  training?: boolean;
}

/** The supernet + task head in training form, on `rows` input rows. */
export function buildSearchForward(task: TaskShape, o: SearchNetShape): SearchForward {
  const g = new Graph(`darts_search_${task.name}`);
  g.training = o.training ?? true;
  const L = new Layers(g, { trackRunningStats: false });
  const [c, h, w] = task.inputShape as [number, number, number];
  const x = g.input('x', 'float32', [o.batchRows, c, h, w]);
  // the seg objective searches UnNAS's segmentation network: ImageNet stem, one reduction
  const seg = task.name === 'seg' ? { stem: 'imagenet' as const, reductions: segReductions(o.layers) } : {};
  const stem = o.stem ?? defaultStem(Math.min(h, w));
  const trunk = searchTrunk(L, x, { C: o.C, layers: o.layers, primitives: o.primitives, stem, ...seg });
  const head = taskHead(L, trunk.features, {
    name: task.name,
    numClasses: task.numClasses,
    groupSize: task.groupSize,
    inputShape: task.inputShape,
  });
  return {
    g,
    loss: head.loss,
    metrics: head.metrics,
    hasLabels: !!head.labels,
    predictions: head.predictions,
    logits: head.logits,
  };
}

/** Bytes one run of a step graph feeds (its inputs and parameters) and fetches (its outputs). */
export function graphIoBytes(g: Graph): { fed: number; fetched: number } {
  const size = (dtype: string): number =>
    dtype === 'int64' || dtype === 'float64' ? 8 : dtype === 'bool' || dtype === 'uint8' || dtype === 'int8' ? 1 : 4;
  let fed = 0;
  for (const v of g.inputs) fed += size(v.dtype) * numel(v.shape);
  // parameters that are slices of a flat buffer input are fed through it (counted in g.inputs)
  for (const p of g.params.values()) if (!g.flatMember.has(p.name)) fed += 4 * numel(p.shape);
  let fetched = 0;
  for (const v of g.outputs) fetched += size(v.dtype) * numel(v.shape);
  return { fed, fetched };
}

/** Node counts of the step graphs of a search. */
export interface SearchGraphNodes {
  wStep: number;
  alphaGrad: number;
  allGrad?: number;
}

/** Bytes fed and fetched by one run of each step graph of a search. */
export interface SearchGraphIo {
  wStep: { fed: number; fetched: number };
  alphaGrad: { fed: number; fetched: number };
  allGrad?: { fed: number; fetched: number };
}

export interface SearchGraphOptions extends SearchNetShape {
  order: 1 | 2;
  momentum: number;
  weightDecay: number;
  clip: number;
  /** EP-specific lowering of the step graphs (default: portable standard ops). */
  lowering?: Lowering;
}

/** The step graphs of a search, built (no sessions yet). */
export interface SearchGraphs {
  w: { f: SearchForward; info: StepGraphInfo };
  alpha: { f: SearchForward; info: StepGraphInfo };
  all: { f: SearchForward; info: StepGraphInfo } | null;
  sgd: SgdSpec;
  nodes: SearchGraphNodes;
  io: SearchGraphIo;
}

/** Build the step graphs of a search: exactly those train/search/darts.ts runSearch runs. */
export function buildSearchGraphs(task: TaskShape, o: SearchGraphOptions): SearchGraphs {
  const sgd: SgdSpec = { kind: 'sgd', momentum: o.momentum, weightDecay: o.weightDecay };
  const shape = { C: o.C, layers: o.layers, batchRows: o.batchRows, primitives: o.primitives, stem: o.stem };
  const build = (): SearchForward => {
    const f = buildSearchForward(task, shape);
    f.g.lowering = o.lowering ?? {};
    return f;
  };
  const fw = build();
  const wInfo = assembleStep(fw.g, {
    loss: fw.loss,
    metrics: fw.metrics,
    update: isWeight,
    optimizer: sgd,
    clipNorm: o.clip,
    stateOutputs: false,
  });
  const fa = build();
  const aInfo = assembleStep(fa.g, {
    loss: fa.loss,
    metrics: fa.metrics,
    update: () => false,
    outputGrads: isArch,
    gradientsOnly: true,
    optimizer: sgd,
    stateOutputs: false,
  });
  const f2 = o.order === 2 ? build() : null;
  const info2 = f2
    ? assembleStep(f2.g, {
        loss: f2.loss,
        metrics: f2.metrics,
        update: () => false,
        outputGrads: (p) => p.role !== 'state',
        gradientsOnly: true,
        optimizer: sgd,
        stateOutputs: false,
      })
    : null;
  // expand composite ops now (serialization would do it): the node counts are those ORT runs
  for (const f of [fw, fa, f2]) if (f) lowerComposites(f.g);
  return {
    w: { f: fw, info: wInfo },
    alpha: { f: fa, info: aInfo },
    all: f2 && info2 ? { f: f2, info: info2 } : null,
    sgd,
    nodes: { wStep: fw.g.nodes.length, alphaGrad: fa.g.nodes.length, ...(f2 ? { allGrad: f2.g.nodes.length } : {}) },
    io: { wStep: graphIoBytes(fw.g), alphaGrad: graphIoBytes(fa.g), ...(f2 ? { allGrad: graphIoBytes(f2.g) } : {}) },
  };
}
