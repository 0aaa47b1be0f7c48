/**
 * Running the UnNAS sample-based study (Liu et al., ECCV 2020, §4): every trial =
 * (architecture, objective, seed) trains a network from scratch with one
 * budget and records the objective's accuracy on the held-out (test) split.
 *
 * Trial recipe (UnNAS's, scaled down by the config): SGD with Nesterov
 * momentum 0.9, weight decay 5e-4, learning rate 0.025 cosine-annealed per
 * epoch, no gradient clipping, no auxiliary head, no drop path; the standard
 * augmentation of the task (flip, 4-pixel padded crop for cls/rot); BN
 * statistics recomputed precisely before evaluation (pycls's precise BN: the
 * average of the batch means and of the unbiased batch variances over
 * ⌈preciseBn / batch⌉ training batches; `preciseBn: 0` keeps the running
 * statistics). Accuracy: cls per image, rot per rotated copy, jig per puzzle,
 * col per pixel. Evaluation batches are built with a fixed seed (`evalSeed`),
 * so every architecture is evaluated on the same rotations / permutations.
 *
 * Results go through the TrialStore (train/study/store.ts): a study resumes
 * where it stopped and never reruns a finished trial. `runStudyLocal` runs the
 * pending trials with an in-process pool; train/study/queue.ts distributes
 * them over BullMQ workers.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { availableParallelism, hostname } from 'node:os';
import { join } from 'node:path';
import type * as ort from 'onnxruntime-node';
import type { Genotype } from '../../graph/genotype.js';
import { ForwardRunner, StepRunner, newTrainState, padRows, stepCosineLr, type TrainState } from '../runtime/engine.js';
import { configDiff } from '../runtime/config.js';
import { writeFileAtomic } from '../runtime/fsutil.js';
import { initParams, type ParamValues } from '../runtime/params.js';
import { preciseBnStats } from '../runtime/precise-bn.js';
import { f32, i64, loweringFor, scalarOf, type EP } from '../runtime/session.js';
import { fmtTime } from '../runtime/progress.js';
import {
  DataLoader,
  DataPool,
  limitDataset,
  loadDataset,
  type Batch,
  type Dataset,
  type TaskOptions,
} from '../data/index.js';
import { jigsawGeometry } from '../data/transforms.js';
import { dartsArchId, loadUnnasPool, sampleDartsGenotypes, validateGenotype } from './darts-sampler.js';
import { checkSpec, nb101ArchId, sampleNasBench101, type Nb101Spec } from '../../graph/spaces/nasbench101.js';
import { TrialStore, crossTrials, type Trial, type TrialResult, type TrialSpec } from './store.js';
import {
  aggregateAccuracies,
  buildStudySummary,
  type ArchAccuracies,
  formatSummaryTable,
  writeStudyReport,
  type StudySummary,
} from './analysis.js';
import {
  buildTrialGraphs,
  STUDY_SPACES,
  type StudySpace,
  type TrialGraphs,
  type TrialNetConfig,
} from '../../graph/nets/trial.js';
import { StudyError, TrialFailure } from './errors.js';
import { attemptTrial, type FailedTrial } from './attempts.js';
import { testHold } from '../runtime/run.js';
import { TrialProcessPool } from './child-pool.js';

export { STUDY_SPACES, type StudySpace } from '../../graph/nets/trial.js';

export { StudyError } from './errors.js';

/** The objectives of the study (the reference task is `cls`). */
export const STUDY_OBJECTIVES = ['cls', 'rot', 'col', 'jig'] as const;
export type StudyObjective = (typeof STUDY_OBJECTIVES)[number];

/**
 * Everything that determines a trial's result besides (arch, objective, seed).
 * Stored in the study manifest; a study directory keeps one config.
 */
export interface StudyConfig extends TrialNetConfig {
  /** Dataset spec for loadDataset (name or path). */
  dataset: string;
  /** First N training images (null: all). */
  limit: number | null;
  /** First N test images (null: all). */
  testLimit: number | null;
  epochs: number;
  /** Source images per training batch (rot feeds 4×, jig G²× rows). */
  batch: number;
  /** Source images per evaluation batch. */
  evalBatch: number;
  lr: number;
  lrMin: number;
  momentum: number;
  nesterov: boolean;
  weightDecay: number;
  /** Training images used to recompute BN statistics before evaluation (0 = keep running statistics). */
  preciseBn: number;
  /** Seed of the evaluation batches (rotations are fixed anyway; jigsaw permutations and tile offsets are not). */
  evalSeed: number;
  /** Crop size of a streamed image folder or list (null: the images' own size). */
  size: number | null;
  /** Skip unreadable images instead of failing a trial. */
  skipCorrupt: boolean;
}

