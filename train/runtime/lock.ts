/**
 * The lock of a run directory: a file `.nas-onnx.lock` created exclusively,
 * holding the owner's pid, host and command. A second run into the same
 * directory is refused while the owner lives; the lock of a process that is
 * gone (same host) is taken over. Taking over is race-free: the stale file is
 * renamed aside (only one process can), and put back with an exclusive link
 * when it turns out to be another process's fresh lock.
 */
import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { TrainError } from './errors.js';

export const LOCK_FILE = '.nas-onnx.lock';

/** A run directory that another live run holds. */
export class RunLockedError extends TrainError {
  override name = 'RunLockedError';
}

interface LockOwner {
  pid: number;
  host: string;
  command: string;
  started: string;
  token: string;
}

function readOwner(path: string): { raw: string; owner: LockOwner | null } | null {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    return { raw, owner: JSON.parse(raw) as LockOwner };
  } catch {
    return { raw, owner: null }; // a lock being written, or garbage: its writer decides
  }
}

/** True when the process of a lock may still run (another host's: cannot tell, so yes). */
function ownerAlive(o: LockOwner | null): boolean {
  if (!o || o.host !== hostname()) return true;
  if (o.pid === process.pid) return true;
  try {
    process.kill(o.pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function lockedMessage(dir: string, o: LockOwner | null, path: string): string {
  const who = o ? `${o.command} run (pid ${o.pid} on ${o.host}, started ${o.started})` : 'run';
  return `${dir} is in use by another nas-onnx ${who}: wait for it to end or choose another --out (if no such run is going on, remove ${path})`;
}

/** Holds a run directory's lock until released (also released when the process exits). */
export class RunLock {
  private released = false;
  private readonly onExit = (): void => this.release();

  private constructor(
    readonly path: string,
    private readonly raw: string,
  ) {
    process.once('exit', this.onExit);
  }

  /** Takes the lock of `dir` (which must exist) for `command`; throws RunLockedError while another run holds it. */
  static acquire(dir: string, command: string): RunLock {
    const path = join(dir, LOCK_FILE);
    const me: LockOwner = {
      pid: process.pid,
      host: hostname(),
      command,
      started: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      token: randomBytes(8).toString('hex'),
    };
    const raw = `${JSON.stringify(me)}\n`;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        writeFileSync(path, raw, { flag: 'wx' });
        return new RunLock(path, raw);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const cur = readOwner(path);
      if (!cur) continue;
      if (ownerAlive(cur.owner)) throw new RunLockedError(lockedMessage(dir, cur.owner, path));
      takeOverStale(path, cur.raw, dir);
    }
    throw new RunLockedError(lockedMessage(dir, null, path));
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    process.off('exit', this.onExit);
    try {
      if (readFileSync(this.path, 'utf8') === this.raw) unlinkSync(this.path);
    } catch {
      // gone already
    }
  }
}

/** Moves a dead process's lock (content `raw`) out of the way, unless someone replaced it meanwhile. */
function takeOverStale(path: string, raw: string, dir: string): void {
  const aside = `${path}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    renameSync(path, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return; // another process moved it
    throw e;
  }
  const moved = readFileSync(aside, 'utf8');
  if (moved !== raw) {
    // a fresh lock taken meanwhile: give it back (exclusive; if a third one is there, it holds the directory)
    try {
      linkSync(aside, path);
    } catch {
      // the directory has a lock again either way
    }
    unlinkSync(aside);
    const o = readOwner(path)?.owner ?? null;
    throw new RunLockedError(lockedMessage(dir, o, path));
  }
  unlinkSync(aside);
}
