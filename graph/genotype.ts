/**
 * The DARTS search space's genotypes: the project-wide JSON format, parsing
 * with one-line errors, the shipped genotypes (models/genotypes/<name>.json)
 * by name, and the derivation of a genotype from α (DARTS's genotype() in
 * model_search.py of github.com/quark0/darts).
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { repoPath } from './paths.js';

/** The 8 candidate operations, in α column order. */
export const PRIMITIVES = [
  'none',
  'max_pool_3x3',
  'avg_pool_3x3',
  'skip_connect',
  'sep_conv_3x3',
  'sep_conv_5x5',
  'dil_conv_3x3',
  'dil_conv_5x5',
] as const;

export type OpName = (typeof PRIMITIVES)[number];

/**
 * A discretized cell pair: two (op, input state) pairs per intermediate node
 * (node i reads states 0..i+1: 0 = s0, 1 = s1, 2.. = earlier nodes), and the
 * states concatenated into the cell output.
 */
export interface Genotype {
  name?: string;
  normal: [OpName, number][];
  normal_concat: number[];
  reduce: [OpName, number][];
  reduce_concat: number[];
}

export const STEPS = 4;
/** Edges of a 4-step cell: 2 + 3 + 4 + 5. */
export const EDGES = 14;

export class GenotypeError extends Error {
  override name = 'GenotypeError';
}

function checkCell(cell: unknown, concat: unknown, kind: string, src: string): void {
  if (!Array.isArray(cell) || cell.length !== 2 * STEPS)
    throw new GenotypeError(`${src}: '${kind}' must list ${2 * STEPS} [op, input] pairs`);
  cell.forEach((pair, k) => {
    if (!Array.isArray(pair) || pair.length !== 2) throw new GenotypeError(`${src}: ${kind}[${k}] must be [op, input]`);
    const [op, inp] = pair as [unknown, unknown];
    if (typeof op !== 'string' || !(PRIMITIVES as readonly string[]).includes(op)) {
      throw new GenotypeError(`${src}: unknown op '${String(op)}' in ${kind}[${k}] (known: ${PRIMITIVES.join(', ')})`);
    }
    const node = Math.floor(k / 2);
    if (!Number.isInteger(inp) || (inp as number) < 0 || (inp as number) > node + 1) {
      throw new GenotypeError(`${src}: ${kind}[${k}] input ${String(inp)} must be an integer in 0..${node + 1}`);
    }
  });
  if (!Array.isArray(concat) || !concat.length || concat.some((c) => !Number.isInteger(c) || c < 0 || c > STEPS + 1)) {
    throw new GenotypeError(`${src}: '${kind}_concat' must list states in 0..${STEPS + 1}`);
  }
}

/** Validate an object as a genotype (throws GenotypeError with one line naming the problem). */
export function parseGenotype(obj: unknown, src = 'genotype'): Genotype {
  if (!obj || typeof obj !== 'object') throw new GenotypeError(`${src}: a genotype must be a JSON object`);
  const o = obj as Record<string, unknown>;
  checkCell(o.normal, o.normal_concat, 'normal', src);
  checkCell(o.reduce, o.reduce_concat, 'reduce', src);
  return {
    ...(typeof o.name === 'string' ? { name: o.name } : {}),
    normal: o.normal as [OpName, number][],
    normal_concat: o.normal_concat as number[],
    reduce: o.reduce as [OpName, number][],
    reduce_concat: o.reduce_concat as number[],
  };
}

export function genotypeDir(): string {
  return repoPath('models', 'genotypes');
}

/** Names of the shipped genotypes. */
export function shippedGenotypes(): string[] {
  return readdirSync(genotypeDir())
    .filter((f) => f.endsWith('.json'))
    .map((f) => basename(f, '.json'))
    .sort();
}

/** A genotype by shipped name (`darts_v2`) or by path to a JSON file. */
export function loadGenotype(nameOrPath: string): Genotype {
  const shipped = join(genotypeDir(), `${nameOrPath.toLowerCase()}.json`);
  const path = existsSync(shipped) && !nameOrPath.includes('/') ? shipped : nameOrPath;
  if (!existsSync(path)) {
    throw new GenotypeError(
      `genotype '${nameOrPath}' is neither a shipped name (${shippedGenotypes().join(', ')}) nor a file`,
    );
  }
  let obj: unknown;
  try {
    obj = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new GenotypeError(`${path}: malformed JSON (${(e as Error).message})`);
  }
  const g = parseGenotype(obj, path);
  return { ...g, name: g.name ?? basename(path, '.json') };
}

