/**
 * SSWP-NAS networks (shared/spec/sswp.md): the proxy-free search network of the
 * target size, whose cells are either *gated* (still searched) or *discretized*
 * (pruned), and the final network built from per-cell architectures.
 *
 * ## Design: a gated graph for single-path sampling
 *
 * An ORT session runs one static graph, so a per-step choice of path cannot
 * change which ops run. Every edge of a gated cell computes
 *
 *     edge(x) = Σ_k gate[cell, edge, k] · op_k(x)        (k over the 7 candidate ops)
 *
 * with `gates` a graph input of shape [cells, 14, 7] fed each step with 0/1
 * values (one 1 per edge: the active op). Then, with no special-casing:
 *  - the forward value is exactly that of the sampled single-path network;
 *  - the weights of inactive ops get exactly zero gradients (their output is
 *    multiplied by a gate of 0), and the in-graph clipping norm is unchanged;
 *    train/sswp.ts restores their values and momentum after the step, so they
 *    are untouched, as PyTorch leaves parameters whose grad is None;
 *  - ∂L/∂gate_k = ⟨∂L/∂edge, op_k(x)⟩ comes from our autodiff (gates are a
 *    differentiable graph input), for every op: that is what the two-path
 *    estimator needs for its inactive op, and what the full mode needs for all.
 *
 * The price: every op of every gated edge runs, forward and backward (with
 * zero upstream gradients for inactive ops), i.e. the cost of a DARTS supernet
 * step, not of the sampled path. Measured (bench/sswp-cost.ts; C = 8, 5 cells,
 * 16 images = 32 SimCLR views of 32×32, ORT CPU on 2 cores, median of 5
 * steps, relative to a DARTS supernet weight step of the same size):
 *
 *     step                              time        peak RSS of the step
 *     DARTS supernet w step             1.00        1.00   (1.89 s, 2.2 GiB)
 *     gated w step (affine BN)          0.97        1.42
 *     gated w step (plain BN)           0.92        0.99
 *     gated α-gradient step             0.53        0.67   (DARTS α step: 0.59, 0.56)
 *     discretized network w step        0.08        0.26
 *
 * So a search step (α + w) costs what a DARTS first-order step costs, and a
 * fully pruned network a tenth of it; since pruned cells are rebuilt
 * discretized (only their kept ops, no gates), the cost falls as forward
 * progressive pruning proceeds. Memory is that of the whole supernet (all 7
 * ops' activations are kept for the backward pass, where PyTorch keeps those
 * of the sampled path only): scaled to the target size (20 cells, C = 36,
 * 192 views: ~100× the activations) that is a few hundred GiB, beyond CPU
 * hosts and single GPUs alike; plain BN saves ~30% of it, small batches the
 * rest (memory is linear in the batch).
 *
 * Exact alternatives were considered: an
 * ONNX `If` per edge would skip inactive ops but is not differentiable by our
 * autodiff; one graph per sampled path is impossible (7^(14·cells) paths, and a
 * session costs seconds to create). The α-gradient graph differentiates only
 * w.r.t. `gates`, so it skips all weight-gradient work.
 *
 * ## Naming (weights carry over exactly)
 *
 * An op on edge e of cell i lives under `cells/<i>/edge<e>/<op>/…` in both
 * forms, so a discretized cell reads the very parameters the gated cell
 * trained. Edges are numbered node by node, inputs in order (DARTS order):
 * edge(node n, input j) = n(n+3)/2 + j.
 *
 * ## BN affinity
 *
 * The searched weights are the final weights, so by default the search network
 * is built as the final network is: every BN of the stem, the preprocessing and
 * the parametric ops (sep/dil convs, FactorizedReduce) is affine (γ, β searched
 * with the rest), and the pooling ops keep their non-affine BN (as in DARTS
 * search) in the final network too, so that the discretized network computes
 * exactly the function that was trained. `affine: false` searches with
 * non-affine BN outside the stem (cheaper: the γ·x + β tensors are neither
 * computed nor kept for the backward pass); the final network then gets γ = 1,
 * β = 0, which is again exactly the searched function. BN running statistics
 * are not tracked during search (training-form BN uses batch statistics); they
 * are recomputed for the discretized network at the end (train/sswp.ts).
 */
