/**
 * Label-free DARTS search (UnNAS): the supernet is trained with a pretext
 * objective (rot, col, jig, simclr — or cls for comparison). Each step: one α
 * step on a batch of the architecture half, then one w step on a batch of the
 * weight half (darts.md). First order: ∇α L_val(w, α). Second order: the
 * unrolled step with the finite-difference Hessian-vector product.
 *
 * The step graphs (wStep, alphaGrad, allGrad) come from graph/nets/search.ts;
 * α (2 × 14 × 8 floats) is updated on the host with Adam.
 *
 * Runs write a run directory: config.json, log.jsonl (one record per epoch),
 * checkpoints/ (atomic; exact resume), genotype.json and genotype.svg (derived
 * every epoch). A run that is not resumed starts the directory afresh (its old
 * log and checkpoints are removed).
 *
 * Determinism: batches are pure functions of (seed, epoch, batch index), the
 * checkpoints hold every parameter, optimizer slot, step counter and the
 * running sums of the epoch in progress, and ORT's CPU kernels are
 * deterministic for a given thread count: a run resumed from a checkpoint ends
 * bit-identical to an uninterrupted one (same machine and thread count).
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type * as ort from 'onnxruntime-node';
import { deriveGenotype, genotypeJson, PRIMITIVES, type Genotype, type OpName } from '../../graph/genotype.js';
import {
  buildSearchGraphs,
  isArch,
  isWeight,
  type SearchGraphIo,
  type SearchGraphNodes,
  type SearchGraphOptions,
  type SgdSpec,
} from '../../graph/nets/search.js';
import type { Objective, TaskShape } from '../../graph/nets/tasks.js';
import { latestCheckpoint, loadCheckpoint, saveCheckpoint, type Checkpoint } from '../runtime/checkpoint.js';
import {
  StepRunner,
  cosineLr,
  newTrainState,
  stateFromTensors,
  stateTensors,
  type TrainState,
} from '../runtime/engine.js';
import { configDiff } from '../runtime/config.js';
import { writeFileAtomic } from '../runtime/fsutil.js';
import { initParams } from '../runtime/params.js';
import { Progress } from '../runtime/progress.js';
import { f32, i64, type EP, type SessionOptions } from '../runtime/session.js';
import { appendJsonLine } from '../runtime/log.js';
import { TrainError } from '../runtime/errors.js';
import { genotypeSvg } from '../report/genotype-svg.js';
import { EvalNetCoster, evalNetShape, type EvalNetCost, type EvalNetShape } from '../report/cost.js';
import {
  type Batch,
  DataLoader,
  DataPool,
  dartsSplit,
  type LoadOptions,
  limitDataset,
  loadDataset,
  runDataDir,
  type SkipReport,
  skipReport,
} from '../data/index.js';

/** The optimizers of a bilevel search: SGD on the weights (cosine lr), Adam on α; defaults per method. */
export interface BilevelOptimizerOptions {
  lr?: number;
  lrMin?: number;
  momentum?: number;
  weightDecay?: number;
  clip?: number;
  archLr?: number;
  archBeta1?: number;
  archBeta2?: number;
  archWeightDecay?: number;
}

export interface SearchOptions extends BilevelOptimizerOptions {
  objective: Objective;
  /** Dataset name or path (train/data loadDataset spec). */
  data: string;
  out: string;
  epochs: number;
  batch: number;
  C: number;
  layers: number;
  order: 1 | 2;
  seed?: number;
  ep?: EP;
  workers?: number;
  limit?: number;
  /** Crop size: image folders and lists are streamed from disk as size×size crops (train/data/stream.ts). */
  size?: number;
  /** Skip unreadable images (reported in the result) instead of failing. */
  skipCorrupt?: boolean;
  /** Checkpoint every N steps (besides epoch ends); 0 = epoch ends only. */
  checkpointEvery?: number;
  resume?: boolean;
  /** Stop (after checkpointing) once this many steps have run in total: for tests and time-boxed runs. */
  stopAfterSteps?: number;
  quiet?: boolean;
  primitives?: readonly OpName[];
  /** ORT intra-op threads on CPU (default: ORT's, the physical cores). Results are reproducible for a given count. */
  threads?: number;
  /** ORT graph optimization level of the step graphs (default: StepRunner's, 'disabled'). */
  optimization?: SessionOptions['optimization'];
  /** Keep ORT's CPU memory arena per step graph (default false: the graphs' peaks are not held at once). */
  cpuMemArena?: boolean;
  /** Each epoch's genotype's evaluation network to cost in the log (default: train's defaults); false: none. */
  evalNet?: Partial<Pick<EvalNetShape, 'net' | 'C' | 'layers'>> | false;
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
}

