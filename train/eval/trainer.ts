/**
 * The evaluation phase of DARTS/UnNAS (`nas-onnx train`): train a discretized
 * network from scratch on labels — SGD momentum 0.9, weight decay 3e-4,
 * cosine learning rate (annealed per step), gradient clipping 5, auxiliary loss 0.4, drop path
 * rising linearly to its maximum, cutout — report train/test accuracy per
 * epoch, checkpoint every epoch, and ship the inference .onnx.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type * as ort from 'onnxruntime-node';
import type { Genotype } from '../../graph/genotype.js';
import { genotypeJson } from '../../graph/genotype.js';
import { buildEvalNet } from '../../graph/nets/models.js';
import { deployMeta, serializeInference } from '../../graph/deploy.js';
import { assembleStep, correctCount, crossEntropy, type OptimizerSpec } from '../../graph/training.js';
import { Rng } from '../../graph/rng.js';
import { add, mul } from '../../graph/ops/index.js';
import type { Graph, Lowering, Value } from '../../graph/ir.js';
import { buildSswpNetwork, sswpArchJson, type SswpArch } from '../../graph/nets/sswp.js';
import { loadCheckpoint, latestCheckpoint, saveCheckpoint } from '../runtime/checkpoint.js';
import {
  ForwardRunner,
  StepRunner,
  newTrainState,
  stepCosineLr,
  padRows,
  stateFromTensors,
  stateTensors,
  type TrainState,
} from '../runtime/engine.js';
import { writeFileAtomic } from '../runtime/fsutil.js';
import { initParams, pickParams, type ParamValues } from '../runtime/params.js';
import { Progress } from '../runtime/progress.js';
import { f32, i64, toF32, type EP, loweringFor } from '../runtime/session.js';
import {
  DataLoader,
  DataPool,
  type Dataset,
  limitDataset,
  loadDataset,
  runDataDir,
  type SkipReport,
  skipReport,
} from '../data/index.js';
import { appendJsonLine } from '../runtime/log.js';
import { TrainError } from '../runtime/errors.js';

export interface TrainOptions {
  /** The cell of every cell (DARTS genotype), or … */
  genotype?: Genotype;
  /** … one cell per cell (an SSWP-NAS cells.json; C and layers must match it). */
  cells?: SswpArch;
  dataset: string;
  out: string;
  net?: 'cifar' | 'imagenet';
  C: number;
  layers: number;
  epochs: number;
  batch: number;
  evalBatch?: number;
  lr?: number;
  lrMin?: number;
  momentum?: number;
  weightDecay?: number;
  clip?: number;
  auxWeight?: number;
  dropPath?: number;
  cutout?: number;
  seed?: number;
  ep?: EP;
  workers?: number;
  /** Use the first N training / test images (small real runs). */
  limit?: number;
  /** Crop size: image folders and lists are streamed from disk as size×size crops (train/data/stream.ts). */
  size?: number;
  /** Skip unreadable images (reported in the result) instead of failing. */
  skipCorrupt?: boolean;
  testLimit?: number;
  resume?: boolean;
  quiet?: boolean;
  /** Start from these parameter values instead of a fresh initialization (fine-tuning). */
  initFrom?: ParamValues;
  /** Checkpoint every N steps besides every epoch end (0: epoch ends only). */
  checkpointEvery?: number;
}

export interface EpochRecord {
  epoch: number;
  lr: number;
  drop_path: number;
  train_loss: number;
  train_acc: number;
  test_loss: number;
  test_acc: number;
  seconds: number;
  steps: number;
}

export interface TrainResult {
  history: EpochRecord[];
  modelPath: string;
  params: number;
  stepNodes: number;
  secondsPerEpoch: number;
  /** Unreadable images skipped (with skipCorrupt). */
  skipped: SkipReport;
}

interface Graphs {
  step: Graph;
  evalG: Graph;
  dropInputs: string[];
}

