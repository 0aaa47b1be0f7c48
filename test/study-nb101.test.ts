import { describe, expect, it } from 'vitest';
import { Rng } from '../graph/rng.js';
import { loadUnnasPool } from '../train/study/darts-sampler.js';
import {
  checkSpec,
  computeVertexChannels,
  hashModule,
  isFullDag,
  isValidSpec,
  nb101ArchId,
  nb101CellPlan,
  nb101Hash,
  nb101NetworkCellChannels,
  permuteSpec,
  pruneSpec,
  sampleNasBench101,
  type Nb101Spec,
} from '../graph/spaces/nasbench101.js';

const C3 = 'conv3x3-bn-relu';
const C1 = 'conv1x1-bn-relu';
const MP = 'maxpool3x3';

/** The first cell of NAS-Bench-101 (hash-sorted), whose hash is published in many places. */
const FIRST_NB101: Nb101Spec = {
  matrix: [
    [0, 1, 0, 0, 1, 1, 0],
    [0, 0, 1, 0, 0, 0, 0],
    [0, 0, 0, 1, 0, 0, 1],
    [0, 0, 0, 0, 0, 1, 0],
    [0, 0, 0, 0, 0, 1, 0],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 0],
  ],
  ops: ['input', C3, MP, C3, C3, C1, 'output'],
};

/**
 * Relabels a pruned spec's vertices by a random topological order (Kahn's
 * algorithm with random choices), so the result is an isomorphic spec that is
 * still upper triangular with input first and output last.
 */
function randomTopologicalRelabel(spec: Nb101Spec, rng: Rng): Nb101Spec {
  const n = spec.ops.length;
  const indeg = spec.ops.map((_, c) => spec.matrix.reduce((a, r) => a + r[c]!, 0));
  const order: number[] = [];
  const ready = [0];
  while (ready.length) {
    const v = ready.splice(rng.int(ready.length), 1)[0]!;
    order.push(v);
    for (let w = 0; w < n; w++) {
      if (spec.matrix[v]![w] && --indeg[w]! === 0) ready.push(w);
    }
  }
  expect(order).toHaveLength(n);
  expect(order[n - 1]).toBe(n - 1); // every vertex of a pruned spec reaches the output
  const perm = new Array<number>(n);
  order.forEach((v, pos) => (perm[v] = pos));
  return permuteSpec(spec, perm);
}

