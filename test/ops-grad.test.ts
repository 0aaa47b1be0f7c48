/**
 * Every gradient rule of the op library against central finite differences,
 * run on onnxruntime's CPU EP (test/helpers/gradcheck.ts).
 *
 * Tolerances. The checker reports max |fd − analytic| / max(1, |fd|) and sums
 * the loss Σ y⊙R in float64, so the float32 error left in a central difference
 * is the rounding of the few y elements a perturbation moves: ≈ 6e-8·|y|/h,
 * i.e. ~1e-5 at h = 1e-2 for |y| ~ 1–10.
 *  - LINEAR: ops linear in the perturbed input (data movement, Add/Sub/Sum,
 *    Mul/MatMul/Gemm/Conv in one operand, pools, ReduceSum/Mean): a central
 *    difference is exact in exact arithmetic, so only rounding remains.
 *    Asserted < 1e-3 (≈ 100× the rounding; a wrong rule is off by O(1)).
 *  - SMOOTH: nonlinear ops add the truncation error h²/6·|f'''|·|R|, ≲ 1e-4
 *    at h = 1e-2 for the inputs used here (|f'''| ≲ 10) plus the rounding
 *    of curved ops (Exp, Reciprocal...). Asserted < 3e-3.
 *  - COMPOSITE: softmax-weighted mixtures and batch norm, whose outputs
 *    are sums of many rounded products; asserted < 3e-3.
 * Observed (seeded, CPU EP): LINEAR ≤ 1.4e-4, SMOOTH ≤ 1.2e-3 (ReduceSumSquare
 * of a large sum, pure rounding), COMPOSITE ≤ 1e-4; a wrong rule gives ≥ 5e-2
 * (see 'the checker itself').
 * Ops with kinks (Relu, Abs, MaxPool) get inputs at least 1.5·h away from the
 * kink / from ties, so the difference never straddles it.
 * Every check also asserts max |fd| > 0.1 (≥ 30× the tolerance) so no case
 * passes as 0 = 0 or on gradients too small to expose a wrong rule.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { A, type Graph, type Lowering, type Value, tensorOf } from '../graph/ir.js';
import { Rng } from '../graph/rng.js';
import * as ops from '../graph/ops/index.js';
import { getOp, registeredOps } from '../graph/ops/index.js';
import type { OpDef } from '../graph/ops/registry.js';
import { gradCheck, type GradCheckOptions, type GradInput, type GradCheckResult } from './helpers/gradcheck.js';
import { loweringFor, nchwcBlockSize } from '../train/runtime/session.js';

const LINEAR = 1e-3;
const SMOOTH = 3e-3;
const COMPOSITE = 3e-3;

const rng = new Rng(20240611);
const sz = (shape: number[]): number => shape.reduce((p, d) => p * d, 1);
const normal = (shape: number[], s = 1): Float32Array =>
  Float32Array.from({ length: sz(shape) }, () => s * rng.normal());
/** |x| in [lo, hi], random sign: keeps kinks (Relu/Abs at 0) and poles well away. */
const away = (shape: number[], lo = 0.2, hi = 1.5): Float32Array =>
  Float32Array.from({ length: sz(shape) }, () => (rng.next() < 0.5 ? -1 : 1) * rng.uniform(lo, hi));
const positive = (shape: number[], lo = 0.5, hi = 2): Float32Array =>
  Float32Array.from({ length: sz(shape) }, () => rng.uniform(lo, hi));
/** Distinct values spaced by `step` (a scaled random permutation, never 0): unique argmax, no ReLU kink. */
const distinct = (shape: number[], step = 0.05): Float32Array => {
  const n = sz(shape);
  const p = rng.permutation(n);
  return Float32Array.from(p, (v) => (v - Math.floor(n / 2) + 0.3) * step);
};
const inp = (name: string, shape: number[], data?: Float32Array, check = true): GradInput => ({
  name,
  shape,
  data: data ?? normal(shape),
  check,
});

interface Row {
  label: string;
  op: string;
  rel: number;
  abs: number;
  n: number;
  gradNodes: number;
}
const rows: Row[] = [];
const covered = new Set<string>();

async function check(
  op: string,
  label: string,
  inputs: GradInput[],
  build: (g: Graph, xs: Value[]) => Value | Value[],
  tol: number,
  opts: GradCheckOptions = {},
): Promise<GradCheckResult> {
  const r = await gradCheck(inputs, build, opts);
  for (const o of r.forwardOps) covered.add(o);
  rows.push({ label: `${op} ${label}`, op, rel: r.maxRelErr, abs: r.maxAbsErr, n: r.checked, gradNodes: r.gradNodes });
  expect(r.checked).toBeGreaterThan(0);
  expect(r.maxAbsGrad, `${op} ${label}: gradient too small to tell a wrong rule`).toBeGreaterThan(0.1);
  expect(r.maxRelErr, `${op} ${label}: worst ${JSON.stringify(r.worst)}`).toBeLessThan(tol);
  return r;
}

const boolConst = (g: Graph, shape: number[]): Value =>
  g.constant(
    tensorOf(
      'bool',
      shape,
      Array.from({ length: sz(shape) }, (_, i) => ((i * 7) % 3 !== 0 ? 1 : 0)),
    ),
    'cond',
  );

