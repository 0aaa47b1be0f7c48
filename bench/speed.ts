/**
 * Side-by-side CPU speed: nas-onnx (onnxruntime-node) and PyTorch
 * (bench/torch_ref/speed.py, the DARTS reference modules) run the same training
 * steps in one bench run, one step of each in turn, so load from other work on
 * the machine hits both alike; medians and the ratio are printed per step kind
 * and configuration, then an ORT profile summary (share of kernel time by op type).
 *
 *   node dist/bench/speed.js            the full table: C=8/5 cells/batch 32 and C=16/8 cells/batch 64
 *   node dist/bench/speed.js --quick    C=8 only
 *   options: --kinds first,second,eval  --steps N (timed, default 5)  --warmup N (default 1)
 *            --threads N (both sides, default 2)  --no-spin (neither side's threads spin: for a busy machine)
 *            --ep cpu|cuda  --no-profile  --torch-profile  --json  --config C,cells,batch (one other configuration)
 *            --set L1,L2  lever switches of the nas-onnx side (bench/speed-worker.ts LEVERS)
 *            --baseline L1,L2|defaults  a second nas-onnx process with these switches in the same
 *                       interleave: the table adds its time and the gain of the levers that differ
 *
 * Step kinds: `first` and `second` are the DARTS search steps (first order: ∇α on a
 * validation batch, Adam on α, SGD weight step with clipping; second order: the
 * unrolled step with the finite-difference Hessian-vector product), `eval` the
 * DARTS_V2 evaluation-network training step (auxiliary head 0.4, drop path 0.2).
 * Both sides get random 3×32×32 batches and 10 classes.
 *
 * Each side runs in its own process (peak memory is per process; the bench
 * holds at most one nas-onnx and one PyTorch process, and only one of them
 * computes at a time). The nas-onnx side is this file run with `--worker`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { repoPath } from '../graph/paths.js';
import { findTorchPython } from './torch-ref.js';
import { args, median } from './util.js';
import { startWorker } from './speed-worker.js';

export interface StepConfig {
  name: string;
  C: number;
  layers: number;
  batch: number;
}

export const CONFIGS: readonly StepConfig[] = [
  { name: 'C=8, 5 cells, batch 32', C: 8, layers: 5, batch: 32 },
  { name: 'C=16, 8 cells, batch 64', C: 16, layers: 8, batch: 64 },
];
export const KINDS = ['first', 'second', 'eval'] as const;
export type Kind = (typeof KINDS)[number];
const KIND_NAME: Record<Kind, string> = {
  first: 'search, 1st order',
  second: 'search, 2nd order',
  eval: 'DARTS_V2 train step',
};

/** One line-protocol child process: a command per line in, a JSON object per line out. */
class Child {
  private readonly lines: AsyncIterator<string>;

  constructor(
    readonly name: string,
    private readonly proc: ChildProcess,
  ) {
    this.lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  }

  static start(name: string, cmd: string, argv: string[], env: NodeJS.ProcessEnv): Child {
    return new Child(name, spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'inherit'], env }));
  }

  /** The next JSON line (other lines, e.g. library warnings, are skipped). */
  async read(): Promise<Record<string, unknown>> {
    for (;;) {
      const r = await this.lines.next();
      if (r.done) throw new Error(`${this.name} worker exited (status ${this.proc.exitCode})`);
      if (!r.value.startsWith('{')) continue;
      const o = JSON.parse(r.value) as Record<string, unknown>;
      if (o.error) throw new Error(`${this.name} worker: ${String(o.error)}`);
      return o;
    }
  }

  async ask(cmd: string): Promise<Record<string, unknown>> {
    this.proc.stdin!.write(`${cmd}\n`);
    return this.read();
  }

  kill(): void {
    if (this.proc.exitCode === null) this.proc.kill();
  }
}

interface Side {
  wall: number[];
  cpu: number[];
  ready: Record<string, unknown>;
  peakMiB: number;
}

interface OursFigures {
  s: number;
  cpu: number;
  peakMiB: number;
  setupS: number;
  /** Graph building, serialization and ORT session creation (s). */
  setup: { graphsS: number; serializeS: number; sessionsS: number };
  nodes: unknown;
}

export interface Row {
  config: string;
  kind: Kind;
  ours: OursFigures;
  /** The same steps with the baseline levers (--baseline), when asked. */
  baseline?: OursFigures;
  /** Baseline time / nas-onnx time: the gain of the levers that differ. */
  leverGain?: number;
  leverCpuGain?: number;
  torch: { s: number; cpu: number; peakMiB: number };
  /** PyTorch time / nas-onnx time (> 1: nas-onnx is faster). */
  speedup: number;
  cpuSpeedup: number;
}

interface Opts {
  steps: number;
  warmup: number;
  threads: number;
  spin: boolean;
  ep: string;
  torchProfile: boolean;
  set: string;
  /** Lever set of a second nas-onnx process timed alongside (null: none). */
  baseline: string | null;
}

