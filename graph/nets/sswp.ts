/**
 * SSWP-NAS networks (Li, Gao, Zha, Hu, Xia, Zhang, Metaxas; and its public
 * release): the proxy-free search network of the
 * target size, whose cells are either *gated* (still searched) or *discretized*
 * (pruned), and the final network built from per-cell architectures.
 *
 * ## Design: If-gated ops for single-path sampling
 *
 * An ORT session runs one static graph, so the per-step choice of path is
 * made by inputs. Every edge of a gated cell computes
 *
 *     edge(x) = Σ_k gate[cell, edge, k] · op_k(x)        (k over the 7 candidate ops)
 *
 * with `gates` [cells, 14, 7] fed each step with 0/1 values (one 1 per edge:
 * the active op), and each op_k is a Gated region (graph/ops/gated.ts, an ONNX
 * `If`) that runs only when `run[cell, edge, k]` is true and runs its backward
 * only when its gate is non-zero. The step feeds `run` = the active ops (w
 * step) or the two sampled ops (α step in two-path mode; all ops in full
 * mode). Then:
 *  - the forward value is exactly that of the sampled single-path network;
 *  - the weights of inactive ops get exactly zero gradients, and the in-graph
 *    clipping norm is unchanged; train/search/sswp restores their values and
 *    momentum after the step, so they are untouched, as PyTorch leaves
 *    parameters whose grad is None;
 *  - ∂L/∂gate_k = ⟨∂L/∂edge, op_k(x)⟩ comes from our autodiff for every op
 *    that ran: what the two-path estimator needs for its inactive op, and the
 *    full mode for all;
 *  - compute and memory are those of the sampled path: an op that does not
 *    run costs an If dispatch and a zero tensor; one that runs keeps only its
 *    output (ORT frees a branch's intermediates when it ends) and recomputes
 *    its forward in its backward branch (one extra forward of the active ops).
 *
 * Costs: bench/sswp-cost.ts (table in README.md). `ifGates: false`
 * (LEVERS.ifGates) computes every op and multiplies it by its gate (memory of
 * the whole supernet); the α-gradient graph differentiates only w.r.t.
 * `gates`, so it skips all weight-gradient work in both. Pruned cells are
 * rebuilt discretized (only their kept ops, no gates), so a step gets cheaper
 * as forward progressive pruning proceeds.
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
 * are recomputed for the discretized network at the end (train/search/sswp).
 */
import { Graph, GraphError, type Value } from '../ir.js';
import { add, cast, concat, flatten, gateRegion, globalAvgPool, mul, reshape, split, sum } from '../ops/index.js';
import { EDGES, GenotypeError, PRIMITIVES, STEPS, type OpName } from '../genotype.js';
import { cifarStem, dartsOp, imagenetStem, preprocess, reductionCells, type StemKind } from './darts.js';
import { auxiliaryHead, classifierHead } from './heads.js';
import { LEVERS, Layers } from './layers.js';
import { taskHead, type TaskShape } from './tasks.js';

/** The 7 candidate ops of SSWP-NAS (DARTS's without `none`), in gate/α column order. */
export const SSWP_OPS: readonly OpName[] = PRIMITIVES.filter((p) => p !== 'none');
/** Column count of `gates` and α. */
export const NUM_OPS = SSWP_OPS.length;
/** Ops without weights in normal cells (op dropout treats them as non-parametric). */
export const POOL_OPS: readonly number[] = [SSWP_OPS.indexOf('max_pool_3x3'), SSWP_OPS.indexOf('avg_pool_3x3')];
export const SKIP_OP = SSWP_OPS.indexOf('skip_connect');
export const PARAMETRIC_OPS: readonly number[] = SSWP_OPS.map((_, k) => k).filter(
  (k) => k !== SKIP_OP && !POOL_OPS.includes(k),
);

/** A discretized cell: two (op, input state) pairs per node, as in a genotype (states 0 = s0, 1 = s1, 2.. = nodes). */
export type CellOps = [OpName, number][];

/**
 * A cell pruned by the SSWP-NAS paper's rule (§3.4): every one of the 14 edges
 * keeps one op (edge order), and each node sums all its incoming edges as in
 * the search network.
 */