// ---------------------------------------------------------------------------------------------
describe('elementwise gradients', () => {
  const BCAST: [string, number[], number[]][] = [
    ['same shape', [2, 3, 4], [2, 3, 4]],
    ['[2,3,4] with [3,1]', [2, 3, 4], [3, 1]],
    ['[2,3,4] with [1]', [2, 3, 4], [1]],
    ['[2,3,4] with scalar', [2, 3, 4], []],
    ['[3,1] with [1,4] (both broadcast)', [3, 1], [1, 4]],
    ['scalar with [2,3]', [], [2, 3]],
  ];
  for (const [op, emit] of [
    ['Add', ops.add],
    ['Sub', ops.sub],
    ['Mul', ops.mul],
  ] as const) {
    for (const [label, sa, sb] of BCAST) {
      it(`${op} ${label}`, async () => {
        await check(op, label, [inp('a', sa), inp('b', sb)], (g, [a, b]) => emit(g, a!, b!), LINEAR);
      });
    }
  }
  for (const [label, sa, sb] of BCAST) {
    it(`Div ${label}`, async () => {
      await check(
        'Div',
        label,
        [inp('a', sa), inp('b', sb, away(sb, 0.5, 2))],
        (g, [a, b]) => ops.div(g, a!, b!),
        SMOOTH,
      );
    });
  }
  it('Mul of a value by itself (both operands one value)', async () => {
    await check('Mul', 'x⊙x', [inp('x', [3, 4])], (g, [x]) => ops.mul(g, x!, x!), LINEAR);
  });
  it('Add: gradient to one operand only', async () => {
    await check(
      'Add',
      'one operand checked',
      [inp('a', [2, 3, 4]), inp('b', [3, 1], undefined, false)],
      (g, [a, b]) => ops.add(g, a!, b!),
      LINEAR,
    );
  });

  for (const [op, emit] of [
    ['Min', ops.min],
    ['Max', ops.max],
  ] as const) {
    // a ≡ 0.03 and b ≡ 0.08 (mod 0.1): |a − b| ≥ 0.05 > h, so no difference straddles a switch
    it(`${op} with broadcasting (operands never within h)`, async () => {
      for (const [label, sa, sb] of BCAST) {
        const b = distinct(sb, 0.1).map((v) => v + 0.05);
        await check(
          op,
          label,
          [inp('a', sa, distinct(sa, 0.1)), inp('b', sb, b)],
          (g, [x, y]) => emit(g, x!, y!),
          LINEAR,
        );
      }
    });
  }
  it(`Max against a constant (clip)`, async () => {
    await check(
      'Max',
      'x vs scalar const 0.25',
      [inp('x', [3, 4], distinct([3, 4], 0.1))],
      (g, [x]) => ops.max(g, x!, g.scalar(0.25)),
      LINEAR,
    );
  });

  it('Where with broadcast cond/branches', async () => {
    await check(
      'Where',
      '[3,1] cond, [2,3,4] and [4]',
      [inp('a', [2, 3, 4]), inp('b', [4])],
      (g, [a, b]) => ops.where(g, boolConst(g, [3, 1]), a!, b!),
      LINEAR,
    );
    await check(
      'Where',
      '[2,3,4] cond, scalar and [3,4]',
      [inp('a', []), inp('b', [3, 4])],
      (g, [a, b]) => ops.where(g, boolConst(g, [2, 3, 4]), a!, b!),
      LINEAR,
    );
  });

  it('Sum (variadic) with broadcasting and a repeated operand', async () => {
    await check(
      'Sum',
      '[2,3,4]+[3,1]+[]',
      [inp('a', [2, 3, 4]), inp('b', [3, 1]), inp('c', [])],
      (g, [a, b, c]) => ops.sum(g, [a!, b!, c!]),
      LINEAR,
    );
    await check('Sum', 'a+b+a', [inp('a', [2, 3]), inp('b', [1, 3])], (g, [a, b]) => ops.sum(g, [a!, b!, a!]), LINEAR);
  });

  it('Pow with constant exponents', async () => {
    for (const p of [2, 3, 0.5, -1, 1.5]) {
      await check('Pow', `p=${p}`, [inp('x', [3, 4], positive([3, 4]))], (g, [x]) => ops.pow(g, x!, p), SMOOTH);
    }
    await check('Pow', 'p=3, negative x', [inp('x', [3, 4], away([3, 4]))], (g, [x]) => ops.pow(g, x!, 3), SMOOTH);
  });

  const UNARY: [string, (g: Graph, x: Value) => Value, (s: number[]) => Float32Array, number][] = [
    ['Neg', ops.neg, (s) => normal(s), LINEAR],
    ['Identity', ops.identity, (s) => normal(s), LINEAR],
    ['Cast', (g, x) => ops.cast(g, x, 'float32'), (s) => normal(s), LINEAR],
    ['Relu', ops.relu, (s) => away(s, 0.1, 2), LINEAR],
    ['Abs', ops.abs, (s) => away(s, 0.1, 2), LINEAR],
    ['Exp', ops.exp, (s) => normal(s), SMOOTH],
    ['Log', ops.log, (s) => positive(s, 0.3, 3), SMOOTH],
    ['Sqrt', ops.sqrt, (s) => positive(s, 0.3, 3), SMOOTH],
    ['Reciprocal', ops.reciprocal, (s) => away(s, 0.4, 2), SMOOTH],
    ['Sigmoid', ops.sigmoid, (s) => normal(s, 2), SMOOTH],
    ['Tanh', ops.tanh, (s) => normal(s), SMOOTH],
  ];
  it('Sign (zero gradient): x·sign(x) has gradient sign(x)', async () => {
    const r = await check(
      'Sign',
      'x·sign(x)',
      [inp('x', [3, 4], away([3, 4], 0.1, 2))],
      (g, [x]) => ops.mul(g, x!, g.op('Sign', [x!])),
      LINEAR,
    );
    expect(r.gradOps.Sign ?? 0).toBe(0);
  });
  for (const [op, emit, gen, tol] of UNARY) {
    it(`${op}`, async () => {
      const shape = [2, 3, 4];
      const r = await check(op, '[2,3,4]', [inp('x', shape, gen(shape))], (g, [x]) => emit(g, x!), tol);
      if (op === 'Identity' || op === 'Cast') expect(r.gradOps[op] ?? 0).toBe(0); // pass-through: no node
    });
  }
});

