/**
 * File-system helpers shared by train/ and the CLI: atomic writes (temp file
 * in the same directory, fsync, rename, fsync of the directory) so that a
 * crash or a full disk never leaves a half-written model or checkpoint under
 * the final name, and up-front checks of output paths with one-line errors.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  existsSync,
  fsyncSync,
  linkSync,
  openSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

/** A file-system failure, with a one-line message naming the path. */
export class FsError extends Error {
  override name = 'FsError';

  constructor(
    message: string,
    readonly code?: string,
    options?: { cause?: unknown },
  ) {
    super(message.replace(/\s*\n\s*/g, ' '), options);
  }
}

function errCode(e: unknown): string | undefined {
  const c = (e as NodeJS.ErrnoException | null)?.code;
  return typeof c === 'string' ? c : undefined;
}

/** A short human reason for a Node file-system error. */
export function fsReason(e: unknown): string {
  const code = errCode(e);
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'read-only file system';
    case 'ENOSPC':
      return 'no space left on device';
    case 'EDQUOT':
      return 'disk quota exceeded';
    case 'ENOENT':
      return 'no such file or directory';
    case 'ENOTDIR':
      return 'a path component is not a directory';
    case 'EISDIR':
      return 'is a directory';
    case 'ENAMETOOLONG':
      return 'file name too long';
    default: {
      const msg = e instanceof Error ? e.message : String(e);
      return msg.replace(/\s*\n\s*/g, ' ');
    }
  }
}

function tempName(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/**
 * fsync a directory so that renames into it are durable. File systems that
 * cannot fsync a directory (EINVAL/ENOTSUP on some network or FUSE mounts)
 * are skipped silently; a missing directory is an FsError.
 */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, constants.O_RDONLY);
    fsyncSync(fd);
  } catch (e) {
    const code = errCode(e);
    if (
      !(
        code === 'EINVAL' ||
        code === 'ENOTSUP' ||
        code === 'EOPNOTSUPP' ||
        code === 'EISDIR' ||
        code === 'EBADF' ||
        code === 'EPERM'
      )
    ) {
      throw new FsError(`cannot sync directory '${dir}': ${fsReason(e)}`, code, { cause: e });
    }
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** What the atomic writers accept: bytes, a list of byte chunks written in order, or UTF-8 text. */
export type FileData = Uint8Array | readonly Uint8Array[] | string;

function chunksOf(data: FileData): readonly Uint8Array[] {
  if (typeof data === 'string') return [new TextEncoder().encode(data)];
  if (data instanceof Uint8Array) return [data];
  return data;
}

/**
 * Write `data` to `path` atomically: a temp file in the same directory is
 * written, fsynced and renamed over `path`, then the directory is fsynced.
 * With `overwrite: false` the temp file is hard-linked to `path` instead, which
 * fails if `path` exists: the existing file is kept and false is returned
 * (file systems without hard links: an existence check, then the rename).
 * On failure the temp file is removed and an FsError is thrown; `path` is
 * then either untouched or (if it existed) still its complete old version.
 * @returns true if `path` now holds `data`.
 */
export function writeFileAtomic(path: string, data: FileData, o: { overwrite?: boolean } = {}): boolean {
  const target = resolve(path);
  const tmp = tempName(target);
  let created = false;
  let written = true;
  try {
    const fd = openSync(tmp, 'wx', 0o644);
    created = true;
    try {
      for (const bytes of chunksOf(data)) {
        let off = 0;
        while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (o.overwrite === false) written = linkNew(tmp, target);
    else {
      renameSync(tmp, target);
      created = false;
    }
  } catch (e) {
    throw new FsError(`cannot write '${path}': ${fsReason(e)}`, errCode(e), { cause: e });
  } finally {
    if (created) removeQuietly(tmp);
  }
  if (written) fsyncDir(dirname(target));
  return written;
}

/** Hard-link `tmp` to `target` unless `target` exists (false then); without hard links, check and rename. */
function linkNew(tmp: string, target: string): boolean {
  try {
    linkSync(tmp, target);
    return true;
  } catch (e) {
    const code = errCode(e);
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EXDEV' && code !== 'ENOSYS') throw e;
    if (existsSync(target)) return false;
    renameSync(tmp, target);
    return true;
  }
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

/** Asynchronous twin of writeFileAtomic (same guarantees; does not block the event loop while writing). */
export async function writeFileAtomicAsync(path: string, data: FileData): Promise<void> {
  const target = resolve(path);
  const tmp = tempName(target);
  let created = false;
  try {
    const fh = await open(tmp, 'wx', 0o644);
    created = true;
    try {
      for (const bytes of chunksOf(data)) {
        let off = 0;
        while (off < bytes.length) off += (await fh.write(bytes, off, bytes.length - off)).bytesWritten;
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, target);
    created = false;
  } catch (e) {
    if (created) await unlink(tmp).catch(() => undefined);
    throw new FsError(`cannot write '${path}': ${fsReason(e)}`, errCode(e), { cause: e });
  }
  fsyncDir(dirname(target));
}

/**
 * Check, before any expensive work, that `path` can be written as a file:
 * it is not a directory, its parent directory exists, and a file can really
 * be created there (a probe file, removed at once: permission bits alone say
 * nothing for root, read-only mounts or /proc). Returns the absolute path.
 */
export function checkWritableFile(path: string, what = 'output'): string {
  if (!path) throw new FsError(`${what} path is empty`);
  const target = resolve(path);
  const st = statOrNull(target);
  if (st?.isDirectory()) throw new FsError(`${what} path '${path}' is a directory (give a file name)`);
  if (st && !st.isFile()) throw new FsError(`${what} path '${path}' exists and is not a regular file`);
  const dir = dirname(target);
  const dst = statOrNull(dir);
  if (!dst) throw new FsError(`cannot write ${what} '${path}': directory '${dir}' does not exist`, 'ENOENT');
  if (!dst.isDirectory()) throw new FsError(`cannot write ${what} '${path}': '${dir}' is not a directory`, 'ENOTDIR');
  const probe = tempName(target);
  try {
    closeSync(openSync(probe, 'wx', 0o644));
  } catch (e) {
    // ENOENT on creating a file in an existing directory: a pseudo file system such as /proc
    const why = errCode(e) === 'ENOENT' ? 'files cannot be created there' : fsReason(e);
    throw new FsError(`cannot write ${what} '${path}': directory '${dir}' is not writable (${why})`, errCode(e), {
      cause: e,
    });
  }
  try {
    unlinkSync(probe);
  } catch {
    // a probe we cannot remove is harmless (hidden, .tmp); nothing else to do
  }
  return target;
}

function statOrNull(p: string): ReturnType<typeof statSync> | null {
  try {
    return statSync(p);
  } catch {
    return null;
  }
}
