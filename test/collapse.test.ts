/**
 * Collapse monitoring and guards on synthetic α: the statistics of a cell,
 * the warning threshold, P-DARTS's skip cap at derivation (which skip_connects
 * it takes out, in which order, and what the cell becomes), and DARTS+'s
 * early stop.
 */
import { describe, expect, it } from 'vitest';
import { deriveCell, deriveCellCapped, EDGES, PRIMITIVES, type OpName } from '../graph/genotype.js';
import {
  checkEpoch,
  collapseStats,
  collapseWarning,
  describeGuard,
  perCellAlphaRecord,
} from '../train/search/collapse.js';

/** α logits whose softmax per edge is the given probabilities (unnamed ops share the rest equally). */
function alphaOf(edges: Partial<Record<OpName, number>>[], ops: readonly OpName[] = PRIMITIVES): Float32Array {
  const a = new Float32Array(EDGES * ops.length);
  edges.forEach((e, i) => {
    const named = Object.values(e).reduce((s, v) => s + v, 0);
    const rest = (1 - named) / (ops.length - Object.keys(e).length);
    ops.forEach((op, k) => {
      a[i * ops.length + k] = Math.log(e[op] ?? rest);
    });
  });
  return a;
}

/**
 * A normal cell whose α derive four skip_connects (edges 0, 1, 2 and 6 with
 * weights 0.50, 0.45, 0.40, 0.35). Edges: node 0 ← e0 (c_{k-2}), e1 (c_{k-1});
 * node 1 ← e2..e4; node 2 ← e5..e8; node 3 ← e9..e13.
 */
const FOUR_SKIPS = alphaOf([
  { skip_connect: 0.5, sep_conv_3x3: 0.3 },
  { skip_connect: 0.45, dil_conv_3x3: 0.35 },
  { skip_connect: 0.4, sep_conv_5x5: 0.3 },
  { sep_conv_3x3: 0.55 },
  { max_pool_3x3: 0.2 },
  { dil_conv_5x5: 0.6 },
  { skip_connect: 0.35, avg_pool_3x3: 0.1 },
  { sep_conv_3x3: 0.25 },
  { sep_conv_3x3: 0.2 },
  { sep_conv_3x3: 0.5 },
  { sep_conv_5x5: 0.45 },
  { max_pool_3x3: 0.2 },
  { max_pool_3x3: 0.2 },
  { max_pool_3x3: 0.2 },
]);