/** Small CPU defaults (UnNAS's CIFAR settings are DARTS C=16/20 cells, NB101 128 wide 3×3 cells, 100 epochs). */
export function defaultStudyConfig(space: StudySpace = 'darts'): StudyConfig {
  return {
    space,
    dataset: 'fashion-mnist',
    limit: null,
    testLimit: null,
    epochs: 1,
    batch: 32,
    evalBatch: 100,
    lr: 0.025,
    lrMin: 0,
    momentum: 0.9,
    nesterov: true,
    weightDecay: 5e-4,
    preciseBn: 1024,
    evalSeed: 0,
    size: null,
    skipCorrupt: false,
    C: 8,
    layers: 5,
    width: 16,
    stacks: 3,
    cellsPerStack: 1,
  };
}

const CONFIG_KEYS = Object.keys(defaultStudyConfig()) as (keyof StudyConfig)[];

/** Throws a StudyError naming the first bad field. Returns the config. */
export function validateStudyConfig(c: StudyConfig): StudyConfig {
  if (!STUDY_SPACES.includes(c.space))
    throw new StudyError(`unknown space '${String(c.space)}' (expected ${STUDY_SPACES.join(' or ')})`);
  if (typeof c.dataset !== 'string' || !c.dataset) throw new StudyError('no dataset given');
  const posInt: (keyof StudyConfig)[] = [
    'epochs',
    'batch',
    'evalBatch',
    'C',
    'layers',
    'width',
    'stacks',
    'cellsPerStack',
  ];
  for (const k of posInt) {
    const v = c[k];
    if (!Number.isInteger(v) || (v as number) < 1)
      throw new StudyError(`${k} must be a positive integer, got ${String(v)}`);
  }
  for (const k of ['limit', 'testLimit', 'size'] as const) {
    const v = c[k];
    if (v !== null && (!Number.isInteger(v) || v < 1))
      throw new StudyError(`${k} must be a positive integer or null, got ${String(v)}`);
  }
  for (const k of ['preciseBn', 'evalSeed'] as const) {
    if (!Number.isInteger(c[k]) || c[k] < 0)
      throw new StudyError(`${k} must be a non-negative integer, got ${String(c[k])}`);
  }
  if (!(c.lr > 0)) throw new StudyError(`lr must be positive, got ${c.lr}`);
  for (const k of ['lrMin', 'momentum', 'weightDecay'] as const) {
    if (!(Number.isFinite(c[k]) && c[k] >= 0))
      throw new StudyError(`${k} must be a non-negative number, got ${String(c[k])}`);
  }
  if (c.space === 'darts' && c.C % 2)
    throw new StudyError(`DARTS networks need an even C (FactorizedReduce), got ${c.C}`);
  return c;
}

/** Fields added after the first studies: hashed only when they differ from their default, so older keys stay. */
const LATER_KEYS: Partial<Record<keyof StudyConfig, unknown>> = { size: null, skipCorrupt: false };

/** Canonical JSON of a config (fixed key order). */
function configJson(c: StudyConfig): string {
  const keys = CONFIG_KEYS.filter((k) => !(k in LATER_KEYS) || c[k] !== LATER_KEYS[k]);
  return JSON.stringify(keys.map((k) => [k, c[k]]));
}

/** Short hash of a config: trials of two studies with the same key give the same results. */
export function studyKey(c: StudyConfig): string {
  return createHash('md5').update(configJson(c), 'utf8').digest('hex').slice(0, 12);
}

// ---------------------------------------------------------------------------
// Architectures

/** An architecture of a study: its id and the genotype / cell stored in the manifest. */
export interface StudyArch {
  archId: string;
  arch: Genotype | Nb101Spec;
}

export interface ArchSelection {
  /** 'sample': drawn at random with `seed`; 'pool': the first `count` of the published UnNAS pool. */
  source: 'sample' | 'pool';
  count: number;
  seed?: number;
}

