/**
 * Fine-tuning an SSWP-NAS network on a fraction of the labels
 * (`nas-onnx finetune --from RUN --labels-fraction F`): the searched,
 * discretized network (RUN/cells.json + RUN/final) gets a fresh linear
 * classifier in place of the projection head and is trained on a seeded,
 * class-stratified fraction F of the training labels; beside it the same
 * architecture is trained from random initialization with the same budget
 * (epochs, batch, learning rate, seed, data order). Both report their test
 * accuracy.
 *
 * Training: SGD momentum 0.9, weight decay 3e-4, lr cosine to `lrMin` per
 * epoch, gradient clipping 5, flip + padded-crop (+ optional cutout)
 * augmentation; BN in training form updates its running statistics, starting
 * from the recomputed search statistics for the concomitant run. No auxiliary
 * head or drop path. Both runs normalize images with the search's constants,
 * and share the classifier's initial values (same seed, same graph).
 *
 * The labelled subset: per class, the rows of that class in a seeded order
 * (`Rng.derive(seed, LABEL_STREAM, class)`), the first max(1, round(F·n_c)).
 * Output: <out>/<init>/log.jsonl, model.onnx (logits), and <out>/result.json.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type * as ort from 'onnxruntime-node';
import { Rng } from '../../graph/rng.js';
import { deployMeta, serializeInference } from '../../graph/deploy.js';
import { assembleStep, correctCount, crossEntropy, type OptimizerSpec } from '../../graph/training.js';
import { buildSswpNetwork, type CellOps } from '../../graph/nets/sswp.js';
import { ForwardRunner, StepRunner, newTrainState, stepCosineLr } from '../runtime/engine.js';
import { writeFileAtomic } from '../runtime/fsutil.js';
import { initParams, pickParams } from '../runtime/params.js';
import { Progress } from '../runtime/progress.js';
import { f32, i64, type EP, type SessionOptions } from '../runtime/session.js';
import { appendJsonLine } from '../runtime/log.js';
import { TrainError } from '../runtime/errors.js';
import { closeAll, evaluate } from './trainer.js';
import { loadSswpNetwork } from '../search/sswp/search.js';
import {
  DataLoader,
  DataPool,
  type Dataset,
  limitDataset,
  loadDataset,
  type SkipReport,
  type Subset,
  skipReport,
  subset,
} from '../data/index.js';

export const LABEL_STREAM = 0x1abe1;

export type Init = 'concomitant' | 'random';

export interface FinetuneOptions {
  /** SSWP run directory (cells.json, final/). */
  from: string;
  labelsFraction: number;
  /** Data set (default: the search's). */
  dataset?: string;
  out?: string;
  epochs: number;
  batch: number;
  lr?: number;
  lrMin?: number;
  momentum?: number;
  weightDecay?: number;
  clip?: number;
  cutout?: number;
  evalBatch?: number;
  /** First N training images (default: the search's --limit). */
  limit?: number;
  testLimit?: number;
  /** Crop size of a streamed image set (default: the search's --size). */
  size?: number;
  /** Skip unreadable images (reported in the result) instead of failing. */
  skipCorrupt?: boolean;
  seed?: number;
  ep?: EP;
  workers?: number;
  quiet?: boolean;
  inits?: Init[];
  /** ORT graph optimization level of the training step graph (default 'disabled', as train/sswp.ts). */
  optimization?: SessionOptions['optimization'];
}

export interface FinetuneRun {
  init: Init;
  testAcc: number;
  testLoss: number;
  trainLoss: number;
  trainAcc: number;
  seconds: number;
  modelPath: string;
}