describe('NAS-Bench-101 validity and pruning', () => {
  it('accepts a valid spec and enforces the limits', () => {
    expect(checkSpec(FIRST_NB101)).toMatchObject({ valid: true });
    // 10 edges
    const tenEdges: Nb101Spec = {
      matrix: [
        [0, 1, 1, 1, 1, 1, 1],
        [0, 0, 1, 0, 0, 0, 0],
        [0, 0, 0, 1, 0, 0, 0],
        [0, 0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 0],
      ],
      ops: ['input', C3, C3, C3, C3, C3, 'output'],
    };
    expect(checkSpec(tenEdges)).toMatchObject({ valid: false, reason: expect.stringMatching(/too many edges/) });
    // 8 vertices (a chain)
    const chain8: Nb101Spec = {
      matrix: Array.from({ length: 8 }, (_, r) => Array.from({ length: 8 }, (_, c) => (c === r + 1 ? 1 : 0))),
      ops: ['input', C3, C3, C3, C3, C3, C3, 'output'],
    };
    expect(checkSpec(chain8)).toMatchObject({ valid: false, reason: expect.stringMatching(/too many vertices/) });
    // not upper triangular
    expect(
      checkSpec({
        matrix: [
          [0, 1, 0],
          [1, 0, 1],
          [0, 0, 0],
        ],
        ops: ['input', C3, 'output'],
      }).valid,
    ).toBe(false);
    // wrong first / last / interior labels
    expect(
      checkSpec({
        matrix: [
          [0, 1, 0],
          [0, 0, 1],
          [0, 0, 0],
        ],
        ops: [C3, C3, 'output'],
      }).reason,
    ).toMatch(/first op/);
    expect(
      checkSpec({
        matrix: [
          [0, 1, 0],
          [0, 0, 1],
          [0, 0, 0],
        ],
        ops: ['input', C3, C3],
      }).reason,
    ).toMatch(/last op/);
    expect(
      checkSpec({
        matrix: [
          [0, 1, 0],
          [0, 0, 1],
          [0, 0, 0],
        ],
        ops: ['input', 'conv5x5', 'output'],
      }).reason,
    ).toMatch(/unsupported op/);
    // ops length mismatch / non-square
    expect(
      checkSpec({
        matrix: [
          [0, 1],
          [0, 0],
        ],
        ops: ['input', C3, 'output'],
      }).valid,
    ).toBe(false);
    expect(
      checkSpec({
        matrix: [
          [0, 1, 0],
          [0, 0],
        ],
        ops: ['input', C3, 'output'],
      }).valid,
    ).toBe(false);
    // the 2-vertex cell input → output is valid
    expect(
      isValidSpec({
        matrix: [
          [0, 1],
          [0, 0],
        ],
        ops: ['input', 'output'],
      }),
    ).toBe(true);
  });

  it('edge and vertex limits apply after pruning', () => {
    // 8 vertices + 10 edges before pruning, but vertex 6 dangles (no path to output)
    const m = Array.from({ length: 8 }, () => new Array<number>(8).fill(0));
    const edges: [number, number][] = [
      [0, 1],
      [1, 2],
      [2, 3],
      [3, 4],
      [4, 5],
      [5, 7],
      [0, 6],
      [1, 6],
      [2, 6],
      [3, 6],
    ];
    for (const [a, b] of edges) m[a]![b] = 1;
    const spec = { matrix: m, ops: ['input', C3, C3, C1, MP, C3, C1, 'output'] };
    const c = checkSpec(spec);
    expect(c.valid).toBe(true);
    expect(c.pruned!.ops).toEqual(['input', C3, C3, C1, MP, C3, 'output']);
  });

  it('prunes vertices not on an input → output path (hand-made examples)', () => {
    // vertex 2 has no path to the output; vertex 3 is not reachable from the input
    const spec: Nb101Spec = {
      matrix: [
        [0, 1, 1, 0, 0],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0],
      ],
      ops: ['input', C3, C1, MP, 'output'],
    };
    expect(pruneSpec(spec)).toEqual({
      matrix: [
        [0, 1, 0],
        [0, 0, 1],
        [0, 0, 0],
      ],
      ops: ['input', C3, 'output'],
    });
    expect(isFullDag(spec.matrix)).toBe(false);
    expect(isFullDag(pruneSpec(spec)!.matrix)).toBe(true);
    // the input is not modified
    expect(spec.ops).toHaveLength(5);

    // a chain of dead vertices between live ones keeps the live order
    const spec2: Nb101Spec = {
      matrix: [
        [0, 1, 0, 1, 0, 0],
        [0, 0, 1, 0, 0, 0], // 1 → 2, 2 is a dead end
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 1], // 4 unreachable
        [0, 0, 0, 0, 0, 0],
      ],
      ops: ['input', MP, C1, C3, C1, 'output'],
    };
    expect(pruneSpec(spec2)).toEqual({
      matrix: [
        [0, 1, 0],
        [0, 0, 1],
        [0, 0, 0],
      ],
      ops: ['input', C3, 'output'],
    });

    // disconnected input and output → invalid
    const cut: Nb101Spec = {
      matrix: [
        [0, 1, 0, 0],
        [0, 0, 0, 0],
        [0, 0, 0, 1],
        [0, 0, 0, 0],
      ],
      ops: ['input', C3, C3, 'output'],
    };
    expect(pruneSpec(cut)).toBeNull();
    expect(checkSpec(cut)).toMatchObject({ valid: false, reason: expect.stringMatching(/not connected/) });

    // nasbench graph_util_test is_full_dag cases
    expect(
      isFullDag([
        [0, 1, 1, 0],
        [0, 0, 0, 1],
        [0, 0, 0, 1],
        [0, 0, 0, 0],
      ]),
    ).toBe(true);
    expect(
      isFullDag([
        [0, 0, 1],
        [0, 0, 1],
        [0, 0, 0],
      ]),
    ).toBe(false);
    expect(
      isFullDag([
        [0, 1, 1],
        [0, 0, 0],
        [0, 0, 0],
      ]),
    ).toBe(false);
  });
});

