/**
 * The NAS-Bench-101 cell space (Ying et al., ICML 2019), as used by the UnNAS
 * sample-based study: specs, validity, pruning, the isomorphism-invariant
 * graph hash, a seeded sampler, and the per-vertex channel bookkeeping that
 * the network builder needs.
 *
 * Every function here is a faithful port of google-research/nasbench
 * (`lib/model_spec.py`, `lib/graph_util.py`, `lib/model_builder.py`,
 * `api.py`); hashes are bit-for-bit the dataset's module hashes (the tests
 * check this against the published UnNAS pool, whose ids are positions in
 * the hash-sorted NAS-Bench-101 table).
 *
 * ## Building a cell from a spec (for the network builder)
 *
 * Build from the *pruned* spec (`pruneSpec`) and `computeVertexChannels(cin,
 * cout, pruned.matrix)` (or use `nb101CellPlan`, which does both). With V
 * vertices, vertex 0 = input (cin channels), V-1 = output (cout channels):
 *
 * - Interior vertex t (1..V-2) receives the **sum** of
 *   - for every interior source s < t with matrix[s][t] = 1: tensor s,
 *     truncated to its first `ch[t]` channels when `ch[s] > ch[t]` (the
 *     difference is always 0 or 1; channel counts never increase along an
 *     edge);
 *   - if matrix[0][t] = 1: a *projection* of the cell input, i.e.
 *     1×1 conv (no bias) → BN → ReLU from cin to ch[t] channels.
 *   then applies its op with output width ch[t]:
 *   `conv3x3-bn-relu` / `conv1x1-bn-relu` = k×k conv (stride 1, same padding,
 *   no bias) → BN → ReLU; `maxpool3x3` = 3×3 max-pool, stride 1, same padding
 *   (channel count unchanged, the summed input already has ch[t] channels).
 *   nasbench's BN: momentum 0.997 (TF convention, i.e. 0.003 in PyTorch's),
 *   epsilon 1e-5.
 * - Output: the **concatenation** (on channels, in increasing vertex order) of
 *   the interior vertices with matrix[t][V-1] = 1 — their widths add up to
 *   cout — plus, if matrix[0][V-1] = 1, a projection of the input to cout
 *   channels **added** to it. When no interior vertex feeds the output (only
 *   possible for the 2-vertex spec input→output) the output is that
 *   projection alone.
 *
 * Network (config defaults): stem 3×3 conv-BN-ReLU 3→128, 3 stacks of 3
 * cells, before stacks 1 and 2 a 2×2 max-pool stride 2 ('same' padding) and
 * the cell width doubles (see `nb101NetworkCellChannels`), global average
 * pool, linear classifier.
 */
import { createHash } from 'node:crypto';
import { Rng } from '../rng.js';

/** Label of the first vertex. */
export const NB101_INPUT = 'input';
/** Label of the last vertex. */
export const NB101_OUTPUT = 'output';
/** The operations allowed on interior vertices, in nasbench's canonical order (`config['available_ops']`); hash labels are indices into it. */
export const NB101_OPS = ['conv3x3-bn-relu', 'conv1x1-bn-relu', 'maxpool3x3'] as const;
/** Maximum number of vertices, input and output included (`module_vertices`). */
export const NB101_MAX_VERTICES = 7;
/** Maximum number of edges after pruning (`max_edges`). */
export const NB101_MAX_EDGES = 9;

export type Nb101Op = (typeof NB101_OPS)[number];

/**
 * A NAS-Bench-101 cell: an upper-triangular 0/1 adjacency matrix
 * (matrix[src][dst] = 1 for an edge src → dst) and one label per vertex
 * ('input', interior ops from NB101_OPS, 'output').
 */
export interface Nb101Spec {
  matrix: number[][];
  ops: string[];
}

/** A sampled spec (pruned) with its NAS-Bench-101 hash. */
export interface Nb101HashedSpec extends Nb101Spec {
  hash: string;
}

/** Outcome of `checkSpec`. `pruned` is set whenever pruning succeeded (even if a later rule failed). */
export interface Nb101Check {
  valid: boolean;
  reason?: string;
  pruned?: Nb101Spec;
}

function md5(s: string): string {
  return createHash('md5').update(s, 'utf8').digest('hex');
}

function cloneSpec(spec: Nb101Spec): Nb101Spec {
  return { matrix: spec.matrix.map((r) => r.slice()), ops: spec.ops.slice() };
}