/** Genotype JSON in the shipped format (one pair list per line). */
export function genotypeJson(g: Genotype): string {
  const lines = ['{'];
  if (g.name) lines.push(`  "name": ${JSON.stringify(g.name)},`);
  lines.push(`  "normal": ${JSON.stringify(g.normal)},`);
  lines.push(`  "normal_concat": ${JSON.stringify(g.normal_concat)},`);
  lines.push(`  "reduce": ${JSON.stringify(g.reduce)},`);
  lines.push(`  "reduce_concat": ${JSON.stringify(g.reduce_concat)}`);
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

function softmaxRow(a: ArrayLike<number>, off: number, n: number): number[] {
  let m = -Infinity;
  for (let k = 0; k < n; k++) m = Math.max(m, a[off + k]!);
  const e = Array.from({ length: n }, (_, k) => Math.exp(a[off + k]! - m));
  const s = e.reduce((p, q) => p + q, 0);
  return e.map((v) => v / s);
}

/** One edge's skip_connect taken out by the skip cap (P-DARTS): cell edge index and its softmax weight. */
export interface SkipRemoval {
  /** Index of the edge in the cell's 14 (row of α). */
  edge: number;
  /** The intermediate node it enters (0..3) and the state it reads. */
  node: number;
  from: number;
  weight: number;
}

/** Softmax per edge of α ([EDGES × ops] row-major logits). */
export function edgeWeights(alpha: ArrayLike<number>, ops: readonly OpName[] = PRIMITIVES): number[][] {
  const n = ops.length;
  if (alpha.length !== EDGES * n) throw new GenotypeError(`α must have ${EDGES}×${n} entries, got ${alpha.length}`);
  return Array.from({ length: EDGES }, (_, e) => softmaxRow(alpha, e * n, n));
}

/**
 * DARTS's rule on softmax weights: per node the top-two incoming edges by
 * their strongest op that is neither `none` nor banned (`banned[edge]` holds
 * op columns); null when a node has fewer than two edges with such an op.
 */
function pickCell(
  w: readonly number[][],
  ops: readonly OpName[],
  banned: ReadonlyMap<number, ReadonlySet<number>> = new Map(),
): { cell: [OpName, number][]; edges: number[] } | null {
  const cell: [OpName, number][] = [];
  const edges: number[] = [];
  let start = 0;
  for (let i = 0; i < STEPS; i++) {
    const cands: { edge: number; best: number; op: OpName }[] = [];
    for (let j = 0; j < i + 2; j++) {
      const row = w[start + j]!;
      let best = -1;
      for (let k = 0; k < row.length; k++)
        if (ops[k] !== 'none' && !banned.get(start + j)?.has(k) && (best < 0 || row[k]! > row[best]!)) best = k;
      if (best >= 0) cands.push({ edge: j, best: row[best]!, op: ops[best]! });
    }
    if (cands.length < 2) return null;
    cands.sort((a, b) => b.best - a.best || a.edge - b.edge);
    for (const c of cands.slice(0, 2)) {
      cell.push([c.op, c.edge]);
      edges.push(start + c.edge);
    }
    start += i + 2;
  }
  return { cell, edges };
}

/**
 * DARTS's rule: per node, rank incoming edges by their strongest non-`none`
 * op weight, keep the top two, and on each the strongest non-`none` op.
 * `alpha` is [EDGES × ops] row-major; `ops` names its columns.
 *
 * `maxSkip` (P-DARTS's cap): while the cell holds more than that many
 * skip_connects, the chosen skip_connect with the smallest weight is taken
 * off its edge (P-DARTS sets its probability to 0) and the cell is derived
 * again (Chen et al. 2019, sec. 3.3; their code's delete_min_sk_prob /
 * keep_2_branches loop). `removed` lists the skip_connects taken out, in
 * order. Where taking one out would leave a node without two edges to choose
 * from (a search space with no other op), the cap stops there.
 */
export function deriveCellCapped(
  alpha: ArrayLike<number>,
  ops: readonly OpName[] = PRIMITIVES,
  maxSkip = Number.POSITIVE_INFINITY,
): { cell: [OpName, number][]; removed: SkipRemoval[] } {
  const w = edgeWeights(alpha, ops);
  const skip = ops.indexOf('skip_connect');
  const banned = new Map<number, Set<number>>();
  const removed: SkipRemoval[] = [];
  let cur = pickCell(w, ops);
  if (!cur) throw new GenotypeError(`a cell needs at least one op besides 'none' (ops: ${ops.join(', ')})`);
  for (;;) {
    const { cell, edges } = cur;
    const skips = cell.flatMap((c, k) => (c[0] === 'skip_connect' ? [k] : []));
    if (skip < 0 || skips.length <= maxSkip) return { cell, removed };
    const k = skips.reduce((a, b) => (w[edges[b]!]![skip]! < w[edges[a]!]![skip]! ? b : a));
    const edge = edges[k]!;
    banned.set(edge, new Set([...(banned.get(edge) ?? []), skip]));
    const next = pickCell(w, ops, banned);
    if (!next) return { cell, removed };
    removed.push({ edge, node: Math.floor(k / 2), from: cell[k]![1], weight: w[edge]![skip]! });
    cur = next;
  }
}

/** DARTS's rule (see deriveCellCapped), without a cap. */
export function deriveCell(alpha: ArrayLike<number>, ops: readonly OpName[] = PRIMITIVES): [OpName, number][] {
  return deriveCellCapped(alpha, ops).cell;
}

/** Both cells by DARTS's rule; `maxSkip` caps the normal cell's skip_connects (P-DARTS caps the normal cell only). */
export function deriveGenotype(
  alphaNormal: ArrayLike<number>,
  alphaReduce: ArrayLike<number>,
  ops: readonly OpName[] = PRIMITIVES,
  maxSkip?: number,
): Genotype {
  const concat = Array.from({ length: STEPS }, (_, i) => i + 2);
  return {
    normal: deriveCellCapped(alphaNormal, ops, maxSkip).cell,
    normal_concat: concat,
    reduce: deriveCell(alphaReduce, ops),
    reduce_concat: [...concat],
  };
}