export type EdgeOps = OpName[];

/**
 * A cell of the SSWP network: null while it is searched (gated), an EdgeOps
 * once pruned by the paper's rule, a CellOps once discretized to its final
 * DARTS form (two inputs per node).
 */
export type CellSpec = CellOps | EdgeOps | null;

/** True for a cell pruned to one op per edge (all 14 edges). */
export function isEdgeOps(c: CellSpec): c is EdgeOps {
  return Array.isArray(c) && typeof c[0] === 'string';
}

/** Edge index of (node, input state). */
export function edgeOf(node: number, input: number): number {
  return (node * (node + 3)) / 2 + input;
}

/** (node, input) of every edge, edge order. */
export const EDGE_ENDS: readonly [number, number][] = Array.from({ length: STEPS }, (_, n) =>
  Array.from({ length: n + 2 }, (_, j): [number, number] => [n, j]),
).flat();

/** Check a discretized cell (8 pairs, inputs in range, two distinct inputs per node, SSWP ops only). */
export function checkCellOps(ops: CellOps, what = 'cell'): void {
  if (!Array.isArray(ops) || ops.length !== 2 * STEPS)
    throw new GenotypeError(`${what}: a cell lists ${2 * STEPS} [op, input] pairs`);
  for (let n = 0; n < STEPS; n++) {
    const a = ops[2 * n]!;
    const b = ops[2 * n + 1]!;
    for (const [op, inp] of [a, b]) {
      if (!SSWP_OPS.includes(op))
        throw new GenotypeError(`${what}: unknown op '${String(op)}' (SSWP ops: ${SSWP_OPS.join(', ')})`);
      if (!Number.isInteger(inp) || inp < 0 || inp > n + 1)
        throw new GenotypeError(`${what}: node ${n} input ${String(inp)} must be in 0..${n + 1}`);
    }
    if (a[1] === b[1])
      throw new GenotypeError(`${what}: node ${n} reads state ${a[1]} twice (two distinct incoming edges per node)`);
  }
}

/** Check a one-op-per-edge cell (14 SSWP ops). */
export function checkEdgeOps(ops: EdgeOps, what = 'cell'): void {
  if (ops.length !== EDGES) throw new GenotypeError(`${what}: a cell pruned per edge lists ${EDGES} ops`);
  for (const op of ops)
    if (!SSWP_OPS.includes(op))
      throw new GenotypeError(`${what}: unknown op '${String(op)}' (SSWP ops: ${SSWP_OPS.join(', ')})`);
}

export interface SswpTrunkOptions {
  /** Initial channels (CIFAR: 36). */
  C: number;
  /** Number of cells (CIFAR: 20); reductions at ⌊L/3⌋ and ⌊2L/3⌋. */
  layers: number;
  stemMultiplier?: number;
  /** 'cifar' (3×3 conv + BN, default) or 'imagenet' (three stride-2 convs; graph/nets/darts.ts imagenetStem). */
  stem?: StemKind;
  /** Per cell: null = gated (searched) cell, else its discretized ops. */
  cells: readonly CellSpec[];
  /**
   * Affine BN in the preprocessing and the parametric ops (default true). The
   * stem's BN is always affine and the pools' never (as in DARTS search).
   */
  affine?: boolean;
  /** Gated ops as If regions that run only when sampled (default LEVERS.ifGates); false: every op runs, times its gate. */
  ifGates?: boolean;
  /** Tap the auxiliary-head input (output of cell ⌊2L/3⌋). */
  auxiliary?: boolean;
  /** Drop path on the ops of discretized cells in training graphs: one [N,1,1,1] mask input per droppable op. */
  dropPath?: boolean;
}

/** The [1,1] elements of a [1, 14, 7] per-cell slice, [edge][op]. */
function perOp(g: Graph, cell: Value): Value[][] {
  const rows = split(g, reshape(g, cell, [EDGES, NUM_OPS]), new Array<number>(EDGES).fill(1), 0);
  return rows.map((r) => split(g, r, new Array<number>(NUM_OPS).fill(1), 1));
}