describe('collapse statistics', () => {
  it('counts the parameter-free ops of the derived cell and the softmax mass on skip and pools', () => {
    const a = alphaOf(
      Array.from({ length: EDGES }, () => ({
        skip_connect: 0.4,
        max_pool_3x3: 0.1,
        avg_pool_3x3: 0.1,
        sep_conv_3x3: 0.2,
      })),
    );
    const cell = deriveCell(a);
    expect(cell).toEqual(Array.from({ length: 8 }, (_, k) => ['skip_connect', k % 2]));
    const s = collapseStats(a, PRIMITIVES, cell);
    expect(s).toMatchObject({ param_free: 8, skip: 8, pools: 0 });
    expect(s.skip_mass).toBeCloseTo(0.4, 5);
    expect(s.pool_mass).toBeCloseTo(0.2, 5);

    const four = collapseStats(FOUR_SKIPS, PRIMITIVES, deriveCell(FOUR_SKIPS));
    expect(four).toMatchObject({ param_free: 4, skip: 4, pools: 0 });
    // mean over the 14 edges of the skip_connect weight
    const skipMass = [0.5, 0.45, 0.4, 0.35].reduce((x, y) => x + y, 0) + (1 - 0.55) / 7 + (1 - 0.2) / 7;
    expect(four.skip_mass).toBeCloseTo(
      (skipMass +
        (1 - 0.6) / 7 +
        (1 - 0.25) / 7 +
        (1 - 0.2) / 7 +
        (1 - 0.5) / 7 +
        (1 - 0.45) / 7 +
        3 * ((1 - 0.2) / 7)) /
        EDGES,
      5,
    );
  });

  it('warns only above the threshold', () => {
    const s = collapseStats(FOUR_SKIPS, PRIMITIVES, deriveCell(FOUR_SKIPS));
    expect(collapseWarning(s, 4)).toBeUndefined();
    expect(collapseWarning(s, 3)).toMatch(/4 of 8 ops parameter-free \(skip_connect 4, pools 0; .*more than 3/);
    expect(checkEpoch(FOUR_SKIPS, FOUR_SKIPS).collapse.warning).toMatch(/more than 3/); // default threshold 3
    expect(checkEpoch(FOUR_SKIPS, FOUR_SKIPS, PRIMITIVES, { warnParamFree: 4 }).collapse.warning).toBeUndefined();
  });

  it("logs SSWP-NAS's per-cell softmax(α) and statistics", () => {
    const ops = PRIMITIVES.filter((p) => p !== 'none');
    const a = alphaOf(
      Array.from({ length: EDGES }, () => ({ avg_pool_3x3: 0.5 })),
      ops,
    );
    const cell = deriveCell(a, ops);
    const r = perCellAlphaRecord([a, a], ops, [cell, cell]);
    expect(r.alpha).toHaveLength(2);
    expect(r.alpha[0]![0]![ops.indexOf('avg_pool_3x3')]).toBeCloseTo(0.5, 4);
    expect(r.collapse[1]).toMatchObject({ param_free: 8, pools: 8, skip: 0 });
  });
});

describe('P-DARTS skip cap at derivation', () => {
  it('takes the weakest skip_connects out one at a time and derives again', () => {
    expect(deriveCell(FOUR_SKIPS)).toEqual([
      ['skip_connect', 0],
      ['skip_connect', 1],
      ['sep_conv_3x3', 1],
      ['skip_connect', 0],
      ['dil_conv_5x5', 0],
      ['skip_connect', 1],
      ['sep_conv_3x3', 0],
      ['sep_conv_5x5', 1],
    ]);
    const two = deriveCellCapped(FOUR_SKIPS, PRIMITIVES, 2);
    // first edge 6 (0.35): its next op (avg_pool 0.1) is weaker than edge 7's sep_conv (0.25), so node 2 takes edge 7;
    // then edge 2 (0.40): it keeps its place with its next op, sep_conv_5x5
    expect(two.removed.map((r) => [r.edge, r.node, r.from])).toEqual([
      [6, 2, 1],
      [2, 1, 0],
    ]);
    expect(two.removed[0]!.weight).toBeCloseTo(0.35, 5);
    expect(two.removed[1]!.weight).toBeCloseTo(0.4, 5);
    expect(two.cell).toEqual([
      ['skip_connect', 0],
      ['skip_connect', 1],
      ['sep_conv_3x3', 1],
      ['sep_conv_5x5', 0],
      ['dil_conv_5x5', 0],
      ['sep_conv_3x3', 2],
      ['sep_conv_3x3', 0],
      ['sep_conv_5x5', 1],
    ]);
    const none = deriveCellCapped(FOUR_SKIPS, PRIMITIVES, 0);
    expect(none.removed.map((r) => r.edge)).toEqual([6, 2, 1, 0]);
    expect(none.cell.slice(0, 2)).toEqual([
      ['dil_conv_3x3', 1],
      ['sep_conv_3x3', 0],
    ]);
    expect(none.cell.some(([op]) => op === 'skip_connect')).toBe(false);
    // a cap that holds already changes nothing
    expect(deriveCellCapped(FOUR_SKIPS, PRIMITIVES, 4)).toEqual({ cell: deriveCell(FOUR_SKIPS), removed: [] });
  });

  it('stops where a node would be left without two edges to choose from', () => {
    const ops: OpName[] = ['none', 'skip_connect'];
    const a = alphaOf(
      Array.from({ length: EDGES }, () => ({ skip_connect: 0.7 })),
      ops,
    );
    const r = deriveCellCapped(a, ops, 0);
    expect(r.removed).toEqual([]);
    expect(r.cell.every(([op]) => op === 'skip_connect')).toBe(true);
  });

  it('caps the normal cell only and records its decision', () => {
    const c = checkEpoch(FOUR_SKIPS, FOUR_SKIPS, PRIMITIVES, { maxSkip: 2 });
    expect(c.genotype.normal).toEqual(deriveCellCapped(FOUR_SKIPS, PRIMITIVES, 2).cell);
    expect(c.genotype.reduce).toEqual(deriveCell(FOUR_SKIPS));
    // the statistics describe α as DARTS's rule reads them, before the cap
    expect(c.collapse).toMatchObject({ skip: 4, param_free: 4 });
    expect(c.guards).toEqual([
      { guard: 'max-skip', k: 2, removed: deriveCellCapped(FOUR_SKIPS, PRIMITIVES, 2).removed },
    ]);
    expect(c.stop).toBe(false);
    expect(describeGuard(c.guards[0]!)).toMatch(
      /skip cap \(P-DARTS, k = 2\): skip_connect taken off c_\{k-1\} → node 2 \(weight 0\.350\), c_\{k-2\} → node 1 \(weight 0\.400\)/,
    );
    expect(checkEpoch(FOUR_SKIPS, FOUR_SKIPS, PRIMITIVES, { maxSkip: 4 }).guards).toEqual([]);
  });
});

describe('DARTS+ early stop', () => {
  it('stops once the derived normal cell has more than k skip_connects', () => {
    const stop = checkEpoch(FOUR_SKIPS, FOUR_SKIPS, PRIMITIVES, { earlyStopSkip: 3 });
    expect(stop.stop).toBe(true);
    expect(stop.guards).toEqual([{ guard: 'early-stop-skip', k: 3, skip: 4, action: 'stop' }]);
    expect(describeGuard(stop.guards[0]!)).toMatch(/early stop \(DARTS\+, k = 3\): .* 4 skip_connects/);
    const go = checkEpoch(FOUR_SKIPS, FOUR_SKIPS, PRIMITIVES, { earlyStopSkip: 4 });
    expect(go.stop).toBe(false);
    expect(go.guards).toEqual([]);
    // with the cap on too, the stop still reads the uncapped cell; both decisions are recorded
    const both = checkEpoch(FOUR_SKIPS, FOUR_SKIPS, PRIMITIVES, { earlyStopSkip: 2, maxSkip: 2 });
    expect(both.stop).toBe(true);
    expect(both.guards.map((g) => g.guard)).toEqual(['max-skip', 'early-stop-skip']);
    expect(both.genotype.normal.filter(([op]) => op === 'skip_connect')).toHaveLength(2);
  });
});
