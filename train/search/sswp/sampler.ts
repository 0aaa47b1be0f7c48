/**
 * SSWP-NAS path sampling and the α-gradient estimator (Li et al., SSWP-NAS, §3; ProxylessNAS-style two-path gradients),
 * host side and pure: everything here is a function of α, an Rng and options,
 * so seeded runs are reproducible and a resumed run draws the same paths
 * (train/sswp.ts derives one Rng per step and purpose with `Rng.derive`).
 *
 * Modes, per edge (α row of the 7 SSWP ops, p = softmax(α)):
 *  - two-path (default): draw two distinct ops from p without replacement
 *    (the second from p renormalized over the remaining ops); the active one
 *    is chosen with probability softmax over the pair's two α values. The
 *    involved ops are [active, inactive].
 *  - full: draw the active op from p; every op is involved.
 * Gates: 1 on the active op, 0 elsewhere.
 *
 * Non-parametric op dropout (weight steps after warm-up only, never α steps):
 * if the drawn ops contain a pooling op, with probability `pool` they are
 * redrawn among the parametric ops only (p restricted and renormalized); then,
 * if they contain skip_connect, with probability `skip` likewise. This follows
 * the reference release; in two-path mode "the drawn ops" is the pair.
 *
 * α gradient from the gate gradients (ProxylessNAS / SSWP):
 *     ∂L/∂α_i = Σ_j ∂L/∂g_j · p_j (δ_ij − p_i),   i, j over the involved ops,
 * with p the softmax over the involved α values (all ops in full mode); other
 * α get 0. In two-path mode the involved α are shifted after the optimizer
 * step so their log-sum-exp is unchanged (`rescaleInvolved`), which keeps the
 * probabilities of the ops not involved as they were (ProxylessNAS).
 */
import type { Rng } from '../../../graph/rng.js';
import { EDGES } from '../../../graph/genotype.js';
import { NUM_OPS, PARAMETRIC_OPS, POOL_OPS, SKIP_OP } from '../../../graph/nets/sswp.js';

export type SamplingMode = 'two-path' | 'full';
export const SAMPLING_MODES: readonly SamplingMode[] = ['two-path', 'full'];

/** Op dropout probabilities (weight steps after warm-up). */
export interface OpDropout {
  /** Probability of redrawing when skip_connect was drawn (SSWP: 0.2). */
  skip: number;
  /** Probability of redrawing when a pooling op was drawn (SSWP: 0). */
  pool: number;
}

export interface EdgeSample {
  active: number;
  /** Ops whose gate gradients enter the α gradient: [active, inactive] (two-path) or all ops (full). */
  involved: number[];
  /** True when op dropout redrew this edge. */
  dropped: boolean;
}

/** Softmax of `n` values of `a` from `off`. */
export function softmaxAt(a: ArrayLike<number>, off: number, n: number): number[] {
  let m = -Infinity;
  for (let k = 0; k < n; k++) m = Math.max(m, a[off + k]!);
  const e = Array.from({ length: n }, (_, k) => Math.exp(a[off + k]! - m));
  const s = e.reduce((x, y) => x + y, 0);
  return e.map((v) => v / s);
}

/** One index drawn from unnormalized non-negative weights. */
export function drawIndex(rng: Rng, w: readonly number[]): number {
  const total = w.reduce((a, b) => a + b, 0);
  if (!(total > 0)) throw new Error('drawIndex: all weights are zero');
  let u = rng.next() * total;
  let last = -1;
  for (let k = 0; k < w.length; k++) {
    if (w[k]! <= 0) continue;
    last = k;
    if (u < w[k]!) return k;
    u -= w[k]!;
  }
  return last; // rounding at the top end
}

/** `k` distinct indices drawn without replacement (sequentially, as torch.multinomial does). */
export function drawWithoutReplacement(rng: Rng, w: readonly number[], k: number): number[] {
  const rest = [...w];
  const out: number[] = [];
  for (let t = 0; t < k; t++) {
    const i = drawIndex(rng, rest);
    out.push(i);
    rest[i] = 0;
  }
  return out;
}

const parametricOnly = (p: readonly number[]): number[] => p.map((v, k) => (PARAMETRIC_OPS.includes(k) ? v : 0));

/**
 * Sample one edge from its α row (`alpha[off .. off+NUM_OPS)`). `dropout` is
 * null for α steps and during warm-up.
 */
export function sampleEdge(
  rng: Rng,
  alpha: ArrayLike<number>,
  off: number,
  mode: SamplingMode,
  dropout: OpDropout | null,
): EdgeSample {
  const p = softmaxAt(alpha, off, NUM_OPS);
  const want = mode === 'two-path' ? 2 : 1;
  let drawn = drawWithoutReplacement(rng, p, want);
  let dropped = false;
  if (dropout) {
    if (dropout.pool > 0 && drawn.some((k) => POOL_OPS.includes(k)) && rng.next() < dropout.pool) {
      drawn = drawWithoutReplacement(rng, parametricOnly(p), want);
      dropped = true;
    }
    if (dropout.skip > 0 && drawn.includes(SKIP_OP) && rng.next() < dropout.skip) {
      drawn = drawWithoutReplacement(rng, parametricOnly(p), want);
      dropped = true;
    }
  }
  if (mode === 'full') return { active: drawn[0]!, involved: Array.from({ length: NUM_OPS }, (_, k) => k), dropped };
  const [a, b] = drawn as [number, number];
  const q = softmaxAt([alpha[off + a]!, alpha[off + b]!], 0, 2);
  const first = rng.next() < q[0]!;
  return { active: first ? a : b, involved: first ? [a, b] : [b, a], dropped };
}

