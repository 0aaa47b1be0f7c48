/**
 * Label-free DARTS search (UnNAS): the supernet is trained with a pretext
 * objective (rot, col, jig, simclr — or cls, and seg on label maps, the
 * supervised baselines UnNAS compares with). Each step: one α
 * step on a batch of the architecture half, then one w step on a batch of the
 * weight half (Liu et al., DARTS, ICLR 2019, Alg. 1). First order: ∇α L_val(w, α). Second order: the
 * unrolled step with the finite-difference Hessian-vector product.
 *
 * The step graphs (wStep, alphaGrad, allGrad) come from graph/nets/search.ts;
 * α (2 × 14 × 8 floats) is updated on the host with Adam.
 *
 * Runs write a run directory: config.json, log.jsonl (one record per epoch,
 * with the collapse statistics and the guards' decisions: collapse.ts),
 * checkpoints/ (atomic; exact resume), genotype.json and genotype.svg (derived
 * every epoch) and, at the end, report.html, under the run lifecycle of
 * train/runtime/run.ts (lock, --out policy, resume checks, no non-finite
 * checkpoint, checkpoint on SIGINT). The settings are a DartsSearchConfig
 * (darts-config.ts).
 *
 * Determinism: batches are pure functions of (seed, epoch, batch index), the
 * checkpoints hold every parameter, optimizer slot, step counter and the
 * running sums of the epoch in progress, and ORT's CPU kernels are
 * deterministic for a given thread count: a run resumed from a checkpoint ends
 * bit-identical to an uninterrupted one (same machine and thread count).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type * as ort from 'onnxruntime-node';
import { deriveGenotype, genotypeJson, type Genotype, type OpName } from '../../graph/genotype.js';
import type { StemKind } from '../../graph/nets/darts.js';
import {
  buildSearchGraphs,
  defaultStem,
  isArch,
  isWeight,
  type SearchGraphIo,
  type SearchGraphNodes,
  type SearchGraphOptions,
  type SgdSpec,
} from '../../graph/nets/search.js';
import type { Objective, TaskShape } from '../../graph/nets/tasks.js';
import type { Checkpoint } from '../runtime/checkpoint.js';
import {
  StepRunner,
  cosineLr,
  newTrainState,
  stateFromTensors,
  stateTensors,
  type TrainState,
} from '../runtime/engine.js';
import { writeFileAtomic } from '../runtime/fsutil.js';
import { initParams } from '../runtime/params.js';
import { Progress } from '../runtime/progress.js';
import { f32, i64, loweringFor, type EP, type SessionOptions } from '../runtime/session.js';
import { TrainError } from '../runtime/errors.js';
import { Run, type RunOptions } from '../runtime/run.js';
import { SettingError } from '../runtime/settings.js';
import { DARTS_RUN, type DartsSearchConfig, dartsSearchConfig, SEG_SEARCH_CROP } from './darts-config.js';
import { genotypeSvg } from '../report/cell-diagram.js';
import { tryWriteRunReport } from '../report/run-report.js';
import { EvalNetCoster, evalNetShape, type EvalNetCost, type EvalNetShape } from '../report/cost.js';
import {
  type Batch,
  DataLoader,
  DataPool,
  dartsSplit,
  type Dataset,
  type LoadOptions,
  limitDataset,
  loadDataset,
  openSegTrainSet,
  runDataDir,
  type SkipReport,
  skipReport,
  type TaskOptions,
} from '../data/index.js';
import { checkEpoch, describeGuard, type CollapseOptions, type CollapseStats, type GuardDecision } from './collapse.js';

/** A DARTS search: its settings (darts-config.ts; defaults filled in) and how it runs. */
export interface SearchOptions extends Partial<DartsSearchConfig> {
  /** Run directory. */
  out: string;
  ep?: EP;
  workers?: number;
  /** Skip unreadable images (reported in the result) instead of failing. */
  skipCorrupt?: boolean;
  /** Checkpoint every N steps (besides epoch ends); 0 = epoch ends only. */
  checkpointEvery?: number;
  /** Continue the run in `out` from its newest intact checkpoint. */
  resume?: boolean;
  /** Replace a run that `out` holds. */
  overwrite?: boolean;
  /** Stop (after checkpointing) once this many steps have run in total: for tests and time-boxed runs. */
  stopAfterSteps?: number;
  quiet?: boolean;
  /** ORT intra-op threads on CPU (default: ORT's, the physical cores). Results are reproducible for a given count. */
  threads?: number;
  /** Let ORT's idle intra-op threads spin (default true; false on a machine busy with other work). */
  spinning?: boolean;
  /** ORT graph optimization level of the step graphs (default: StepRunner's, 'disabled'). */
  optimization?: SessionOptions['optimization'];
  /** Keep ORT's CPU memory arena per step graph (default false: the graphs' peaks are not held at once). */
  cpuMemArena?: boolean;
  /** Each epoch's genotype's evaluation network to cost in the log (default: train's defaults); false: none. */
  evalNet?: Partial<Pick<EvalNetShape, 'net' | 'C' | 'layers'>> | false;
  /** Collapse warning threshold and guards (collapse.ts); the guards are settings of the run (maxSkip, earlyStopSkip). */
  collapse?: CollapseOptions;
  /** Write report.html at the end (default true; not when stopped by stopAfterSteps). */
  report?: boolean;
  /** How messages render the command that continues the run (the CLI's own command line). */
  commandLine?: RunOptions<DartsSearchConfig>['commandLine'];
}