export interface SswpTrunk {
  features: Value;
  /** The `gates` input [cells, 14, 7], or null when no cell is gated. */
  gates: Value | null;
  /** The `run` input [cells, 14, 7] (bool: the ops to compute), or null without If-gated ops. */
  run: Value | null;
  /** Parameter names of each op of the gated cells: key `${cell}/${edge}/${op}` (op = column index). */
  opParams: Map<string, string[]>;
  reductions: number[];
  /** The auxiliary-head input, when tapped. */
  aux: Value | null;
  /** Names of the drop-path mask inputs. */
  dropPathInputs: string[];
}

export const opKey = (cell: number, edge: number, op: number): string => `${cell}/${edge}/${op}`;

/** The `gates` and `run` inputs and their per-cell [1, 14, 7] slices (empty without gated cells). */
interface GateInputs {
  gates: Value | null;
  run: Value | null;
  perCell: Value[];
  runCell: Value[];
}

function gateInputs(g: Graph, o: SswpTrunkOptions): GateInputs {
  const anyGated = o.cells.some((c) => c === null);
  const gates = anyGated ? g.input('gates', 'float32', [o.layers, EDGES, NUM_OPS]) : null;
  const perCell = gates ? split(g, gates, new Array<number>(o.layers).fill(1), 0) : [];
  const ifGates = anyGated && (o.ifGates ?? LEVERS.ifGates);
  const run = ifGates ? g.input('run', 'bool', [o.layers, EDGES, NUM_OPS]) : null;
  const runCell = run ? split(g, run, new Array<number>(o.layers).fill(1), 0) : [];
  return { gates, run, perCell, runCell };
}

/** What the nodes of one cell are built from. */
interface CellContext {
  L: Layers;
  cell: number;
  c: number;
  reduction: boolean;
  affine: boolean;
  /** The two preprocessed inputs, then each node as it is built. */
  states: Value[];
  /** Drop path on an op's output (training graphs with drop path), else null. */
  dropPath: ((y: Value) => Value) | null;
}

const strideOf = (ctx: CellContext, input: number): number => (ctx.reduction && input < 2 ? 2 : 1);

/** A gated cell: node n = Σ over its edges and the ops of gate · op(state); If-gated ops run only when sampled. */
function gatedNodes(ctx: CellContext, gi: GateInputs, opParams: Map<string, string[]>): void {
  const { L, cell } = ctx;
  const g = L.g;
  const gate = perOp(g, gi.perCell[cell]!);
  // If-gated ops: run when sampled (`run`), backward when active (gate ≠ 0)
  const runC = gi.runCell[cell] ? perOp(g, gi.runCell[cell]!) : null;
  const gradC = runC ? perOp(g, cast(g, gi.perCell[cell]!, 'bool')) : null;
  for (let n = 0; n < STEPS; n++) {
    const terms: Value[] = [];
    for (let j = 0; j < n + 2; j++) {
      const e = edgeOf(n, j);
      const x = ctx.states[j]!;
      L.scope(`edge${e}`, () => {
        if (runC && (L.opts.shareRelu ?? LEVERS.shareRelu)) L.relu(x); // the ReLU the conv ops share stays outside their regions
        SSWP_OPS.forEach((name, k) => {
          opParams.set(opKey(cell, e, k), []);
          const start = g.nodes.length;
          let y = dartsOp(L, name, x, ctx.c, strideOf(ctx, j), ctx.affine, true)!;
          if (runC) y = gateRegion(g, start, y, [runC[e]![k]!, gradC![e]![k]!]);
          terms.push(mul(g, y, gate[e]![k]!));
        });
      });
    }
    ctx.states.push(L.scope(`node${n}`, () => sum(g, terms)));
  }
}

/** The op `name` on edge (node n, input j) of a discretized cell, with drop path unless it is an identity. */
function edgeOp(ctx: CellContext, n: number, j: number, name: OpName): Value {
  const stride = strideOf(ctx, j);
  const y = ctx.L.scope(
    `edge${edgeOf(n, j)}`,
    () => dartsOp(ctx.L, name, ctx.states[j]!, ctx.c, stride, ctx.affine, true)!,
  );
  return ctx.dropPath && !(name === 'skip_connect' && stride === 1) ? ctx.dropPath(y) : y;
}

