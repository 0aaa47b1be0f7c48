/**
 * Checkpoints of a run directory (format: README.md, Artifacts):
 *
 *   <run>/checkpoints/step-<N>/state.json   step, metadata (epoch, RNG state…), tensor index
 *   <run>/checkpoints/step-<N>/tensors.bin  float32 little-endian tensors, concatenated
 *   <run>/checkpoints/LATEST                name of the newest complete checkpoint
 *
 * A checkpoint is written into a temporary directory, fsynced, renamed into
 * place, and only then does LATEST (itself replaced atomically) point to it:
 * killing the process at any moment leaves the previous checkpoint usable.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fsyncDir, writeFileAtomic } from './fsutil.js';

export const CHECKPOINT_FORMAT = 'nas-onnx/checkpoint@1';

export interface Checkpoint {
  step: number;
  /** JSON-serializable metadata: epoch, position in the epoch, RNG states, config, optimizer step counts… */
  meta: Record<string, unknown>;
  tensors: Map<string, Float32Array>;
}

interface TensorEntry {
  name: string;
  offset: number;
  length: number;
}

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

const ckptRoot = (runDir: string): string => join(runDir, 'checkpoints');

/** Write a checkpoint atomically and keep only the newest `keep` (default 2). Returns its directory. */
export function saveCheckpoint(runDir: string, c: Checkpoint, keep = 2): string {
  const root = ckptRoot(runDir);
  mkdirSync(root, { recursive: true });
  const name = `step-${String(c.step).padStart(9, '0')}`;
  const final = join(root, name);
  const tmp = join(root, `.${name}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  const index: TensorEntry[] = [];
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [tname, v] of c.tensors) {
    index.push({ name: tname, offset, length: v.length });
    parts.push(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    offset += v.byteLength;
  }
  writeFileAtomic(join(tmp, 'tensors.bin'), parts);
  writeFileAtomic(
    join(tmp, 'state.json'),
    `${JSON.stringify({ format: CHECKPOINT_FORMAT, step: c.step, meta: c.meta, tensors: index, bytes: offset })}\n`,
  );
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  fsyncDir(root);
  writeFileAtomic(join(root, 'LATEST'), `${name}\n`);
  // prune older complete checkpoints and stale temporaries of dead writers
  const done = readdirSync(root)
    .filter((f) => /^step-\d+$/.test(f))
    .sort();
  for (const old of done.slice(0, Math.max(0, done.length - keep)))
    if (old !== name) rmSync(join(root, old), { recursive: true, force: true });
  for (const f of readdirSync(root)) {
    const deadTemp =
      (f.startsWith('.step-') && f !== `.${name}.tmp-${process.pid}`) ||
      (f.startsWith('.LATEST.') && f.endsWith('.tmp'));
    if (deadTemp) rmSync(join(root, f), { recursive: true, force: true });
  }
  return final;
}

/** Directory of the newest complete checkpoint of a run, or null. */
export function latestCheckpoint(runDir: string): string | null {
  const root = ckptRoot(runDir);
  const latest = join(root, 'LATEST');
  if (!existsSync(latest)) return null;
  const dir = join(root, readFileSync(latest, 'utf8').trim());
  return existsSync(join(dir, 'state.json')) ? dir : null;
}

/** The name of the first tensor holding a NaN or an infinity, or null. */
export function firstNonFinite(tensors: Map<string, Float32Array>): string | null {
  for (const [name, v] of tensors) for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i]!)) return name;
  return null;
}

/** A checkpoint a run can resume from, and a note when it is not the one LATEST names. */
export interface Resumable {
  checkpoint: Checkpoint;
  dir: string;
  /** Set when LATEST is missing or unusable: which checkpoint is used instead, and why. */
  note: string | null;
}

function usable(dir: string): { c: Checkpoint } | { why: string } {
  if (!existsSync(dir)) return { why: 'it is missing' };
  if (!existsSync(join(dir, 'state.json'))) return { why: 'its state.json is missing' };
  try {
    const c = loadCheckpoint(dir);
    const bad = firstNonFinite(c.tensors);
    return bad ? { why: `${bad} holds non-finite values` } : { c };
  } catch (e) {
    const m = (e as Error).message;
    return { why: m.replace(`${dir}/`, '').replace(`${dir}: `, '') };
  }
}

/**
 * The checkpoint to resume a run from: the one LATEST names when it loads
 * and holds finite values, else the newest intact `step-N` (with a note
 * saying so). Null when the run has no checkpoint at all; a CheckpointError
 * listing each one's problem when none is intact.
 */
export function resumableCheckpoint(runDir: string): Resumable | null {
  const root = ckptRoot(runDir);
  const steps = existsSync(root)
    ? readdirSync(root)
        .filter((f) => /^step-\d+$/.test(f))
        .sort()
        .reverse()
    : [];
  const latestFile = join(root, 'LATEST');
  const named = existsSync(latestFile) ? readFileSync(latestFile, 'utf8').trim() : null;
  if (named === null && steps.length === 0) return null;
  const problems: string[] = [];
  let first: string | null = null;
  if (named !== null) {
    const u = usable(join(root, named));
    if ('c' in u) return { checkpoint: u.c, dir: join(root, named), note: null };
    first = `checkpoints/LATEST names ${named}, which is unusable (${u.why})`;
    problems.push(`${named}: ${u.why}`);
  } else first = 'checkpoints/LATEST is missing';
  for (const name of steps) {
    if (name === named) continue;
    const u = usable(join(root, name));
    if ('c' in u)
      return {
        checkpoint: u.c,
        dir: join(root, name),
        note: `${first}: resuming from ${name}, the newest intact checkpoint`,
      };
    problems.push(`${name}: ${u.why}`);
  }
  throw new CheckpointError(`no intact checkpoint in ${root} (${problems.join('; ')})`);
}

/** Load a checkpoint directory (or the latest checkpoint of a run directory). */
export function loadCheckpoint(dir: string): Checkpoint {
  let cdir = dir;
  if (!existsSync(join(dir, 'state.json'))) {
    const l = latestCheckpoint(dir);
    if (!l) throw new CheckpointError(`no checkpoint in ${dir}`);
    cdir = l;
  }
  let state: { format: string; step: number; meta: Record<string, unknown>; tensors: TensorEntry[]; bytes: number };
  try {
    state = JSON.parse(readFileSync(join(cdir, 'state.json'), 'utf8'));
  } catch (e) {
    throw new CheckpointError(`${cdir}/state.json is unreadable (${(e as Error).message})`);
  }
  if (state.format !== CHECKPOINT_FORMAT)
    throw new CheckpointError(`${cdir}: unknown checkpoint format '${state.format}'`);
  let buf: Buffer;
  try {
    buf = readFileSync(join(cdir, 'tensors.bin'));
  } catch (e) {
    throw new CheckpointError(`${cdir}/tensors.bin is unreadable (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  if (buf.byteLength !== state.bytes)
    throw new CheckpointError(`${cdir}/tensors.bin has ${buf.byteLength} bytes, expected ${state.bytes}`);
  const tensors = new Map<string, Float32Array>();
  for (const t of state.tensors) {
    if (t.offset + t.length * 4 > buf.byteLength)
      throw new CheckpointError(`${cdir}/tensors.bin is too short for tensor ${t.name}`);
    // copy into an aligned buffer of its own
    const v = new Float32Array(t.length);
    new Uint8Array(v.buffer).set(buf.subarray(t.offset, t.offset + t.length * 4));
    tensors.set(t.name, v);
  }
  return { step: state.step, meta: state.meta, tensors };
}
