/**
 * Fine-tuning an SSWP-NAS network on a fraction of the labels
 * (`nas-onnx finetune --from RUN --labels-fraction F`): the searched
 * architecture (RUN/cells.json, RUN/final) with a fresh linear classifier and
 * the DARTS auxiliary head, trained on a seeded, class-stratified fraction F of
 * the training labels from up to three initializations ("arms"):
 *  - concomitant: the weights the search trained (RUN/final);
 *  - random: a fresh random initialization;
 *  - simclr: the two-stage baseline, the architecture pre-trained from random
 *    initialization with the search's objective and budget
 *    (train/search/sswp/baseline.ts, RUN/simclr).
 * Everything else is the same for every arm: epochs, batch, learning rate,
 * the initial values of the classifier and auxiliary head, the data order and
 * augmentation of every batch, the drop-path masks, and the BN treatment.
 * With `bn: 'precise'` (default) each arm's BN running statistics are
 * recomputed for its final weights on the same un-augmented labelled images
 * before it is evaluated; with 'running' every arm starts from running
 * statistics 0/1 and is evaluated with those its training tracked.
 *
 * Training: SGD momentum 0.9, weight decay 3e-4, lr cosine per step to
 * `lrMin`, gradient clipping 5, flip + padded crop + cutout, auxiliary loss,
 * drop path rising linearly over the epochs (defaults: the paper's, batch
 * 128, cutout 16, auxiliary weight 0.4, drop path 0.3). Images are normalized
 * with the search's constants.
 *
 * The labelled subset: per class, the rows of that class in a seeded order
 * (`Rng.derive(seed, LABEL_STREAM, class)`), the first max(1, round(F·n_c)).
 * Output: <out>/<init>/log.jsonl (per epoch: lr, train loss and accuracy, the
 * digest of the data order so far), <out>/<init>/model.onnx (logits) and
 * <out>/<init>/final/ (its weights and BN statistics; both unless `keepModels`
 * is false), and <out>/result.json.
 *
 * The settings are a FinetuneConfig (finetune-config.ts), and a fine-tune is
 * a run under the lifecycle of train/runtime/run.ts: lock, --out policy,
 * checkpoints at every epoch end (and on SIGINT/SIGTERM, at a step boundary)
 * that hold the finished arms' results and the running arm's state, so a
 * --resume continues exactly; no non-finite checkpoint.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type * as ort from 'onnxruntime-node';
import type { Graph } from '../../graph/ir.js';
import { buildSswpNetwork, type CellOps } from '../../graph/nets/sswp.js';
import { deployMeta, serializeInference } from '../../graph/deploy.js';
import { add, mul } from '../../graph/ops/index.js';
import { Rng } from '../../graph/rng.js';
import {
  assembleStep,
  bnStatsGraph,
  correctCount,
  crossEntropy,
  type OptimizerSpec,
  type StepGraphInfo,
} from '../../graph/training.js';
import {
  ForwardRunner,
  StepRunner,
  newTrainState,
  stateFromTensors,
  stateTensors,
  stepCosineLr,
  type TrainState,
} from '../runtime/engine.js';
import { type Checkpoint, saveCheckpoint } from '../runtime/checkpoint.js';
import { TrainError } from '../runtime/errors.js';
import { writeFileAtomic } from '../runtime/fsutil.js';
import { appendJsonLine } from '../runtime/log.js';
import { initParams, pickParams, type ParamValues } from '../runtime/params.js';
import { preciseBnStats } from '../runtime/precise-bn.js';
import { Progress } from '../runtime/progress.js';
import { Run, type RunOptions } from '../runtime/run.js';
import { f32, i64, type EP, type SessionOptions } from '../runtime/session.js';
import { SettingError } from '../runtime/settings.js';
import { pretrainBaseline } from '../search/sswp/baseline.js';
import { loadSswpNetwork } from '../search/sswp/search.js';
import {
  DataLoader,
  DataPool,
  limitDataset,
  loadDataset,
  skipReport,
  subset,
  type Dataset,
  type SkipReport,
  type Subset,
} from '../data/index.js';
import { DROP_PATH_STREAM, closeAll, dropMasks, evaluate } from './trainer.js';
import {
  type BnTreatment,
  FINETUNE_DEFAULTS,
  FINETUNE_RUN,
  type FinetuneConfig,
  finetuneConfig,
  type Init,
} from './finetune-config.js';

export const LABEL_STREAM = 0x1abe1;

export { BN_TREATMENTS, type BnTreatment, FINETUNE_DEFAULTS, INITS, type Init } from './finetune-config.js';

/** A fine-tune: its settings (finetune-config.ts; defaults filled in), its arms and how it runs. */
export interface FinetuneOptions extends Partial<FinetuneConfig> {
  /** SSWP run directory (cells.json, final/). */
  from: string;
  labelsFraction: number;
  /** Run directory (default: <from>/finetune-<F>). */
  out?: string;
  /** Skip unreadable images (reported in the result) instead of failing. */
  skipCorrupt?: boolean;
  ep?: EP;
  workers?: number;
  quiet?: boolean;
  /** The arms to run (default FINETUNE_DEFAULTS.inits). */
  inits?: Init[];
  /** The simclr arm's pre-training directory (default <from>/simclr; pre-trained when missing). */
  simclrDir?: string;
  /** Write each arm's model.onnx (default true). */
  keepModels?: boolean;
  /** Called as each arm finishes (and for the arms a resumed run had finished). */
  onRun?: (run: FinetuneRun) => void;
  /** ORT graph optimization level of the training step graph (default 'disabled', as the search). */
  optimization?: SessionOptions['optimization'];
  /** Continue the run in `out` from its newest intact checkpoint. */
  resume?: boolean;
  /** Replace a run that `out` holds. */
  overwrite?: boolean;
  /** How messages render the command that continues the run (the CLI's own command line). */
  commandLine?: RunOptions<FinetuneConfig>['commandLine'];
}