import type { Value } from '../ir.js';
import { add, concat, mul, reshape, split, sum } from '../ops/index.js';
import { EDGES, GenotypeError, PRIMITIVES, STEPS, type OpName } from '../genotype.js';
import { dartsOp, preprocess, reductionCells } from './darts.js';
import type { Layers } from './layers.js';

/** The 7 candidate ops of SSWP-NAS (DARTS's without `none`), in gate/α column order. */
export const SSWP_OPS: readonly OpName[] = PRIMITIVES.filter((p) => p !== 'none');
/** Column count of `gates` and α. */
export const NUM_OPS = SSWP_OPS.length;
/** Ops without weights in normal cells (op dropout treats them as non-parametric). */
export const POOL_OPS: readonly number[] = [SSWP_OPS.indexOf('max_pool_3x3'), SSWP_OPS.indexOf('avg_pool_3x3')];
export const SKIP_OP = SSWP_OPS.indexOf('skip_connect');
export const PARAMETRIC_OPS: readonly number[] = SSWP_OPS.map((_, k) => k).filter((k) => k !== SKIP_OP && !POOL_OPS.includes(k));

/** A discretized cell: two (op, input state) pairs per node, as in a genotype (states 0 = s0, 1 = s1, 2.. = nodes). */
export type CellOps = [OpName, number][];

/** Edge index of (node, input state). */
export function edgeOf(node: number, input: number): number {
  return (node * (node + 3)) / 2 + input;
}

/** (node, input) of every edge, edge order. */
export const EDGE_ENDS: readonly [number, number][] = Array.from({ length: STEPS }, (_, n) => Array.from({ length: n + 2 }, (_, j): [number, number] => [n, j])).flat();

/** Check a discretized cell (8 pairs, inputs in range, two distinct inputs per node, SSWP ops only). */
export function checkCellOps(ops: CellOps, what = 'cell'): void {
  if (!Array.isArray(ops) || ops.length !== 2 * STEPS) throw new GenotypeError(`${what}: a cell lists ${2 * STEPS} [op, input] pairs`);
  for (let n = 0; n < STEPS; n++) {
    const a = ops[2 * n]!;
    const b = ops[2 * n + 1]!;
    for (const [op, inp] of [a, b]) {
      if (!SSWP_OPS.includes(op)) throw new GenotypeError(`${what}: unknown op '${String(op)}' (SSWP ops: ${SSWP_OPS.join(', ')})`);
      if (!Number.isInteger(inp) || inp < 0 || inp > n + 1) throw new GenotypeError(`${what}: node ${n} input ${String(inp)} must be in 0..${n + 1}`);
    }
    if (a[1] === b[1]) throw new GenotypeError(`${what}: node ${n} reads state ${a[1]} twice (two distinct incoming edges per node)`);
  }
}

export interface SswpTrunkOptions {
  /** Initial channels (CIFAR: 36). */
  C: number;
  /** Number of cells (CIFAR: 20); reductions at ⌊L/3⌋ and ⌊2L/3⌋. */
  layers: number;
  stemMultiplier?: number;
  /** Per cell: null = gated (searched) cell, else its discretized ops. */
  cells: readonly (CellOps | null)[];
  /**
   * Affine BN in the preprocessing and the parametric ops (default true). The
   * stem's BN is always affine and the pools' never (as in DARTS search).
   */
  affine?: boolean;
}

export interface SswpTrunk {
  features: Value;
  /** The `gates` input [cells, 14, 7], or null when no cell is gated. */
  gates: Value | null;
  /** Parameter names of each op of the gated cells: key `${cell}/${edge}/${op}` (op = column index). */
  opParams: Map<string, string[]>;
  reductions: number[];
}

