/**
 * Option helpers shared by the commands: integer parsers with clear errors,
 * the common `--ep`, `--seed`, `--out` options, and output-path handling
 * (checked before any work; written atomically).
 *
 * Usage in a command module:
 *   cmd.addOption(intOption('--C <n>', 'initial channels', 16))
 *      .addOption(epOption())
 *      .addOption(seedOption())
 *      .addOption(outOption('model.onnx'));
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { checkWritableFile, writeFileAtomic, type FileData } from '../train/runtime/fsutil.js';
import { EPS, type EP } from '../train/runtime/session.js';

export { writeFileAtomic };

const INT_RE = /^[+]?\d+$/;

/** Parse a decimal integer ≥ min (commander argParser; throws InvalidArgumentError). */
export function parseIntAtLeast(min: number, what = 'an integer'): (value: string) => number {
  return (value: string) => {
    const s = value.trim();
    const n = INT_RE.test(s) ? Number(s) : NaN;
    if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`expected ${what}, got '${value}'.`);
    if (n < min)
      throw new InvalidArgumentError(
        min === 1 && what === 'a positive integer'
          ? `expected a positive integer, got ${n}.`
          : `expected ${what} ≥ ${min}, got ${n}.`,
      );
    return n;
  };
}

/** Positive integer (1, 2, …). */
export const parsePositiveInt = parseIntAtLeast(1, 'a positive integer');
/** Non-negative integer (0, 1, …). */
export const parseNonNegativeInt = parseIntAtLeast(0, 'a non-negative integer');

/** A seed: an integer in 0 … 2^32−1 (the RNG seeds from 32 bits). */
export function parseSeed(value: string): number {
  const n = parseIntAtLeast(0, 'an integer seed')(value);
  if (n > 0xffffffff) throw new InvalidArgumentError(`expected a seed in 0..4294967295, got ${n}.`);
  return n;
}

/** A positive float (learning rates, scales). */
export function parsePositiveFloat(value: string): number {
  const n = Number(value.trim());
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError(`expected a positive number, got '${value}'.`);
  return n;
}

/** `--flag <n>` taking a positive integer, with an optional default. */
export function intOption(flags: string, description: string, def?: number, min = 1): Option {
  const o = new Option(flags, description).argParser(min === 1 ? parsePositiveInt : parseIntAtLeast(min, `an integer`));
  return def === undefined ? o : o.default(def);
}

/** `--ep <ep>`: execution provider, cpu (default) or cuda. */
export function epOption(def: EP = 'cpu'): Option {
  return new Option('--ep <ep>', 'execution provider').choices([...EPS]).default(def);
}

/** `--threads <n>`: onnxruntime's intra-op threads on the CPU. */
export function threadsOption(): Option {
  return intOption(
    '--threads <n>',
    'onnxruntime threads on the CPU (default: one per core; seeded runs reproduce for a given count)',
  );
}

/** `--no-spin`: onnxruntime's idle threads sleep between kernels instead of spinning. */
export function noSpinOption(): Option {
  return new Option(
    '--no-spin',
    "onnxruntime's idle threads wait without spinning (faster when other work shares the cores)",
  );
}

/** `--seed <n>`: RNG seed (default 0). */
export function seedOption(def = 0): Option {
  return new Option('--seed <n>', 'random seed').argParser(parseSeed).default(def);
}

/** `--out <path>`: output file. */
export function outOption(def?: string, description = 'output file'): Option {
  const o = new Option('--out <path>', description);
  return def === undefined ? o : o.default(def);
}

/**
 * Check an output file path before doing any work: not a directory, parent
 * directory exists and accepts new files. Throws FsError (one line). Returns
 * the absolute path.
 */
export function checkOutPath(path: string, what = 'output'): string {
  return checkWritableFile(path, what);
}

/** Write an output file atomically (temp file in the same directory, fsync, rename). */
export function writeOutput(path: string, data: FileData): void {
  writeFileAtomic(path, data);
}

/** `--size <n>`: the crop size; image folders, Cityscapes roots and image lists are then streamed from disk. */
export function sizeOption(): Option {
  return intOption(
    '--size <n>',
    'crop size N: stream image folders/lists from disk as N×N crops (training: random-sized crops and flips; test: resize and centre crop; default: the images as they are)',
  );
}

/** `--skip-corrupt`: skip unreadable images instead of failing. */
export function skipCorruptOption(): Option {
  return new Option(
    '--skip-corrupt',
    'skip unreadable images (counted, the first few listed at the end) instead of failing',
  );
}

/** `--stem <stem>`: the search network's stem. */
export function stemOption(): Option {
  return new Option(
    '--stem <stem>',
    'network stem: cifar (3×3 conv) or imagenet (three stride-2 convs); default: imagenet for crops of 64 px or more',
  ).choices(['cifar', 'imagenet']);
}

/**
 * The run-directory options of a long-running command (train/runtime/run.ts):
 * `--out <dir>`, `--resume`, `--overwrite`, `--quiet`.
 */
export function runDirOptions(cmd: Command, out: string): Command {
  return cmd
    .option('--out <dir>', 'run directory (one that holds a run needs --resume or --overwrite)', out)
    .option('--resume', 'continue the run in --out from its newest intact checkpoint (only learning rates may change)')
    .option('--overwrite', 'replace the run that --out holds')
    .option('--quiet', 'no progress output');
}