/** A cell in its final form: node n = op_a(state_a) + op_b(state_b). */
function pairNodes(ctx: CellContext, spec: CellOps): void {
  for (let n = 0; n < STEPS; n++) {
    const terms = [spec[2 * n]!, spec[2 * n + 1]!].map(([name, j]) => edgeOp(ctx, n, j, name));
    ctx.states.push(ctx.L.scope(`node${n}`, () => add(ctx.L.g, terms[0]!, terms[1]!)));
  }
}

/** A cell pruned per edge: node n = Σ_j op_e(n,j)(state_j), all incoming edges. */
function edgeNodes(ctx: CellContext, spec: EdgeOps): void {
  for (let n = 0; n < STEPS; n++) {
    const terms = Array.from({ length: n + 2 }, (_, j) => edgeOp(ctx, n, j, spec[edgeOf(n, j)]!));
    ctx.states.push(ctx.L.scope(`node${n}`, () => sum(ctx.L.g, terms)));
  }
}

/** Record, for each op of the gated cells, its parameter names (scope cells/<i>/edge<e>/<op>/…). */
function collectOpParams(g: Graph, opParams: Map<string, string[]>): void {
  const col = new Map(SSWP_OPS.map((n, k) => [n as string, k]));
  for (const name of g.params.keys()) {
    const m = /^cells\/(\d+)\/edge(\d+)\/([a-z0-9_]+)\//.exec(name);
    const list = m ? opParams.get(opKey(Number(m[1]), Number(m[2]), col.get(m[3]!) ?? -1)) : undefined;
    if (list) list.push(name);
  }
}

/** Per-sample drop path: each call adds a [N,1,1,1] mask input (fed already scaled by 1/keep). */
function dropPathMasks(g: Graph, names: string[]): (y: Value) => Value {
  return (y) => {
    const m = g.input(g.fresh('drop_path_mask'), 'float32', [y.shape[0]!, 1, 1, 1]);
    names.push(m.name);
    return mul(g, y, m);
  };
}

function checkCells(o: SswpTrunkOptions): void {
  if (o.cells.length !== o.layers) throw new GenotypeError(`${o.cells.length} cell specs for ${o.layers} cells`);
  o.cells.forEach((c, i) => {
    if (isEdgeOps(c)) checkEdgeOps(c, `cell ${i}`);
    else if (c) checkCellOps(c, `cell ${i}`);
  });
}

/**
 * The SSWP network trunk: CIFAR stem (3×3 conv + affine BN) or the ImageNet
 * stem, `layers` cells, each gated, pruned per edge or discretized. Channel
 * bookkeeping as in DARTS.
 */
export function sswpTrunk(L: Layers, x: Value, o: SswpTrunkOptions): SswpTrunk {
  const g = L.g;
  checkCells(o);
  const reds = reductionCells(o.layers);
  const affine = o.affine ?? true;
  const imagenet = o.stem === 'imagenet';
  const stems = imagenet ? imagenetStem(L, x, o.C) : cifarStem(L, x, (o.stemMultiplier ?? 3) * o.C);
  const gi = gateInputs(g, o);
  const opParams = new Map<string, string[]>();
  const dropPathInputs: string[] = [];
  const dropPath = o.dropPath && g.training ? dropPathMasks(g, dropPathInputs) : null;
  const auxAt = Math.floor((2 * o.layers) / 3);
  let aux: Value | null = null;
  let [s0, s1] = stems;
  let c = o.C;
  // both ImageNet stems reduce: the first cell's s0 is at twice s1's resolution
  let reductionPrev = imagenet;
  for (let i = 0; i < o.layers; i++) {
    const reduction = reds.includes(i);
    if (reduction) c *= 2;
    const ctx: CellContext = { L, cell: i, c, reduction, affine, states: [], dropPath };
    const spec = o.cells[i]!;
    const out = L.scope(`cells/${i}`, () => {
      ctx.states.push(...preprocess(L, s0, s1, ctx.c, reductionPrev, affine));
      if (spec === null) gatedNodes(ctx, gi, opParams);
      else if (isEdgeOps(spec)) edgeNodes(ctx, spec);
      else pairNodes(ctx, spec);
      return concat(g, ctx.states.slice(2), 1);
    });
    [s0, s1] = [s1, out];
    reductionPrev = reduction;
    if (o.auxiliary && i === auxAt) aux = out;
  }
  collectOpParams(g, opParams);
  return { features: s1, gates: gi.gates, run: gi.run, opParams, reductions: reds, aux, dropPathInputs };
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
  /** Absent: the CIFAR stem. */
  stem?: StemKind;
  input: [number, number, number];
  ops: OpName[];
  cells: { cell: number; reduction: boolean; pruned: boolean; ops: CellOps; concat: number[] }[];
}