export interface SearchEpochRecord {
  epoch: number;
  lr: number;
  train_loss: number;
  train_acc: number;
  val_loss: number;
  val_acc: number;
  seconds: number;
  genotype: Genotype;
  alpha_normal: number[][];
  alpha_reduce: number[][];
  /** Parameters, multiply-adds and batch-1 latency of the genotype's evaluation network. */
  eval_net?: EvalNetCost;
  /** The normal cell's parameter-free ops and softmax(α) mass on them (collapse.ts). */
  collapse: CollapseStats;
  /** Decisions of the guards that acted this epoch. */
  guards?: GuardDecision[];
}

export interface SearchResult {
  genotype: Genotype;
  history: SearchEpochRecord[];
  alphas: { normal: Float32Array; reduce: Float32Array };
  nodes: SearchGraphNodes;
  stepSeconds: number;
  stopped: boolean;
  /** The epoch after which the early-stop guard ended the search. */
  guardStopEpoch?: number;
  /** Unreadable images skipped (with skipCorrupt). */
  skipped: SkipReport;
}

export interface HostAdam {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** Host-side Adam (PyTorch semantics, L2 weight decay added to the gradient), in place. */
export function adamUpdate(
  w: Float32Array,
  grad: Float32Array,
  m: Float32Array,
  v: Float32Array,
  t: number,
  o: HostAdam,
): void {
  const c1 = 1 - o.beta1 ** t;
  const c2 = Math.sqrt(1 - o.beta2 ** t);
  for (let i = 0; i < w.length; i++) {
    const d = grad[i]! + o.weightDecay * w[i]!;
    m[i] = o.beta1 * m[i]! + (1 - o.beta1) * d;
    v[i] = o.beta2 * v[i]! + (1 - o.beta2) * d * d;
    w[i] = w[i]! - (o.lr / c1) * (m[i]! / (Math.sqrt(v[i]!) / c2 + o.eps));
  }
}

/** `x` (and `labels` when the graph has them) of a batch. */
export function batchFeeds(b: Batch, hasLabels: boolean): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = { x: f32(b.x, b.xShape) };
  if (hasLabels) feeds.labels = i64(b.y, b.yShape);
  return feeds;
}

function rows2d(a: Float32Array, cols: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < a.length; i += cols) out.push(Array.from(a.subarray(i, i + cols), (v) => Number(v.toFixed(6))));
  return out;
}

function softmaxRows(a: Float32Array, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i += cols) {
    let m = -Infinity;
    for (let k = 0; k < cols; k++) m = Math.max(m, a[i + k]!);
    let s = 0;
    for (let k = 0; k < cols; k++) s += out[i + k] = Math.exp(a[i + k]! - m);
    for (let k = 0; k < cols; k++) out[i + k] = out[i + k]! / s;
  }
  return out;
}

/** The step graphs of a search and their ORT sessions. */
export interface SearchRunners {
  /** forward + backward + clipped SGD update of the weights */
  w: StepRunner;
  /** forward + ∇α */
  alpha: StepRunner;
  /** forward + ∇w and ∇α (second order only) */
  all: StepRunner | null;
  archNames: string[];
  weightNames: string[];
  hasLabels: boolean;
  /** Predictions a batch's `correct` metric counts over. */
  predictions: number;
  sgd: SgdSpec;
  nodes: SearchGraphNodes;
  /** Bytes fed and fetched by one run of each graph. */
  io: SearchGraphIo;
  /** Seconds to build the graphs (incl. autodiff), serialize them and create their ORT sessions. */
  setup: { graphsS: number; serializeS: number; sessionsS: number };
  release(): Promise<void>;
}

