/**
 * Piscina worker of the data pool: builds one batch per task with the same
 * pure `buildBatch` as the in-process mode (for a streamed set: reads and
 * cuts its images first), and hands the result back with its buffers
 * transferred (no copy). The source pixels arrive as a view on a
 * SharedArrayBuffer, so they are never copied either.
 */
import { move, transferableSymbol, valueSymbol } from 'piscina';
import sharp from 'sharp';
import { DataError } from './errors.js';
import { type Batch, type BatchJob, buildBatch } from './pretext.js';
import { buildStreamBatch } from './stream.js';

// one libvips thread per image: a worker uses about one core, so the worker count sets the decoding cores
sharp.concurrency(1);

/** Wraps a batch so that Piscina transfers its x and y buffers instead of cloning them. */
class TransferableBatch {
  constructor(private readonly batch: Batch) {}

  get [transferableSymbol](): ArrayBuffer[] {
    const bufs = [this.batch.x.buffer, this.batch.y.buffer] as ArrayBuffer[];
    if (this.batch.labels) bufs.push(this.batch.labels.buffer as ArrayBuffer);
    if (this.batch.masks) bufs.push(this.batch.masks.buffer as ArrayBuffer);
    return bufs;
  }

  get [valueSymbol](): Batch {
    return this.batch;
  }
}

/** A data error raised in a worker: sent back as a value, since an Error loses its class on the way. */
export interface WorkerDataError {
  dataError: string;
}

export default async function buildBatchTask(job: BatchJob): Promise<unknown> {
  try {
    const batch = job.stream ? await buildStreamBatch(job) : buildBatch(job);
    return move(new TransferableBatch(batch) as never);
  } catch (e) {
    if (e instanceof DataError) return { dataError: e.message } satisfies WorkerDataError;
    throw e;
  }
}