/** Throws unless `matrix` is square, 0/1 valued, and of the size of `ops` (ModelSpec's constructor checks). */
function checkShape(spec: Nb101Spec): void {
  const n = spec.matrix.length;
  if (n === 0) throw new Error('NB101 spec: empty matrix');
  for (const row of spec.matrix) {
    if (!Array.isArray(row) || row.length !== n) throw new Error('NB101 spec: matrix must be square');
    for (const x of row) if (x !== 0 && x !== 1) throw new Error('NB101 spec: matrix entries must be 0 or 1');
  }
  if (spec.ops.length !== n) throw new Error('NB101 spec: length of ops must match matrix dimensions');
}

/** True if the matrix is 0 on and below the diagonal (model_spec.is_upper_triangular). */
export function isUpperTriangular(matrix: number[][]): boolean {
  for (let src = 0; src < matrix.length; src++) {
    for (let dst = 0; dst <= src; dst++) if (matrix[src]![dst] !== 0) return false;
  }
  return true;
}

/** Number of edges (sum of the matrix). */
export function numEdges(matrix: number[][]): number {
  let e = 0;
  for (const row of matrix) for (const x of row) e += x;
  return e;
}

/**
 * graph_util.is_full_dag: every vertex lies on an input → output path, i.e.
 * no all-zero row except the last and no all-zero column except the first.
 */
export function isFullDag(matrix: number[][]): boolean {
  const n = matrix.length;
  for (let r = 0; r < n - 1; r++) if (matrix[r]!.every((x) => x === 0)) return false;
  for (let c = 1; c < n; c++) if (matrix.every((row) => row[c] === 0)) return false;
  return true;
}

/**
 * Port of ModelSpec._prune: removes every vertex that is not both reachable
 * from the input and able to reach the output, keeping the remaining vertices
 * in their original order. Returns null when the input is not connected to the
 * output (the spec is then invalid). The input is not modified.
 * @throws on a malformed spec (non-square, not 0/1, wrong ops length, not upper triangular).
 */
export function pruneSpec(spec: Nb101Spec): Nb101Spec | null {
  checkShape(spec);
  if (!isUpperTriangular(spec.matrix)) throw new Error('NB101 spec: matrix must be upper triangular');
  const m = spec.matrix;
  const n = m.length;

  const fromInput = new Set<number>([0]);
  const stack = [0];
  while (stack.length) {
    const top = stack.pop()!;
    for (let v = top + 1; v < n; v++) {
      if (m[top]![v] && !fromInput.has(v)) {
        fromInput.add(v);
        stack.push(v);
      }
    }
  }
  const toOutput = new Set<number>([n - 1]);
  stack.push(n - 1);
  while (stack.length) {
    const top = stack.pop()!;
    for (let v = 0; v < top; v++) {
      if (m[v]![top] && !toOutput.has(v)) {
        toOutput.add(v);
        stack.push(v);
      }
    }
  }

  const keep: number[] = [];
  for (let v = 0; v < n; v++) if (fromInput.has(v) && toOutput.has(v)) keep.push(v);
  // nasbench: "if len(extraneous) > num_vertices - 2" — fewer than two kept
  // vertices means input and output are not connected.
  if (keep.length < 2) return null;
  return {
    matrix: keep.map((r) => keep.map((c) => m[r]![c]!)),
    ops: keep.map((v) => spec.ops[v]!),
  };
}

/**
 * Full validity check, as nasbench's `api._check_spec` on a ModelSpec: the
 * matrix must be square, 0/1 and upper triangular; after pruning, the input
 * must reach the output, there are at most 7 vertices and 9 edges, the first
 * op is 'input', the last 'output' and the others are in NB101_OPS.
 * (Like nasbench, the vertex/edge limits apply to the pruned spec.)
 */
export function checkSpec(spec: Nb101Spec): Nb101Check {
  let pruned: Nb101Spec | null;
  try {
    pruned = pruneSpec(spec);
  } catch (e) {
    return { valid: false, reason: (e as Error).message };
  }
  if (pruned === null) return { valid: false, reason: 'input is not connected to output' };
  const nv = pruned.ops.length;
  const ne = numEdges(pruned.matrix);
  if (nv > NB101_MAX_VERTICES)
    return { valid: false, reason: `too many vertices: ${nv} > ${NB101_MAX_VERTICES}`, pruned };
  if (ne > NB101_MAX_EDGES) return { valid: false, reason: `too many edges: ${ne} > ${NB101_MAX_EDGES}`, pruned };
  if (pruned.ops[0] !== NB101_INPUT) return { valid: false, reason: "first op must be 'input'", pruned };
  if (pruned.ops[nv - 1] !== NB101_OUTPUT) return { valid: false, reason: "last op must be 'output'", pruned };
  for (const op of pruned.ops.slice(1, -1)) {
    if (!(NB101_OPS as readonly string[]).includes(op)) return { valid: false, reason: `unsupported op ${op}`, pruned };
  }
  return { valid: true, pruned };
}