/** The search's step graphs and how their ORT sessions run. */
export interface SearchRunnerOptions extends SearchGraphOptions {
  ep?: EP;
  threads?: number;
  optimization?: SessionOptions['optimization'];
  cpuMemArena?: boolean;
  spinning?: boolean;
  memPattern?: boolean;
  /** Write an ORT profile of each step graph (file prefix; the graph's group name is appended). */
  profilePrefix?: string;
}

/**
 * Build the step graphs of a search (exactly those runSearch runs) and start their sessions.
 * The graphs are lowered for the execution provider (session.ts loweringFor) unless `o.lowering` says otherwise.
 */
export async function createSearchRunners(task: TaskShape, o: SearchRunnerOptions): Promise<SearchRunners> {
  const lowering = o.lowering ?? (await loweringFor(o.ep));
  const t0 = performance.now();
  const gs = buildSearchGraphs(task, { ...o, lowering });
  const graphsS = (performance.now() - t0) / 1000;
  const session = (group: string) => ({
    ep: o.ep,
    threads: o.threads,
    optimization: o.optimization,
    cpuMemArena: o.cpuMemArena ?? false,
    spinning: o.spinning,
    memPattern: o.memPattern,
    profilePrefix: o.profilePrefix ? `${o.profilePrefix}${group}` : undefined,
    group,
  });
  const started: StepRunner[] = [];
  try {
    const w = await StepRunner.create(gs.w.f.g, gs.w.info, gs.sgd, session('w'));
    started.push(w);
    const alpha = await StepRunner.create(gs.alpha.f.g, gs.alpha.info, null, session('alpha_grad'));
    started.push(alpha);
    const all = gs.all ? await StepRunner.create(gs.all.f.g, gs.all.info, null, session('all_grad')) : null;
    const runners = [w, alpha, ...(all ? [all] : [])];
    const fw = gs.w.f;
    return {
      w,
      alpha,
      all,
      archNames: [...fw.g.params.values()].filter(isArch).map((p) => p.name),
      weightNames: [...fw.g.params.values()].filter(isWeight).map((p) => p.name),
      hasLabels: fw.hasLabels,
      predictions: fw.predictions,
      sgd: gs.sgd,
      nodes: gs.nodes,
      io: gs.io,
      setup: {
        graphsS,
        serializeS: runners.reduce((a, r) => a + r.created.serializeS, 0),
        sessionsS: runners.reduce((a, r) => a + r.created.sessionS, 0),
      },
      release: async () => {
        for (const r of runners) await r.release();
      },
    };
  } catch (e) {
    for (const r of started) await r.release();
    throw e;
  }
}

export interface SearchStepResult {
  trainLoss: number;
  trainCorrect: number;
  valLoss: number;
  valCorrect: number;
}

/**
 * One search step (DARTS's train() in train_search.py): the α gradient on the architecture batch (first
 * or second order), a host Adam step on α, then the in-graph SGD step of the
 * weights on the weight batch. `lr` is the current weight learning rate (ξ of
 * the second-order unrolling).
 */
export async function searchStep(
  r: SearchRunners,
  st: TrainState,
  trainFeeds: Record<string, ort.Tensor>,
  valFeeds: Record<string, ort.Tensor>,
  o: { order: 1 | 2; lr: number; arch: HostAdam },
): Promise<SearchStepResult> {
  let archGrad: Map<string, Float32Array>;
  let valLoss: number;
  let valCorrect: number;
  if (o.order === 1) {
    const a = await r.alpha.run(st, valFeeds);
    archGrad = a.grads;
    valLoss = a.loss;
    valCorrect = a.metrics.correct ?? 0;
  } else {
    if (!r.all) throw new Error('second-order search step without the full-gradient graph');
    const a = await secondOrderArchGrad(
      st,
      r.all,
      r.alpha,
      trainFeeds,
      valFeeds,
      r.weightNames,
      r.archNames,
      o.lr,
      r.sgd,
    );
    archGrad = a.grads;
    valLoss = a.loss;
    valCorrect = a.correct;
  }
  const t = (st.steps.alpha ?? 0) + 1;
  st.steps.alpha = t;
  for (const n of r.archNames)
    adamUpdate(
      st.params.get(n)!,
      archGrad.get(n)!,
      st.opt.get(`${n}@exp_avg`)!,
      st.opt.get(`${n}@exp_avg_sq`)!,
      t,
      o.arch,
    );
  const w = await r.w.run(st, trainFeeds, o.lr);
  return { trainLoss: w.loss, trainCorrect: w.metrics.correct ?? 0, valLoss, valCorrect };
}

