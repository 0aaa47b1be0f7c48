/**
 * Cost of SSWP-NAS's gated graph (graph/nets/sswp.ts): time per step and peak
 * memory of
 *   sswp-w   the gated network's weight step (all cells gated; If-gated ops: only
 *            the active op of each edge runs)
 *   sswp-w-mul    the same with every op computed and multiplied by its gate
 *            (LEVERS.ifGates off: the design before If-gated ops)
 *   sswp-w-plain  sswp-w with plain (non-affine) BN in the ops (`affine: false`)
 *   sswp-a   the gated network's α-gradient step (∂L/∂gates only; the two
 *            sampled ops of each edge run)
 *   sswp-a-mul    the same with every op computed
 *   darts-w  a DARTS supernet weight step of the same size (8 ops, α per cell type)
 *   darts-a  the DARTS α-gradient step
 *   disc-w   the discretized network's weight step (every cell pruned: DARTS_V2's
 *            cells), what the gated cells shrink to as pruning proceeds
 * all with the SimCLR head on 2·batch views, run by StepRunner as the search
 * runs them (ORT CPU, graph optimization 'disabled').
 *
 *   node dist/bench/sswp-cost.js --all [--C 8 --layers 5 --batch 16 --size 32 --runs 3]
 *   node dist/bench/sswp-cost.js --what sswp-w …       (one configuration, one JSON line)
 *
 * `--all` runs each configuration in a fresh process, so its peak RSS (VmHWM,
 * reset with /proc/self/clear_refs after the session is created, so it is the
 * peak of the steps themselves: ORT's arena and the tensors fed and fetched)
 * is its own; `rss_before_mib` is the resident size before the first step
 * (JS heap with the graph, the ORT session and its initial arena).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type * as ort from 'onnxruntime-node';
import { loadGenotype } from '../graph/genotype.js';
import type { Graph, Value } from '../graph/ir.js';
import { buildSswpForward, type CellOps } from '../graph/nets/sswp.js';
import { reductionCells } from '../graph/nets/darts.js';
import { assembleStep, type OptimizerSpec, type StepGraphInfo } from '../graph/training.js';
import { initParams } from '../train/runtime/params.js';
import { bool, f32 } from '../train/runtime/session.js';
import { StepRunner, newTrainState } from '../train/runtime/engine.js';
import { buildSearchForward } from '../graph/nets/search.js';
import { runMask, sampleGates } from '../train/search/sswp/sampler.js';
import { Rng } from '../graph/rng.js';
import { args, median, peakRssMiB } from './util.js';

const WHATS = ['sswp-w', 'sswp-w-mul', 'sswp-w-plain', 'sswp-a', 'sswp-a-mul', 'darts-w', 'darts-a', 'disc-w'] as const;
const a = args({ what: '', all: false, C: 8, layers: 5, batch: 16, size: 32, runs: 3, json: '' });
const C = Number(a.C);
const layers = Number(a.layers);
const batch = Number(a.batch);
const size = Number(a.size);

function rssMiB(): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

const SGD: OptimizerSpec = { kind: 'sgd', momentum: 0.9, weightDecay: 4e-5 };

/** A step graph: its graph, step info, and the feeds besides `x` (gates, run). */
interface Built {
  g: Graph;
  info: StepGraphInfo;
  extra: Record<string, ort.Tensor>;
}

/** The weight step (SGD, clipping) or an α-gradient step (∂L/∂α params, or ∂L/∂gates) of a forward graph. */
function stepOf(
  fw: { g: Graph; loss: Value; metrics: Record<string, Value> },
  kind: 'w' | 'alpha' | 'gates',
): StepGraphInfo {
  const common = { loss: fw.loss, metrics: fw.metrics, optimizer: SGD, stateOutputs: false };
  if (kind === 'w') return assembleStep(fw.g, { ...common, update: (p) => p.role === 'weight', clipNorm: 5 });
  if (kind === 'alpha')
    return assembleStep(fw.g, {
      ...common,
      update: () => false,
      outputGrads: (p) => p.role === 'arch',
      gradientsOnly: true,
    });
  return assembleStep(fw.g, { ...common, update: () => false, gradientsOnly: true, inputGrads: ['gates'] });
}

function dartsStep(what: string, task: never, rows: number): Built {
  const fw = buildSearchForward(task, { C, layers, batchRows: rows });
  return { g: fw.g, info: stepOf(fw, what === 'darts-w' ? 'w' : 'alpha'), extra: {} };
}