/**
 * The architectures of a study. DARTS samples follow the published pool's
 * rule (UnNAS: `none` allowed, the two inputs of a node drawn independently);
 * NAS-Bench-101 samples are nasbench's uniform random matrices (pruned,
 * unique by hash). Both lists extend: a larger count keeps the smaller list
 * as its prefix.
 */
export function selectArchitectures(space: StudySpace, sel: ArchSelection): StudyArch[] {
  if (!Number.isInteger(sel.count) || sel.count < 1)
    throw new StudyError(`the number of architectures must be a positive integer, got ${sel.count}`);
  if (space === 'darts') {
    let gs: Genotype[];
    if (sel.source === 'pool') {
      const pool = loadUnnasPool().darts;
      if (sel.count > pool.length)
        throw new StudyError(`the UnNAS DARTS pool has ${pool.length} architectures, asked for ${sel.count}`);
      gs = pool.slice(0, sel.count).map((p) => ({
        normal: p.normal,
        normal_concat: p.normal_concat,
        reduce: p.reduce,
        reduce_concat: p.reduce_concat,
      }));
    } else {
      gs = sampleDartsGenotypes(sel.count, sel.seed ?? 0, { includeNone: true, distinctInputs: false });
    }
    return gs.map((g) => {
      const errs = validateGenotype(g);
      if (errs.length) throw new StudyError(`invalid genotype: ${errs[0]}`);
      return { archId: dartsArchId(g), arch: g };
    });
  }
  let specs: Nb101Spec[];
  if (sel.source === 'pool') {
    const pool = loadUnnasPool().nas_bench_101;
    if (sel.count > pool.length)
      throw new StudyError(`the UnNAS NAS-Bench-101 pool has ${pool.length} cells, asked for ${sel.count}`);
    specs = pool.slice(0, sel.count).map((p) => ({ matrix: p.matrix, ops: p.ops }));
  } else {
    specs = sampleNasBench101(sel.count, sel.seed ?? 0).map((s) => ({ matrix: s.matrix, ops: s.ops }));
  }
  return specs.map((s) => {
    const c = checkSpec(s);
    if (!c.valid) throw new StudyError(`invalid NAS-Bench-101 cell: ${c.reason}`);
    return { archId: nb101ArchId(s), arch: { matrix: c.pruned!.matrix, ops: c.pruned!.ops } };
  });
}

// ---------------------------------------------------------------------------
// Study directories

/** What a study manifest's `meta` holds. */
export interface StudyMeta {
  kind: 'nas-onnx-study';
  config: StudyConfig;
  studyKey: string;
  archSource: ArchSelection;
}

export interface StudyDefinition {
  config: StudyConfig;
  archs: StudyArch[];
  objectives: string[];
  seeds: number[];
  /** Seeds of the reference task cls when they differ from `seeds` (the seed-noise check). */
  clsSeeds?: number[];
  archSource: ArchSelection;
}

/** The config stored in a study directory. @throws StudyError if it is not a nas-onnx study. */
export function studyConfigOf(store: TrialStore): StudyConfig {
  const m = store.meta as Partial<StudyMeta>;
  if (m.kind !== 'nas-onnx-study' || !m.config) throw new StudyError(`${store.dir} is not a nas-onnx study directory`);
  return { ...defaultStudyConfig(m.config.space), ...m.config };
}

/** Opens an existing study. @throws StudyError when `dir` holds none. */
export function openStudy(dir: string): TrialStore {
  if (!existsSync(join(dir, 'study.json'))) throw new StudyError(`no study in ${dir} (no study.json)`);
  const store = TrialStore.open(dir);
  studyConfigOf(store);
  return store;
}

/**
 * Creates the study in `dir`, or opens it and adds the trials of `def` that
 * are new (archs × objectives × seeds). An existing study must have the same
 * config: its trials' results would not be comparable otherwise.
 */
