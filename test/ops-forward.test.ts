/**
 * Forward results of small building blocks in onnxruntime (CPU EP) against
 * values computed independently here with plain loops. This pins down that
 * our shape rules agree with ORT (every output's shape is compared with the
 * IR's) and that attributes are encoded as ORT reads them.
 */
import { describe, expect, it } from 'vitest';
import { A, Graph, numel, tensorOf, type Attrs, type Value } from '../graph/ir.js';
import { Rng } from '../graph/rng.js';
import { serialize } from '../graph/onnx.js';
import * as ops from '../graph/ops/index.js';
import { Session, f32, toF32 } from '../train/runtime/session.js';

const rng = new Rng(7);
const randn = (shape: number[]): Float32Array => Float32Array.from({ length: numel(shape) }, () => rng.normal());

/** Build a graph over float inputs, run it once, and check each output's shape against the IR. */
async function run(
  inputs: { name: string; shape: number[]; data: Float32Array }[],
  build: (g: Graph, xs: Value[]) => Value[],
): Promise<{ data: Float32Array; shape: number[] }[]> {
  const g = new Graph('forward');
  const xs = inputs.map((i) => g.input(i.name, 'float32', i.shape));
  const ys = build(g, xs).map((y, k) => g.output(y, `out${k}`));
  const sess = await Session.create(serialize(g, { params: 'inputs' }));
  try {
    const res = await sess.run(Object.fromEntries(inputs.map((i) => [i.name, f32(i.data, i.shape)])));
    return ys.map((y) => {
      const t = res[y.name]!;
      expect(t.dims.map(Number), `shape of ${y.name}`).toEqual([...y.shape]);
      return { data: toF32(t), shape: [...y.shape] };
    });
  } finally {
    await sess.release();
  }
}

function expectClose(got: Float32Array, want: ArrayLike<number>, tol = 1e-4): void {
  expect(got.length).toBe(want.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < got.length; i++) {
    const e = Math.abs(got[i]! - want[i]!) / Math.max(1, Math.abs(want[i]!));
    if (e > worst) {
      worst = e;
      at = i;
    }
  }
  expect(worst, `worst at ${at}: got ${got[at]}, want ${want[at]}`).toBeLessThanOrEqual(tol);
}

// ---- reference implementations (NCHW, float64) ---------------------------------------------

interface Conv2dRef {
  s: [number, number];
  p: [number, number, number, number]; // top, left, bottom, right (ONNX order)
  d: [number, number];
  group: number;
}
function refConv(
  x: Float32Array,
  xs: number[],
  w: Float32Array,
  ws: number[],
  b: Float32Array | null,
  o: Conv2dRef,
): { y: number[]; shape: number[] } {
  const [n, c, h, wd] = xs as [number, number, number, number];
  const [co, cig, kh, kw] = ws as [number, number, number, number];
  const cog = co / o.group;
  const ho = Math.floor((h + o.p[0] + o.p[2] - o.d[0] * (kh - 1) - 1) / o.s[0]) + 1;
  const wo = Math.floor((wd + o.p[1] + o.p[3] - o.d[1] * (kw - 1) - 1) / o.s[1]) + 1;
  const y = new Array<number>(n * co * ho * wo).fill(0);
  for (let b0 = 0; b0 < n; b0++)
    for (let oc = 0; oc < co; oc++) {
      const grp = Math.floor(oc / cog);
      for (let i = 0; i < ho; i++)
        for (let j = 0; j < wo; j++) {
          let acc = b ? b[oc]! : 0;
          for (let ci = 0; ci < cig; ci++)
            for (let u = 0; u < kh; u++)
              for (let v = 0; v < kw; v++) {
                const r = i * o.s[0] - o.p[0] + u * o.d[0];
                const q = j * o.s[1] - o.p[1] + v * o.d[1];
                if (r < 0 || r >= h || q < 0 || q >= wd) continue;
                acc += x[((b0 * c + grp * cig + ci) * h + r) * wd + q]! * w[((oc * cig + ci) * kh + u) * kw + v]!;
              }
          y[((b0 * co + oc) * ho + i) * wo + j] = acc;
        }
    }
  return { y, shape: [n, co, ho, wo] };
}