describe('NAS-Bench-101 hash', () => {
  it('matches the published hash of the first NAS-Bench-101 cell', () => {
    expect(nb101Hash(FIRST_NB101)).toBe('00005c142e6f48ac74fdcf73e3439874');
    expect(nb101ArchId(FIRST_NB101)).toBe('nb101-00005c142e6f48ac74fdcf73e3439874');
  });

  it('agrees with the published UnNAS pool: ids are ranks in the hash-sorted NAS-Bench-101 table', () => {
    // The pool stores no hashes, but its ids ("000907" …) are positions of the cells in
    // NAS-Bench-101's 423,624 cells sorted by hash. So our hashes, in pool order, must be
    // strictly increasing, and hash/2^128 must track id/423624 closely.
    const pool = loadUnnasPool().nas_bench_101;
    const hashes = pool.map(nb101Hash);
    expect(new Set(hashes).size).toBe(pool.length);
    let maxDev = 0;
    for (let i = 0; i < pool.length; i++) {
      if (i > 0) {
        expect(Number(pool[i]!.id)).toBeGreaterThan(Number(pool[i - 1]!.id));
        expect(hashes[i]! > hashes[i - 1]!).toBe(true);
      }
      const frac = parseInt(hashes[i]!.slice(0, 12), 16) / 2 ** 48;
      maxDev = Math.max(maxDev, Math.abs(frac - Number(pool[i]!.id) / 423624));
    }
    expect(maxDev).toBeLessThan(0.005);
  });

  it('is invariant to vertex permutations and pruning, sensitive to labels', () => {
    const rng = new Rng(3);
    const pool = loadUnnasPool().nas_bench_101.slice(0, 60);
    for (const spec of pool) {
      const h = nb101Hash(spec);
      for (let k = 0; k < 3; k++) {
        const p = randomTopologicalRelabel(spec, rng);
        expect(checkSpec(p).valid).toBe(true);
        expect(nb101Hash(p)).toBe(h);
      }
    }
    // swapping two interior labels of the first cell changes its hash
    const relabeled = { ...FIRST_NB101, ops: ['input', MP, C3, C3, C3, C1, 'output'] };
    expect(nb101Hash(relabeled)).not.toBe(nb101Hash(FIRST_NB101));
    // adding a dead vertex (pruned) keeps the hash
    const n = 7;
    const withDead: Nb101Spec = {
      matrix: [
        [0, 1, 0, 0, 0, 0, 0],
        [0, 0, 1, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0],
        new Array<number>(n).fill(0),
      ],
      ops: ['input', C3, C1, MP, MP, MP, 'output'],
    };
    expect(nb101Hash(withDead)).toBe(
      nb101Hash({
        matrix: [
          [0, 1, 0, 0],
          [0, 0, 1, 0],
          [0, 0, 0, 1],
          [0, 0, 0, 0],
        ],
        ops: ['input', C3, C1, 'output'],
      }),
    );
  });

  it('passes the nasbench graph_util hash_module test cases', () => {
    // Diamond graph with label permutation
    const diamond = [
      [0, 1, 1, 0],
      [0, 0, 0, 1],
      [0, 0, 0, 1],
      [0, 0, 0, 0],
    ];
    expect(hashModule(diamond, [-1, 1, 2, -2])).toBe(hashModule(diamond, [-1, 2, 1, -2]));
    // Simple graph with edge permutation
    const m1 = [
      [0, 1, 1, 0, 0],
      [0, 0, 0, 0, 1],
      [0, 0, 0, 1, 0],
      [0, 0, 0, 0, 1],
      [0, 0, 0, 0, 0],
    ];
    const m2 = [
      [0, 1, 0, 1, 0],
      [0, 0, 1, 0, 0],
      [0, 0, 0, 0, 1],
      [0, 0, 0, 0, 1],
      [0, 0, 0, 0, 0],
    ];
    const m3 = [
      [0, 1, 1, 0, 0],
      [0, 0, 0, 1, 0],
      [0, 0, 0, 0, 1],
      [0, 0, 0, 0, 1],
      [0, 0, 0, 0, 0],
    ];
    const l1 = [-1, 1, 2, 3, -2];
    const l2 = [-1, 2, 3, 1, -2];
    const l3 = [-1, 2, 1, 3, -2];
    expect(hashModule(m1, l1)).toBe(hashModule(m2, l2));
    expect(hashModule(m2, l2)).toBe(hashModule(m3, l3));
    expect(hashModule(m1, l2)).not.toBe(hashModule(m1, l1));
    expect(hashModule(m1, l3)).not.toBe(hashModule(m1, l1));
    // Connected non-isomorphic regular graphs on 6 interior vertices
    const r1 = [
      [0, 1, 0, 0, 0, 0, 0, 0],
      [0, 0, 1, 1, 0, 0, 1, 0],
      [0, 0, 0, 0, 1, 1, 0, 0],
      [0, 0, 0, 0, 1, 1, 0, 0],
      [0, 0, 0, 0, 0, 0, 1, 0],
      [0, 0, 0, 0, 0, 0, 1, 0],
      [0, 0, 0, 0, 0, 0, 0, 1],
      [0, 0, 0, 0, 0, 0, 0, 0],
    ];
    const r2 = [
      [0, 1, 0, 0, 0, 0, 0, 0],
      [0, 0, 1, 1, 0, 1, 0, 0],
      [0, 0, 0, 0, 1, 0, 1, 0],
      [0, 0, 0, 0, 1, 1, 0, 0],
      [0, 0, 0, 0, 0, 0, 1, 0],
      [0, 0, 0, 0, 0, 0, 1, 0],
      [0, 0, 0, 0, 0, 0, 0, 1],
      [0, 0, 0, 0, 0, 0, 0, 0],
    ];
    const lr = [-1, 1, 1, 1, 1, 1, 1, -2];
    expect(hashModule(r1, lr)).not.toBe(hashModule(r2, lr));
    // Tricky cases: self hash, directed edges, in-neighbours
    const chain = [
      [0, 1, 0, 0, 0],
      [0, 0, 1, 0, 0],
      [0, 0, 0, 1, 0],
      [0, 0, 0, 0, 1],
      [0, 0, 0, 0, 0],
    ];
    expect(hashModule(chain, [-1, 1, 0, 0, -2])).not.toBe(hashModule(chain, [-1, 0, 0, 1, -2]));
    const tri = [
      [0, 1, 0, 1],
      [0, 0, 1, 0],
      [0, 0, 0, 1],
      [0, 0, 0, 0],
    ];
    expect(hashModule(tri, [-1, 1, 0, -2])).not.toBe(hashModule(tri, [-1, 0, 1, -2]));
    const t7 = [
      [0, 1, 1, 1, 1, 0, 0],
      [0, 0, 1, 0, 0, 0, 0],
      [0, 0, 0, 0, 0, 0, 1],
      [0, 0, 0, 0, 0, 1, 0],
      [0, 0, 0, 0, 0, 1, 0],
      [0, 0, 0, 0, 0, 0, 1],
      [0, 0, 0, 0, 0, 0, 0],
    ];
    expect(hashModule(t7, [-1, 1, 0, 0, 0, 0, -2])).not.toBe(hashModule(t7, [-1, 0, 0, 0, 1, 0, -2]));
  });

  it('is invariant under arbitrary permutations of random directed graphs (graph_util_test)', () => {
    const rng = new Rng(21);
    for (let k = 0; k < 100; k++) {
      const size = 3 + rng.int(10);
      const matrix = Array.from({ length: size }, () => Array.from({ length: size }, () => rng.int(2)));
      const labels = Array.from({ length: size }, () => rng.int(11));
      const perm = Array.from(rng.permutation(size));
      const p = permuteSpec({ matrix, ops: labels.map(String) }, perm);
      expect(hashModule(p.matrix, p.ops.map(Number))).toBe(hashModule(matrix, labels));
    }
  });
});

