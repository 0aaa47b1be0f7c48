/**
 * Piscina worker of the data pool: builds one batch per task with the same
 * pure `buildBatch` as the in-process mode, and hands the result back with its
 * buffers transferred (no copy). The source pixels arrive as a view on a
 * SharedArrayBuffer, so they are never copied either.
 */
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { type Batch, type BatchJob, buildBatch } from './pretext.js';

/** Wraps a batch so that Piscina transfers its x and y buffers instead of cloning them. */
class TransferableBatch {
  constructor(private readonly batch: Batch) {}

  get [transferableSymbol](): ArrayBuffer[] {
    const bufs = [this.batch.x.buffer, this.batch.y.buffer] as ArrayBuffer[];
    if (this.batch.labels) bufs.push(this.batch.labels.buffer as ArrayBuffer);
    return bufs;
  }

  get [valueSymbol](): Batch {
    return this.batch;
  }
}

export default function buildBatchTask(job: BatchJob): unknown {
  return move(new TransferableBatch(buildBatch(job)) as never);
}
