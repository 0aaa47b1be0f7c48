/**
 * Bilinear upsampling with align_corners = true (PyTorch's
 * nn.Upsample(mode='bilinear', align_corners=True), which UnNAS's colorization
 * and segmentation heads use) as two constant matrix products, Uh · X · Uwᵀ:
 * standard MatMuls whose gradient is MatMul's own. A 1×1 map is broadcast
 * with one Expand (what the interpolation reduces to).
 */
import { tensorOf, type Graph, type Value } from '../ir.js';
import { expand, matmul } from '../ops/index.js';

/** Bilinear interpolation matrix [out, in] with align_corners = true. */
export function bilinearMatrix(out: number, inp: number): Float32Array {
  const m = new Float32Array(out * inp);
  for (let o = 0; o < out; o++) {
    const src = out === 1 ? 0 : (o * (inp - 1)) / (out - 1);
    const i0 = Math.min(Math.floor(src), inp - 1);
    const f = src - i0;
    m[o * inp + i0] = m[o * inp + i0]! + 1 - f;
    if (f > 0) m[o * inp + i0 + 1] = m[o * inp + i0 + 1]! + f;
  }
  return m;
}

/** Bilinear upsampling of [B, C, h, w] to [B, C, H, W] (align_corners). */
export function upsampleBilinear(g: Graph, x: Value, H: number, W: number): Value {
  const [b, c, h, w] = x.shape as [number, number, number, number];
  if (h === H && w === W) return x;
  if (h === 1 && w === 1) return expand(g, x, [b, c, H, W]);
  const mw = bilinearMatrix(W, w);
  const mwT = new Float32Array(w * W);
  for (let o = 0; o < W; o++) for (let i = 0; i < w; i++) mwT[i * W + o] = mw[o * w + i]!;
  const uwT = g.constant(tensorOf('float32', [w, W], mwT), 'upsample_w');
  const uh = g.constant(tensorOf('float32', [H, h], bilinearMatrix(H, h)), 'upsample_h');
  return matmul(g, uh, matmul(g, x, uwT));
}
