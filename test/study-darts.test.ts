import { describe, expect, it } from 'vitest';
import { loadGenotype, shippedGenotypes } from '../graph/genotype.js';
import { Rng } from '../graph/rng.js';
import {
  canonicalCell,
  canonicalGenotype,
  DARTS_OPS,
  dartsArchId,
  genotypeHash,
  genotypeKey,
  loadUnnasPool,
  sampleDartsCell,
  sampleDartsGenotypes,
  validateGenotype,
  type Genotype,
} from '../train/study/darts-sampler.js';
import { checkSpec } from '../graph/spaces/nasbench101.js';

const DARTS_V2: Genotype = {
  normal: [
    ['sep_conv_3x3', 0],
    ['sep_conv_3x3', 1],
    ['sep_conv_3x3', 0],
    ['sep_conv_3x3', 1],
    ['sep_conv_3x3', 1],
    ['skip_connect', 0],
    ['skip_connect', 0],
    ['dil_conv_3x3', 2],
  ],
  normal_concat: [2, 3, 4, 5],
  reduce: [
    ['max_pool_3x3', 0],
    ['max_pool_3x3', 1],
    ['skip_connect', 2],
    ['max_pool_3x3', 1],
    ['max_pool_3x3', 0],
    ['skip_connect', 2],
    ['skip_connect', 2],
    ['max_pool_3x3', 1],
  ],
  reduce_concat: [2, 3, 4, 5],
};