/** The SSWP gated network (or the discretized one, disc-w) and the gates of one sampled path. */
function sswpStep(what: string, task: never, rows: number): Built {
  const weightStep = what.includes('-w');
  const geno = loadGenotype('darts_v2');
  const reds = reductionCells(layers);
  const cells: (CellOps | null)[] = Array.from({ length: layers }, (_, i) =>
    what === 'disc-w' ? ((reds.includes(i) ? geno.reduce : geno.normal) as CellOps) : null,
  );
  const fw = buildSswpForward(task, {
    C,
    layers,
    cells,
    rows,
    affine: what !== 'sswp-w-plain',
    ifGates: !what.endsWith('-mul'),
  });
  const info = stepOf(fw, weightStep ? 'w' : 'gates');
  const extra: Record<string, ort.Tensor> = {};
  if (fw.trunk.gates) {
    const alphas = Array.from({ length: layers }, () => new Float32Array(14 * 7));
    const sample = sampleGates(
      new Rng(1),
      alphas,
      cells.map((c) => c === null),
      'two-path',
      null,
    );
    extra.gates = f32(sample.gates, [layers, 14, 7]);
    // If-gated graphs compute the active op (w step) or both sampled ops (α step) of each edge
    if (fw.trunk.run) extra.run = bool(runMask(sample, weightStep ? 'active' : 'involved'), [layers, 14, 7]);
  }
  return { g: fw.g, info, extra };
}

/** Session time, median step time and CPU time, and the peak RSS of the steps. */
async function measure(b: Built, weightStep: boolean, rows: number): Promise<Record<string, number>> {
  const st = newTrainState(initParams(b.g, 0));
  const x = Float32Array.from({ length: rows * 3 * size * size }, (_, i) => Math.sin(i * 0.37));
  const feeds: Record<string, ort.Tensor> = { ...b.extra, x: f32(x, [rows, 3, size, size]) };
  const t0 = performance.now();
  const runner = await StepRunner.create(b.g, b.info, weightStep ? SGD : null, { optimization: 'disabled' });
  const sessionMs = performance.now() - t0;
  const rssBefore = rssMiB();
  writeFileSync('/proc/self/clear_refs', '5'); // reset VmHWM: the peak below is the steps'
  const times: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < Number(a.runs) + 1; i++) {
    const t = performance.now();
    const c = process.cpuUsage();
    await runner.run(st, feeds, 0.025);
    const dc = process.cpuUsage(c);
    if (i > 0) {
      times.push(performance.now() - t);
      cpu.push((dc.user + dc.system) / 1e6);
    }
  }
  await runner.release();
  return {
    session_s: +(sessionMs / 1000).toFixed(1),
    s_per_step: +(median(times) / 1000).toFixed(3),
    min_s_per_step: +(Math.min(...times) / 1000).toFixed(3),
    cpu_s_per_step: +median(cpu).toFixed(3),
    rss_before_mib: Math.round(rssBefore),
    peak_rss_steps_mib: Math.round(peakRssMiB()),
  };
}

async function one(what: string): Promise<Record<string, unknown>> {
  const rows = 2 * batch;
  const task = {
    name: 'simclr',
    numClasses: 0,
    groupSize: 1,
    inputShape: [3, size, size] as [number, number, number],
    targetKind: 'none',
    batchMultiplier: 2,
  } as never;
  const b = what.startsWith('darts-') ? dartsStep(what, task, rows) : sswpStep(what, task, rows);
  const weights = [...b.g.params.values()]
    .filter((p) => p.role === 'weight')
    .reduce((s, p) => s + p.shape.reduce((x, y) => x * y, 1), 0);
  const m = await measure(b, what.includes('-w'), rows);
  return { what, C, layers, batch, size, nodes: b.g.nodes.length, weights, ...m };
}

if (a.all) {
  const self = fileURLToPath(import.meta.url);
  const res: Record<string, unknown>[] = [];
  for (const w of WHATS) {
    const argv = [
      ...process.execArgv,
      self,
      '--what',
      w,
      '--C',
      String(C),
      '--layers',
      String(layers),
      '--batch',
      String(batch),
      '--size',
      String(size),
      '--runs',
      String(a.runs),
    ];
    const r = spawnSync(process.execPath, argv, { encoding: 'utf8', maxBuffer: 1 << 24 });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    if (r.status !== 0 || !line.startsWith('{')) throw new Error(`${w} failed: ${r.stderr}`);
    const rec = JSON.parse(line) as Record<string, unknown>;
    res.push(rec);
    process.stderr.write(`${JSON.stringify(rec)}\n`);
  }
  const ref = res.find((r) => r.what === 'darts-w')!;
  console.log(
    `C=${C} layers=${layers} batch=${batch} (${2 * batch} views) ${size}×${size}, ORT CPU, optimization disabled`,
  );
  console.log(
    '| step | nodes | weights | session s | s/step median (min) | CPU s/step | × DARTS w-step (CPU) | peak RSS in steps MiB | × DARTS w-step | RSS before MiB |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of res) {
    const x = (k: string): string => ((r[k] as number) / (ref[k] as number)).toFixed(2);
    console.log(
      `| ${r.what} | ${r.nodes} | ${r.weights} | ${r.session_s} | ${r.s_per_step} (${r.min_s_per_step}) | ${r.cpu_s_per_step} | ${x('cpu_s_per_step')} | ${r.peak_rss_steps_mib} | ${x('peak_rss_steps_mib')} | ${r.rss_before_mib} |`,
    );
  }
  if (a.json) writeFileSync(String(a.json), `${JSON.stringify(res, null, 2)}\n`);
} else {
  if (!(WHATS as readonly string[]).includes(String(a.what)))
    throw new Error(`--what must be one of ${WHATS.join(', ')} (or --all)`);
  console.log(JSON.stringify(await one(String(a.what))));
}