/** Running sums of the current epoch's step results (checkpointed mid-epoch, so a resumed epoch logs the same). */
interface EpochSums {
  tl: number;
  tc: number;
  vl: number;
  vc: number;
  n: number;
}

const emptySums = (): EpochSums => ({ tl: 0, tc: 0, vl: 0, vc: 0, n: 0 });

/** A running search: settings, data, step graphs and state. */
interface Search {
  o: SearchOptions;
  cfg: DartsSearchConfig;
  run: Run<DartsSearchConfig>;
  prims: readonly OpName[];
  /** The training images (both halves). */
  full: Dataset;
  pool: DataPool;
  /** Loaders of the weight half and of the architecture half. */
  wLoader: DataLoader;
  aLoader: DataLoader;
  /** Steps per epoch. */
  steps: number;
  /** The supernet's stem. */
  stem: StemKind;
  runners: SearchRunners;
  /** Costs each epoch's genotype's evaluation network for the log (null: not asked). */
  coster: EvalNetCoster | null;
  archOpt: HostAdam;
  st: TrainState;
  startEpoch: number;
  startBatch: number;
  totalSteps: number;
  history: SearchEpochRecord[];
  acc: EpochSums;
  stepTime: number;
  timedSteps: number;
  /** Set when the early-stop guard ends the search. */
  guardStopEpoch?: number;
}

type SearchData = Pick<Search, 'pool' | 'wLoader' | 'aLoader' | 'steps' | 'stem'>;

/** The DARTS split of the images into a weight half and an architecture half, and their loaders. */
async function openData(o: SearchOptions, c: DartsSearchConfig, full: Dataset): Promise<SearchData> {
  const seed = c.seed;
  const halves = dartsSplit(full, { seed });
  const { stem, task: taskOpts } = searchTask(
    c.objective,
    Math.min(full.h, full.w),
    c.stem ?? undefined,
    c.classes ?? undefined,
  );
  const pool = new DataPool({ workers: o.workers });
  const wLoader = new DataLoader(halves.weights, { task: taskOpts, batchSize: c.batch, seed, dropLast: true, pool });
  const aLoader = new DataLoader(halves.arch, {
    task: taskOpts,
    batchSize: c.batch,
    seed: seed + 1,
    dropLast: true,
    pool,
    mean: wLoader.mean,
    std: wLoader.std,
  });
  const steps = Math.min(wLoader.batchesPerEpoch, aLoader.batchesPerEpoch);
  if (steps < 1) {
    await pool.close();
    throw new SettingError(
      `--batch ${c.batch} is larger than half of the ${full.n} images: nothing to search on (lower --batch${c.limit !== null ? ' or raise --limit' : ''})`,
    );
  }
  return { pool, wLoader, aLoader, steps, stem };
}

/** The step graphs of the search and their sessions (the pool is closed when they fail). */
async function openRunners(o: SearchOptions, cfg: DartsSearchConfig, d: SearchData): Promise<SearchRunners> {
  const task = d.wLoader.task;
  try {
    return await createSearchRunners(task, {
      C: cfg.C,
      layers: cfg.layers,
      batchRows: task.xShape(cfg.batch)[0]!,
      order: cfg.order,
      primitives: cfg.primitives,
      stem: d.stem,
      momentum: cfg.momentum,
      weightDecay: cfg.weightDecay,
      clip: cfg.clip,
      ep: o.ep,
      threads: o.threads,
      spinning: o.spinning,
      optimization: o.optimization,
      cpuMemArena: o.cpuMemArena,
    });
  } catch (e) {
    await d.pool.close();
    throw e;
  }
}

