/**
 * The segmentation evaluation of UnNAS (`nas-onnx train --task seg`, paper
 * Table 2): train the 12-cell, one-reduction network with the ASPP head from
 * scratch on label maps — SGD with Nesterov momentum 0.9, weight decay 1e-4,
 * learning rate 0.1 cosine-annealed per step, no auxiliary head, no drop path;
 * random scale (shorter side to max(crop, T·2^u), T = 1024) + crop 769 + flip
 * + PCA lighting, label maps cut with their images — then after every epoch
 * the mean IoU over the validation split from one confusion matrix summed over
 * all its frames, with the per-class IoU in the log. Checkpoints, resume and
 * the --out policy come from the run lifecycle (train/runtime/run.ts).
 *
 * Evaluation runs on full frames, not sliding windows: the network is fully
 * convolutional and its ASPP image-pool branch sees the whole frame, as in
 * the release, which evaluates whole 1024×2048 Cityscapes frames padded to
 * 1025×2049 (seg-eval.ts). The shipped model.onnx takes such a frame and
 * returns per-pixel logits.
 */
import { join } from 'node:path';
import type { Genotype } from '../../graph/genotype.js';
import { genotypeJson, loadGenotype } from '../../graph/genotype.js';
import { deployMeta, serializeInference } from '../../graph/deploy.js';
import type { Graph } from '../../graph/ir.js';
import { ASPP_EVAL, type AsppSpec, buildSegNet, buildSegTrainForward } from '../../graph/nets/seg.js';
import { assembleStep, type OptimizerSpec, type StepGraphInfo } from '../../graph/training.js';
import {
  DataLoader,
  DataPool,
  type Dataset,
  openSegTrainSet,
  runDataDir,
  SegFrames,
  STREAM_DEFAULTS,
} from '../data/index.js';
import {
  newTrainState,
  StepRunner,
  stateFromTensors,
  stateTensors,
  stepCosineLr,
  type TrainState,
} from '../runtime/engine.js';
import { writeFileAtomic } from '../runtime/fsutil.js';
import { initParams, pickParams } from '../runtime/params.js';
import { Progress } from '../runtime/progress.js';
import { Run, type RunKind } from '../runtime/run.js';
import { f32, i32, type EP } from '../runtime/session.js';
import {
  boolKind,
  intKind,
  nonNegativeNumber,
  nullable,
  positiveInt,
  positiveNumber,
  probability,
  resolveSettings,
  seedKind,
  type SettingsSpec,
  textKind,
  type ValueKind,
} from '../runtime/settings.js';
import { genotypeKind } from './train-config.js';
import { evaluateSeg, SegEvaluator } from './seg-eval.js';
import { iouLine, type SegScores } from './seg-score.js';

/** A genotype name or file, or a genotype (the train command's --genotype option gives one). */
const GENOTYPE_OR_NAME: ValueKind<string | Genotype> = {
  what: 'a genotype name or file',
  parse: (t) => t,
  ok: (v): v is string | Genotype => textKind.ok(v) || (genotypeKind.ok(v) && v !== null),
};

export interface SegTrainConfig {
  /** A shipped genotype name or a genotype file, or the genotype itself. */
  genotype: string | Genotype;
  data: string;
  C: number;
  layers: number;
  classes: number;
  asppChannels: number;
  crop: number;
  scaleBase: number;
  batch: number;
  epochs: number;
  lr: number;
  lrMin: number;
  momentum: number;
  weightDecay: number;
  clip: number | null;
  lighting: number;
  flip: boolean;
  limit: number | null;
  valLimit: number | null;
  evalEvery: number;
  checkpointEvery: number | null;
  seed: number;
}