export interface FinetuneRun {
  init: Init;
  /** Labelled training images. */
  labelled: number;
  testAcc: number;
  testLoss: number;
  trainLoss: number;
  trainAcc: number;
  seconds: number;
  modelPath: string | null;
  /** The BN treatment before evaluation, and the batches precise BN used. */
  bn: { mode: BnTreatment; batches: number };
  /** FNV-1a digest of the rows of every batch, in order: equal for arms that saw the same data order. */
  dataDigest: string;
}

export interface FinetuneResult {
  fraction: number;
  seed: number;
  labelled: number;
  trainImages: number;
  testImages: number;
  runs: FinetuneRun[];
  out: string;
  /** Unreadable images skipped (with skipCorrupt). */
  skipped: SkipReport;
}

/** A seeded, class-stratified fraction of a labelled dataset's rows. */
export function labelledFraction(ds: Dataset, fraction: number, seed: number): Subset {
  if (!ds.labels) throw new TrainError(`${ds.name} has no labels: fine-tuning needs a labelled data set`);
  if (!(fraction > 0 && fraction <= 1)) throw new TrainError(`--labels-fraction must be in (0, 1], got ${fraction}`);
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < ds.n; i++) {
    const c = ds.labels[i]!;
    if (!byClass.has(c)) byClass.set(c, []);
    byClass.get(c)!.push(i);
  }
  const rows: number[] = [];
  for (const c of [...byClass.keys()].sort((a, b) => a - b)) {
    const list = byClass.get(c)!;
    const perm = Rng.derive(seed, LABEL_STREAM, c).permutation(list.length);
    const k = Math.max(1, Math.round(fraction * list.length));
    for (let j = 0; j < k; j++) rows.push(list[perm[j]!]!);
  }
  rows.sort((a, b) => a - b);
  return subset(ds, rows, `${ds.name}[labels ${fraction}]`);
}

/** The settings of a fine-tune and how its arms run. */
type Settings = FinetuneConfig & {
  inits: Init[];
  simclrDir: string;
  keepModels: boolean;
  optimization: SessionOptions['optimization'];
  workers: number;
  quiet: boolean;
  ep?: EP;
  onRun?: FinetuneOptions['onRun'];
};

