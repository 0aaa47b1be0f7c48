/**
 * The label-fraction sweep of SSWP-NAS (the paper's Fig. 5 and Table 4):
 * fine-tune a search run's architecture at several label fractions, with
 * several seeds, from each initialization (concomitant weights, random, the
 * SimCLR two-stage baseline), every arm with the same budget, data order and
 * BN treatment (train/eval/finetune.ts); one table and one chart of the test
 * accuracy (mean ± sample standard deviation over the seeds) against the
 * fraction, per arm. A seed draws its own labelled subset, data order,
 * drop-path masks and fresh weights; the search and the SimCLR pre-training
 * are run once.
 *
 * Resumable like the study: <out>/sweep.json holds the settings, every
 * finished arm writes results/f<F>-s<seed>-<init>.json atomically, and a
 * restarted sweep runs only the missing arms (other settings in the same
 * directory are refused). Outputs: sweep.json, results/, runs/ (fine-tune
 * logs), summary.json, table.md, accuracy.svg.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runFinetune, type FinetuneOptions, type FinetuneRun, type Init } from '../eval/finetune.js';
import { latestCheckpoint } from '../runtime/checkpoint.js';
import { TrainError } from '../runtime/errors.js';
import { writeFileAtomic } from '../runtime/fsutil.js';
import { pretrainBaseline } from '../search/sswp/baseline.js';
import { randomExperimentSvg } from './analysis.js';

export const SWEEP_FORMAT = 'nas-onnx/sweep@1';
/** The paper's label fractions (0.9 to 0.1 in steps of 0.2). */
export const PAPER_FRACTIONS: readonly number[] = [0.9, 0.7, 0.5, 0.3, 0.1];

/** The fine-tuning settings every run of a sweep shares (recorded: a resumed sweep must keep them). */
export type SweepTraining = Omit<
  FinetuneOptions,
  | 'from'
  | 'labelsFraction'
  | 'seed'
  | 'inits'
  | 'out'
  | 'keepModels'
  | 'onRun'
  | 'quiet'
  | 'simclrDir'
  | 'ep'
  | 'workers'
>;

export interface SweepOptions {
  from: string;
  out: string;
  fractions?: readonly number[];
  seeds?: readonly number[];
  inits?: readonly Init[];
  training: SweepTraining;
  /** How to run (not recorded: a sweep may resume with other values). */
  ep?: FinetuneOptions['ep'];
  workers?: number;
  quiet?: boolean;
}

/** One finished arm. */
export interface ArmResult extends Omit<FinetuneRun, 'modelPath'> {
  fraction: number;
  seed: number;
}

/** Mean ± std of one arm at one fraction. */
export interface SweepCell {
  fraction: number;
  init: Init;
  /** Test accuracies, one per seed (seed order). */
  accs: number[];
  mean: number;
  /** Sample standard deviation (n − 1); 0 for one seed. */
  std: number;
  labelled: number;
}

export interface SweepSummary {
  from: string;
  fractions: number[];
  seeds: number[];
  inits: Init[];
  cells: SweepCell[];
  /** Arms run by this invocation, and its wall time (seconds). */
  ranNow: number;
  wallSeconds: number;
  /** Sum of the recorded seconds of every arm. */
  armSeconds: number;
}

interface Manifest {
  format: typeof SWEEP_FORMAT;
  from: string;
  fractions: number[];
  seeds: number[];
  inits: Init[];
  training: SweepTraining;
}

function manifestOf(o: SweepOptions): Manifest {
  const fractions = [...(o.fractions ?? PAPER_FRACTIONS)];
  const seeds = [...(o.seeds ?? [0, 1, 2])];
  const inits = [...(o.inits ?? (['concomitant', 'random', 'simclr'] as Init[]))];
  if (!fractions.length || !seeds.length || !inits.length)
    throw new TrainError('a sweep needs at least one fraction, one seed and one initialization');
  for (const f of fractions)
    if (!(f > 0 && f <= 1)) throw new TrainError(`label fractions must be in (0, 1], got ${f}`);
  const training = Object.fromEntries(Object.entries(o.training).filter(([, v]) => v !== undefined)) as SweepTraining;
  return { format: SWEEP_FORMAT, from: o.from, fractions, seeds, inits, training };
}

/** Create the sweep directory, or check that it holds this sweep. */
function openSweep(o: SweepOptions): Manifest {
  const m = manifestOf(o);
  const file = join(o.out, 'sweep.json');
  const text = `${JSON.stringify(m, null, 2)}\n`;
  if (existsSync(file)) {
    const old = readFileSync(file, 'utf8');
    if (old !== text)
      throw new TrainError(
        `${o.out} holds a sweep with other settings (${file}); use another --out or the same settings`,
      );
  } else {
    mkdirSync(join(o.out, 'results'), { recursive: true });
    writeFileAtomic(file, text);
  }
  mkdirSync(join(o.out, 'results'), { recursive: true });
  return m;
}

const armKey = (fraction: number, seed: number, init: Init): string => `f${fraction}-s${seed}-${init}`;
const resultFile = (out: string, key: string): string => join(out, 'results', `${key}.json`);