function workerArgs(c: StepConfig, kind: Kind, o: Opts, extra: string[] = []): string[] {
  return [
    fileURLToPath(import.meta.url),
    '--worker',
    '--kind',
    kind,
    '--C',
    String(c.C),
    '--layers',
    String(c.layers),
    '--batch',
    String(c.batch),
    '--threads',
    String(o.threads),
    '--ep',
    o.ep,
    ...(o.spin ? [] : ['--no-spin']),
    ...(o.set ? ['--set', o.set] : []),
    ...extra,
  ];
}

function torchChild(python: string, c: StepConfig, kind: Kind, o: Opts): Child {
  const argv = [
    repoPath('bench', 'torch_ref', 'speed.py'),
    '--kind',
    kind,
    '--C',
    String(c.C),
    '--layers',
    String(c.layers),
    '--batch',
    String(c.batch),
    '--threads',
    String(o.threads),
    '--genotype',
    repoPath('models', 'genotypes', 'darts_v2.json'),
  ];
  // OpenMP threads spin-wait by default, as ORT's do; --no-spin turns both off
  const env = { ...process.env, ...(o.spin ? {} : { OMP_WAIT_POLICY: 'PASSIVE' }) };
  return Child.start('PyTorch', python, argv, env);
}

interface Timed {
  child: Child;
  side: Side;
}

async function stepAll(ts: Timed[], i: number, o: Opts, what: string): Promise<void> {
  // the order rotates each round, so no side always runs right after the same other one
  const order = ts.map((_, k) => ts[(k + i) % ts.length]!);
  for (const { child, side } of order) {
    const r = await child.ask('step');
    if (i >= o.warmup) {
      side.wall.push(r.wall as number);
      side.cpu.push(r.cpu as number);
    }
    const tag = i < o.warmup ? ' (warm-up)' : '';
    process.stderr.write(
      `  ${what} step ${i + 1}/${o.warmup + o.steps}${tag} ${child.name}: ${(r.wall as number).toFixed(2)} s\n`,
    );
  }
}

const sideOf = (t: Timed) => ({
  s: median(t.side.wall),
  cpu: median(t.side.cpu),
  peakMiB: t.side.peakMiB,
  setupS: t.side.ready.setup_s as number,
  setup: t.side.ready.setup as OursFigures['setup'],
  nodes: t.side.ready.nodes,
});

/**
 * Time one step kind: the processes up (nas-onnx, the baseline nas-onnx with other
 * levers when asked, PyTorch), then one step of each in turn, round after round.
 */
async function measure(python: string, c: StepConfig, kind: Kind, o: Opts): Promise<Row> {
  const children = [Child.start('nas-onnx', process.execPath, workerArgs(c, kind, o), process.env)];
  if (o.baseline !== null) {
    const argv = workerArgs(c, kind, { ...o, set: o.baseline });
    children.push(Child.start(`nas-onnx [${o.baseline || 'defaults'}]`, process.execPath, argv, process.env));
  }
  children.push(torchChild(python, c, kind, o));
  try {
    const ts: Timed[] = [];
    for (const child of children)
      ts.push({ child, side: { wall: [], cpu: [], ready: await child.read(), peakMiB: 0 } });
    for (let i = 0; i < o.warmup + o.steps; i++) await stepAll(ts, i, o, `${c.name} ${kind}`);
    const torch = ts[ts.length - 1]!;
    if (o.torchProfile) printTorchProfile(c, kind, await torch.child.ask('profile'));
    for (const t of ts) t.side.peakMiB = (await t.child.ask('quit')).peak_rss_mib as number;
    const ours = sideOf(ts[0]!);
    const ref = sideOf(torch);
    const base = o.baseline !== null ? sideOf(ts[1]!) : undefined;
    return {
      config: c.name,
      kind,
      ours,
      torch: { s: ref.s, cpu: ref.cpu, peakMiB: ref.peakMiB },
      speedup: ref.s / ours.s,
      cpuSpeedup: ref.cpu / ours.cpu,
      ...(base ? { baseline: base, leverGain: base.s / ours.s, leverCpuGain: base.cpu / ours.cpu } : {}),
    };
  } finally {
    for (const ch of children) ch.kill();
  }
}

function printTorchProfile(c: StepConfig, kind: Kind, r: Record<string, unknown>): void {
  const rows = r.profile as { op: string; share: number; ms: number; calls: number }[];
  console.log(`PyTorch profile, ${c.name}, ${KIND_NAME[kind]} (self CPU time):`);
  for (const x of rows)
    console.log(
      `  ${x.op.padEnd(36)} ${(100 * x.share).toFixed(1).padStart(5)}%  ${x.ms.toFixed(0).padStart(7)} ms  ×${x.calls}`,
    );
}

