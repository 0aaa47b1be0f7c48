/**
 * DARTS search step benchmark: the step runSearch runs (train/search/darts.ts
 * createSearchRunners + searchStep: α gradient, host Adam on α, in-graph SGD
 * step of the weights), on CIFAR-shaped random data (3×32×32).
 *
 *   node dist/bench/search-step.js [--C 16] [--layers 8] [--batch 64] [--order 1|2] [--size 32]
 *        [--stem cifar|imagenet (default: imagenet from 64 px)] [--objective cls|rot] [--ep cpu|cuda] [--steps 3] [--warmup 1] [--threads N] [--opt disabled|basic|extended|all] [--arena] [--dry] [--json]
 *
 * --dry builds the graphs only and prints their node counts and bytes per step (no sessions, no steps).
 *
 * Prints the node counts of the w-step, α-grad and (second order) full-grad
 * graphs, session start-up time, the time per search step (wall clock, and
 * the process's CPU time, which a busy shared host disturbs less; min and
 * median over --steps after --warmup steps) and the bytes fed to / fetched
 * from ORT per step (sum of the input and output tensor sizes of every run in
 * the step).
 */
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import type * as ort from 'onnxruntime-node';
import { Rng } from '../graph/rng.js';
import { newTrainState } from '../train/runtime/engine.js';
import { initParams } from '../train/runtime/params.js';
import { f32, i64, type EP, type SessionOptions } from '../train/runtime/session.js';
import { resolveTask, type TaskName } from '../train/data/index.js';
import { buildSearchGraphs, defaultStem } from '../graph/nets/search.js';
import { createSearchRunners, searchStep, type SearchRunners } from '../train/search/darts.js';
import { args, MiB, peakRssMiB } from './util.js';

const a = args({
  C: 16,
  layers: 8,
  batch: 64,
  order: 1,
  objective: 'cls',
  ep: 'cpu',
  steps: 3,
  warmup: 1,
  threads: 0,
  opt: 'disabled',
  arena: false,
  size: 32,
  stem: '',
  dry: false,
  json: false,
});
const order = Number(a.order) as 1 | 2;
if (order !== 1 && order !== 2) throw new Error('--order must be 1 or 2');
const objective = String(a.objective) as TaskName;
const size = Number(a.size);
const threads = Number(a.threads) || undefined;
const task = resolveTask(objective, { c: 3, h: size, w: size, classes: 10, labelled: true });
const batch = Number(a.batch);
const rows = task.xShape(batch)[0]!;
const stem = a.stem === 'cifar' || a.stem === 'imagenet' ? a.stem : defaultStem(size);

/** Bytes fed and fetched by one search step: first order α-grad + w; second order 2 × full-grad + 2 × α-grad + w. */
function stepBytes(io: SearchRunners['io']): { fed: number; fetched: number } {
  const k = (w: 'fed' | 'fetched'): number =>
    order === 1 ? io.alphaGrad[w] + io.wStep[w] : 2 * io.allGrad![w] + 2 * io.alphaGrad[w] + io.wStep[w];
  return { fed: k('fed'), fetched: k('fetched') };
}

if (a.dry) {
  const gs = buildSearchGraphs(task, {
    C: Number(a.C),
    layers: Number(a.layers),
    batchRows: rows,
    order,
    stem,
    momentum: 0.9,
    weightDecay: 3e-4,
    clip: 5,
  });
  const b = stepBytes(gs.io);
  console.log(
    JSON.stringify({
      config: { C: Number(a.C), layers: Number(a.layers), batch, rows, objective, order, stem, input: [3, size, size] },
      nodes: gs.nodes,
      bytes_fed_per_step: b.fed,
      bytes_fetched_per_step: b.fetched,
    }),
  );
  process.exit(0);
}

let t = performance.now();
const r = await createSearchRunners(task, {
  C: Number(a.C),
  layers: Number(a.layers),
  batchRows: rows,
  order,
  stem,
  momentum: 0.9,
  weightDecay: 3e-4,
  clip: 5,
  ep: String(a.ep) as EP,
  threads,
  optimization: String(a.opt) as SessionOptions['optimization'],
  cpuMemArena: !!a.arena,
});
const setupMs = performance.now() - t;