/** The network to train: from a genotype (every cell alike) or from per-cell SSWP cells. */
function buildNet(
  o: TrainOptions,
  ds: Dataset,
  classes: number,
  training: boolean,
  batch: number,
): { g: Graph; logits: Value; auxLogits: Value | null; dropPathInputs: string[] } {
  const heads = { training, auxiliary: training && (o.auxWeight ?? 0.4) > 0, dropPath: (o.dropPath ?? 0.2) > 0 };
  if (o.cells) {
    const m = buildSswpNetwork({
      ...heads,
      C: o.cells.C,
      layers: o.cells.layers,
      cells: o.cells.cells.map((c) => c.ops),
      batch,
      input: [ds.c, ds.h, ds.w],
      classes,
    });
    m.g.meta.set('nas_onnx.kind', 'sswp-classifier');
    m.g.meta.set('nas_onnx.sswp_cells', JSON.stringify(o.cells));
    return { ...m, logits: m.logits! };
  }
  if (!o.genotype) throw new TrainError('give a genotype or per-cell cells to train');
  const net = o.net ?? 'cifar';
  return buildEvalNet({
    ...heads,
    genotype: o.genotype,
    net,
    C: o.C,
    layers: o.layers,
    classes,
    batch,
    channels: ds.c,
    size: ds.h,
  });
}

function buildGraphs(
  o: Required<Pick<TrainOptions, 'C' | 'layers' | 'batch'>> & TrainOptions,
  ds: Dataset,
  classes: number,
  evalBatch: number,
  lowering: Lowering,
): Graphs & { info: ReturnType<typeof assembleStep>; opt: OptimizerSpec } {
  const m = buildNet(o, ds, classes, true, o.batch);
  const g = m.g;
  g.lowering = lowering; // the step graph only: the evaluation graph is also the shipped model
  const labels = g.input('labels', 'int64', [o.batch]);
  let loss = crossEntropy(g, m.logits, labels);
  if (m.auxLogits) loss = add(g, loss, mul(g, crossEntropy(g, m.auxLogits, labels), g.scalar(o.auxWeight ?? 0.4)));
  const opt: OptimizerSpec = { kind: 'sgd', momentum: o.momentum ?? 0.9, weightDecay: o.weightDecay ?? 3e-4 };
  const info = assembleStep(g, {
    loss,
    metrics: { correct: correctCount(g, m.logits, labels) },
    update: (p) => p.role === 'weight',
    optimizer: opt,
    clipNorm: o.clip ?? 5,
  });
  const e = buildNet(o, ds, classes, false, evalBatch);
  e.g.output(e.logits, 'logits');
  e.g.prune();
  return { step: g, evalG: e.g, dropInputs: m.dropPathInputs, info, opt };
}

/** Accuracy and mean loss of the inference graph over a loader (host-side softmax CE). */
export async function evaluate(
  runner: ForwardRunner,
  params: ParamValues,
  loader: DataLoader,
  evalBatch: number,
  shape: number[],
): Promise<{ acc: number; loss: number }> {
  let correct = 0;
  let n = 0;
  let lossSum = 0;
  for await (const b of loader.epoch(0)) {
    const rows = b.size;
    const out = await runner.run(params, { x: f32(padRows(b.x, rows, evalBatch), [evalBatch, ...shape]) });
    const logits = toF32(out.logits);
    const k = logits.length / evalBatch;
    for (let i = 0; i < rows; i++) {
      let best = 0;
      let mx = -Infinity;
      for (let j = 0; j < k; j++) if (logits[i * k + j]! > mx) (mx = logits[i * k + j]!), (best = j);
      let se = 0;
      for (let j = 0; j < k; j++) se += Math.exp(logits[i * k + j]! - mx);
      lossSum += Math.log(se) + mx - logits[i * k + b.y[i]!]!;
      if (best === b.y[i]) correct++;
    }
    n += rows;
  }
  return { acc: correct / Math.max(n, 1), loss: lossSum / Math.max(n, 1) };
}

/** Close loaders and pools, release runners: everything a training loop holds (in order). */
export async function closeAll(...xs: ({ close(): Promise<void> } | { release(): Promise<void> })[]): Promise<void> {
  for (const x of xs) await ('close' in x ? x.close() : x.release());
}

/** Rng.derive label of the per-step drop-path masks. */
export const DROP_PATH_STREAM = 0xd909;

/** Per-sample drop-path masks (Bernoulli(keep)/keep), from a per-step RNG. */
export function dropMasks(names: string[], n: number, prob: number, rng: Rng): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  const keep = 1 - prob;
  for (const name of names) {
    const m = new Float32Array(n);
    for (let i = 0; i < n; i++) m[i] = prob > 0 ? (rng.next() < keep ? 1 / keep : 0) : 1;
    feeds[name] = f32(m, [n, 1, 1, 1]);
  }
  return feeds;
}

type TrainGraphs = ReturnType<typeof buildGraphs>;