/** True if `checkSpec(spec).valid`. */
export function isValidSpec(spec: Nb101Spec): boolean {
  return checkSpec(spec).valid;
}

/**
 * Port of graph_util.hash_module: Weisfeiler-Lehman-style iterated MD5
 * hashing. Initial vertex hash = md5 of Python's repr of the tuple
 * (out-degree, in-degree, label), e.g. "(2, 0, -1)"; then `V` rounds of
 * md5(sorted in-neighbour hashes joined + '|' + sorted out-neighbour hashes
 * joined + '|' + own hash); the fingerprint is md5 of Python's repr of the
 * sorted list of vertex hashes ("['…', '…']"). Works for any directed graph.
 * @param labeling integer labels, one per vertex (nasbench: -1 input, -2 output, op index otherwise).
 */
export function hashModule(matrix: number[][], labeling: number[]): string {
  const n = matrix.length;
  if (labeling.length !== n) throw new Error('hashModule: labeling length must match matrix');
  const inDeg = new Array<number>(n).fill(0);
  const outDeg = new Array<number>(n).fill(0);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const x = matrix[i]![j]!;
      outDeg[i]! += x;
      inDeg[j]! += x;
    }
  }
  let hashes = labeling.map((l, v) => md5(`(${outDeg[v]}, ${inDeg[v]}, ${l})`));
  for (let it = 0; it < n; it++) {
    const next: string[] = [];
    for (let v = 0; v < n; v++) {
      const ins: string[] = [];
      const outs: string[] = [];
      for (let w = 0; w < n; w++) {
        if (matrix[w]![v]) ins.push(hashes[w]!);
        if (matrix[v]![w]) outs.push(hashes[w]!);
      }
      ins.sort();
      outs.sort();
      next.push(md5(`${ins.join('')}|${outs.join('')}|${hashes[v]!}`));
    }
    hashes = next;
  }
  const sorted = hashes.slice().sort();
  return md5(`[${sorted.map((h) => `'${h}'`).join(', ')}]`);
}

/**
 * The NAS-Bench-101 hash of a spec (ModelSpec.hash_spec with the canonical op
 * order): prunes first, so specs that differ only by dead vertices or by a
 * vertex permutation get the same hash. This is the key of the NAS-Bench-101
 * dataset.
 * @throws if the spec is invalid.
 */
export function nb101Hash(spec: Nb101Spec): string {
  const c = checkSpec(spec);
  if (!c.valid) throw new Error(`nb101Hash: invalid spec (${c.reason})`);
  const p = c.pruned!;
  const labeling = p.ops.map((op, i) =>
    i === 0 ? -1 : i === p.ops.length - 1 ? -2 : (NB101_OPS as readonly string[]).indexOf(op),
  );
  return hashModule(p.matrix, labeling);
}

/** Architecture id for trial stores: `nb101-` + the NAS-Bench-101 hash. @throws if the spec is invalid. */
export function nb101ArchId(spec: Nb101Spec): string {
  return `nb101-${nb101Hash(spec)}`;
}

/**
 * Relabels a graph: vertex v of the input becomes vertex perm[v] of the result
 * (graph_util.permute_graph). Permutations that keep 0 and V-1 fixed and
 * respect edge directions give an isomorphic spec (the result need not be
 * upper triangular otherwise).
 */
export function permuteSpec(spec: Nb101Spec, perm: ArrayLike<number>): Nb101Spec {
  const n = spec.ops.length;
  if (perm.length !== n) throw new Error('permuteSpec: permutation length must match the spec');
  const matrix = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  const ops = new Array<string>(n);
  for (let v = 0; v < n; v++) {
    ops[perm[v]!] = spec.ops[v]!;
    for (let w = 0; w < n; w++) matrix[perm[v]!]![perm[w]!] = spec.matrix[v]![w]!;
  }
  return { matrix, ops };
}

export interface Nb101SampleOptions {
  /** Number of vertices of the sampled (unpruned) matrix; default 7. */
  numVertices?: number;
  /** Give up after this many rejected draws; default 1000·n + 10000. */
  maxAttempts?: number;
}

