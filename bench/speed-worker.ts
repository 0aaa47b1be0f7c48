/**
 * The nas-onnx side of bench/speed.ts: builds one step kind (DARTS search step
 * of first or second order, or the DARTS_V2 evaluation-network training step)
 * and runs it one step per `step` line read from stdin, answering a JSON line
 * per command (the protocol of bench/torch_ref/speed.py). With --profile DIR
 * the sessions write ORT profiles there; `profile` summarizes the last step.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type * as ort from 'onnxruntime-node';
import { loadGenotype } from '../graph/genotype.js';
import type { Lowering } from '../graph/ir.js';
import { LEVERS } from '../graph/nets/layers.js';
import { buildEvalNet } from '../graph/nets/models.js';
import { add, mul } from '../graph/ops/index.js';
import { Rng } from '../graph/rng.js';
import { assembleStep, correctCount, crossEntropy, type OptimizerSpec } from '../graph/training.js';
import { resolveTask } from '../train/data/index.js';
import { newTrainState, StepRunner, type TrainState } from '../train/runtime/engine.js';
import { initParams } from '../train/runtime/params.js';
import { f32, i64, loweringFor, type EP } from '../train/runtime/session.js';
import { createSearchRunners, searchStep, type SearchRunners } from '../train/search/darts.js';
import { args, peakRssMiB } from './util.js';

const W_LR = 0.025;
const ARCH = { lr: 3e-4, beta1: 0.5, beta2: 0.999, eps: 1e-8, weightDecay: 1e-3 };
const SGD: OptimizerSpec = { kind: 'sgd', momentum: 0.9, weightDecay: 3e-4 };
const AUX_WEIGHT = 0.4;
const DROP_PATH = 0.2;

interface WorkerOpts {
  kind: string;
  C: number;
  layers: number;
  batch: number;
  threads: number;
  ep: EP;
  spinning: boolean;
  profile: string;
  /** Lever switches (--set a,b; LEVER_NAMES). */
  set: Set<string>;
}

/**
 * Lever switches (--set): `portable` no EP lowering at all; `no-nchwc` the CPU formulations without
 * the NCHWc depthwise kernels; `no-share-pools`, `no-share-relu`, `no-fused-bn` the graph-size levers
 * of graph/nets/layers.ts; `arena`/`no-arena`, `mem-pattern`/`no-mem-pattern` ORT's memory options.
 */
const LEVER_NAMES = [
  'portable',
  'no-nchwc',
  'no-share-pools',
  'no-share-relu',
  'no-fused-bn',
  'arena',
  'no-arena',
  'mem-pattern',
  'no-mem-pattern',
];

/** The graph-size levers off as --set asks (before any graph is built). */
function graphLevers(set: Set<string>): void {
  if (set.has('no-share-pools')) LEVERS.sharePools = false;
  if (set.has('no-share-relu')) LEVERS.shareRelu = false;
  if (set.has('no-fused-bn')) LEVERS.fusedBn = false;
}

/** The EP lowering --set asks for. */
async function leverLowering(o: WorkerOpts): Promise<Lowering> {
  const l = await loweringFor(o.ep, o.set.has('portable'));
  return o.set.has('no-nchwc') ? { cpu: l.cpu } : l;
}

/** A step the worker can run: `run` returns the training loss. */
interface Step {
  run(): Promise<number>;
  nodes: object;
  /** Seconds to build the graphs, serialize them and create their ORT sessions. */
  setup: { graphsS: number; serializeS: number; sessionsS: number };
  runners: StepRunner[];
  release(): Promise<void>;
}

/** Session options the lever switches override (absent: the product's defaults). */
function sessionLevers(set: Set<string>): { cpuMemArena?: boolean; memPattern?: boolean } {
  return {
    ...(set.has('arena') ? { cpuMemArena: true } : set.has('no-arena') ? { cpuMemArena: false } : {}),
    ...(set.has('mem-pattern') ? { memPattern: true } : set.has('no-mem-pattern') ? { memPattern: false } : {}),
  };
}