/** The settings of `train --task seg`, with UnNAS's Cityscapes evaluation defaults (paper Table 2, release configs). */
export const SEG_TRAIN_SETTINGS: SettingsSpec<SegTrainConfig> = {
  genotype: { kind: GENOTYPE_OR_NAME, default: undefined, flag: '--genotype <name|file>', help: 'genotype' },
  data: {
    kind: textKind,
    default: undefined,
    flag: '--data <root>',
    help: 'Cityscapes root (leftImg8bit/ + gtFine/) or a folder of images/ + masks/ (required)',
  },
  C: { kind: positiveInt, default: 82, flag: '--C <n>', help: 'initial channels' },
  layers: { kind: intKind(3), default: 12, flag: '--layers <n>', help: 'cells (one reduction, at ⌊L/3⌋)' },
  classes: {
    kind: positiveInt,
    default: 19,
    flag: '--classes <n>',
    help: 'classes (label maps: 0..classes-1, 255 ignored)',
  },
  asppChannels: { kind: positiveInt, default: 256, flag: '--aspp-channels <n>', help: 'ASPP width (rates 6, 12, 18)' },
  crop: { kind: positiveInt, default: 769, flag: '--crop <n>', help: 'training crop side' },
  scaleBase: {
    kind: positiveInt,
    default: 1024,
    flag: '--scale-base <n>',
    help: 'random scale: shorter side to max(crop, T·2^u), u ~ U(−1, 1)',
  },
  // BN normalizes the image-pool branch over the batch alone: one image would make it a constant
  batch: { kind: intKind(2), default: 64, flag: '--batch <n>', help: 'batch size (at least 2)' },
  epochs: { kind: positiveInt, default: 2700, flag: '--epochs <n>', help: 'epochs' },
  lr: { kind: positiveNumber, default: 0.1, flag: '--lr <x>', help: 'initial learning rate', resume: 'adjustable' },
  lrMin: { kind: nonNegativeNumber, default: 0, flag: '--lr-min <x>', help: 'final learning rate of the cosine' },
  momentum: { kind: probability, default: 0.9, flag: '--momentum <x>', help: 'Nesterov momentum' },
  weightDecay: { kind: nonNegativeNumber, default: 1e-4, flag: '--weight-decay <x>', help: 'weight decay' },
  clip: {
    kind: nullable(positiveNumber),
    default: null,
    defaultText: 'off',
    flag: '--clip <x>',
    help: 'clip the gradient norm',
  },
  lighting: { kind: nonNegativeNumber, default: 0.1, flag: '--lighting <x>', help: 'PCA lighting strength (0: off)' },
  flip: { kind: boolKind, default: true, flag: '--no-flip', help: 'no horizontal flips' },
  limit: {
    kind: nullable(positiveInt),
    default: null,
    defaultText: 'all',
    flag: '--limit <n>',
    help: 'first N training images',
  },
  valLimit: {
    kind: nullable(positiveInt),
    default: null,
    defaultText: 'all',
    flag: '--val-limit <n>',
    help: 'first N validation frames',
  },
  evalEvery: {
    kind: positiveInt,
    default: 1,
    flag: '--eval-every <n>',
    help: 'validate every N epochs',
    resume: 'adjustable',
  },
  checkpointEvery: {
    kind: nullable(positiveInt),
    default: null,
    defaultText: 'epoch ends',
    flag: '--checkpoint-every <n>',
    help: 'checkpoint every N steps too',
    resume: 'adjustable',
  },
  seed: { kind: seedKind, default: 0, flag: '--seed <n>', help: 'random seed' },
};

export const SEG_RUN: RunKind<SegTrainConfig> = {
  command: 'train',
  kind: 'train-seg',
  verb: 'trained',
  settings: SEG_TRAIN_SETTINGS,
  outputs: ['model.onnx', 'genotype.json', 'data'],
  memory: ['batch', 'crop'],
  rescue: 'lr',
};

/** How a run executes (not stored, may differ on a resume). */
export interface SegExec {
  out: string;
  resume?: boolean;
  overwrite?: boolean;
  ep?: EP;
  workers?: number;
  quiet?: boolean;
  commandLine?: (set: Record<string, string | true>) => string;
}

