/**
 * The CLI's error contract: a known error (bad input, missing file, a
 * provider that cannot load...) prints exactly one line `nas-onnx: <message>`
 * on stderr and exits 1. Anything else is a bug: one line too, plus the stack
 * when NAS_ONNX_DEBUG=1.
 */
import { CommanderError } from 'commander';
import { GraphError } from '../graph/ir.js';
import { GenotypeError } from '../graph/genotype.js';
import { RuntimeError } from '../train/runtime/session.js';
import { DataError } from '../train/data/errors.js';
import { FsError } from '../train/runtime/fsutil.js';
import { TrainError } from '../train/runtime/errors.js';
import { CheckpointError } from '../train/runtime/checkpoint.js';

export const PROG = 'nas-onnx';

/** A user-facing CLI failure (bad option value, unusable path...). */
export class CliError extends Error {
  override name = 'CliError';

  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/**
 * Error classes whose message is meant for the user as is. Other modules can
 * add theirs (e.g. a CheckpointError) with registerKnownError.
 */
const known: (abstract new (...args: never[]) => Error)[] = [
  CliError,
  GraphError,
  GenotypeError,
  RuntimeError,
  DataError,
  FsError,
  TrainError,
  CheckpointError,
];

export function registerKnownError(cls: abstract new (...args: never[]) => Error): void {
  if (!known.includes(cls)) known.push(cls);
}

export function isKnownError(e: unknown): e is Error {
  return e instanceof Error && known.some((k) => e instanceof k);
}

/** Collapse whitespace runs containing newlines, so a message stays on one line. */
export function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}

export function debugEnabled(): boolean {
  return process.env.NAS_ONNX_DEBUG === '1';
}

/**
 * Report an error thrown by a command and return the exit code. Commander's
 * own errors (usage, --help, --version) were already printed by it.
 */
export function reportError(e: unknown, write: (s: string) => void = (s) => process.stderr.write(s)): number {
  if (e instanceof CommanderError) return e.exitCode;
  if (isKnownError(e)) {
    write(`${PROG}: ${oneLine(e.message)}\n`);
    if (debugEnabled() && e.stack) write(`${e.stack}\n`);
    const code = (e as { exitCode?: unknown }).exitCode;
    return typeof code === 'number' && code > 0 ? code : 1;
  }
  const msg = e instanceof Error ? `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}` : String(e);
  const hint = debugEnabled() ? '' : ' (set NAS_ONNX_DEBUG=1 for the stack)';
  write(`${PROG}: internal error: ${oneLine(msg)}${hint}\n`);
  if (debugEnabled() && e instanceof Error && e.stack) write(`${e.stack}\n`);
  return 1;
}

/** Commander's error text ("error: …", possibly with a "(Did you mean …?)" line) in our one-line form. */
export function formatCommanderError(str: string): string {
  return `${PROG}: ${oneLine(str.replace(/^error:\s*/, ''))}\n`;
}
