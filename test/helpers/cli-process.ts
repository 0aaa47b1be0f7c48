/**
 * The compiled CLI (`node bin/nas-onnx.js …`) in a process of its own, for
 * tests that signal it or run two at once: its output lines as they come,
 * waiting for a line, and its exit code.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = join(ROOT, 'bin', 'nas-onnx.js');

/** Builds dist/ (tsc emits even when files elsewhere have type errors); true when the CLI is there. */
export function buildDist(): boolean {
  try {
    execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
      cwd: ROOT,
      stdio: 'pipe',
    });
  } catch {
    // type errors elsewhere: the caller checks the CLI was emitted
  }
  return existsSync(join(ROOT, 'dist', 'cli', 'main.js'));
}

export interface CliProcess {
  child: ChildProcess;
  /** stdout and stderr lines, in the order they came. */
  lines: string[];
  stdout: () => string;
  stderr: () => string;
  /** The exit code (128 + n for a process killed by signal n). */
  exited: Promise<number>;
  /** The first line matching `re` (already seen, or to come). */
  waitFor(re: RegExp): Promise<string>;
}

const SIGNALS: Record<string, number> = { SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

/** Starts `nas-onnx <args>` in `cwd`; `shell` wraps the command (e.g. `ulimit -v N && exec "$@"`). */
export function startCli(
  args: string[],
  o: { cwd: string; env?: NodeJS.ProcessEnv; shell?: string } = { cwd: ROOT },
): CliProcess {
  const env: NodeJS.ProcessEnv = { ...process.env, ...o.env };
  delete env.NAS_ONNX_DEBUG;
  const argv = [process.execPath, BIN, ...args];
  const child = o.shell
    ? spawn('bash', ['-c', o.shell, 'nas-onnx', ...argv], { cwd: o.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(argv[0]!, argv.slice(1), { cwd: o.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  let out = '';
  let err = '';
  const reader = () => {
    let buf = '';
    return (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        lines.push(line);
        for (const w of waiters.splice(0)) w.re.test(line) ? w.resolve(line) : waiters.push(w);
      }
    };
  };
  const onOut = reader();
  const onErr = reader();
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    onOut(d);
  });
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    onErr(d);
  });
  const exited = new Promise<number>((res) =>
    child.once('close', (code, signal) => res(code ?? 128 + (SIGNALS[signal ?? ''] ?? 0))),
  );
  return {
    child,
    lines,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor(re) {
      const hit = lines.find((l) => re.test(l));
      return hit !== undefined ? Promise.resolve(hit) : new Promise((res) => waiters.push({ re, resolve: res }));
    },
  };
}

/** Runs `nas-onnx <args>` to its end. */
export async function runCli(
  args: string[],
  o: { cwd: string; env?: NodeJS.ProcessEnv; shell?: string },
): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = startCli(args, o);
  const code = await p.exited;
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}
