/**
 * SSWP-NAS search (Li et al., SSWP-NAS, §3): a proxy-free, label-free search of
 * the target-size network whose searched weights are kept ("concomitant
 * weights").
 *
 * The network (graph/nets/sswp.ts) has one α [14 × 7] per cell, held on the
 * host (they are not graph parameters: each step feeds the sampled 0/1 gates
 * instead, see the design note there). Per step, on the DARTS split of the
 * training images (one half trains w, the other α; as the reference release):
 *  - archStep (bilevel and prune phases, gated cells only): gates sampled
 *    without op dropout, gate gradients from the α-gradient graph on an
 *    architecture batch, α gradients by the ProxylessNAS estimator
 *    (sampler.ts), host Adam (lr 1e-3, betas (0, 0.99)), and in two-path mode
 *    the rescaling of the involved α;
 *  - weightStep (every step): gates sampled with op dropout after warm-up; the
 *    in-graph SGD step (lr 0.025 cosine to 0 per epoch, momentum 0.9, wd
 *    4e-5, clipping 5); then the parameters and momentum of the ops that were
 *    not active are put back as they were (PyTorch skips parameters whose
 *    grad is None: no weight decay, no momentum for them).
 * Phases (schedule.ts): warm-up → bilevel → progressive pruning. Pruning a
 * cell (prune.ts) freezes its α and keeps, by default, the best op on each of
 * its 14 edges (the paper's rule; or, with `two-per-node`, DARTS's final cell
 * at once); the step graphs are then rebuilt with that cell in its pruned
 * form (its kept ops only, same parameter names), so a step gets cheaper with
 * every pruned cell.
 *
 * All randomness is seeded: weights from `seed`, batches from the loaders'
 * streams, and the paths of step t from `Rng.derive(seed, SAMPLE_STREAM, t, k)`
 * (k = 0 for the α step, 1 for the w step), so a run resumed from a checkpoint
 * draws exactly what the uninterrupted run draws.
 *
 * At the end: every cell gets its final form by DARTS's rule; BN running statistics, not tracked
 * during search, are recomputed with forward passes of the discretized network
 * in training form over `bnBatches` batches of un-augmented training images;
 * then the run directory receives:
 *   cells.json      the per-cell architectures (format: graph/nets/sswp.ts)
 *   cells.svg       their diagrams
 *   model.onnx      the discretized network with its concomitant weights in
 *                   inference form (BN with the recomputed statistics); input
 *                   `x` [1, C, H, W] normalized as recorded in its metadata,
 *                   outputs `features` (pooled) and `projection` (SimCLR's z)
 *   final/          a checkpoint of those weights, statistics and α (what
 *                   `nas-onnx finetune --from` starts from)
 *   log.jsonl       one record per step ({type: 'step', phase, …}), per prune
 *                   ({type: 'prune', cell, ops}) and per epoch ({type: 'epoch'})
 *   checkpoints/    search checkpoints (exact resume with `resume`)
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EDGES } from '../../../graph/genotype.js';
import { numel } from '../../../graph/ir.js';
import { Rng } from '../../../graph/rng.js';
import { deployMeta, serializeInference } from '../../../graph/deploy.js';
import type { StemKind } from '../../../graph/nets/darts.js';
import { defaultStem } from '../../../graph/nets/search.js';
import type { Objective, TaskShape } from '../../../graph/nets/tasks.js';
import {
  NUM_OPS,
  SSWP_OPS,
  buildSswpForward,
  buildSswpNetwork,
  opKey,
  parseSswpArch,
  sswpArch,
  sswpArchJson,
  type CellOps,
  type CellSpec,
  type SswpArch,
} from '../../../graph/nets/sswp.js';
import { bnStatsGraph, type OptimizerSpec } from '../../../graph/training.js';
import { type Checkpoint, latestCheckpoint, loadCheckpoint, saveCheckpoint } from '../../runtime/checkpoint.js';
import {
  cosineLr,
  newTrainState,
  stateFromTensors,
  stateTensors,
  type StepResult,
  type TrainState,
} from '../../runtime/engine.js';
import { writeFileAtomic } from '../../runtime/fsutil.js';
import { initParams, pickParams, type ParamValues } from '../../runtime/params.js';
import { preciseBnStats } from '../../runtime/precise-bn.js';
import { Progress } from '../../runtime/progress.js';
import { f32, type EP, type SessionOptions, type Tensor } from '../../runtime/session.js';
import { TrainError } from '../../runtime/errors.js';
import { Run, type RunOptions } from '../../runtime/run.js';
import { SettingError } from '../../runtime/settings.js';
import { SSWP_DEFAULTS, SSWP_RUN, type SswpConfig, sswpConfig, sswpNetworkOf } from './config.js';
import { cellsSvg } from '../../report/cell-diagram.js';
import { tryWriteRunReport } from '../../report/run-report.js';
import { perCellAlphaRecord } from '../collapse.js';
import { adamUpdate, batchFeeds, type HostAdam, searchDataOptions } from '../darts.js';
import { Runners, type RunnerShape } from './runners.js';
import { alphaGradients, rescaleInvolved, sampleGates, type GateSample, type OpDropout } from './sampler.js';
import { finalCell, pruneCell } from './prune.js';
import { makeSchedule, phaseOf, type Phase, type Schedule } from './schedule.js';
import {
  DataLoader,
  DataPool,
  dartsSplit,
  limitDataset,
  loadDataset,
  type Batch,
  type Dataset,
  type SkipReport,
  skipReport,
} from '../../data/index.js';

/** Rng.derive label of the path samples. */
export const SAMPLE_STREAM = 0x55a9;

