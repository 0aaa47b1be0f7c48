/**
 * Label-free DARTS search (UnNAS): the supernet is trained with a pretext
 * objective (rot, col, jig, simclr — or cls for comparison). Each step: one α
 * step on a batch of the architecture half, then one w step on a batch of the
 * weight half (darts.md). First order: ∇α L_val(w, α). Second order: the
 * unrolled step with the finite-difference Hessian-vector product.
 *
 * Graphs (all share parameter names):
 *   wStep    forward + backward + clipped SGD update of the weights (in-graph)
 *   alphaGrad forward + ∇α only
 *   allGrad  forward + ∇w and ∇α (second order only)
 * α (2 × 14 × 8 floats) is updated on the host with Adam.
 *
 * Runs write a run directory: log.jsonl (one record per epoch), checkpoints/
 * (atomic; exact resume), genotype.json and genotype.svg (derived every epoch).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as ort from 'onnxruntime-node';
import { deriveGenotype, genotypeJson, PRIMITIVES, type Genotype, type OpName } from '../graph/genotype.js';
import { Graph, type Param } from '../graph/ir.js';
import { Layers } from '../graph/nets/layers.js';
import { searchTrunk } from '../graph/nets/darts.js';
import { taskHead, type Objective } from '../graph/nets/tasks.js';
import { assembleStep, type OptimizerSpec, type StepSpec } from '../graph/training.js';
import { latestCheckpoint, loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { StepRunner, cosineLr, newTrainState, type TrainState } from './engine.js';
import { writeFileAtomic } from './fsutil.js';
import { initParams } from './params.js';
import { Progress } from './progress.js';
import { f32, i64, type EP } from './runtime.js';
import { appendJsonLine } from './log.js';
import { TrainError } from './errors.js';
import { genotypeSvg } from './genotype-svg.js';
import { DataLoader, DataPool, dartsSplit, limitDataset, loadDataset, type Batch, type PretextTask } from './data/index.js';

export interface SearchOptions {
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
  lr?: number;
  lrMin?: number;
  momentum?: number;
  weightDecay?: number;
  clip?: number;
  archLr?: number;
  archBeta1?: number;
  archBeta2?: number;
  archWeightDecay?: number;
  /** Checkpoint every N steps (besides epoch ends); 0 = epoch ends only. */
  checkpointEvery?: number;
  resume?: boolean;
  /** Stop (after checkpointing) once this many steps have run in total: for tests and time-boxed runs. */
  stopAfterSteps?: number;
  quiet?: boolean;
  primitives?: readonly OpName[];
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
}

export interface SearchResult {
  genotype: Genotype;
  history: SearchEpochRecord[];
  alphas: { normal: Float32Array; reduce: Float32Array };
  nodes: { wStep: number; alphaGrad: number; allGrad?: number };
  stepSeconds: number;
  stopped: boolean;
}

export function searchConfig(o: SearchOptions): Record<string, unknown> {
  return {
    objective: o.objective, data: o.data, epochs: o.epochs, batch: o.batch, C: o.C, layers: o.layers, order: o.order,
    seed: o.seed ?? 0, limit: o.limit ?? null, lr: o.lr ?? 0.025, lrMin: o.lrMin ?? 0.001, momentum: o.momentum ?? 0.9,
    weightDecay: o.weightDecay ?? 3e-4, clip: o.clip ?? 5, archLr: o.archLr ?? 3e-4, archBeta1: o.archBeta1 ?? 0.5,
    archBeta2: o.archBeta2 ?? 0.999, archWeightDecay: o.archWeightDecay ?? 1e-3, primitives: o.primitives ?? PRIMITIVES,
  };
}

/** The supernet + task head in training form, on `rows` input rows. */
export function buildSearchForward(task: PretextTask, o: { C: number; layers: number; batchRows: number; primitives?: readonly OpName[] }): { g: Graph; loss: StepSpec['loss']; metrics: Record<string, StepSpec['loss']>; hasLabels: boolean; predictions: number } {
  const g = new Graph(`darts_search_${task.name}`);
  g.training = true;
  const L = new Layers(g, { trackRunningStats: false });
  const [c, h, w] = task.inputShape;
  const x = g.input('x', 'float32', [o.batchRows, c, h, w]);
  const trunk = searchTrunk(L, x, { C: o.C, layers: o.layers, primitives: o.primitives });
  const head = taskHead(L, trunk.features, { name: task.name as Objective, numClasses: task.numClasses, groupSize: task.groupSize, inputShape: task.inputShape });
  return { g, loss: head.loss, metrics: head.metrics, hasLabels: !!head.labels, predictions: head.predictions };
}

const isArch = (p: Param): boolean => p.role === 'arch';
const isWeight = (p: Param): boolean => p.role === 'weight';