/** Continue from a checkpoint: state, position, history and the interrupted epoch's sums. */
function resumeState(s: Search, c: Checkpoint): void {
  s.st = stateFromTensors(c.tensors);
  s.st.steps = { ...(c.meta.steps as Record<string, number>) };
  s.startEpoch = c.meta.epoch as number;
  s.startBatch = c.meta.batch as number;
  s.totalSteps = c.step;
  s.history.push(...(c.meta.history as SearchEpochRecord[]));
  if (s.startBatch > 0 && c.meta.sums) s.acc = { ...(c.meta.sums as EpochSums) };
  // the log holds exactly the checkpoint's epochs (a run killed after logging an epoch but
  // before its checkpoint would otherwise log that epoch twice)
  s.run.rewriteLog(s.history);
}

/** A fresh start: initialized weights and α, zero Adam moments of α. */
function freshState(s: Search, seed: number): void {
  s.st = newTrainState(initParams(s.runners.w.graph, seed));
  for (const n of s.runners.archNames) {
    s.st.opt.set(`${n}@exp_avg`, new Float32Array(s.st.params.get(n)!.length));
    s.st.opt.set(`${n}@exp_avg_sq`, new Float32Array(s.st.params.get(n)!.length));
  }
}

/**
 * The images a search trains on; the seg objective's come with their label
 * maps (Cityscapes or images/ + masks/), cut as UnNAS's search does: shorter
 * side to max(321, 512·2^u), 321 crops, flips, label maps alike.
 */
async function openSearchData(o: SearchOptions, c: DartsSearchConfig, fresh: boolean): Promise<Dataset> {
  const at = { out: o.out, limit: c.limit ?? undefined, skipCorrupt: o.skipCorrupt };
  if (c.objective !== 'seg')
    return limitDataset(
      await loadDataset(c.data, searchDataOptions({ ...at, size: c.size ?? undefined }, fresh)),
      at.limit,
    );
  const d = searchDataOptions({ ...at, size: c.size ?? SEG_SEARCH_CROP }, fresh);
  return openSegTrainSet(c.data, {
    classes: c.classes ?? 19,
    crop: d.crop!,
    indexDir: d.indexDir,
    limit: at.limit,
    skipCorrupt: o.skipCorrupt,
  });
}

async function openSearch(o: SearchOptions, run: Run<DartsSearchConfig>): Promise<Search> {
  const cfg = run.config;
  const resumeFrom = run.resumed;
  // the readers stop after `limit` images (a quick run on a large folder does not decode all of it);
  // a streamed set's file index is kept in the run directory, so a resumed run does not rescan the disk
  const full = await openSearchData(o, cfg, !resumeFrom);
  const data = await openData(o, cfg, full);
  // a cell searched with the ImageNet stem is costed in the ImageNet evaluation network (UnNAS);
  // the seg objective's evaluation network is UnNAS's ASPP network, which the coster does not build
  const net = data.stem === 'imagenet' ? 'imagenet' : 'cifar';
  const coster =
    o.evalNet === false || cfg.objective === 'seg'
      ? null
      : new EvalNetCoster(evalNetShape({ net, ...o.evalNet }, full), { ep: o.ep });
  const runners = await openRunners(o, cfg, data);
  const s: Search = {
    o,
    cfg,
    run,
    prims: cfg.primitives,
    full,
    ...data,
    runners,
    coster,
    archOpt: {
      lr: cfg.archLr,
      beta1: cfg.archBeta1,
      beta2: cfg.archBeta2,
      eps: 1e-8,
      weightDecay: cfg.archWeightDecay,
    },
    st: newTrainState(new Map()),
    startEpoch: 0,
    startBatch: 0,
    totalSteps: 0,
    history: [],
    acc: emptySums(),
    stepTime: 0,
    timedSteps: 0,
  };
  if (resumeFrom) resumeState(s, resumeFrom);
  else freshState(s, cfg.seed);
  return s;
}

/** Where a search is, in words: "epoch 2, step 5 of 8", or "the end of epoch 2". */
function position(s: Search, epoch: number, batch: number): string {
  return batch === 0 ? `the end of epoch ${epoch}` : `epoch ${epoch + 1}, step ${batch} of ${s.steps}`;
}

/** Checkpoint at (epoch, batch): batch > 0 is mid-epoch and keeps the epoch's running sums. */
function saveSearchCheckpoint(s: Search, epoch: number, batch: number): void {
  const meta = { epoch, batch, steps: s.st.steps, sums: batch > 0 ? s.acc : null, history: s.history };
  s.run.save(s.totalSteps, meta, stateTensors(s.st), position(s, epoch, batch));
}