/** An SSWP-NAS search: its settings (config.ts; defaults filled in) and how it runs. */
export interface SswpOptions extends Partial<SswpConfig> {
  /** Run directory. */
  out: string;
  ep?: EP;
  workers?: number;
  /** Skip unreadable images (reported in the result) instead of failing. */
  skipCorrupt?: boolean;
  /** Batches of un-augmented images for the final BN statistics (SSWP_DEFAULTS.bnBatches). */
  bnBatches?: number;
  checkpointEvery?: number;
  /** Continue the run in `out` from its newest intact checkpoint. */
  resume?: boolean;
  /** Replace a run that `out` holds. */
  overwrite?: boolean;
  stopAfterSteps?: number;
  quiet?: boolean;
  /** Per-step records in log.jsonl (default true). */
  stepLog?: boolean;
  /** Write report.html at the end (default true; not when stopped by stopAfterSteps). */
  report?: boolean;
  /**
   * ORT graph optimization level of the step graphs (default 'disabled'):
   * session creation grows about quadratically with the node count at the
   * higher levels (3 gated cells, C=4: 15 s disabled, 180 s 'all', same step
   * time), and the gated graphs are large.
   */
  optimization?: SessionOptions['optimization'];
  /** How messages render the command that continues the run (the CLI's own command line). */
  commandLine?: RunOptions<SswpConfig>['commandLine'];
}

export { SSWP_DEFAULTS, type SswpConfig, sswpConfig } from './config.js';

// ---- BN statistics -----------------------------------------------------------------

/**
 * BN running statistics of a discretized network, recomputed with forward
 * passes in training form over `batches` batches of `rows` un-augmented images
 * (seeded order): the mean of the per-batch statistics (running var: unbiased).
 * Returns the running_mean / running_var values by parameter name.
 */
export async function recomputeBnStats(
  net: { C: number; layers: number; cells: readonly CellOps[]; stem?: StemKind },
  params: ParamValues,
  ds: Dataset,
  norm: { mean: number[]; std: number[] },
  o: { rows: number; batches: number; seed: number; ep?: EP },
): Promise<ParamValues> {
  const rows = Math.min(o.rows, ds.n);
  const m = buildSswpNetwork({ ...net, batch: rows, input: [ds.c, ds.h, ds.w], training: true });
  const g = bnStatsGraph(m.g);
  if (!g) return new Map();
  const feeds = plainBatches(ds, norm, rows, o.seed);
  return (await preciseBnStats(g, params, feeds, { ep: o.ep, maxBatches: Math.max(1, o.batches) })).stats;
}

/**
 * Un-augmented images of a data set, in memory or streamed (then resized and
 * centre-cropped), as `x` feeds of `rows` images in a seeded order. The `cls`
 * task without augmentation gives them; the labels it wants are not used.
 */
async function* plainBatches(
  ds: Dataset,
  norm: { mean: number[]; std: number[] },
  rows: number,
  seed: number,
): AsyncGenerator<{ x: Tensor }> {
  const src: Dataset = ds.labels ? ds : { ...ds, labels: new Int32Array(ds.n), classes: Math.max(ds.classes, 1) };
  const pool = new DataPool({ workers: 0 });
  const task = { name: 'cls' as const, augment: false };
  const loader = new DataLoader(src, { task, batchSize: rows, seed, dropLast: true, pool, ...norm });
  try {
    for await (const b of loader.epoch(0)) yield { x: f32(b.x, b.xShape) };
  } finally {
    await loader.close();
    await pool.close();
  }
}

// ---- the search ----------------------------------------------------------------------

export interface SswpResult {
  arch: SswpArch;
  modelPath: string;
  finalDir: string;
  stopped: boolean;
  steps: number;
  /** Mean seconds of a w step and of an α step, by number of gated cells. */
  timing: { gated: number; wSeconds: number; aSeconds: number; steps: number }[];
  /** Step-graph node counts of the first graphs built (w step, α gradient). */
  nodes: { w: number; a: number };
  phases: Record<string, number>;
  /** Unreadable images skipped (with skipCorrupt). */
  skipped?: SkipReport;
}

/** An epoch's running sums (kept in mid-epoch checkpoints, so a resumed epoch logs its whole record). */
interface EpochAcc {
  loss: number;
  correct: number;
  n: number;
  aLoss: number;
  aCorrect: number;
  aN: number;
  dropped: number;
  edges: number;
  phases: Record<string, number>;
}