export function openOrCreateStudy(dir: string, def: StudyDefinition): TrialStore {
  validateStudyConfig(def.config);
  for (const o of def.objectives) {
    if (!(STUDY_OBJECTIVES as readonly string[]).includes(o))
      throw new StudyError(`unknown objective '${o}' (expected ${STUDY_OBJECTIVES.join(', ')})`);
  }
  if (existsSync(join(dir, 'study.json'))) {
    const have = studyConfigOf(TrialStore.open(dir));
    const diff = configDiff(have, def.config, CONFIG_KEYS);
    if (diff)
      throw new StudyError(
        `the study in ${dir} was created with other settings (${diff}); use another --out or the same settings`,
      );
  }
  const meta: StudyMeta = {
    kind: 'nas-onnx-study',
    config: def.config,
    studyKey: studyKey(def.config),
    archSource: def.archSource,
  };
  const trials: TrialSpec[] = crossTrials(
    def.archs,
    def.objectives,
    def.seeds,
    def.clsSeeds ? { cls: def.clsSeeds } : {},
  );
  try {
    return TrialStore.openOrCreate(dir, trials, meta as unknown as Record<string, unknown>);
  } catch (e) {
    throw new StudyError((e as Error).message);
  }
}

// ---------------------------------------------------------------------------
// One trial

/** Loaded datasets, shared by the trials of a process. */
export class DataCache {
  private readonly cache = new Map<string, Promise<Dataset>>();

  get(
    spec: string,
    split: 'train' | 'test',
    limit: number | null,
    data: { size?: number | null; skipCorrupt?: boolean } = {},
  ): Promise<Dataset> {
    const key = `${spec}\u0000${split}\u0000${limit ?? ''}\u0000${data.size ?? ''}\u0000${!!data.skipCorrupt}`;
    let p = this.cache.get(key);
    if (!p) {
      const opts = { split, crop: data.size ?? undefined, skipCorrupt: data.skipCorrupt };
      p = loadDataset(spec, opts).then((ds) => limitDataset(ds, limit ?? undefined));
      p.catch(() => this.cache.delete(key));
      this.cache.set(key, p);
    }
    return p;
  }
}

/** What a trial runs with (execution settings: they do not change its result on one machine). */
export interface TrialContext {
  ep?: EP;
  /** ORT intra-op threads per session (default: ORT's choice). */
  threads?: number;
  /** Batch-building pool (default: in-process). */
  pool?: DataPool;
  data?: DataCache;
}

/** A finished trial's numbers (what TrialStore.recordResult stores). */
export interface TrialOutcome {
  metrics: Record<string, number>;
  info: Record<string, unknown>;
}

/**
 * Task options of an objective on a dataset. Jigsaw on DARTS networks: the
 * tile side is rounded to a multiple of 4 (nearest to 0.76·patch, at most the
 * patch), because a FactorizedReduce needs even sides at both reductions; on
 * 32-pixel images that is UnNAS's own 12-pixel tile.
 */
export function trialTaskOptions(
  cfg: StudyConfig,
  objective: string,
  ds: { h: number; w: number },
  augment = true,
): TaskOptions {
  const o: TaskOptions = { name: objective as StudyObjective, augment };
  if (objective === 'jig' && cfg.space === 'darts') {
    const grid = Math.min(ds.h, ds.w) < 64 ? 2 : 3;
    const p = Math.floor(Math.min(ds.h, ds.w) / grid);
    const want = jigsawGeometry(p * grid, p * grid, grid, 0.76).th;
    const tile = Math.min(Math.floor(p / 4) * 4, Math.max(4, Math.round(want / 4) * 4));
    if (tile < 4) throw new TrialFailure(`images of ${ds.h}×${ds.w} are too small for jigsaw on a DARTS network`);
    o.tileFraction = (tile + 0.5) / p;
  }
  return o;
}

/** Labels padded to the graph's static shape with -1 (matches no class: no loss, no hit). */
function labelsFeed(y: Int32Array, full: number[]): ort.Tensor {
  const out = new BigInt64Array(full.reduce((a, b) => a * b, 1)).fill(-1n);
  for (let i = 0; i < y.length; i++) out[i] = BigInt(y[i]!);
  return i64(out, full);
}

/** A trial in progress: its settings, loaders and graphs. */
interface TrialRun {
  trial: Pick<Trial, 'archId' | 'objective' | 'seed' | 'arch'>;
  /** Which trial of this process it is (1, 2, …). */
  no: number;
  cfg: StudyConfig;
  ro: { ep?: EP; threads?: number };
  train: DataLoader;
  test: DataLoader;
  evalBatch: number;
  gs: TrialGraphs;
}

interface TrialData {
  trainSet: Dataset;
  testSet: Dataset;
  train: DataLoader;
  test: DataLoader;
  evalBatch: number;
}

