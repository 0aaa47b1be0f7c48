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

/**
 * DARTS's rule: per node, rank incoming edges by their strongest non-`none`
 * op weight, keep the top two, and on each the strongest non-`none` op.
 * `alpha` is [EDGES × ops] row-major; `ops` names its columns.
 */
export function deriveCell(alpha: ArrayLike<number>, ops: readonly OpName[] = PRIMITIVES): [OpName, number][] {
  const n = ops.length;
  if (alpha.length !== EDGES * n) throw new GenotypeError(`α must have ${EDGES}×${n} entries, got ${alpha.length}`);
  const out: [OpName, number][] = [];
  let start = 0;
  for (let i = 0; i < STEPS; i++) {
    const cands: { edge: number; best: number; op: OpName }[] = [];
    for (let j = 0; j < i + 2; j++) {
      const w = softmaxRow(alpha, (start + j) * n, n);
      let best = -1;
      let op: OpName = ops[0]!;
      w.forEach((v, k) => {
        if (ops[k] !== 'none' && v > best) {
          best = v;
          op = ops[k]!;
        }
      });
      cands.push({ edge: j, best, op });
    }
    cands.sort((a, b) => b.best - a.best || a.edge - b.edge);
    for (const c of cands.slice(0, 2)) out.push([c.op, c.edge]);
    start += i + 2;
  }
  return out;
}

export function deriveGenotype(
  alphaNormal: ArrayLike<number>,
  alphaReduce: ArrayLike<number>,
  ops: readonly OpName[] = PRIMITIVES,
): Genotype {
  const concat = Array.from({ length: STEPS }, (_, i) => i + 2);
  return {
    normal: deriveCell(alphaNormal, ops),
    normal_concat: concat,
    reduce: deriveCell(alphaReduce, ops),
    reduce_concat: [...concat],
  };
}