const emptyAcc = (): EpochAcc => ({
  loss: 0,
  correct: 0,
  n: 0,
  aLoss: 0,
  aCorrect: 0,
  aN: 0,
  dropped: 0,
  edges: 0,
  phases: {},
});

const alphaName = (i: number): string => `alpha_cell${i}`;

/** A running search: settings, data, schedule and state. */
interface Search {
  o: SswpOptions;
  cfg: SswpConfig;
  run: Run<SswpConfig>;
  /** Records in log.jsonl (a checkpoint remembers how many it covers). */
  logged: number;
  full: Dataset;
  pool: DataPool;
  wLoader: DataLoader;
  aLoader: DataLoader;
  taskShape: TaskShape;
  /** The network: its stem (asked for, else the default for the images' size), channels and cells. */
  net: { C: number; layers: number; stem: StemKind };
  /** Steps per epoch. */
  S: number;
  sched: Schedule;
  /** Rows of x per batch (SimCLR: 2 views per image). */
  rows: number;
  sgd: OptimizerSpec;
  archOpt: HostAdam;
  dropout: OpDropout;
  st: TrainState;
  /** Per cell: null while it is searched, else its pruned form. */
  pruned: CellSpec[];
  startStep: number;
  /** Steps done so far (including those of a resumed run). */
  done: number;
  /** The interrupted epoch's running sums (resume mid-epoch). */
  resumedAcc: EpochAcc | null;
  history: Record<string, unknown>[];
  runners: Runners | null;
  firstNodes: { w: number; a: number } | null;
  /** Seconds and counts of w and α steps, by number of gated cells. */
  timing: Map<number, { w: number; a: number; n: number; an: number }>;
  phaseSteps: Record<string, number>;
}

type SearchData = Pick<Search, 'full' | 'pool' | 'wLoader' | 'aLoader' | 'taskShape' | 'net' | 'S' | 'sched' | 'rows'>;

/** The images, the DARTS split into a weight half and an architecture half, their loaders and the schedule. */
async function openData(o: SswpOptions, cfg: SswpConfig, fresh: boolean): Promise<SearchData> {
  const at = { out: o.out, limit: cfg.limit ?? undefined, size: cfg.size ?? undefined, skipCorrupt: o.skipCorrupt };
  const full = limitDataset(await loadDataset(cfg.data, searchDataOptions(at, fresh)), at.limit);
  const halves = dartsSplit(full, { seed: cfg.seed });
  const pool = new DataPool({ workers: o.workers });
  const task = { name: cfg.objective };
  const common = { task, batchSize: cfg.batch, dropLast: true, pool };
  const wLoader = new DataLoader(halves.weights, { ...common, seed: cfg.seed });
  const aLoader = new DataLoader(halves.arch, { ...common, seed: cfg.seed + 1, mean: wLoader.mean, std: wLoader.std });
  const t = wLoader.task;
  const taskShape: TaskShape = {
    name: cfg.objective,
    numClasses: t.numClasses,
    groupSize: t.groupSize,
    inputShape: t.inputShape,
  };
  const S = Math.min(wLoader.batchesPerEpoch, aLoader.batchesPerEpoch);
  if (S < 1) {
    await pool.close();
    throw new SettingError(
      `--batch ${cfg.batch} is larger than half of the ${full.n} images: nothing to search on (lower --batch${cfg.limit !== null ? ' or raise --limit' : ''})`,
    );
  }
  const stem = cfg.stem ?? defaultStem(Math.min(full.h, full.w));
  const net = { ...sswpNetworkOf(cfg, stem), stem };
  if (cfg.fixedCells && cfg.fixedCells.length !== net.layers) {
    await pool.close();
    throw new SettingError(`${cfg.fixedCells.length} fixed cells for ${net.layers} layers`);
  }
  const sched = makeSchedule({
    epochs: cfg.epochs,
    stepsPerEpoch: S,
    layers: net.layers,
    prune: cfg.prune,
    split: cfg.split ?? undefined,
  });
  return { full, pool, wLoader, aLoader, taskShape, net, S, sched, rows: t.xShape(cfg.batch)[0]! };
}

/** The network of a prune state, as the step graphs are built. */
function netShape(s: Search, cells: CellSpec[]): RunnerShape {
  return {
    C: s.net.C,
    layers: s.net.layers,
    stem: s.net.stem,
    cells,
    affine: s.cfg.affine,
    rows: s.rows,
    temperature: s.cfg.temperature,
    projectionDim: s.cfg.projectionDim,
  };
}

/** A fresh start: every op's weights from the all-gated network (creation order: a seed gives one network), α = 0. */
function freshState(s: Search): void {
  const all = buildSswpForward(s.taskShape, netShape(s, new Array<CellSpec>(s.net.layers).fill(null)));
  s.st = newTrainState(initParams(all.g, s.cfg.seed));
  for (let i = 0; i < s.net.layers; i++) {
    // α start at 0 (uniform over the ops), as in the reference release
    for (const key of [alphaName(i), `${alphaName(i)}@exp_avg`, `${alphaName(i)}@exp_avg_sq`]) {
      const target = key.includes('@') ? s.st.opt : s.st.params;
      target.set(key, new Float32Array(EDGES * NUM_OPS));
    }
  }
}