function settingsOf(o: FinetuneOptions, cfg: FinetuneConfig): Settings {
  const s: Settings = {
    ...cfg,
    inits: o.inits ?? FINETUNE_DEFAULTS.inits,
    simclrDir: o.simclrDir ?? join(o.from, 'simclr'),
    keepModels: o.keepModels ?? true,
    optimization: o.optimization ?? 'disabled',
    workers: o.workers ?? 0,
    quiet: o.quiet ?? false,
    ep: o.ep,
    onRun: o.onRun,
  };
  if (!s.inits.length) throw new SettingError('no initialization to fine-tune from');
  return s;
}

/** What every arm shares: data, loaders, graphs and runners. */
interface Shared {
  s: Settings;
  run: Run<FinetuneConfig>;
  from: string;
  fraction: number;
  out: string;
  net: ReturnType<typeof loadSswpNetwork>;
  trainSet: Dataset;
  testSet: Dataset;
  labelled: Subset;
  input: number[];
  batch: number;
  evalBatch: number;
  /** Rows per precise-BN batch. */
  bnBatch: number;
  pool: DataPool;
  train: DataLoader;
  test: DataLoader;
  /** Un-augmented labelled images in a seeded order (precise BN). */
  bnLoader: DataLoader;
  step: { g: Graph; info: StepGraphInfo; opt: OptimizerSpec; dropInputs: string[] };
  evalG: Graph;
  bnG: Graph | null;
  stepRunner: StepRunner | null;
  evalRunner: ForwardRunner | null;
}

async function loadSets(
  o: FinetuneOptions,
  s: Settings,
  net: Shared['net'],
): Promise<{ trainSet: Dataset; testSet: Dataset }> {
  const cfg = net.config;
  const dataSpec = s.dataset ?? (cfg.data as string | undefined);
  if (!dataSpec) throw new TrainError('give --dataset: the search run does not record its data');
  const limit = s.limit ?? (cfg.limit as number | null) ?? undefined;
  const data = { crop: s.size ?? (cfg.size as number | null) ?? undefined, skipCorrupt: o.skipCorrupt };
  const trainSet = limitDataset(await loadDataset(dataSpec, { ...data, split: 'train' }), limit);
  const testSet = limitDataset(await loadDataset(dataSpec, { ...data, split: 'test' }), s.testLimit ?? undefined);
  if (trainSet.c !== net.arch.input[0])
    throw new TrainError(`${dataSpec} has ${trainSet.c} channels but the network was searched on ${net.arch.input[0]}`);
  return { trainSet, testSet };
}

/** The step graph (classifier, auxiliary head, drop path), the inference graph and the BN-statistics graph. */
function buildGraphs(sh: Pick<Shared, 's' | 'net' | 'input' | 'batch' | 'evalBatch' | 'bnBatch'>, classes: number) {
  const { s, net, input } = sh;
  const cells = net.arch.cells.map((c) => c.ops) as CellOps[];
  const shape = { C: net.arch.C, layers: net.arch.layers, cells, stem: net.arch.stem };
  const m = buildSswpNetwork({
    ...shape,
    batch: sh.batch,
    input,
    training: true,
    classes,
    auxiliary: s.auxWeight > 0,
    dropPath: s.dropPath > 0,
  });
  const labels = m.g.input('labels', 'int64', [sh.batch]);
  let loss = crossEntropy(m.g, m.logits!, labels);
  if (m.auxLogits) loss = add(m.g, loss, mul(m.g, crossEntropy(m.g, m.auxLogits, labels), m.g.scalar(s.auxWeight)));
  const opt: OptimizerSpec = { kind: 'sgd', momentum: s.momentum, weightDecay: s.weightDecay };
  const info = assembleStep(m.g, {
    loss,
    metrics: { correct: correctCount(m.g, m.logits!, labels) },
    update: (p) => p.role === 'weight',
    optimizer: opt,
    clipNorm: s.clip,
  });
  const e = buildSswpNetwork({ ...shape, batch: sh.evalBatch, input, training: false, classes });
  e.g.output(e.logits!, 'logits');
  e.g.prune();
  e.g.meta.set('nas_onnx.kind', 'sswp-classifier');
  e.g.meta.set('nas_onnx.sswp_cells', JSON.stringify(net.arch));
  const b = buildSswpNetwork({ ...shape, batch: sh.bnBatch, input, training: true, classes });
  return { step: { g: m.g, info, opt, dropInputs: m.dropPathInputs }, evalG: e.g, bnG: bnStatsGraph(b.g) };
}