const alphas = (s: Search): [Float32Array, Float32Array] => [
  s.st.params.get(s.runners.archNames[0]!)!,
  s.st.params.get(s.runners.archNames[1]!)!,
];

function currentGenotype(s: Search): Genotype {
  const [normal, reduce] = alphas(s);
  return deriveGenotype(normal, reduce, s.prims, s.cfg.maxSkip ?? undefined);
}

async function writeGenotype(s: Search, geno: Genotype, title: string): Promise<void> {
  writeFileAtomic(join(s.o.out, 'genotype.json'), genotypeJson({ name: `search_${s.cfg.objective}`, ...geno }));
  writeFileAtomic(join(s.o.out, 'genotype.svg'), await genotypeSvg(geno, `${s.cfg.objective} search, ${title}`));
}

/** One search step on a weight batch and an architecture batch, added to the epoch's sums. */
async function trainStep(s: Search, epoch: number, b: number, lr: number, wb: Batch, ab: Batch): Promise<void> {
  const { runners } = s;
  const ts = Date.now();
  const r = await searchStep(s.runners, s.st, batchFeeds(wb, runners.hasLabels), batchFeeds(ab, runners.hasLabels), {
    order: s.cfg.order,
    lr,
    arch: s.archOpt,
  });
  if (!Number.isFinite(r.trainLoss) || !Number.isFinite(r.valLoss)) {
    const which = Number.isFinite(r.trainLoss) ? `the validation loss (${r.valLoss})` : `the loss (${r.trainLoss})`;
    throw s.run.nonFinite(which, position(s, epoch, b + 1));
  }
  s.stepTime += (Date.now() - ts) / 1000;
  s.timedSteps++;
  s.acc.tl += r.trainLoss;
  s.acc.tc += r.trainCorrect;
  s.acc.vl += r.valLoss;
  s.acc.vc += r.valCorrect;
  s.acc.n++;
  s.totalSteps++;
}

/** The steps of one epoch (from the resumed batch in the first); true when the run stops early. */
async function runEpochSteps(s: Search, epoch: number, lr: number): Promise<boolean> {
  const { o, steps, acc } = s;
  const first = epoch === s.startEpoch ? s.startBatch : 0;
  const bar = new Progress(`search ${s.cfg.objective} epoch ${epoch + 1}/${s.cfg.epochs}`, steps, o.quiet);
  const wIt = s.wLoader.epoch(epoch, { startBatch: first });
  const aIt = s.aLoader.epoch(epoch, { startBatch: first });
  try {
    for (let b = first; b < steps; b++) {
      const wb = (await wIt.next()).value as Batch;
      const ab = (await aIt.next()).value as Batch;
      await trainStep(s, epoch, b, lr, wb, ab);
      bar.update(b + 1, `loss ${(acc.tl / acc.n).toFixed(3)} val ${(acc.vl / acc.n).toFixed(3)}`);
      const save = (): void => saveSearchCheckpoint(s, epoch, b + 1);
      await s.run.boundary(s.totalSteps, position(s, epoch, b + 1), save);
      if (b + 1 === steps) break;
      if (o.checkpointEvery && s.totalSteps % o.checkpointEvery === 0) save();
      if (o.stopAfterSteps !== undefined && s.totalSteps >= o.stopAfterSteps) {
        save();
        return true;
      }
    }
  } finally {
    await wIt.return(undefined);
    await aIt.return(undefined);
  }
  return false;
}

/** The epoch's record: log line, genotype files and a line on stderr; collapse monitor and guards. */
async function logEpoch(s: Search, epoch: number, lr: number, seconds: number): Promise<void> {
  const { acc, prims } = s;
  const [an, ar] = alphas(s);
  const check = checkEpoch(an, ar, prims, collapseOf(s));
  const geno = check.genotype;
  const per = acc.n * s.runners.predictions;
  const rec: SearchEpochRecord = {
    epoch: epoch + 1,
    lr,
    train_loss: acc.tl / acc.n,
    train_acc: acc.tc / per,
    val_loss: acc.vl / acc.n,
    val_acc: acc.vc / per,
    seconds,
    genotype: geno,
    alpha_normal: rows2d(softmaxRows(an, prims.length), prims.length),
    alpha_reduce: rows2d(softmaxRows(ar, prims.length), prims.length),
    ...(s.coster ? { eval_net: await s.coster.cost(geno) } : {}),
    collapse: check.collapse,
    ...(check.guards.length ? { guards: check.guards } : {}),
  };
  s.history.push(rec);
  s.run.log(rec);
  await writeGenotype(s, geno, `epoch ${epoch + 1}`);
  for (const line of [check.collapse.warning, ...check.guards.map(describeGuard)])
    if (line) process.stderr.write(`epoch ${epoch + 1}: ${line}\n`);
  if (check.stop) s.guardStopEpoch = epoch + 1;
  if (!s.o.quiet)
    process.stderr.write(
      `epoch ${epoch + 1}: ${s.cfg.objective} loss ${rec.train_loss.toFixed(3)} acc ${(100 * rec.train_acc).toFixed(1)}% | val loss ${rec.val_loss.toFixed(3)} acc ${(100 * rec.val_acc).toFixed(1)}% | ${JSON.stringify(geno.normal)}\n`,
    );
}

