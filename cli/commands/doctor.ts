/**
 * `nas-onnx doctor [--json]`: which execution providers work here, and for
 * each that does not, exactly why. CPU: create a tiny session and run it.
 * CUDA: provider files next to onnxruntime-node's native library, an NVIDIA
 * driver, the CUDA/cuDNN libraries the provider links against, then a real
 * CUDA session (CPU fallback disabled) whose result is compared with CPU's.
 *
 * Exits 0 when the CPU provider works: a missing CUDA is information.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Command } from 'commander';
import { Graph } from '../../graph/ir.js';
import { conv, relu } from '../../graph/ops/index.js';
import { serialize } from '../../graph/onnx.js';
import {
  Session,
  backendsCompiled,
  cudaProviderFilesMissing,
  f32,
  ortNativeDir,
  type EP,
} from '../../train/runtime/session.js';
import { oneLine } from '../errors.js';

export type CheckStatus = 'ok' | 'missing' | 'failed' | 'skipped';

export interface Check {
  /** Stable id for scripts (e.g. `cuda.libraries`). */
  id: string;
  title: string;
  status: CheckStatus;
  detail: string;
}

export interface DoctorReport {
  node: string;
  platform: string;
  onnxruntime: string;
  checks: Check[];
  providers: Record<EP, boolean>;
}

// ---- the tiny probe model ------------------------------------------------------

const PROBE_IN = [1, 3, 8, 8];

/** x[1,3,8,8] → 3×3 conv (pad 1) to 4 channels → ReLU, weights fixed. */
function probeModel(): Uint8Array {
  const g = new Graph('doctor_probe');
  const x = g.input('x', 'float32', PROBE_IN);
  const w = g.param('w', [4, 3, 3, 3], 'weight', { kind: 'ones' });
  g.output(relu(g, conv(g, x, w, { pad: 1 })), 'y');
  const wv = Float32Array.from({ length: 4 * 27 }, (_, i) => ((i % 7) - 3) / 8);
  return serialize(g, { params: 'initializers', values: new Map([['w', wv]]) });
}

function probeInput(): Float32Array {
  return Float32Array.from({ length: PROBE_IN.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i));
}

async function runProbe(model: Uint8Array, ep: EP): Promise<{ y: Float32Array; createMs: number; runMs: number }> {
  const t0 = performance.now();
  const s = await Session.create(model, { ep, disableCpuFallback: ep === 'cuda' });
  const t1 = performance.now();
  try {
    const out = await s.run({ x: f32(probeInput(), PROBE_IN) });
    const y = out.y;
    if (!y) throw new Error('probe model returned no output');
    return { y: Float32Array.from(y.data as Float32Array), createMs: t1 - t0, runMs: performance.now() - t1 };
  } finally {
    await s.release();
  }
}

// ---- shared libraries --------------------------------------------------------------

/** DT_NEEDED entries of an ELF64 little-endian shared object (null if not one). Reads only the headers and tables. */
export function elfNeeded(path: string): string[] | null {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const read = (off: number, len: number): Buffer => {
      const b = Buffer.alloc(len);
      const n = readSync(fd!, b, 0, len, off);
      return b.subarray(0, n);
    };
    const eh = read(0, 64);
    if (eh.length < 64 || eh.readUInt32BE(0) !== 0x7f454c46 || eh[4] !== 2 || eh[5] !== 1) return null;
    const phoff = Number(eh.readBigUInt64LE(0x20));
    const phentsize = eh.readUInt16LE(0x36);
    const phnum = eh.readUInt16LE(0x38);
    const ph = read(phoff, phentsize * phnum);
    const loads: { vaddr: number; off: number; size: number }[] = [];
    let dyn: { off: number; size: number } | null = null;
    for (let i = 0; i < phnum; i++) {
      const b = i * phentsize;
      const type = ph.readUInt32LE(b);
      const off = Number(ph.readBigUInt64LE(b + 8));
      const vaddr = Number(ph.readBigUInt64LE(b + 16));
      const filesz = Number(ph.readBigUInt64LE(b + 32));
      if (type === 1) loads.push({ vaddr, off, size: filesz });
      if (type === 2) dyn = { off, size: filesz };
    }
    if (!dyn) return [];
    const d = read(dyn.off, dyn.size);
    const needed: number[] = [];
    let strtab = -1;
    let strsz = 0;
    for (let o = 0; o + 16 <= d.length; o += 16) {
      const tag = Number(d.readBigInt64LE(o));
      const val = Number(d.readBigUInt64LE(o + 8));
      if (tag === 0) break;
      if (tag === 1) needed.push(val);
      if (tag === 5) strtab = val;
      if (tag === 10) strsz = val;
    }
    const seg = loads.find((l) => strtab >= l.vaddr && strtab < l.vaddr + l.size);
    if (strtab < 0 || !seg) return null;
    const strs = read(strtab - seg.vaddr + seg.off, strsz || 65536);
    return needed.map((n) => {
      const end = strs.indexOf(0, n);
      return strs.toString('utf8', n, end < 0 ? undefined : end);
    });
  } catch {
    return null;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

let ldCache: Map<string, string> | null | undefined;

/** The dynamic linker cache (`ldconfig -p`): soname → path; null when ldconfig cannot be run. */
function ldconfigCache(): Map<string, string> | null {
  if (ldCache !== undefined) return ldCache;
  ldCache = null;
  for (const bin of ['ldconfig', '/sbin/ldconfig', '/usr/sbin/ldconfig']) {
    try {
      const out = execFileSync(bin, ['-p'], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] });
      const m = new Map<string, string>();
      for (const line of out.split('\n')) {
        const r = /^\s*(\S+)\s.*=>\s*(\S+)\s*$/.exec(line);
        if (r && !m.has(r[1]!)) m.set(r[1]!, r[2]!);
      }
      ldCache = m;
      break;
    } catch {
      // try the next location
    }
  }
  return ldCache;
}

