/**
 * `nas-onnx study`: the UnNAS sample-based study — train N architectures of a
 * space (sampled, or the first N of the published UnNAS pool) from scratch on
 * pretext objectives and on labels, then rank-correlate the accuracies
 * (Spearman ρ per objective vs cls), draw the scatter plots and the
 * random-experiment curve. Trials run in this process (--concurrency) or on
 * BullMQ workers (--queue redis://host:port, with `nas-onnx worker`). The
 * study directory makes it resumable: finished trials are never rerun.
 *
 * `nas-onnx worker --queue redis://host:port`: runs the trials other study
 * processes enqueue, until interrupted.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { existsSync, mkdirSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  StudyError,
  STUDY_OBJECTIVES,
  defaultStudyConfig,
  formatStudyEvent,
  openOrCreateStudy,
  openStudy,
  runStudyLocal,
  selectArchitectures,
  studyConfigOf,
  writeStudyReportFor,
  type ArchSelection,
  type StudyArch,
  type StudyConfig,
  type StudyEvent,
  type StudyRunStats,
  type StudySpace,
} from '../../train/study/runner.js';
import type { TrialStore } from '../../train/study/store.js';
import { DEFAULT_QUEUE_NAME, runStudyQueue, startStudyWorker } from '../../train/study/queue.js';
import { RunLock } from '../../train/runtime/lock.js';
import { CliError, registerKnownError } from '../errors.js';
import { epOption, intOption, parsePositiveFloat, parseSeed, sizeOption, skipCorruptOption } from '../options.js';

registerKnownError(StudyError);

function parseNonNegativeFloat(value: string): number {
  const n = Number(value.trim());
  if (value.trim() === '' || !Number.isFinite(n) || n < 0)
    throw new InvalidArgumentError(`expected a non-negative number, got '${value}'.`);
  return n;
}

function parseObjectives(value: string): string[] {
  const list = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (!list.length) throw new InvalidArgumentError('expected a comma-separated list of objectives.');
  for (const o of list) {
    if (!(STUDY_OBJECTIVES as readonly string[]).includes(o))
      throw new InvalidArgumentError(`unknown objective '${o}' (expected ${STUDY_OBJECTIVES.join(', ')}).`);
  }
  return [...new Set(list)];
}

interface StudyCliOptions {
  space?: StudySpace;
  archs?: number;
  pool?: 'unnas';
  archSeed?: number;
  objectives?: string[];
  dataset?: string;
  data?: string;
  epochs?: number;
  batch?: number;
  evalBatch?: number;
  seeds?: number;
  clsSeeds?: number;
  limit?: number;
  testLimit?: number;
  size?: number;
  skipCorrupt?: boolean;
  lr?: number;
  weightDecay?: number;
  preciseBn?: number;
  C?: number;
  layers?: number;
  width?: number;
  stacks?: number;
  cellsPerStack?: number;
  out: string;
  queue?: string;
  queueName: string;
  concurrency: number;
  threads?: number;
  workers: number;
  attempts: number;
  ep: 'cpu' | 'cuda';
  reportOnly: boolean;
  retryFailed: boolean;
  quiet: boolean;
}

/** The config given on the command line, over `base`. */
function configFromOptions(o: StudyCliOptions, base: StudyConfig): StudyConfig {
  if (o.data !== undefined && o.dataset !== undefined)
    throw new CliError('give at most one of --data PATH or --dataset NAME');
  const c: StudyConfig = { ...base };
  const set = <K extends keyof StudyConfig>(k: K, v: StudyConfig[K] | undefined): void => {
    if (v !== undefined) c[k] = v;
  };
  set('space', o.space);
  set('dataset', o.data ?? o.dataset);
  set('limit', o.limit);
  set('testLimit', o.testLimit);
  set('size', o.size);
  if (o.skipCorrupt) c.skipCorrupt = true;
  set('epochs', o.epochs);
  set('batch', o.batch);
  set('evalBatch', o.evalBatch);
  set('lr', o.lr);
  set('weightDecay', o.weightDecay);
  set('preciseBn', o.preciseBn);
  set('C', o.C);
  set('layers', o.layers);
  set('width', o.width);
  set('stacks', o.stacks);
  set('cellsPerStack', o.cellsPerStack);
  return c;
}

