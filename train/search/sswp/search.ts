/**
 * SSWP-NAS search (shared/spec/sswp.md): a proxy-free, label-free search of
 * the target-size network whose searched weights are kept ("concomitant
 * weights").
 *
 * The network (graph/nets/sswp.ts) has one α [14 × 7] per cell, held on the
 * host (they are not graph parameters: each step feeds the sampled 0/1 gates
 * instead, see the design note there). Per step, on the DARTS split of the
 * training images (one half trains w, the other α; as the reference release):
 *  - α step (bilevel and prune phases, gated cells only): gates sampled
 *    without op dropout, gate gradients from the α-gradient graph on an
 *    architecture batch, α gradients by the ProxylessNAS estimator
 *    (train/sswp-sampler.ts), host Adam (lr 1e-3, betas (0, 0.99)), and in
 *    two-path mode the rescaling of the involved α;
 *  - w step (every step): gates sampled with op dropout after warm-up; the
 *    in-graph SGD step (lr 0.025 cosine to 0 per epoch, momentum 0.9, wd
 *    4e-5, clipping 5); then the parameters and momentum of the ops that were
 *    not active are put back as they were (PyTorch skips parameters whose
 *    grad is None: no weight decay, no momentum for them).
 * Phases (train/sswp-schedule.ts): warm-up → bilevel → progressive pruning.
 * Pruning a cell discretizes it by DARTS's rule (per node the two incoming
 * edges with the strongest op, that op on each) and freezes its α; the step
 * graphs are then rebuilt with that cell discretized (its kept ops only, same
 * parameter names), so a step gets cheaper with every pruned cell.
 *
 * All randomness is seeded: weights from `seed`, batches from the loaders'
 * streams, and the paths of step t from `Rng.derive(seed, SAMPLE_STREAM, t, k)`
 * (k = 0 for the α step, 1 for the w step), so a run resumed from a checkpoint
 * draws exactly what the uninterrupted run draws.
 *
 * At the end: every cell is discretized; BN running statistics, not tracked
 * during search, are recomputed with forward passes of the discretized network
 * in training form over `bnBatches` batches of un-augmented training images
 * (feeding zero running statistics to the graph's momentum-0.1 update gives
 * 0.1 × each batch's statistics; their mean over the batches is PyTorch's
 * cumulative average, the unbiased variance for var); then the run directory
 * receives:
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
import { mkdirSync, readFileSync } from 'node:fs';
import type * as ort from 'onnxruntime-node';
import { join } from 'node:path';
import { EDGES, deriveCell } from '../../../graph/genotype.js';
import { Graph, numel, type Param, type Value } from '../../../graph/ir.js';
import { Rng } from '../../../graph/rng.js';
import { serialize } from '../../../graph/onnx.js';
import { flatten, globalAvgPool } from '../../../graph/ops/index.js';
import { Layers } from '../../../graph/nets/layers.js';
import { classifierHead } from '../../../graph/nets/heads.js';
import { taskHead, type Objective, type TaskShape } from '../../../graph/nets/tasks.js';
import {
  NUM_OPS,
  SSWP_OPS,
  opKey,
  parseSswpArch,
  sswpArch,
  sswpArchJson,
  sswpTrunk,
  type CellOps,
  type SswpArch,
  type SswpTrunk,
} from '../../../graph/nets/sswp.js';
import { assembleStep, type OptimizerSpec } from '../../../graph/training.js';
import { latestCheckpoint, loadCheckpoint, saveCheckpoint } from '../../runtime/checkpoint.js';
import {
  ForwardRunner,
  StepRunner,
  cosineLr,
  newTrainState,
  stateFromTensors,
  stateTensors,
  type StepResult,
  type TrainState,
} from '../../runtime/engine.js';
import { writeFileAtomic } from '../../runtime/fsutil.js';
import { initParams, pickParams, type ParamValues } from '../../runtime/params.js';
import { Progress } from '../../runtime/progress.js';
import { bool, f32, toF32, type EP, type SessionOptions } from '../../runtime/session.js';
import { appendJsonLine } from '../../runtime/log.js';
import { TrainError } from '../../runtime/errors.js';
import { cellsSvg } from '../../report/genotype-svg.js';
import { adamUpdate, batchFeeds, type BilevelOptimizerOptions } from '../darts.js';
import {
  alphaGradients,
  rescaleInvolved,
  runMask,
  sampleGates,
  type GateSample,
  type OpDropout,
  type SamplingMode,
} from './sampler.js';
import { makeSchedule, phaseOf, type Phase, type PruneMode, type Schedule } from './schedule.js';
import {
  DataLoader,
  DataPool,
  dartsSplit,
  limitDataset,
  loadDataset,
  type Batch,
  type Dataset,
  type PretextTask,
} from '../../data/index.js';

/** Rng.derive label of the path samples. */
export const SAMPLE_STREAM = 0x55a9;