// ---------------------------------------------------------------------------------------------
describe('data-movement gradients', () => {
  it('Reshape', async () => {
    await check('Reshape', '[2,3,4]→[4,-1]', [inp('x', [2, 3, 4])], (g, [x]) => ops.reshape(g, x!, [4, -1]), LINEAR);
    await check('Reshape', '[2,3,4]→[0,12]', [inp('x', [2, 3, 4])], (g, [x]) => ops.reshape(g, x!, [0, 12]), LINEAR);
  });
  it('Transpose', async () => {
    await check(
      'Transpose',
      'perm [2,0,1]',
      [inp('x', [2, 3, 4])],
      (g, [x]) => ops.transpose(g, x!, [2, 0, 1]),
      LINEAR,
    );
    await check('Transpose', 'default (reverse)', [inp('x', [2, 3, 4])], (g, [x]) => g.op('Transpose', [x!]), LINEAR);
  });
  it('Concat: every input, a subset, negative axis', async () => {
    const xs = () => [inp('a', [2, 1, 3]), inp('b', [2, 4, 3]), inp('c', [2, 2, 3])];
    await check('Concat', 'axis 1, all inputs', xs(), (g, v) => ops.concat(g, v, 1), LINEAR);
    const sub = xs();
    sub[1]!.check = false;
    await check('Concat', 'axis 1, only a and c', sub, (g, v) => ops.concat(g, v, 1), LINEAR);
    const one = xs();
    one[0]!.check = false;
    one[2]!.check = false;
    await check('Concat', 'axis 1, only b', one, (g, v) => ops.concat(g, v, 1), LINEAR);
    await check(
      'Concat',
      'axis -1',
      [inp('a', [2, 3, 1]), inp('b', [2, 3, 2])],
      (g, v) => ops.concat(g, v, -1),
      LINEAR,
    );
    await check('Concat', 'the same value twice', [inp('a', [2, 3])], (g, [a]) => ops.concat(g, [a!, a!], 0), LINEAR);
  });
  it('Split: all outputs used, some unused', async () => {
    await check('Split', 'all parts', [inp('x', [2, 7, 3])], (g, [x]) => ops.split(g, x!, [2, 4, 1], 1), LINEAR);
    await check(
      'Split',
      'middle part only',
      [inp('x', [2, 7, 3])],
      (g, [x]) => ops.split(g, x!, [2, 4, 1], 1)[1]!,
      LINEAR,
    );
    await check(
      'Split',
      'first and last, axis -1',
      [inp('x', [2, 3, 6])],
      (g, [x]) => {
        const p = ops.split(g, x!, [1, 2, 3], -1);
        return [p[0]!, p[2]!];
      },
      LINEAR,
    );
  });
  it('Slice: negative and clamped bounds', async () => {
    const s = [3, 5, 6];
    await check('Slice', 'plain', [inp('x', s)], (g, [x]) => ops.slice(g, x!, [1, 2], [3, 5], [1, 2]), LINEAR);
    await check(
      'Slice',
      'negative starts/ends',
      [inp('x', s)],
      (g, [x]) => ops.slice(g, x!, [-2, -4], [-1, 100], [1, 2]),
      LINEAR,
    );
    await check(
      'Slice',
      'clamped (start < −dim, end > dim), negative axis',
      [inp('x', s)],
      (g, [x]) => ops.slice(g, x!, [-100, 1], [1_000_000_000, 2], [-1, 0]),
      LINEAR,
    );
    await check(
      'Slice',
      'no axes input',
      [inp('x', s)],
      (g, [x]) => g.op('Slice', [x!, g.int64s([1, 0]), g.int64s([2, -1])]),
      LINEAR,
    );
  });
  it('Pad', async () => {
    await check(
      'Pad',
      'begin/end pads, value 0',
      [inp('x', [2, 3, 4])],
      (g, [x]) => ops.pad(g, x!, [0, 1, 2, 1, 0, 3]),
      LINEAR,
    );
    await check('Pad', 'value 1.5', [inp('x', [2, 3])], (g, [x]) => ops.pad(g, x!, [1, 1, 0, 2], 1.5), LINEAR);
  });
  it('Squeeze / Unsqueeze / Flatten', async () => {
    await check('Squeeze', 'axes [1,-1]', [inp('x', [3, 1, 4, 1])], (g, [x]) => ops.squeeze(g, x!, [1, -1]), LINEAR);
    await check('Unsqueeze', 'axes [0,3]', [inp('x', [3, 4])], (g, [x]) => ops.unsqueeze(g, x!, [0, 3]), LINEAR);
    await check('Unsqueeze', 'axis -1', [inp('x', [3, 4])], (g, [x]) => ops.unsqueeze(g, x!, [-1]), LINEAR);
    for (const axis of [0, 1, 2]) {
      await check('Flatten', `axis ${axis}`, [inp('x', [2, 3, 4])], (g, [x]) => ops.flatten(g, x!, axis), LINEAR);
    }
  });
  it('Expand', async () => {
    await check('Expand', '[3,1]→[2,3,4]', [inp('x', [3, 1])], (g, [x]) => ops.expand(g, x!, [2, 3, 4]), LINEAR);
    await check('Expand', '[1]→[2,3]', [inp('x', [1])], (g, [x]) => ops.expand(g, x!, [2, 3]), LINEAR);
    await check('Expand', '[2,1,4] by [3,1]', [inp('x', [2, 1, 4])], (g, [x]) => ops.expand(g, x!, [3, 1]), LINEAR);
  });
  it('Gather with 1-D indices (repeats, negative), axis 0 and 1', async () => {
    const idx = (g: Graph, xs: number[]) => g.constant(tensorOf('int64', [xs.length], xs), 'idx');
    await check(
      'Gather',
      'axis 0',
      [inp('x', [5, 3])],
      (g, [x]) => ops.gather(g, x!, idx(g, [2, 0, 2, 4, -1]), 0),
      LINEAR,
    );
    await check('Gather', 'axis 1', [inp('x', [2, 5, 3])], (g, [x]) => ops.gather(g, x!, idx(g, [1, 1, 3]), 1), LINEAR);
    await check('Gather', 'axis -1', [inp('x', [2, 4])], (g, [x]) => ops.gather(g, x!, idx(g, [3, 0]), -1), LINEAR);
    await check(
      'Gather',
      'scalar index, axis 1',
      [inp('x', [2, 4, 3])],
      (g, [x]) => ops.gather(g, x!, g.constant(tensorOf('int64', [], [2]), 'idx'), 1),
      LINEAR,
    );
    await check(
      'Gather',
      '2-D indices, axis 0',
      [inp('x', [5, 3])],
      (g, [x]) => ops.gather(g, x!, g.constant(tensorOf('int64', [2, 3], [0, 4, 0, 1, 4, 4]), 'idx'), 0),
      LINEAR,
    );
  });
});