function refConvTranspose(
  x: Float32Array,
  xs: number[],
  w: Float32Array,
  ws: number[],
  o: Conv2dRef & { op: [number, number] },
): { y: number[]; shape: number[] } {
  const [n, c, h, wd] = xs as [number, number, number, number];
  const [, cog, kh, kw] = ws as [number, number, number, number];
  const cig = c / o.group;
  const co = cog * o.group;
  const ho = o.s[0] * (h - 1) + o.op[0] + o.d[0] * (kh - 1) + 1 - o.p[0] - o.p[2];
  const wo = o.s[1] * (wd - 1) + o.op[1] + o.d[1] * (kw - 1) + 1 - o.p[1] - o.p[3];
  const y = new Array<number>(n * co * ho * wo).fill(0);
  for (let b0 = 0; b0 < n; b0++)
    for (let ic = 0; ic < c; ic++) {
      const grp = Math.floor(ic / cig);
      for (let i = 0; i < h; i++)
        for (let j = 0; j < wd; j++)
          for (let oc = 0; oc < cog; oc++)
            for (let u = 0; u < kh; u++)
              for (let v = 0; v < kw; v++) {
                const r = i * o.s[0] + u * o.d[0] - o.p[0];
                const q = j * o.s[1] + v * o.d[1] - o.p[1];
                if (r < 0 || r >= ho || q < 0 || q >= wo) continue;
                y[((b0 * co + grp * cog + oc) * ho + r) * wo + q] =
                  y[((b0 * co + grp * cog + oc) * ho + r) * wo + q]! +
                  x[((b0 * c + ic) * h + i) * wd + j]! * w[((ic * cog + oc) * kh + u) * kw + v]!;
              }
    }
  return { y, shape: [n, co, ho, wo] };
}

function refPool(
  x: Float32Array,
  xs: number[],
  k: number,
  s: number,
  p: [number, number, number, number],
  mode: 'max' | 'avg',
  includePad: boolean,
): { y: number[]; shape: number[] } {
  const [n, c, h, wd] = xs as [number, number, number, number];
  const ho = Math.floor((h + p[0] + p[2] - k) / s) + 1;
  const wo = Math.floor((wd + p[1] + p[3] - k) / s) + 1;
  const y: number[] = [];
  for (let b0 = 0; b0 < n * c; b0++)
    for (let i = 0; i < ho; i++)
      for (let j = 0; j < wo; j++) {
        let acc = mode === 'max' ? -Infinity : 0;
        let cnt = 0;
        for (let u = 0; u < k; u++)
          for (let v = 0; v < k; v++) {
            const r = i * s - p[0] + u;
            const q = j * s - p[1] + v;
            const inside = r >= 0 && r < h && q >= 0 && q < wd;
            // count_include_pad counts window cells inside the padded extent
            if (includePad && r >= -p[0] && r < h + p[2] && q >= -p[1] && q < wd + p[3]) cnt++;
            if (!inside) continue;
            const val = x[(b0 * h + r) * wd + q]!;
            if (mode === 'max') acc = Math.max(acc, val);
            else acc += val;
            if (!includePad) cnt++;
          }
        y.push(mode === 'max' ? acc : acc / cnt);
      }
  return { y, shape: [n, c, ho, wo] };
}

