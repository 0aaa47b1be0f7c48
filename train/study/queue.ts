/**
 * Distributed execution of a study over BullMQ (Redis).
 *
 * The study process is the only writer of the study directory: it enqueues
 * the pending trials (job id = trial id, so enqueueing again is a no-op while
 * a job exists), waits, and records each completed job's result in the
 * TrialStore, then removes the job. Workers (`nas-onnx worker`) only compute:
 * a job carries the trial and the study config, its return value is the
 * trial's metrics and info.
 *
 * Failures: a trial that throws is retried (`attempts`, default 3, fixed
 * backoff), unless the failure would repeat on every try (NaN loss, batch
 * larger than the data, bad settings: errors.ts failsEveryTry): the worker
 * then fails the job at once (BullMQ's UnrecoverableError) and the study
 * records the trial as failed with its reason. A worker that dies mid-trial stops renewing its job lock; after
 * `lockDuration` the stalled-job check of any live worker (every
 * `stalledInterval`) moves the job back to the wait list and another worker
 * runs it from scratch (`maxStalledCount` such recoveries, default 2, before
 * the job fails). A job that failed for good is reported; running the study
 * again re-enqueues it.
 *
 * Redis driver: BullMQ 6 loads `ioredis` itself (an optional peer dependency
 * of BullMQ); it must be installed next to it.
 */
import { createRequire } from 'node:module';
import { hostname } from 'node:os';
import { Queue, QueueEvents, UnrecoverableError, Worker, type ConnectionOptions, type Job } from 'bullmq';
import type { EP } from '../runtime/session.js';
import { DataPool } from '../data/index.js';
import type { Trial, TrialStore } from './store.js';
import { TrialProcessPool } from './child-pool.js';
import { failsEveryTry } from './errors.js';
import {
  DataCache,
  StudyError,
  StudyProgress,
  defaultThreads,
  runTrial,
  studyConfigOf,
  studyKey,
  type StudyConfig,
  type StudyEvent,
  type StudyRunStats,
  type TrialContext,
  type TrialOutcome,
} from './runner.js';

/** Prefix of a failed job's reason when the trial would fail the same way on every try. */
const EVERY_TRY = 'fails on every try: ';

/** Default BullMQ queue name of studies and workers. */
export const DEFAULT_QUEUE_NAME = 'nas-onnx-study';

/** What a trial job carries. */
export interface TrialJobData {
  trial: Trial;
  config: StudyConfig;
  /** studyKey(config): a job of another study config with the same trial id is refused. */
  studyKey: string;
}

/** Throws a StudyError unless BullMQ can load its Redis driver. */
export function checkRedisDriver(): void {
  const req = createRequire(createRequire(import.meta.url).resolve('bullmq'));
  try {
    req.resolve('ioredis');
  } catch {
    throw new StudyError("the queue needs the 'ioredis' package (BullMQ's Redis driver): npm install ioredis");
  }
}

/** BullMQ connection options for a redis:// URL. @throws StudyError on a bad URL or a missing driver. */
export function queueConnection(url: string): ConnectionOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new StudyError(`bad queue URL '${url}' (expected redis://host:port)`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    throw new StudyError(`bad queue URL '${url}' (expected redis://host:port)`);
  checkRedisDriver();
  // Workers need maxRetriesPerRequest null (blocking commands); reconnect with a capped backoff.
  return { url, maxRetriesPerRequest: null, retryStrategy: (times: number) => Math.min(200 * times, 2000) };
}

async function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new StudyError(message)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves when the client behind `q` answers; rejects with a StudyError after `ms`. */
async function ready(q: { waitUntilReady(): Promise<unknown> }, url: string, ms = 15_000): Promise<void> {
  await withTimeout(q.waitUntilReady(), ms, `cannot reach Redis at ${url} (is redis-server running?)`);
}

/** Closes a BullMQ object, giving up after `ms` (a never-connected one may not close cleanly). */
async function closeWithin(c: { close(): Promise<unknown> }, ms = 5000): Promise<void> {
  await withTimeout(c.close(), ms, 'close timed out').catch(() => undefined);
}

/**
 * A queue whose Redis answers: throws a StudyError (after closing it) when
 * Redis cannot be reached, so no reconnecting client is left behind.
 */