/** The distinct architectures of a study's manifest, in order. */
function manifestArchs(store: TrialStore): StudyArch[] {
  const seen = new Map<string, StudyArch>();
  for (const t of store.trials())
    if (!seen.has(t.archId)) seen.set(t.archId, { archId: t.archId, arch: t.arch as StudyArch['arch'] });
  return [...seen.values()];
}

export async function printReport(store: TrialStore): Promise<void> {
  const r = await writeStudyReportFor(store);
  process.stdout.write(r.text);
  process.stdout.write(
    `report: ${join(store.dir, 'report', 'report.html')} (beside it: summary.txt, summary.json, random_experiment.svg, scatter_*.svg, trials.csv)\n`,
  );
}

/** Seeds 0..n-1 (undefined stays undefined). */
function seedList(n: number | undefined): number[] | undefined {
  return n === undefined ? undefined : Array.from({ length: n }, (_, i) => i);
}

/** A new study in --out: the architectures, objectives and seeds the options select. */
function newStudy(o: StudyCliOptions): TrialStore {
  if (o.archs === undefined) throw new CliError('a new study needs --archs N (the number of architectures)');
  const config = configFromOptions(o, defaultStudyConfig(o.space ?? 'darts'));
  const sel: ArchSelection = o.pool
    ? { source: 'pool', count: o.archs }
    : { source: 'sample', count: o.archs, seed: o.archSeed ?? 0 };
  const archs = selectArchitectures(config.space, sel);
  const seeds = Array.from({ length: o.seeds ?? 1 }, (_, i) => i);
  return openOrCreateStudy(o.out, {
    config,
    archs,
    objectives: o.objectives ?? ['rot', 'cls'],
    seeds,
    clsSeeds: seedList(o.clsSeeds),
    archSource: sel,
  });
}

/** The study in --out, with the architectures, objectives or seeds the options add. */
function continueStudy(o: StudyCliOptions): TrialStore {
  const existing = openStudy(o.out);
  if (o.retryFailed) {
    const n = existing.clearFailures();
    if (n) process.stderr.write(`study: ${n} failed trial(s) will run again (--retry-failed)\n`);
  }
  const stored = studyConfigOf(existing);
  const config = configFromOptions(o, stored);
  const trials = existing.trials();
  const objectives = o.objectives ?? [...new Set(trials.map((t) => t.objective))];
  // the seeds the study has (cls may have its own: --cls-seeds), unless the options give others
  const seedsOf = (ts: typeof trials) => (ts.length ? [...new Set(ts.map((t) => t.seed))] : undefined);
  const seeds = seedList(o.seeds) ?? seedsOf(trials.filter((t) => t.objective !== 'cls')) ?? seedsOf(trials) ?? [0];
  const clsSeeds = seedList(o.clsSeeds ?? o.seeds) ?? seedsOf(trials.filter((t) => t.objective === 'cls')) ?? seeds;
  const sel = (existing.meta as { archSource?: ArchSelection }).archSource ?? { source: 'sample', count: 0 };
  let archs = manifestArchs(existing);
  if (o.archs !== undefined) {
    const s: ArchSelection = o.pool
      ? { source: 'pool', count: o.archs }
      : { source: 'sample', count: o.archs, seed: o.archSeed ?? sel.seed ?? 0 };
    archs = selectArchitectures(config.space, s);
  }
  return openOrCreateStudy(o.out, { config, archs, objectives, seeds, clsSeeds, archSource: sel });
}