describe('DARTS genotype sampler', () => {
  it('samples n unique, valid genotypes with distinct inputs by default', () => {
    const gs = sampleDartsGenotypes(500, 1);
    expect(gs).toHaveLength(500);
    expect(new Set(gs.map(genotypeKey)).size).toBe(500);
    for (const g of gs) {
      expect(validateGenotype(g, { distinctInputs: true })).toEqual([]);
      expect(g.normal_concat).toEqual([2, 3, 4, 5]);
      expect(g.reduce_concat).toEqual([2, 3, 4, 5]);
    }
    // every op and every allowed input index of the last node shows up
    const ops = new Set(gs.flatMap((g) => [...g.normal, ...g.reduce].map((p) => p[0])));
    expect([...ops].sort()).toEqual([...DARTS_OPS].sort());
    const lastInputs = new Set(gs.flatMap((g) => [g.normal[6]![1], g.normal[7]![1]]));
    expect([...lastInputs].sort()).toEqual([0, 1, 2, 3, 4]);
  });

  it('is reproducible by seed and differs across seeds', () => {
    expect(sampleDartsGenotypes(50, 7)).toEqual(sampleDartsGenotypes(50, 7));
    expect(sampleDartsGenotypes(50, 7)).not.toEqual(sampleDartsGenotypes(50, 8));
    // a longer list extends a shorter one
    expect(sampleDartsGenotypes(80, 7).slice(0, 50)).toEqual(sampleDartsGenotypes(50, 7));
  });

  it('can exclude none', () => {
    const gs = sampleDartsGenotypes(200, 3, { includeNone: false });
    for (const g of gs) {
      expect(validateGenotype(g, { includeNone: false })).toEqual([]);
      expect([...g.normal, ...g.reduce].some((p) => p[0] === 'none')).toBe(false);
    }
  });

  it('independent inputs reproduce the same-input rate of the UnNAS pool', () => {
    const rng = new Rng(11);
    let same = 0;
    const cells = 4000;
    for (let c = 0; c < cells; c++) {
      const cell = sampleDartsCell(rng, { distinctInputs: false });
      for (let i = 0; i < 4; i++) if (cell[2 * i]![1] === cell[2 * i + 1]![1]) same++;
    }
    const expected = (1 / 2 + 1 / 3 + 1 / 4 + 1 / 5) / 4; // 0.3208
    expect(Math.abs(same / (4 * cells) - expected)).toBeLessThan(0.02);
  });

  it('distinct inputs are uniform over the pairs of states', () => {
    const rng = new Rng(5);
    const counts = new Map<string, number>();
    for (let k = 0; k < 12000; k++) {
      const cell = sampleDartsCell(rng);
      const pair = [cell[2]![1], cell[3]![1]].sort().join(','); // node 1: 3 states → 3 unordered pairs
      counts.set(pair, (counts.get(pair) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual(['0,1', '0,2', '1,2']);
    for (const c of counts.values()) expect(Math.abs(c / 12000 - 1 / 3)).toBeLessThan(0.03);
  });

  it('canonical key ignores the order of the two pairs of a node', () => {
    const swapped: Genotype = {
      ...DARTS_V2,
      normal: [DARTS_V2.normal[1]!, DARTS_V2.normal[0]!, ...DARTS_V2.normal.slice(2)],
      reduce: [...DARTS_V2.reduce.slice(0, 6), DARTS_V2.reduce[7]!, DARTS_V2.reduce[6]!],
    };
    expect(genotypeKey(swapped)).toBe(genotypeKey(DARTS_V2));
    expect(genotypeHash(swapped)).toBe(genotypeHash(DARTS_V2));
    expect(dartsArchId(DARTS_V2)).toMatch(/^darts-[0-9a-f]{16}$/);
    expect(canonicalGenotype(swapped)).toEqual(canonicalGenotype(DARTS_V2));
    // pairs are sorted by input, then by op index
    expect(
      canonicalCell([
        ['skip_connect', 1],
        ['sep_conv_3x3', 0],
        ['sep_conv_3x3', 1],
        ['max_pool_3x3', 1],
      ] as Genotype['normal']),
    ).toEqual([
      ['sep_conv_3x3', 0],
      ['skip_connect', 1],
      ['max_pool_3x3', 1],
      ['sep_conv_3x3', 1],
    ]);
    // but moving a pair to another node is a different genotype
    const n = DARTS_V2.normal;
    const moved: Genotype = { ...DARTS_V2, normal: [n[5]!, n[1]!, n[2]!, n[3]!, n[4]!, n[0]!, n[6]!, n[7]!] };
    expect(validateGenotype(moved)).toEqual([]);
    expect(genotypeKey(moved)).not.toBe(genotypeKey(DARTS_V2));
  });

  it('validates genotypes', () => {
    expect(validateGenotype(DARTS_V2)).toEqual([]);
    const bad: Genotype = { ...DARTS_V2, normal: [['sep_conv_3x3', 2], ...DARTS_V2.normal.slice(1)] };
    expect(validateGenotype(bad).join()).toMatch(/out of range 0\.\.1/);
    expect(validateGenotype({ ...DARTS_V2, reduce: DARTS_V2.reduce.slice(1) }).join()).toMatch(/expected 8 pairs/);
    expect(validateGenotype({ ...DARTS_V2, normal_concat: [2, 3, 6] }).join()).toMatch(/not a node/);
    const unknown = { ...DARTS_V2, normal: [['conv_7x7', 0], ...DARTS_V2.normal.slice(1)] } as unknown as Genotype;
    expect(validateGenotype(unknown).join()).toMatch(/unknown op/);
    expect(validateGenotype(DARTS_V2, { distinctInputs: true })).toEqual([]);
    const sameInput: Genotype = { ...DARTS_V2, normal: [['sep_conv_3x3', 1], ...DARTS_V2.normal.slice(1)] };
    expect(validateGenotype(sameInput)).toEqual([]);
    expect(validateGenotype(sameInput, { distinctInputs: true }).join()).toMatch(/both inputs are 1/);
    const withNone: Genotype = { ...DARTS_V2, reduce: [['none', 0], ...DARTS_V2.reduce.slice(1)] };
    expect(validateGenotype(withNone)).toEqual([]);
    expect(validateGenotype(withNone, { includeNone: false }).join()).toMatch(/none is excluded/);
  });

  it('the shipped published genotypes (models/genotypes) are valid; keys ignore the name', () => {
    const names = shippedGenotypes();
    expect(names).toContain('darts_v2');
    for (const name of names) expect(validateGenotype(loadGenotype(name))).toEqual([]);
    const v2 = loadGenotype('darts_v2');
    expect(v2.name).toBe('darts_v2');
    expect(genotypeKey(v2)).toBe(genotypeKey(DARTS_V2));
  });
});

describe('UnNAS sample pool', () => {
  const pool = loadUnnasPool();

  it('loads 500 DARTS genotypes and 500 NAS-Bench-101 cells from models/data', () => {
    expect(pool.darts).toHaveLength(500);
    expect(pool.nas_bench_101).toHaveLength(500);
    expect(pool.description).toMatch(/UnNAS/);
  });

  it('pool genotypes are valid and unique by canonical key', () => {
    for (const g of pool.darts) expect(validateGenotype(g)).toEqual([]);
    expect(new Set(pool.darts.map(genotypeKey)).size).toBe(500);
    expect(new Set(pool.darts.map((g) => g.id)).size).toBe(500);
  });

  it('pool NAS-Bench-101 cells are valid and already pruned', () => {
    for (const s of pool.nas_bench_101) {
      const c = checkSpec(s);
      expect(c.valid).toBe(true);
      expect(c.pruned!.ops).toEqual(s.ops);
      expect(c.pruned!.matrix).toEqual(s.matrix);
    }
  });
});