export interface SegEpochRecord {
  epoch: number;
  lr: number;
  train_loss: number;
  train_pixel_acc: number;
  /** Validation figures of this epoch (absent on epochs without validation). */
  val_miou?: number;
  val_pixel_acc?: number;
  val_iou?: (number | null)[];
  seconds: number;
  steps: number;
}

export interface SegTrainResult {
  history: SegEpochRecord[];
  modelPath: string;
  params: number;
  stepNodes: number;
  /** The validation frame size the model takes ([H, W], padded). */
  frame: [number, number];
  classNames: string[];
}

interface SegSetup {
  cfg: SegTrainConfig;
  genotype: Genotype;
  train: DataLoader;
  pool: DataPool;
  frames: SegFrames;
  step: StepRunner;
  stepGraph: Graph;
  evaluator: SegEvaluator;
}

const asppOf = (cfg: SegTrainConfig): AsppSpec => ({ ...ASPP_EVAL, channels: cfg.asppChannels });

/** The training step graph: forward, ignore-label loss, gradients and the Nesterov SGD update. */
function buildStep(cfg: SegTrainConfig, genotype: Genotype): { g: Graph; info: StepGraphInfo; opt: OptimizerSpec } {
  const f = buildSegTrainForward({
    genotype,
    C: cfg.C,
    layers: cfg.layers,
    classes: cfg.classes,
    aspp: asppOf(cfg),
    batch: cfg.batch,
    channels: 3,
    height: cfg.crop,
    width: cfg.crop,
  });
  const opt: OptimizerSpec = { kind: 'sgd', momentum: cfg.momentum, weightDecay: cfg.weightDecay, nesterov: true };
  const info = assembleStep(f.g, {
    loss: f.loss,
    metrics: f.metrics,
    update: (p) => p.role === 'weight',
    optimizer: opt,
    clipNorm: cfg.clip ?? undefined,
  });
  return { g: f.g, info, opt };
}

async function setUp(cfg: SegTrainConfig, run: Run<SegTrainConfig>, x: SegExec): Promise<SegSetup> {
  const genotype = typeof cfg.genotype === 'string' ? loadGenotype(cfg.genotype) : cfg.genotype;
  // the file index is kept in <out>/data: a resume sees exactly the files the run started with
  const common = { classes: cfg.classes, indexDir: runDataDir(run.dir, run.resumed === null) };
  const trainSet: Dataset = await openSegTrainSet(cfg.data, {
    ...common,
    crop: cfg.crop,
    scaleBase: cfg.scaleBase,
    lighting: cfg.lighting,
    limit: cfg.limit ?? undefined,
  });
  const frames = await SegFrames.open(cfg.data, { ...common, limit: cfg.valLimit ?? undefined });
  const pool = new DataPool({ workers: x.workers });
  const train = new DataLoader(trainSet, {
    task: { name: 'seg', numClasses: cfg.classes, flip: cfg.flip },
    batchSize: cfg.batch,
    seed: cfg.seed,
    dropLast: true,
    pool,
    masks: true,
  });
  if (train.batchesPerEpoch === 0)
    throw new Error(`${trainSet.n} training images do not fill one batch of ${cfg.batch}: lower --batch`);
  const s = buildStep(cfg, genotype);
  const step = await StepRunner.create(s.g, s.info, s.opt, { ep: x.ep });
  const evaluator = await SegEvaluator.create(
    { genotype, C: cfg.C, layers: cfg.layers, classes: cfg.classes, aspp: asppOf(cfg), frame: frames.frame },
    { ep: x.ep },
  );
  return { cfg, genotype, train, pool, frames, step, stepGraph: s.g, evaluator };
}

