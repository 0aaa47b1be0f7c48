/**
 * `nas-onnx setup-cuda`: opt-in GPU setup. Fetches the npm package
 * com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9 (the ORT 1.29.0 CUDA 13
 * execution provider), and places its two provider libraries next to
 * onnxruntime-node's libonnxruntime.so.1, where ORT looks for them; then runs
 * the doctor's checks. `--from FILE.tgz` installs from a downloaded tarball
 * (hosts without registry access). The CUDA 13 and cuDNN 9 libraries
 * themselves come from the system (or pip's nvidia-* wheels): put their
 * directories on LD_LIBRARY_PATH.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { ortNativeDir } from '../../train/runtime/session.js';
import { CliError } from '../errors.js';
import { formatDoctor, runDoctor } from './doctor.js';

export const CUDA_PROVIDER_PACKAGE = 'com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9';
export const PROVIDER_FILES = ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'];

/** Unpack the provider tarball and copy its two libraries into onnxruntime-node's native dir (each atomically). */
export function installProviderFiles(tgz: string, dest = ortNativeDir()): string[] {
  const work = mkdtempSync(join(tmpdir(), 'nas-onnx-cuda-'));
  try {
    const inner = PROVIDER_FILES.map((f) => `package/Plugins/Linux/x64/${f}`);
    try {
      execFileSync('tar', ['xzf', tgz, '-C', work, ...inner], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      throw new CliError(
        `cannot unpack ${tgz}: ${
          String((e as { stderr?: Buffer }).stderr ?? e)
            .trim()
            .split('\n')[0]
        }`,
      );
    }
    return PROVIDER_FILES.map((f, i) => {
      const src = join(work, inner[i]!);
      const tmp = join(dest, `.${f}.tmp-${process.pid}`);
      copyFileSync(src, tmp);
      renameSync(tmp, join(dest, f));
      return join(dest, f);
    });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function fetchPackage(): string {
  const dir = mkdtempSync(join(tmpdir(), 'nas-onnx-pack-'));
  try {
    execFileSync('npm', ['pack', CUDA_PROVIDER_PACKAGE, '--silent', '--pack-destination', dir], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  } catch (e) {
    throw new CliError(
      `npm pack ${CUDA_PROVIDER_PACKAGE} failed: ${String((e as { stderr?: Buffer }).stderr ?? e)
        .trim()
        .split('\n')
        .pop()}`,
    );
  }
  const tgz = readdirSync(dir).find((f) => f.endsWith('.tgz'));
  if (!tgz) throw new CliError(`npm pack ${CUDA_PROVIDER_PACKAGE} produced no tarball`);
  return join(dir, tgz);
}

export function register(program: Command): void {
  program
    .command('setup-cuda')
    .description(`install the CUDA execution provider (${CUDA_PROVIDER_PACKAGE}) next to onnxruntime-node`)
    .option('--from <tgz>', 'install from this package tarball instead of the npm registry')
    .option('--no-check', 'do not run the doctor afterwards')
    .action(async (o) => {
      if (process.platform !== 'linux' || process.arch !== 'x64')
        throw new CliError(`the CUDA provider package is for linux-x64; this is ${process.platform}-${process.arch}`);
      if (o.from && !existsSync(o.from)) throw new CliError(`no such file: ${o.from}`);
      const tgz = o.from ?? fetchPackage();
      const placed = installProviderFiles(tgz);
      process.stdout.write(`installed:\n${placed.map((p) => `  ${p}`).join('\n')}\n`);
      if (o.check) process.stdout.write(formatDoctor(await runDoctor()));
    });
}