/** The state of the checkpoint the run resumes from (its settings were checked by Run.open). */
function resumeState(s: Search, c: Checkpoint): void {
  s.st = stateFromTensors(c.tensors);
  s.st.steps = c.meta.steps as Record<string, number>;
  s.pruned = c.meta.pruned as CellSpec[];
  s.startStep = s.done = c.step;
  s.history.push(...(c.meta.history as Record<string, unknown>[]));
  s.resumedAcc = (c.meta.epochAcc as EpochAcc | null) ?? null;
  // the log holds exactly the checkpoint's records (none twice after a kill between a log line and a checkpoint)
  const logged = c.meta.logged as number | undefined;
  if (logged !== undefined) {
    s.logged = logged;
    s.run.rewriteLog(readLog(s.run.logPath).slice(0, logged));
  }
}

/** The records of a log.jsonl (none when it is missing). */
function readLog(path: string): unknown[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as unknown);
}

async function openSearch(o: SswpOptions, run: Run<SswpConfig>): Promise<Search> {
  const cfg = run.config;
  const data = await openData(o, cfg, run.resumed === null);
  const s: Search = {
    o,
    cfg,
    run,
    logged: 0,
    ...data,
    sgd: { kind: 'sgd', momentum: cfg.momentum, weightDecay: cfg.weightDecay },
    archOpt: {
      lr: cfg.archLr,
      beta1: cfg.archBeta1,
      beta2: cfg.archBeta2,
      eps: 1e-8,
      weightDecay: cfg.archWeightDecay,
    },
    dropout: { skip: cfg.opDropout, pool: cfg.poolDropout },
    st: newTrainState(new Map()),
    pruned: cfg.fixedCells ? [...cfg.fixedCells] : new Array<CellSpec>(data.net.layers).fill(null),
    startStep: 0,
    done: 0,
    resumedAcc: null,
    history: [],
    runners: null,
    firstNodes: null,
    timing: new Map(),
    phaseSteps: {},
  };
  try {
    if (run.resumed) resumeState(s, run.resumed);
    else freshState(s);
  } catch (e) {
    await s.pool.close();
    throw e;
  }
  return s;
}

/** The phase of a step ('pretrain' throughout for a fixed architecture). */
const phaseAt = (s: Search, step: number): Phase =>
  s.cfg.fixedCells ? 'pretrain' : phaseOf(s.sched, s.cfg.prune, step);

const alphasOf = (s: Search): Float32Array[] =>
  Array.from({ length: s.net.layers }, (_, i) => s.st.params.get(alphaName(i))!);
const gatedOf = (s: Search): boolean[] => s.pruned.map((c) => c === null);

/** Every cell in its final form (DARTS's rule on its α and what pruning kept). */
function currentCells(s: Search): CellOps[] {
  return s.pruned.map((c, i) => finalCell(s.st.params.get(alphaName(i))!, c));
}

/** Where a search is, in words: "epoch 2, step 5 of 8", or "the end of epoch 2". */
function position(s: Search, step: number): string {
  const b = step % s.S;
  return b === 0 ? `the end of epoch ${step / s.S}` : `epoch ${Math.floor(step / s.S) + 1}, step ${b} of ${s.S}`;
}

/** `acc`: the running epoch's sums when saving mid-epoch. */
function saveSearchCheckpoint(s: Search, step: number, acc?: EpochAcc): void {
  const meta = { steps: s.st.steps, pruned: s.pruned, history: s.history, epochAcc: acc ?? null, logged: s.logged };
  s.run.save(step, meta, stateTensors(s.st), position(s, step));
}

/** A record of log.jsonl (counted: a checkpoint knows how many records it covers). */
function logRecord(s: Search, rec: unknown): void {
  s.run.log(rec);
  s.logged++;
}

/** cells.json and cells.svg of the current architecture. */
async function writeCells(s: Search): Promise<void> {
  const { o, full } = s;
  const arch = sswpArch({
    C: s.net.C,
    layers: s.net.layers,
    stem: s.net.stem,
    input: [full.c, full.h, full.w],
    cells: currentCells(s),
    pruned: s.pruned.map((c) => c !== null),
  });
  writeFileAtomic(join(o.out, 'cells.json'), sswpArchJson(arch));
  const diagrams = arch.cells.map((c) => ({
    ops: c.ops,
    concat: c.concat,
    title: `cell ${c.cell}${c.reduction ? ' (reduction)' : ''}${c.pruned ? '' : ' (searching)'}`,
  }));
  writeFileAtomic(join(o.out, 'cells.svg'), await cellsSvg(diagrams, `SSWP-NAS ${s.cfg.objective}`));
}

