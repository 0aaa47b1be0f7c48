/**
 * Step benchmark: time, node count, host↔device bytes and peak memory of
 *   --what search  the DARTS supernet weight step (forward + backward + clipped SGD), C=16, 8 cells, batch 64
 *   --what train   the evaluation-network training step (DARTS_V2, C=36, 20 cells, batch 96, aux head, drop path)
 *   --what infer   the forward of the shipped inference model (DARTS_V2, C=36, 20 cells)
 * on --ep cpu|cuda, with the graph-size levers on (default) or off (--no-share-relu).
 *
 *   node dist/bench/steps.js --what search [--C 16 --layers 8 --batch 64 --size 32] [--ep cuda] [--runs 5]
 *
 * Bytes are what one run feeds and fetches: on the CUDA EP the node binding copies all of it across PCIe.
 */
import type * as ort from 'onnxruntime-node';
import { loadGenotype } from '../graph/genotype.js';
import { LEVERS } from '../graph/nets/layers.js';
import { buildEvalNet } from '../graph/nets/models.js';
import { serialize } from '../graph/onnx.js';
import { assembleStep, correctCount, crossEntropy, type FlatGroup } from '../graph/training.js';
import { packFlat } from '../train/runtime/engine.js';
import { add, mul } from '../graph/ops/index.js';
import { initParams } from '../train/runtime/params.js';
import { Session, f32, i64, scalarF32, type EP } from '../train/runtime/session.js';
import { buildSearchForward } from '../graph/nets/search.js';
import type { Graph } from '../graph/ir.js';
import { MiB, args, median, peakRssMiB, tensorBytes } from './util.js';

const a = args({
  what: 'search',
  C: 0,
  layers: 0,
  batch: 0,
  size: 32,
  ep: 'cpu',
  runs: 5,
  'no-share-relu': false,
  'no-fused-bn': false,
  'no-flat': false,
  genotype: 'darts_v2',
});
const what = String(a.what);
if (a['no-share-relu']) LEVERS.shareRelu = false;
if (a['no-fused-bn']) LEVERS.fusedBn = false;
const flat = !a['no-flat'];
const ep = String(a.ep) as EP;
const size = Number(a.size);

function feedsFor(
  g: Graph,
  extra: Record<string, ort.Tensor>,
  slots: string[],
  updated: string[],
  fg: FlatGroup | null,
): Record<string, ort.Tensor> {
  const vals = initParams(g, 0);
  const feeds: Record<string, ort.Tensor> = { ...extra };
  for (const p of g.params.values()) if (!g.flatMember.has(p.name)) feeds[p.name] = f32(vals.get(p.name)!, p.shape);
  if (fg) {
    feeds[fg.name] = f32(
      packFlat(fg, (m) => vals.get(m), 'parameter'),
      [fg.size],
    );
    for (const s of slots) feeds[`${fg.name}@${s}`] = f32(new Float32Array(fg.size), [fg.size]);
  }
  for (const n of updated)
    for (const s of slots) feeds[`${n}@${s}`] = f32(new Float32Array(vals.get(n)!.length), g.params.get(n)!.shape);
  return feeds;
}

function randn(n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin(i * 12.9898) * 0.5;
  return x;
}