/** The trial's training and test loaders (the test one: fixed seed, the training set's normalization). */
async function openTrialData(
  trial: TrialRun['trial'],
  cfg: StudyConfig,
  ctx: TrialContext,
  pool: DataPool,
): Promise<TrialData> {
  const data = ctx.data ?? new DataCache();
  const trainSet = await data.get(cfg.dataset, 'train', cfg.limit, cfg);
  const testSet = await data.get(cfg.dataset, 'test', cfg.testLimit ?? cfg.limit, cfg);
  const evalBatch = Math.min(cfg.evalBatch, testSet.n);
  const train = new DataLoader(trainSet, {
    task: trialTaskOptions(cfg, trial.objective, trainSet),
    batchSize: cfg.batch,
    seed: trial.seed,
    dropLast: true,
    pool,
  });
  const test = new DataLoader(testSet, {
    task: trialTaskOptions(cfg, trial.objective, testSet, false),
    batchSize: evalBatch,
    seed: cfg.evalSeed,
    shuffle: false,
    pool,
    mean: train.mean,
    std: train.std,
  });
  return { trainSet, testSet, train, test, evalBatch };
}

/** Sums of the last training epoch. */
interface TrainSums {
  lossSum: number;
  correct: number;
  batches: number;
  steps: number;
}

/** Train the network from its seed for cfg.epochs epochs (SGD, per-step cosine learning rate). */
async function trainTrial(r: TrialRun): Promise<{ st: TrainState; sums: TrainSums }> {
  const { cfg, train, trial, gs } = r;
  const stepRunner = await StepRunner.create(gs.step, gs.stepInfo, gs.optimizer, r.ro);
  const st = newTrainState(initParams(gs.step, trial.seed));
  const sums: TrainSums = { lossSum: 0, correct: 0, batches: 0, steps: 0 };
  try {
    for (let epoch = 0; epoch < cfg.epochs; epoch++) {
      sums.lossSum = 0;
      sums.correct = 0;
      sums.batches = 0;
      for await (const b of train.epoch(epoch)) {
        await testHold(`trial:${r.no}:step:${sums.steps}`);
        const lr = stepCosineLr(cfg.lr, cfg.lrMin, epoch, b.index, train.batchesPerEpoch, cfg.epochs);
        const out = await stepRunner.run(st, { x: f32(b.x, b.xShape), labels: i64(b.y, b.yShape) }, lr);
        if (!Number.isFinite(out.loss))
          throw new TrialFailure(
            `${trial.archId} ${trial.objective}: the loss became ${out.loss} at epoch ${epoch + 1}, step ${b.index + 1}`,
          );
        sums.lossSum += out.loss;
        sums.correct += out.metrics.correct ?? 0;
        sums.batches++;
        sums.steps++;
      }
    }
  } finally {
    await stepRunner.release();
  }
  return { st, sums };
}

/** The parameters to evaluate with: the trained ones, BN statistics recomputed precisely (cfg.preciseBn images). */
async function evalParamsOf(r: TrialRun, st: TrainState): Promise<{ params: ParamValues; bnBatches: number }> {
  const params = new Map(st.params);
  if (!(r.cfg.preciseBn > 0 && r.gs.bn)) return { params, bnBatches: 0 };
  const want = Math.min(r.train.batchesPerEpoch, Math.ceil(r.cfg.preciseBn / r.cfg.batch));
  const epoch = r.train.epoch(r.cfg.epochs);
  const bn = await preciseBnStats(r.gs.bn, st.params, xFeeds(epoch), { ...r.ro, maxBatches: want });
  for (const [n, v] of bn.stats) params.set(n, v);
  return { params, bnBatches: bn.batches };
}