async function openQueue(name: string, connection: ConnectionOptions, url: string): Promise<Queue> {
  const queue = new Queue(name, { connection });
  queue.on('error', () => undefined); // surfaced by the calls that fail
  try {
    await ready(queue, url);
  } catch (e) {
    await closeWithin(queue);
    throw e;
  }
  return queue;
}

export interface EnqueueOptions {
  /** Tries per trial (default 3). */
  attempts?: number;
  /** Delay before a retry, ms (default 1000). */
  backoffMs?: number;
}

/**
 * Adds a job per trial, with job id = trial id. An existing job of the same
 * study is left alone (waiting, running or finished) unless it failed for
 * good, in which case it is replaced (a new run of the study retries it).
 * @returns the number of jobs added.
 */
export async function enqueueTrials(
  queue: Queue,
  trials: readonly Trial[],
  config: StudyConfig,
  o: EnqueueOptions = {},
): Promise<number> {
  const key = studyKey(config);
  const attempts = Math.max(1, o.attempts ?? 3);
  const add: { name: string; data: TrialJobData; opts: Record<string, unknown> }[] = [];
  for (const trial of trials) {
    const job = await queue.getJob(trial.id);
    if (job) {
      const data = job.data as Partial<TrialJobData> | undefined;
      if (data?.studyKey !== key) {
        throw new StudyError(
          `queue '${queue.name}' already holds a job ${trial.id} of a study with other settings: use another --queue-name, or wait for that study`,
        );
      }
      if ((await job.getState()) !== 'failed') continue;
      await job.remove();
    }
    add.push({
      name: 'trial',
      data: { trial, config, studyKey: key },
      opts: {
        jobId: trial.id,
        attempts,
        backoff: { type: 'fixed', delay: o.backoffMs ?? 1000 },
        removeOnComplete: false,
        removeOnFail: false,
      },
    });
  }
  // one bulk call per 500 jobs keeps single Redis commands small
  for (let i = 0; i < add.length; i += 500) await queue.addBulk(add.slice(i, i + 500));
  return add.length;
}

export interface QueueRunOptions extends EnqueueOptions {
  /** redis://host:port */
  url: string;
  /** BullMQ queue name (default DEFAULT_QUEUE_NAME). */
  name?: string;
  /** Sweep for finished jobs at least this often, ms (default 2000; events wake it sooner). */
  pollMs?: number;
  /** Say so when no worker is connected for this long, ms (default 30000). */
  idleHintMs?: number;
  onEvent?: (e: StudyEvent) => void;
  /** Stop waiting (jobs stay queued; a later run collects them). */
  signal?: AbortSignal;
}

/** A study waiting on the queue: what is still out and what came back. */
interface QueueRun {
  store: TrialStore;
  o: QueueRunOptions;
  name: string;
  key: string;
  emit: (e: StudyEvent) => void;
  queue: Queue;
  events: QueueEvents;
  /** Pending trials without a final result yet, by trial (= job) id. */
  waiting: Map<string, Trial>;
  progress: StudyProgress;
  failed: StudyRunStats['failed'];
  recorded: number;
  /** Ends the current wait early (a job finished). */
  wake: (() => void) | null;
}

/** Wake the wait loop when a job of this study finishes; report failed attempts and stalls. */
function listen(r: QueueRun): void {
  const poke = (): void => {
    r.wake?.();
  };
  r.events.on('completed', ({ jobId }) => {
    if (r.waiting.has(jobId)) poke();
  });
  r.events.on('failed', ({ jobId, failedReason }) => {
    const t = r.waiting.get(jobId);
    if (t && !failedReason.startsWith(EVERY_TRY))
      r.emit({ type: 'info', message: `trial ${jobId} failed an attempt: ${failedReason}` });
    poke();
  });
  r.events.on('stalled', ({ jobId }) => {
    if (r.waiting.has(jobId))
      r.emit({ type: 'info', message: `trial ${jobId} stalled (its worker stopped answering): back in the queue` });
  });
}

/** Record a completed job's result in the store and remove the job. */
async function recordJob(r: QueueRun, trial: Trial, job: Job<TrialJobData, TrialOutcome>): Promise<void> {
  const rv = job.returnvalue;
  if (!rv || typeof rv !== 'object' || !rv.metrics) return;
  const info = {
    ...rv.info,
    attemptsStarted: job.attemptsStarted,
    attemptsMade: job.attemptsMade,
    stalled: job.stalledCounter,
  };
  if (r.store.recordResult(trial.id, rv.metrics, info)) r.recorded++;
  r.waiting.delete(trial.id);
  r.emit({ type: 'trial-done', trial, outcome: { metrics: rv.metrics, info }, ...r.progress.finish() });
  await job.remove().catch(() => undefined);
}