describe('NAS-Bench-101 sampler', () => {
  it('samples unique valid cells, reproducibly', () => {
    const a = sampleNasBench101(300, 5);
    expect(a).toHaveLength(300);
    expect(new Set(a.map((s) => s.hash)).size).toBe(300);
    for (const s of a) {
      const c = checkSpec(s);
      expect(c.valid).toBe(true);
      expect(c.pruned).toEqual({ matrix: s.matrix, ops: s.ops }); // already pruned
      expect(nb101Hash(s)).toBe(s.hash);
    }
    expect(sampleNasBench101(40, 5)).toEqual(a.slice(0, 40));
    expect(sampleNasBench101(40, 6).map((s) => s.hash)).not.toEqual(a.slice(0, 40).map((s) => s.hash));
  });
});

describe('NAS-Bench-101 vertex channels (nasbench model_builder_test cases)', () => {
  it('linear modules', () => {
    const m1 = [
      [0, 1, 0, 0],
      [0, 0, 1, 0],
      [0, 0, 0, 1],
      [0, 0, 0, 0],
    ];
    expect(computeVertexChannels(8, 8, m1)).toEqual([8, 8, 8, 8]);
    expect(computeVertexChannels(8, 16, m1)).toEqual([8, 16, 16, 16]);
    expect(computeVertexChannels(16, 8, m1)).toEqual([16, 8, 8, 8]);
    const m2 = [
      [0, 1],
      [0, 0],
    ];
    expect(computeVertexChannels(1, 1, m2)).toEqual([1, 1]);
    expect(computeVertexChannels(1, 5, m2)).toEqual([1, 5]);
    expect(computeVertexChannels(5, 1, m2)).toEqual([5, 1]);
  });

  it('branching not at the output', () => {
    const m = [
      [0, 1, 1, 0, 0],
      [0, 0, 0, 1, 0],
      [0, 0, 0, 1, 0],
      [0, 0, 0, 0, 1],
      [0, 0, 0, 0, 0],
    ];
    expect(computeVertexChannels(8, 8, m)).toEqual([8, 8, 8, 8, 8]);
    expect(computeVertexChannels(8, 16, m)).toEqual([8, 16, 16, 16, 16]);
    expect(computeVertexChannels(16, 8, m)).toEqual([16, 8, 8, 8, 8]);
  });

  it('branching at the output (remainder to the first vertices)', () => {
    const m1 = [
      [0, 1, 1, 0],
      [0, 0, 0, 1],
      [0, 0, 0, 1],
      [0, 0, 0, 0],
    ];
    expect(computeVertexChannels(8, 8, m1)).toEqual([8, 4, 4, 8]);
    expect(computeVertexChannels(8, 16, m1)).toEqual([8, 8, 8, 16]);
    expect(computeVertexChannels(16, 8, m1)).toEqual([16, 4, 4, 8]);
    expect(computeVertexChannels(8, 15, m1)).toEqual([8, 8, 7, 15]);
    const m2 = [
      [0, 1, 1, 1, 0],
      [0, 0, 0, 0, 1],
      [0, 0, 0, 0, 1],
      [0, 0, 0, 0, 1],
      [0, 0, 0, 0, 0],
    ];
    expect(computeVertexChannels(8, 8, m2)).toEqual([8, 3, 3, 2, 8]);
    expect(computeVertexChannels(8, 15, m2)).toEqual([8, 5, 5, 5, 15]);
  });

  it('vertices feeding only other vertices take the max of their successors', () => {
    const m1 = [
      [0, 1, 0, 0, 0],
      [0, 0, 1, 1, 0],
      [0, 0, 0, 0, 1],
      [0, 0, 0, 0, 1],
      [0, 0, 0, 0, 0],
    ];
    expect(computeVertexChannels(8, 8, m1)).toEqual([8, 4, 4, 4, 8]);
    expect(computeVertexChannels(8, 9, m1)).toEqual([8, 5, 5, 4, 9]);
    const m2 = [
      [0, 1, 0, 1, 0],
      [0, 0, 1, 0, 1],
      [0, 0, 0, 1, 0],
      [0, 0, 0, 0, 1],
      [0, 0, 0, 0, 0],
    ];
    expect(computeVertexChannels(8, 8, m2)).toEqual([8, 4, 4, 4, 8]);
    expect(computeVertexChannels(8, 15, m2)).toEqual([8, 8, 7, 7, 15]);
  });

  it('holds its invariants on every pool cell at every network width', () => {
    const slots = nb101NetworkCellChannels();
    for (const spec of loadUnnasPool().nas_bench_101) {
      for (const { inChannels, outChannels } of slots) {
        const plan = nb101CellPlan(spec, inChannels, outChannels);
        const ch = plan.vertexChannels;
        expect(ch[0]).toBe(inChannels);
        expect(ch[ch.length - 1]).toBe(outChannels);
        expect(plan.outputConcat.reduce((a, v) => a + ch[v]!, 0)).toBe(outChannels);
        for (const v of plan.vertices) {
          for (const inp of v.inputs) {
            if (inp.kind === 'truncate') expect(ch[inp.src]! - v.channels).toBe(1);
            if (inp.kind === 'identity') expect(ch[inp.src]).toBe(v.channels);
          }
        }
      }
    }
  });
});