// ---------------------------------------------------------------------------------------------
describe('Conv forward vs loops', () => {
  const CASES: { label: string; x: number[]; w: number[]; o: Conv2dRef; bias?: boolean }[] = [
    { label: 'plain', x: [2, 3, 6, 6], w: [4, 3, 3, 3], o: { s: [1, 1], p: [0, 0, 0, 0], d: [1, 1], group: 1 } },
    {
      label: 'stride 2 pad 1 (odd)',
      x: [2, 3, 7, 7],
      w: [4, 3, 3, 3],
      o: { s: [2, 2], p: [1, 1, 1, 1], d: [1, 1], group: 1 },
    },
    {
      label: 'stride 2 pad 1 (even)',
      x: [1, 3, 8, 8],
      w: [4, 3, 3, 3],
      o: { s: [2, 2], p: [1, 1, 1, 1], d: [1, 1], group: 1 },
    },
    {
      label: 'dilation 2 pad 2',
      x: [1, 2, 7, 7],
      w: [3, 2, 3, 3],
      o: { s: [1, 1], p: [2, 2, 2, 2], d: [2, 2], group: 1 },
    },
    {
      label: '5×5 dilation 2 pad 4',
      x: [1, 2, 9, 9],
      w: [2, 2, 5, 5],
      o: { s: [1, 1], p: [4, 4, 4, 4], d: [2, 2], group: 1 },
    },
    {
      label: 'group 2 (Cin 4, Cout 6) with bias',
      x: [2, 4, 5, 5],
      w: [6, 2, 3, 3],
      o: { s: [1, 1], p: [1, 1, 1, 1], d: [1, 1], group: 2 },
      bias: true,
    },
    {
      label: 'depthwise stride 2',
      x: [2, 3, 7, 7],
      w: [3, 1, 3, 3],
      o: { s: [2, 2], p: [1, 1, 1, 1], d: [1, 1], group: 3 },
    },
    {
      label: 'depthwise multiplier 2',
      x: [1, 3, 5, 5],
      w: [6, 1, 3, 3],
      o: { s: [1, 1], p: [1, 1, 1, 1], d: [1, 1], group: 3 },
    },
    {
      label: 'asymmetric pads, non-square stride and kernel',
      x: [1, 2, 6, 7],
      w: [3, 2, 2, 3],
      o: { s: [2, 1], p: [0, 1, 1, 0], d: [1, 2], group: 1 },
    },
  ];
  for (const c of CASES) {
    it(c.label, async () => {
      const x = randn(c.x);
      const w = randn(c.w);
      const b = c.bias ? randn([c.w[0]!]) : null;
      const ins = [
        { name: 'x', shape: c.x, data: x },
        { name: 'w', shape: c.w, data: w },
      ];
      if (b) ins.push({ name: 'b', shape: [c.w[0]!], data: b });
      const [y] = await run(ins, (g, [xv, wv, bv]) => [
        g.op('Conv', [xv!, wv!, bv ?? null].slice(0, bv ? 3 : 2), {
          kernel_shape: A.ints(c.w.slice(2)),
          strides: A.ints(c.o.s),
          pads: A.ints(c.o.p),
          dilations: A.ints(c.o.d),
          group: A.i(c.o.group),
        }),
      ]);
      const ref = refConv(x, c.x, w, c.w, b, c.o);
      expect(y!.shape).toEqual(ref.shape);
      expectClose(y!.data, ref.y);
    });
  }
  it('the conv emitter encodes stride/pad/dilation/group as ORT reads them', async () => {
    const x = randn([1, 4, 9, 9]);
    const w = randn([4, 2, 3, 3]);
    const [y] = await run(
      [
        { name: 'x', shape: [1, 4, 9, 9], data: x },
        { name: 'w', shape: [4, 2, 3, 3], data: w },
      ],
      (g, [xv, wv]) => [ops.conv(g, xv!, wv!, { stride: 2, pad: 2, dilation: 2, group: 2 })],
    );
    expectClose(
      y!.data,
      refConv(x, [1, 4, 9, 9], w, [4, 2, 3, 3], null, { s: [2, 2], p: [2, 2, 2, 2], d: [2, 2], group: 2 }).y,
    );
  });
});

describe('ConvTranspose forward vs loops', () => {
  for (const c of [
    {
      label: 'stride 2 pad 1 output_padding 1',
      x: [1, 3, 4, 4],
      w: [3, 2, 3, 3],
      o: { stride: 2, pad: 1, outputPadding: 1 },
    },
    { label: 'group 2 dilation 2', x: [2, 4, 3, 3], w: [4, 3, 3, 3], o: { stride: 1, pad: 1, dilation: 2, group: 2 } },
  ] as { label: string; x: number[]; w: number[]; o: ops.ConvTransposeOpts }[]) {
    it(c.label, async () => {
      const x = randn(c.x);
      const w = randn(c.w);
      const [y] = await run(
        [
          { name: 'x', shape: c.x, data: x },
          { name: 'w', shape: c.w, data: w },
        ],
        (g, [xv, wv]) => [ops.convTranspose(g, xv!, wv!, c.o)],
      );
      const p = c.o.pad ?? 0;
      const s = c.o.stride ?? 1;
      const d = c.o.dilation ?? 1;
      const op = c.o.outputPadding ?? 0;
      const ref = refConvTranspose(x, c.x, w, c.w, {
        s: [s, s],
        p: [p, p, p, p],
        d: [d, d],
        group: c.o.group ?? 1,
        op: [op, op],
      });
      expect(y!.shape).toEqual(ref.shape);
      expectClose(y!.data, ref.y);
    });
  }
});

