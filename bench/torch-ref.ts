/**
 * Cross-check of nas-onnx against an independent PyTorch implementation
 * (bench/torch_ref/darts_torch.py, written after the DARTS reference code).
 *
 * The TS side builds small DARTS networks as ONNX training graphs, runs them
 * with onnxruntime-node (CPU) and dumps parameters, batches and results:
 *  1. `supernet`: search supernet (C=4, 5 cells: 2 reductions and a
 *     reduction_prev FactorizedReduce): loss and every weight and α gradient,
 *     then two consecutive first-order DARTS steps (α: Adam on a "val" batch,
 *     then w: SGD momentum + weight decay with gradient-norm clipping 5 on a
 *     "train" batch), optimizer state fed back between steps;
 *  2. `evalnet`: DARTS_V2 CIFAR network (C=8, 5 cells) in training form with
 *     its auxiliary head (loss = CE + 0.4·CE_aux): loss, every gradient and
 *     the BN running-statistic updates.
 * The Python side (bench/torch_ref/compare.py) loads the values positionally
 * into its own modules, checking every shape, recomputes everything in float64
 * and float32 with torch / torch.optim and reports the errors.
 *
 *   npx tsx bench/torch-ref.ts [--out DIR] [--python PYTHON] [--portable] [--json]
 *
 * The graphs are lowered for ORT's CPU EP as training runs lower them (NCHWc depthwise
 * convs where ORT has those kernels); --portable checks the standard-op form instead.
 *
 * Exit status 0 when every figure is within tolerance, 1 otherwise.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Graph, Lowering, Param, Value } from '../graph/ir.js';
import { loadGenotype, type Genotype } from '../graph/genotype.js';
import { buildEvalNet, buildSupernet } from '../graph/nets/models.js';
import { repoPath } from '../graph/paths.js';
import { Rng } from '../graph/rng.js';
import { add, mul } from '../graph/ops/index.js';
import { LEVERS } from '../graph/nets/layers.js';
import { assembleStep, crossEntropy, type OptimizerSpec, type StepGraphInfo } from '../graph/training.js';
import { initParams, type ParamValues } from '../train/runtime/params.js';
import { newTrainState, StepRunner, type TrainState } from '../train/runtime/engine.js';
import { f32, i64, loweringFor, scalarOf, Session } from '../train/runtime/session.js';
import { serialize } from '../graph/onnx.js';
import type * as ort from 'onnxruntime-node';

// ---- configuration -----------------------------------------------------------------

export const SUPERNET = { C: 4, layers: 5, classes: 10, batch: 4, channels: 3, size: 16 } as const;
/**
 * 32×32 input so that the auxiliary head (after cell ⌊2L/3⌋ = 3) sees the 8×8
 * map it assumes; batch 8, as BN over 4 samples leaves the float32 gradients of
 * some BN parameters only ~1e-4 accurate even in torch (ill-conditioned sums).
 */
export const EVALNET = {
  C: 8,
  layers: 5,
  classes: 10,
  batch: 8,
  channels: 3,
  size: 32,
  genotype: 'darts_v2',
  auxWeight: 0.4,
} as const;
/** DARTS search hyper-parameters (the DARTS paper's, train_search.py's defaults). */
export const W_OPT = { lr: 0.025, momentum: 0.9, weightDecay: 3e-4, clip: 5 } as const;
export const A_OPT = { lr: 3e-4, beta1: 0.5, beta2: 0.999, eps: 1e-8, weightDecay: 1e-3 } as const;
/**
 * α values for the checks (initValues): N(0, 0.3²) instead of DARTS's
 * 1e-3·N(0,1), so that the softmax mixing weights are far from uniform and a
 * mis-assigned α column changes the loss and the weight gradients, not only the
 * α gradients.
 */
export const ALPHA_STD = 0.3;
export const SEED = 20240611;
/** ORT intra-op threads: the graphs are tiny, one thread is fastest (and deterministic). */
export const ORT_THREADS = 1;

// ---- binary dump ------------------------------------------------------------------

interface TensorRef {
  key: string;
  shape: number[];
}

class Dump {
  private chunks: Float32Array[] = [];
  private offset = 0;
  readonly index: Record<string, { offset: number; length: number; shape: number[] }> = {};