function randomBatch(rng: Rng, batch: number, size: number): Record<string, ort.Tensor> {
  const x = new Float32Array(batch * 3 * size * size);
  for (let i = 0; i < x.length; i++) x[i] = rng.normal();
  const y = Array.from({ length: batch }, () => rng.int(10));
  return { x: f32(x, [batch, 3, size, size]), labels: i64(y, [batch]) };
}

async function searchStepOf(o: WorkerOpts, order: 1 | 2): Promise<Step> {
  const task = resolveTask('cls', { c: 3, h: 32, w: 32, classes: 10, labelled: true });
  const r: SearchRunners = await createSearchRunners(task, {
    C: o.C,
    layers: o.layers,
    batchRows: o.batch,
    order,
    momentum: 0.9,
    weightDecay: 3e-4,
    clip: 5,
    ep: o.ep,
    threads: o.threads,
    spinning: o.spinning,
    profilePrefix: o.profile ? join(o.profile, 'ort_') : undefined,
    lowering: await leverLowering(o),
    ...sessionLevers(o.set),
  });
  const st = newTrainState(initParams(r.w.graph, 0));
  for (const n of r.archNames) {
    st.opt.set(`${n}@exp_avg`, new Float32Array(st.params.get(n)!.length));
    st.opt.set(`${n}@exp_avg_sq`, new Float32Array(st.params.get(n)!.length));
  }
  const rng = new Rng(1);
  return {
    run: async () => {
      const train = randomBatch(rng, o.batch, 32);
      const val = randomBatch(rng, o.batch, 32);
      return (await searchStep(r, st, train, val, { order, lr: W_LR, arch: ARCH })).trainLoss;
    },
    nodes: r.nodes,
    setup: r.setup,
    runners: [r.w, r.alpha, ...(r.all ? [r.all] : [])],
    release: () => r.release(),
  };
}

async function evalStepOf(o: WorkerOpts): Promise<Step> {
  const t0 = performance.now();
  const m = buildEvalNet({
    genotype: loadGenotype('darts_v2'),
    net: 'cifar',
    C: o.C,
    layers: o.layers,
    classes: 10,
    training: true,
    auxiliary: true,
    dropPath: true,
    batch: o.batch,
    channels: 3,
    size: 32,
  });
  const g = m.g;
  g.lowering = await leverLowering(o);
  const labels = g.input('labels', 'int64', [o.batch]);
  const loss = add(
    g,
    crossEntropy(g, m.logits, labels),
    mul(g, crossEntropy(g, m.auxLogits!, labels), g.scalar(AUX_WEIGHT)),
  );
  const info = assembleStep(g, {
    loss,
    metrics: { correct: correctCount(g, m.logits, labels) },
    update: (p) => p.role === 'weight',
    optimizer: SGD,
    clipNorm: 5,
  });
  const graphsS = (performance.now() - t0) / 1000;
  const runner = await StepRunner.create(g, info, SGD, {
    ...sessionLevers(o.set),
    ep: o.ep,
    threads: o.threads,
    spinning: o.spinning,
    profilePrefix: o.profile ? join(o.profile, 'ort_eval') : undefined,
  });
  const st: TrainState = newTrainState(initParams(g, 0));
  const rng = new Rng(1);
  const keep = 1 - DROP_PATH;
  return {
    run: async () => {
      const feeds = randomBatch(rng, o.batch, 32);
      for (const name of m.dropPathInputs) {
        const mask = Float32Array.from({ length: o.batch }, () => (rng.next() < keep ? 1 / keep : 0));
        feeds[name] = f32(mask, [o.batch, 1, 1, 1]);
      }
      return (await runner.run(st, feeds, W_LR)).loss;
    },
    nodes: { step: g.nodes.length },
    setup: { graphsS, serializeS: runner.created.serializeS, sessionsS: runner.created.sessionS },
    runners: [runner],
    release: () => runner.release(),
  };
}

interface ProfileEvent {
  cat?: string;
  name: string;
  dur: number;
  ts: number;
  args?: { op_name?: string };
}

