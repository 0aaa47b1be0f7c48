/**
 * Checks that a shipped .onnx takes any batch: its input's axis 0 is symbolic,
 * and running K samples at once gives, per sample, the outputs of running
 * each alone (batch 1) in onnxruntime-node.
 */
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { Rng } from '../../graph/rng.js';

/** The model's first input and its dims (a symbolic one as its name). */
function inputOf(bytes: Uint8Array): { name: string; dims: (number | string)[] } {
  const g = onnxProto.onnx.ModelProto.decode(bytes).graph as onnxProto.onnx.GraphProto;
  const inits = new Set(g.initializer.map((t) => t.name));
  const x = g.input.find((v) => !inits.has(v.name))!;
  const dims = (x.type?.tensorType?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : Number(d.dimValue)));
  return { name: x.name!, dims };
}

/**
 * Run `model` (path or bytes) on `k` random samples as one batch and one by one;
 * every output must agree per sample. Returns the batched outputs' dims.
 */
export async function expectAnyBatch(model: string | Uint8Array, k = 3, seed = 1): Promise<Record<string, number[]>> {
  const bytes = typeof model === 'string' ? readFileSync(model) : model;
  const x = inputOf(bytes);
  expect(x.dims[0]).toBe('N');
  const per = (x.dims.slice(1) as number[]).reduce((a, b) => a * b, 1);
  const rng = new Rng(seed);
  const data = Float32Array.from({ length: k * per }, () => rng.normal());
  const s = await ort.InferenceSession.create(bytes);
  try {
    const shape = (n: number): number[] => [n, ...(x.dims.slice(1) as number[])];
    const all = await s.run({ [x.name]: new ort.Tensor('float32', data, shape(k)) });
    const dims: Record<string, number[]> = {};
    for (const [name, t] of Object.entries(all)) {
      expect(t.dims[0], name).toBe(k);
      dims[name] = [...t.dims];
    }
    for (let i = 0; i < k; i++) {
      const one = await s.run({ [x.name]: new ort.Tensor('float32', data.slice(i * per, (i + 1) * per), shape(1)) });
      for (const [name, t] of Object.entries(one)) {
        const a = t.data as Float32Array;
        const b = (all[name]!.data as Float32Array).subarray(i * a.length, (i + 1) * a.length);
        let worst = 0;
        for (let j = 0; j < a.length; j++) worst = Math.max(worst, Math.abs(a[j]! - b[j]!) / (1 + Math.abs(b[j]!)));
        expect(worst, `${name}, sample ${i}`).toBeLessThan(1e-4);
      }
    }
    return dims;
  } finally {
    await s.release();
  }
}