const rng = new Rng(1);
const batchFeeds = (): Record<string, ort.Tensor> => {
  const x = new Float32Array(rows * 3 * size * size);
  for (let i = 0; i < x.length; i++) x[i] = rng.normal();
  const ys = task.yShape(batch);
  const n = ys.reduce((p, q) => p * q, 1);
  const y = Array.from({ length: n }, () => rng.int(Math.max(1, task.numClasses)));
  return r.hasLabels ? { x: f32(x, [rows, 3, size, size]), labels: i64(y, ys) } : { x: f32(x, [rows, 3, size, size]) };
};
const st = newTrainState(initParams(r.w.graph, 0));
for (const n of r.archNames) {
  st.opt.set(`${n}@exp_avg`, new Float32Array(st.params.get(n)!.length));
  st.opt.set(`${n}@exp_avg_sq`, new Float32Array(st.params.get(n)!.length));
}
const arch = { lr: 3e-4, beta1: 0.5, beta2: 0.999, eps: 1e-8, weightDecay: 1e-3 };
const times: number[] = [];
const cpuTimes: number[] = [];
const steps = Math.max(1, Number(a.steps));
const warmup = Math.max(0, Number(a.warmup));
for (let i = 0; i < steps + warmup; i++) {
  const train = batchFeeds();
  const val = batchFeeds();
  t = performance.now();
  const c0 = process.cpuUsage();
  const s = await searchStep(r, st, train, val, { order, lr: 0.025, arch });
  if (!Number.isFinite(s.trainLoss) || !Number.isFinite(s.valLoss)) throw new Error('non-finite loss');
  const wall = (performance.now() - t) / 1000;
  const cu = process.cpuUsage(c0);
  const cpu = (cu.user + cu.system) / 1e6;
  if (i >= warmup) {
    times.push(wall);
    cpuTimes.push(cpu);
  }
  if (!a.json)
    process.stderr.write(
      `step ${i}${i < warmup ? ' (warm-up)' : ''}: ${wall.toFixed(2)} s wall, ${cpu.toFixed(2)} s CPU, loss ${s.trainLoss.toFixed(3)} val ${s.valLoss.toFixed(3)}\n`,
    );
}
const mid = (xs: number[]): number => {
  const q = [...xs].sort((x, y) => x - y);
  return q.length % 2 ? q[(q.length - 1) / 2]! : (q[q.length / 2 - 1]! + q[q.length / 2]!) / 2;
};
await r.release();

const { fed, fetched } = stepBytes(r.io);
const rec = {
  config: {
    C: Number(a.C),
    layers: Number(a.layers),
    batch,
    rows,
    objective,
    order,
    ep: a.ep,
    threads: threads ?? `ORT default (${availableParallelism()} CPUs)`,
    opt: a.opt,
    arena: !!a.arena,
    stem,
    input: [3, size, size],
  },
  nodes: r.nodes,
  setup_s: +(setupMs / 1000).toFixed(1),
  s_per_step: +mid(times).toFixed(3),
  s_per_step_min: +Math.min(...times).toFixed(3),
  cpu_s_per_step: +mid(cpuTimes).toFixed(3),
  cpu_s_per_step_min: +Math.min(...cpuTimes).toFixed(3),
  steps_timed: times.length,
  bytes_fed_per_step: fed,
  bytes_fetched_per_step: fetched,
  peak_rss_mib: +peakRssMiB().toFixed(0),
};
if (a.json) console.log(JSON.stringify(rec));
else {
  console.log(
    `DARTS search step, order ${order}, ${objective}, C=${a.C} layers=${a.layers} batch=${batch} (${rows} rows of 3×${size}×${size}), ${stem} stem, ep ${a.ep}, ${threads ?? `ORT's default`} threads (${availableParallelism()} CPUs), graph optimization ${a.opt}, CPU arena ${a.arena ? 'on' : 'off'}\n` +
      `  nodes: w-step ${r.nodes.wStep}, α-grad ${r.nodes.alphaGrad}${r.nodes.allGrad ? `, full-grad ${r.nodes.allGrad}` : ''}\n` +
      `  graphs + sessions: ${rec.setup_s} s\n` +
      `  ${rec.s_per_step} s/step wall (median of ${times.length}; min ${rec.s_per_step_min}), ${rec.cpu_s_per_step} s CPU/step (min ${rec.cpu_s_per_step_min})\n` +
      `  per step: fed ${MiB(fed)} (${fed} B), fetched ${MiB(fetched)} (${fetched} B)\n` +
      `  peak RSS ${rec.peak_rss_mib} MiB`,
  );
  console.log(JSON.stringify(rec));
}