async function openShared(o: FinetuneOptions, run: Run<FinetuneConfig>): Promise<Shared> {
  const s = settingsOf(o, run.config);
  const net = loadSswpNetwork(s.from);
  const { trainSet, testSet } = await loadSets(o, s, net);
  const labelled = labelledFraction(trainSet, s.labelsFraction, s.seed);
  const input = [trainSet.c, trainSet.h, trainSet.w];
  const batch = Math.min(s.batch, labelled.indices.length);
  if (batch < s.batch && !s.quiet)
    process.stderr.write(
      `nas-onnx: --batch ${s.batch} is larger than the ${labelled.indices.length} labelled images: batches of ${batch}\n`,
    );
  const evalBatch = s.evalBatch ?? Math.max(batch, 100);
  const bnBatch = batch; // the training batch size (pycls's precise BN)
  const out = run.dir;
  const graphs = buildGraphs({ s, net, input, batch, evalBatch, bnBatch }, trainSet.classes);
  const pool = new DataPool({ workers: s.workers });
  const norm = { mean: net.normalization.mean, std: net.normalization.std, pool };
  const plain = { task: { name: 'cls' as const, augment: false }, ...norm };
  return {
    s,
    run,
    from: s.from,
    fraction: s.labelsFraction,
    out,
    net,
    trainSet,
    testSet,
    labelled,
    input,
    batch,
    evalBatch,
    bnBatch,
    pool,
    train: new DataLoader(labelled, {
      task: { name: 'cls', cutout: s.cutout },
      batchSize: batch,
      seed: s.seed,
      dropLast: true,
      ...norm,
    }),
    test: new DataLoader(testSet, { ...plain, batchSize: evalBatch, seed: s.seed, shuffle: false }),
    bnLoader: bnLoaderOf(labelled, net.normalization, bnBatch, s.seed, pool),
    ...graphs,
    stepRunner: null,
    evalRunner: null,
  };
}

/** The images precise BN runs on: un-augmented labelled images in a seeded order, whole batches only. */
export function bnLoaderOf(
  labelled: Subset,
  norm: { mean: number[]; std: number[] },
  batch: number,
  seed: number,
  pool: DataPool,
): DataLoader {
  const task = { name: 'cls' as const, augment: false };
  return new DataLoader(labelled, { task, batchSize: batch, seed: seed + 1, dropLast: true, pool, ...norm });
}

/**
 * An arm's initial values: fresh ones from the seed for every parameter (so
 * the classifier and auxiliary head start alike in every arm), the trunk then
 * replaced by the concomitant or the pre-trained weights.
 */
function initialValues(sh: Shared, init: Init, pretrained: ParamValues | null): ParamValues {
  const g = sh.step.g;
  const values = initParams(g, sh.s.seed);
  if (init !== 'random') {
    const src = init === 'concomitant' ? sh.net.params : pretrained!;
    const trunk = [...g.params.keys()].filter((k) => !k.startsWith('classifier/') && !k.startsWith('auxiliary_head/'));
    for (const k of trunk) {
      const v = src.get(k);
      if (!v || v.length !== values.get(k)!.length)
        throw new TrainError(`the ${init} weights lack '${k}' (${init === 'simclr' ? sh.s.simclrDir : sh.from})`);
      values.set(k, Float32Array.from(v));
    }
  }
  if (sh.s.bn === 'running')
    for (const p of g.params.values()) {
      if (p.role !== 'state') continue;
      values.get(p.name)!.fill(p.name.endsWith('running_var') ? 1 : 0);
    }
  return values;
}

const hex = (h: number): string => h.toString(16).padStart(8, '0');