export interface SearchResult {
  genotype: Genotype;
  history: SearchEpochRecord[];
  alphas: { normal: Float32Array; reduce: Float32Array };
  nodes: SearchGraphNodes;
  stepSeconds: number;
  stopped: boolean;
  /** Unreadable images skipped (with skipCorrupt). */
  skipped: SkipReport;
}

export function searchConfig(o: SearchOptions): Record<string, unknown> {
  return {
    objective: o.objective,
    data: o.data,
    epochs: o.epochs,
    batch: o.batch,
    C: o.C,
    layers: o.layers,
    order: o.order,
    seed: o.seed ?? 0,
    limit: o.limit ?? null,
    // recorded when set (configs of runs from before streaming have no such key)
    ...(o.size !== undefined ? { size: o.size } : {}),
    lr: o.lr ?? 0.025,
    lrMin: o.lrMin ?? 0.001,
    momentum: o.momentum ?? 0.9,
    weightDecay: o.weightDecay ?? 3e-4,
    clip: o.clip ?? 5,
    archLr: o.archLr ?? 3e-4,
    archBeta1: o.archBeta1 ?? 0.5,
    archBeta2: o.archBeta2 ?? 0.999,
    archWeightDecay: o.archWeightDecay ?? 1e-3,
    primitives: o.primitives ?? PRIMITIVES,
  };
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
  release(): Promise<void>;
}

/** The search's step graphs and how their ORT sessions run. */
export interface SearchRunnerOptions extends SearchGraphOptions {
  ep?: EP;
  threads?: number;
  optimization?: SessionOptions['optimization'];
  cpuMemArena?: boolean;
}