describe('NAS-Bench-101 cell plan and network widths', () => {
  it('describes what each vertex sums and the output concat', () => {
    // input → 1 (conv3x3) → 2 (maxpool) → out; input → 3 (conv1x1) → out; input → out; 1 → 3
    const spec: Nb101Spec = {
      matrix: [
        [0, 1, 0, 1, 1],
        [0, 0, 1, 1, 0],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0],
      ],
      ops: ['input', C3, MP, C1, 'output'],
    };
    const plan = nb101CellPlan(spec, 128, 129);
    expect(plan.vertexChannels).toEqual([128, 65, 65, 64, 129]);
    expect(plan.vertices).toEqual([
      { vertex: 1, op: C3, channels: 65, inputs: [{ src: 0, kind: 'project' }] },
      { vertex: 2, op: MP, channels: 65, inputs: [{ src: 1, kind: 'identity' }] },
      {
        vertex: 3,
        op: C1,
        channels: 64,
        inputs: [
          { src: 1, kind: 'truncate' },
          { src: 0, kind: 'project' },
        ],
      },
    ]);
    expect(plan.outputConcat).toEqual([2, 3]);
    expect(plan.outputInputProjection).toBe(true);
    expect(() =>
      nb101CellPlan(
        {
          matrix: [
            [0, 0],
            [0, 0],
          ],
          ops: ['input', 'output'],
        },
        8,
        8,
      ),
    ).toThrow(/invalid/);
  });

  it('gives the NAS-Bench-101 network cell widths', () => {
    const slots = nb101NetworkCellChannels();
    expect(slots.map((s) => [s.inChannels, s.outChannels, s.downsampleBefore])).toEqual([
      [128, 128, false],
      [128, 128, false],
      [128, 128, false],
      [128, 256, true],
      [256, 256, false],
      [256, 256, false],
      [256, 512, true],
      [512, 512, false],
      [512, 512, false],
    ]);
  });
});