// ---------------------------------------------------------------------------------------------
describe('reductions, products, softmax', () => {
  for (const [op, emit, tol] of [
    ['ReduceSum', ops.reduceSum, LINEAR],
    ['ReduceMean', ops.reduceMean, LINEAR],
    ['ReduceSumSquare', ops.reduceSumSquare, SMOOTH],
  ] as const) {
    it(`${op} keepdims 0 and 1`, async () => {
      for (const keep of [true, false]) {
        await check(op, `axes [1] keep ${+keep}`, [inp('x', [2, 3, 4])], (g, [x]) => emit(g, x!, [1], keep), tol);
        await check(
          op,
          `axes [0,-1] keep ${+keep}`,
          [inp('x', [2, 3, 4])],
          (g, [x]) => emit(g, x!, [0, -1], keep),
          tol,
        );
        // one output element: scaled so its gradient is large enough to tell a wrong rule
        await check(
          op,
          `all axes keep ${+keep}`,
          [inp('x', [2, 3, 4])],
          (g, [x]) => ops.mul(g, emit(g, x!, [0, 1, 2], keep), g.scalar(10)),
          tol,
        );
      }
      await check(
        op,
        'axes omitted (all)',
        [inp('x', [2, 3])],
        (g, [x]) => ops.mul(g, g.op(op, [x!], { keepdims: A.i(0) }), g.scalar(10)),
        tol,
      );
      await check(
        op,
        'empty axes (all)',
        [inp('x', [2, 3])],
        (g, [x]) => ops.mul(g, emit(g, x!, [], true), g.scalar(10)),
        tol,
      );
    });
  }
  it('GlobalAveragePool', async () => {
    // ×10: each input gets R/20, too small on its own to tell a wrong rule
    const r = await check(
      'GlobalAveragePool',
      '[2,3,4,5] (×10)',
      [inp('x', [2, 3, 4, 5])],
      (g, [x]) => ops.mul(g, ops.globalAvgPool(g, x!), g.scalar(10)),
      LINEAR,
    );
    expect(r.gradOps.Mul).toBe(3); // the loss's, the ×10's and the rule's single Mul
  });
  it('MatMul 2-D and batched with broadcast batch dims', async () => {
    const r2 = await check(
      'MatMul',
      '[3,4]×[4,5]',
      [inp('a', [3, 4]), inp('b', [4, 5])],
      (g, [a, b]) => ops.matmul(g, a!, b!),
      LINEAR,
    );
    expect(r2.gradOps.Transpose ?? 0).toBe(0); // 2-D: Gemm with transpose flags
    await check(
      'MatMul',
      '[2,3,4]×[4,5]',
      [inp('a', [2, 3, 4]), inp('b', [4, 5])],
      (g, [a, b]) => ops.matmul(g, a!, b!),
      LINEAR,
    );
    await check(
      'MatMul',
      '[3,4]×[2,4,5]',
      [inp('a', [3, 4]), inp('b', [2, 4, 5])],
      (g, [a, b]) => ops.matmul(g, a!, b!),
      LINEAR,
    );
    await check(
      'MatMul',
      '[2,1,3,4]×[5,4,2]',
      [inp('a', [2, 1, 3, 4]), inp('b', [5, 4, 2])],
      (g, [a, b]) => ops.matmul(g, a!, b!),
      LINEAR,
    );
    await check(
      'MatMul',
      '[1,3,4]×[2,4,2]',
      [inp('a', [1, 3, 4]), inp('b', [2, 4, 2])],
      (g, [a, b]) => ops.matmul(g, a!, b!),
      LINEAR,
    );
    await check('MatMul', 'x×x', [inp('a', [3, 3])], (g, [a]) => ops.matmul(g, a!, a!), LINEAR);
  });
  it('Gemm: all transA/transB, bias [N], [M,N], none', async () => {
    const M = 3;
    const K = 4;
    const N = 5;
    for (const ta of [false, true]) {
      for (const tb of [false, true]) {
        for (const c of [[N], [M, N], [1, N], null] as (number[] | null)[]) {
          const xs = [inp('a', ta ? [K, M] : [M, K]), inp('b', tb ? [N, K] : [K, N])];
          if (c) xs.push(inp('c', c));
          await check(
            'Gemm',
            `tA=${+ta} tB=${+tb} C=${c ? `[${c}]` : 'none'}`,
            xs,
            (g, [a, b, cc]) => ops.gemm(g, a!, b!, cc ?? null, ta, tb),
            LINEAR,
          );
        }
      }
    }
  });
  it('Einsum (two operands)', async () => {
    const E: [string, number[], number[], boolean?][] = [
      ['ij,jk->ik', [3, 4], [4, 5]],
      ['nij,njk->nik', [2, 3, 4], [2, 4, 2]],
      ['bchw,bc->bhw', [2, 3, 2, 2], [2, 3]],
      ['ij,ij->i', [3, 4], [3, 4]],
      ['i,j->ij', [3], [4]],
      ['ab,bc->a', [3, 4], [4, 2], false], // c is summed out of b alone: only a's gradient exists
    ];
    for (const [eq, sa, sb, checkB] of E) {
      await check(
        'Einsum',
        eq,
        [inp('a', sa), inp('b', sb, undefined, checkB ?? true)],
        (g, [a, b]) => ops.einsum(g, eq, a!, b!),
        LINEAR,
      );
    }
  });
  for (const [op, emit] of [
    ['Softmax', ops.softmax],
    ['LogSoftmax', ops.logSoftmax],
  ] as const) {
    it(`${op} axis -1 and 1`, async () => {
      await check(op, 'axis -1', [inp('x', [2, 3, 4])], (g, [x]) => emit(g, x!, -1), SMOOTH);
      await check(op, 'axis 1', [inp('x', [2, 3, 4])], (g, [x]) => emit(g, x!, 1), SMOOTH);
      await check(op, 'axis 0', [inp('x', [3, 2])], (g, [x]) => emit(g, x!, 0), SMOOTH);
    });
  }
});