/** A job that failed for good: reported; one that fails on every try is recorded as failed in the store. */
function recordFailedJob(r: QueueRun, trial: Trial, job: Job<TrialJobData, TrialOutcome>): void {
  const reason = job.failedReason || 'failed';
  const everyTry = reason.startsWith(EVERY_TRY);
  const error = everyTry ? reason.slice(EVERY_TRY.length) : reason;
  if (everyTry) r.store.recordFailure(trial.id, error, { attemptsMade: job.attemptsMade });
  r.waiting.delete(trial.id);
  r.failed.push({ trialId: trial.id, error, everyTry });
  r.emit({ type: 'trial-failed', trial, error, final: true, everyTry });
}

/** Collect the finished jobs of this study. */
async function sweep(r: QueueRun): Promise<void> {
  const jobs = (await r.queue.getJobs(['completed', 'failed'])) as Job<TrialJobData, TrialOutcome>[];
  for (const job of jobs) {
    const id = job.id;
    const trial = id === undefined ? undefined : r.waiting.get(id);
    if (!trial || job.data?.studyKey !== r.key) continue;
    const state = await job.getState();
    if (state === 'completed') await recordJob(r, trial, job);
    else if (state === 'failed') recordFailedJob(r, trial, job);
  }
}

/** Say how to start workers when none is connected. */
async function hintWorkers(r: QueueRun): Promise<void> {
  if ((await r.queue.getWorkersCount()) > 0) return;
  const { name } = r;
  r.emit({
    type: 'info',
    message: `no worker is connected to queue '${name}': start some with  nas-onnx worker --queue ${r.o.url}${name !== DEFAULT_QUEUE_NAME ? ` --queue-name ${name}` : ''}`,
  });
}

/** Wait `ms`, or less when a job finishes (r.wake) or the run is aborted. */
function pause(r: QueueRun, ms: number): Promise<void> {
  const { signal } = r.o;
  return new Promise<void>((resolve) => {
    const finish = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', finish);
      r.wake = null;
      resolve();
    };
    const timer = setTimeout(finish, ms);
    signal?.addEventListener('abort', finish, { once: true });
    r.wake = finish;
  });
}

/** Sweep and wait until every trial has a final result (or the run is aborted). */
async function collect(r: QueueRun): Promise<void> {
  const pollMs = r.o.pollMs ?? 2000;
  const idleHintMs = r.o.idleHintMs ?? 30_000;
  let lastActivity = Date.now();
  while (r.waiting.size > 0 && !r.o.signal?.aborted) {
    const before = r.waiting.size;
    await sweep(r);
    if (r.waiting.size !== before) lastActivity = Date.now();
    if (r.waiting.size === 0) break;
    if (Date.now() - lastActivity > idleHintMs) {
      lastActivity = Date.now();
      await hintWorkers(r);
    }
    await pause(r, pollMs);
  }
}

/**
 * Runs the pending trials of a study on the queue's workers: enqueues them,
 * waits, and records every finished job in the store (this process is the
 * single writer). Returns when every pending trial has a result or failed
 * for good (or when `signal` aborts).
 */
export async function runStudyQueue(store: TrialStore, o: QueueRunOptions): Promise<StudyRunStats> {
  const t0 = performance.now();
  const config = studyConfigOf(store);
  const name = o.name ?? DEFAULT_QUEUE_NAME;
  const emit = o.onEvent ?? (() => undefined);
  const connection = queueConnection(o.url);
  const queue = await openQueue(name, connection, o.url);
  const events = new QueueEvents(name, { connection });
  events.on('error', () => undefined); // without a listener an error event would be thrown
  const pending = store.pendingTrials();
  const { done, total } = store.progress();
  const r: QueueRun = {
    store,
    o,
    name,
    key: studyKey(config),
    emit,
    queue,
    events,
    waiting: new Map(pending.map((t) => [t.id, t])),
    progress: new StudyProgress(total, done),
    failed: [],
    recorded: 0,
    wake: null,
  };
  try {
    await ready(events, o.url);
    emit({ type: 'start', total, done, pending: pending.length });
    const added = await enqueueTrials(queue, pending, config, o);
    if (pending.length)
      emit({
        type: 'info',
        message: `queue '${name}' at ${o.url}: ${added} trials enqueued, ${pending.length - added} already there`,
      });
    listen(r);
    await collect(r);
  } finally {
    await closeWithin(events);
    await closeWithin(queue);
  }
  return { pending: pending.length, recorded: r.recorded, failed: r.failed, seconds: (performance.now() - t0) / 1000 };
}