/** Prune `cells` (in this order) before `step` by the run's rule; their α are frozen from now on. */
function pruneCells(s: Search, cells: number[], step: number): void {
  const rule = s.cfg.pruneRule;
  for (const c of cells) {
    const ops = pruneCell(s.st.params.get(alphaName(c))!, rule);
    s.pruned[c] = ops;
    logRecord(s, { type: 'prune', step, epoch: Math.floor(step / s.S), cell: c, rule, ops });
    if (!s.o.quiet) process.stderr.write(`step ${step}: cell ${c} pruned to ${JSON.stringify(ops)}\n`);
  }
}

/** Prune the cells due before `step`, and (re)build the step graphs when the prune state changed. */
async function prepareRunners(s: Search, step: number): Promise<Runners> {
  const due = s.sched.order.filter((c) => s.pruned[c] === null && s.sched.pruneAt[c]! <= step);
  if (due.length) pruneCells(s, due, step);
  if (!s.runners || due.length) {
    await s.runners?.release();
    s.runners = null;
    s.runners = await Runners.create(s.taskShape, netShape(s, s.pruned), s.sgd, s.cfg.clip, {
      ep: s.o.ep,
      optimization: s.o.optimization ?? 'disabled',
    });
    s.firstNodes ??= s.runners.nodes;
  }
  return s.runners;
}

/** The α step: gate gradients on an architecture batch (no op dropout), α gradients, host Adam, two-path rescaling. */
async function archStep(s: Search, runners: Runners, step: number, batch: Batch): Promise<StepResult> {
  const alphas = alphasOf(s);
  const sample = sampleGates(Rng.derive(s.cfg.seed, SAMPLE_STREAM, step, 0), alphas, gatedOf(s), s.cfg.sampling, null);
  const r = await runners.a!.run(s.st, {
    ...batchFeeds(batch, runners.hasLabels),
    ...runners.pathFeeds(sample, 'involved'),
  });
  const grads = alphaGradients(alphas, r.grads.get('gates')!, sample);
  const t = (s.st.steps.alpha ?? 0) + 1;
  s.st.steps.alpha = t;
  grads.forEach((gr, i) => {
    if (!gr) return;
    const name = alphaName(i);
    const a = s.st.params.get(name)!;
    const before = a.slice();
    adamUpdate(a, gr, s.st.opt.get(`${name}@exp_avg`)!, s.st.opt.get(`${name}@exp_avg_sq`)!, t, s.archOpt);
    if (s.cfg.sampling === 'two-path')
      sample.edges[i]!.forEach((e, k) => rescaleInvolved(a, before, k * NUM_OPS, e.involved));
  });
  return r;
}

type KeptWeights = [string, Float32Array, Float32Array | undefined][];

/**
 * The weights and momentum of the ops a sample leaves inactive (the runner
 * replaces arrays, it does not write into them, so references suffice).
 */
function inactiveWeights(s: Search, runners: Runners, sample: GateSample): KeptWeights {
  const kept: KeptWeights = [];
  sample.edges.forEach((edges, i) =>
    edges?.forEach((e, k) => {
      for (let op = 0; op < NUM_OPS; op++) {
        if (op === e.active) continue;
        for (const name of runners.opParams.get(opKey(i, k, op)) ?? [])
          kept.push([name, s.st.params.get(name)!, s.st.opt.get(`${name}@momentum`)]);
      }
    }),
  );
  return kept;
}

/** Put kept weights back, copied into the new arrays (which may be views of one flat buffer). */
function putBack(st: TrainState, kept: KeptWeights): void {
  for (const [name, w, m] of kept) {
    st.params.get(name)!.set(w);
    const key = `${name}@momentum`;
    const now = st.opt.get(key);
    if (now) {
      if (m) now.set(m);
      else now.fill(0); // no buffer yet ≡ a zero buffer (PyTorch starts it at the first gradient)
    } else if (m) st.opt.set(key, m);
  }
}

/** The w step on a sampled path (op dropout after warm-up); inactive ops are left as they were. */
async function weightStep(
  s: Search,
  runners: Runners,
  step: number,
  phase: Phase,
  batch: Batch,
  lr: number,
): Promise<{ r: StepResult; dropped: number }> {
  const dropout = phase === 'warmup' ? null : s.dropout;
  const sample = sampleGates(
    Rng.derive(s.cfg.seed, SAMPLE_STREAM, step, 1),
    alphasOf(s),
    gatedOf(s),
    s.cfg.sampling,
    dropout,
  );
  const kept = inactiveWeights(s, runners, sample);
  const paths = runners.a ? runners.pathFeeds(sample, 'active') : {};
  const r = await runners.w.run(s.st, { ...batchFeeds(batch, runners.hasLabels), ...paths }, lr);
  putBack(s.st, kept);
  const dropped = sample.edges.reduce((n, es) => n + (es ? es.filter((x) => x.dropped).length : 0), 0);
  return { r, dropped };
}

interface StepRecord {
  step: number;
  phase: Phase;
  lr: number;
  gated: number;
  w: { r: StepResult; dropped: number };
  ar: StepResult | null;
}