/** Build the step graphs of a search (exactly those runSearch runs) and start their sessions. */
export async function createSearchRunners(task: TaskShape, o: SearchRunnerOptions): Promise<SearchRunners> {
  const gs = buildSearchGraphs(task, o);
  const session = { ep: o.ep, threads: o.threads, optimization: o.optimization, cpuMemArena: o.cpuMemArena ?? false };
  const started: StepRunner[] = [];
  try {
    const w = await StepRunner.create(gs.w.f.g, gs.w.info, gs.sgd, { ...session, group: 'w' });
    started.push(w);
    const alpha = await StepRunner.create(gs.alpha.f.g, gs.alpha.info, null, { ...session, group: 'alpha_grad' });
    started.push(alpha);
    const all = gs.all
      ? await StepRunner.create(gs.all.f.g, gs.all.info, null, { ...session, group: 'all_grad' })
      : null;
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
      release: async () => {
        await w.release();
        await alpha.release();
        await all?.release();
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
 * One search step (darts.md): the α gradient on the architecture batch (first
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

export async function runSearch(o: SearchOptions): Promise<SearchResult> {
  const seed = o.seed ?? 0;
  const cfg = searchConfig(o);
  const prims = o.primitives ?? PRIMITIVES;
  // --resume is checked before anything expensive (data, graphs, sessions)
  let resumeFrom: Checkpoint | null = null;
  if (o.resume) {
    const dir = latestCheckpoint(o.out);
    if (!dir) throw new TrainError(`--resume: no checkpoint in ${o.out}`);
    resumeFrom = loadCheckpoint(dir);
    if (resumeFrom.meta.kind !== 'search')
      throw new TrainError(
        `--resume: ${o.out} is not a DARTS search run (checkpoint kind '${String(resumeFrom.meta.kind)}')`,
      );
    const diff = configDiff((resumeFrom.meta.config ?? {}) as Record<string, unknown>, cfg);
    if (diff) throw new TrainError(`--resume: ${o.out} was searched with other settings (${diff})`);
  }
  // the readers stop after `limit` images (a quick run on a large folder does not decode all of it);
  // a streamed set's file index is kept in the run directory, so a resumed run does not rescan the disk
  const full = limitDataset(await loadDataset(o.data, searchDataOptions(o, !resumeFrom)), o.limit);
  mkdirSync(o.out, { recursive: true });
  const logPath = join(o.out, 'log.jsonl');
  if (!resumeFrom) {
    // a fresh run owns the directory: no records or checkpoints of an earlier run stay behind
    rmSync(logPath, { force: true });
    rmSync(join(o.out, 'checkpoints'), { recursive: true, force: true });
  }
  writeFileAtomic(join(o.out, 'config.json'), `${JSON.stringify(cfg, null, 2)}\n`);
  const coster = o.evalNet === false ? null : new EvalNetCoster(evalNetShape(o.evalNet, full), { ep: o.ep });
  const halves = dartsSplit(full, { seed });
  const pool = new DataPool({ workers: o.workers });
  const taskOpts = { name: o.objective };
  const wLoader = new DataLoader(halves.weights, { task: taskOpts, batchSize: o.batch, seed, dropLast: true, pool });
  const aLoader = new DataLoader(halves.arch, {
    task: taskOpts,
    batchSize: o.batch,
    seed: seed + 1,
    dropLast: true,
    pool,
    mean: wLoader.mean,
    std: wLoader.std,
  });
  const task = wLoader.task;
  const steps = Math.min(wLoader.batchesPerEpoch, aLoader.batchesPerEpoch);
  if (steps < 1) {
    await pool.close();
    throw new TrainError(`--batch ${o.batch} is larger than half of the ${full.n} images: nothing to search on`);
  }
  let runners: SearchRunners;
  try {
    runners = await createSearchRunners(task, {
      C: o.C,
      layers: o.layers,
      batchRows: task.xShape(o.batch)[0]!,
      order: o.order,
      primitives: prims,
      momentum: cfg.momentum as number,
      weightDecay: cfg.weightDecay as number,
      clip: cfg.clip as number,
      ep: o.ep,
      threads: o.threads,
      optimization: o.optimization,
      cpuMemArena: o.cpuMemArena,
    });
  } catch (e) {
    await pool.close();
    throw e;
  }
  const { archNames } = runners;
  const archOpt: HostAdam = {
    lr: cfg.archLr as number,
    beta1: cfg.archBeta1 as number,
    beta2: cfg.archBeta2 as number,
    eps: 1e-8,
    weightDecay: cfg.archWeightDecay as number,
  };

  let st: TrainState;
  let startEpoch = 0;
  let startBatch = 0;
  let totalSteps = 0;
  const history: SearchEpochRecord[] = [];
  /** Running sums of the current epoch's step results (checkpointed mid-epoch, so a resumed epoch logs the same). */
  type EpochSums = { tl: number; tc: number; vl: number; vc: number; n: number };
  let acc: EpochSums = { tl: 0, tc: 0, vl: 0, vc: 0, n: 0 };
  if (resumeFrom) {
    const c = resumeFrom;
    st = stateFromTensors(c.tensors);
    st.steps = { ...(c.meta.steps as Record<string, number>) };
    startEpoch = c.meta.epoch as number;
    startBatch = c.meta.batch as number;
    totalSteps = c.step;
    history.push(...(c.meta.history as SearchEpochRecord[]));
    if (startBatch > 0 && c.meta.sums) acc = { ...(c.meta.sums as EpochSums) };
    // the log holds exactly the checkpoint's epochs (a run killed after logging an epoch but
    // before its checkpoint would otherwise log that epoch twice)
    writeFileAtomic(logPath, history.map((r) => `${JSON.stringify(r)}\n`).join(''));
  } else {
    st = newTrainState(initParams(runners.w.graph, seed));
    for (const n of archNames) {
      st.opt.set(`${n}@exp_avg`, new Float32Array(st.params.get(n)!.length));
      st.opt.set(`${n}@exp_avg_sq`, new Float32Array(st.params.get(n)!.length));
    }
  }
  const save = (epoch: number, batch: number): void => {
    saveCheckpoint(o.out, {
      step: totalSteps,
      meta: { kind: 'search', config: cfg, epoch, batch, steps: st.steps, sums: batch > 0 ? acc : null, history },
      tensors: stateTensors(st),
    });
  };
  const currentGenotype = (): Genotype =>
    deriveGenotype(st.params.get(archNames[0]!)!, st.params.get(archNames[1]!)!, prims);

  const lr0 = cfg.lr as number;
  const lrMin = cfg.lrMin as number;
  let stopped = false;
  let stepTime = 0;
  let timedSteps = 0;
  try {
    for (let epoch = startEpoch; epoch < o.epochs && !stopped; epoch++) {
      const t0 = Date.now();
      const lr = cosineLr(lr0, lrMin, epoch, o.epochs);
      const first = epoch === startEpoch ? startBatch : 0;
      const bar = new Progress(`search ${o.objective} epoch ${epoch + 1}/${o.epochs}`, steps, o.quiet);
      if (epoch !== startEpoch || startBatch === 0) acc = { tl: 0, tc: 0, vl: 0, vc: 0, n: 0 };
      const wIt = wLoader.epoch(epoch, { startBatch: first });
      const aIt = aLoader.epoch(epoch, { startBatch: first });
      for (let b = first; b < steps; b++) {
        const wb = (await wIt.next()).value as Batch;
        const ab = (await aIt.next()).value as Batch;
        const ts = Date.now();
        const r = await searchStep(runners, st, batchFeeds(wb, runners.hasLabels), batchFeeds(ab, runners.hasLabels), {
          order: o.order,
          lr,
          arch: archOpt,
        });
        if (!Number.isFinite(r.trainLoss) || !Number.isFinite(r.valLoss))
          throw new TrainError(`loss became non-finite at epoch ${epoch + 1} step ${b + 1}: lower --lr`);
        stepTime += (Date.now() - ts) / 1000;
        timedSteps++;
        acc.tl += r.trainLoss;
        acc.tc += r.trainCorrect;
        acc.vl += r.valLoss;
        acc.vc += r.valCorrect;
        acc.n++;
        totalSteps++;
        bar.update(b + 1, `loss ${(acc.tl / acc.n).toFixed(3)} val ${(acc.vl / acc.n).toFixed(3)}`);
        const atEnd = b + 1 === steps;
        if (!atEnd && o.checkpointEvery && totalSteps % o.checkpointEvery === 0) save(epoch, b + 1);
        if (o.stopAfterSteps !== undefined && totalSteps >= o.stopAfterSteps && !atEnd) {
          save(epoch, b + 1);
          stopped = true;
          break;
        }
      }
      await wIt.return(undefined);
      await aIt.return(undefined);
      if (stopped) break;
      const geno = currentGenotype();
      const an = st.params.get(archNames[0]!)!;
      const ar = st.params.get(archNames[1]!)!;
      const rec: SearchEpochRecord = {
        epoch: epoch + 1,
        lr,
        train_loss: acc.tl / acc.n,
        train_acc: acc.tc / (acc.n * runners.predictions),
        val_loss: acc.vl / acc.n,
        val_acc: acc.vc / (acc.n * runners.predictions),
        seconds: (Date.now() - t0) / 1000,
        genotype: geno,
        alpha_normal: rows2d(softmaxRows(an, prims.length), prims.length),
        alpha_reduce: rows2d(softmaxRows(ar, prims.length), prims.length),
        ...(coster ? { eval_net: await coster.cost(geno) } : {}),
      };
      history.push(rec);
      appendJsonLine(logPath, rec);
      writeFileAtomic(join(o.out, 'genotype.json'), genotypeJson({ name: `search_${o.objective}`, ...geno }));
      writeFileAtomic(join(o.out, 'genotype.svg'), genotypeSvg(geno, `${o.objective} search, epoch ${epoch + 1}`));
      if (!o.quiet)
        process.stderr.write(
          `epoch ${epoch + 1}: ${o.objective} loss ${rec.train_loss.toFixed(3)} acc ${(100 * rec.train_acc).toFixed(1)}% | val loss ${rec.val_loss.toFixed(3)} acc ${(100 * rec.val_acc).toFixed(1)}% | ${JSON.stringify(geno.normal)}\n`,
        );
      save(epoch + 1, 0);
      if (o.stopAfterSteps !== undefined && totalSteps >= o.stopAfterSteps && epoch + 1 < o.epochs) stopped = true;
    }
  } finally {
    await wLoader.close();
    await aLoader.close();
    await pool.close();
    await runners.release();
  }
  if (!existsSync(join(o.out, 'genotype.json'))) {
    // stopped before the first epoch ended: still leave the current genotype
    const geno = currentGenotype();
    writeFileAtomic(join(o.out, 'genotype.json'), genotypeJson({ name: `search_${o.objective}`, ...geno }));
    writeFileAtomic(join(o.out, 'genotype.svg'), genotypeSvg(geno, `${o.objective} search, step ${totalSteps}`));
  }
  return {
    genotype: currentGenotype(),
    history,
    alphas: { normal: st.params.get(archNames[0]!)!, reduce: st.params.get(archNames[1]!)! },
    nodes: runners.nodes,
    stepSeconds: stepTime / Math.max(timedSteps, 1),
    stopped,
    skipped: skipReport([full], [wLoader, aLoader]),
  };
}

/** How a search reads its data; a fresh run rescans a streamed set (its index is kept in <out>/data). */
export function searchDataOptions(
  o: Pick<SearchOptions, 'out' | 'limit' | 'size' | 'skipCorrupt'>,
  fresh: boolean,
): LoadOptions {
  const indexDir = o.size === undefined ? undefined : runDataDir(o.out, fresh);
  return { split: 'train', limit: o.limit, crop: o.size, skipCorrupt: o.skipCorrupt, indexDir };
}

/**
 * DARTS second-order α gradient (darts.md):
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
