/**
 * Batch loading: a Piscina worker pool (`DataPool`) and an epoch iterator
 * (`DataLoader`) that feeds ready-made batches with prefetching.
 *
 * Reproducibility: the row order of epoch e is `Rng.derive(seed,
 * SHUFFLE_STREAM, e)`, and batch b of epoch e is built by the pure
 * `buildBatch` with `Rng.derive(seed, AUG_STREAM, e, b)` — never from worker
 * identity or timing. So the batches are bit-identical with 0 (in-process),
 * 1 or many workers, and `epoch(e, { startBatch: b })` yields exactly the
 * remaining batches of an interrupted epoch (exact resume).
 *
 * Sharing: source pixels live in a SharedArrayBuffer (copied there once if a
 * reader did not already put them there); each task carries only the row
 * indices; result buffers are transferred back without copies. Streamed sets
 * (stream.ts) share their packed file paths the same way, and their images
 * are read and cut inside the workers.
 *
 * Worker file: from compiled code (dist/…/pool.js) the sibling worker.js is
 * used; from TypeScript sources (vitest, tsx) the compiled
 * dist/train/data/worker.js is used, which needs `npm run build` first.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Piscina } from 'piscina';
import { Rng } from '../../graph/rng.js';
import { type DataSource, isSubset, normalizationOf, sourceRows, toSharedImages, type Dataset } from './dataset.js';
import { DataError } from './errors.js';
import { findRepoRoot } from './paths.js';
import {
  type Batch,
  type BatchJob,
  buildBatch,
  type PretextTask,
  resolveTask,
  SHUFFLE_STREAM,
  type TaskName,
  type TaskOptions,
} from './pretext.js';
import { buildStreamBatch, type StreamJob } from './stream.js';
import type { WorkerDataError } from './worker.js';

/** Default number of worker threads: cores − 1 (the main thread trains), between 1 and 4. */
export function defaultWorkers(): number {
  return Math.min(4, Math.max(1, availableParallelism() - 1));
}

let staleWarned = false;

function warnIfStale(srcDir: string, distDir: string): void {
  if (staleWarned) return;
  try {
    for (const f of readdirSync(srcDir)) {
      if (!f.endsWith('.ts')) continue;
      const js = join(distDir, f.replace(/\.ts$/, '.js'));
      if (!existsSync(js) || statSync(js).mtimeMs + 1 < statSync(join(srcDir, f)).mtimeMs) {
        staleWarned = true;
        process.emitWarning(
          `${js} is older than ${join(srcDir, f)}: workers run the compiled code; run npm run build`,
          'DataWorkerStale',
        );
        return;
      }
    }
  } catch {
    // best effort only
  }
}

/**
 * Path of the worker script: the sibling worker.js when this module is
 * compiled JavaScript, else <root>/dist/<same dir>/worker.js. Throws a
 * DataError when that file does not exist.
 */
export function resolveWorkerFile(): string {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.js')) {
    const f = join(dirname(here), 'worker.js');
    if (!existsSync(f)) throw new DataError(`the data worker ${f} is missing`);
    return f;
  }
  const root = findRepoRoot();
  const distDir = join(root, 'dist', relative(root, dirname(here)));
  const f = join(distDir, 'worker.js');
  if (!existsSync(f))
    throw new DataError(`the data worker ${f} is missing: run npm run build first (or use workers: 0)`);
  warnIfStale(dirname(here), distDir);
  return f;
}

/** How a loader's batches of a streamed set are cut (null for an in-memory set). */
function streamJobOf(ds: Dataset, task: TaskOptions, resolved: PretextTask, masks: boolean): StreamJob | null {
  if (!ds.stream) {
    if (masks) throw new DataError(`${ds.name} has no label maps`);
    return null;
  }
  if (masks && !ds.stream.masks) throw new DataError(`${ds.name} has no label maps`);
  // SimCLR cuts its own views from the test-transformed image
  const augment = resolved.options.augment && task.name !== 'simclr';
  return { set: ds.stream, augment, flip: task.flip ?? true, masks };
}