export function sswpArch(o: {
  C: number;
  layers: number;
  stemMultiplier?: number;
  stem?: StemKind;
  input: readonly number[];
  cells: readonly CellOps[];
  pruned?: readonly boolean[];
}): SswpArch {
  const reds = reductionCells(o.layers);
  return {
    format: SSWP_ARCH_FORMAT,
    C: o.C,
    layers: o.layers,
    stem_multiplier: o.stemMultiplier ?? 3,
    ...(o.stem === 'imagenet' ? { stem: o.stem } : {}),
    input: [o.input[0]!, o.input[1]!, o.input[2]!],
    ops: [...SSWP_OPS],
    cells: o.cells.map((ops, i) => ({
      cell: i,
      reduction: reds.includes(i),
      pruned: o.pruned ? !!o.pruned[i] : true,
      ops,
      concat: [2, 3, 4, 5],
    })),
  };
}

/** cells.json text: one cell per line. */
export function sswpArchJson(a: SswpArch): string {
  const head = { ...a, cells: undefined };
  const lines = Object.entries(head)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `  ${JSON.stringify(k)}: ${JSON.stringify(v)},`);
  return [
    '{',
    ...lines,
    '  "cells": [',
    a.cells.map((c) => `    ${JSON.stringify(c)}`).join(',\n'),
    '  ]',
    '}',
    '',
  ].join('\n');
}

/** Validate a parsed cells.json (GenotypeError with one line naming the problem). */
export function parseSswpArch(obj: unknown, src = 'cells.json'): SswpArch {
  const o = obj as Partial<SswpArch> | null;
  if (!o || typeof o !== 'object' || o.format !== SSWP_ARCH_FORMAT)
    throw new GenotypeError(`${src}: not an SSWP cells file (format ${SSWP_ARCH_FORMAT})`);
  for (const k of ['C', 'layers', 'stem_multiplier'] as const) {
    if (!Number.isInteger(o[k]) || (o[k] as number) < 1)
      throw new GenotypeError(`${src}: '${k}' must be a positive integer`);
  }
  if (!Array.isArray(o.input) || o.input.length !== 3) throw new GenotypeError(`${src}: 'input' must be [C, H, W]`);
  if (o.stem !== undefined && o.stem !== 'cifar' && o.stem !== 'imagenet')
    throw new GenotypeError(`${src}: 'stem' must be cifar or imagenet`);
  if (JSON.stringify(o.ops) !== JSON.stringify(SSWP_OPS))
    throw new GenotypeError(`${src}: 'ops' must be ${JSON.stringify(SSWP_OPS)}`);
  if (!Array.isArray(o.cells) || o.cells.length !== o.layers)
    throw new GenotypeError(`${src}: 'cells' must list ${o.layers} cells`);
  o.cells.forEach((c, i) => checkCellOps(c.ops, `${src}: cell ${i}`));
  return o as SswpArch;
}

// ---- whole networks: the search network with its task head, the discretized network ----

export interface SswpForward {
  g: Graph;
  trunk: SswpTrunk;
  loss: Value;
  metrics: Record<string, Value>;
  hasLabels: boolean;
  predictions: number;
}

export interface SswpNetShape {
  C: number;
  layers: number;
  /** null = gated cell. */
  cells: readonly CellSpec[];
  /** Affine BN outside the stem and pools (default true; graph/nets/sswp.ts). */
  affine?: boolean;
  /** If-gated ops that run only when sampled (default LEVERS.ifGates; graph/nets/sswp.ts). */
  ifGates?: boolean;
  stem?: StemKind;
}

