/**
 * SSWP-NAS pruning rules on synthetic α: the paper's rule (the best op on each
 * of the 14 edges of a pruned cell, every edge kept until the end, DARTS's rule
 * for the final cell) and the two-per-node rule, through the FPP/BPP schedule,
 * in the network that is built after each prune, and as functions (a pruned
 * cell computes what the gated cell computes on the path it keeps).
 */
import { describe, expect, it } from 'vitest';
import { EDGES, STEPS, deriveCell, type OpName } from '../graph/genotype.js';
import { Rng } from '../graph/rng.js';
import { serialize } from '../graph/onnx.js';
import { reductionCells } from '../graph/nets/darts.js';
import {
  EDGE_ENDS,
  NUM_OPS,
  SSWP_OPS,
  buildSswpForward,
  edgeOf,
  isEdgeOps,
  type CellSpec,
  type EdgeOps,
} from '../graph/nets/sswp.js';
import { bestOpPerEdge, finalCell, pruneCell } from '../train/search/sswp/prune.js';
import { makeSchedule } from '../train/search/sswp/schedule.js';
import { initParams } from '../train/runtime/params.js';
import { Session, f32, toF32 } from '../train/runtime/session.js';

const TASK = {
  name: 'simclr' as const,
  numClasses: 0,
  groupSize: 1,
  inputShape: [1, 8, 8] as [number, number, number],
};
const NOT_SKIP = SSWP_OPS.filter((o) => o !== 'skip_connect');

/** α of cell `c`: small noise, and on every edge a clear winner (never skip_connect, whose stride-1 form has no nodes). */
function syntheticAlpha(c: number, rng: Rng): { alpha: Float32Array; best: OpName[] } {
  const alpha = Float32Array.from({ length: EDGES * NUM_OPS }, () => 0.1 * rng.normal());
  const best = Array.from({ length: EDGES }, (_, e) => NOT_SKIP[(3 * c + e) % NOT_SKIP.length]!);
  best.forEach((op, e) => {
    alpha[e * NUM_OPS + SSWP_OPS.indexOf(op)] = 1 + 0.5 * rng.next();
  });
  return { alpha, best };
}

/** All ops of a gated edge but an identity skip_connect (stride 1), which has no nodes. */
function gatedOps(layers: number, c: number, e: number): string[] {
  const stride2 = reductionCells(layers).includes(c) && EDGE_ENDS[e]![1] < 2;
  return (stride2 ? [...SSWP_OPS] : [...NOT_SKIP]).sort();
}

/** The ops whose nodes the built graph holds, per cell and edge (scopes cells/<i>/edge<e>/<op>/; gated ops outside If regions). */
function opsInGraph(cells: CellSpec[]): Set<string>[][] {
  const fw = buildSswpForward(TASK, { C: 2, layers: cells.length, cells, rows: 4, projectionDim: 4, ifGates: false });
  const seen = cells.map(() => Array.from({ length: EDGES }, () => new Set<string>()));
  for (const n of fw.g.nodes) {
    const m = /^cells\/(\d+)\/edge(\d+)\/([a-z0-9_]+)\//.exec(n.name);
    if (m && SSWP_OPS.includes(m[3] as OpName)) seen[Number(m[1])]![Number(m[2])]!.add(m[3]!);
  }
  return seen;
}