/** Options of a worker pool. */
export interface DataPoolOptions {
  /** Worker threads; 0 builds batches in the calling thread. Default: `defaultWorkers()`. */
  workers?: number;
}

/**
 * A pool of threads building batches. With `workers: 0` it builds them in
 * the calling thread (bit-identical results). Can be shared by several
 * loaders (e.g. DARTS's weight and architecture halves); `close()` ends it.
 */
export class DataPool {
  readonly workers: number;
  private piscina: Piscina | null = null;
  private closed = false;
  /** Last worker-level error reported by Piscina (not tied to a task), if any. */
  lastError: unknown = undefined;

  constructor(opts: DataPoolOptions = {}) {
    const w = opts.workers ?? defaultWorkers();
    if (!Number.isInteger(w) || w < 0) throw new DataError(`workers must be a non-negative integer, got ${w}`);
    this.workers = w;
    if (w > 0) {
      this.piscina = new Piscina({
        filename: pathToFileURL(resolveWorkerFile()).href,
        minThreads: w,
        maxThreads: w,
        idleTimeout: 60_000,
      });
      // Piscina emits 'error' for worker-level failures; without a listener that
      // would crash the process. Task failures still reject their own promises.
      this.piscina.on('error', (e: unknown) => {
        this.lastError = e;
      });
    }
  }

  /** True once `close()` has been called. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Builds one batch of an in-memory set in this thread (whatever the pool size); throws once closed. */
  runSync(job: BatchJob): Batch {
    if (this.closed) throw new DataError('the data pool is closed');
    if (job.stream) throw new DataError('a streamed batch is built asynchronously: use run()');
    return buildBatch(job);
  }

  /** Builds one batch (in a worker, or in this thread when workers = 0). */
  async run(job: BatchJob): Promise<Batch> {
    if (this.closed) throw new DataError('the data pool is closed');
    if (!this.piscina) return job.stream ? buildStreamBatch(job) : buildBatch(job);
    const r = (await this.piscina.run(job)) as Batch | WorkerDataError;
    if ('dataError' in r) throw new DataError(r.dataError);
    return r;
  }

  /** Stops the worker threads (pending batches are rejected). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const p = this.piscina;
    this.piscina = null;
    if (p) await p.destroy();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Options of a loader. */
export interface LoaderOptions {
  /** The task (name or options). */
  task: TaskName | TaskOptions;
  /** Source images per batch (x has batchSize·batchMultiplier rows). */
  batchSize: number;
  /** Seed of the shuffling and augmentation streams. */
  seed: number;
  /** Shuffle the rows every epoch (default true). */
  shuffle?: boolean;
  /** Drop the last incomplete batch (default false). */
  dropLast?: boolean;
  /** Worker threads when no pool is given (0 = in-process). Default: `defaultWorkers()`. */
  workers?: number;
  /** A shared pool (the loader then does not close it). */
  pool?: DataPool;
  /** Batches requested ahead of the consumer (default 2 per worker, at least 2). */
  prefetch?: number;
  /** Normalization constants (default: the dataset's, or computed from its pixels). */
  mean?: number[];
  std?: number[];
  /** Streamed sets with label maps: cut them with their images (`batch.masks`; always for task seg). */
  masks?: boolean;
}

/** Where an epoch starts (exact resume). */
export interface EpochOptions {
  /** First batch index to produce (default 0): the batches before it are skipped, not built. */
  startBatch?: number;
}

/**
 * Iterates over a dataset (or a subset of one) in ready-to-feed batches of a
 * task: `for await (const b of loader.epoch(e)) …`. Random access with
 * `loader.batch(e, b)`. Call `close()` when done (ends an owned pool).
 */
export class DataLoader {
  readonly task: PretextTask;
  readonly batchSize: number;
  /** Number of source rows iterated per epoch. */
  readonly size: number;
  readonly batchesPerEpoch: number;
  readonly seed: number;
  readonly pool: DataPool;
  readonly mean: number[];
  readonly std: number[];
  private readonly ownsPool: boolean;
  private readonly dataset: Dataset;
  private readonly rows: Int32Array;
  private readonly images: Uint8Array;
  private readonly shuffle: boolean;
  private readonly prefetch: number;
  private orderCache: { epoch: number; order: Int32Array } | null = null;
  private readonly streamJob: StreamJob | null;
  private readonly unreadableFiles = new Set<string>();