/** FNV-1a over 32-bit words. */
function fnv1a(h: number, words: ArrayLike<number>): number {
  let x = h;
  for (let i = 0; i < words.length; i++) {
    x ^= words[i]! >>> 0;
    x = Math.imul(x, 0x01000193) >>> 0;
  }
  return x;
}

/** Where an arm is: its running epoch's sums, the digest of its data order, its log records. */
interface ArmState {
  init: Init;
  st: TrainState;
  epoch: number;
  /** Batches of `epoch` done. */
  batch: number;
  sums: { lossSum: number; correct: number; seen: number };
  digest: { h: number };
  log: Record<string, unknown>[];
}

/** The position of an arm in words ("random arm, epoch 2, step 3 of 8"). */
function armPosition(sh: Shared, a: ArmState): string {
  const S = sh.train.batchesPerEpoch;
  return a.batch === 0
    ? `the ${a.init} arm, end of epoch ${a.epoch}`
    : `the ${a.init} arm, epoch ${a.epoch + 1}, step ${a.batch} of ${S}`;
}

/** A checkpoint: the finished arms' results and the running arm's state (null between arms). */
function saveFinetune(sh: Shared, done: FinetuneRun[], a: ArmState | null): void {
  const S = sh.train.batchesPerEpoch;
  const step = (done.length * sh.s.epochs + (a ? a.epoch : 0)) * S + (a ? a.batch : 0);
  const arm = a && {
    init: a.init,
    epoch: a.epoch,
    batch: a.batch,
    sums: a.sums,
    digest: a.digest.h,
    log: a.log,
    steps: a.st.steps,
  };
  const at = a ? armPosition(sh, a) : `the end of the ${done[done.length - 1]?.init ?? 'first'} arm`;
  sh.run.save(step, { done, arm }, a ? stateTensors(a.st) : new Map(), at);
}

/** One epoch of an arm (from its batch on); returns its mean loss and accuracy. */
async function trainEpoch(
  sh: Shared,
  a: ArmState,
  done: FinetuneRun[],
): Promise<{ loss: number; acc: number; lr: number }> {
  const { s, train } = sh;
  const epoch = a.epoch;
  const lrAt = (i: number): number => stepCosineLr(s.lr, s.lrMin, epoch, i, train.batchesPerEpoch, s.epochs);
  const dp = s.dropPath * (epoch / s.epochs);
  const bar = new Progress(
    `finetune ${a.init} F=${sh.fraction} epoch ${epoch + 1}/${s.epochs}`,
    train.batchesPerEpoch,
    s.quiet,
  );
  const sums = a.sums;
  for await (const b of train.epoch(epoch, { startBatch: a.batch })) {
    a.digest.h = fnv1a(a.digest.h, b.rows);
    const feeds: Record<string, ort.Tensor> = {
      x: f32(b.x, b.xShape),
      labels: i64(b.y, [b.size]),
      ...dropMasks(sh.step.dropInputs, sh.batch, dp, Rng.derive(s.seed, DROP_PATH_STREAM, epoch, b.index)),
    };
    const r = await sh.stepRunner!.run(a.st, feeds, lrAt(b.index));
    a.batch = b.index + 1;
    if (!Number.isFinite(r.loss)) throw sh.run.nonFinite(`the loss (${r.loss})`, armPosition(sh, a));
    sums.lossSum += r.loss * b.size;
    sums.correct += r.metrics.correct!;
    sums.seen += b.size;
    bar.update(
      b.index + 1,
      `loss ${(sums.lossSum / sums.seen).toFixed(3)} acc ${((100 * sums.correct) / sums.seen).toFixed(1)}%`,
    );
    const S = train.batchesPerEpoch;
    await sh.run.boundary((done.length * s.epochs + epoch) * S + a.batch, armPosition(sh, a), () =>
      saveFinetune(sh, done, a),
    );
  }
  return { loss: sums.lossSum / Math.max(sums.seen, 1), acc: sums.correct / Math.max(sums.seen, 1), lr: lrAt(0) };
}

