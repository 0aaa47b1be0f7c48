/**
 * The evaluation phase of DARTS/UnNAS (`nas-onnx train`): train a discretized
 * network from scratch on labels — SGD momentum 0.9, weight decay 3e-4,
 * cosine learning rate (annealed per step), gradient clipping 5, auxiliary loss 0.4, drop path
 * rising linearly to its maximum, cutout — report train/test accuracy per
 * epoch, checkpoint every epoch, and ship the inference .onnx.
 */
import { join } from 'node:path';
import type * as ort from 'onnxruntime-node';
import { genotypeJson } from '../../graph/genotype.js';
import { buildEvalNet } from '../../graph/nets/models.js';
import { deployMeta, serializeInference } from '../../graph/deploy.js';
import { assembleStep, correctCount, crossEntropy, type OptimizerSpec } from '../../graph/training.js';
import { Rng } from '../../graph/rng.js';
import { add, mul } from '../../graph/ops/index.js';
import type { Graph, Lowering, Value } from '../../graph/ir.js';
import { buildSswpNetwork, sswpArchJson } from '../../graph/nets/sswp.js';
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
import { TrainError } from '../runtime/errors.js';
import { tryWriteRunReport } from '../report/run-report.js';
import { Run, type RunOptions } from '../runtime/run.js';
import { SettingError } from '../runtime/settings.js';
import { netError, TRAIN_RUN, type TrainConfig, trainConfig } from './train-config.js';

