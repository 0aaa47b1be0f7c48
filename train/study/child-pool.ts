/**
 * A pool of trial child processes (train/study/child.ts): `size` processes,
 * each running one trial at a time and kept alive between trials (so a
 * process loads its datasets once). onnxruntime-node runs sessions
 * synchronously, so this is how several trials run side by side, and how a
 * BullMQ worker keeps its event loop free to renew job locks while a trial
 * trains. A child that dies fails its trial and is replaced on the next one.
 *
 * Child script: the sibling child.js when this module is compiled
 * JavaScript, else <root>/dist/train/study/child.js (run `npm run build`).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findRepoRoot } from '../data/index.js';
import type { EP } from '../runtime/session.js';
import type { ChildReply, ChildRunMessage } from './child.js';
import { StudyError, TrialFailure } from './errors.js';
import type { StudyConfig, TrialOutcome } from './runner.js';
import type { Trial } from './store.js';

/** Path of the child script; throws a StudyError when it is missing. */
export function resolveChildFile(): string {
  const here = fileURLToPath(import.meta.url);
  let file: string;
  if (here.endsWith('.js')) {
    file = join(dirname(here), 'child.js');
  } else {
    const root = findRepoRoot();
    file = join(root, 'dist', relative(root, dirname(here)), 'child.js');
  }
  if (!existsSync(file))
    throw new StudyError(`the trial process script ${file} is missing: run npm run build first (or use concurrency 1)`);
  return file;
}

interface Task {
  trial: Trial;
  config: StudyConfig;
  resolve: (o: TrialOutcome) => void;
  reject: (e: Error) => void;
}

interface Slot {
  child: ChildProcess | null;
  ready: Promise<void> | null;
  task: (Task & { id: number }) | null;
}

export interface TrialProcessPoolOptions {
  ep?: EP;
  /** ORT threads per trial. */
  threads?: number;
  /** Batch-building threads per trial process. */
  workers?: number;
}

export class TrialProcessPool {
  private readonly slots: Slot[];
  private readonly queue: Task[] = [];
  private readonly file: string;
  private nextId = 1;
  private closed = false;

  constructor(
    readonly size: number,
    private readonly opts: TrialProcessPoolOptions = {},
  ) {
    if (!Number.isInteger(size) || size < 1)
      throw new StudyError(`a trial process pool needs at least one process, got ${size}`);
    this.file = resolveChildFile();
    this.slots = Array.from({ length: size }, () => ({ child: null, ready: null, task: null }));
  }

  /** Runs a trial in one of the processes. */
  run(trial: Trial, config: StudyConfig): Promise<TrialOutcome> {
    if (this.closed) return Promise.reject(new StudyError('the trial process pool is closed'));
    return new Promise<TrialOutcome>((resolve, reject) => {
      this.queue.push({ trial, config, resolve, reject });
      this.pump();
    });
  }

  private spawn(slot: Slot): void {
    const child = fork(this.file, [], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv: [],
      serialization: 'advanced',
    });
    slot.child = child;
    slot.ready = new Promise<void>((resolve, reject) => {
      const onMessage = (m: ChildReply): void => {
        if (m?.type === 'ready') {
          child.off('message', onMessage);
          resolve();
        }
      };
      child.on('message', onMessage);
      child.once('exit', (code, signal) =>
        reject(new StudyError(`the trial process exited before it was ready (${signal ?? `code ${code}`})`)),
      );
    });
    slot.ready.catch(() => undefined);
    child.on('message', (m: ChildReply) => {
      const t = slot.task;
      if (!t || m.type === 'ready' || m.id !== t.id) return;
      slot.task = null;
      if (m.type === 'done') t.resolve(m.outcome);
      else t.reject(m.everyTry ? new TrialFailure(m.message) : new StudyError(m.message));
      this.pump();
    });
    child.on('exit', (code, signal) => {
      slot.child = null;
      slot.ready = null;
      const t = slot.task;
      slot.task = null;
      if (t) t.reject(new StudyError(`the trial process of ${t.trial.id} exited (${signal ?? `code ${code}`})`));
      if (!this.closed) this.pump();
    });
    child.on('error', () => undefined); // 'exit' follows and reports
  }

  private pump(): void {
    if (this.closed) return;
    for (const slot of this.slots) {
      if (slot.task || this.queue.length === 0) continue;
      const task = this.queue.shift()!;
      const id = this.nextId++;
      slot.task = { ...task, id };
      if (!slot.child) this.spawn(slot);
      const child = slot.child!;
      slot.ready!.then(
        () => {
          const m: ChildRunMessage = {
            type: 'run',
            id,
            trial: task.trial,
            config: task.config,
            ctx: { ep: this.opts.ep, threads: this.opts.threads, workers: this.opts.workers },
          };
          child.send(m);
        },
        (e: Error) => {
          if (slot.task?.id === id) {
            slot.task = null;
            task.reject(e);
          }
        },
      );
    }
  }

  /** Ends the processes (running trials are abandoned). */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.queue.splice(0)) t.reject(new StudyError('the trial process pool was closed'));
    await Promise.all(
      this.slots.map(async (slot) => {
        const child = slot.child;
        if (!child) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        if (child.connected) child.disconnect();
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }),
    );
  }
}