  constructor(source: DataSource, opts: LoaderOptions) {
    const { dataset, indices } = sourceRows(source);
    this.dataset = dataset;
    this.rows = indices;
    if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1)
      throw new DataError(`batchSize must be a positive integer, got ${opts.batchSize}`);
    if (!Number.isFinite(opts.seed)) throw new DataError(`seed must be a number, got ${opts.seed}`);
    this.batchSize = opts.batchSize;
    this.seed = opts.seed >>> 0;
    this.shuffle = opts.shuffle ?? true;
    this.size = indices.length;
    this.batchesPerEpoch = opts.dropLast
      ? Math.floor(this.size / this.batchSize)
      : Math.ceil(this.size / this.batchSize);
    const name = isSubset(source) ? source.name : dataset.name;
    const taskOpts: TaskOptions = typeof opts.task === 'string' ? { name: opts.task } : opts.task;
    // streamed images are flipped and cropped when they are cut, not again by the task
    this.task = resolveTask(dataset.stream ? { ...taskOpts, flip: false, cropPad: 0 } : taskOpts, {
      c: dataset.c,
      h: dataset.h,
      w: dataset.w,
      classes: dataset.classes,
      labelled: dataset.labels !== null,
      name,
    });
    const norm = opts.mean && opts.std ? { mean: opts.mean, std: opts.std } : normalizationOf(source);
    if (norm.mean.length !== dataset.c || norm.std.length !== dataset.c) {
      throw new DataError(
        `normalization needs ${dataset.c} means and stds for ${name}, got ${norm.mean.length} and ${norm.std.length}`,
      );
    }
    this.mean = norm.mean;
    this.std = norm.std;
    // segmentation always cuts the label maps with the images
    this.streamJob = streamJobOf(dataset, taskOpts, this.task, !!opts.masks || taskOpts.name === 'seg');
    // Put the pixels in shared memory once (readers already do), so tasks never copy them.
    if (!(dataset.images.buffer instanceof SharedArrayBuffer)) dataset.images = toSharedImages(dataset.images);
    this.images = dataset.images;
    this.ownsPool = !opts.pool;
    this.pool = opts.pool ?? new DataPool({ workers: opts.workers });
    this.prefetch = Math.max(1, opts.prefetch ?? Math.max(2, 2 * this.pool.workers));
  }

  /** The row order of an epoch (dataset row indices). */
  order(epoch: number): Int32Array {
    if (this.orderCache && this.orderCache.epoch === epoch) return this.orderCache.order;
    let order: Int32Array;
    if (this.shuffle) {
      const perm = Rng.derive(this.seed, SHUFFLE_STREAM, epoch).permutation(this.size);
      order = new Int32Array(this.size);
      for (let i = 0; i < this.size; i++) order[i] = this.rows[perm[i]!]!;
    } else {
      order = this.rows;
    }
    this.orderCache = { epoch, order };
    return order;
  }

  /** The dataset rows of batch `index` of epoch `epoch`. */
  batchRows(epoch: number, index: number): Int32Array {
    if (!Number.isInteger(index) || index < 0 || index >= this.batchesPerEpoch) {
      throw new DataError(`batch index ${index} is outside 0..${this.batchesPerEpoch - 1}`);
    }
    const o = this.order(epoch);
    return o.slice(index * this.batchSize, Math.min(o.length, (index + 1) * this.batchSize));
  }