export const opKey = (cell: number, edge: number, op: number): string => `${cell}/${edge}/${op}`;

/**
 * The SSWP network trunk: CIFAR stem (3×3 conv + affine BN), `layers` cells,
 * each gated or discretized. Channel bookkeeping as in DARTS.
 */
export function sswpTrunk(L: Layers, x: Value, o: SswpTrunkOptions): SswpTrunk {
  const g = L.g;
  if (o.cells.length !== o.layers) throw new GenotypeError(`${o.cells.length} cell specs for ${o.layers} cells`);
  o.cells.forEach((c, i) => c && checkCellOps(c, `cell ${i}`));
  const reds = reductionCells(o.layers);
  const affine = o.affine ?? true;
  let cCurr = (o.stemMultiplier ?? 3) * o.C;
  const stem = L.scope('stem', () => {
    const y = L.scope('0', () => L.conv(x, cCurr, 3, { pad: 1 }));
    return L.scope('1', () => L.bn(y, true));
  });
  const anyGated = o.cells.some((c) => c === null);
  const gates = anyGated ? g.input('gates', 'float32', [o.layers, EDGES, NUM_OPS]) : null;
  // one [1,1] scalar per (edge, op) of each gated cell
  const perCell = gates ? split(g, gates, new Array<number>(o.layers).fill(1), 0) : [];
  const opParams = new Map<string, string[]>();
  let s0 = stem;
  let s1 = stem;
  cCurr = o.C;
  let reductionPrev = false;
  for (let i = 0; i < o.layers; i++) {
    const reduction = reds.includes(i);
    if (reduction) cCurr *= 2;
    const c = cCurr;
    const spec = o.cells[i]!;
    const out = L.scope(`cells/${i}`, () => {
      const [p0, p1] = preprocess(L, s0, s1, c, reductionPrev, affine);
      const states = [p0, p1];
      if (spec === null) {
        const rows = split(g, reshape(g, perCell[i]!, [EDGES, NUM_OPS]), new Array<number>(EDGES).fill(1), 0);
        const gate = rows.map((r) => split(g, r, new Array<number>(NUM_OPS).fill(1), 1));
        let edge = 0;
        for (let n = 0; n < STEPS; n++) {
          const terms: Value[] = [];
          for (let j = 0; j < n + 2; j++) {
            const stride = reduction && j < 2 ? 2 : 1;
            const e = edge++;
            L.scope(`edge${e}`, () => {
              SSWP_OPS.forEach((name, k) => {
                opParams.set(opKey(i, e, k), []);
                terms.push(mul(g, dartsOp(L, name, states[j]!, c, stride, affine, true)!, gate[e]![k]!));
              });
            });
          }
          states.push(L.scope(`node${n}`, () => sum(g, terms)));
        }
      } else {
        for (let n = 0; n < STEPS; n++) {
          const terms = [spec[2 * n]!, spec[2 * n + 1]!].map(([name, j]) => {
            const stride = reduction && j < 2 ? 2 : 1;
            return L.scope(`edge${edgeOf(n, j)}`, () => dartsOp(L, name, states[j]!, c, stride, affine, true)!);
          });
          states.push(L.scope(`node${n}`, () => add(g, terms[0]!, terms[1]!)));
        }
      }
      return concat(g, states.slice(2), 1);
    });
    [s0, s1] = [s1, out];
    reductionPrev = reduction;
  }
  // parameters of each gated op, by their scope cells/<i>/edge<e>/<op>/…
  const col = new Map(SSWP_OPS.map((n, k) => [n as string, k]));
  for (const name of g.params.keys()) {
    const m = /^cells\/(\d+)\/edge(\d+)\/([a-z0-9_]+)\//.exec(name);
    const list = m ? opParams.get(opKey(Number(m[1]), Number(m[2]), col.get(m[3]!) ?? -1)) : undefined;
    if (list) list.push(name);
  }
  return { features: s1, gates, opParams, reductions: reds };
}