describe('SSWP pruning rules', () => {
  it("the paper's rule: each pruned cell keeps the best op on all 14 edges, in FPP order; the built network holds exactly those ops", () => {
    const layers = 4;
    const rng = new Rng(7);
    const syn = Array.from({ length: layers }, (_, c) => syntheticAlpha(c, rng));
    const sched = makeSchedule({ epochs: 10, stepsPerEpoch: 2, layers, prune: 'fpp' });
    const pruned: CellSpec[] = new Array<CellSpec>(layers).fill(null);
    const events: number[][] = [];
    for (let step = 0; step < sched.total; step++) {
      const due = sched.order.filter((c) => pruned[c] === null && sched.pruneAt[c]! <= step);
      if (!due.length) continue;
      for (const c of due) pruned[c] = pruneCell(syn[c]!.alpha, 'op-per-edge');
      events.push(due);
      const seen = opsInGraph(pruned);
      pruned.forEach((spec, c) => {
        for (let e = 0; e < EDGES; e++) {
          if (spec === null) expect([...seen[c]![e]!].sort(), `cell ${c} edge ${e}`).toEqual(gatedOps(layers, c, e));
          else expect([...seen[c]![e]!], `cell ${c} edge ${e}`).toEqual([syn[c]!.best[e]]);
        }
      });
    }
    // one cell per prune, from the input side, all before the end
    expect(events).toEqual([[0], [1], [2], [3]]);
    expect(pruned.every((c) => isEdgeOps(c) && c.length === EDGES)).toBe(true);
    expect(pruned.map((c) => c as EdgeOps)).toEqual(syn.map((s) => s.best));
    // the final cells: DARTS's rule (two strongest incoming edges per node, their kept op)
    pruned.forEach((spec, c) => {
      const fin = finalCell(syn[c]!.alpha, spec);
      expect(fin).toEqual(deriveCell(syn[c]!.alpha, SSWP_OPS));
      for (let n = 0; n < STEPS; n++) {
        for (const [op, j] of [fin[2 * n]!, fin[2 * n + 1]!]) expect(op).toBe(syn[c]!.best[edgeOf(n, j)]);
      }
    });
  });

  it('the two-per-node rule discretizes each pruned cell to its 8 final edges at once (BPP: from the output side)', () => {
    const layers = 3;
    const rng = new Rng(8);
    const syn = Array.from({ length: layers }, (_, c) => syntheticAlpha(c, rng));
    const sched = makeSchedule({ epochs: 6, stepsPerEpoch: 1, layers, prune: 'bpp' });
    const pruned: CellSpec[] = new Array<CellSpec>(layers).fill(null);
    const order: number[] = [];
    for (let step = 0; step < sched.total; step++) {
      for (const c of sched.order.filter((k) => pruned[k] === null && sched.pruneAt[k]! <= step)) {
        pruned[c] = pruneCell(syn[c]!.alpha, 'two-per-node');
        order.push(c);
        const seen = opsInGraph(pruned);
        const kept = new Map(
          (pruned[c] as [OpName, number][]).map(([op, j], k) => [edgeOf(Math.floor(k / 2), j), op] as const),
        );
        for (let e = 0; e < EDGES; e++) {
          const want = kept.get(e);
          expect([...seen[c]![e]!], `cell ${c} edge ${e}`).toEqual(want ? [want] : []);
        }
      }
    }
    expect(order).toEqual([2, 1, 0]);
    pruned.forEach((spec, c) => {
      expect(isEdgeOps(spec)).toBe(false);
      expect(spec).toEqual(deriveCell(syn[c]!.alpha, SSWP_OPS));
      expect(finalCell(syn[c]!.alpha, spec)).toBe(spec);
    });
  });

  it('best op per edge: the largest α (the first on ties); the final form of a per-edge cell ranks edges by its kept op', () => {
    const a = new Float32Array(EDGES * NUM_OPS);
    a[3 * NUM_OPS + 5] = 2;
    a[7 * NUM_OPS + 1] = 1;
    a[7 * NUM_OPS + 4] = 1;
    const best = bestOpPerEdge(a);
    expect(best[0]).toBe(SSWP_OPS[0]);
    expect(best[3]).toBe(SSWP_OPS[5]);
    expect(best[7]).toBe(SSWP_OPS[1]);
    // node 1 (edges 2, 3, 4): the kept op's weight ranks an edge, not the edge's strongest op
    const kept = [...best];
    kept[2] = 'sep_conv_5x5'; // an edge kept with another op than its α's best: ranked by that op's weight
    const b = new Float32Array(EDGES * NUM_OPS);
    b[2 * NUM_OPS + SSWP_OPS.indexOf('sep_conv_5x5')] = 3;
    b[2 * NUM_OPS + SSWP_OPS.indexOf('dil_conv_5x5')] = 4; // edge 2's strongest op is not the one it kept
    b[3 * NUM_OPS + SSWP_OPS.indexOf('dil_conv_3x3')] = 2;
    b[4 * NUM_OPS + SSWP_OPS.indexOf('max_pool_3x3')] = 1;
    // kept-op weights: edge 2 ≈ 0.26, edge 3 ≈ 0.55, edge 4 ≈ 0.31 → inputs 1 and 2
    const fin = finalCell(b, kept);
    expect(fin.slice(2, 4)).toEqual([
      ['dil_conv_3x3', 1],
      ['max_pool_3x3', 2],
    ]);
    // random α: the per-edge route and DARTS's rule agree
    const rng = new Rng(3);
    for (let t = 0; t < 20; t++) {
      const r = Float32Array.from({ length: EDGES * NUM_OPS }, () => rng.normal());
      expect(finalCell(r, bestOpPerEdge(r))).toEqual(deriveCell(r, SSWP_OPS));
    }
  });

  it('a pruned cell computes what the gated cell computes with the gates of the path it keeps', async () => {
    const rng = new Rng(11);
    const { alpha } = syntheticAlpha(0, rng);
    alpha[5 * NUM_OPS + SSWP_OPS.indexOf('skip_connect')] = 5; // one identity edge too
    const x = Float32Array.from({ length: 4 * 64 }, () => rng.normal());
    const lossOf = async (cells: CellSpec[], gates?: Float32Array): Promise<number> => {
      const fw = buildSswpForward(TASK, { C: 2, layers: 1, cells, rows: 4, projectionDim: 4, ifGates: false });
      fw.g.output(fw.loss, 'loss');
      const values = initParams(
        buildSswpForward(TASK, { C: 2, layers: 1, cells: [null], rows: 4, projectionDim: 4 }).g,
        1,
      );
      const s = await Session.create(serialize(fw.g, { params: 'inputs', valueInfo: false }));
      const feeds: Record<string, ReturnType<typeof f32>> = { x: f32(x, [4, 1, 8, 8]) };
      for (const p of fw.g.params.values()) feeds[p.name] = f32(values.get(p.name)!, p.shape);
      if (gates) feeds.gates = f32(gates, [1, EDGES, NUM_OPS]);
      const out = toF32((await s.run(feeds, ['loss'])).loss)[0]!;
      await s.release();
      return out;
    };
    const edgeCell = pruneCell(alpha, 'op-per-edge') as EdgeOps;
    const pairCell = pruneCell(alpha, 'two-per-node') as [OpName, number][];
    expect(edgeCell[5]).toBe('skip_connect');
    const oneHot = new Float32Array(EDGES * NUM_OPS);
    edgeCell.forEach((op, e) => {
      oneHot[e * NUM_OPS + SSWP_OPS.indexOf(op)] = 1;
    });
    const pairGates = new Float32Array(EDGES * NUM_OPS);
    pairCell.forEach(([op, j], k) => {
      pairGates[edgeOf(Math.floor(k / 2), j) * NUM_OPS + SSWP_OPS.indexOf(op)] = 1;
    });
    const gatedAll = await lossOf([null], oneHot);
    const gatedPair = await lossOf([null], pairGates);
    expect(Math.abs((await lossOf([edgeCell])) - gatedAll)).toBeLessThan(1e-5 * Math.abs(gatedAll));
    expect(Math.abs((await lossOf([pairCell])) - gatedPair)).toBeLessThan(1e-5 * Math.abs(gatedPair));
    // dropping 6 of the 14 edges changes the function
    expect(Math.abs(gatedAll - gatedPair)).toBeGreaterThan(1e-4);
  });
});