// ---------------------------------------------------------------------------------------------
describe('conv and pool gradients', () => {
  interface ConvCase {
    label: string;
    x: number[];
    w: number[];
    o: ops.ConvOpts;
    bias?: boolean;
  }
  const CONV: ConvCase[] = [
    { label: 'plain 3×3', x: [2, 3, 6, 6], w: [4, 3, 3, 3], o: {} },
    { label: '1×1', x: [2, 3, 4, 4], w: [5, 3, 1, 1], o: {} },
    { label: 'padded 3×3 pad 1', x: [2, 3, 5, 5], w: [4, 3, 3, 3], o: { pad: 1 } },
    { label: 'stride 2 pad 1, odd input 7', x: [2, 3, 7, 7], w: [4, 3, 3, 3], o: { stride: 2, pad: 1 } },
    { label: 'stride 2 pad 1, even input 8', x: [2, 3, 8, 8], w: [4, 3, 3, 3], o: { stride: 2, pad: 1 } },
    { label: 'stride 2 no pad, even input 8', x: [1, 2, 8, 8], w: [3, 2, 3, 3], o: { stride: 2 } },
    { label: 'stride 3, 1×1 (input rows skipped)', x: [1, 2, 7, 7], w: [3, 2, 1, 1], o: { stride: 3 } },
    { label: 'dilation 2 pad 2 (dil_conv_3x3)', x: [2, 3, 7, 7], w: [4, 3, 3, 3], o: { dilation: 2, pad: 2 } },
    { label: '5×5 dilation 2 pad 4 (dil_conv_5x5)', x: [1, 2, 9, 9], w: [3, 2, 5, 5], o: { dilation: 2, pad: 4 } },
    {
      label: 'dilation 2 stride 2 pad 2, even input',
      x: [1, 2, 8, 8],
      w: [3, 2, 3, 3],
      o: { dilation: 2, pad: 2, stride: 2 },
    },
    { label: 'group 2, Cin 4 Cout 6', x: [2, 4, 5, 5], w: [6, 2, 3, 3], o: { group: 2, pad: 1 } },
    { label: 'group 2, stride 2, odd input', x: [2, 4, 7, 7], w: [6, 2, 3, 3], o: { group: 2, pad: 1, stride: 2 } },
    { label: 'depthwise group=C', x: [2, 3, 6, 6], w: [3, 1, 3, 3], o: { group: 3, pad: 1 } },
    {
      label: 'depthwise 5×5 dil 2 stride 2',
      x: [2, 3, 8, 8],
      w: [3, 1, 5, 5],
      o: { group: 3, pad: 4, dilation: 2, stride: 2 },
    },
    { label: 'depthwise multiplier Cout=2·Cin', x: [2, 3, 5, 5], w: [6, 1, 3, 3], o: { group: 3, pad: 1 } },
    { label: 'with bias', x: [2, 3, 5, 5], w: [4, 3, 3, 3], o: { pad: 1 }, bias: true },
    {
      label: 'grouped with bias, stride 2',
      x: [2, 4, 6, 6],
      w: [6, 2, 3, 3],
      o: { group: 2, pad: 1, stride: 2 },
      bias: true,
    },
  ];
  for (const c of CONV) {
    it(`Conv ${c.label}`, async () => {
      const xs = [inp('x', c.x), inp('w', c.w, normal(c.w, 0.5))];
      if (c.bias) xs.push(inp('b', [c.w[0]!]));
      await check('Conv', c.label, xs, (g, [x, w, b]) => ops.conv(g, x!, w!, c.o, b ?? null), LINEAR, { samples: 150 });
    });
  }
  it('Conv: non-square kernel and stride', async () => {
    await check(
      'Conv',
      'kernel 1×3, strides [2,1], pads [0,1,0,1]',
      [inp('x', [2, 2, 5, 6]), inp('w', [3, 2, 1, 3])],
      (g, [x, w]) =>
        g.op('Conv', [x!, w!], {
          kernel_shape: A.ints([1, 3]),
          strides: A.ints([2, 1]),
          pads: A.ints([0, 1, 0, 1]),
          dilations: A.ints([1, 1]),
          group: A.i(1),
        }),
      LINEAR,
    );
  });
  it('Conv: asymmetric pads (ConvTranspose stays symmetric for CUDA)', async () => {
    for (const [pads, stride, hw] of [
      [[0, 0, 1, 1], 2, 6],
      [[1, 0, 0, 1], 2, 7],
      [[2, 1, 1, 2], 1, 5],
    ] as [number[], number, number][]) {
      const r = await check(
        'Conv',
        `pads [${pads}] stride ${stride} input ${hw}`,
        [inp('x', [2, 2, hw, hw]), inp('w', [3, 2, 3, 3])],
        (g, [x, w]) =>
          g.op('Conv', [x!, w!], {
            kernel_shape: A.ints([3, 3]),
            strides: A.ints([stride, stride]),
            pads: A.ints(pads),
            dilations: A.ints([1, 1]),
            group: A.i(1),
          }),
        LINEAR,
      );
      expect(r.gradOps.Slice).toBeGreaterThanOrEqual(1); // crops what the symmetric ConvTranspose pads leave
    }
  });
  it('Conv: input gradient only / weight gradient only', async () => {
    const r1 = await check(
      'Conv',
      'dx only',
      [inp('x', [2, 3, 5, 5]), inp('w', [4, 3, 3, 3], undefined, false)],
      (g, [x, w]) => ops.conv(g, x!, w!, { pad: 1, stride: 2 }),
      LINEAR,
    );
    expect(r1.gradOps.Conv ?? 0).toBe(0);
    expect(r1.gradOps.ConvTranspose).toBe(1);
    const r2 = await check(
      'Conv',
      'dw only',
      [inp('x', [2, 3, 5, 5], undefined, false), inp('w', [4, 3, 3, 3])],
      (g, [x, w]) => ops.conv(g, x!, w!, { pad: 1, stride: 2 }),
      LINEAR,
    );
    expect(r2.gradOps.ConvTranspose ?? 0).toBe(0);
    expect(r2.gradOps.Conv).toBe(1);
  });

  const CT: { label: string; x: number[]; w: number[]; o: ops.ConvTransposeOpts; bias?: boolean }[] = [
    { label: 'stride 1 pad 1', x: [2, 3, 5, 5], w: [3, 4, 3, 3], o: { pad: 1 } },
    { label: 'stride 2 pad 1', x: [2, 3, 4, 4], w: [3, 2, 3, 3], o: { stride: 2, pad: 1 } },
    {
      label: 'stride 2 pad 1 output_padding 1',
      x: [2, 3, 4, 4],
      w: [3, 2, 3, 3],
      o: { stride: 2, pad: 1, outputPadding: 1 },
    },
    {
      label: 'stride 2 dilation 2 pad 2 output_padding 1',
      x: [1, 2, 4, 4],
      w: [2, 3, 3, 3],
      o: { stride: 2, pad: 2, dilation: 2, outputPadding: 1 },
    },
    {
      label: 'group 2, stride 2, with bias',
      x: [2, 4, 3, 3],
      w: [4, 3, 3, 3],
      o: { stride: 2, pad: 1, group: 2, outputPadding: 1 },
      bias: true,
    },
    { label: 'stride 1 with bias', x: [2, 3, 4, 4], w: [3, 2, 3, 3], o: { pad: 1 }, bias: true },
  ];
  for (const c of CT) {
    it(`ConvTranspose ${c.label}`, async () => {
      const xs = [inp('x', c.x), inp('w', c.w, normal(c.w, 0.5))];
      if (c.bias) xs.push(inp('b', [c.w[1]! * (c.o.group ?? 1)]));
      await check(
        'ConvTranspose',
        c.label,
        xs,
        (g, [x, w, b]) => ops.convTranspose(g, x!, w!, c.o, b ?? null),
        LINEAR,
        { samples: 150 },
      );
    });
  }

  const POOL: { label: string; x: number[]; k: number; s: number; p: number }[] = [
    { label: '3×3 s1 p1', x: [2, 3, 5, 5], k: 3, s: 1, p: 1 },
    { label: '3×3 s2 p1 odd input 7', x: [2, 3, 7, 7], k: 3, s: 2, p: 1 },
    { label: '3×3 s2 p1 even input 8', x: [2, 2, 8, 8], k: 3, s: 2, p: 1 },
    { label: '2×2 s2 p0', x: [1, 2, 6, 6], k: 2, s: 2, p: 0 },
  ];
  it('AveragePool with asymmetric pads (gradient ConvTranspose symmetric)', async () => {
    for (const cip of [0, 1]) {
      await check(
        'AveragePool',
        `3×3 s2 pads [0,0,1,1] cip ${cip}`,
        [inp('x', [1, 2, 6, 6])],
        (g, [x]) =>
          g.op('AveragePool', [x!], {
            kernel_shape: A.ints([3, 3]),
            strides: A.ints([2, 2]),
            pads: A.ints([0, 0, 1, 1]),
            count_include_pad: A.i(cip),
          }),
        LINEAR,
      );
    }
  });
  it('AveragePool 5×5 stride 3 pad 0 (DARTS auxiliary head): divisor folded into the kernel', async () => {
    const r = await check(
      'AveragePool',
      '5×5 s3 p0',
      [inp('x', [2, 3, 8, 8])],
      (g, [x]) => ops.avgPool(g, x!, 5, 3, 0, false),
      LINEAR,
    );
    expect(r.gradOps.ConvTranspose).toBe(1);
    expect(r.gradOps.Mul).toBe(1); // only the loss's
  });
  for (const c of POOL) {
    for (const training of [true, false]) {
      it(`MaxPool ${c.label} ${training ? 'training (indices output)' : 'inference (indices recomputed)'}`, async () => {
        const r = await check(
          'MaxPool',
          `${c.label} ${training ? 'train' : 'infer'}`,
          [inp('x', c.x, distinct(c.x))],
          (g, [x]) => {
            const y = ops.maxPool(g, x!, c.k, c.s, c.p);
            expect(g.producerOf(y.name)!.outputs.length).toBe(training ? 2 : 1);
            return y;
          },
          LINEAR,
          { training },
        );
        expect(r.gradOps.MaxPool ?? 0).toBe(training ? 0 : 1);
      });
    }
    for (const includePad of [false, true]) {
      it(`AveragePool ${c.label} count_include_pad ${+includePad}`, async () => {
        await check(
          'AveragePool',
          `${c.label} cip ${+includePad}`,
          [inp('x', c.x)],
          (g, [x]) => ops.avgPool(g, x!, c.k, c.s, c.p, includePad),
          LINEAR,
        );
      });
    }
  }
});

