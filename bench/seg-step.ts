/**
 * Segmentation step benchmark: time, node count, bytes fed/fetched and peak
 * memory of
 *   --what train   a training step of UnNAS's segmentation evaluation network
 *                  (genotype cells, one reduction, ASPP 256 [6,12,18]; forward,
 *                  backward, Nesterov SGD) — what `train --task seg` runs;
 *   --what search  the seg objective's search steps (supernet, one reduction,
 *                  ASPP 64 [6]): the weight step and the α-gradient step — what
 *                  `search --objective seg` runs each step;
 *   --what eval    the full-frame confusion-matrix graph of the evaluation network.
 *
 *   node dist/bench/seg-step.js --what train --C 82 --layers 12 --batch 2 --size 769 [--genotype darts_v2]
 *   node dist/bench/seg-step.js --what search --C 16 --layers 12 --batch 2 --size 321
 *
 * Random data; labels with every 7th pixel 255. Medians over --runs after one warm-up run.
 */
import type * as ort from 'onnxruntime-node';
import { loadGenotype } from '../graph/genotype.js';
import type { Graph } from '../graph/ir.js';
import { buildSegEvalGraph, buildSegTrainForward } from '../graph/nets/seg.js';
import { buildSearchGraphs, graphIoBytes } from '../graph/nets/search.js';
import { assembleStep, type OptimizerSpec } from '../graph/training.js';
import { Rng } from '../graph/rng.js';
import { ForwardRunner, newTrainState, StepRunner } from '../train/runtime/engine.js';
import { initParams } from '../train/runtime/params.js';
import { f32, i32, i64, type EP } from '../train/runtime/session.js';
import { MiB, args, median, peakRssMiB } from './util.js';

const a = args({
  what: 'train',
  C: 82,
  layers: 12,
  batch: 2,
  size: 769,
  classes: 19,
  genotype: 'darts_v2',
  ep: 'cpu',
  runs: 3,
});
const [C, layers, batch, size, classes, runs] = ['C', 'layers', 'batch', 'size', 'classes', 'runs'].map((k) =>
  Number(a[k]),
);
const ep = String(a.ep) as EP;
const rng = new Rng(7);

function batchData(rows: number, h: number, w: number): { x: Float32Array; labels: Int32Array } {
  const x = Float32Array.from({ length: rows * 3 * h * w }, () => rng.normal());
  const labels = Int32Array.from({ length: rows * h * w }, (_, i) => (i % 7 === 6 ? 255 : rng.int(classes!)));
  return { x, labels };
}

async function timed(run: () => Promise<unknown>): Promise<number> {
  await run();
  const ts: number[] = [];
  for (let i = 0; i < runs!; i++) {
    const t0 = performance.now();
    await run();
    ts.push((performance.now() - t0) / 1000);
  }
  return median(ts);
}

function line(what: string, g: Graph, seconds: number): string {
  const io = graphIoBytes(g);
  return `${what}: ${seconds.toFixed(2)} s/step, ${g.nodes.length} nodes, ${g.paramCount(['weight']).toLocaleString('en-US')} weights, fed ${MiB(io.fed)}, fetched ${MiB(io.fetched)}`;
}

async function train(): Promise<string[]> {
  const f = buildSegTrainForward({
    genotype: loadGenotype(String(a.genotype)),
    C: C!,
    layers: layers!,
    classes: classes!,
    batch: batch!,
    channels: 3,
    height: size!,
    width: size!,
  });
  const opt: OptimizerSpec = { kind: 'sgd', momentum: 0.9, weightDecay: 1e-4, nesterov: true };
  const info = assembleStep(f.g, {
    loss: f.loss,
    metrics: f.metrics,
    update: (p) => p.role === 'weight',
    optimizer: opt,
  });
  const runner = await StepRunner.create(f.g, info, opt, { ep });
  const st = newTrainState(initParams(f.g, 0));
  const d = batchData(batch!, size!, size!);
  const feeds = { x: f32(d.x, [batch!, 3, size!, size!]), labels: i32(d.labels, [batch!, size!, size!]) };
  const s = await timed(() => runner.run(st, feeds, 0.01));
  await runner.release();
  return [line(`train step (${a.genotype}, C=${C}, ${layers} cells, batch ${batch}, ${size}²)`, f.g, s)];
}

async function search(): Promise<string[]> {
  const task = { name: 'seg' as const, numClasses: classes!, groupSize: 1, inputShape: [3, size!, size!] };
  const gs = buildSearchGraphs(task, {
    C: C!,
    layers: layers!,
    batchRows: batch!,
    order: 1,
    momentum: 0.9,
    weightDecay: 3e-4,
    clip: 5,
  });
  const w = await StepRunner.create(gs.w.f.g, gs.w.info, gs.sgd, { ep });
  const al = await StepRunner.create(gs.alpha.f.g, gs.alpha.info, null, { ep });
  const st = newTrainState(initParams(gs.w.f.g, 0));
  const d = batchData(batch!, size!, size!);
  const feeds: Record<string, ort.Tensor> = {
    x: f32(d.x, [batch!, 3, size!, size!]),
    labels: i64(d.labels, [batch!, size!, size!]),
  };
  const sw = await timed(() => w.run(st, feeds, 0.01));
  const sa = await timed(() => al.run(st, feeds));
  await w.release();
  await al.release();
  const what = `C=${C}, ${layers} cells, batch ${batch}, ${size}²`;
  return [
    line(`search weight step (${what})`, gs.w.f.g, sw),
    line(`search α-gradient step (${what})`, gs.alpha.f.g, sa),
  ];
}

async function evalFrame(): Promise<string[]> {
  const g = buildSegEvalGraph({
    genotype: loadGenotype(String(a.genotype)),
    C: C!,
    layers: layers!,
    classes: classes!,
    batch: 1,
    channels: 3,
    height: size!,
    width: size!,
  });
  const runner = await ForwardRunner.create(g, { ep });
  const params = initParams(g, 0);
  const d = batchData(1, size!, size!);
  const feeds = { x: f32(d.x, [1, 3, size!, size!]), labels: i32(d.labels, [1, size!, size!]) };
  const s = await timed(() => runner.run(params, feeds));
  await runner.release();
  return [line(`full-frame evaluation (${a.genotype}, C=${C}, ${layers} cells, ${size}²)`, g, s)];
}

const what = String(a.what);
const lines = what === 'train' ? await train() : what === 'search' ? await search() : await evalFrame();
for (const l of lines) console.log(l);
console.log(`peak RSS ${peakRssMiB().toFixed(0)} MiB (${ep})`);