function readResult(out: string, key: string): ArmResult | null {
  const f = resultFile(out, key);
  if (!existsSync(f)) return null;
  try {
    return JSON.parse(readFileSync(f, 'utf8')) as ArmResult;
  } catch (e) {
    throw new TrainError(`${f} is not a sweep result (${(e as Error).message}); delete it to rerun that arm`);
  }
}

/** Run the arms of one (fraction, seed) that have no result yet; each result is written as its arm finishes. */
async function runPending(o: SweepOptions, m: Manifest, fraction: number, seed: number): Promise<number> {
  const missing = m.inits.filter((init) => !readResult(o.out, armKey(fraction, seed, init)));
  if (!missing.length) return 0;
  const runDir = join(o.out, 'runs', `f${fraction}-s${seed}`);
  const r = await runFinetune({
    ...m.training,
    ep: o.ep,
    workers: o.workers,
    from: m.from,
    labelsFraction: fraction,
    seed,
    inits: missing,
    out: runDir,
    // a fine-tune interrupted in an arm continues from its checkpoint; one that failed before it starts afresh
    resume: latestCheckpoint(runDir) !== null,
    overwrite: latestCheckpoint(runDir) === null,
    keepModels: false,
    quiet: o.quiet,
    onRun: (run) => {
      const { modelPath: _m, ...rest } = run;
      const res: ArmResult = { ...rest, fraction, seed };
      writeFileAtomic(resultFile(o.out, armKey(fraction, seed, run.init)), `${JSON.stringify(res, null, 2)}\n`);
    },
  });
  return r.runs.length;
}

function meanStd(xs: readonly number[]): { mean: number; std: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const ss = xs.reduce((a, b) => a + (b - mean) ** 2, 0);
  return { mean, std: xs.length > 1 ? Math.sqrt(ss / (xs.length - 1)) : 0 };
}

function summarize(o: SweepOptions, m: Manifest, ranNow: number, wallSeconds: number): SweepSummary {
  const cells: SweepCell[] = [];
  let armSeconds = 0;
  for (const fraction of m.fractions) {
    for (const init of m.inits) {
      const rs = m.seeds.map((seed) => readResult(o.out, armKey(fraction, seed, init))!);
      armSeconds += rs.reduce((a, r) => a + r.seconds, 0);
      const accs = rs.map((r) => r.testAcc);
      cells.push({ fraction, init, accs, ...meanStd(accs), labelled: rs[0]!.labelled });
    }
  }
  return {
    from: m.from,
    fractions: m.fractions,
    seeds: m.seeds,
    inits: m.inits,
    cells,
    ranNow,
    wallSeconds,
    armSeconds,
  };
}

/** The table: one row per fraction, one column per arm, test accuracy in % (mean ± std over the seeds). */
export function sweepTable(s: SweepSummary): string {
  const head = `| labels | ${s.inits.join(' | ')} |`;
  const rule = `|---|${s.inits.map(() => '---').join('|')}|`;
  const rows = s.fractions.map((f) => {
    const cells = s.inits.map((init) => {
      const c = s.cells.find((x) => x.fraction === f && x.init === init)!;
      return `${(100 * c.mean).toFixed(2)} ± ${(100 * c.std).toFixed(2)}`;
    });
    const n = s.cells.find((x) => x.fraction === f)!.labelled;
    return `| ${Math.round(100 * f)}% (${n}) | ${cells.join(' | ')} |`;
  });
  return [head, rule, ...rows, ''].join('\n');
}

/** The chart: test accuracy against the label fraction, one line per arm, bands mean ± std. */
export function sweepChart(s: SweepSummary): Promise<string> {
  const series = s.inits.map((init) => ({
    label: init,
    points: s.cells
      .filter((c) => c.init === init)
      .map((c) => ({
        m: c.fraction,
        draws: c.accs.length,
        mean: 100 * c.mean,
        std: 100 * c.std,
        lo: 100 * (c.mean - c.std),
        hi: 100 * (c.mean + c.std),
      })),
  }));
  return randomExperimentSvg(series, {
    title: `Fine-tuning by label fraction (${s.seeds.length} seed${s.seeds.length > 1 ? 's' : ''})`,
    xLabel: 'fraction of the training labels',
    yLabel: 'test accuracy (%)',
    logX: false,
    bandLabel: 'lines: mean over seeds; bands: mean ± std',
  });
}

export async function runSweep(o: SweepOptions): Promise<SweepSummary> {
  const t0 = Date.now();
  const m = openSweep(o);
  if (m.inits.includes('simclr')) await pretrainBaseline(m.from, { ep: o.ep, workers: o.workers, quiet: o.quiet });
  let ranNow = 0;
  for (const fraction of m.fractions) for (const seed of m.seeds) ranNow += await runPending(o, m, fraction, seed);
  const s = summarize(o, m, ranNow, (Date.now() - t0) / 1000);
  writeFileAtomic(join(o.out, 'summary.json'), `${JSON.stringify(s, null, 2)}\n`);
  writeFileAtomic(join(o.out, 'table.md'), sweepTable(s));
  writeFileAtomic(join(o.out, 'accuracy.svg'), await sweepChart(s));
  return s;
}