/** One epoch: its steps, then its record and checkpoint; true when the run stops early (`stopAfterSteps`, a guard). */
async function runEpoch(s: Search, epoch: number): Promise<boolean> {
  const { o } = s;
  const t0 = Date.now();
  const lr = cosineLr(s.cfg.lr, s.cfg.lrMin, epoch, s.cfg.epochs);
  if (epoch !== s.startEpoch || s.startBatch === 0) s.acc = emptySums();
  if (await runEpochSteps(s, epoch, lr)) return true;
  await logEpoch(s, epoch, lr, (Date.now() - t0) / 1000);
  saveSearchCheckpoint(s, epoch + 1, 0);
  await s.run.boundary(s.totalSteps, position(s, epoch + 1, 0), () => undefined);
  if (s.guardStopEpoch !== undefined) return true;
  return o.stopAfterSteps !== undefined && s.totalSteps >= o.stopAfterSteps && epoch + 1 < s.cfg.epochs;
}

/** The collapse options of a run: its warning threshold, and the guards of its settings. */
function collapseOf(s: Search): CollapseOptions {
  const { maxSkip, earlyStopSkip } = s.cfg;
  return { ...s.o.collapse, maxSkip: maxSkip ?? undefined, earlyStopSkip: earlyStopSkip ?? undefined };
}

/**
 * A DARTS search (darts-config.ts holds the settings) in the run directory
 * `o.out`, with the run lifecycle of train/runtime/run.ts.
 */
export async function runSearch(o: SearchOptions): Promise<SearchResult> {
  const guards = {
    maxSkip: o.collapse?.maxSkip ?? o.maxSkip,
    earlyStopSkip: o.collapse?.earlyStopSkip ?? o.earlyStopSkip,
  };
  return Run.execute(DARTS_RUN, { ...o, config: dartsSearchConfig({ ...o, ...guards }) }, (run) => searchIn(o, run));
}

/** The search in an opened run directory. */
async function searchIn(o: SearchOptions, run: Run<DartsSearchConfig>): Promise<SearchResult> {
  const s = await openSearch(o, run);
  let stopped = false;
  try {
    for (let epoch = s.startEpoch; epoch < s.cfg.epochs && !stopped; epoch++) stopped = await runEpoch(s, epoch);
    run.endLoop();
  } finally {
    await s.wLoader.close();
    await s.aLoader.close();
    await s.pool.close();
    await s.runners.release();
  }
  // stopped before the first epoch ended: still leave the current genotype
  if (!existsSync(join(o.out, 'genotype.json'))) await writeGenotype(s, currentGenotype(s), `step ${s.totalSteps}`);
  // the end of the search (a guard's stop included); a time-boxed stop (stopAfterSteps) writes none
  if (o.report !== false && (!stopped || s.guardStopEpoch !== undefined)) await tryWriteRunReport(o.out);
  const [normal, reduce] = alphas(s);
  return {
    genotype: currentGenotype(s),
    history: s.history,
    alphas: { normal, reduce },
    nodes: s.runners.nodes,
    stepSeconds: s.stepTime / Math.max(s.timedSteps, 1),
    stopped: stopped && s.guardStopEpoch === undefined,
    ...(s.guardStopEpoch !== undefined ? { guardStopEpoch: s.guardStopEpoch } : {}),
    skipped: skipReport([s.full], [s.wLoader, s.aLoader]),
  };
}

/**
 * The stem of a search on images of side `side` (default: `defaultStem`) and
 * its task options. The seg objective searches UnNAS's segmentation network,
 * whose stem is the ImageNet one, over `classes` classes (default 19).
 */
