/**
 * A thin wrapper over onnxruntime-node sessions: execution-provider choice
 * (cpu default, cuda), clear errors when a provider cannot load, and tensor
 * helpers. The rest of train/ only talks to ORT through this module.
 */
import * as ort from 'onnxruntime-node';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Graph, type Lowering } from '../../graph/ir.js';
import { serialize } from '../../graph/onnx.js';
import '../../graph/ops/index.js';

export type EP = 'cpu' | 'cuda';
export const EPS: readonly EP[] = ['cpu', 'cuda'];

export class RuntimeError extends Error {
  override name = 'RuntimeError';
}

export interface SessionOptions {
  ep?: EP;
  deviceId?: number;
  /** Intra-op threads on CPU (default: ORT's choice, all cores). */
  threads?: number;
  /** Fail instead of silently running nodes on the CPU when using CUDA. */
  disableCpuFallback?: boolean;
  /** ORT graph optimization level (default 'all'). */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Write an ORT profile (JSON) with this file prefix. */
  profilePrefix?: string;
  /**
   * Keep freed CPU memory in ORT's arena for the next run (default true). With
   * false it is returned after each run, so several large sessions of one
   * process (e.g. a search's step graphs) do not each hold on to their peak.
   */
  cpuMemArena?: boolean;
  /**
   * Let idle intra-op threads spin between kernels (ORT's default, true). Spinning
   * saves a wake-up per parallel kernel on an idle machine; on a machine whose cores
   * are busy with other work it burns CPU time that those threads then lack.
   */
  spinning?: boolean;
  /** ORT's memory-pattern planning (default true). */
  memPattern?: boolean;
}

export function parseEp(s: string): EP {
  if (s === 'cpu' || s === 'cuda') return s;
  throw new RuntimeError(`unknown execution provider '${s}' (use cpu or cuda)`);
}

/** Directory holding onnxruntime-node's native library (where the CUDA provider .so files go). */
export function ortNativeDir(): string {
  const req = createRequire(import.meta.url);
  const pkg = dirname(req.resolve('onnxruntime-node/package.json'));
  return join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
}

/** Why the CUDA EP cannot load here, or null when its provider files are in place. */
export function cudaProviderFilesMissing(): string | null {
  const dir = ortNativeDir();
  const need = ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'];
  const missing = need.filter((f) => !existsSync(join(dir, f)));
  return missing.length ? `missing ${missing.join(', ')} in ${dir} (run: nas-onnx setup-cuda)` : null;
}

export class Session {
  private constructor(
    readonly inner: ort.InferenceSession,
    readonly ep: EP,
  ) {}

  static async create(model: Uint8Array | string, o: SessionOptions = {}): Promise<Session> {
    const ep = o.ep ?? 'cpu';
    if (ep === 'cuda') {
      const why = cudaProviderFilesMissing();
      if (why) throw new RuntimeError(`CUDA execution provider unavailable: ${why}`);
    }
    const opts: ort.InferenceSession.SessionOptions = {
      executionProviders: ep === 'cuda' ? [{ name: 'cuda', deviceId: o.deviceId ?? 0 }] : ['cpu'],
      graphOptimizationLevel: o.optimization ?? 'all',
      // fatal only: errors reach the caller as exceptions (one line), not as ORT's own log lines
      logSeverityLevel: 4,
    };
    if (o.threads) opts.intraOpNumThreads = o.threads;
    if (o.cpuMemArena === false) opts.enableCpuMemArena = false;
    if (o.profilePrefix) {
      opts.enableProfiling = true;
      opts.profileFilePrefix = o.profilePrefix;
    }
    if (o.memPattern === false) opts.enableMemPattern = false;
    const session: Record<string, unknown> = {};
    if (o.disableCpuFallback) session.disable_cpu_ep_fallback = '1';
    if (o.spinning === false) session.intra_op = { allow_spinning: '0' };
    if (Object.keys(session).length) opts.extra = { session };
    try {
      const s =
        typeof model === 'string'
          ? await ort.InferenceSession.create(model, opts)
          : await ort.InferenceSession.create(model, opts);
      return new Session(s, ep);
    } catch (e) {
      const msg = String((e as Error).message ?? e).split('\n')[0];
      if (ep === 'cuda') throw new RuntimeError(`CUDA execution provider failed to start: ${msg}`);
      throw new RuntimeError(`onnxruntime could not load the model: ${msg}`);
    }
  }