/** Add a step to the epoch's sums and to log.jsonl. */
function logStep(s: Search, acc: EpochAcc, x: StepRecord, predictions: number): void {
  const { r, dropped } = x.w;
  acc.loss += r.loss;
  acc.correct += r.metrics.correct ?? 0;
  acc.n++;
  acc.dropped += dropped;
  acc.edges += x.gated * EDGES;
  if (x.ar) {
    acc.aLoss += x.ar.loss;
    acc.aCorrect += x.ar.metrics.correct ?? 0;
    acc.aN++;
  }
  acc.phases[x.phase] = (acc.phases[x.phase] ?? 0) + 1;
  s.phaseSteps[x.phase] = (s.phaseSteps[x.phase] ?? 0) + 1;
  if (s.o.stepLog === false) return;
  logRecord(s, {
    type: 'step',
    step: x.step,
    epoch: Math.floor(x.step / s.S) + 1,
    batch: x.step % s.S,
    phase: x.phase,
    lr: x.lr,
    loss: r.loss,
    acc: (r.metrics.correct ?? 0) / predictions,
    ...(x.ar ? { arch_loss: x.ar.loss, arch_acc: (x.ar.metrics.correct ?? 0) / predictions } : {}),
    gated: x.gated,
    dropped,
    arch_dropped: 0,
  });
}

/** One search step: prune what is due, the α step (after warm-up, while cells are gated), the w step. */
async function searchStep(s: Search, step: number, wBatch: Promise<Batch>, lr: number, acc: EpochAcc): Promise<void> {
  const runners = await prepareRunners(s, step);
  const phase = phaseAt(s, step);
  const gated = gatedOf(s).filter(Boolean).length;
  const doArch = phase !== 'warmup' && runners.a !== null;
  const aBatch = doArch ? s.aLoader.batch(Math.floor(step / s.S), step % s.S) : null;
  const wb = await wBatch;
  const tm = s.timing.get(gated) ?? { w: 0, a: 0, n: 0, an: 0 };
  s.timing.set(gated, tm);
  let ar: StepResult | null = null;
  if (aBatch) {
    const t0 = Date.now();
    ar = await archStep(s, runners, step, (await aBatch) as Batch);
    tm.a += (Date.now() - t0) / 1000;
    tm.an++;
  }
  const t0 = Date.now();
  const w = await weightStep(s, runners, step, phase, wb, lr);
  tm.w += (Date.now() - t0) / 1000;
  tm.n++;
  if (!Number.isFinite(w.r.loss)) throw s.run.nonFinite(`the loss (${w.r.loss})`, position(s, step + 1));
  if (ar && !Number.isFinite(ar.loss)) throw s.run.nonFinite(`the α-step loss (${ar.loss})`, position(s, step + 1));
  logStep(s, acc, { step, phase, lr, gated, w, ar }, runners.predictions);
  s.done = step + 1;
}

/** The epoch record: log.jsonl, history, cells.json, the console line. */
async function logEpoch(s: Search, epoch: number, acc: EpochAcc, lr: number, seconds: number): Promise<void> {
  const pred = s.runners!.predictions;
  const rec = {
    type: 'epoch',
    epoch: epoch + 1,
    lr,
    phases: acc.phases,
    loss: acc.loss / acc.n,
    acc: acc.correct / (acc.n * pred),
    arch_loss: acc.aN ? acc.aLoss / acc.aN : null,
    arch_acc: acc.aN ? acc.aCorrect / (acc.aN * pred) : null,
    arch_steps: acc.aN,
    dropped_fraction: acc.edges ? acc.dropped / acc.edges : 0,
    pruned: s.pruned.map((c, i) => (c ? i : -1)).filter((i) => i >= 0),
    seconds,
    cells: currentCells(s),
    ...perCellAlphaRecord(alphasOf(s), SSWP_OPS, currentCells(s)),
  };
  s.history.push({
    epoch: rec.epoch,
    loss: rec.loss,
    arch_loss: rec.arch_loss,
    phases: rec.phases,
    pruned: rec.pruned,
  });
  logRecord(s, rec);
  await writeCells(s);
  if (s.o.quiet) return;
  process.stderr.write(
    `epoch ${epoch + 1}: ${Object.keys(acc.phases).join('+')} loss ${rec.loss.toFixed(3)} acc ${(100 * rec.acc).toFixed(1)}%` +
      (rec.arch_loss !== null ? ` | α-loss ${rec.arch_loss.toFixed(3)}` : '') +
      ` | pruned ${rec.pruned.length}/${s.net.layers} | ${rec.seconds.toFixed(1)} s\n`,
  );
}