export interface GateSample {
  /** [cells, 14, 7] gates (0 rows for cells that are not gated). */
  gates: Float32Array;
  /** Per cell, its 14 edge samples; null for cells that are not gated. */
  edges: (EdgeSample[] | null)[];
}

/**
 * The ops a step must compute, [cells, 14, 7] (1 = compute; the `run` input of
 * If-gated graphs): 'active' for a weight step (only the active op's output
 * and gradients count), 'involved' for an α step (the gate gradient of every
 * involved op needs that op's output).
 */
export function runMask(sample: GateSample, what: 'active' | 'involved'): Uint8Array {
  const m = new Uint8Array(sample.gates.length);
  sample.edges.forEach((edges, i) =>
    edges?.forEach((s, e) => {
      for (const k of what === 'active' ? [s.active] : s.involved) m[(i * EDGES + e) * NUM_OPS + k] = 1;
    }),
  );
  return m;
}

/** Sample every edge of the gated cells (`alphas[i]`: cell i's [14 × 7] α). */
export function sampleGates(
  rng: Rng,
  alphas: readonly Float32Array[],
  gated: readonly boolean[],
  mode: SamplingMode,
  dropout: OpDropout | null,
): GateSample {
  const cells = alphas.length;
  const gates = new Float32Array(cells * EDGES * NUM_OPS);
  const edges: (EdgeSample[] | null)[] = [];
  for (let i = 0; i < cells; i++) {
    if (!gated[i]) {
      edges.push(null);
      continue;
    }
    const list: EdgeSample[] = [];
    for (let e = 0; e < EDGES; e++) {
      const s = sampleEdge(rng, alphas[i]!, e * NUM_OPS, mode, dropout);
      gates[(i * EDGES + e) * NUM_OPS + s.active] = 1;
      list.push(s);
    }
    edges.push(list);
  }
  return { gates, edges };
}

/**
 * The α gradient of one edge from its gate gradients: ∂L/∂α_i = Σ_j ∂L/∂g_j p_j(δ_ij − p_i)
 * over the involved ops (p = softmax of their α). Adds into `out` (same layout as `alpha`).
 */
export function addAlphaGrad(
  out: Float32Array,
  alpha: ArrayLike<number>,
  gateGrad: ArrayLike<number>,
  off: number,
  involved: readonly number[],
): void {
  const p = softmaxAt(
    involved.map((k) => alpha[off + k]!),
    0,
    involved.length,
  );
  involved.forEach((oi, i) => {
    let s = 0;
    involved.forEach((oj, j) => {
      s += gateGrad[off + oj]! * p[j]! * ((i === j ? 1 : 0) - p[i]!);
    });
    out[off + oi] = out[off + oi]! + s;
  });
}

/** α gradients of every gated cell from the gates gradient [cells, 14, 7]. Null for cells not gated. */
export function alphaGradients(
  alphas: readonly Float32Array[],
  gatesGrad: Float32Array,
  sample: GateSample,
): (Float32Array | null)[] {
  return alphas.map((a, i) => {
    const edges = sample.edges[i];
    if (!edges) return null;
    const out = new Float32Array(a.length);
    const gg = gatesGrad.subarray(i * EDGES * NUM_OPS, (i + 1) * EDGES * NUM_OPS);
    edges.forEach((s, e) => addAlphaGrad(out, a, gg, e * NUM_OPS, s.involved));
    return out;
  });
}

/**
 * Two-path mode, after the α update: shift the involved α of each edge so that
 * Σ exp over them is what it was before the update (`before`: the α row values
 * before the update).
 */
export function rescaleInvolved(
  alpha: Float32Array,
  before: ArrayLike<number>,
  off: number,
  involved: readonly number[],
): void {
  const lse = (get: (k: number) => number): number => {
    const m = Math.max(...involved.map(get));
    return m + Math.log(involved.reduce((s, k) => s + Math.exp(get(k) - m), 0));
  };
  const shift = lse((k) => alpha[off + k]!) - lse((k) => before[off + k]!);
  for (const k of involved) alpha[off + k] = alpha[off + k]! - shift;
}

/** Probability that each op is active in two-path mode (no dropout): Σ_pairs P(pair)·softmax_pair. */
export function twoPathActiveProbs(alpha: ArrayLike<number>, off = 0, n = NUM_OPS): number[] {
  const p = softmaxAt(alpha, off, n);
  const out = new Array<number>(n).fill(0);
  for (let a = 0; a < n; a++) {
    for (let b = 0; b < n; b++) {
      if (a === b) continue;
      const pPair = (p[a]! * p[b]!) / (1 - p[a]!); // a first, then b
      const q = softmaxAt([alpha[off + a]!, alpha[off + b]!], 0, 2);
      out[a] = out[a]! + pPair * q[0]!;
      out[b] = out[b]! + pPair * q[1]!;
    }
  }
  return out;
}