  get inputNames(): readonly string[] {
    return this.inner.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.inner.outputNames;
  }

  async run(feeds: Record<string, ort.Tensor>, fetches?: readonly string[]): Promise<Record<string, ort.Tensor>> {
    try {
      return fetches ? await this.inner.run(feeds, fetches as string[]) : await this.inner.run(feeds);
    } catch (e) {
      throw new RuntimeError(`onnxruntime run failed: ${String((e as Error).message ?? e).split('\n')[0]}`);
    }
  }

  endProfiling(): void {
    this.inner.endProfiling();
  }

  async release(): Promise<void> {
    await this.inner.release();
  }
}

// ---- tensor helpers ------------------------------------------------------------

export type Tensor = ort.Tensor;

export function f32(data: Float32Array | number[], shape: readonly number[]): ort.Tensor {
  return new ort.Tensor('float32', data instanceof Float32Array ? data : Float32Array.from(data), shape as number[]);
}

export function i64(data: ArrayLike<number> | BigInt64Array, shape: readonly number[]): ort.Tensor {
  const d = data instanceof BigInt64Array ? data : BigInt64Array.from(Array.from(data, (x) => BigInt(x)));
  return new ort.Tensor('int64', d, shape as number[]);
}

/** An int32 tensor (segmentation labels: half the bytes of int64). */
export function i32(data: Int32Array, shape: readonly number[]): ort.Tensor {
  return new ort.Tensor('int32', data, [...shape]);
}

/** A bool tensor from 0/1 bytes. */
export function bool(data: Uint8Array, shape: readonly number[]): ort.Tensor {
  return new ort.Tensor('bool', data, [...shape]);
}

export function scalarF32(x: number): ort.Tensor {
  return new ort.Tensor('float32', Float32Array.of(x), []);
}

export function toF32(t: ort.Tensor | undefined, what = 'output'): Float32Array {
  if (!t) throw new RuntimeError(`missing ${what}`);
  if (t.type !== 'float32') throw new RuntimeError(`${what} is ${t.type}, expected float32`);
  return t.data as Float32Array;
}

export function scalarOf(t: ort.Tensor | undefined, what = 'output'): number {
  if (!t) throw new RuntimeError(`missing ${what}`);
  return Number((t.data as ArrayLike<number | bigint>)[0]);
}

/** Execution providers onnxruntime-node reports as compiled in. */
export function backendsCompiled(): string[] {
  return ort.listSupportedBackends().map((b) => b.name);
}

// ---- execution-provider-specific lowering ---------------------------------------

let nchwcProbe: Promise<number> | null = null;

/**
 * The block size of this machine's ORT NCHWc CPU kernels (8 with AVX2, 16 with
 * AVX-512), read from the shape a ReorderInput gives 4 channels; 0 where the
 * kernels are missing. Probed once per process.
 */
export function nchwcBlockSize(): Promise<number> {
  nchwcProbe ??= (async () => {
    const g = new Graph('nchwc_probe');
    g.lowering = { nchwcBlock: 4 }; // only for the IR's shape rule: the probe reads the real shape
    const x = g.input('x', 'float32', [1, 4, 1, 1]);
    g.output(g.op('Shape', [g.op('NchwcReorderInput', [x])]), 'shape');
    try {
      const s = await Session.create(serialize(g, { params: 'inputs', valueInfo: false }), { threads: 1 });
      const out = await s.run({ x: f32(new Float32Array(4), [1, 4, 1, 1]) });
      await s.release();
      const b = Number((out.shape!.data as BigInt64Array)[1]);
      return b >= 8 && b % 4 === 0 ? b : 0;
    } catch {
      return 0;
    }
  })();
  return nchwcProbe;
}

/**
 * How to lower training graphs for an execution provider: on the CPU, formulations
 * ORT's CPU kernels run in parallel, and depthwise convolutions and their gradients
 * in ORT's NCHWc layout where this machine has those kernels (`portable` forces the
 * standard-op form everywhere); on CUDA the standard-op form.
 */
export async function loweringFor(ep: EP = 'cpu', portable = false): Promise<Lowering> {
  if (ep !== 'cpu' || portable) return {};
  const b = await nchwcBlockSize();
  return b ? { cpu: true, nchwcBlock: b } : { cpu: true };
}