/**
 * Draws one random spec the way nasbench's example does: every entry above the
 * diagonal of a V×V matrix is 1 with probability 1/2, every interior op is
 * uniform over NB101_OPS. The result may be invalid.
 */
export function randomRawSpec(rng: Rng, numVertices = NB101_MAX_VERTICES): Nb101Spec {
  const n = numVertices;
  const matrix = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) matrix[i]![j] = rng.int(2);
  const ops = [NB101_INPUT];
  for (let i = 1; i < n - 1; i++) ops.push(NB101_OPS[rng.int(NB101_OPS.length)]!);
  ops.push(NB101_OUTPUT);
  return { matrix, ops };
}

/**
 * Samples `n` distinct (by NAS-Bench-101 hash, i.e. up to isomorphism and
 * pruning) valid cells, reproducibly from `seed`. Rejection sampling over
 * `randomRawSpec`; each returned spec is the pruned form with its hash.
 * Note: like nasbench's own random sampler, this is uniform over raw matrices,
 * not over the 423,624 unique cells.
 */
export function sampleNasBench101(n: number, seed: number, opts: Nb101SampleOptions = {}): Nb101HashedSpec[] {
  const rng = new Rng(seed);
  const numVertices = opts.numVertices ?? NB101_MAX_VERTICES;
  const maxAttempts = opts.maxAttempts ?? 1000 * n + 10_000;
  const seen = new Set<string>();
  const out: Nb101HashedSpec[] = [];
  let attempts = 0;
  while (out.length < n) {
    if (attempts++ >= maxAttempts) {
      throw new Error(`sampleNasBench101: only ${out.length} unique valid cells after ${maxAttempts} draws`);
    }
    const c = checkSpec(randomRawSpec(rng, numVertices));
    if (!c.valid) continue;
    const hash = nb101Hash(c.pruned!);
    if (seen.has(hash)) continue;
    seen.add(hash);
    out.push({ ...cloneSpec(c.pruned!), hash });
  }
  return out;
}

/**
 * Port of model_builder.compute_vertex_channels: the channel count of every
 * vertex of a **pruned** cell with `inputChannels` in and `outputChannels` out.
 *
 * - ch[0] = inputChannels, ch[V-1] = outputChannels.
 * - The output channels are split evenly among the interior vertices that feed
 *   the output (the input→output edge does not count); the remainder goes one
 *   channel each to the first (lowest-index) of them.
 * - Every other interior vertex, visited from the back, gets the max of its
 *   interior successors' counts.
 * The nasbench sanity checks (channels never increase along an interior edge,
 * output fan-in sums to outputChannels) are enforced and throw on failure.
 */
export function computeVertexChannels(inputChannels: number, outputChannels: number, matrix: number[][]): number[] {
  const n = matrix.length;
  const ch = new Array<number>(n).fill(0);
  ch[0] = inputChannels;
  ch[n - 1] = outputChannels;
  if (n === 2) return ch;

  let outFanIn = 0; // in-degree of the output, ignoring the input vertex
  for (let v = 1; v < n; v++) outFanIn += matrix[v]![n - 1]!;
  if (outFanIn === 0)
    throw new Error('computeVertexChannels: no interior vertex feeds the output (prune the spec first)');
  const interior = Math.floor(outputChannels / outFanIn);
  let correction = outputChannels % outFanIn;

  for (let v = 1; v < n - 1; v++) {
    if (matrix[v]![n - 1]) {
      ch[v] = interior;
      if (correction) {
        ch[v]! += 1;
        correction -= 1;
      }
    }
  }
  // Vertex n-2 can only feed the output, so start at n-3.
  for (let v = n - 3; v > 0; v--) {
    if (!matrix[v]![n - 1]) {
      for (let dst = v + 1; dst < n - 1; dst++) {
        if (matrix[v]![dst]) ch[v] = Math.max(ch[v]!, ch[dst]!);
      }
    }
    if (!(ch[v]! > 0)) throw new Error(`computeVertexChannels: vertex ${v} got no channels (prune the spec first)`);
  }

  let finalFanIn = 0;
  for (let v = 1; v < n - 1; v++) {
    if (matrix[v]![n - 1]) finalFanIn += ch[v]!;
    for (let dst = v + 1; dst < n - 1; dst++) {
      if (matrix[v]![dst] && ch[v]! < ch[dst]!) {
        throw new Error(`computeVertexChannels: channels increase on edge ${v}->${dst}`);
      }
    }
  }
  if (finalFanIn !== outputChannels) throw new Error('computeVertexChannels: output fan-in does not add up');
  return ch;
}