  add(key: string, data: Float32Array, shape: readonly number[]): TensorRef {
    if (this.index[key]) throw new Error(`dump key '${key}' written twice`);
    const n = shape.reduce((a, b) => a * b, 1);
    if (n !== data.length) throw new Error(`dump '${key}': ${data.length} values for shape [${shape.join(',')}]`);
    this.index[key] = { offset: this.offset, length: data.length, shape: [...shape] };
    this.chunks.push(Float32Array.from(data));
    this.offset += data.length;
    return { key, shape: [...shape] };
  }

  bytes(): Buffer {
    const all = new Float32Array(this.offset);
    let o = 0;
    for (const c of this.chunks) {
      all.set(c, o);
      o += c.length;
    }
    return Buffer.from(all.buffer, all.byteOffset, all.byteLength);
  }
}

interface ParamEntry extends TensorRef {
  name: string;
  role: Param['role'];
}

function dumpParams(d: Dump, prefix: string, g: Graph, values: ParamValues): ParamEntry[] {
  return [...g.params.values()].map((p) => ({
    name: p.name,
    role: p.role,
    ...d.add(`${prefix}/param/${p.name}`, values.get(p.name)!, p.shape),
  }));
}

function randomBatch(
  rng: Rng,
  n: number,
  c: number,
  size: number,
  classes: number,
): { x: Float32Array; labels: number[] } {
  const x = new Float32Array(n * c * size * size);
  for (let i = 0; i < x.length; i++) x[i] = rng.normal();
  const labels = Array.from({ length: n }, () => rng.int(classes));
  return { x, labels };
}

/**
 * Parameters from the project's initializer, then made less special than at
 * initialization so that every term of every gradient is exercised: α ~
 * N(0, ALPHA_STD²); BN γ ~ U(0.5, 1.5) and β ~ N(0, 0.1²) (γ = 1, β = 0 would
 * hide a backward pass that drops γ or β); BN running mean ~ N(0, 0.1²) and
 * running variance ~ U(0.5, 1.5) (so the running-statistics update is checked
 * on both of its terms).
 */
function initValues(g: Graph, seed: number): ParamValues {
  const values = initParams(g, seed);
  const rng = new Rng(seed + 1);
  for (const p of g.params.values()) {
    const v = values.get(p.name)!;
    const fill = (f: () => number): void => {
      for (let i = 0; i < v.length; i++) v[i] = f();
    };
    if (p.role === 'arch') fill(() => ALPHA_STD * rng.normal());
    else if (p.role === 'weight' && p.init.kind === 'ones') fill(() => rng.uniform(0.5, 1.5));
    else if (p.role === 'weight' && p.init.kind === 'zeros') fill(() => 0.1 * rng.normal());
    else if (p.role === 'state' && p.name.endsWith('running_mean')) fill(() => 0.1 * rng.normal());
    else if (p.role === 'state' && p.name.endsWith('running_var')) fill(() => rng.uniform(0.5, 1.5));
  }
  return values;
}

/** The parameters a step graph updates (one by one, or as the members of its flat buffer). */
const updatedBy = (info: StepGraphInfo): string[] => (info.flat ? info.flat.members.map((m) => m.name) : info.updated);

/** |ReLU input| at or below this fraction of the input's max-abs is a near-kink (see KinkProbe). */
export const NEAR_KINK = 1e-5;

/**
 * Max pooling is not differentiable where a window's two largest inputs tie,
 * nor ReLU at 0, and small DARTS nets meet near-ties and near-zeros (a few
 * float32 ulps wide) now and then: float32 rounding then decides the branch,
 * and the gradient follows it. So that such a legitimate choice does not read
 * as a gradient error, the reference takes these decisions from us: a
 * forward-only session of the same network (per-op ReLUs, so there is one
 * ReLU per reference nn.ReLU call) outputs every MaxPool's indices and every
 * ReLU's input; we dump the indices and, per ReLU, the elements within
 * NEAR_KINK of 0 with our sign. compare.py follows them, and checks that its
 * own arg-max and signs differ from ours only at such near-ties and near-zeros.
 */
class KinkProbe {
  private constructor(
    private readonly session: Session,
    private readonly g: Graph,
    readonly pools: { name: string; shape: number[] }[],
    readonly relus: { name: string; shape: number[] }[],
  ) {}