export interface SswpOptions extends BilevelOptimizerOptions {
  objective?: Objective;
  /** Dataset name or path (train/data loadDataset spec). */
  data: string;
  out: string;
  epochs: number;
  /** Source images per batch (SimCLR: 2 views each). */
  batch: number;
  C: number;
  layers: number;
  seed?: number;
  ep?: EP;
  workers?: number;
  limit?: number;
  prune?: PruneMode;
  /** Phase fractions (fpp/bpp: 3, none: 2). */
  split?: number[];
  sampling?: SamplingMode;
  /** Skip-connect dropout probability in weight steps after warm-up (0.2). */
  opDropout?: number;
  /** Pooling dropout probability in weight steps after warm-up (0). */
  poolDropout?: number;
  /** Affine BN in the searched ops (default true); false: plain BN, the final network gets γ = 1, β = 0. */
  affine?: boolean;
  /** SimCLR temperature (0.5) and projection size (128). */
  temperature?: number;
  projectionDim?: number;
  /** Batches of un-augmented images for the final BN statistics (20). */
  bnBatches?: number;
  checkpointEvery?: number;
  resume?: boolean;
  stopAfterSteps?: number;
  quiet?: boolean;
  /** Per-step records in log.jsonl (default true). */
  stepLog?: boolean;
  /**
   * ORT graph optimization level of the step graphs (default 'disabled'):
   * session creation grows about quadratically with the node count at the
   * higher levels (3 gated cells, C=4: 15 s disabled, 180 s 'all', same step
   * time), and the gated graphs are large.
   */
  optimization?: SessionOptions['optimization'];
}

export function sswpConfig(o: SswpOptions): Record<string, unknown> {
  const prune = o.prune ?? 'fpp';
  return {
    method: 'sswp',
    objective: o.objective ?? 'simclr',
    data: o.data,
    epochs: o.epochs,
    batch: o.batch,
    C: o.C,
    layers: o.layers,
    seed: o.seed ?? 0,
    limit: o.limit ?? null,
    prune,
    split: o.split ?? null,
    sampling: o.sampling ?? 'two-path',
    opDropout: o.opDropout ?? 0.2,
    poolDropout: o.poolDropout ?? 0,
    affine: o.affine ?? true,
    lr: o.lr ?? 0.025,
    lrMin: o.lrMin ?? 0,
    momentum: o.momentum ?? 0.9,
    weightDecay: o.weightDecay ?? 4e-5,
    clip: o.clip ?? 5,
    archLr: o.archLr ?? 1e-3,
    archBeta1: o.archBeta1 ?? 0,
    archBeta2: o.archBeta2 ?? 0.99,
    archWeightDecay: o.archWeightDecay ?? 0,
    temperature: o.temperature ?? 0.5,
    projectionDim: o.projectionDim ?? 128,
  };
}

// ---- graphs ------------------------------------------------------------------------

export interface SswpForward {
  g: Graph;
  trunk: SswpTrunk;
  loss: Value;
  metrics: Record<string, Value>;
  hasLabels: boolean;
  predictions: number;
}