/** Hits, predictions and summed loss of the inference graph over the test split (last batch padded). */
async function evaluateTrial(
  r: TrialRun,
  evalParams: ParamValues,
): Promise<{ hits: number; predictions: number; loss: number }> {
  const { gs, evalBatch } = r;
  const task = r.train.task;
  const runner = await ForwardRunner.create(gs.eval, r.ro);
  const params = new Map<string, Float32Array>();
  for (const p of gs.eval.params.values()) params.set(p.name, evalParams.get(p.name)!);
  const xFull = task.xShape(evalBatch);
  const yFull = task.yShape(evalBatch);
  const res = { hits: 0, predictions: 0, loss: 0 };
  try {
    for await (const b of r.test.epoch(0)) {
      const out = await runner.run(params, {
        x: f32(padRows(b.x, b.xShape[0]!, xFull[0]!), xFull),
        labels: labelsFeed(b.y, yFull),
      });
      res.hits += scalarOf(out.correct, 'correct');
      // the graph's loss is a mean over the padded batch; padding contributes 0
      res.loss += scalarOf(out.loss, 'loss') * evalBatch * gs.predictionsPerImage;
      res.predictions += b.size * gs.predictionsPerImage;
    }
  } finally {
    await runner.release();
  }
  return res;
}

/** Trials started by this process (the test hold's `trial:<k>` counts them). */
let trialsInProcess = 0;

/** A trial's config, defaults filled in; a bad one fails the trial on every try. */
function trialConfig(config: StudyConfig): StudyConfig {
  try {
    return validateStudyConfig({ ...defaultStudyConfig(config.space), ...config });
  } catch (e) {
    throw e instanceof StudyError ? new TrialFailure(e.message) : e;
  }
}

/**
 * Trains one trial from scratch and evaluates it on the test split.
 * metrics: accuracy, loss (test), train_accuracy, train_loss (last epoch).
 * info: seconds (wall), train/precise-BN/eval seconds, params (trainable),
 * nodes (inference graph), stepNodes, steps, host, pid, ep, threads.
 */
export async function runTrial(
  trial: Pick<Trial, 'archId' | 'objective' | 'seed' | 'arch'>,
  config: StudyConfig,
  ctx: TrialContext = {},
): Promise<TrialOutcome> {
  const t0 = performance.now();
  const no = ++trialsInProcess;
  const cfg = trialConfig(config);
  if (!(STUDY_OBJECTIVES as readonly string[]).includes(trial.objective))
    throw new TrialFailure(`unknown objective '${trial.objective}'`);
  const pool = ctx.pool ?? new DataPool({ workers: 0 });
  let d: TrialData | null = null;
  try {
    d = await openTrialData(trial, cfg, ctx, pool);
    if (d.train.batchesPerEpoch < 1)
      throw new TrialFailure(`batch ${cfg.batch} is larger than the ${d.trainSet.n} training images`);
    const gs = buildTrialGraphs(cfg, trial.arch, d.train.task, {
      batch: cfg.batch,
      evalBatch: d.evalBatch,
      optimizer: { kind: 'sgd', momentum: cfg.momentum, weightDecay: cfg.weightDecay, nesterov: cfg.nesterov },
      lowering: await loweringFor(ctx.ep),
    });
    const r: TrialRun = { trial, no, cfg, ro: { ep: ctx.ep, threads: ctx.threads }, ...d, gs };
    const t1 = performance.now();
    const { st, sums } = await trainTrial(r);
    const t2 = performance.now();
    const { params, bnBatches } = await evalParamsOf(r, st);
    const t3 = performance.now();
    const ev = await evaluateTrial(r, params);
    const t4 = performance.now();
    return {
      metrics: {
        accuracy: ev.hits / Math.max(ev.predictions, 1),
        loss: ev.loss / Math.max(ev.predictions, 1),
        train_accuracy: sums.correct / Math.max(sums.batches * gs.stepPredictions, 1),
        train_loss: sums.lossSum / Math.max(sums.batches, 1),
      },
      info: {
        seconds: round3((t4 - t0) / 1000),
        trainSeconds: round3((t2 - t1) / 1000),
        preciseBnSeconds: round3(bnBatches ? (t3 - t2) / 1000 : 0),
        evalSeconds: round3((t4 - t3) / 1000),
        params: gs.eval.paramCount(['weight']),
        nodes: gs.eval.nodes.length,
        stepNodes: gs.step.nodes.length,
        steps: sums.steps,
        preciseBnBatches: bnBatches,
        trainImages: d.trainSet.n,
        testImages: d.testSet.n,
        ep: ctx.ep ?? 'cpu',
        threads: ctx.threads ?? null,
        host: hostname(),
        pid: process.pid,
      },
    };
  } finally {
    await d?.train.close();
    await d?.test.close();
    if (!ctx.pool) await pool.close();
  }
}