export function searchTask(
  objective: Objective,
  side: number,
  stem: StemKind | undefined,
  classes?: number,
): { stem: StemKind; task: TaskOptions } {
  if (objective !== 'seg') return { stem: stem ?? defaultStem(side), task: { name: objective } };
  if (stem === 'cifar') throw new TrainError('--objective seg searches the segmentation network: its stem is imagenet');
  return { stem: 'imagenet', task: { name: 'seg', numClasses: classes ?? 19 } };
}

/** How a search reads its data; a fresh run rescans a streamed set (its index is kept in <out>/data). */
export function searchDataOptions(
  o: { out: string; limit?: number; size?: number; skipCorrupt?: boolean },
  fresh: boolean,
): LoadOptions {
  const indexDir = o.size === undefined ? undefined : runDataDir(o.out, fresh);
  return { split: 'train', limit: o.limit, crop: o.size, skipCorrupt: o.skipCorrupt, indexDir };
}

/**
 * DARTS second-order α gradient (DARTS eq. 7–8; Architect._backward_step_unrolled
 * and _hessian_vector_product in architect.py of github.com/quark0/darts):
 *   w' = w − ξ(∇w L_train(w) + μ·buf + wd·w)
 *   g = ∇α L_val(w') − ξ·[∇α L_train(w⁺) − ∇α L_train(w⁻)] / 2ε,  w± = w ± ε∇w' L_val(w'),  ε = 0.01/‖∇w' L_val(w')‖
 */
export async function secondOrderArchGrad(
  st: TrainState,
  allRunner: StepRunner,
  alphaRunner: StepRunner,
  trainFeeds: Record<string, ort.Tensor>,
  valFeeds: Record<string, ort.Tensor>,
  weightNames: string[],
  archNames: string[],
  xi: number,
  sgd: SgdSpec,
): Promise<{ grads: Map<string, Float32Array>; loss: number; correct: number }> {
  const w0 = new Map(weightNames.map((n) => [n, st.params.get(n)!]));
  const withWeights = (ws: Map<string, Float32Array>): TrainState => {
    const params = new Map(st.params);
    for (const [n, v] of ws) params.set(n, v);
    return { params, opt: st.opt, steps: st.steps };
  };
  // unrolled weights
  const gTrain = (await allRunner.run(st, trainFeeds)).grads;
  const wPrime = new Map<string, Float32Array>();
  for (const n of weightNames) {
    const w = w0.get(n)!;
    const d = gTrain.get(n)!;
    const buf = st.opt.get(`${n}@momentum`);
    const out = new Float32Array(w.length);
    for (let i = 0; i < w.length; i++)
      out[i] = w[i]! - xi * (d[i]! + (buf ? sgd.momentum * buf[i]! : 0) + sgd.weightDecay * w[i]!);
    wPrime.set(n, out);
  }
  const rv = await allRunner.run(withWeights(wPrime), valFeeds);
  let sq = 0;
  for (const n of weightNames) for (const v of rv.grads.get(n)!) sq += v * v;
  if (!(sq > 0))
    return {
      grads: new Map(archNames.map((n) => [n, rv.grads.get(n)!])),
      loss: rv.loss,
      correct: rv.metrics.correct ?? 0,
    }; // ∇w' L_val = 0: no implicit term
  const eps = 0.01 / Math.sqrt(sq);
  const shifted = (sign: number): Map<string, Float32Array> => {
    const m = new Map<string, Float32Array>();
    for (const n of weightNames) {
      const w = w0.get(n)!;
      const d = rv.grads.get(n)!;
      const out = new Float32Array(w.length);
      for (let i = 0; i < w.length; i++) out[i] = w[i]! + sign * eps * d[i]!;
      m.set(n, out);
    }
    return m;
  };
  const gp = (await alphaRunner.run(withWeights(shifted(1)), trainFeeds)).grads;
  const gm = (await alphaRunner.run(withWeights(shifted(-1)), trainFeeds)).grads;
  const grads = new Map<string, Float32Array>();
  for (const n of archNames) {
    const gv = rv.grads.get(n)!;
    const out = new Float32Array(gv.length);
    const p = gp.get(n)!;
    const q = gm.get(n)!;
    for (let i = 0; i < gv.length; i++) out[i] = gv[i]! - (xi * (p[i]! - q[i]!)) / (2 * eps);
    grads.set(n, out);
  }
  return { grads, loss: rv.loss, correct: rv.metrics.correct ?? 0 };
}