export interface SswpNetShape {
  C: number;
  layers: number;
  /** null = gated cell. */
  cells: readonly (CellOps | null)[];
  /** Affine BN outside the stem and pools (default true; graph/nets/sswp.ts). */
  affine?: boolean;
  /** If-gated ops that run only when sampled (default LEVERS.ifGates; graph/nets/sswp.ts). */
  ifGates?: boolean;
}

/** The SSWP network + task head in training form (BN batch statistics, no running statistics), on `rows` rows. */
export function buildSswpForward(
  task: TaskShape,
  o: SswpNetShape & { rows: number; temperature?: number; projectionDim?: number; trackRunningStats?: boolean },
): SswpForward {
  const g = new Graph(`sswp_${task.name}`);
  g.training = true;
  const L = new Layers(g, { trackRunningStats: !!o.trackRunningStats });
  const x = g.input('x', 'float32', [o.rows, ...task.inputShape]);
  const trunk = sswpTrunk(L, x, { C: o.C, layers: o.layers, cells: o.cells, affine: o.affine, ifGates: o.ifGates });
  const head = taskHead(L, trunk.features, task, { temperature: o.temperature, projectionDim: o.projectionDim });
  return { g, trunk, loss: head.loss, metrics: head.metrics, hasLabels: !!head.labels, predictions: head.predictions };
}

/**
 * The discretized network for images of `input` [C,H,W]: with `head:
 * 'projection'` the SimCLR projection MLP (parameter names as in search), with
 * `classes` a fresh linear classifier (`classifier/…`). Inference form unless
 * `training`.
 */
export function buildSswpNetwork(o: {
  C: number;
  layers: number;
  cells: readonly CellOps[];
  batch: number;
  input: readonly number[];
  training: boolean;
  classes?: number;
  /** Without `classes`: build the SimCLR projection head (default true). */
  projection?: boolean;
  projectionDim?: number;
}): { g: Graph; x: Value; features: Value; logits: Value | null; projection: Value | null } {
  const g = new Graph('sswp_network');
  g.training = o.training;
  const L = new Layers(g, { trackRunningStats: true });
  const x = g.input('x', 'float32', [o.batch, ...o.input]);
  const trunk = sswpTrunk(L, x, { C: o.C, layers: o.layers, cells: o.cells });
  const pooled = flatten(g, globalAvgPool(g, trunk.features), 1);
  let projection: Value | null = null;
  let logits: Value | null = null;
  if (o.classes) logits = classifierHead(L, trunk.features, o.classes);
  else if (o.projection !== false) {
    const f = pooled.shape[1]!;
    projection = L.scope('projection', () => {
      const h = L.relu(L.scope('0', () => L.linear(pooled, f)));
      return L.scope('2', () => L.linear(h, o.projectionDim ?? 128));
    });
  }
  return { g, x, features: pooled, logits, projection };
}

const isWeight = (p: Param): boolean => p.role === 'weight';