describe('pools forward vs loops', () => {
  for (const [k, s, p, hw] of [
    [3, 1, 1, 5],
    [3, 2, 1, 7],
    [3, 2, 1, 8],
    [5, 3, 0, 8],
  ] as [number, number, number, number][]) {
    it(`AveragePool ${k}×${k} s${s} p${p} on ${hw}×${hw}: count_include_pad 0 and 1`, async () => {
      const shape = [2, 2, hw, hw];
      const x = randn(shape);
      const [y0, y1] = await run([{ name: 'x', shape, data: x }], (g, [xv]) => [
        ops.avgPool(g, xv!, k, s, p, false),
        ops.avgPool(g, xv!, k, s, p, true),
      ]);
      expectClose(y0!.data, refPool(x, shape, k, s, [p, p, p, p], 'avg', false).y);
      expectClose(y1!.data, refPool(x, shape, k, s, [p, p, p, p], 'avg', true).y);
      if (p > 0) {
        // the corner window sees (k − p)² cells: excluding padding divides by that, not by k²
        const corner = (k - p) * (k - p);
        let acc = 0;
        for (let u = 0; u < k - p; u++) for (let v = 0; v < k - p; v++) acc += x[u * hw + v]!;
        expect(y0!.data[0]).toBeCloseTo(acc / corner, 5);
        expect(y1!.data[0]).toBeCloseTo(acc / (k * k), 5);
      }
    });
  }
  it('AveragePool with asymmetric pads', async () => {
    const shape = [1, 2, 6, 6];
    const x = randn(shape);
    const attrs = (cip: number): Attrs => ({
      kernel_shape: A.ints([3, 3]),
      strides: A.ints([2, 2]),
      pads: A.ints([0, 0, 1, 1]),
      count_include_pad: A.i(cip),
    });
    const [y0, y1] = await run([{ name: 'x', shape, data: x }], (g, [xv]) => [
      g.op('AveragePool', [xv!], attrs(0)),
      g.op('AveragePool', [xv!], attrs(1)),
    ]);
    expectClose(y0!.data, refPool(x, shape, 3, 2, [0, 0, 1, 1], 'avg', false).y);
    expectClose(y1!.data, refPool(x, shape, 3, 2, [0, 0, 1, 1], 'avg', true).y);
  });
  for (const [k, s, p, hw, training] of [
    [3, 1, 1, 5, true],
    [3, 2, 1, 7, false],
    [3, 2, 1, 8, true],
    [2, 2, 0, 6, false],
  ] as [number, number, number, number, boolean][]) {
    it(`MaxPool ${k}×${k} s${s} p${p} on ${hw}×${hw} (${training ? 'with indices' : 'inference form'})`, async () => {
      const shape = [2, 3, hw, hw];
      const x = randn(shape);
      const [y] = await run([{ name: 'x', shape, data: x }], (g, [xv]) => {
        g.training = training;
        return [ops.maxPool(g, xv!, k, s, p)];
      });
      expectClose(y!.data, refPool(x, shape, k, s, [p, p, p, p], 'max', false).y, 1e-7);
    });
  }
  it('MaxPool indices are flat over N·C·H·W and ignore padding', async () => {
    const shape = [2, 2, 4, 4];
    const x = randn(shape);
    const g = new Graph('mp');
    const xv = g.input('x', 'float32', shape);
    const [y, idx] = g.node('MaxPool', [xv], {
      kernel_shape: A.ints([3, 3]),
      strides: A.ints([2, 2]),
      pads: A.ints([1, 1, 1, 1]),
    });
    g.output(y!, 'y');
    g.output(idx!, 'idx');
    const sess = await Session.create(serialize(g, { params: 'inputs' }));
    const res = await sess.run({ x: f32(x, shape) });
    await sess.release();
    const ii = Array.from(res.idx!.data as BigInt64Array, Number);
    const yy = toF32(res.y);
    expect(res.idx!.dims.map(Number)).toEqual([...idx!.shape]);
    ii.forEach((k, i) => expect(x[k]).toBe(yy[i]));
    expect(Math.max(...ii)).toBeGreaterThanOrEqual(numel(shape) - 16); // last (n, c) plane's indices carry its offset
  });
  it('GlobalAveragePool', async () => {
    const shape = [2, 3, 4, 5];
    const x = randn(shape);
    const [y] = await run([{ name: 'x', shape, data: x }], (g, [xv]) => [ops.globalAvgPool(g, xv!)]);
    const want: number[] = [];
    for (let p = 0; p < 6; p++) want.push(x.subarray(p * 20, p * 20 + 20).reduce((a, b) => a + b, 0) / 20);
    expectClose(y!.data, want);
  });
});