/** A training run in progress: settings, data, graphs, sessions and state. */
interface Training {
  o: TrainOptions;
  seed: number;
  evalBatch: number;
  trainSet: Dataset;
  testSet: Dataset;
  gs: TrainGraphs;
  pool: DataPool;
  train: DataLoader;
  test: DataLoader;
  stepRunner: StepRunner;
  evalRunner: ForwardRunner;
  st: TrainState;
  startEpoch: number;
  startBatch: number;
  history: EpochRecord[];
}

/** The labelled training and test sets; a streamed set's file index is kept in the run directory. */
async function openDatasets(o: TrainOptions): Promise<{ trainSet: Dataset; testSet: Dataset }> {
  // a resumed run does not rescan the disk
  const data = {
    crop: o.size,
    skipCorrupt: o.skipCorrupt,
    indexDir: o.size === undefined ? undefined : runDataDir(o.out, !o.resume),
  };
  const trainSet = limitDataset(await loadDataset(o.dataset, { ...data, split: 'train' }), o.limit);
  const testSet = limitDataset(await loadDataset(o.dataset, { ...data, split: 'test' }), o.testLimit ?? o.limit);
  if (!trainSet.labels)
    throw new TrainError(`${o.dataset} has no labels: training on labels needs a labelled data set`);
  return { trainSet, testSet };
}

/** Data, graphs and sessions of a run (its state is set by startState). */
async function openTraining(o: TrainOptions): Promise<Training> {
  const seed = o.seed ?? 0;
  const evalBatch = o.evalBatch ?? Math.max(o.batch, 100);
  mkdirSync(o.out, { recursive: true });
  const { trainSet, testSet } = await openDatasets(o);
  const gs = buildGraphs(
    { ...o, C: o.C, layers: o.layers, batch: o.batch },
    trainSet,
    trainSet.classes,
    evalBatch,
    await loweringFor(o.ep),
  );
  const pool = new DataPool({ workers: o.workers });
  const train = new DataLoader(trainSet, {
    task: { name: 'cls', cutout: o.cutout ?? 16 },
    batchSize: o.batch,
    seed,
    dropLast: true,
    pool,
  });
  const test = new DataLoader(testSet, {
    task: { name: 'cls', augment: false },
    batchSize: evalBatch,
    seed,
    shuffle: false,
    pool,
    mean: train.mean,
    std: train.std,
  });
  const stepRunner = await StepRunner.create(gs.step, gs.info, gs.opt, { ep: o.ep });
  const evalRunner = await ForwardRunner.create(gs.evalG, { ep: o.ep });
  const st = newTrainState(new Map());
  const rest = { st, startEpoch: 0, startBatch: 0, history: [] };
  return { o, seed, evalBatch, trainSet, testSet, gs, pool, train, test, stepRunner, evalRunner, ...rest };
}

/** The state to start from: the latest checkpoint (--resume), or fresh (or `initFrom`) parameters. */
function startState(t: Training): void {
  const { o } = t;
  const ckpt = o.resume ? latestCheckpoint(o.out) : null;
  if (o.resume && !ckpt) throw new TrainError(`--resume: no checkpoint in ${o.out}`);
  if (ckpt) {
    const c = loadCheckpoint(ckpt);
    t.st = stateFromTensors(c.tensors);
    t.st.steps = c.meta.steps as Record<string, number>;
    t.startEpoch = c.meta.epoch as number;
    t.startBatch = c.meta.batch as number;
    t.history.push(...(c.meta.history as EpochRecord[]));
    return;
  }
  const init = initParams(t.gs.step, t.seed);
  if (o.initFrom)
    for (const [k, v] of o.initFrom)
      if (init.has(k) && init.get(k)!.length === v.length) init.set(k, Float32Array.from(v));
  t.st = newTrainState(init);
}

function saveTrainCheckpoint(t: Training, epoch: number, batch: number): void {
  saveCheckpoint(t.o.out, {
    step: epoch * t.train.batchesPerEpoch + batch,
    meta: { epoch, batch, steps: t.st.steps, history: t.history, seed: t.seed, kind: 'train' },
    tensors: stateTensors(t.st),
  });
}

/** Cosine annealing per step (to lrMin at the last step), so short runs anneal too. */
function lrAt(t: Training, epoch: number, index: number): number {
  return stepCosineLr(t.o.lr ?? 0.025, t.o.lrMin ?? 0, epoch, index, t.train.batchesPerEpoch, t.o.epochs);
}

interface EpochSums {
  lossSum: number;
  correct: number;
  seen: number;
  steps: number;
}