/** Precise BN: every arm's running statistics recomputed for its final weights, on the same images. */
export async function preciseBn(
  sh: { s: { bnBatches: number; ep?: EP }; bnG: Graph | null; bnLoader: DataLoader },
  params: ParamValues,
): Promise<{ stats: ParamValues; batches: number }> {
  if (!sh.bnG) return { stats: new Map(), batches: 0 };
  const loader = sh.bnLoader;
  async function* feeds(): AsyncGenerator<Record<string, ort.Tensor>> {
    for await (const b of loader.epoch(0)) yield { x: f32(b.x, b.xShape) };
  }
  return preciseBnStats(sh.bnG, params, feeds(), { maxBatches: sh.s.bnBatches, ep: sh.s.ep });
}

/** An arm at its start: initial values, nothing seen. */
function freshArm(sh: Shared, init: Init, pretrained: ParamValues | null): ArmState {
  const st = newTrainState(initialValues(sh, init, pretrained));
  return {
    init,
    st,
    epoch: 0,
    batch: 0,
    sums: { lossSum: 0, correct: 0, seen: 0 },
    digest: { h: 0x811c9dc5 },
    log: [],
  };
}

/** The arm a checkpoint was saved in the middle of. */
function resumedArm(c: Checkpoint): ArmState | null {
  const m = c.meta.arm as (Omit<ArmState, 'st' | 'digest'> & { digest: number; steps: Record<string, number> }) | null;
  if (!m) return null;
  const st = stateFromTensors(c.tensors);
  st.steps = { ...m.steps };
  return {
    init: m.init,
    st,
    epoch: m.epoch,
    batch: m.batch,
    sums: { ...m.sums },
    digest: { h: m.digest },
    log: [...m.log],
  };
}

/** Train one arm (from where it is), treat BN, evaluate; log and (optionally) ship its model. */
async function runArm(sh: Shared, a: ArmState, done: FinetuneRun[]): Promise<FinetuneRun> {
  const { s } = sh;
  const init = a.init;
  const t0 = Date.now();
  const runDir = join(sh.out, init);
  mkdirSync(runDir, { recursive: true });
  const log = join(runDir, 'log.jsonl');
  // the log holds exactly the records of the checkpoint this arm continues from
  writeFileAtomic(log, a.log.map((r) => `${JSON.stringify(r)}\n`).join(''));
  let last = { loss: 0, acc: 0, lr: 0 };
  for (; a.epoch < s.epochs; a.epoch++, a.batch = 0, a.sums = { lossSum: 0, correct: 0, seen: 0 }) {
    last = await trainEpoch(sh, a, done);
    const rec = { epoch: a.epoch + 1, lr: last.lr, train_loss: last.loss, train_acc: last.acc, data: hex(a.digest.h) };
    appendJsonLine(log, rec);
    a.log.push(rec);
    if (a.epoch + 1 < s.epochs) {
      const next = { ...a, epoch: a.epoch + 1, batch: 0, sums: { lossSum: 0, correct: 0, seen: 0 } };
      saveFinetune(sh, done, next);
    }
  }
  const st = a.st;
  let bn = { mode: s.bn, batches: 0 };
  if (s.bn === 'precise') {
    const r = await preciseBn(sh, st.params);
    for (const [k, v] of r.stats) st.params.set(k, v);
    bn = { mode: s.bn, batches: r.batches };
  }
  const evalParams = pickParams(sh.evalG, st.params);
  const ev = await evaluate(sh.evalRunner!, evalParams, sh.test, sh.evalBatch, sh.input);
  const seconds = Math.round(Date.now() - t0) / 1000;
  appendJsonLine(log, { final: true, test_acc: ev.acc, test_loss: ev.loss, bn, seconds });
  let modelPath: string | null = null;
  if (s.keepModels) {
    modelPath = join(runDir, 'model.onnx');
    writeFileAtomic(modelPath, serializeInference(sh.evalG, evalParams, deployMeta(sh.trainSet, sh.net.normalization)));
    const tensors = new Map([...evalParams].map(([k, v]) => [`param:${k}`, v]));
    saveCheckpoint(join(runDir, 'final'), { step: 0, meta: { kind: 'sswp-finetuned', init, bn }, tensors }, 1);
  }
  const dataDigest = hex(a.digest.h);
  const labelled = sh.labelled.indices.length;
  return {
    init,
    labelled,
    testAcc: ev.acc,
    testLoss: ev.loss,
    trainLoss: last.loss,
    trainAcc: last.acc,
    seconds,
    modelPath,
    bn,
    dataDigest,
  };
}