describe('Gemm, MatMul, softmax forward vs loops', () => {
  it('Gemm with every transA/transB and bias [N], [M,N], [1]', async () => {
    const M = 3;
    const K = 4;
    const N = 5;
    for (const ta of [false, true])
      for (const tb of [false, true])
        for (const cs of [[N], [M, N], [1]]) {
          const a = randn(ta ? [K, M] : [M, K]);
          const b = randn(tb ? [N, K] : [K, N]);
          const c = randn(cs);
          const [y] = await run(
            [
              { name: 'a', shape: ta ? [K, M] : [M, K], data: a },
              { name: 'b', shape: tb ? [N, K] : [K, N], data: b },
              { name: 'c', shape: cs, data: c },
            ],
            (g, [av, bv, cv]) => [ops.gemm(g, av!, bv!, cv!, ta, tb)],
          );
          const want: number[] = [];
          for (let i = 0; i < M; i++)
            for (let j = 0; j < N; j++) {
              let acc = cs.length === 2 ? c[i * N + j]! : cs[0] === N ? c[j]! : c[0]!;
              for (let k = 0; k < K; k++)
                acc += (ta ? a[k * M + i]! : a[i * K + k]!) * (tb ? b[j * K + k]! : b[k * N + j]!);
              want.push(acc);
            }
          expectClose(y!.data, want);
        }
  });
  it('MatMul with broadcast batch dims [2,1,3,4] × [5,4,2] → [2,5,3,2]', async () => {
    const a = randn([2, 1, 3, 4]);
    const b = randn([5, 4, 2]);
    const [y] = await run(
      [
        { name: 'a', shape: [2, 1, 3, 4], data: a },
        { name: 'b', shape: [5, 4, 2], data: b },
      ],
      (g, [av, bv]) => [ops.matmul(g, av!, bv!)],
    );
    const want: number[] = [];
    for (let p = 0; p < 2; p++)
      for (let q = 0; q < 5; q++)
        for (let i = 0; i < 3; i++)
          for (let j = 0; j < 2; j++) {
            let acc = 0;
            for (let k = 0; k < 4; k++) acc += a[(p * 3 + i) * 4 + k]! * b[(q * 4 + k) * 2 + j]!;
            want.push(acc);
          }
    expect(y!.shape).toEqual([2, 5, 3, 2]);
    expectClose(y!.data, want);
  });
  for (const axis of [-1, 1, 0]) {
    it(`Softmax and LogSoftmax on axis ${axis}`, async () => {
      const shape = [2, 3, 4];
      const x = randn(shape);
      const [s, ls] = await run([{ name: 'x', shape, data: x }], (g, [xv]) => [
        ops.softmax(g, xv!, axis),
        ops.logSoftmax(g, xv!, axis),
      ]);
      const ax = axis < 0 ? axis + 3 : axis;
      const strides = [12, 4, 1];
      const want = new Array<number>(24);
      const lwant = new Array<number>(24);
      for (let i = 0; i < 24; i++) {
        const pos = [Math.floor(i / 12), Math.floor(i / 4) % 3, i % 4];
        const base = i - pos[ax]! * strides[ax]!;
        let mx = -Infinity;
        for (let t = 0; t < shape[ax]!; t++) mx = Math.max(mx, x[base + t * strides[ax]!]!);
        let z = 0;
        for (let t = 0; t < shape[ax]!; t++) z += Math.exp(x[base + t * strides[ax]!]! - mx);
        want[i] = Math.exp(x[i]! - mx) / z;
        lwant[i] = x[i]! - mx - Math.log(z);
      }
      expectClose(s!.data, want);
      expectClose(ls!.data, lwant);
    });
  }
});