/** ORT profile of one nas-onnx step (after a warm-up step): kernel time by op type. */
async function profileOurs(c: StepConfig, kind: Kind, o: Opts): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'nas-onnx-speed-'));
  const ours = Child.start('nas-onnx', process.execPath, workerArgs(c, kind, o, ['--profile', dir]), process.env);
  try {
    await ours.read();
    await ours.ask('step');
    await ours.ask('step');
    const r = await ours.ask('profile');
    await ours.ask('quit');
    return r.summary as string;
  } finally {
    ours.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

const f2 = (x: number): string => x.toFixed(2);

export function formatTable(rows: Row[]): string {
  const base = rows.some((r) => r.baseline);
  const head = [
    'config',
    'step',
    'nas-onnx s/step',
    'PyTorch s/step',
    'speed-up (PyTorch ÷ nas-onnx)',
    'CPU s/step nas-onnx / PyTorch',
    'peak MiB nas-onnx / PyTorch',
    'nas-onnx set-up s',
    ...(base ? ['baseline s/step (CPU s)', 'lever gain (CPU)'] : []),
  ];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const r of rows) {
    const cells = [
      r.config,
      KIND_NAME[r.kind],
      f2(r.ours.s),
      f2(r.torch.s),
      `${f2(r.speedup)}×`,
      `${f2(r.ours.cpu)} / ${f2(r.torch.cpu)} (${f2(r.cpuSpeedup)}×)`,
      `${r.ours.peakMiB.toFixed(0)} / ${r.torch.peakMiB.toFixed(0)}`,
      r.ours.setupS.toFixed(1),
    ];
    if (r.baseline)
      cells.push(`${f2(r.baseline.s)} (${f2(r.baseline.cpu)})`, `${f2(r.leverGain!)}× (${f2(r.leverCpuGain!)}×)`);
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

/** Where nas-onnx's set-up time goes, by step graph size. */
export function formatSetupTable(rows: Row[]): string {
  const head = [
    'config',
    'step',
    'nodes',
    'graphs + autodiff s',
    'serialize s',
    'ORT sessions s',
    'µs per node (sessions)',
  ];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const r of rows) {
    const nodes = Object.values(r.ours.nodes as Record<string, number>).reduce((a, b) => a + b, 0);
    const s = r.ours.setup;
    const perNode = ((s.sessionsS * 1e6) / nodes).toFixed(0);
    lines.push(
      `| ${[r.config, KIND_NAME[r.kind], nodes, f2(s.graphsS), f2(s.serializeS), f2(s.sessionsS), perNode].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const a = args({
    quick: false,
    kinds: KINDS.join(','),
    config: '',
    steps: 5,
    warmup: 1,
    threads: 2,
    'no-spin': false,
    ep: 'cpu',
    'no-profile': false,
    'torch-profile': false,
    set: '',
    baseline: '',
    json: false,
  });
  const kinds = String(a.kinds).split(',') as Kind[];
  for (const k of kinds) if (!KINDS.includes(k)) throw new Error(`--kinds: unknown step kind '${k}'`);
  const custom = String(a.config).split(',').filter(Boolean).map(Number);
  const configs: readonly StepConfig[] = custom.length
    ? [
        {
          name: `C=${custom[0]}, ${custom[1]} cells, batch ${custom[2]}`,
          C: custom[0]!,
          layers: custom[1]!,
          batch: custom[2]!,
        },
      ]
    : a.quick
      ? CONFIGS.slice(0, 1)
      : CONFIGS;
  const o: Opts = {
    steps: Math.max(1, Number(a.steps)),
    warmup: Math.max(0, Number(a.warmup)),
    threads: Number(a.threads),
    spin: !a['no-spin'],
    ep: String(a.ep),
    torchProfile: !!a['torch-profile'],
    set: String(a.set),
    baseline: a.baseline === '' ? null : String(a.baseline) === 'defaults' ? '' : String(a.baseline),
  };
  const { python, torch } = findTorchPython();
  const load0 = loadavg()[0]!;
  const rows: Row[] = [];
  const profiles: string[] = [];
  for (const c of configs) {
    for (const k of kinds) rows.push(await measure(python, c, k, o));
    if (!a['no-profile'])
      for (const k of kinds.filter((x) => x !== 'second')) profiles.push(await profileOurs(c, k, o));
  }
  const load1 = loadavg()[0]!;
  const header =
    `nas-onnx (onnxruntime-node, ep ${o.ep}) vs PyTorch ${torch} (CPU), ${o.threads} threads each, threads ${o.spin ? 'spin (library defaults)' : 'do not spin'}; ` +
    `median of ${o.steps} steps after ${o.warmup} warm-up, steps interleaved; load average ${load0.toFixed(1)} at start, ${load1.toFixed(1)} at end${o.set ? `; levers set: ${o.set}` : ''}${o.baseline !== null ? `; baseline levers: ${o.baseline || 'defaults'}` : ''}`;
  if (a.json) console.log(JSON.stringify({ header, rows, profiles }));
  else console.log([header, '', formatTable(rows), '', formatSetupTable(rows), '', ...profiles].join('\n'));
}

const self = process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1];
if (self && process.argv.includes('--worker')) await startWorker();
else if (self)
  main().catch((e: unknown) => {
    process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
  });
