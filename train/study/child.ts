/**
 * Entry of a trial child process (see child-pool.ts). onnxruntime-node runs a
 * session synchronously on the calling thread, so trials that must run side
 * by side — or next to a BullMQ worker that has to keep renewing its job
 * locks — each run in a process of their own. A child runs the trials its
 * parent sends, one at a time, keeping its loaded datasets between them, and
 * exits when the parent goes away (IPC disconnect), e.g. when the parent was
 * killed.
 *
 * Protocol (IPC messages):
 *   parent → child  { type: 'run', id, trial, config, ctx: { ep, threads, workers } }
 *   child → parent  { type: 'ready' } once, then { type: 'done', id, outcome } | { type: 'error', id, message, everyTry }
 *
 * A child ignores SIGINT: Ctrl-C reaches the whole process group, and the
 * parent decides (it lets running trials finish; a second Ctrl-C ends it,
 * and its children with it).
 */
import { DataPool } from '../data/index.js';
import type { EP } from '../runtime/session.js';
import { DataCache, runTrial, type StudyConfig, type TrialOutcome } from './runner.js';
import type { Trial } from './store.js';
import { failsEveryTry } from './errors.js';

export interface ChildRunMessage {
  type: 'run';
  id: number;
  trial: Trial;
  config: StudyConfig;
  ctx: { ep?: EP; threads?: number; workers?: number };
}

export type ChildReply =
  | { type: 'ready' }
  | { type: 'done'; id: number; outcome: TrialOutcome }
  | { type: 'error'; id: number; message: string; everyTry: boolean };

function send(m: ChildReply): void {
  process.send?.(m);
}

if (!process.send) {
  process.stderr.write('nas-onnx trial child: must be started by its parent (IPC channel missing)\n');
  process.exit(2);
}

const data = new DataCache();
let pool: DataPool | null = null;
let busy = Promise.resolve();

process.on('disconnect', () => process.exit(0));
process.on('SIGINT', () => undefined);
process.on('message', (m: ChildRunMessage) => {
  if (m?.type !== 'run') return;
  busy = busy.then(async () => {
    try {
      pool ??= new DataPool({ workers: m.ctx.workers ?? 0 });
      const outcome = await runTrial(m.trial, m.config, { ep: m.ctx.ep, threads: m.ctx.threads, pool, data });
      send({ type: 'done', id: m.id, outcome });
    } catch (e) {
      send({ type: 'error', id: m.id, message: (e as Error).message ?? String(e), everyTry: failsEveryTry(e) });
    }
  });
});
send({ type: 'ready' });