/** The step graphs of one prune state. */
class Runners {
  private constructor(
    readonly cells: (CellOps | null)[],
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
    shape: SswpNetShape & { rows: number; temperature: number; projectionDim: number },
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

// ---- BN statistics -----------------------------------------------------------------

/** Rows `rows` of a dataset as a normalized NCHW batch (no augmentation). */
export function plainBatch(
  ds: Dataset,
  rows: ArrayLike<number>,
  mean: readonly number[],
  std: readonly number[],
): Float32Array {
  const per = ds.c * ds.h * ds.w;
  const hw = ds.h * ds.w;
  const x = new Float32Array(rows.length * per);
  for (let i = 0; i < rows.length; i++) {
    const base = rows[i]! * per;
    for (let ch = 0; ch < ds.c; ch++) {
      const m = mean[ch]!;
      const s = std[ch]!;
      for (let p = 0; p < hw; p++) x[i * per + ch * hw + p] = (ds.images[base + ch * hw + p]! / 255 - m) / s;
    }
  }
  return x;
}

/**
 * BN running statistics of a discretized network, recomputed with forward
 * passes in training form over `batches` batches of `rows` un-augmented images
 * (seeded choice): the mean of the per-batch statistics (running var: unbiased).
 * Returns the running_mean / running_var values by parameter name.
 */
export async function recomputeBnStats(
  net: { C: number; layers: number; cells: readonly CellOps[] },
  params: ParamValues,
  ds: Dataset,
  norm: { mean: number[]; std: number[] },
  o: { rows: number; batches: number; seed: number; ep?: EP },
): Promise<ParamValues> {
  const rows = Math.min(o.rows, ds.n);
  const m = buildSswpNetwork({ ...net, batch: rows, input: [ds.c, ds.h, ds.w], training: true });
  for (const [name, v] of m.g.stateUpdates) m.g.output(v, `${name}@new`);
  m.g.prune();
  const runner = await ForwardRunner.create(m.g, { ep: o.ep });
  const state = [...m.g.params.values()].filter((p) => p.role === 'state');
  const sums = new Map(state.map((p) => [p.name, new Float64Array(p.shape[0]!)]));
  const feedParams: ParamValues = new Map();
  for (const p of m.g.params.values())
    feedParams.set(p.name, p.role === 'state' ? new Float32Array(p.shape[0]!) : params.get(p.name)!);
  const order = Rng.derive(o.seed, 0xb57a75).permutation(ds.n);
  const batches = Math.max(1, Math.min(o.batches, Math.floor(ds.n / rows)));
  try {
    for (let b = 0; b < batches; b++) {
      const idx = order.subarray(b * rows, (b + 1) * rows);
      const out = await runner.run(feedParams, {
        x: f32(plainBatch(ds, idx, norm.mean, norm.std), [rows, ds.c, ds.h, ds.w]),
      });
      for (const p of state) {
        const v = toF32(out[`${p.name}@new`]);
        const s = sums.get(p.name)!;
        for (let i = 0; i < v.length; i++) s[i] = s[i]! + v[i]! / 0.1; // fed zeros: output = momentum · batch statistic
      }
    }
  } finally {
    await runner.release();
  }
  const res: ParamValues = new Map();
  for (const [name, s] of sums)
    res.set(
      name,
      Float32Array.from(s, (v) => v / batches),
    );
  return res;
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
}

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

const alphaName = (i: number): string => `alpha_cell${i}`;

export async function runSswpSearch(o: SswpOptions): Promise<SswpResult> {
  const seed = o.seed ?? 0;
  const cfg = sswpConfig(o);
  const prune = cfg.prune as PruneMode;
  const mode = cfg.sampling as SamplingMode;
  const objective = cfg.objective as Objective;
  if (o.layers < 1) throw new TrainError('--layers must be at least 1');
  for (const [k, v] of [
    ['--op-dropout', cfg.opDropout],
    ['--pool-dropout', cfg.poolDropout],
  ] as const) {
    if (!((v as number) >= 0 && (v as number) <= 1))
      throw new TrainError(`${k} must be a probability in [0, 1], got ${v}`);
  }
  makeSchedule({ epochs: o.epochs, stepsPerEpoch: 1, layers: o.layers, prune, split: o.split }); // settings errors before any work
  mkdirSync(o.out, { recursive: true });
  const full = limitDataset(await loadDataset(o.data, { split: 'train' }), o.limit);
  const halves = dartsSplit(full, { seed });
  const pool = new DataPool({ workers: o.workers });
  const wLoader = new DataLoader(halves.weights, {
    task: { name: objective },
    batchSize: o.batch,
    seed,
    dropLast: true,
    pool,
  });
  const aLoader = new DataLoader(halves.arch, {
    task: { name: objective },
    batchSize: o.batch,
    seed: seed + 1,
    dropLast: true,
    pool,
    mean: wLoader.mean,
    std: wLoader.std,
  });
  const task: PretextTask = wLoader.task;
  const taskShape: TaskShape = {
    name: objective,
    numClasses: task.numClasses,
    groupSize: task.groupSize,
    inputShape: task.inputShape,
  };
  const S = Math.min(wLoader.batchesPerEpoch, aLoader.batchesPerEpoch);
  if (S < 1) {
    await pool.close();
    throw new TrainError(`--batch ${o.batch} is larger than half of the ${full.n} images: nothing to search on`);
  }
  const sched: Schedule = makeSchedule({ epochs: o.epochs, stepsPerEpoch: S, layers: o.layers, prune, split: o.split });
  const rows = task.xShape(o.batch)[0]!;
  const sgd: OptimizerSpec = { kind: 'sgd', momentum: cfg.momentum as number, weightDecay: cfg.weightDecay as number };
  const archOpt = {
    lr: cfg.archLr as number,
    beta1: cfg.archBeta1 as number,
    beta2: cfg.archBeta2 as number,
    eps: 1e-8,
    weightDecay: cfg.archWeightDecay as number,
  };
  const dropout: OpDropout = { skip: cfg.opDropout as number, pool: cfg.poolDropout as number };
  const shapeOf = (cells: (CellOps | null)[]) => ({
    C: o.C,
    layers: o.layers,
    cells,
    affine: cfg.affine as boolean,
    rows,
    temperature: cfg.temperature as number,
    projectionDim: cfg.projectionDim as number,
  });
  const logPath = join(o.out, 'log.jsonl');

  // ---- state
  let st: TrainState;
  let pruned: (CellOps | null)[] = new Array<CellOps | null>(o.layers).fill(null);
  let startStep = 0;
  /** The interrupted epoch's running sums (resume mid-epoch). */
  let resumedAcc: EpochAcc | null = null;
  const history: Record<string, unknown>[] = [];
  if (o.resume) {
    const dir = latestCheckpoint(o.out);
    const c = dir ? loadCheckpoint(dir) : null;
    if (!c || JSON.stringify(c.meta.config) !== JSON.stringify(cfg)) {
      await pool.close();
      if (!c) throw new TrainError(`--resume: no checkpoint in ${o.out}`);
      throw new TrainError(`--resume: ${o.out} was searched with other settings (${JSON.stringify(c.meta.config)})`);
    }
    st = stateFromTensors(c.tensors);
    st.steps = c.meta.steps as Record<string, number>;
    pruned = c.meta.pruned as (CellOps | null)[];
    startStep = c.step;
    history.push(...(c.meta.history as Record<string, unknown>[]));
    resumedAcc = (c.meta.epochAcc as EpochAcc | null) ?? null;
  } else {
    // every op's weights, from the all-gated network (creation order: a seed gives one network)
    const all = buildSswpForward(taskShape, shapeOf(pruned));
    st = newTrainState(initParams(all.g, seed));
    for (let i = 0; i < o.layers; i++) {
      // α start at 0 (uniform over the ops), as in the reference release
      st.params.set(alphaName(i), new Float32Array(EDGES * NUM_OPS));
      st.opt.set(`${alphaName(i)}@exp_avg`, new Float32Array(EDGES * NUM_OPS));
      st.opt.set(`${alphaName(i)}@exp_avg_sq`, new Float32Array(EDGES * NUM_OPS));
    }
  }
  const alphas = (): Float32Array[] => Array.from({ length: o.layers }, (_, i) => st.params.get(alphaName(i))!);
  const currentCells = (): CellOps[] => pruned.map((c, i) => c ?? deriveCell(st.params.get(alphaName(i))!, SSWP_OPS));
  /** `acc`: the running epoch's sums when saving mid-epoch (so a resumed epoch logs its whole record). */
  const save = (step: number, acc?: EpochAcc): void => {
    saveCheckpoint(o.out, {
      step,
      meta: { kind: 'sswp-search', config: cfg, steps: st.steps, pruned, history, epochAcc: acc ?? null },
      tensors: stateTensors(st),
    });
  };
  const writeCells = (): void => {
    const arch = sswpArch({
      C: o.C,
      layers: o.layers,
      input: [full.c, full.h, full.w],
      cells: currentCells(),
      pruned: pruned.map((c) => c !== null),
    });
    writeFileAtomic(join(o.out, 'cells.json'), sswpArchJson(arch));
    writeFileAtomic(
      join(o.out, 'cells.svg'),
      cellsSvg(
        arch.cells.map((c) => ({
          ops: c.ops,
          concat: c.concat,
          title: `cell ${c.cell}${c.reduction ? ' (reduction)' : ''}${c.pruned ? '' : ' (searching)'}`,
        })),
        `SSWP-NAS ${objective}`,
      ),
    );
  };
  const pruneDue = (step: number): number[] =>
    sched.order.filter((c) => pruned[c] === null && sched.pruneAt[c]! <= step);
  const doPrune = (cells: number[], step: number): void => {
    for (const c of cells) {
      const ops = deriveCell(st.params.get(alphaName(c))!, SSWP_OPS);
      pruned[c] = ops;
      appendJsonLine(logPath, { type: 'prune', step, epoch: Math.floor(step / S), cell: c, ops });
      if (!o.quiet) process.stderr.write(`step ${step}: cell ${c} pruned to ${JSON.stringify(ops)}\n`);
    }
  };

  let runners: Runners | null = null;
  let firstNodes: { w: number; a: number } | null = null;
  const timing = new Map<number, { w: number; a: number; n: number; an: number }>();
  const phaseSteps: Record<string, number> = {};
  let stopped = false;
  let step = startStep;
  try {
    const startEpoch = Math.floor(startStep / S);
    for (let epoch = startEpoch; epoch < o.epochs && !stopped; epoch++) {
      const t0 = Date.now();
      const lr = cosineLr(cfg.lr as number, cfg.lrMin as number, epoch, o.epochs);
      const first = epoch === startEpoch ? startStep - epoch * S : 0;
      const bar = new Progress(`sswp ${objective} epoch ${epoch + 1}/${o.epochs}`, S, o.quiet);
      const acc: EpochAcc = (first > 0 ? resumedAcc : null) ?? {
        loss: 0,
        correct: 0,
        n: 0,
        aLoss: 0,
        aCorrect: 0,
        aN: 0,
        dropped: 0,
        edges: 0,
        phases: {},
      };
      resumedAcc = null;
      const wIt = wLoader.epoch(epoch, { startBatch: first });
      for (let b = first; b < S; b++) {
        step = epoch * S + b;
        const due = pruneDue(step);
        if (due.length) doPrune(due, step);
        if (!runners || due.length) {
          await runners?.release();
          runners = await Runners.create(taskShape, shapeOf(pruned), sgd, cfg.clip as number, {
            ep: o.ep,
            optimization: o.optimization ?? 'disabled',
          });
          firstNodes ??= runners.nodes;
        }
        const phase: Phase = phaseOf(sched, prune, step);
        const gated = pruned.map((c) => c === null);
        const nGated = gated.filter(Boolean).length;
        const doArch = phase !== 'warmup' && runners.a !== null;
        const aBatch = doArch ? aLoader.batch(epoch, b) : null;
        const wb = (await wIt.next()).value as Batch;
        const tm = timing.get(nGated) ?? { w: 0, a: 0, n: 0, an: 0 };
        timing.set(nGated, tm);
        // ---- α step
        let ar: StepResult | null = null;
        if (doArch) {
          const ta = Date.now();
          const as = sampleGates(Rng.derive(seed, SAMPLE_STREAM, step, 0), alphas(), gated, mode, null);
          ar = await runners.a!.run(st, {
            ...batchFeeds((await aBatch!) as Batch, runners.hasLabels),
            ...runners.pathFeeds(as, 'involved'),
          });
          const grads = alphaGradients(alphas(), ar.grads.get('gates')!, as);
          const t = (st.steps.alpha ?? 0) + 1;
          st.steps.alpha = t;
          grads.forEach((gr, i) => {
            if (!gr) return;
            const a = st.params.get(alphaName(i))!;
            const before = a.slice();
            adamUpdate(
              a,
              gr,
              st.opt.get(`${alphaName(i)}@exp_avg`)!,
              st.opt.get(`${alphaName(i)}@exp_avg_sq`)!,
              t,
              archOpt,
            );
            if (mode === 'two-path')
              as.edges[i]!.forEach((s, e) => rescaleInvolved(a, before, e * NUM_OPS, s.involved));
          });
          tm.a += (Date.now() - ta) / 1000;
          tm.an++;
        }
        // ---- w step
        const tw = Date.now();
        const ws = sampleGates(
          Rng.derive(seed, SAMPLE_STREAM, step, 1),
          alphas(),
          gated,
          mode,
          phase === 'warmup' ? null : dropout,
        );
        // the inactive ops' weights and momentum, to put back after the step (the runner
        // replaces arrays, it does not write into them, so references suffice)
        const kept: [string, Float32Array, Float32Array | undefined][] = [];
        ws.edges.forEach((edges, i) =>
          edges?.forEach((s, e) => {
            for (let k = 0; k < NUM_OPS; k++) {
              if (k === s.active) continue;
              for (const name of runners!.opParams.get(opKey(i, e, k)) ?? [])
                kept.push([name, st.params.get(name)!, st.opt.get(`${name}@momentum`)]);
            }
          }),
        );
        const r = await runners.w.run(
          st,
          { ...batchFeeds(wb, runners.hasLabels), ...(runners.a ? runners.pathFeeds(ws, 'active') : {}) },
          lr,
        );
        // copied into the new arrays (which may be views of one flat buffer), so no old buffer stays referenced
        for (const [name, w, m] of kept) {
          st.params.get(name)!.set(w);
          const key = `${name}@momentum`;
          const now = st.opt.get(key);
          if (now) {
            if (m) now.set(m);
            else now.fill(0); // no buffer yet ≡ a zero buffer (PyTorch starts it at the first gradient)
          } else if (m) st.opt.set(key, m);
        }
        tm.w += (Date.now() - tw) / 1000;
        tm.n++;
        if (!Number.isFinite(r.loss) || (ar && !Number.isFinite(ar.loss)))
          throw new TrainError(`loss became non-finite at epoch ${epoch + 1} step ${b + 1}: lower --lr`);
        const dropped = ws.edges.reduce((s, es) => s + (es ? es.filter((x) => x.dropped).length : 0), 0);
        acc.loss += r.loss;
        acc.correct += r.metrics.correct ?? 0;
        acc.n++;
        acc.dropped += dropped;
        acc.edges += nGated * EDGES;
        if (ar) {
          acc.aLoss += ar.loss;
          acc.aCorrect += ar.metrics.correct ?? 0;
          acc.aN++;
        }
        acc.phases[phase] = (acc.phases[phase] ?? 0) + 1;
        phaseSteps[phase] = (phaseSteps[phase] ?? 0) + 1;
        if (o.stepLog !== false) {
          appendJsonLine(logPath, {
            type: 'step',
            step,
            epoch: epoch + 1,
            batch: b,
            phase,
            lr,
            loss: r.loss,
            acc: (r.metrics.correct ?? 0) / runners.predictions,
            ...(ar ? { arch_loss: ar.loss, arch_acc: (ar.metrics.correct ?? 0) / runners.predictions } : {}),
            gated: nGated,
            dropped,
            arch_dropped: 0,
          });
        }
        bar.update(
          b + 1,
          `${phase} loss ${(acc.loss / acc.n).toFixed(3)}${acc.aN ? ` α-loss ${(acc.aLoss / acc.aN).toFixed(3)}` : ''}`,
        );
        const done = step + 1;
        const atEnd = b + 1 === S;
        if (!atEnd && o.checkpointEvery && done % o.checkpointEvery === 0) save(done, acc);
        if (o.stopAfterSteps !== undefined && done >= o.stopAfterSteps && !atEnd) {
          save(done, acc);
          stopped = true;
          break;
        }
      }
      await wIt.return(undefined);
      if (stopped) break;
      const pred = runners!.predictions;
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
        pruned: pruned.map((c, i) => (c ? i : -1)).filter((i) => i >= 0),
        seconds: (Date.now() - t0) / 1000,
        cells: currentCells(),
      };
      history.push({
        epoch: rec.epoch,
        loss: rec.loss,
        arch_loss: rec.arch_loss,
        phases: rec.phases,
        pruned: rec.pruned,
      });
      appendJsonLine(logPath, rec);
      writeCells();
      if (!o.quiet) {
        process.stderr.write(
          `epoch ${epoch + 1}: ${Object.keys(acc.phases).join('+')} loss ${rec.loss.toFixed(3)} acc ${(100 * rec.acc).toFixed(1)}%` +
            (rec.arch_loss !== null ? ` | α-loss ${rec.arch_loss.toFixed(3)}` : '') +
            ` | pruned ${rec.pruned.length}/${o.layers} | ${rec.seconds.toFixed(1)} s\n`,
        );
      }
      save((epoch + 1) * S);
      if (o.stopAfterSteps !== undefined && (epoch + 1) * S >= o.stopAfterSteps && epoch + 1 < o.epochs) stopped = true;
    }
  } finally {
    await runners?.release();
    await wLoader.close();
    await aLoader.close();
    await pool.close();
  }
  const timingList = [...timing.entries()]
    .map(([gated, t]) => ({ gated, wSeconds: t.w / Math.max(t.n, 1), aSeconds: t.an ? t.a / t.an : 0, steps: t.n }))
    .sort((a, b) => b.gated - a.gated);
  const base = { timing: timingList, nodes: firstNodes ?? { w: 0, a: 0 }, phases: phaseSteps };
  if (stopped) {
    const arch = sswpArch({
      C: o.C,
      layers: o.layers,
      input: [full.c, full.h, full.w],
      cells: currentCells(),
      pruned: pruned.map((c) => c !== null),
    });
    return { arch, modelPath: '', finalDir: '', stopped: true, steps: step + 1, ...base };
  }
  // ---- the end of the search: prune what is left, statistics, outputs
  const rest = pruned.map((c, i) => (c ? -1 : i)).filter((i) => i >= 0);
  const restOrdered = sched.order.filter((c) => rest.includes(c));
  if (restOrdered.length) doPrune(restOrdered, sched.total);
  writeCells();
  const cells = pruned as CellOps[];
  const norm = { mean: wLoader.mean, std: wLoader.std };
  const fin = await finalizeNetwork({
    out: o.out,
    C: o.C,
    layers: o.layers,
    cells,
    params: st.params,
    ds: full,
    norm,
    objective,
    rows,
    bnBatches: o.bnBatches ?? 20,
    seed,
    ep: o.ep,
    projectionDim: cfg.projectionDim as number,
    config: cfg,
  });
  writeFileAtomic(join(o.out, 'config.json'), `${JSON.stringify(cfg, null, 2)}\n`);
  appendJsonLine(logPath, {
    type: 'final',
    steps: sched.total,
    model: 'model.onnx',
    final: 'final',
    phases: phaseSteps,
    timing: timingList,
  });
  return {
    arch: fin.arch,
    modelPath: fin.modelPath,
    finalDir: fin.finalDir,
    stopped: false,
    steps: sched.total,
    ...base,
  };
}

/**
 * Recompute BN statistics of the discretized network and write model.onnx,
 * final/ (checkpoint) and cells.json to `out`.
 */
export async function finalizeNetwork(o: {
  out: string;
  C: number;
  layers: number;
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
  const net = { C: o.C, layers: o.layers, cells: o.cells };
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
  const arch = sswpArch({ C: o.C, layers: o.layers, input, cells: o.cells });
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
  m.g.meta.set('nas_onnx.normalization', JSON.stringify(o.norm));
  m.g.meta.set('nas_onnx.config', JSON.stringify({ C: o.C, layers: o.layers, input, objective: o.objective }));
  const modelValues = pickParams(m.g, values);
  const modelPath = join(o.out, 'model.onnx');
  writeFileAtomic(modelPath, serialize(m.g, { params: 'initializers', values: modelValues }));
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