describe('data movement forward vs loops', () => {
  it('Concat on axis 1 and -1', async () => {
    const a = randn([2, 1, 3]);
    const b = randn([2, 2, 3]);
    const [y1, y2] = await run(
      [
        { name: 'a', shape: [2, 1, 3], data: a },
        { name: 'b', shape: [2, 2, 3], data: b },
      ],
      (g, [av, bv]) => [
        ops.concat(g, [av!, bv!], 1),
        ops.concat(g, [ops.transpose(g, av!, [0, 2, 1]), ops.transpose(g, bv!, [0, 2, 1])], -1),
      ],
    );
    const want: number[] = [];
    for (let n = 0; n < 2; n++) {
      for (let k = 0; k < 3; k++) want.push(a[n * 3 + k]!);
      for (let k = 0; k < 6; k++) want.push(b[n * 6 + k]!);
    }
    expect(y1!.shape).toEqual([2, 3, 3]);
    expectClose(y1!.data, want, 0);
    const want2: number[] = [];
    for (let n = 0; n < 2; n++)
      for (let k = 0; k < 3; k++) {
        want2.push(a[n * 3 + k]!);
        for (let c = 0; c < 2; c++) want2.push(b[(n * 2 + c) * 3 + k]!);
      }
    expect(y2!.shape).toEqual([2, 3, 3]);
    expectClose(y2!.data, want2, 0);
  });
  it('Slice with negative, clamped and out-of-range bounds', async () => {
    const shape = [3, 5, 6];
    const x = randn(shape);
    const cases: [number[], number[], number[]][] = [
      [
        [-2, -4],
        [-1, 100],
        [1, 2],
      ],
      [
        [-100, 1],
        [1_000_000_000, 2],
        [-1, 0],
      ],
      [[1], [1], [0]], // empty
      [[4], [9], [1]], // start inside, end clamped
    ];
    const outs = await run([{ name: 'x', shape, data: x }], (g, [xv]) =>
      cases.map(([s, e, a]) => ops.slice(g, xv!, s, e, a)),
    );
    cases.forEach(([starts, ends, axes], ci) => {
      const lo = [0, 0, 0];
      const hi = [...shape];
      axes.forEach((ax0, k) => {
        const ax = ax0 < 0 ? ax0 + 3 : ax0;
        const d = shape[ax]!;
        const cl = (v: number) => Math.min(Math.max(v < 0 ? v + d : v, 0), d);
        lo[ax] = cl(starts[k]!);
        hi[ax] = Math.max(cl(ends[k]!), lo[ax]!);
      });
      const want: number[] = [];
      for (let i = lo[0]!; i < hi[0]!; i++)
        for (let j = lo[1]!; j < hi[1]!; j++) for (let k = lo[2]!; k < hi[2]!; k++) want.push(x[(i * 5 + j) * 6 + k]!);
      expect(outs[ci]!.shape).toEqual(hi.map((h, i) => h - lo[i]!));
      expectClose(outs[ci]!.data, want, 0);
    });
  });
  it('Pad, Split, Expand, Gather', async () => {
    const x = randn([2, 3]);
    const [p, s0, s1, e, ga] = await run([{ name: 'x', shape: [2, 3], data: x }], (g, [xv]) => {
      const parts = ops.split(g, xv!, [1, 2], 1);
      return [
        ops.pad(g, xv!, [1, 0, 0, 2], 9),
        parts[0]!,
        parts[1]!,
        ops.expand(g, ops.reshape(g, xv!, [2, 1, 3]), [2, 2, 3]),
        ops.gather(g, xv!, g.constant(tensorOf('int64', [3], [2, -1, 0]), 'idx'), 1),
      ];
    });
    expectClose(p!.data, [9, 9, 9, 9, 9, x[0]!, x[1]!, x[2]!, 9, 9, x[3]!, x[4]!, x[5]!, 9, 9], 0);
    expectClose(s0!.data, [x[0]!, x[3]!], 0);
    expectClose(s1!.data, [x[1]!, x[2]!, x[4]!, x[5]!], 0);
    expectClose(e!.data, [x[0]!, x[1]!, x[2]!, x[0]!, x[1]!, x[2]!, x[3]!, x[4]!, x[5]!, x[3]!, x[4]!, x[5]!], 0);
    expectClose(ga!.data, [x[2]!, x[2]!, x[0]!, x[5]!, x[5]!, x[3]!], 0);
  });
  it('reductions: empty axes reduce everything, as in ONNX', async () => {
    const x = randn([2, 3]);
    const total = x.reduce((a, b) => a + b, 0);
    const [s1, s0, m] = await run([{ name: 'x', shape: [2, 3], data: x }], (g, [xv]) => [
      ops.reduceSum(g, xv!, [], true),
      ops.reduceSum(g, xv!, [], false),
      ops.reduceMean(g, xv!, [-1], false),
    ]);
    expect(s1!.shape).toEqual([1, 1]);
    expect(s0!.shape).toEqual([]);
    expect(s0!.data[0]).toBeCloseTo(total, 5);
    expectClose(m!.data, [(x[0]! + x[1]! + x[2]!) / 3, (x[3]! + x[4]! + x[5]!) / 3]);
  });
});