/** One incoming connection of an interior vertex in a `Nb101CellPlan`. */
export interface Nb101VertexInput {
  /** Source vertex (0 = the cell input). */
  src: number;
  /**
   * 'project': 1×1 conv-BN-ReLU of the cell input to the vertex width;
   * 'identity': the source tensor as is; 'truncate': its first `channels`
   * channels (the source is one channel wider).
   */
  kind: 'project' | 'identity' | 'truncate';
}

/** Interior vertex of a `Nb101CellPlan`. */
export interface Nb101VertexPlan {
  vertex: number;
  op: Nb101Op;
  /** Output channels of this vertex (also the width of its summed input). */
  channels: number;
  /** Summed inputs: interior sources first (increasing index), then the input projection, as in nasbench. */
  inputs: Nb101VertexInput[];
}

/** Everything the network builder needs for one cell. */
export interface Nb101CellPlan {
  /** The pruned spec the plan was computed from. */
  spec: Nb101Spec;
  inChannels: number;
  outChannels: number;
  /** computeVertexChannels of the pruned matrix. */
  vertexChannels: number[];
  /** Interior vertices in topological (index) order. */
  vertices: Nb101VertexPlan[];
  /** Interior vertices concatenated (in this order) to form the output; may be empty only for the 2-vertex cell. */
  outputConcat: number[];
  /** True if a cin→cout projection of the input is added to the output (or is the output when outputConcat is empty). */
  outputInputProjection: boolean;
}

/**
 * Prunes `spec`, computes its vertex channels and lists, per vertex, what
 * model_builder.build_module sums and applies (see the module doc).
 * @throws if the spec is invalid.
 */
export function nb101CellPlan(spec: Nb101Spec, inChannels: number, outChannels: number): Nb101CellPlan {
  const c = checkSpec(spec);
  if (!c.valid) throw new Error(`nb101CellPlan: invalid spec (${c.reason})`);
  const p = cloneSpec(c.pruned!);
  const n = p.ops.length;
  const ch = computeVertexChannels(inChannels, outChannels, p.matrix);
  const vertices: Nb101VertexPlan[] = [];
  for (let t = 1; t < n - 1; t++) {
    const inputs: Nb101VertexInput[] = [];
    for (let s = 1; s < t; s++) {
      if (p.matrix[s]![t]) inputs.push({ src: s, kind: ch[s]! === ch[t]! ? 'identity' : 'truncate' });
    }
    if (p.matrix[0]![t]) inputs.push({ src: 0, kind: 'project' });
    vertices.push({ vertex: t, op: p.ops[t] as Nb101Op, channels: ch[t]!, inputs });
  }
  const outputConcat: number[] = [];
  for (let t = 1; t < n - 1; t++) if (p.matrix[t]![n - 1]) outputConcat.push(t);
  return {
    spec: p,
    inChannels,
    outChannels,
    vertexChannels: ch,
    vertices,
    outputConcat,
    outputInputProjection: p.matrix[0]![n - 1] === 1,
  };
}

/** Input/output widths and spatial downsampling of one cell of the network. */
export interface Nb101CellSlot {
  stack: number;
  cell: number;
  /** True if a 2×2 stride-2 max-pool precedes this cell (first cell of stacks > 0). */
  downsampleBefore: boolean;
  inChannels: number;
  outChannels: number;
}

/**
 * Cell widths of the NAS-Bench-101 network (model_builder.build_model_fn):
 * the stem outputs `stemChannels`; each stack after the first starts with a
 * max-pool and doubles the width, so its first cell maps C → 2C and the others
 * 2C → 2C. Defaults: 128 channels, 3 stacks × 3 cells.
 */
export function nb101NetworkCellChannels(stemChannels = 128, numStacks = 3, cellsPerStack = 3): Nb101CellSlot[] {
  const slots: Nb101CellSlot[] = [];
  let c = stemChannels;
  for (let s = 0; s < numStacks; s++) {
    const cin0 = c;
    if (s > 0) c *= 2;
    for (let k = 0; k < cellsPerStack; k++) {
      slots.push({
        stack: s,
        cell: k,
        downsampleBefore: s > 0 && k === 0,
        inChannels: k === 0 ? cin0 : c,
        outChannels: c,
      });
    }
  }
  return slots;
}

/** Compact, stable string form of a spec: ops joined by ',' and the matrix rows as bit strings. */
export function nb101SpecKey(spec: Nb101Spec): string {
  return `${spec.ops.join(',')}|${spec.matrix.map((r) => r.join('')).join('/')}`;
}