/** Host-side Adam (PyTorch semantics, L2 weight decay added to the gradient), in place. */
export function adamUpdate(w: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, t: number, o: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number }): void {
  const c1 = 1 - o.beta1 ** t;
  const c2 = Math.sqrt(1 - o.beta2 ** t);
  for (let i = 0; i < w.length; i++) {
    const d = grad[i]! + o.weightDecay * w[i]!;
    m[i] = o.beta1 * m[i]! + (1 - o.beta1) * d;
    v[i] = o.beta2 * v[i]! + (1 - o.beta2) * d * d;
    w[i] = w[i]! - (o.lr / c1) * (m[i]! / (Math.sqrt(v[i]!) / c2 + o.eps));
  }
}

function batchFeeds(b: Batch, hasLabels: boolean): Record<string, ort.Tensor> {
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

export async function runSearch(o: SearchOptions): Promise<SearchResult> {
  const seed = o.seed ?? 0;
  const cfg = searchConfig(o);
  const prims = o.primitives ?? PRIMITIVES;
  mkdirSync(o.out, { recursive: true });
  const full = limitDataset(await loadDataset(o.data, { split: 'train' }), o.limit);
  const halves = dartsSplit(full, { seed });
  const pool = new DataPool({ workers: o.workers });
  const taskOpts = { name: o.objective };
  const wLoader = new DataLoader(halves.weights, { task: taskOpts, batchSize: o.batch, seed, dropLast: true, pool });
  const aLoader = new DataLoader(halves.arch, { task: taskOpts, batchSize: o.batch, seed: seed + 1, dropLast: true, pool, mean: wLoader.mean, std: wLoader.std });
  const task = wLoader.task;
  const steps = Math.min(wLoader.batchesPerEpoch, aLoader.batchesPerEpoch);
  if (steps < 1) throw new TrainError(`--batch ${o.batch} is larger than half of the ${full.n} images: nothing to search on`);
  const rows = task.xShape(o.batch)[0]!;
  const sgd: OptimizerSpec = { kind: 'sgd', momentum: (cfg.momentum as number), weightDecay: cfg.weightDecay as number };
  const build = () => buildSearchForward(task, { C: o.C, layers: o.layers, batchRows: rows, primitives: prims });

  const fw = build();
  const wInfo = assembleStep(fw.g, { loss: fw.loss, metrics: fw.metrics, update: isWeight, optimizer: sgd, clipNorm: cfg.clip as number, stateOutputs: false });
  const fa = build();
  const aInfo = assembleStep(fa.g, { loss: fa.loss, metrics: fa.metrics, update: () => false, outputGrads: isArch, gradientsOnly: true, optimizer: sgd, stateOutputs: false });
  const wRunner = await StepRunner.create(fw.g, wInfo, sgd, { ep: o.ep, group: 'w' });
  const aRunner = await StepRunner.create(fa.g, aInfo, null, { ep: o.ep, group: 'alpha_grad' });
  let allRunner: StepRunner | null = null;
  if (o.order === 2) {
    const f2 = build();
    const info2 = assembleStep(f2.g, { loss: f2.loss, metrics: f2.metrics, update: () => false, outputGrads: (p) => p.role !== 'state', gradientsOnly: true, optimizer: sgd, stateOutputs: false });
    allRunner = await StepRunner.create(f2.g, info2, null, { ep: o.ep, group: 'all_grad' });
  }
  const archNames = [...fw.g.params.values()].filter(isArch).map((p) => p.name);
  const weightNames = [...fw.g.params.values()].filter(isWeight).map((p) => p.name);
  const archOpt = { lr: cfg.archLr as number, beta1: cfg.archBeta1 as number, beta2: cfg.archBeta2 as number, eps: 1e-8, weightDecay: cfg.archWeightDecay as number };

  let st: TrainState;
  let startEpoch = 0;
  let startBatch = 0;
  let totalSteps = 0;
  const history: SearchEpochRecord[] = [];
  if (o.resume) {
    const dir = latestCheckpoint(o.out);
    if (!dir) throw new TrainError(`--resume: no checkpoint in ${o.out}`);
    const c = loadCheckpoint(dir);
    if (JSON.stringify(c.meta.config) !== JSON.stringify(cfg)) throw new TrainError(`--resume: ${o.out} was searched with other settings (${JSON.stringify(c.meta.config)})`);
    st = newTrainState(new Map());
    for (const [k, v] of c.tensors) {
      if (k.startsWith('param:')) st.params.set(k.slice(6), v);
      else if (k.startsWith('opt:')) st.opt.set(k.slice(4), v);
    }
    st.steps = c.meta.steps as Record<string, number>;
    startEpoch = c.meta.epoch as number;
    startBatch = c.meta.batch as number;
    totalSteps = c.step;
    history.push(...(c.meta.history as SearchEpochRecord[]));
  } else {
    st = newTrainState(initParams(fw.g, seed));
    for (const n of archNames) {
      st.opt.set(`${n}@exp_avg`, new Float32Array(st.params.get(n)!.length));
      st.opt.set(`${n}@exp_avg_sq`, new Float32Array(st.params.get(n)!.length));
    }
  }
  const save = (epoch: number, batch: number): void => {
    const tensors = new Map<string, Float32Array>();
    for (const [k, v] of st.params) tensors.set(`param:${k}`, v);
    for (const [k, v] of st.opt) tensors.set(`opt:${k}`, v);
    saveCheckpoint(o.out, { step: totalSteps, meta: { kind: 'search', config: cfg, epoch, batch, steps: st.steps, history }, tensors });
  };
  const currentGenotype = (): Genotype => deriveGenotype(st.params.get(archNames[0]!)!, st.params.get(archNames[1]!)!, prims);

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
      const acc = { tl: 0, tc: 0, vl: 0, vc: 0, n: 0 };
      const wIt = wLoader.epoch(epoch, { startBatch: first });
      const aIt = aLoader.epoch(epoch, { startBatch: first });
      for (let b = first; b < steps; b++) {
        const wb = (await wIt.next()).value as Batch;
        const ab = (await aIt.next()).value as Batch;
        const ts = Date.now();
        const trainFeeds = batchFeeds(wb, fw.hasLabels);
        const valFeeds = batchFeeds(ab, fw.hasLabels);
        // ---- α step on the architecture half
        let archGrad: Map<string, Float32Array>;
        let valLoss: number;
        let valCorrect: number;
        if (o.order === 1) {
          const r = await aRunner.run(st, valFeeds);
          archGrad = r.grads;
          valLoss = r.loss;
          valCorrect = r.metrics.correct ?? 0;
        } else {
          const r2 = await secondOrderArchGrad(st, allRunner!, aRunner, trainFeeds, valFeeds, weightNames, archNames, lr, sgd);
          archGrad = r2.grads;
          valLoss = r2.loss;
          valCorrect = r2.correct;
        }
        const t = (st.steps.alpha ?? 0) + 1;
        st.steps.alpha = t;
        for (const n of archNames) adamUpdate(st.params.get(n)!, archGrad.get(n)!, st.opt.get(`${n}@exp_avg`)!, st.opt.get(`${n}@exp_avg_sq`)!, t, archOpt);
        // ---- w step on the weight half
        const r = await wRunner.run(st, trainFeeds, lr);
        if (!Number.isFinite(r.loss) || !Number.isFinite(valLoss)) throw new TrainError(`loss became non-finite at epoch ${epoch + 1} step ${b + 1}: lower --lr`);
        stepTime += (Date.now() - ts) / 1000;
        timedSteps++;
        acc.tl += r.loss;
        acc.tc += r.metrics.correct ?? 0;
        acc.vl += valLoss;
        acc.vc += valCorrect;
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
        epoch: epoch + 1, lr,
        train_loss: acc.tl / acc.n, train_acc: acc.tc / (acc.n * fw.predictions),
        val_loss: acc.vl / acc.n, val_acc: acc.vc / (acc.n * fw.predictions),
        seconds: (Date.now() - t0) / 1000, genotype: geno,
        alpha_normal: rows2d(softmaxRows(an, prims.length), prims.length),
        alpha_reduce: rows2d(softmaxRows(ar, prims.length), prims.length),
      };
      history.push(rec);
      appendJsonLine(join(o.out, 'log.jsonl'), rec);
      writeFileAtomic(join(o.out, 'genotype.json'), genotypeJson({ name: `search_${o.objective}`, ...geno }));
      writeFileAtomic(join(o.out, 'genotype.svg'), genotypeSvg(geno, `${o.objective} search, epoch ${epoch + 1}`));
      if (!o.quiet) process.stderr.write(`epoch ${epoch + 1}: ${o.objective} loss ${rec.train_loss.toFixed(3)} acc ${(100 * rec.train_acc).toFixed(1)}% | val loss ${rec.val_loss.toFixed(3)} acc ${(100 * rec.val_acc).toFixed(1)}% | ${JSON.stringify(geno.normal)}\n`);
      save(epoch + 1, 0);
      if (o.stopAfterSteps !== undefined && totalSteps >= o.stopAfterSteps && epoch + 1 < o.epochs) stopped = true;
    }
  } finally {
    await wLoader.close();
    await aLoader.close();
    await pool.close();
    await wRunner.release();
    await aRunner.release();
    await allRunner?.release();
  }
  writeFileSync(join(o.out, 'config.json'), JSON.stringify(cfg, null, 2) + '\n');
  return {
    genotype: currentGenotype(),
    history,
    alphas: { normal: st.params.get(archNames[0]!)!, reduce: st.params.get(archNames[1]!)! },
    nodes: { wStep: fw.g.nodes.length, alphaGrad: fa.g.nodes.length, allGrad: allRunner?.nodeCount },
    stepSeconds: stepTime / Math.max(timedSteps, 1),
    stopped,
  };
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
  sgd: Extract<OptimizerSpec, { kind: 'sgd' }>,
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
    for (let i = 0; i < w.length; i++) out[i] = w[i]! - xi * (d[i]! + (buf ? sgd.momentum * buf[i]! : 0) + sgd.weightDecay * w[i]!);
    wPrime.set(n, out);
  }
  const rv = await allRunner.run(withWeights(wPrime), valFeeds);
  let sq = 0;
  for (const n of weightNames) for (const v of rv.grads.get(n)!) sq += v * v;
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
