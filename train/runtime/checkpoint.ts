/**
 * Checkpoints of a run directory (format documented in docs/artifacts.md):
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
  const buf = readFileSync(join(cdir, 'tensors.bin'));
  if (buf.byteLength !== state.bytes)
    throw new CheckpointError(`${cdir}/tensors.bin has ${buf.byteLength} bytes, expected ${state.bytes}`);
  const tensors = new Map<string, Float32Array>();
  for (const t of state.tensors) {
    // copy into an aligned buffer of its own
    const v = new Float32Array(t.length);
    new Uint8Array(v.buffer).set(buf.subarray(t.offset, t.offset + t.length * 4));
    tensors.set(t.name, v);
  }
  return { step: state.step, meta: state.meta, tensors };
}
