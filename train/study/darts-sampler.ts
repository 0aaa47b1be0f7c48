/**
 * Random DARTS-space genotypes for the UnNAS sample-based study, their
 * canonical keys, validation, and the published UnNAS sample pools.
 *
 * A cell has `steps` (4) intermediate nodes; node i (0-based) combines two
 * (op, input) pairs whose inputs index the states 0..i+1 (0 = s0, 1 = s1,
 * 2.. = earlier nodes). The genotype JSON format is graph/genotype.ts's
 * `Genotype`; concat lists are [2, …, steps+1]. Keys and hashes ignore the
 * optional `name`.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { PRIMITIVES, STEPS, type Genotype, type OpName } from '../../graph/genotype.js';
import { modelDataPath } from '../../graph/paths.js';
import { Rng } from '../../graph/rng.js';
import type { Nb101Spec } from '../../graph/spaces/nasbench101.js';

export type { Genotype, OpName } from '../../graph/genotype.js';

/** The DARTS candidate operations in their canonical (α column) order (graph/genotype's PRIMITIVES). */
export const DARTS_OPS: readonly OpName[] = PRIMITIVES;

/** Number of intermediate nodes of a DARTS cell. */
export const DARTS_STEPS = STEPS;

export interface DartsSampleOptions {
  /** Allow the `none` op (UnNAS's random genotypes may contain it). Default true. */
  includeNone?: boolean;
  /**
   * Require the two inputs of a node to be different states. Default true.
   * Set false to draw each input independently (uniform over 0..i+1); that is
   * what the published UnNAS pool shows (≈32% of its nodes read the same state
   * twice, the rate of independent draws: (1/2+1/3+1/4+1/5)/4).
   */
  distinctInputs?: boolean;
  /** Intermediate nodes per cell; default 4. */
  steps?: number;
  /** Give up after this many duplicate draws; default 100·n + 1000. */
  maxAttempts?: number;
}

/** Draws one random cell: `steps` nodes × 2 (op, input) pairs. */
export function sampleDartsCell(rng: Rng, opts: DartsSampleOptions = {}): [OpName, number][] {
  const steps = opts.steps ?? DARTS_STEPS;
  const ops = opts.includeNone === false ? DARTS_OPS.filter((o) => o !== 'none') : DARTS_OPS;
  const distinct = opts.distinctInputs ?? true;
  const cell: [OpName, number][] = [];
  for (let i = 0; i < steps; i++) {
    const nInputs = i + 2;
    const a = rng.int(nInputs);
    let b: number;
    if (distinct) {
      b = rng.int(nInputs - 1);
      if (b >= a) b += 1;
    } else {
      b = rng.int(nInputs);
    }
    cell.push([ops[rng.int(ops.length)]!, a], [ops[rng.int(ops.length)]!, b]);
  }
  return cell;
}

/** Draws one random genotype (normal cell, then reduction cell). */
export function sampleDartsGenotype(rng: Rng, opts: DartsSampleOptions = {}): Genotype {
  const steps = opts.steps ?? DARTS_STEPS;
  const concat = Array.from({ length: steps }, (_, k) => k + 2);
  const normal = sampleDartsCell(rng, opts);
  const reduce = sampleDartsCell(rng, opts);
  return { normal, normal_concat: concat.slice(), reduce, reduce_concat: concat.slice() };
}

function opIndex(op: OpName): number {
  const i = DARTS_OPS.indexOf(op);
  if (i < 0) throw new Error(`unknown DARTS op ${String(op)}`);
  return i;
}

/** The cell with the two pairs of every node in canonical order (by input, then op index). */
export function canonicalCell(cell: [OpName, number][]): [OpName, number][] {
  if (cell.length % 2 !== 0) throw new Error('a DARTS cell lists two (op, input) pairs per node');
  const out: [OpName, number][] = [];
  for (let k = 0; k < cell.length; k += 2) {
    const pair = [cell[k]!, cell[k + 1]!].map((p) => [p[0], p[1]] as [OpName, number]);
    pair.sort((x, y) => x[1] - y[1] || opIndex(x[0]) - opIndex(y[0]));
    out.push(pair[0]!, pair[1]!);
  }
  return out;
}

/** A copy of `g` with canonical cells and sorted concat lists. */
export function canonicalGenotype(g: Genotype): Genotype {
  return {
    normal: canonicalCell(g.normal),
    normal_concat: g.normal_concat.slice().sort((a, b) => a - b),
    reduce: canonicalCell(g.reduce),
    reduce_concat: g.reduce_concat.slice().sort((a, b) => a - b),
  };
}

function cellKey(cell: [OpName, number][]): string {
  const c = canonicalCell(cell);
  const nodes: string[] = [];
  for (let k = 0; k < c.length; k += 2) nodes.push(`${c[k]![0]}@${c[k]![1]}+${c[k + 1]![0]}@${c[k + 1]![1]}`);
  return nodes.join(';');
}

/**
 * Canonical string key of a genotype: two genotypes that differ only by the
 * order of the two pairs of a node (or of the concat lists) get the same key.
 * Example: `N:sep_conv_3x3@0+sep_conv_3x3@1;…|NC:2,3,4,5|R:…|RC:2,3,4,5`.
 */
export function genotypeKey(g: Genotype): string {
  const sortNum = (a: number[]) =>
    a
      .slice()
      .sort((x, y) => x - y)
      .join(',');
  return `N:${cellKey(g.normal)}|NC:${sortNum(g.normal_concat)}|R:${cellKey(g.reduce)}|RC:${sortNum(g.reduce_concat)}`;
}