export interface FinetuneResult {
  fraction: number;
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

export async function runFinetune(o: FinetuneOptions): Promise<FinetuneResult> {
  const net = loadSswpNetwork(o.from);
  const seed = o.seed ?? 0;
  const cfg = net.config;
  const dataSpec = o.dataset ?? (cfg.data as string | undefined);
  if (!dataSpec) throw new TrainError('give --dataset: the search run does not record its data');
  const limit = o.limit ?? (cfg.limit as number | null) ?? undefined;
  const data = { crop: o.size ?? (cfg.size as number | undefined), skipCorrupt: o.skipCorrupt };
  const trainSet = limitDataset(await loadDataset(dataSpec, { ...data, split: 'train' }), limit);
  const testSet = limitDataset(await loadDataset(dataSpec, { ...data, split: 'test' }), o.testLimit);
  const input = [trainSet.c, trainSet.h, trainSet.w];
  if (JSON.stringify(input.slice(0, 1)) !== JSON.stringify(net.arch.input.slice(0, 1))) {
    throw new TrainError(`${dataSpec} has ${trainSet.c} channels but the network was searched on ${net.arch.input[0]}`);
  }
  const labelled = labelledFraction(trainSet, o.labelsFraction, seed);
  const classes = trainSet.classes;
  const batch = Math.min(o.batch, labelled.indices.length);
  const evalBatch = o.evalBatch ?? Math.max(batch, 100);
  const out = o.out ?? join(o.from, `finetune-${o.labelsFraction}`);
  mkdirSync(out, { recursive: true });
  const cells = net.arch.cells.map((c) => c.ops) as CellOps[];
  const shape = { C: net.arch.C, layers: net.arch.layers, cells };

  // graphs, shared by both runs
  const m = buildSswpNetwork({ ...shape, batch, input, training: true, classes });
  const labels = m.g.input('labels', 'int64', [batch]);
  const loss = crossEntropy(m.g, m.logits!, labels);
  const opt: OptimizerSpec = { kind: 'sgd', momentum: o.momentum ?? 0.9, weightDecay: o.weightDecay ?? 3e-4 };
  const info = assembleStep(m.g, {
    loss,
    metrics: { correct: correctCount(m.g, m.logits!, labels) },
    update: (p) => p.role === 'weight',
    optimizer: opt,
    clipNorm: o.clip ?? 5,
  });
  const e = buildSswpNetwork({ ...shape, batch: evalBatch, input, training: false, classes });
  e.g.output(e.logits!, 'logits');
  e.g.prune();
  e.g.meta.set('nas_onnx.kind', 'sswp-classifier');
  e.g.meta.set('nas_onnx.sswp_cells', JSON.stringify(net.arch));

  const pool = new DataPool({ workers: o.workers });
  const norm = { mean: net.normalization.mean, std: net.normalization.std };
  const train = new DataLoader(labelled, {
    task: { name: 'cls', cutout: o.cutout ?? 0 },
    batchSize: batch,
    seed,
    dropLast: true,
    pool,
    ...norm,
  });
  const test = new DataLoader(testSet, {
    task: { name: 'cls', augment: false },
    batchSize: evalBatch,
    seed,
    shuffle: false,
    pool,
    ...norm,
  });
  const stepRunner = await StepRunner.create(m.g, info, opt, { ep: o.ep, optimization: o.optimization ?? 'disabled' });
  const evalRunner = await ForwardRunner.create(e.g, { ep: o.ep });
  const runs: FinetuneRun[] = [];
  try {
    for (const init of o.inits ?? (['concomitant', 'random'] as Init[])) {
      const t0 = Date.now();
      const runDir = join(out, init);
      mkdirSync(runDir, { recursive: true });
      const values = initParams(m.g, seed);
      if (init === 'concomitant') {
        let copied = 0;
        for (const [k, v] of net.params) {
          if (values.has(k) && values.get(k)!.length === v.length) {
            values.set(k, Float32Array.from(v));
            copied++;
          }
        }
        const trunk = [...m.g.params.keys()].filter((k) => !k.startsWith('classifier/'));
        if (copied !== trunk.length)
          throw new TrainError(
            `${o.from}: the final checkpoint holds ${copied} of the network's ${trunk.length} trunk tensors`,
          );
      }
      const st = newTrainState(values);
      let last = { loss: 0, acc: 0 };
      for (let epoch = 0; epoch < o.epochs; epoch++) {
        const lrAt = (i: number): number =>
          stepCosineLr(o.lr ?? 0.025, o.lrMin ?? 0, epoch, i, train.batchesPerEpoch, o.epochs);
        const lr = lrAt(0);
        const bar = new Progress(
          `finetune ${init} F=${o.labelsFraction} epoch ${epoch + 1}/${o.epochs}`,
          train.batchesPerEpoch,
          o.quiet,
        );
        let lossSum = 0;
        let correct = 0;
        let seen = 0;
        for await (const b of train.epoch(epoch)) {
          const feeds: Record<string, ort.Tensor> = { x: f32(b.x, b.xShape), labels: i64(b.y, [b.size]) };
          const r = await stepRunner.run(st, feeds, lrAt(b.index));
          if (!Number.isFinite(r.loss))
            throw new TrainError(`${init}: loss became ${r.loss} at epoch ${epoch + 1}: lower --lr`);
          lossSum += r.loss * b.size;
          correct += r.metrics.correct!;
          seen += b.size;
          bar.update(b.index + 1, `loss ${(lossSum / seen).toFixed(3)} acc ${((100 * correct) / seen).toFixed(1)}%`);
        }
        last = { loss: lossSum / Math.max(seen, 1), acc: correct / Math.max(seen, 1) };
        appendJsonLine(join(runDir, 'log.jsonl'), { epoch: epoch + 1, lr, train_loss: last.loss, train_acc: last.acc });
      }
      const evalParams = pickParams(e.g, st.params);
      const ev = await evaluate(evalRunner, evalParams, test, evalBatch, input);
      const seconds = (Date.now() - t0) / 1000;
      appendJsonLine(join(runDir, 'log.jsonl'), { final: true, test_acc: ev.acc, test_loss: ev.loss, seconds });
      const modelPath = join(runDir, 'model.onnx');
      writeFileAtomic(modelPath, serializeInference(e.g, evalParams, deployMeta(trainSet, net.normalization)));
      runs.push({
        init,
        testAcc: ev.acc,
        testLoss: ev.loss,
        trainLoss: last.loss,
        trainAcc: last.acc,
        seconds,
        modelPath,
      });
      if (!o.quiet)
        process.stderr.write(
          `${init}: test accuracy ${(100 * ev.acc).toFixed(2)}% (train acc ${(100 * last.acc).toFixed(1)}%, ${seconds.toFixed(1)} s)\n`,
        );
    }
  } finally {
    await closeAll(train, test, pool, stepRunner, evalRunner);
  }
  const result: FinetuneResult = {
    fraction: o.labelsFraction,
    labelled: labelled.indices.length,
    trainImages: trainSet.n,
    testImages: testSet.n,
    runs,
    out,
    skipped: skipReport([trainSet, testSet], [train, test]),
  };
  writeFileAtomic(
    join(out, 'result.json'),
    `${JSON.stringify({ ...result, options: { ...o, inits: o.inits ?? ['concomitant', 'random'] } }, null, 2)}\n`,
  );
  return result;
}