let g: Graph;
let feeds: Record<string, ort.Tensor>;
let parts = '';
if (what === 'search' || what === 'train') {
  let info: ReturnType<typeof assembleStep>;
  let batch: number;
  if (what === 'search') {
    batch = Number(a.batch) || 64;
    const C = Number(a.C) || 16;
    const layers = Number(a.layers) || 8;
    const task = {
      name: 'cls',
      numClasses: 10,
      groupSize: 1,
      inputShape: [3, size, size] as [number, number, number],
      targetKind: 'class',
      batchMultiplier: 1,
    } as never;
    const fw = buildSearchForward(task, { C, layers, batchRows: batch });
    g = fw.g;
    info = assembleStep(g, {
      loss: fw.loss,
      metrics: fw.metrics,
      update: (p) => p.role === 'weight',
      optimizer: { kind: 'sgd', momentum: 0.9, weightDecay: 3e-4 },
      clipNorm: 5,
      stateOutputs: false,
      flat,
    });
    parts = `supernet C=${C} layers=${layers} batch=${batch}`;
  } else {
    batch = Number(a.batch) || 96;
    const C = Number(a.C) || 36;
    const layers = Number(a.layers) || 20;
    const m = buildEvalNet({
      genotype: loadGenotype(String(a.genotype)),
      net: 'cifar',
      C,
      layers,
      classes: 10,
      training: true,
      auxiliary: true,
      dropPath: true,
      batch,
      channels: 3,
      size,
    });
    g = m.g;
    const labels = g.input('labels', 'int64', [batch]);
    const loss = add(
      g,
      crossEntropy(g, m.logits, labels),
      mul(g, crossEntropy(g, m.auxLogits!, labels), g.scalar(0.4)),
    );
    info = assembleStep(g, {
      loss,
      metrics: { correct: correctCount(g, m.logits, labels) },
      update: (p) => p.role === 'weight',
      optimizer: { kind: 'sgd', momentum: 0.9, weightDecay: 3e-4 },
      clipNorm: 5,
      flat,
    });
    parts = `${a.genotype} C=${C} layers=${layers} batch=${batch}`;
  }
  const extra: Record<string, ort.Tensor> = {
    x: f32(randn(batch * 3 * size * size), [batch, 3, size, size]),
    labels: i64(
      Array.from({ length: batch }, (_, i) => i % 10),
      [batch],
    ),
    lr: scalarF32(0.025),
  };
  for (const v of g.inputs)
    if (v.name.includes('drop_path_mask')) extra[v.name] = f32(new Float32Array(batch).fill(1), v.shape);
  feeds = feedsFor(g, extra, info.slots, info.updated, info.flat);
  parts += ` | nodes forward ${info.nodes.forward} backward ${info.nodes.backward} update ${info.nodes.update}`;
} else if (what === 'infer') {
  const batch = Number(a.batch) || 1;
  const m = buildEvalNet({
    genotype: loadGenotype(String(a.genotype)),
    net: 'cifar',
    C: Number(a.C) || 36,
    layers: Number(a.layers) || 20,
    classes: 10,
    training: false,
    batch,
    channels: 3,
    size,
  });
  g = m.g;
  g.output(m.logits, 'logits');
  g.prune();
  feeds = { x: f32(randn(batch * 3 * size * size), [batch, 3, size, size]) };
  parts = `${a.genotype} inference batch=${batch}`;
} else {
  throw new Error(`--what must be search, train or infer`);
}

const bytes =
  what === 'infer'
    ? serialize(g, { params: 'initializers', values: initParams(g, 0) })
    : serialize(g, { params: 'inputs', valueInfo: false });
const t0 = performance.now();
const s = await Session.create(bytes, { ep, optimization: what === 'infer' ? 'all' : 'disabled' });
const createMs = performance.now() - t0;
const times: number[] = [];
let outBytes = 0;
const runs = Number(a.runs);
for (let i = 0; i < runs + 1; i++) {
  const t = performance.now();
  const out = await s.run(feeds);
  if (i > 0) times.push(performance.now() - t);
  outBytes = tensorBytes(out);
}
await s.release();
const inBytes = tensorBytes(feeds);
const rec = {
  what,
  ep,
  config: parts,
  nodes: g.nodes.length,
  levers: { ...LEVERS, flat },
  ms_per_step: +median(times).toFixed(1),
  session_create_ms: +createMs.toFixed(0),
  bytes_in: inBytes,
  bytes_out: outBytes,
  peak_rss_mib: +peakRssMiB().toFixed(0),
};
console.log(
  `${what} on ${ep}: ${parts}\n  ${g.nodes.length} nodes, ${rec.ms_per_step} ms/step (median of ${runs}), session ${rec.session_create_ms} ms, host→device ${MiB(inBytes)}, device→host ${MiB(outBytes)}, peak RSS ${rec.peak_rss_mib} MiB`,
);
console.log(JSON.stringify(rec));