/** The network inputs `x` of a loader's batches. */
async function* xFeeds(batches: AsyncIterable<Batch>): AsyncGenerator<Record<string, ort.Tensor>> {
  for await (const b of batches) yield { x: f32(b.x, b.xShape) };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

// ---------------------------------------------------------------------------
// Progress

/** Events of a running study (for progress output and tests). */
export type StudyEvent =
  | { type: 'start'; total: number; done: number; pending: number }
  | { type: 'trial-start'; trial: Trial }
  | { type: 'trial-done'; trial: Trial; outcome: TrialOutcome; done: number; total: number; etaSeconds: number }
  | { type: 'trial-failed'; trial: Trial; error: string; final: boolean; everyTry?: boolean }
  | { type: 'info'; message: string };

/** Done/total counter with an ETA from this session's completion rate. */
export class StudyProgress {
  private readonly start = performance.now();
  private finishedHere = 0;

  constructor(
    readonly total: number,
    private done: number,
  ) {}

  /** Counts one finished trial; returns the counts and the ETA in seconds. */
  finish(): { done: number; total: number; etaSeconds: number } {
    this.done++;
    this.finishedHere++;
    const el = (performance.now() - this.start) / 1000;
    const remaining = this.total - this.done;
    return { done: this.done, total: this.total, etaSeconds: remaining > 0 ? (el / this.finishedHere) * remaining : 0 };
  }
}

/** One line per event, for stderr. */
export function formatStudyEvent(e: StudyEvent): string | null {
  switch (e.type) {
    case 'start':
      return `study: ${e.done}/${e.total} trials done, ${e.pending} to run`;
    case 'trial-start':
      return null;
    case 'trial-done': {
      const m = e.outcome.metrics;
      const i = e.outcome.info;
      const w = typeof i.worker === 'string' ? ` on ${i.worker}` : '';
      return `[${e.done}/${e.total}] ${e.trial.id}: accuracy ${(100 * (m.accuracy ?? NaN)).toFixed(2)}% (${Number(i.seconds ?? 0).toFixed(1)} s${w}) · ETA ${fmtTime(e.etaSeconds)}`;
    }
    case 'trial-failed':
      return `${e.final ? 'FAILED' : 'retrying'} ${e.trial.id}${e.everyTry ? ' (fails on every try: not retried)' : ''}: ${e.error}`;
    case 'info':
      return e.message;
  }
}

// ---------------------------------------------------------------------------
// In-process pool

export interface LocalRunOptions {
  /** Trials run at once (default 1). */
  concurrency?: number;
  ep?: EP;
  /** ORT threads per session (default: cores / concurrency). */
  threads?: number;
  /** Batch-building worker threads (default 0: in-process). */
  workers?: number;
  /** Tries per trial before it counts as failed (default 3). */
  attempts?: number;
  /**
   * Run each trial in a child process (train/study/child-pool.ts; needs the
   * compiled dist/). Default: when concurrency > 1, since onnxruntime-node
   * runs sessions synchronously and in-process trials would take turns.
   */
  processes?: boolean;
  onEvent?: (e: StudyEvent) => void;
  /** Stop starting new trials once aborted (running ones finish). */
  signal?: AbortSignal;
}

export interface StudyRunStats {
  /** Trials pending when the run started. */
  pending: number;
  /** Results recorded by this run. */
  recorded: number;
  /** Trials that failed for good: every attempt, or at once when a retry would fail the same way. */
  failed: FailedTrial[];
  seconds: number;
}

/** Default ORT threads per trial: the cores shared among the concurrent trials. */
export function defaultThreads(concurrency: number): number {
  return Math.max(1, Math.floor(availableParallelism() / Math.max(1, concurrency)));
}

/** Runs the pending trials of a study in this process, `concurrency` at a time. */
export async function runStudyLocal(store: TrialStore, opts: LocalRunOptions = {}): Promise<StudyRunStats> {
  const t0 = performance.now();
  const config = studyConfigOf(store);
  const concurrency = Math.max(1, opts.concurrency ?? 1);
  const attempts = Math.max(1, opts.attempts ?? 3);
  const emit = opts.onEvent ?? (() => undefined);
  const pending = store.pendingTrials();
  const { done, total } = store.progress();
  emit({ type: 'start', total, done, pending: pending.length });
  const progress = new StudyProgress(total, done);
  const threads = opts.threads ?? defaultThreads(concurrency);
  // onnxruntime-node runs sessions synchronously: trials side by side need processes of their own
  const useProcesses = opts.processes ?? concurrency > 1;
  const procs =
    useProcesses && pending.length
      ? new TrialProcessPool(Math.min(concurrency, pending.length), { ep: opts.ep, threads, workers: opts.workers })
      : null;
  const pool = procs ? null : new DataPool({ workers: opts.workers ?? 0 });
  const ctx: TrialContext = { ep: opts.ep, threads, pool: pool ?? undefined, data: new DataCache() };
  const exec = (t: Trial): Promise<TrialOutcome> => (procs ? procs.run(t, config) : runTrial(t, config, ctx));
  const failed: StudyRunStats['failed'] = [];
  let recorded = 0;
  let next = 0;
  const loop = async (): Promise<void> => {
    while (next < pending.length && !opts.signal?.aborted) {
      const trial = pending[next++]!;
      const r = await attemptTrial(trial, exec, { store, attempts, emit, progress, signal: opts.signal });
      if (r.recorded) recorded++;
      if (r.failed) failed.push(r.failed);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, Math.max(1, pending.length)) }, loop));
  } finally {
    await procs?.close();
    await pool?.close();
  }
  return { pending: pending.length, recorded, failed, seconds: (performance.now() - t0) / 1000 };
}