  /** The job describing batch `index` of epoch `epoch` (what a worker receives). */
  job(epoch: number, index: number): BatchJob {
    const rows = this.batchRows(epoch, index);
    const all = this.dataset.labels;
    let labels: Int32Array | null = null;
    if (all) {
      labels = new Int32Array(rows.length);
      for (let i = 0; i < rows.length; i++) labels[i] = all[rows[i]!]!;
    }
    return {
      images: this.images,
      labels,
      rows,
      task: this.task.options,
      mean: this.mean,
      std: this.std,
      seed: this.seed,
      epoch,
      index,
      ...(this.streamJob ? { stream: this.streamJob } : {}),
    };
  }

  /** Builds batch `index` of epoch `epoch` (random access). */
  async batch(epoch: number, index: number): Promise<Batch> {
    const b = await this.pool.run(this.job(epoch, index));
    for (const f of b.corrupt ?? []) this.unreadableFiles.add(f);
    return b;
  }

  /** Unreadable files skipped so far by the batches of this loader (streamed sets with skipCorrupt). */
  get unreadable(): string[] {
    return [...this.unreadableFiles];
  }

  /**
   * The batches of an epoch in order, from `startBatch` on. With workers, up
   * to `prefetch` batches are in flight ahead of the consumer (leaving the loop
   * early drops them).
   */
  async *epoch(epoch: number, opts: EpochOptions = {}): AsyncGenerator<Batch, void, undefined> {
    const start = opts.startBatch ?? 0;
    if (!Number.isInteger(start) || start < 0 || start > this.batchesPerEpoch) {
      throw new DataError(`startBatch ${start} is outside 0..${this.batchesPerEpoch}`);
    }
    if (this.pool.workers === 0 && !this.streamJob) {
      for (let b = start; b < this.batchesPerEpoch; b++) yield this.pool.runSync(this.job(epoch, b));
      return;
    }
    // No AbortSignal on early exit: aborting a task that is already running
    // makes Piscina terminate and respawn its worker. Batches still in flight
    // when the consumer leaves (at most `prefetch`) are simply dropped.
    const queue: Promise<Batch>[] = [];
    let next = start;
    const fill = (): void => {
      while (next < this.batchesPerEpoch && queue.length < this.prefetch) {
        const p = this.batch(epoch, next++);
        p.catch(() => undefined); // surfaced when awaited; silences rejections of dropped ones
        queue.push(p);
      }
    };
    fill();
    while (queue.length > 0) {
      const b = await queue.shift()!;
      fill();
      yield b;
    }
  }

  /** Ends the loader's own pool (a shared pool is left to its owner). */
  async close(): Promise<void> {
    if (this.ownsPool) await this.pool.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Unreadable images a run skipped (`--skip-corrupt`). */
export interface SkipReport {
  count: number;
  /** One line per skipped file (the first few are what a user sees). */
  files: string[];
}

/**
 * The unreadable images skipped by a run: those dropped when its sets were
 * read (`dataset.warnings` of the decode failures) and those its loaders met
 * while streaming, each file once.
 */
export function skipReport(sets: readonly DataSource[], loaders: readonly DataLoader[]): SkipReport {
  const files = new Set<string>();
  let count = 0;
  const seen = new Set<Dataset>();
  for (const s of sets) {
    const ds = isSubset(s) ? s.dataset : s;
    if (seen.has(ds)) continue;
    seen.add(ds);
    count += ds.skipped ?? 0;
    if (ds.skipped) for (const w of ds.warnings ?? []) files.add(w);
  }
  for (const l of loaders) {
    for (const f of l.unreadable) {
      if (!files.has(f)) count++;
      files.add(f);
    }
  }
  return { count, files: [...files] };
}

/** One line for the end of a run: how many unreadable images were skipped and the first few. */
export function skipSummary(r: SkipReport, first = 3): string {
  if (r.count === 0) return '';
  const more = r.files.length > first ? `, … (${r.files.length - first} more)` : '';
  return `skipped ${r.count} unreadable image(s): ${r.files.slice(0, first).join('; ')}${more}`;
}