/** Where a run starts: fresh parameters, or the resumed checkpoint's state and history. */
function startState(run: Run<SegTrainConfig>, s: SegSetup) {
  const c = run.resumed;
  if (!c) {
    return {
      st: newTrainState(initParams(s.stepGraph, s.cfg.seed)),
      epoch: 0,
      batch: 0,
      history: [] as SegEpochRecord[],
      partial: null as EpochTotals | null,
    };
  }
  const st = stateFromTensors(c.tensors);
  st.steps = c.meta.steps as Record<string, number>;
  const history = c.meta.history as SegEpochRecord[];
  run.rewriteLog(history);
  const partial = (c.meta.partial as EpochTotals | undefined) ?? null;
  return { st, epoch: c.meta.epoch as number, batch: c.meta.batch as number, history, partial };
}

/** Sums over an epoch's steps (kept in a mid-epoch checkpoint, so a resumed epoch reports all its steps). */
interface EpochTotals {
  loss: number;
  correct: number;
  valid: number;
  seen: number;
  steps: number;
}

const noTotals = (): EpochTotals => ({ loss: 0, correct: 0, valid: 0, seen: 0, steps: 0 });

/** One epoch of training steps from batch `start`, summed into `t` (checkpointing on the way when asked). */
async function trainEpoch(
  s: SegSetup,
  run: Run<SegTrainConfig>,
  st: TrainState,
  at0: { epoch: number; start: number; t: EpochTotals },
  save: (epoch: number, batch: number) => void,
  quiet: boolean,
): Promise<void> {
  const { cfg, train } = s;
  const { epoch, start, t } = at0;
  const per = train.batchesPerEpoch;
  const bar = new Progress(`epoch ${epoch + 1}/${cfg.epochs}`, per, quiet);
  for await (const b of train.epoch(epoch, { startBatch: start })) {
    const lr = stepCosineLr(cfg.lr, cfg.lrMin, epoch, b.index, per, cfg.epochs);
    const r = await s.step.run(st, { x: f32(b.x, b.xShape), labels: i32(b.y, b.yShape) }, lr);
    const at = `epoch ${epoch + 1}, step ${b.index + 1}`;
    if (!Number.isFinite(r.loss)) throw run.nonFinite('the loss', at);
    t.loss += r.loss * b.size;
    t.correct += r.metrics.correct!;
    t.valid += r.metrics.valid!;
    t.seen += b.size;
    t.steps++;
    bar.update(
      b.index + 1,
      `loss ${(t.loss / t.seen).toFixed(3)} pixel acc ${((100 * t.correct) / Math.max(t.valid, 1)).toFixed(1)}%`,
    );
    const done = b.index + 1;
    if (cfg.checkpointEvery && done % cfg.checkpointEvery === 0 && done < per) save(epoch, done);
    await run.boundary(epoch * per + done, at, () => save(epoch, done));
  }
}

function epochRecord(
  epoch: number,
  lr: number,
  t: EpochTotals,
  scores: SegScores | null,
  seconds: number,
): SegEpochRecord {
  const rec: SegEpochRecord = {
    epoch: epoch + 1,
    lr,
    train_loss: t.loss / Math.max(t.seen, 1),
    train_pixel_acc: t.correct / Math.max(t.valid, 1),
    seconds,
    steps: t.steps,
  };
  if (scores) {
    rec.val_miou = scores.miou;
    rec.val_pixel_acc = scores.pixelAcc;
    rec.val_iou = scores.iou;
  }
  return rec;
}

function report(rec: SegEpochRecord, names: readonly string[]): string {
  const head = `epoch ${rec.epoch}: train loss ${rec.train_loss.toFixed(3)}, pixel acc ${(100 * rec.train_pixel_acc).toFixed(1)}%`;
  if (rec.val_miou === undefined) return `${head} (${rec.seconds.toFixed(1)} s)\n`;
  return (
    `${head}; val mIoU ${(100 * rec.val_miou).toFixed(2)}%, pixel acc ${(100 * rec.val_pixel_acc!).toFixed(1)}% (${rec.seconds.toFixed(1)} s)\n` +
    `  IoU: ${iouLine(rec.val_iou!, names)}\n`
  );
}