/** A train run: its settings (train-config.ts; defaults filled in) and how it runs. */
export interface TrainOptions extends Partial<TrainConfig> {
  /** Run directory. */
  out: string;
  ep?: EP;
  /** ORT intra-op threads on CPU (default: ORT's, one per core). */
  threads?: number;
  /** Let ORT's idle intra-op threads spin (default true; false on a machine busy with other work). */
  spinning?: boolean;
  workers?: number;
  /** Skip unreadable images (reported in the result) instead of failing. */
  skipCorrupt?: boolean;
  /** Continue the run in `out` from its newest intact checkpoint. */
  resume?: boolean;
  /** Replace a run that `out` holds. */
  overwrite?: boolean;
  quiet?: boolean;
  /** Start from these parameter values instead of a fresh initialization (fine-tuning). */
  initFrom?: ParamValues;
  /** Checkpoint every N steps besides every epoch end (0: epoch ends only). */
  checkpointEvery?: number;
  /** How messages render the command that continues the run (the CLI's own command line). */
  commandLine?: RunOptions<TrainConfig>['commandLine'];
  /** Write report.html at the end (default true). */
  report?: boolean;
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
  o: TrainConfig,
  ds: Dataset,
  classes: number,
  training: boolean,
  batch: number,
): { g: Graph; logits: Value; auxLogits: Value | null; dropPathInputs: string[] } {
  const heads = { training, auxiliary: training && o.auxWeight > 0, dropPath: o.dropPath > 0 };
  if (o.cells) {
    const m = buildSswpNetwork({
      ...heads,
      C: o.cells.C,
      layers: o.cells.layers,
      stem: o.cells.stem,
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
  return buildEvalNet({
    ...heads,
    genotype: o.genotype,
    net: o.net,
    C: o.C,
    layers: o.layers,
    classes,
    batch,
    channels: ds.c,
    size: ds.h,
  });
}

function buildGraphs(
  o: TrainConfig,
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
  if (m.auxLogits) loss = add(g, loss, mul(g, crossEntropy(g, m.auxLogits, labels), g.scalar(o.auxWeight)));
  const opt: OptimizerSpec = { kind: 'sgd', momentum: o.momentum, weightDecay: o.weightDecay };
  const info = assembleStep(g, {
    loss,
    metrics: { correct: correctCount(g, m.logits, labels) },
    update: (p) => p.role === 'weight',
    optimizer: opt,
    clipNorm: o.clip,
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

/** Running sums of an epoch (kept in mid-epoch checkpoints, so a resumed epoch logs its whole record). */
interface EpochSums {
  lossSum: number;
  correct: number;
  seen: number;
  steps: number;
  /** Seconds spent on the epoch before this process took it up. */
  seconds: number;
}

const emptySums = (): EpochSums => ({ lossSum: 0, correct: 0, seen: 0, steps: 0, seconds: 0 });

/** A training run in progress: settings, run directory, data, graphs, sessions and state. */
interface Training {
  o: TrainOptions;
  cfg: TrainConfig;
  run: Run<TrainConfig>;
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
  /** The running sums of the epoch a resume starts in the middle of. */
  resumedSums: EpochSums | null;
  history: EpochRecord[];
}

/** The labelled training and test sets; a streamed set's file index is kept in the run directory. */
async function openDatasets(o: TrainOptions, c: TrainConfig): Promise<{ trainSet: Dataset; testSet: Dataset }> {
  // a resumed run does not rescan the disk
  const data = {
    crop: c.size ?? undefined,
    skipCorrupt: o.skipCorrupt,
    indexDir: c.size === null ? undefined : runDataDir(o.out, !o.resume),
  };
  const limit = c.limit ?? undefined;
  const trainSet = limitDataset(await loadDataset(c.dataset, { ...data, split: 'train' }), limit);
  const testSet = limitDataset(await loadDataset(c.dataset, { ...data, split: 'test' }), c.testLimit ?? limit);
  if (!trainSet.labels)
    throw new TrainError(`${c.dataset} has no labels: training on labels needs a labelled data set`);
  if (trainSet.n < c.batch)
    throw new SettingError(
      `--batch ${c.batch} is larger than the ${trainSet.n} training images: nothing to train on (lower --batch${c.limit !== null ? ' or raise --limit' : ''})`,
    );
  return { trainSet, testSet };
}

/** Data, graphs and sessions of a run (its state is set by startState). */
async function openTraining(o: TrainOptions, run: Run<TrainConfig>): Promise<Training> {
  const cfg = run.config;
  const evalBatch = cfg.evalBatch ?? Math.max(cfg.batch, 100);
  const { trainSet, testSet } = await openDatasets(o, cfg);
  const lowering = await loweringFor(o.ep);
  let gs: TrainGraphs;
  try {
    gs = buildGraphs(cfg, trainSet, trainSet.classes, evalBatch, lowering);
  } catch (e) {
    throw netError(cfg, [trainSet.c, trainSet.h, trainSet.w], e);
  }
  const pool = new DataPool({ workers: o.workers });
  const common = { batchSize: cfg.batch, seed: cfg.seed, pool };
  const train = new DataLoader(trainSet, { ...common, task: { name: 'cls', cutout: cfg.cutout }, dropLast: true });
  const test = new DataLoader(testSet, {
    ...common,
    task: { name: 'cls', augment: false },
    batchSize: evalBatch,
    shuffle: false,
    mean: train.mean,
    std: train.std,
  });
  let stepRunner: StepRunner | null = null;
  try {
    const exec = { ep: o.ep, threads: o.threads, spinning: o.spinning };
    stepRunner = await StepRunner.create(gs.step, gs.info, gs.opt, exec);
    const evalRunner = await ForwardRunner.create(gs.evalG, exec);
    const rest = { st: newTrainState(new Map()), startEpoch: 0, startBatch: 0, resumedSums: null, history: [] };
    return { o, cfg, run, evalBatch, trainSet, testSet, gs, pool, train, test, stepRunner, evalRunner, ...rest };
  } catch (e) {
    await closeAll(train, test, pool, ...(stepRunner ? [stepRunner] : []));
    throw e;
  }
}

/** The state to start from: the resumed checkpoint, or fresh (or `initFrom`) parameters. */
function startState(t: Training): void {
  const c = t.run.resumed;
  if (c) {
    t.st = stateFromTensors(c.tensors);
    t.st.steps = c.meta.steps as Record<string, number>;
    t.startEpoch = c.meta.epoch as number;
    t.startBatch = c.meta.batch as number;
    t.resumedSums = t.startBatch > 0 ? ((c.meta.sums as EpochSums | null) ?? null) : null;
    t.history.push(...(c.meta.history as EpochRecord[]));
    // the log holds exactly the checkpoint's epochs (one logged after it is not logged twice)
    t.run.rewriteLog(t.history);
    return;
  }
  const init = initParams(t.gs.step, t.cfg.seed);
  if (t.o.initFrom)
    for (const [k, v] of t.o.initFrom)
      if (init.has(k) && init.get(k)!.length === v.length) init.set(k, Float32Array.from(v));
  t.st = newTrainState(init);
}

/** Where a run is, in words: "epoch 2, step 5 of 8", or "the end of epoch 2". */
function position(t: Training, epoch: number, batch: number): string {
  return batch === 0 ? `the end of epoch ${epoch}` : `epoch ${epoch + 1}, step ${batch} of ${t.train.batchesPerEpoch}`;
}

/** A checkpoint before batch `batch` of epoch `epoch` (`sums`: the epoch's running sums when in its middle). */
function saveTrainCheckpoint(t: Training, epoch: number, batch: number, sums: EpochSums | null): void {
  const meta = { epoch, batch, steps: t.st.steps, history: t.history, sums };
  t.run.save(epoch * t.train.batchesPerEpoch + batch, meta, stateTensors(t.st), position(t, epoch, batch));
}

/** Cosine annealing per step (to lrMin at the last step), so short runs anneal too. */
function lrAt(t: Training, epoch: number, index: number): number {
  return stepCosineLr(t.cfg.lr, t.cfg.lrMin, epoch, index, t.train.batchesPerEpoch, t.cfg.epochs);
}

/** The training steps of one epoch (from the resumed batch in the first), drop path at `dp`. */
async function trainEpoch(t: Training, epoch: number, dp: number): Promise<EpochSums> {
  const { o, cfg, train } = t;
  const t0 = Date.now();
  const S = train.batchesPerEpoch;
  const bar = new Progress(`epoch ${epoch + 1}/${cfg.epochs}`, S, o.quiet);
  const first = epoch === t.startEpoch ? t.startBatch : 0;
  const sums: EpochSums = (first > 0 ? t.resumedSums : null) ?? emptySums();
  const saveHere = (batch: number): void =>
    saveTrainCheckpoint(t, epoch, batch, { ...sums, seconds: sums.seconds + (Date.now() - t0) / 1000 });
  for await (const b of train.epoch(epoch, { startBatch: first })) {
    const feeds: Record<string, ort.Tensor> = {
      x: f32(b.x, b.xShape),
      labels: i64(b.y, [b.size]),
      ...dropMasks(t.gs.dropInputs, cfg.batch, dp, Rng.derive(cfg.seed, DROP_PATH_STREAM, epoch, b.index)),
    };
    const r = await t.stepRunner.run(t.st, feeds, lrAt(t, epoch, b.index));
    if (!Number.isFinite(r.loss)) throw t.run.nonFinite(`the loss (${r.loss})`, position(t, epoch, b.index + 1));
    sums.lossSum += r.loss * b.size;
    sums.correct += r.metrics.correct!;
    sums.seen += b.size;
    sums.steps++;
    bar.update(
      b.index + 1,
      `loss ${(sums.lossSum / sums.seen).toFixed(3)} acc ${((100 * sums.correct) / sums.seen).toFixed(1)}%`,
    );
    if (o.checkpointEvery && (b.index + 1) % o.checkpointEvery === 0 && b.index + 1 < S) saveHere(b.index + 1);
    await t.run.boundary(epoch * S + b.index + 1, position(t, epoch, b.index + 1), () => saveHere(b.index + 1));
  }
  return sums;
}

/** One epoch: training, test accuracy, its log record and checkpoint. Returns its seconds. */
async function runEpoch(t: Training, epoch: number): Promise<number> {
  const { o, cfg } = t;
  const t0 = Date.now();
  const dp = cfg.dropPath * (epoch / cfg.epochs);
  const sums = await trainEpoch(t, epoch, dp);
  const shape = [t.trainSet.c, t.trainSet.h, t.trainSet.w];
  const ev = await evaluate(t.evalRunner, pickParams(t.gs.evalG, t.st.params), t.test, t.evalBatch, shape);
  // sums.seconds: the epoch's time before a resume
  const seconds = Math.round(sums.seconds * 1000 + (Date.now() - t0)) / 1000;
  const rec: EpochRecord = {
    epoch: epoch + 1,
    lr: lrAt(t, epoch, 0),
    drop_path: dp,
    train_loss: sums.lossSum / Math.max(sums.seen, 1),
    train_acc: sums.correct / Math.max(sums.seen, 1),
    test_loss: ev.loss,
    test_acc: ev.acc,
    seconds,
    steps: sums.steps,
  };
  t.history.push(rec);
  t.run.log(rec);
  if (!o.quiet)
    process.stderr.write(
      `epoch ${epoch + 1}: train acc ${(100 * rec.train_acc).toFixed(2)}%  test acc ${(100 * ev.acc).toFixed(2)}%  (${seconds.toFixed(1)} s)\n`,
    );
  saveTrainCheckpoint(t, epoch + 1, 0, null);
  const S = t.train.batchesPerEpoch;
  await t.run.boundary((epoch + 1) * S, position(t, epoch + 1, 0), () => undefined);
  return seconds;
}

/** The inference model (model.onnx) and the architecture file next to it. */
function shipModel(t: Training): string {
  const { o, cfg } = t;
  const modelPath = join(o.out, 'model.onnx');
  const values = pickParams(t.gs.evalG, t.st.params);
  writeFileAtomic(modelPath, serializeInference(t.gs.evalG, values, deployMeta(t.trainSet, t.train)));
  if (cfg.cells) writeFileAtomic(join(o.out, 'cells.json'), sswpArchJson(cfg.cells));
  else if (cfg.genotype) writeFileAtomic(join(o.out, 'genotype.json'), genotypeJson(cfg.genotype));
  return modelPath;
}

/** Train in an opened run directory. */
async function trainIn(o: TrainOptions, run: Run<TrainConfig>): Promise<TrainResult> {
  const t = await openTraining(o, run);
  let lastSeconds = 0;
  try {
    startState(t);
    for (let epoch = t.startEpoch; epoch < t.cfg.epochs; epoch++) lastSeconds = await runEpoch(t, epoch);
    run.endLoop();
  } finally {
    await closeAll(t.train, t.test, t.pool, t.stepRunner, t.evalRunner);
  }
  const { history, gs } = t;
  const modelPath = shipModel(t);
  if (o.report !== false) await tryWriteRunReport(o.out);
  return {
    history,
    modelPath,
    params: gs.evalG.paramCount(),
    stepNodes: gs.step.nodes.length,
    secondsPerEpoch: history.length ? history[history.length - 1]!.seconds : lastSeconds,
    skipped: skipReport([t.trainSet, t.testSet], [t.train, t.test]),
  };
}

/**
 * Train a network (train-config.ts holds the settings) in the run directory
 * `o.out`, with the run lifecycle of train/runtime/run.ts: the --out policy,
 * lock, resume checks, non-finite guard, checkpoint on SIGINT/SIGTERM.
 */
export async function trainNetwork(o: TrainOptions): Promise<TrainResult> {
  const cfg = trainConfig(o);
  return Run.execute(TRAIN_RUN, { ...o, config: cfg }, (run) => trainIn(o, run));
}