/** The SSWP network + task head in training form (BN batch statistics, no running statistics), on `rows` rows. */
export function buildSswpForward(
  task: TaskShape,
  o: SswpNetShape & { rows: number; temperature?: number; projectionDim?: number; trackRunningStats?: boolean },
): SswpForward {
  const g = new Graph(`sswp_${task.name}`);
  g.training = true;
  const L = new Layers(g, { trackRunningStats: !!o.trackRunningStats });
  const x = g.input('x', 'float32', [o.rows, ...task.inputShape]);
  const trunk = sswpTrunk(L, x, {
    C: o.C,
    layers: o.layers,
    cells: o.cells,
    affine: o.affine,
    ifGates: o.ifGates,
    stem: o.stem,
  });
  const head = taskHead(L, trunk.features, task, { temperature: o.temperature, projectionDim: o.projectionDim });
  return { g, trunk, loss: head.loss, metrics: head.metrics, hasLabels: !!head.labels, predictions: head.predictions };
}

export interface SswpNetworkOptions {
  C: number;
  layers: number;
  cells: readonly CellOps[];
  batch: number;
  input: readonly number[];
  training: boolean;
  classes?: number;
  /** Without `classes`: build the SimCLR projection head (default true). */
  projection?: boolean;
  projectionDim?: number;
  /** With `classes`: the DARTS auxiliary head on the output of cell ⌊2L/3⌋ (training graphs). */
  auxiliary?: boolean;
  /** Drop path on the cells' ops (training graphs): one [N,1,1,1] mask input per droppable op. */
  dropPath?: boolean;
  stem?: StemKind;
}

export interface SswpNetwork {
  g: Graph;
  x: Value;
  /** Pooled features [N, F]. */
  features: Value;
  logits: Value | null;
  auxLogits: Value | null;
  projection: Value | null;
  dropPathInputs: string[];
}

/**
 * The discretized network for images of `input` [C,H,W]: with `classes` a
 * fresh linear classifier (`classifier/…`, and optionally the auxiliary head),
 * else the SimCLR projection MLP (parameter names as in search). Inference
 * form unless `training`.
 */
export function buildSswpNetwork(o: SswpNetworkOptions): SswpNetwork {
  const g = new Graph('sswp_network');
  g.training = o.training;
  const L = new Layers(g, { trackRunningStats: true });
  const x = g.input('x', 'float32', [o.batch, ...o.input]);
  const trunk = sswpTrunk(L, x, {
    C: o.C,
    layers: o.layers,
    cells: o.cells,
    auxiliary: !!o.classes && !!o.auxiliary && o.training,
    dropPath: o.dropPath,
    stem: o.stem,
  });
  const pooled = flatten(g, globalAvgPool(g, trunk.features), 1);
  let projection: Value | null = null;
  let logits: Value | null = null;
  // DARTS's auxiliary heads: CIFAR's (input 6×6 … 8×8 or larger) and ImageNet's (AvgPool 5 s2: at least 7×7)
  const auxNet = o.stem === 'imagenet' ? 'imagenet' : 'cifar';
  const minSide = auxNet === 'imagenet' ? 7 : 6;
  if (trunk.aux && trunk.aux.shape[2]! < minSide)
    throw new GraphError(
      `the auxiliary head needs a feature map of at least ${minSide}×${minSide} after cell ${Math.floor((2 * o.layers) / 3)}, ` +
        `got ${trunk.aux.shape[2]}×${trunk.aux.shape[3]} from ${o.input[1]}×${o.input[2]} images: use an auxiliary weight of 0`,
    );
  const auxLogits = trunk.aux && o.classes ? auxiliaryHead(L, trunk.aux, o.classes, auxNet) : null;
  if (o.classes) logits = classifierHead(L, trunk.features, o.classes);
  else if (o.projection !== false) {
    const f = pooled.shape[1]!;
    projection = L.scope('projection', () => {
      const h = L.relu(L.scope('0', () => L.linear(pooled, f)));
      return L.scope('2', () => L.linear(h, o.projectionDim ?? 128));
    });
  }
  return { g, x, features: pooled, logits, auxLogits, projection, dropPathInputs: trunk.dropPathInputs };
}