function ldLibraryPath(): string[] {
  return (process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean);
}

/** Where the dynamic linker would find `soname` (LD_LIBRARY_PATH, extra dirs, then the ldconfig cache), or null. */
export function findSharedLib(soname: string, extraDirs: readonly string[] = []): string | null {
  for (const dir of [...ldLibraryPath(), ...extraDirs]) {
    const p = join(dir, soname);
    if (existsSync(p)) return p;
  }
  const cache = ldconfigCache();
  if (cache) return cache.get(soname) ?? null;
  for (const dir of [
    '/lib64',
    '/usr/lib64',
    '/lib/x86_64-linux-gnu',
    '/usr/lib/x86_64-linux-gnu',
    '/lib/aarch64-linux-gnu',
    '/usr/lib/aarch64-linux-gnu',
  ]) {
    const p = join(dir, soname);
    if (existsSync(p)) return p;
  }
  return null;
}

/** CUDA 13 / cuDNN 9 libraries the CUDA provider needs when its own dependency list cannot be read. */
export const CUDA_LIBS = ['libcudart.so.13', 'libcublas.so.13', 'libcublasLt.so.13', 'libcudnn.so.9'];

function searchedWhere(): string {
  const ld = ldLibraryPath();
  return `${ld.length ? `LD_LIBRARY_PATH (${ld.join(':')})` : 'LD_LIBRARY_PATH (unset)'} or ${ldconfigCache() ? 'the ldconfig cache' : 'the system library directories'}`;
}

// ---- the checks --------------------------------------------------------------------