/**
 * Fine-tune the arms `o.inits` (finetune-config.ts holds the settings) in the
 * run directory `o.out`, with the run lifecycle of train/runtime/run.ts.
 */
export async function runFinetune(o: FinetuneOptions): Promise<FinetuneResult> {
  const config = finetuneConfig(o);
  const out = o.out ?? join(config.from, `finetune-${config.labelsFraction}`);
  return Run.execute(FINETUNE_RUN, { ...o, out, config }, (run) => finetuneIn(o, run));
}

/** The arms, in an opened run directory (a resumed run skips the arms it finished). */
async function runArms(sh: Shared, pretrained: ParamValues | null): Promise<FinetuneRun[]> {
  const { s } = sh;
  const c = sh.run.resumed;
  const done: FinetuneRun[] = c ? [...(c.meta.done as FinetuneRun[])] : [];
  let current = c ? resumedArm(c) : null;
  const runs: FinetuneRun[] = [];
  for (const init of s.inits) {
    const had = done.find((r) => r.init === init);
    if (had) {
      runs.push(had);
      s.onRun?.(had);
      continue;
    }
    const a = current?.init === init ? current : freshArm(sh, init, pretrained);
    current = null;
    const run = await runArm(sh, a, done);
    done.push(run);
    runs.push(run);
    saveFinetune(sh, done, null);
    s.onRun?.(run);
    if (!s.quiet)
      process.stderr.write(
        `${init}: test accuracy ${(100 * run.testAcc).toFixed(2)}% (train acc ${(100 * run.trainAcc).toFixed(1)}%, ${run.seconds.toFixed(1)} s)\n`,
      );
  }
  sh.run.endLoop();
  return runs;
}

/** How the simclr arm's pre-training runs; interrupted, the same fine-tune command continues it. */
function baselineOf(o: FinetuneOptions, s: Settings): Parameters<typeof pretrainBaseline>[1] {
  const again = o.commandLine;
  return {
    dir: s.simclrDir,
    ep: s.ep,
    workers: s.workers,
    quiet: s.quiet,
    ...(again ? { commandLine: () => again({}) } : {}),
  };
}

async function finetuneIn(o: FinetuneOptions, run: Run<FinetuneConfig>): Promise<FinetuneResult> {
  const sh = await openShared(o, run);
  const { s } = sh;
  let runs: FinetuneRun[];
  try {
    const pretrained = s.inits.includes('simclr')
      ? loadSswpNetwork(await pretrainBaseline(s.from, baselineOf(o, s))).params
      : null;
    sh.stepRunner = await StepRunner.create(sh.step.g, sh.step.info, sh.step.opt, {
      ep: s.ep,
      optimization: s.optimization,
    });
    sh.evalRunner = await ForwardRunner.create(sh.evalG, { ep: s.ep });
    runs = await runArms(sh, pretrained);
  } finally {
    await closeAll(sh.train, sh.test, sh.bnLoader, sh.pool);
    await sh.stepRunner?.release();
    await sh.evalRunner?.release();
  }
  const result: FinetuneResult = {
    fraction: s.labelsFraction,
    seed: s.seed,
    labelled: sh.labelled.indices.length,
    trainImages: sh.trainSet.n,
    testImages: sh.testSet.n,
    runs,
    out: sh.out,
    skipped: skipReport([sh.trainSet, sh.testSet], [sh.train, sh.test]),
  };
  const { onRun: _onRun, commandLine: _c, ...options } = o;
  writeFileAtomic(join(sh.out, 'result.json'), `${JSON.stringify({ ...result, options }, null, 2)}\n`);
  return result;
}