/** One epoch (from the resumed step in the first); true when the run stops early (`stopAfterSteps`). */
async function runEpoch(s: Search, epoch: number): Promise<boolean> {
  const { o, S } = s;
  const t0 = Date.now();
  const lr = cosineLr(s.cfg.lr, s.cfg.lrMin, epoch, s.cfg.epochs);
  const first = Math.max(0, s.startStep - epoch * S);
  const what = s.cfg.fixedCells ? `${s.cfg.objective} pre-training` : `sswp ${s.cfg.objective}`;
  const bar = new Progress(`${what} epoch ${epoch + 1}/${s.cfg.epochs}`, S, o.quiet);
  const acc = (first > 0 ? s.resumedAcc : null) ?? emptyAcc();
  s.resumedAcc = null;
  const wIt = s.wLoader.epoch(epoch, { startBatch: first });
  try {
    for (let b = first; b < S; b++) {
      const next = wIt.next().then((x) => x.value as Batch);
      await searchStep(s, epoch * S + b, next, lr, acc);
      const aLoss = acc.aN ? ` α-loss ${(acc.aLoss / acc.aN).toFixed(3)}` : '';
      bar.update(b + 1, `${phaseAt(s, epoch * S + b)} loss ${(acc.loss / acc.n).toFixed(3)}${aLoss}`);
      await s.run.boundary(s.done, position(s, s.done), () => saveSearchCheckpoint(s, s.done, acc));
      if (b + 1 === S) break;
      if (o.checkpointEvery && s.done % o.checkpointEvery === 0) saveSearchCheckpoint(s, s.done, acc);
      if (o.stopAfterSteps !== undefined && s.done >= o.stopAfterSteps) {
        saveSearchCheckpoint(s, s.done, acc);
        return true;
      }
    }
  } finally {
    await wIt.return(undefined);
  }
  await logEpoch(s, epoch, acc, lr, (Date.now() - t0) / 1000);
  saveSearchCheckpoint(s, (epoch + 1) * S);
  await s.run.boundary((epoch + 1) * S, position(s, (epoch + 1) * S), () => undefined);
  return o.stopAfterSteps !== undefined && (epoch + 1) * S >= o.stopAfterSteps && epoch + 1 < s.cfg.epochs;
}

function timingList(s: Search): SswpResult['timing'] {
  return [...s.timing.entries()]
    .map(([gated, t]) => ({ gated, wSeconds: t.w / Math.max(t.n, 1), aSeconds: t.an ? t.a / t.an : 0, steps: t.n }))
    .sort((a, b) => b.gated - a.gated);
}

/** The end of the search: prune what is left, recompute BN statistics, write the outputs. */
async function finishSearch(s: Search): Promise<SswpResult> {
  const { o, cfg } = s;
  const rest = s.sched.order.filter((c) => s.pruned[c] === null);
  if (rest.length) pruneCells(s, rest, s.sched.total);
  await writeCells(s);
  const cells = currentCells(s);
  const fin = await finalizeNetwork({
    out: o.out,
    C: s.net.C,
    layers: s.net.layers,
    stem: s.net.stem,
    cells,
    params: s.st.params,
    ds: s.full,
    norm: { mean: s.wLoader.mean, std: s.wLoader.std },
    objective: cfg.objective,
    rows: s.rows,
    bnBatches: o.bnBatches ?? SSWP_DEFAULTS.bnBatches,
    seed: cfg.seed,
    ep: o.ep,
    projectionDim: cfg.projectionDim,
    config: { ...cfg },
  });
  const timing = timingList(s);
  logRecord(s, {
    type: 'final',
    steps: s.sched.total,
    model: 'model.onnx',
    final: 'final',
    cells,
    phases: s.phaseSteps,
    timing,
  });
  const nodes = s.firstNodes ?? { w: 0, a: 0 };
  return { ...fin, stopped: false, steps: s.sched.total, timing, nodes, phases: s.phaseSteps };
}

function stoppedResult(s: Search): SswpResult {
  const arch = sswpArch({
    C: s.net.C,
    layers: s.net.layers,
    stem: s.net.stem,
    input: [s.full.c, s.full.h, s.full.w],
    cells: currentCells(s),
    pruned: s.pruned.map((c) => c !== null),
  });
  const base = { timing: timingList(s), nodes: s.firstNodes ?? { w: 0, a: 0 }, phases: s.phaseSteps };
  return { arch, modelPath: '', finalDir: '', stopped: true, steps: s.done, ...base };
}

/**
 * An SSWP-NAS search (config.ts holds the settings) in the run directory
 * `o.out`, with the run lifecycle of train/runtime/run.ts.
 */
export async function runSswpSearch(o: SswpOptions): Promise<SswpResult> {
  return Run.execute(SSWP_RUN, { ...o, config: sswpConfig(o) }, (run) => searchIn(o, run));
}

/** The search in an opened run directory. */
async function searchIn(o: SswpOptions, run: Run<SswpConfig>): Promise<SswpResult> {
  const s = await openSearch(o, run);
  let stopped = false;
  try {
    for (let epoch = Math.floor(s.startStep / s.S); epoch < s.cfg.epochs && !stopped; epoch++)
      stopped = await runEpoch(s, epoch);
    run.endLoop();
  } finally {
    await s.runners?.release();
    await s.wLoader.close();
    await s.aLoader.close();
    await s.pool.close();
  }
  const r = stopped ? stoppedResult(s) : await finishSearch(s);
  if (o.report !== false && !stopped) await tryWriteRunReport(o.out);
  return { ...r, skipped: skipReport([s.full], [s.wLoader, s.aLoader]) };
}

