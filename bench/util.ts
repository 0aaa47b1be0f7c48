/** Shared bench helpers: argument parsing, timing, memory and host↔device byte counts. */
import { readFileSync } from 'node:fs';
import type * as ort from 'onnxruntime-node';

export function args(defaults: Record<string, string | number | boolean>): Record<string, string | number | boolean> {
  const out = { ...defaults };
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i++) {
    const k = a[i]!.replace(/^--/, '');
    if (!(k in out)) throw new Error(`unknown option --${k} (known: ${Object.keys(out).join(', ')})`);
    const d = out[k];
    if (typeof d === 'boolean') out[k] = true;
    else out[k] = typeof d === 'number' ? Number(a[++i]) : String(a[++i]);
  }
  return out;
}

/** Peak resident set size of this process (VmHWM), MiB. */
export function peakRssMiB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

export function tensorBytes(ts: Record<string, ort.Tensor>): number {
  let b = 0;
  for (const t of Object.values(ts)) b += (t.data as { byteLength: number }).byteLength;
  return b;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export const MiB = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;