  /** `build` makes the network with its loss; it runs with per-op ReLUs and pools (LEVERS.shareRelu, sharePools off). */
  static async create(build: () => { g: Graph; loss: Value }): Promise<KinkProbe> {
    const shared = { ...LEVERS };
    LEVERS.shareRelu = false;
    LEVERS.sharePools = false;
    let net: { g: Graph; loss: Value };
    try {
      net = build();
    } finally {
      Object.assign(LEVERS, shared);
    }
    const g = net.g;
    const pools = g.nodes
      .filter((n) => n.op === 'MaxPool')
      .map((n, i) => {
        if (!n.outputs[1]) throw new Error(`MaxPool ${n.name} has no indices output (not a training graph?)`);
        const v = g.value(n.outputs[1]);
        g.output(v, `maxpool_indices_${i}`);
        return { name: `maxpool_indices_${i}`, shape: [...v.shape] };
      });
    const relus = g.nodes
      .filter((n) => n.op === 'Relu')
      .map((n, i) => {
        const v = g.value(n.inputs[0]!);
        g.output(v, `relu_input_${i}`);
        return { name: `relu_input_${i}`, shape: [...v.shape] };
      });
    g.output(net.loss, 'loss');
    const session = await Session.create(serialize(g, { params: 'inputs', valueInfo: false }), {
      threads: ORT_THREADS,
      optimization: 'disabled',
    });
    return new KinkProbe(session, g, pools, relus);
  }