// ---------------------------------------------------------------------------
// Report

export interface StudyReport {
  summary: StudySummary;
  text: string;
  files: string[];
  results: TrialResult[];
}

/** ", N failed (…)" when trials are recorded as failed. */
function failedNote(store: TrialStore): string {
  const f = store.failures();
  return f.length ? `, ${f.length} failed (${f.map((x) => `${x.trialId}: ${x.reason}`).join('; ')})` : '';
}

function csvCell(v: unknown): string {
  const s = v === undefined || v === null ? '' : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * Writes the study report into `<study>/report` (or `dir`): summary.json,
 * summary.txt, random_experiment.svg, scatter_<objective>.svg, report.html
 * (analysis.ts) and trials.csv (one row per finished trial). ρ etc. compare every
 * objective's accuracy (averaged over seeds) with the cls accuracy.
 */
export async function writeStudyReportFor(store: TrialStore, dir = join(store.dir, 'report')): Promise<StudyReport> {
  const config = studyConfigOf(store);
  const results = store.results();
  const rows = aggregateAccuracies(results, 'accuracy');
  const objectives = [...new Set(store.trials().map((t) => t.objective))].filter((o) => o !== 'cls').sort();
  const referenceBySeed = new Map<number, ArchAccuracies[]>();
  for (const seed of new Set(results.filter((r) => r.objective === 'cls').map((r) => r.seed)))
    referenceBySeed.set(seed, aggregateAccuracies(results.filter((r) => r.objective === 'cls' && r.seed === seed)));
  const summary = buildStudySummary(rows, { space: config.space, reference: 'cls', objectives, referenceBySeed });
  const files = await writeStudyReport(dir, summary, rows, { ...config }, referenceBySeed);
  const header = [
    'trial',
    'arch',
    'objective',
    'seed',
    'accuracy',
    'loss',
    'train_accuracy',
    'train_loss',
    'seconds',
    'params',
    'nodes',
  ];
  const lines = [header.join(',')];
  for (const r of results) {
    const i = r.info ?? {};
    lines.push(
      [
        r.trialId,
        r.archId,
        r.objective,
        r.seed,
        r.metrics.accuracy,
        r.metrics.loss,
        r.metrics.train_accuracy,
        r.metrics.train_loss,
        i.seconds,
        i.params,
        i.nodes,
      ]
        .map(csvCell)
        .join(','),
    );
  }
  const csv = join(dir, 'trials.csv');
  writeFileAtomic(csv, `${lines.join('\n')}\n`);
  files.push(csv);
  const secs = results.map((r) => Number(r.info?.seconds ?? 0));
  const total = secs.reduce((a, b) => a + b, 0);
  const text =
    formatSummaryTable(summary) +
    `\n${results.length}/${store.trials().length} trials finished${failedNote(store)}; trial time ${fmtTime(total)} in all, ${(total / Math.max(results.length, 1)).toFixed(1)} s per trial\n`;
  return { summary, text, files, results };
}