// ---- the per-cell architecture file (cells.json) ---------------------------------

export const SSWP_ARCH_FORMAT = 'nas-onnx/sswp-cells@1';

/**
 * A searched SSWP network, written as `cells.json`:
 *
 *     { "format": "nas-onnx/sswp-cells@1",
 *       "C": 36, "layers": 20, "stem_multiplier": 3, "input": [3, 32, 32],
 *       "ops": ["max_pool_3x3", …7 SSWP ops, the α/gate column order],
 *       "cells": [ { "cell": 0, "reduction": false, "pruned": true,
 *                    "ops": [["sep_conv_3x3", 1], ["skip_connect", 0], … 8 pairs],
 *                    "concat": [2, 3, 4, 5] }, … one entry per cell ] }
 *
 * Each cell's `ops` has the genotype pair format: pairs 2n and 2n+1 feed node n,
 * [op, input state] with states 0 = s0 (cell k−2), 1 = s1 (cell k−1), 2.. = the
 * cell's earlier nodes. `pruned` is false for a cell still searched when the
 * file was written (its ops are then the current α's discretization).
 */
export interface SswpArch {
  format: typeof SSWP_ARCH_FORMAT;
  C: number;
  layers: number;
  stem_multiplier: number;
  input: [number, number, number];
  ops: OpName[];
  cells: { cell: number; reduction: boolean; pruned: boolean; ops: CellOps; concat: number[] }[];
}

export function sswpArch(o: { C: number; layers: number; stemMultiplier?: number; input: readonly number[]; cells: readonly CellOps[]; pruned?: readonly boolean[] }): SswpArch {
  const reds = reductionCells(o.layers);
  return {
    format: SSWP_ARCH_FORMAT,
    C: o.C,
    layers: o.layers,
    stem_multiplier: o.stemMultiplier ?? 3,
    input: [o.input[0]!, o.input[1]!, o.input[2]!],
    ops: [...SSWP_OPS],
    cells: o.cells.map((ops, i) => ({ cell: i, reduction: reds.includes(i), pruned: o.pruned ? !!o.pruned[i] : true, ops, concat: [2, 3, 4, 5] })),
  };
}

/** cells.json text: one cell per line. */
export function sswpArchJson(a: SswpArch): string {
  const head = { ...a, cells: undefined };
  const lines = Object.entries(head)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `  ${JSON.stringify(k)}: ${JSON.stringify(v)},`);
  return ['{', ...lines, '  "cells": [', a.cells.map((c) => `    ${JSON.stringify(c)}`).join(',\n'), '  ]', '}', ''].join('\n');
}

/** Validate a parsed cells.json (GenotypeError with one line naming the problem). */
export function parseSswpArch(obj: unknown, src = 'cells.json'): SswpArch {
  const o = obj as Partial<SswpArch> | null;
  if (!o || typeof o !== 'object' || o.format !== SSWP_ARCH_FORMAT) throw new GenotypeError(`${src}: not an SSWP cells file (format ${SSWP_ARCH_FORMAT})`);
  for (const k of ['C', 'layers', 'stem_multiplier'] as const) {
    if (!Number.isInteger(o[k]) || (o[k] as number) < 1) throw new GenotypeError(`${src}: '${k}' must be a positive integer`);
  }
  if (!Array.isArray(o.input) || o.input.length !== 3) throw new GenotypeError(`${src}: 'input' must be [C, H, W]`);
  if (JSON.stringify(o.ops) !== JSON.stringify(SSWP_OPS)) throw new GenotypeError(`${src}: 'ops' must be ${JSON.stringify(SSWP_OPS)}`);
  if (!Array.isArray(o.cells) || o.cells.length !== o.layers) throw new GenotypeError(`${src}: 'cells' must list ${o.layers} cells`);
  o.cells.forEach((c, i) => checkCellOps(c.ops, `${src}: cell ${i}`));
  return o as SswpArch;
}