// ---------------------------------------------------------------------------
// Workers

export interface StudyWorkerOptions {
  url: string;
  name?: string;
  ep?: EP;
  /** Trials at once in this worker (default 1). */
  concurrency?: number;
  /** ORT threads per trial (default: cores / concurrency). */
  threads?: number;
  /** Batch-building threads (default 0). */
  workers?: number;
  /** Job lock, ms (default 60000); renewed every lockDuration/2 while a trial runs. */
  lockDuration?: number;
  /** Stalled-job check period, ms (default 30000). */
  stalledInterval?: number;
  /** Stall recoveries before a job fails (default 2). */
  maxStalledCount?: number;
  /**
   * Run trials in child processes (default true; needs the compiled dist/).
   * In-process trials block the event loop while they train, so the job lock
   * must then outlast the longest training step.
   */
  processes?: boolean;
  /** Progress lines ("start <trial>", "done <trial> …", "failed <trial>: …"). */
  log?: (line: string) => void;
}

export interface StudyWorker {
  /** This worker's name (host:pid). */
  readonly id: string;
  /** Stops taking jobs; waits for the running trials unless `force`. */
  close(force?: boolean): Promise<void>;
}

/** Starts consuming trial jobs. */
export async function startStudyWorker(o: StudyWorkerOptions): Promise<StudyWorker> {
  const name = o.name ?? DEFAULT_QUEUE_NAME;
  const connection = queueConnection(o.url);
  const concurrency = Math.max(1, o.concurrency ?? 1);
  const log = o.log ?? (() => undefined);
  const id = `${hostname()}:${process.pid}`;
  await closeWithin(await openQueue(name, connection, o.url)); // fail fast when Redis is unreachable
  const threads = o.threads ?? defaultThreads(concurrency);
  // Trials run in child processes: onnxruntime-node trains synchronously, and this
  // process must keep renewing the job locks (a silent worker loses its trial).
  const procs =
    o.processes === false ? null : new TrialProcessPool(concurrency, { ep: o.ep, threads, workers: o.workers });
  const pool = procs ? null : new DataPool({ workers: o.workers ?? 0 });
  const ctx: TrialContext = { ep: o.ep, threads, pool: pool ?? undefined, data: new DataCache() };
  const worker = new Worker<TrialJobData, TrialOutcome>(
    name,
    async (job) => {
      const { trial, config } = job.data;
      log(`start ${trial.id} (attempt ${job.attemptsStarted})`);
      let outcome: TrialOutcome;
      try {
        outcome = procs ? await procs.run(trial, config) : await runTrial(trial, config, ctx);
      } catch (e) {
        if (failsEveryTry(e)) throw new UnrecoverableError(`${EVERY_TRY}${(e as Error).message}`);
        throw e;
      }
      outcome.info.worker = id;
      log(
        `done ${trial.id} accuracy ${(100 * (outcome.metrics.accuracy ?? NaN)).toFixed(2)}% (${Number(outcome.info.seconds).toFixed(1)} s)`,
      );
      return outcome;
    },
    {
      connection,
      concurrency,
      name: id,
      autorun: false,
      lockDuration: o.lockDuration ?? 60_000,
      stalledInterval: o.stalledInterval ?? 30_000,
      maxStalledCount: o.maxStalledCount ?? 2,
    },
  );
  worker.on('failed', (job, err) => log(`failed ${job?.id ?? '?'}: ${err.message}`));
  worker.on('error', (err) => log(`worker error: ${err.message}`));
  await ready(worker, o.url);
  const running = worker.run();
  running.catch((e: unknown) => log(`worker stopped: ${(e as Error).message}`));
  let closed: Promise<void> | null = null;
  return {
    id,
    close(force = false) {
      closed ??= (async () => {
        await worker.close(force);
        await running.catch(() => undefined);
        await procs?.close();
        await pool?.close();
      })();
      return closed;
    },
  };
}