  /** Run at the parameters in `st`; dump the pool indices (exact in float32) and the ReLU near-zeros. */
  async run(d: Dump, prefix: string, st: TrainState, batch: Record<string, ort.Tensor>) {
    const feeds: Record<string, ort.Tensor> = { ...batch };
    for (const p of this.g.params.values()) feeds[p.name] = f32(st.params.get(p.name)!, p.shape);
    const out = await this.session.run(feeds);
    const keys = this.pools.map((o, i) => {
      const idx = out[o.name]!.data as BigInt64Array;
      return d.add(
        `${prefix}/maxpool/${i}`,
        Float32Array.from(idx, (v) => Number(v)),
        o.shape,
      ).key;
    });
    const relus = this.relus.map((o) => {
      const x = out[o.name]!.data as Float32Array;
      let scale = 0;
      for (let i = 0; i < x.length; i++) scale = Math.max(scale, Math.abs(x[i]!));
      const near: [number, number][] = [];
      for (let i = 0; i < x.length; i++) if (Math.abs(x[i]!) <= NEAR_KINK * scale) near.push([i, x[i]! > 0 ? 1 : 0]);
      return { shape: o.shape, near };
    });
    return { loss: scalarOf(out.loss), keys, relus };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

const clone = (m: ParamValues): ParamValues => new Map([...m].map(([k, v]) => [k, Float32Array.from(v)]));

// ---- the cases ----------------------------------------------------------------------

/** How the dumped graphs are lowered for ORT's CPU EP (set by dumpCases). */
let lowering: Lowering = {};

function supernetGraph(): { g: Graph; loss: Value } {
  const s = SUPERNET;
  const net = buildSupernet({ ...s, training: true });
  net.g.lowering = lowering;
  const labels = net.g.input('labels', 'int64', [s.batch]);
  return { g: net.g, loss: crossEntropy(net.g, net.logits, labels) };
}

function evalnetGraph(): { g: Graph; loss: Value; main: Value; aux: Value; genotype: Genotype } {
  const e = EVALNET;
  const genotype = loadGenotype(e.genotype);
  const ev = buildEvalNet({ ...e, genotype, net: 'cifar', training: true, auxiliary: true, dropPath: false });
  ev.g.lowering = lowering;
  const labels = ev.g.input('labels', 'int64', [e.batch]);
  const main = crossEntropy(ev.g, ev.logits, labels);
  const aux = crossEntropy(ev.g, ev.auxLogits!, labels);
  return { g: ev.g, loss: add(ev.g, main, mul(ev.g, aux, ev.g.scalar(e.auxWeight))), main, aux, genotype };
}

/**
 * The discretized network: loss (CE + 0.4·CE_aux), every gradient, and the BN
 * running statistics the training-form forward pass produces.
 */
async function gradientCase(
  d: Dump,
  name: string,
  g: Graph,
  loss: Value,
  values: ParamValues,
  batch: { x: Float32Array; labels: number[] },
  xShape: number[],
  metrics: Record<string, Value> = {},
) {
  const initial = dumpParams(d, name, g, values);
  const info = assembleStep(g, {
    loss,
    metrics,
    update: () => false,
    outputGrads: () => true,
    gradientsOnly: true,
    optimizer: { kind: 'sgd', momentum: 0, weightDecay: 0 },
  });
  const runner = await StepRunner.create(g, info, null, { threads: ORT_THREADS });
  const st = newTrainState(clone(values));
  const res = await runner.run(st, { x: f32(batch.x, xShape), labels: i64(batch.labels, [batch.labels.length]) });
  await runner.release();
  const grads: Record<string, string> = {};
  for (const [p, v] of res.grads) grads[p] = d.add(`${name}/ort/grad/${p}`, v, g.params.get(p)!.shape).key;
  const state: Record<string, string> = {};
  for (const o of info.stateOutputs) {
    const p = o.slice(0, -'@new'.length);
    state[p] = d.add(`${name}/ort/state/${p}`, st.params.get(p)!, g.params.get(p)!.shape).key;
  }
  return {
    name,
    params: initial,
    x: d.add(`${name}/x`, batch.x, xShape).key,
    labels: batch.labels,
    ort: { loss: res.loss, metrics: res.metrics, grads, state },
    graph: { nodes: g.nodes.length, forward: info.nodes.forward, backward: info.nodes.backward },
  };
}

interface SubStep {
  which: 'arch' | 'weight';
  t: number;
  batch: number;
  loss: number;
  gradNorm?: number;
  params: Record<string, string>;
  slots: Record<string, string>;
}

/**
 * The two step graphs of the supernet case and their runners: the α step (Adam,
 * also outputting every gradient) and the w step (clipped SGD).
 */
async function supernetSteps() {
  const arch = supernetGraph();
  const archOpt: OptimizerSpec = {
    kind: 'adam',
    beta1: A_OPT.beta1,
    beta2: A_OPT.beta2,
    eps: A_OPT.eps,
    weightDecay: A_OPT.weightDecay,
  };
  const archInfo = assembleStep(arch.g, {
    loss: arch.loss,
    update: (p) => p.role === 'arch',
    outputGrads: () => true,
    optimizer: archOpt,
  });
  const weight = supernetGraph();
  const wOpt: OptimizerSpec = { kind: 'sgd', momentum: W_OPT.momentum, weightDecay: W_OPT.weightDecay };
  const wInfo = assembleStep(weight.g, {
    loss: weight.loss,
    update: (p) => p.role === 'weight',
    optimizer: wOpt,
    clipNorm: W_OPT.clip,
  });
  const archRunner = await StepRunner.create(arch.g, archInfo, archOpt, { group: 'arch', threads: ORT_THREADS });
  const wRunner = await StepRunner.create(weight.g, wInfo, wOpt, { group: 'weight', threads: ORT_THREADS });
  return { arch, archInfo, archRunner, weight, wInfo, wRunner };
}

/**
 * The supernet: `steps` first-order DARTS search steps, each one α update
 * (Adam, val batch) then one w update (SGD, clipped, train batch), with
 * train/engine's StepRunner feeding the updated parameters and optimizer state
 * back. The α-step graph also outputs every weight and α gradient (unclipped);
 * those of the first step, at the initial parameters, are the gradient check.
 */
async function supernetCase(d: Dump, name: string, steps: number, values: ParamValues, rng: Rng) {
  const s = SUPERNET;
  const xShape = [s.batch, s.channels, s.size, s.size];
  const { arch, archInfo, archRunner, weight, wInfo, wRunner } = await supernetSteps();
  const initial = dumpParams(d, name, weight.g, values);
  const st: TrainState = newTrainState(clone(values));
  const batches: string[] = [];
  const labels: number[][] = [];
  const sub: SubStep[] = [];
  const grads: Record<string, string> = {};
  const gradsLater: Record<string, string>[] = [];
  let loss0 = NaN;
  const probe = await KinkProbe.create(supernetGraph);
  const pools: Awaited<ReturnType<KinkProbe['run']>>[] = [];
  const nextBatch = async (): Promise<Record<string, ort.Tensor>> => {
    const b = randomBatch(rng, s.batch, s.channels, s.size, s.classes);
    batches.push(d.add(`${name}/batch${batches.length}`, b.x, xShape).key);
    labels.push(b.labels);
    const feeds = { x: f32(b.x, xShape), labels: i64(b.labels, [s.batch]) };
    pools.push(await probe.run(d, `${name}/batch${batches.length - 1}`, st, feeds));
    return feeds;
  };
  const snapshot = (
    which: 'arch' | 'weight',
    t: number,
    r: { loss: number; gradNorm?: number },
    names: string[],
    slotNames: string[],
  ): void => {
    const params: Record<string, string> = {};
    const slots: Record<string, string> = {};
    const tag = `${name}/ort/${which}${t}`;
    for (const p of names) {
      const shape = weight.g.params.get(p)!.shape;
      params[p] = d.add(`${tag}/param/${p}`, st.params.get(p)!, shape).key;
      for (const slot of slotNames)
        slots[`${p}@${slot}`] = d.add(`${tag}/slot/${p}@${slot}`, st.opt.get(`${p}@${slot}`)!, shape).key;
    }
    sub.push({ which, t, batch: batches.length - 1, loss: r.loss, gradNorm: r.gradNorm, params, slots });
  };
  for (let t = 1; t <= steps; t++) {
    const ra = await archRunner.run(st, await nextBatch(), A_OPT.lr);
    if (t === 1) {
      loss0 = ra.loss;
      for (const [p, v] of ra.grads) grads[p] = d.add(`${name}/ort/grad/${p}`, v, weight.g.params.get(p)!.shape).key;
    } else {
      // gradients at a trained point too (after α and w updates)
      gradsLater.push(
        Object.fromEntries(
          [...ra.grads].map(([p, v]) => [p, d.add(`${name}/ort/grad${t}/${p}`, v, weight.g.params.get(p)!.shape).key]),
        ),
      );
    }
    snapshot('arch', t, ra, updatedBy(archInfo), archInfo.slots);
    const rw = await wRunner.run(st, await nextBatch(), W_OPT.lr);
    snapshot('weight', t, rw, updatedBy(wInfo), wInfo.slots);
  }
  await archRunner.release();
  await wRunner.release();
  await probe.release();
  return {
    name,
    params: initial,
    batches,
    labels,
    pools,
    clip: W_OPT.clip,
    wOpt: W_OPT,
    aOpt: A_OPT,
    ort: { loss: loss0, grads, gradsLater, steps: sub },
    graph: { nodes: arch.g.nodes.length, forward: archInfo.nodes.forward, backward: archInfo.nodes.backward },
  };
}

/**
 * Build, run and dump every case into `outDir` (manifest.json + tensors.bin), with the
 * graphs lowered as `cpu` (session.ts loweringFor: NCHWc depthwise convs where ORT has
 * those kernels, as runs on this machine get them) or `portable` (standard ops only).
 */
export async function dumpCases(outDir: string, form: LoweringForm = 'cpu'): Promise<void> {
  lowering = await loweringFor('cpu', form === 'portable');
  mkdirSync(outDir, { recursive: true });
  const d = new Dump();
  const rng = new Rng(SEED);

  // 1. supernet: gradients, then two DARTS search steps
  const layout = supernetGraph();
  const supernet = await supernetCase(d, 'supernet', 2, initValues(layout.g, SEED), rng);

  // 2. discretized network with its auxiliary head
  const e = EVALNET;
  const ev = evalnetGraph();
  const evValues = initValues(ev.g, SEED + 2);
  const evBatch = randomBatch(rng, e.batch, e.channels, e.size, e.classes);
  const probe = await KinkProbe.create(evalnetGraph);
  const xShape = [e.batch, e.channels, e.size, e.size];
  const pool = await probe.run(d, 'evalnet', newTrainState(evValues), {
    x: f32(evBatch.x, xShape),
    labels: i64(evBatch.labels, [e.batch]),
  });
  await probe.release();
  const evalnet = {
    ...(await gradientCase(d, 'evalnet', ev.g, ev.loss, evValues, evBatch, xShape, {
      loss_main: ev.main,
      loss_aux: ev.aux,
    })),
    genotype: ev.genotype,
    pools: [pool],
  };

  const manifest = {
    seed: SEED,
    alphaStd: ALPHA_STD,
    ort: `onnxruntime-node CPU EP, ${ORT_THREADS} intra-op thread, sessions made by train/engine StepRunner.create (its default graph optimization level), ${lowering.nchwcBlock ? `NCHWc lowering (block ${lowering.nchwcBlock})` : 'portable lowering'}`,
    supernet: { config: SUPERNET, ...supernet },
    evalnet: { config: EVALNET, ...evalnet },
    index: d.index,
  };
  writeFileSync(join(outDir, 'tensors.bin'), d.bytes());
  writeFileSync(join(outDir, 'manifest.json'), JSON.stringify(manifest));
}

// ---- the Python side ------------------------------------------------------------------

export const TORCH_INSTALL_HINT =
  'PyTorch is needed for the reference comparison: install it with `apt-get install python3-torch` ' +
  '(Debian; it installs for /usr/bin/python3), or point TORCH_PYTHON at a python that can `import torch`.';

/** The first python that can import torch: $TORCH_PYTHON, python3 on PATH, /usr/bin/python3. */
export function findTorchPython(explicit?: string): { python: string; torch: string } {
  const candidates = explicit
    ? [explicit]
    : [process.env.TORCH_PYTHON, 'python3', '/usr/bin/python3'].filter((c): c is string => !!c);
  const tried: string[] = [];
  for (const py of [...new Set(candidates)]) {
    const r = spawnSync(py, ['-c', 'import torch, numpy; print(torch.__version__)'], { encoding: 'utf8' });
    if (r.status === 0) return { python: py, torch: r.stdout.trim() };
    tried.push(`${py}: ${(r.error?.message ?? r.stderr.trim().split('\n').pop() ?? '').trim()}`);
  }
  throw new Error(`${TORCH_INSTALL_HINT}\n(tried ${tried.join('; ')})`);
}

export interface TorchRefReport {
  ok: boolean;
  tolerance: number;
  failures: string[];
  torch: string;
  /** Per-case figures, as computed by compare.py (see its `summary`). */
  // biome-ignore lint/suspicious/noExplicitAny: free-form JSON from the python reference
  cases: Record<string, any>;
  table: string;
  seconds: { ts: number; python: number };
  /** How the checked graphs were lowered. */
  lowering: Lowering;
}

export type LoweringForm = 'cpu' | 'portable';

export async function runTorchReference(
  o: { outDir?: string; python?: string; lowering?: LoweringForm } = {},
): Promise<TorchRefReport> {
  const { python, torch } = findTorchPython(o.python);
  const outDir = resolve(o.outDir ?? mkdtempSync(join(tmpdir(), 'nas-onnx-torch-ref-')));
  const t0 = performance.now();
  await dumpCases(outDir, o.lowering);
  const t1 = performance.now();
  const script = repoPath('bench', 'torch_ref', 'compare.py');
  const r = spawnSync(python, [script, outDir], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    env: { ...process.env, OMP_NUM_THREADS: '1' },
  });
  const t2 = performance.now();
  const results = join(outDir, 'results.json');
  // compare.py exits 1 with results.json written when figures are out of tolerance; anything else is a crash
  if ((r.status !== 0 && r.status !== 1) || !existsSync(results)) {
    throw new Error(
      `${python} ${script} failed (status ${r.status}):\n${(r.stderr || r.error?.message || '').slice(-4000)}`,
    );
  }
  const res = JSON.parse(readFileSync(results, 'utf8')) as Omit<TorchRefReport, 'table' | 'seconds' | 'torch'>;
  return {
    ...res,
    torch,
    table: r.stdout,
    seconds: { ts: (t1 - t0) / 1000, python: (t2 - t1) / 1000 },
    lowering,
  };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (k: string): string | undefined => {
    const i = args.indexOf(k);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const rep = await runTorchReference({
    outDir: opt('--out'),
    python: opt('--python'),
    lowering: args.includes('--portable') ? 'portable' : 'cpu',
  });
  if (args.includes('--json')) process.stdout.write(`${JSON.stringify(rep, null, 2)}\n`);
  else process.stdout.write(rep.table);
  process.stdout.write(
    `\ntorch ${rep.torch}; TS build + ORT runs ${rep.seconds.ts.toFixed(1)} s, python reference ${rep.seconds.python.toFixed(1)} s\n` +
      (rep.ok ? `PASS: every figure within ${rep.tolerance}\n` : `FAIL:\n  ${rep.failures.join('\n  ')}\n`),
  );
  process.exitCode = rep.ok ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((e: unknown) => {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exitCode = 2;
  });
}