/** The training steps of one epoch (from the resumed batch in the first), drop path at `dp`. */
async function trainEpoch(t: Training, epoch: number, dp: number): Promise<EpochSums> {
  const { o, train } = t;
  const bar = new Progress(`epoch ${epoch + 1}/${o.epochs}`, train.batchesPerEpoch, o.quiet);
  const sums: EpochSums = { lossSum: 0, correct: 0, seen: 0, steps: 0 };
  for await (const b of train.epoch(epoch, { startBatch: epoch === t.startEpoch ? t.startBatch : 0 })) {
    const feeds: Record<string, ort.Tensor> = {
      x: f32(b.x, b.xShape),
      labels: i64(b.y, [b.size]),
      ...dropMasks(t.gs.dropInputs, o.batch, dp, Rng.derive(t.seed, DROP_PATH_STREAM, epoch, b.index)),
    };
    const r = await t.stepRunner.run(t.st, feeds, lrAt(t, epoch, b.index));
    if (!Number.isFinite(r.loss))
      throw new TrainError(`loss became ${r.loss} at epoch ${epoch + 1} batch ${b.index}: lower --lr`);
    sums.lossSum += r.loss * b.size;
    sums.correct += r.metrics.correct!;
    sums.seen += b.size;
    sums.steps++;
    bar.update(
      b.index + 1,
      `loss ${(sums.lossSum / sums.seen).toFixed(3)} acc ${((100 * sums.correct) / sums.seen).toFixed(1)}%`,
    );
    if (o.checkpointEvery && (b.index + 1) % o.checkpointEvery === 0 && b.index + 1 < train.batchesPerEpoch)
      saveTrainCheckpoint(t, epoch, b.index + 1);
  }
  return sums;
}

/** One epoch: training, test accuracy, its log record and checkpoint. Returns its seconds. */
async function runEpoch(t: Training, epoch: number): Promise<number> {
  const { o } = t;
  const t0 = Date.now();
  const lr = lrAt(t, epoch, epoch === t.startEpoch ? t.startBatch : 0);
  const dp = (o.dropPath ?? 0.2) * (epoch / o.epochs);
  const sums = await trainEpoch(t, epoch, dp);
  const shape = [t.trainSet.c, t.trainSet.h, t.trainSet.w];
  const ev = await evaluate(t.evalRunner, pickParams(t.gs.evalG, t.st.params), t.test, t.evalBatch, shape);
  const seconds = (Date.now() - t0) / 1000;
  const rec: EpochRecord = {
    epoch: epoch + 1,
    lr,
    drop_path: dp,
    train_loss: sums.lossSum / Math.max(sums.seen, 1),
    train_acc: sums.correct / Math.max(sums.seen, 1),
    test_loss: ev.loss,
    test_acc: ev.acc,
    seconds,
    steps: sums.steps,
  };
  t.history.push(rec);
  appendJsonLine(join(o.out, 'log.jsonl'), rec);
  if (!o.quiet)
    process.stderr.write(
      `epoch ${epoch + 1}: train acc ${(100 * rec.train_acc).toFixed(2)}%  test acc ${(100 * ev.acc).toFixed(2)}%  (${seconds.toFixed(1)} s)\n`,
    );
  saveTrainCheckpoint(t, epoch + 1, 0);
  return seconds;
}

/** The inference model (model.onnx) and the architecture file next to it. */
function shipModel(t: Training): string {
  const { o } = t;
  const modelPath = join(o.out, 'model.onnx');
  const values = pickParams(t.gs.evalG, t.st.params);
  writeFileAtomic(modelPath, serializeInference(t.gs.evalG, values, deployMeta(t.trainSet, t.train)));
  if (o.cells) writeFileAtomic(join(o.out, 'cells.json'), sswpArchJson(o.cells));
  else if (o.genotype) writeFileAtomic(join(o.out, 'genotype.json'), genotypeJson(o.genotype));
  return modelPath;
}

export async function trainNetwork(o: TrainOptions): Promise<TrainResult> {
  const t = await openTraining(o);
  let lastSeconds = 0;
  try {
    startState(t);
    for (let epoch = t.startEpoch; epoch < o.epochs; epoch++) lastSeconds = await runEpoch(t, epoch);
  } finally {
    await closeAll(t.train, t.test, t.pool, t.stepRunner, t.evalRunner);
  }
  const { history, gs } = t;
  return {
    history,
    modelPath: shipModel(t),
    params: gs.evalG.paramCount(),
    stepNodes: gs.step.nodes.length,
    secondsPerEpoch: history.length ? history[history.length - 1]!.seconds : lastSeconds,
    skipped: skipReport([t.trainSet, t.testSet], [t.train, t.test]),
  };
}