function ortVersion(): string {
  try {
    const req = createRequire(import.meta.url);
    return (req('onnxruntime-node/package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function driverCheck(): Check {
  const id = 'cuda.driver';
  const title = 'NVIDIA driver';
  try {
    const v = readFileSync('/proc/driver/nvidia/version', 'utf8').split('\n')[0]!.trim();
    const lib = findSharedLib('libcuda.so.1');
    return {
      id,
      title,
      status: 'ok',
      detail: `${oneLine(v)}${lib ? `; libcuda.so.1 at ${lib}` : '; libcuda.so.1 not found by the dynamic linker'}`,
    };
  } catch {
    // no kernel module info (e.g. a container without /proc/driver/nvidia); the user-space library may still be there
  }
  const lib = findSharedLib('libcuda.so.1');
  if (lib) return { id, title, status: 'ok', detail: `libcuda.so.1 at ${lib} (no /proc/driver/nvidia/version)` };
  return {
    id,
    title,
    status: 'missing',
    detail: `no /proc/driver/nvidia/version and libcuda.so.1 not found on ${searchedWhere()}`,
  };
}

function nvidiaSmiCheck(): Check {
  const id = 'cuda.nvidia_smi';
  const title = 'nvidia-smi';
  try {
    const out = execFileSync('nvidia-smi', ['--query-gpu=name,driver_version,memory.total', '--format=csv,noheader'], {
      encoding: 'utf8',
      timeout: 15_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const gpus = out.trim().split('\n').filter(Boolean);
    return {
      id,
      title,
      status: gpus.length ? 'ok' : 'missing',
      detail: gpus.length ? gpus.map((s) => s.trim()).join('; ') : 'nvidia-smi lists no GPU',
    };
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string | Buffer; stdout?: string | Buffer };
    if (err.code === 'ENOENT') return { id, title, status: 'missing', detail: 'nvidia-smi not found on PATH' };
    const msg = String(err.stderr || err.stdout || err.message || e);
    return { id, title, status: 'failed', detail: `nvidia-smi failed: ${oneLine(msg)}` };
  }
}

function librariesCheck(providerPresent: boolean): Check {
  const id = 'cuda.libraries';
  const title = 'CUDA/cuDNN libraries';
  const native = ortNativeDir();
  const provider = join(native, 'libonnxruntime_providers_cuda.so');
  const needed = providerPresent ? elfNeeded(provider) : null;
  // ORT's provider finds its siblings through its RUNPATH ($ORIGIN)
  const libs = needed ?? CUDA_LIBS;
  const source = needed ? 'needed by libonnxruntime_providers_cuda.so' : 'expected CUDA 13 / cuDNN 9';
  const missing = libs.filter((l) => !findSharedLib(l, [native]));
  // cuDNN 9 loads its sub-libraries at run time; check the main one even when the provider does not list it
  if (!libs.includes('libcudnn.so.9') && !findSharedLib('libcudnn.so.9', [native])) missing.push('libcudnn.so.9');
  if (missing.length) {
    const found = libs.filter((l) => !missing.includes(l) && /cud|cublas|curand|cufft|nvrtc|nvJit/i.test(l));
    const also = found.length ? `; found ${found.map((l) => `${l} (${findSharedLib(l, [native])})`).join(', ')}` : '';
    return {
      id,
      title,
      status: 'missing',
      detail: `${missing.join(', ')} (${source}) not found on ${searchedWhere()}${also}`,
    };
  }
  const shown = libs.filter((l) => /cud|cublas|curand|cufft|nvrtc|nvJit/i.test(l));
  return { id, title, status: 'ok', detail: `found ${(shown.length ? shown : libs).join(', ')}` };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export async function runDoctor(): Promise<DoctorReport> {
  const checks: Check[] = [];
  const model = probeModel();
  const compiled = backendsCompiled();
  checks.push({
    id: 'onnxruntime',
    title: 'onnxruntime-node',
    status: 'ok',
    detail: `${ortVersion()}, native library in ${ortNativeDir()}, backends compiled in: ${compiled.join(', ')}`,
  });

  let cpuY: Float32Array | null = null;
  try {
    const r = await runProbe(model, 'cpu');
    cpuY = r.y;
    checks.push({
      id: 'cpu',
      title: 'CPU provider',
      status: 'ok',
      detail: `tiny Conv session created in ${r.createMs.toFixed(0)} ms, ran in ${r.runMs.toFixed(1)} ms`,
    });
  } catch (e) {
    checks.push({
      id: 'cpu',
      title: 'CPU provider',
      status: 'failed',
      detail: oneLine((e as Error).message ?? String(e)),
    });
  }

  const providerWhy = cudaProviderFilesMissing();
  checks.push({
    id: 'cuda.provider',
    title: 'CUDA provider files',
    status: providerWhy ? 'missing' : 'ok',
    detail: providerWhy ?? `present in ${ortNativeDir()}`,
  });
  checks.push(driverCheck());
  checks.push(nvidiaSmiCheck());
  checks.push(librariesCheck(!providerWhy));

  let cudaOk = false;
  if (providerWhy) {
    checks.push({
      id: 'cuda.session',
      title: 'CUDA session',
      status: 'skipped',
      detail: 'provider files missing (run: nas-onnx setup-cuda)',
    });
  } else {
    try {
      const r = await runProbe(model, 'cuda');
      const diff = cpuY ? maxAbsDiff(r.y, cpuY) : NaN;
      // TF32 convolutions differ from fp32 at ~1e-3 relative
      if (cpuY && !(diff <= 1e-2)) {
        checks.push({
          id: 'cuda.session',
          title: 'CUDA session',
          status: 'failed',
          detail: `ran, but the result differs from CPU's by ${diff.toExponential(2)}`,
        });
      } else {
        cudaOk = true;
        const cmp = cpuY ? `, max |CUDA − CPU| = ${diff.toExponential(1)}` : '';
        checks.push({
          id: 'cuda.session',
          title: 'CUDA session',
          status: 'ok',
          detail: `tiny Conv session (CPU fallback disabled) created in ${r.createMs.toFixed(0)} ms, ran in ${r.runMs.toFixed(1)} ms${cmp}`,
        });
      }
    } catch (e) {
      checks.push({
        id: 'cuda.session',
        title: 'CUDA session',
        status: 'failed',
        detail: oneLine((e as Error).message ?? String(e)),
      });
    }
  }

  return {
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    onnxruntime: ortVersion(),
    checks,
    providers: { cpu: checks.find((c) => c.id === 'cpu')?.status === 'ok', cuda: cudaOk },
  };
}

export function formatDoctor(r: DoctorReport): string {
  const lines = [`nas-onnx doctor — node ${r.node}, ${r.platform}, onnxruntime-node ${r.onnxruntime}`];
  const w = Math.max(...r.checks.map((c) => c.title.length));
  for (const c of r.checks) lines.push(`  ${c.title.padEnd(w)}  ${c.status.padEnd(7)}  ${c.detail}`);
  const firstBad = r.checks.find((c) => c.id.startsWith('cuda.') && c.status !== 'ok' && c.status !== 'skipped');
  lines.push(
    `execution providers: cpu ${r.providers.cpu ? 'usable' : 'NOT usable'}, cuda ${r.providers.cuda ? 'usable' : `not usable${firstBad ? ` (${firstBad.title}: ${firstBad.status})` : ''}`}`,
  );
  return lines.join('\n');
}

export function register(program: Command): void {
  program
    .command('doctor')
    .description('check which execution providers (cpu, cuda) work here, and why not')
    .option('--json', 'print one JSON object (for scripts)', false)
    .action(async (opts: { json: boolean }) => {
      const r = await runDoctor();
      console.log(opts.json ? JSON.stringify(r) : formatDoctor(r));
      if (!r.providers.cpu) process.exitCode = 1;
    });
}