/** Run the pending trials (in process or through the queue); the first interrupt stops gracefully. */
async function runTrials(store: TrialStore, o: StudyCliOptions): Promise<StudyRunStats> {
  const onEvent = (e: StudyEvent): void => {
    if (o.quiet && e.type !== 'trial-failed') return;
    const line = formatStudyEvent(e);
    if (line) process.stderr.write(`${line}\n`);
  };
  const ac = new AbortController();
  let interrupts = 0;
  const onSignal = (): void => {
    interrupts++;
    if (interrupts > 1) process.exit(130);
    process.stderr.write(
      o.queue
        ? 'interrupted: stopping (queued trials stay queued; run the study again to collect them)\n'
        : 'interrupted: finishing the running trials (interrupt again to quit now)\n',
    );
    ac.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return o.queue
      ? await runStudyQueue(store, {
          url: o.queue,
          name: o.queueName,
          attempts: o.attempts,
          onEvent,
          signal: ac.signal,
        })
      : await runStudyLocal(store, {
          concurrency: o.concurrency,
          threads: o.threads,
          workers: o.workers,
          ep: o.ep,
          attempts: o.attempts,
          onEvent,
          signal: ac.signal,
        });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function studyAction(o: StudyCliOptions): Promise<void> {
  if (o.reportOnly) {
    await printReport(openStudy(o.out));
    return;
  }
  // one study process writes a study directory at a time (its workers only compute)
  const created = !existsSync(o.out);
  mkdirSync(o.out, { recursive: true });
  const lock = RunLock.acquire(o.out, 'study');
  try {
    const store = existsSync(join(o.out, 'study.json')) ? continueStudy(o) : newStudy(o);
    await finishStudy(store, await runTrials(store, o));
  } catch (e) {
    lock.release();
    if (created && readdirSync(o.out).length === 0) rmdirSync(o.out);
    throw e;
  } finally {
    lock.release();
  }
}

/**
 * The end of a study run: the counts; trials that failed every attempt (one
 * error line: run again to retry them); trials left by an interruption (exit
 * 130); else the report, then the trials that failed on every try (recorded,
 * not retried) as one error line.
 */
async function finishStudy(store: TrialStore, stats: StudyRunStats): Promise<void> {
  const { done, failed, total } = store.progress();
  process.stderr.write(
    `study: ${stats.recorded} trials recorded in ${stats.seconds.toFixed(1)} s; ${done}/${total} done${failed ? `, ${failed} failed` : ''}\n`,
  );
  const retry = stats.failed.filter((f) => !f.everyTry);
  if (retry.length) {
    throw new CliError(
      `${retry.length} trial(s) failed every attempt (first: ${retry[0]!.trialId}: ${retry[0]!.error}); run the same command again to retry them`,
    );
  }
  if (done + failed < total) {
    process.stderr.write(`study: ${total - done - failed} trial(s) left; run the same command again to resume\n`);
    process.exitCode = 130;
    return;
  }
  await printReport(store);
  const every = store.failures();
  if (every.length) {
    throw new CliError(
      `${every.length} trial(s) failed in a way a retry would repeat, recorded in ${join(store.dir, 'failed')} and not retried ` +
        `(first: ${every[0]!.trialId}: ${every[0]!.reason}); --retry-failed runs them again`,
    );
  }
}

interface WorkerCliOptions {
  queue: string;
  queueName: string;
  ep: 'cpu' | 'cuda';
  concurrency: number;
  threads?: number;
  workers: number;
  lockDuration: number;
  stalledInterval: number;
  maxStalled: number;
  quiet: boolean;
}

async function workerAction(o: WorkerCliOptions): Promise<void> {
  const log = (line: string): void => {
    if (!o.quiet || line.startsWith('failed') || line.startsWith('worker'))
      process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
  };
  const w = await startStudyWorker({
    url: o.queue,
    name: o.queueName,
    ep: o.ep,
    concurrency: o.concurrency,
    threads: o.threads,
    workers: o.workers,
    lockDuration: o.lockDuration,
    stalledInterval: o.stalledInterval,
    maxStalledCount: o.maxStalled,
    log,
  });
  log(
    `worker ${w.id} waiting for trials on queue '${o.queueName}' at ${o.queue} (concurrency ${o.concurrency}, ep ${o.ep})`,
  );
  await new Promise<void>((resolve) => {
    let signals = 0;
    const stop = (): void => {
      signals++;
      if (signals > 1) process.exit(130);
      log('worker stopping: finishing the running trials (interrupt again to quit now)');
      void w.close().then(resolve, resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  log(`worker ${w.id} stopped`);
}

export function register(program: Command): void {
  program
    .command('study')
    .description(
      'UnNAS sample-based study: train architectures on pretext tasks and labels, rank-correlate the accuracies',
    )
    .requiredOption('--out <dir>', 'study directory (created, or resumed when it exists)')
    .addOption(new Option('--space <space>', 'search space (default darts)').choices(['darts', 'nb101']))
    .addOption(intOption('--archs <n>', 'number of architectures (required for a new study)'))
    .addOption(
      new Option(
        '--pool <name>',
        'take the first --archs architectures of a published pool instead of sampling (default: sample)',
      ).choices(['unnas']),
    )
    .addOption(new Option('--arch-seed <n>', 'seed of the architecture sampler (default 0)').argParser(parseSeed))
    .addOption(
      new Option(
        '--objectives <list>',
        `comma-separated objectives among ${STUDY_OBJECTIVES.join(',')} (default rot,cls; cls is the reference)`,
      ).argParser(parseObjectives),
    )
    .option('--dataset <name>', 'a named data set: fashion-mnist (default), cifar10:<dir>, mnist:<dir>, …')
    .option('--data <path>', 'a data set path (CIFAR batches, IDX files or an image folder), instead of --dataset')
    .addOption(intOption('--epochs <n>', 'training epochs per trial (default 1)'))
    .addOption(intOption('--batch <n>', 'images per training batch (default 32)'))
    .addOption(intOption('--eval-batch <n>', 'images per evaluation batch (default 100)'))
    .addOption(intOption('--seeds <n>', 'training seeds per architecture and objective: 0..n-1 (default 1)'))
    .addOption(
      intOption(
        '--cls-seeds <n>',
        'seeds of the supervised objective cls: 0..n-1 (default: --seeds); two give the seed-noise check',
      ),
    )
    .addOption(
      intOption('--limit <n>', 'use the first N training images (and test images unless --test-limit; default: all)'),
    )
    .addOption(intOption('--test-limit <n>', 'use the first N test images (default: --limit)'))
    .addOption(sizeOption())
    .addOption(skipCorruptOption())
    .addOption(
      new Option('--lr <x>', 'initial learning rate, cosine to 0 (default 0.025)').argParser(parsePositiveFloat),
    )
    .addOption(new Option('--weight-decay <x>', 'weight decay (default 5e-4)').argParser(parseNonNegativeFloat))
    .addOption(
      intOption(
        '--precise-bn <n>',
        'training images to recompute BN statistics on before evaluation, 0 = running statistics (default 1024)',
        undefined,
        0,
      ),
    )
    .addOption(intOption('--C <n>', 'DARTS initial channels (default 8)'))
    .addOption(intOption('--layers <n>', 'DARTS cells (default 5)'))
    .addOption(intOption('--width <n>', 'NAS-Bench-101 stem width (default 16)'))
    .addOption(intOption('--stacks <n>', 'NAS-Bench-101 stacks (default 3)'))
    .addOption(intOption('--cells-per-stack <n>', 'NAS-Bench-101 cells per stack (default 1)'))
    .option(
      '--queue <url>',
      'run the trials on BullMQ workers through this Redis (redis://host:port; default: in this process)',
    )
    .option('--queue-name <name>', 'BullMQ queue name', DEFAULT_QUEUE_NAME)
    .addOption(intOption('--concurrency <n>', 'trials at once in this process (without --queue)', 1))
    .addOption(intOption('--threads <n>', 'onnxruntime threads per trial (default: cores / concurrency)'))
    .addOption(intOption('--workers <n>', 'batch-building threads', 0, 0))
    .addOption(
      intOption('--attempts <n>', 'tries per trial (a failure that a retry would repeat is recorded at once)', 3),
    )
    .option('--retry-failed', 'run the trials recorded as failed again', false)
    .addOption(epOption())
    .option('--report-only', 'only write and print the report of the finished trials', false)
    .option('--quiet', 'no progress lines', false)
    .action((opts: StudyCliOptions) => studyAction(opts));
  registerWorker(program);
}

/** `nas-onnx worker`. */
function registerWorker(program: Command): void {
  program
    .command('worker')
    .description('run study trials from a BullMQ queue (see nas-onnx study --queue) until interrupted')
    .requiredOption('--queue <url>', 'Redis URL (redis://host:port)')
    .option('--queue-name <name>', 'BullMQ queue name', DEFAULT_QUEUE_NAME)
    .addOption(epOption())
    .addOption(intOption('--concurrency <n>', 'trials at once', 1))
    .addOption(intOption('--threads <n>', 'onnxruntime threads per trial (default: cores / concurrency)'))
    .addOption(intOption('--workers <n>', 'batch-building threads', 0, 0))
    .addOption(
      intOption('--lock-duration <ms>', 'job lock in ms: a worker silent this long loses its trial to another', 60_000),
    )
    .addOption(intOption('--stalled-interval <ms>', 'period of the stalled-trial check in ms', 30_000))
    .addOption(intOption('--max-stalled <n>', 'stall recoveries of a trial before it fails', 2, 0))
    .option('--quiet', 'only errors', false)
    .action((opts: WorkerCliOptions) => workerAction(opts));
}