/**
 * Recompute BN statistics of the discretized network and write model.onnx,
 * final/ (checkpoint) and cells.json to `out`.
 */
export async function finalizeNetwork(o: {
  out: string;
  C: number;
  layers: number;
  stem?: StemKind;
  cells: CellOps[];
  params: ParamValues;
  ds: Dataset;
  norm: { mean: number[]; std: number[] };
  objective: Objective;
  rows: number;
  bnBatches: number;
  seed: number;
  ep?: EP;
  projectionDim: number;
  config: Record<string, unknown>;
}): Promise<{ arch: SswpArch; modelPath: string; finalDir: string }> {
  const net = { C: o.C, layers: o.layers, cells: o.cells, stem: o.stem };
  const input = [o.ds.c, o.ds.h, o.ds.w];
  const withHead = o.objective === 'simclr';
  const train = buildSswpNetwork({
    ...net,
    batch: 2,
    input,
    training: true,
    projection: withHead,
    projectionDim: o.projectionDim,
  });
  const values: ParamValues = new Map(o.params);
  // searched with plain BN: the final network's γ = 1, β = 0 (the same function)
  for (const p of train.g.params.values()) {
    if (p.role !== 'weight' || values.has(p.name)) continue;
    if (p.init.kind !== 'ones' && p.init.kind !== 'zeros')
      throw new TrainError(`the search left parameter '${p.name}' of the final network untrained`);
    values.set(p.name, new Float32Array(numel(p.shape)).fill(p.init.kind === 'ones' ? 1 : 0));
  }
  const stats = await recomputeBnStats(net, values, o.ds, o.norm, {
    rows: o.rows,
    batches: o.bnBatches,
    seed: o.seed,
    ep: o.ep,
  });
  for (const [k, v] of stats) values.set(k, v);
  const arch = sswpArch({ C: o.C, layers: o.layers, stem: o.stem, input, cells: o.cells });
  const m = buildSswpNetwork({
    ...net,
    batch: 1,
    input,
    training: false,
    projection: withHead,
    projectionDim: o.projectionDim,
  });
  m.g.output(m.features, 'features');
  if (withHead) m.g.output(m.projection!, 'projection');
  m.g.prune();
  m.g.meta.set('nas_onnx.kind', 'sswp-network');
  m.g.meta.set('nas_onnx.sswp_cells', JSON.stringify(arch));
  m.g.meta.set('nas_onnx.config', JSON.stringify({ C: o.C, layers: o.layers, input, objective: o.objective }));
  const modelValues = pickParams(m.g, values);
  const modelPath = join(o.out, 'model.onnx');
  writeFileAtomic(modelPath, serializeInference(m.g, modelValues, deployMeta(o.ds, o.norm, 'features')));
  writeFileAtomic(join(o.out, 'cells.json'), sswpArchJson(arch));
  // the checkpoint: the network's weights and statistics (projection head included) and α
  const tensors = new Map<string, Float32Array>();
  for (const name of new Set([...train.g.params.keys(), ...modelValues.keys()]))
    if (values.has(name)) tensors.set(`param:${name}`, values.get(name)!);
  for (const [k, v] of o.params) if (k.startsWith('alpha_cell')) tensors.set(`param:${k}`, v);
  const finalDir = join(o.out, 'final');
  saveCheckpoint(
    finalDir,
    { step: 0, meta: { kind: 'sswp-network', arch, normalization: o.norm, config: o.config }, tensors },
    1,
  );
  return { arch, modelPath, finalDir };
}

/** The searched network of a run directory: its cells.json and final checkpoint. */
export function loadSswpNetwork(dir: string): {
  arch: SswpArch;
  params: ParamValues;
  normalization: { mean: number[]; std: number[] };
  config: Record<string, unknown>;
} {
  const ck = latestCheckpoint(join(dir, 'final'));
  if (!ck)
    throw new TrainError(
      `${dir} holds no finished SSWP search (no ${join(dir, 'final')} checkpoint; finish the search first)`,
    );
  const c = loadCheckpoint(ck);
  if (c.meta.kind !== 'sswp-network') throw new TrainError(`${ck} is not an SSWP network checkpoint`);
  const arch = parseSswpArch(c.meta.arch, ck);
  const params: ParamValues = new Map();
  for (const [k, v] of c.tensors) if (k.startsWith('param:')) params.set(k.slice(6), v);
  let cellsFile: SswpArch | null = null;
  try {
    cellsFile = parseSswpArch(JSON.parse(readFileSync(join(dir, 'cells.json'), 'utf8')), join(dir, 'cells.json'));
  } catch {
    cellsFile = null;
  }
  if (cellsFile && JSON.stringify(cellsFile.cells.map((x) => x.ops)) !== JSON.stringify(arch.cells.map((x) => x.ops))) {
    throw new TrainError(`${join(dir, 'cells.json')} does not match the final checkpoint's cells`);
  }
  return {
    arch,
    params,
    normalization: c.meta.normalization as { mean: number[]; std: number[] },
    config: c.meta.config as Record<string, unknown>,
  };
}