/** Short stable id of a genotype: the first 16 hex digits of md5(genotypeKey). */
export function genotypeHash(g: Genotype): string {
  return createHash('md5').update(genotypeKey(g), 'utf8').digest('hex').slice(0, 16);
}

/** Architecture id for trial stores: `darts-` + genotypeHash(g). */
export function dartsArchId(g: Genotype): string {
  return `darts-${genotypeHash(g)}`;
}

/**
 * Structural problems of a genotype (empty array = valid): cell lengths
 * 2·steps, known op names, node i's inputs in 0..i+1 (integers), concat
 * entries among the node states 2..steps+1 without repeats. With
 * `distinctInputs` also requires the two inputs of each node to differ; with
 * `includeNone: false` rejects `none`.
 */
export function validateGenotype(g: Genotype, opts: DartsSampleOptions = {}): string[] {
  const steps = opts.steps ?? DARTS_STEPS;
  const errors: string[] = [];
  for (const kind of ['normal', 'reduce'] as const) {
    const cell = g[kind];
    if (!Array.isArray(cell) || cell.length !== 2 * steps) {
      errors.push(`${kind}: expected ${2 * steps} pairs`);
      continue;
    }
    cell.forEach((p, k) => {
      const node = Math.floor(k / 2);
      if (!Array.isArray(p) || p.length !== 2) {
        errors.push(`${kind}[${k}]: not an (op, input) pair`);
        return;
      }
      if (!DARTS_OPS.includes(p[0])) errors.push(`${kind}[${k}]: unknown op ${String(p[0])}`);
      if (opts.includeNone === false && p[0] === 'none') errors.push(`${kind}[${k}]: none is excluded`);
      if (!Number.isInteger(p[1]) || p[1] < 0 || p[1] > node + 1) {
        errors.push(`${kind}[${k}]: input ${String(p[1])} out of range 0..${node + 1}`);
      }
    });
    if (opts.distinctInputs) {
      for (let i = 0; i < steps; i++) {
        if (cell[2 * i]?.[1] === cell[2 * i + 1]?.[1])
          errors.push(`${kind} node ${i}: both inputs are ${cell[2 * i]![1]}`);
      }
    }
    const concat = g[`${kind}_concat`];
    if (!Array.isArray(concat) || concat.length === 0) {
      errors.push(`${kind}_concat: empty`);
    } else {
      if (new Set(concat).size !== concat.length) errors.push(`${kind}_concat: repeated state`);
      for (const s of concat) {
        if (!Number.isInteger(s) || s < 2 || s > steps + 1) errors.push(`${kind}_concat: state ${s} is not a node`);
      }
    }
  }
  return errors;
}

/**
 * `n` genotypes, pairwise distinct by `genotypeKey`, drawn reproducibly from
 * `seed` (same seed and options → same list; a longer list extends a shorter
 * one with the same seed).
 * @throws if `maxAttempts` draws are exhausted (only for tiny restricted spaces).
 */
export function sampleDartsGenotypes(n: number, seed: number, opts: DartsSampleOptions = {}): Genotype[] {
  const rng = new Rng(seed);
  const maxAttempts = opts.maxAttempts ?? 100 * n + 1000;
  const seen = new Set<string>();
  const out: Genotype[] = [];
  let attempts = 0;
  while (out.length < n) {
    if (attempts++ >= maxAttempts) {
      throw new Error(`sampleDartsGenotypes: only ${out.length} unique genotypes after ${maxAttempts} draws`);
    }
    const g = sampleDartsGenotype(rng, opts);
    const key = genotypeKey(g);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(g);
  }
  return out;
}

/** A DARTS genotype of the published UnNAS pool. */
export interface UnnasPoolGenotype extends Genotype {
  /** Id in the UnNAS release (zero-padded index, e.g. "00004"). */
  id: string;
}

/** A NAS-Bench-101 cell of the published UnNAS pool. */
export interface UnnasPoolNb101 extends Nb101Spec {
  /**
   * Id in the UnNAS release ("000907"): the cell's position in the
   * NAS-Bench-101 table sorted by module hash (checked by the tests).
   */
  id: string;
}

/** The architectures of the UnNAS sample-based experiments (models/data/unnas_sample_pool.json). */
export interface UnnasPool {
  description: string;
  /** 500 DARTS-space genotypes (may contain `none` and nodes reading one state twice). */
  darts: UnnasPoolGenotype[];
  /** 500 NAS-Bench-101 cells (already pruned). */
  nas_bench_101: UnnasPoolNb101[];
}

/**
 * Loads the published UnNAS sample pools. Reads
 * `<repo root>/models/data/unnas_sample_pool.json` unless `path` is given.
 * Each call returns a fresh copy.
 */
export function loadUnnasPool(path?: string): UnnasPool {
  const file = path ?? modelDataPath('unnas_sample_pool.json');
  const raw = JSON.parse(readFileSync(file, 'utf8')) as Partial<UnnasPool>;
  if (!Array.isArray(raw.darts) || !Array.isArray(raw.nas_bench_101)) {
    throw new Error(`loadUnnasPool: ${file} lacks the darts / nas_bench_101 lists`);
  }
  return { description: raw.description ?? '', darts: raw.darts, nas_bench_101: raw.nas_bench_101 };
}