// ---------------------------------------------------------------------------------------------
describe('composites', () => {
  it('BatchNormTrain (training-form BN composite, fused rule): gradients to x, γ, β', async () => {
    const xs = [4, 3, 4, 4];
    await check(
      'BatchNormTrain',
      'affine',
      [inp('x', xs, normal(xs, 1)), inp('gamma', [3], normal([3], 0.5)), inp('beta', [3], normal([3], 0.5))],
      (g, [x, gm, bt]) => ops.batchNormTrain(g, x!, gm!, bt!, 1e-5).y,
      COMPOSITE,
    );
  });
  it('Gated (If region, recomputing backward): relu → conv → BN → avg-pool + conv(max-pool), gradients to x, w, γ, β', async () => {
    const xs = [2, 3, 5, 5];
    await check(
      'Gated',
      'conv-bn-pool region',
      [
        inp('x', xs, distinct(xs, 0.05)),
        inp('w', [4, 3, 3, 3], normal([4, 3, 3, 3], 0.3)),
        inp('gamma', [4], normal([4], 0.5)),
        inp('beta', [4], normal([4], 0.5)),
      ],
      (g, [x, w, gm, bt]) => {
        const on = g.constant(tensorOf('bool', [], [1]), 'on');
        const start = g.nodes.length;
        // (max-pool on x itself: after BN, near-ties would make the differences straddle argmax switches)
        const bn = ops.batchNormTrain(g, ops.conv(g, ops.relu(g, x!), w!, { pad: 1 }), gm!, bt!, 1e-5).y;
        const y = ops.add(
          g,
          ops.avgPool(g, bn, 3, 1, 1, false),
          ops.conv(g, ops.maxPool(g, x!, 3, 1, 1), w!, { pad: 1 }),
        );
        const gated = ops.gateRegion(g, start, y, [on, on]);
        expect(g.nodes.slice(start).map((n) => n.op)).toEqual(['Gated']);
        return gated;
      },
      COMPOSITE,
    );
  });
  it('DARTS MixedOp: Σ_k softmax(α)_k · op_k(x), gradients to α, x and a conv weight', async () => {
    const xShape = [2, 3, 6, 6];
    await check(
      'MixedOp',
      'skip/avg/max/relu-conv',
      [
        inp('x', xShape, distinct(xShape, 0.05)),
        inp('alpha', [4], normal([4], 0.5)),
        inp('w', [3, 3, 3, 3], normal([3, 3, 3, 3], 0.3)),
      ],
      (g, [x, alpha, w]) => {
        const wts = ops.split(g, ops.softmax(g, alpha!, 0), [1, 1, 1, 1], 0);
        const branches = [
          ops.identity(g, x!),
          ops.avgPool(g, x!, 3, 1, 1, false),
          ops.maxPool(g, x!, 3, 1, 1),
          ops.conv(g, ops.relu(g, x!), w!, { pad: 1 }),
        ];
        return ops.sum(
          g,
          branches.map((b, k) => ops.mul(g, wts[k]!, b)),
        );
      },
      COMPOSITE,
      { samples: 120 },
    );
  });
  it('CrossEntropyIgnore (per-pixel, label 255 ignored; fused rule): gradient to the logits', async () => {
    // [N, K, H, W] with a third of the pixels ignored, and [N, K] with one row ignored
    const cases: { label: string; shape: number[]; labels: number[] }[] = [
      {
        label: 'per-pixel [2,4,3,3]',
        shape: [2, 4, 3, 3],
        labels: Array.from({ length: 18 }, (_, i) => (i % 3 === 1 ? 255 : (i * 5) % 4)),
      },
      { label: 'rows [5,3]', shape: [5, 3], labels: [0, 2, 255, 1, 2] },
    ];
    for (const c of cases) {
      const lshape = [c.shape[0]!, ...c.shape.slice(2)];
      const r = await check(
        'CrossEntropyIgnore',
        c.label,
        [inp('logits', c.shape, normal(c.shape, 1.5))],
        (g, [x]) => {
          const labels = g.constant(tensorOf('int64', lshape, c.labels), 'labels');
          // ×10: the mean over ~12 pixels makes each logit's gradient small
          return ops.mul(g, ops.crossEntropyIgnore(g, x!, labels).loss, g.scalar(10));
        },
        SMOOTH,
      );
      expect(r.gradOps.LogSoftmax ?? 0).toBe(0); // the fused rule, not LogSoftmax's own
    }
  });
  it('BatchNormalization inference form (frozen statistics): gradients to x, γ, β', async () => {
    const xs = [2, 3, 4, 4];
    await check(
      'BatchNormalization',
      'inference form',
      [
        inp('x', xs),
        inp('gamma', [3], positive([3])),
        inp('beta', [3]),
        inp('mean', [3], undefined, false),
        inp('var', [3], positive([3]), false),
      ],
      (g, [x, gm, bt, mu, v]) => ops.batchNormInference(g, x!, gm!, bt!, mu!, v!, 1e-3),
      LINEAR,
      { training: false },
    );
  });
  it('batch norm (training form) from standard ops: gradients to x, γ, β', async () => {
    const xShape = [4, 3, 3, 3];
    await check(
      'BatchNorm',
      'ReduceMean/Sub/Mul/Sqrt/Div',
      [inp('x', xShape), inp('gamma', [1, 3, 1, 1], positive([1, 3, 1, 1])), inp('beta', [1, 3, 1, 1])],
      (g, [x, gamma, beta]) => {
        const mean = ops.reduceMean(g, x!, [0, 2, 3]);
        const xc = ops.sub(g, x!, mean);
        const v = ops.reduceMean(g, ops.mul(g, xc, xc), [0, 2, 3]);
        const std = ops.sqrt(g, ops.add(g, v, g.scalar(1e-5)));
        return ops.add(g, ops.mul(g, gamma!, ops.div(g, xc, std)), beta!);
      },
      COMPOSITE,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// The CPU lowering (session.ts loweringFor('cpu')): depthwise convs and their gradients in ORT's
// NCHWc layout (graph/ops/nchwc.ts), and formulations ORT's CPU kernels run in parallel. Each case
// is checked against finite differences under that lowering, and its outputs and gradients
// against the portable form's (same inputs).
const cpuSeen = {
  nchwcForward: 0,
  nchwcDx: 0,
  nchwcDw: 0,
  nchwcDwFromSharedDy: 0,
  dxConvTranspose: 0,
  sumAsAdds: 0,
  pointwiseDxConv: 0,
  pointwiseDwMatMul: 0,
  avgPoolGradNchwc: 0,
  reluMaskMul: 0,
};

const relClose = (u: Float32Array, v: Float32Array): number => {
  let e = 0;
  let m = 0;
  for (let i = 0; i < u.length; i++) {
    e = Math.max(e, Math.abs(u[i]! - v[i]!));
    m = Math.max(m, Math.abs(v[i]!));
  }
  return e / m;
};

/** FD check under `lowering`, and the same outputs and gradients as the portable form. */
async function checkLowered(
  op: string,
  label: string,
  xs: GradInput[],
  build: (g: Graph, vs: Value[]) => Value,
  lowering: Lowering,
): Promise<GradCheckResult> {
  const portable = await gradCheck(xs, build);
  const r = await check(op, `CPU lowering ${label}`, xs, build, LINEAR, { samples: 150, lowering });
  expect(relClose(r.outputs[0]!, portable.outputs[0]!), label).toBeLessThan(1e-5);
  r.analytic.forEach((d, k) => expect(relClose(d, portable.analytic[k]!), label).toBeLessThan(1e-4));
  return r;
}

describe('CPU lowering', () => {
  interface DwCase {
    label: string;
    x: number[];
    k: number;
    o: ops.ConvOpts;
    pads?: number[];
  }
  const cases = (b: number): DwCase[] => [
    { label: `3×3 pad 1, C=${b} (B divides C: dy reordered once)`, x: [2, b, 6, 6], k: 3, o: { pad: 1 } },
    { label: '3×3 pad 1, C=4 (channels padded to the block)', x: [2, 4, 6, 6], k: 3, o: { pad: 1 } },
    { label: `5×5 pad 2, C=${b}`, x: [2, b, 7, 7], k: 5, o: { pad: 2 } },
    { label: '3×3 dilation 2 pad 2 (dil_conv_3x3), C=8', x: [2, 8, 7, 7], k: 3, o: { pad: 2, dilation: 2 } },
    { label: '5×5 dilation 2 pad 4 (dil_conv_5x5), C=4', x: [1, 4, 9, 9], k: 5, o: { pad: 4, dilation: 2 } },
    { label: `3×3 stride 2 pad 1, odd input 7, C=${b}`, x: [2, b, 7, 7], k: 3, o: { pad: 1, stride: 2 } },
    { label: '5×5 dilation 2 stride 2 pad 4, C=4', x: [2, 4, 8, 8], k: 5, o: { pad: 4, stride: 2, dilation: 2 } },
    { label: '3×3 asymmetric pads [1,0,0,1], C=4', x: [2, 4, 6, 6], k: 3, o: {}, pads: [1, 0, 0, 1] },
  ];
  it('the machine has ORT NCHWc kernels (x64: block 8 or 16); CUDA and --portable get standard ops', async () => {
    const b = await nchwcBlockSize();
    if (process.arch === 'x64') expect([8, 16]).toContain(b);
    expect(await loweringFor('cuda')).toEqual({});
    expect(await loweringFor('cpu', true)).toEqual({});
    expect(await loweringFor('cpu')).toEqual(b ? { cpu: true, nchwcBlock: b } : { cpu: true });
  });
  it('depthwise convs in NCHWc: every case', async () => {
    const b = await nchwcBlockSize();
    expect(b).toBeGreaterThan(0);
    for (const c of cases(b)) {
      const ch = c.x[1]!;
      const w = [ch, 1, c.k, c.k];
      const xs = [inp('x', c.x), inp('w', w, normal(w, 0.5))];
      const build = (g: Graph, [x, wv]: Value[]): Value =>
        c.pads
          ? g.op('Conv', [x!, wv!], {
              kernel_shape: A.ints([c.k, c.k]),
              strides: A.ints([1, 1]),
              pads: A.ints(c.pads),
              dilations: A.ints([1, 1]),
              group: A.i(ch),
            })
          : ops.conv(g, x!, wv!, { ...c.o, group: ch });
      const r = await checkLowered('Conv', `NCHWc ${c.label}`, xs, build, { nchwcBlock: b });
      // the forward, dw and (stride 1) dx run as NCHWc convs; stride 2's dx stays a ConvTranspose
      const stride1 = (c.o.stride ?? 1) === 1;
      expect(r.loweredOps.NchwcConv, c.label).toBe(stride1 ? 3 : 2);
      expect(r.loweredOps.ConvTranspose ?? 0, c.label).toBe(stride1 ? 0 : 1);
      expect(r.loweredOps.Conv ?? 0, c.label).toBe(0);
      cpuSeen.nchwcForward++;
      cpuSeen.nchwcDw++;
      if (stride1) cpuSeen.nchwcDx++;
      else cpuSeen.dxConvTranspose++;
      // reorders: x twice (forward, dw), and dy once when shared by dx and dw
      if (stride1 && ch % b === 0) {
        expect(r.loweredOps.NchwcReorderInput, c.label).toBe(3);
        cpuSeen.nchwcDwFromSharedDy++;
      }
    }
  });
  it('Sum as a balanced tree of Adds (one broadcast operand)', async () => {
    const shapes = [
      [2, 3, 4],
      [2, 3, 4],
      [3, 4],
      [2, 3, 4],
      [2, 3, 4],
    ];
    const xs = shapes.map((sh, i) => inp(`x${i}`, sh));
    const r = await checkLowered('Sum', '5 operands', xs, (g, vs) => ops.sum(g, vs), { cpu: true });
    expect(r.loweredOps.Sum ?? 0).toBe(0);
    expect(r.loweredOps.Add).toBeGreaterThanOrEqual(4);
    cpuSeen.sumAsAdds++;
  });
  it('pointwise conv: dx as a Conv by the transposed weights, dw as a batched MatMul', async () => {
    const xs = [inp('x', [3, 8, 5, 5]), inp('w', [6, 8, 1, 1], normal([6, 8, 1, 1], 0.5))];
    const r = await checkLowered('Conv', 'pointwise 8→6', xs, (g, [x, w]) => ops.conv(g, x!, w!), { cpu: true });
    expect(r.gradOps.ConvTranspose ?? 0).toBe(0);
    expect(r.gradOps.Einsum ?? 0).toBe(0);
    expect(r.gradOps.Conv).toBe(1);
    expect(r.gradOps.FusedMatMul).toBe(1);
    cpuSeen.pointwiseDxConv++;
    cpuSeen.pointwiseDwMatMul++;
  });
  it('Relu: the gradient as dy times the mask cast to floats (no Where)', async () => {
    const xs = [inp('x', [2, 3, 4, 5], away([2, 3, 4, 5], 0.1, 2))];
    const r = await checkLowered('Relu', 'mask × dy', xs, (g, [x]) => ops.relu(g, x!), { cpu: true });
    expect(r.gradOps.Where ?? 0).toBe(0);
    expect(r.gradOps.Cast).toBe(1);
    cpuSeen.reluMaskMul++;
  });
  it('AveragePool: the stride-1 gradient as an NCHWc depthwise conv (stride 2 keeps ConvTranspose)', async () => {
    const b = await nchwcBlockSize();
    for (const [stride, hw] of [
      [1, 6],
      [2, 7],
    ] as const) {
      const xs = [inp('x', [2, 8, hw, hw])];
      const r = await checkLowered(
        'AveragePool',
        `3×3 stride ${stride}`,
        xs,
        (g, [x]) => ops.avgPool(g, x!, 3, stride, 1),
        {
          cpu: true,
          nchwcBlock: b,
        },
      );
      expect(r.gradOps.NchwcConv ?? 0).toBe(stride === 1 ? 1 : 0);
      expect(r.gradOps.ConvTranspose ?? 0).toBe(stride === 1 ? 0 : 1);
      if (stride === 1) cpuSeen.avgPoolGradNchwc++;
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('the checker itself', () => {
  it('fails on a wrong gradient rule (Tanh rule replaced by 1 − y)', async () => {
    const def = getOp('Tanh') as { -readonly [K in keyof OpDef]: OpDef[K] };
    const saved = def.grad;
    def.grad = (a) => [ops.mul(a.g, a.dy[0]!, ops.sub(a.g, a.g.scalar(1), a.y[0]!))];
    try {
      const r = await gradCheck([inp('x', [3, 4])], (g, [x]) => ops.tanh(g, x!));
      expect(r.maxRelErr).toBeGreaterThan(0.05);
    } finally {
      def.grad = saved;
    }
  });
  it('flags a kink straddled by the difference (Relu at 0)', async () => {
    const x = normal([3, 4]);
    x[5] = 0.001;
    const r = await gradCheck([inp('x', [3, 4], x)], (g, [v]) => ops.relu(g, v!));
    expect(r.maxRelErr).toBeGreaterThan(0.05);
  });
});

// ops without a rule: boolean/integer results, and two float ops only gradient graphs use
// (autodiff refuses to differentiate through those rather than dropping their gradient)
const NO_GRAD_RULE_EXPECTED = new Set([
  'Greater',
  'Less',
  'Equal',
  'GreaterOrEqual',
  'LessOrEqual',
  'Not',
  'And',
  'ArgMax',
  'ScatterElements',
  'ReduceMax',
  'If',
  'Shape',
  // ORT's NCHWc CPU kernels: emitted only by the CPU lowering (forward lowering, gradient rules), never differentiated
  'NchwcReorderInput',
  'NchwcReorderOutput',
  'NchwcConv',
  'FusedMatMul',
]);

describe('coverage', () => {
  it('every registered op with a gradient rule was checked', () => {
    const withGrad = registeredOps().filter((t) => getOp(t).grad);
    const missing = withGrad.filter((t) => !covered.has(t));
    expect(missing).toEqual([]);
    // every formulation of the CPU lowering was checked
    for (const [k, n] of Object.entries(cpuSeen)) expect(n, `CPU lowering: ${k}`).toBeGreaterThan(0);
    // ops without a rule are exactly the non-differentiable ones
    expect(
      registeredOps()
        .filter((t) => !getOp(t).grad)
        .sort(),
    ).toEqual([...NO_GRAD_RULE_EXPECTED].sort());
  });
});

afterAll(() => {
  const byOp = new Map<string, { rel: number; abs: number; cases: number; n: number }>();
  for (const r of rows) {
    const e = byOp.get(r.op) ?? { rel: 0, abs: 0, cases: 0, n: 0 };
    e.rel = Math.max(e.rel, r.rel);
    e.abs = Math.max(e.abs, r.abs);
    e.cases++;
    e.n += r.n;
    byOp.set(r.op, e);
  }
  if (process.env.GRADCHECK_REPORT === 'cases')
    for (const r of rows) console.log(`${r.label.padEnd(60)} rel ${r.rel.toExponential(2)} gradNodes ${r.gradNodes}`);
  const lines = [...byOp].map(
    ([op, e]) =>
      `${op.padEnd(18)} cases ${String(e.cases).padStart(3)}  elems ${String(e.n).padStart(5)}  maxRel ${e.rel.toExponential(2)}  maxAbs ${e.abs.toExponential(2)}`,
  );
  if (process.env.GRADCHECK_REPORT) console.log(['per-op max errors:', ...lines].join('\n'));
});
