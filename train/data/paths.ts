/**
 * Locating the repository root at run time, so that data files shipped in the
 * repo (models/data/*.json) and the compiled worker (dist/train/data/worker.js)
 * are found both when the TypeScript sources run (vitest, tsx) and when the
 * compiled `dist/` tree runs (one directory level deeper).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DataError } from './errors.js';

const PACKAGE_NAME = 'nas-onnx';
let cachedRoot: string | undefined;

/**
 * Walks up from `from` (a file URL or path; default: this module) to the first
 * directory holding a package.json whose name is nas-onnx.
 */
export function findRepoRoot(from: string | URL = import.meta.url): string {
  const useCache = from === import.meta.url;
  if (useCache && cachedRoot !== undefined) return cachedRoot;
  let dir = dirname(typeof from === 'string' && !from.startsWith('file:') ? from : fileURLToPath(from));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        const name = (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown }).name;
        if (name === PACKAGE_NAME) {
          if (useCache) cachedRoot = dir;
          return dir;
        }
      } catch {
        // an unreadable package.json is not ours; keep walking up
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new DataError(`cannot find the ${PACKAGE_NAME} repository root above ${String(from)}`);
    dir = up;
  }
}

/** Absolute path of a file under the repository root. */
export function repoPath(...parts: string[]): string {
  return join(findRepoRoot(), ...parts);
}

/** Absolute path of a data file shipped under models/data/. */
export function modelDataPath(name: string): string {
  return repoPath('models', 'data', name);
}