/** Kernel time of the last run in each profile file, by op type (backward nodes apart). */
export function summarizeProfiles(files: string[], title: string): string {
  const byOp = new Map<string, number>();
  let total = 0;
  let run = 0;
  for (const f of files) {
    const ev = JSON.parse(readFileSync(f, 'utf8')) as ProfileEvent[];
    const runs = ev.filter((e) => e.cat === 'Session' && e.name === 'model_run');
    const last = runs[runs.length - 1];
    if (!last) continue;
    run += last.dur;
    for (const e of ev) {
      if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < last.ts || e.ts > last.ts + last.dur) continue;
      const op = e.args?.op_name ?? '?';
      const part = e.name.includes('grad/') ? 'backward' : 'forward';
      const key = `${op} (${part})`;
      byOp.set(key, (byOp.get(key) ?? 0) + e.dur);
      total += e.dur;
    }
  }
  const rows = [...byOp].sort((x, y) => y[1] - x[1]);
  const shown = rows.slice(0, 16);
  const rest = rows.slice(16).reduce((s, [, d]) => s + d, 0);
  const lines = [
    `ORT profile, ${title}: ${(run / 1e6).toFixed(2)} s in session runs, ${(total / 1e6).toFixed(2)} s in kernels`,
  ];
  for (const [k, d] of shown)
    lines.push(
      `  ${k.padEnd(34)} ${((100 * d) / total).toFixed(1).padStart(5)}%  ${(d / 1e3).toFixed(0).padStart(7)} ms`,
    );
  if (rest) lines.push(`  ${'(other op types)'.padEnd(34)} ${((100 * rest) / total).toFixed(1).padStart(5)}%`);
  return lines.join('\n');
}

export async function startWorker(): Promise<void> {
  const a = args({
    worker: false,
    kind: 'first',
    C: 8,
    layers: 5,
    batch: 32,
    threads: 2,
    ep: 'cpu',
    'no-spin': false,
    set: '',
    profile: '',
  });
  const o: WorkerOpts = {
    kind: String(a.kind),
    C: Number(a.C),
    layers: Number(a.layers),
    batch: Number(a.batch),
    threads: Number(a.threads),
    ep: String(a.ep) as EP,
    spinning: !a['no-spin'],
    profile: String(a.profile),
    set: new Set(String(a.set).split(',').filter(Boolean)),
  };
  for (const k of o.set)
    if (!LEVER_NAMES.includes(k)) throw new Error(`--set: unknown lever '${k}' (${LEVER_NAMES.join(', ')})`);
  const say = (x: unknown): void => {
    process.stdout.write(`${JSON.stringify(x)}\n`);
  };
  graphLevers(o.set);
  const t0 = performance.now();
  const step = o.kind === 'eval' ? await evalStepOf(o) : await searchStepOf(o, o.kind === 'second' ? 2 : 1);
  const mem = process.memoryUsage();
  say({
    ready: true,
    setup_s: (performance.now() - t0) / 1000,
    setup: step.setup,
    nodes: step.nodes,
    rss_ready_mib: mem.rss / 2 ** 20,
    js_heap_mib: mem.heapUsed / 2 ** 20,
  });
  for await (const line of createInterface({ input: process.stdin })) {
    const cmd = line.trim();
    if (cmd === 'step') {
      const w0 = performance.now();
      const c0 = process.cpuUsage();
      const loss = await step.run();
      const cu = process.cpuUsage(c0);
      say({
        wall: (performance.now() - w0) / 1000,
        cpu: (cu.user + cu.system) / 1e6,
        loss,
        rss_mib: process.memoryUsage().rss / 2 ** 20,
        peak_rss_mib: peakRssMiB(),
      });
    } else if (cmd === 'profile') {
      for (const r of step.runners) r.session.endProfiling();
      const files = readdirSync(o.profile)
        .filter((f) => f.endsWith('.json'))
        .map((f) => join(o.profile, f));
      say({ summary: summarizeProfiles(files, `${o.kind} step, C=${o.C} ${o.layers} cells batch ${o.batch}`) });
    } else if (cmd === 'quit') {
      await step.release();
      say({ peak_rss_mib: peakRssMiB() });
      return;
    } else say({ error: `unknown command '${cmd}'` });
  }
}