/** The shipped model: the evaluation network in inference form at the validation frame size, per-pixel logits. */
function shipModel(s: SegSetup, run: Run<SegTrainConfig>, st: TrainState): { path: string; params: number } {
  const { cfg, frames } = s;
  const [height, width] = frames.frame;
  const net = buildSegNet({
    genotype: s.genotype,
    C: cfg.C,
    layers: cfg.layers,
    classes: cfg.classes,
    aspp: asppOf(cfg),
    training: false,
    batch: 1,
    channels: 3,
    height,
    width,
  });
  net.g.output(net.logits, 'logits');
  net.g.prune();
  const meta = deployMeta(
    { c: 3, h: height, w: width, classNames: frames.classNames },
    STREAM_DEFAULTS,
    'segmentation',
  );
  const path = join(run.dir, 'model.onnx');
  writeFileAtomic(path, serializeInference(net.g, pickParams(net.g, st.params), meta));
  writeFileAtomic(join(run.dir, 'genotype.json'), genotypeJson(s.genotype));
  return { path, params: net.g.paramCount() };
}

async function closeSetup(s: SegSetup | null): Promise<void> {
  if (!s) return;
  await s.train.close();
  await s.pool.close();
  await s.step.release();
  await s.evaluator.release();
}

/** Trains and evaluates a segmentation network; see the module comment. */
export async function trainSeg(given: Partial<SegTrainConfig>, x: SegExec): Promise<SegTrainResult> {
  const cfg = resolveSettings(SEG_TRAIN_SETTINGS, given);
  const o = { out: x.out, config: cfg, resume: x.resume, overwrite: x.overwrite, commandLine: x.commandLine };
  return Run.execute(SEG_RUN, o, async (run) => {
    let s: SegSetup | null = null;
    try {
      s = await setUp(cfg, run, x);
      return await trainLoop(s, run, x);
    } finally {
      await closeSetup(s);
    }
  });
}

async function trainLoop(s: SegSetup, run: Run<SegTrainConfig>, x: SegExec): Promise<SegTrainResult> {
  const { cfg, train } = s;
  const start = startState(run, s);
  const { st, history } = start;
  let t = noTotals();
  const save = (epoch: number, batch: number): void =>
    run.save(
      epoch * train.batchesPerEpoch + batch,
      { epoch, batch, steps: st.steps, history, partial: batch ? t : null },
      stateTensors(st),
      batch ? `epoch ${epoch + 1}, step ${batch}` : `end of epoch ${epoch}`,
    );
  for (let epoch = start.epoch; epoch < cfg.epochs; epoch++) {
    const t0 = performance.now();
    const resumed = epoch === start.epoch;
    t = resumed && start.partial ? { ...start.partial } : noTotals();
    // the record's learning rate: the one of the epoch's first step
    const lr = stepCosineLr(cfg.lr, cfg.lrMin, epoch, 0, train.batchesPerEpoch, cfg.epochs);
    await trainEpoch(s, run, st, { epoch, start: resumed ? start.batch : 0, t }, save, !!x.quiet);
    const validate = (epoch + 1) % cfg.evalEvery === 0 || epoch + 1 === cfg.epochs;
    const scores = validate
      ? await evaluateSeg(s.evaluator, pickParams(s.evaluator.graph, st.params), s.frames, x.quiet)
      : null;
    const rec = epochRecord(epoch, lr, t, scores, (performance.now() - t0) / 1000);
    history.push(rec);
    run.log(rec);
    if (!x.quiet) process.stderr.write(report(rec, s.frames.classNames));
    save(epoch + 1, 0);
  }
  run.endLoop();
  const model = shipModel(s, run, st);
  return {
    history,
    modelPath: model.path,
    params: model.params,
    stepNodes: s.stepGraph.nodes.length,
    frame: s.frames.frame,
    classNames: s.frames.classNames,
  };
}
