/**
 * Locating the repository root at run time, so that files shipped in the repo
 * (models/…) are found both from the TypeScript sources (vitest, tsx) and from
 * the compiled dist/ tree (one directory level deeper).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE_NAME = 'nas-onnx';
let cachedRoot: string | undefined;

/** Walk up from `from` (default: this module) to the directory whose package.json is nas-onnx's. */
export function findRepoRoot(from: string | URL = import.meta.url): string {
  const useCache = from === import.meta.url;
  if (useCache && cachedRoot !== undefined) return cachedRoot;
  let dir = dirname(typeof from === 'string' && !from.startsWith('file:') ? from : fileURLToPath(from));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown }).name === PACKAGE_NAME) {
          if (useCache) cachedRoot = dir;
          return dir;
        }
      } catch {
        // an unreadable package.json is not ours; keep walking up
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find the ${PACKAGE_NAME} repository root above ${String(from)}`);
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
