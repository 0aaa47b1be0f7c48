/**
 * Structure and values of the reverse-mode autodiff (graph/autodiff.ts):
 * fan-out accumulation, pruning of work that reaches no wrt value, null
 * gradients, `needs`, seeds, multi-output nodes and intermediate wrt values.
 */
import { describe, expect, it } from 'vitest';
import { Graph, numel, tensorOf, type Node, type Value } from '../graph/ir.js';
import { gradients } from '../graph/autodiff.js';
import { serialize } from '../graph/onnx.js';
import * as ops from '../graph/ops/index.js';
import { Rng } from '../graph/rng.js';
import { Session, f32, toF32 } from '../train/runtime/session.js';
import { gradCheck } from './helpers/gradcheck.js';

const rng = new Rng(99);
const randn = (n: number, s = 1): Float32Array => Float32Array.from({ length: n }, () => s * rng.normal());

const sumAll = (g: Graph, v: Value): Value => ops.reduceSum(g, v, [...v.shape.keys()], false);

/** Append gradients and return them with the nodes autodiff added. */
function grads(g: Graph, loss: Value, wrt: Value[]): { d: Map<string, Value | null>; added: Node[] } {
  const before = g.nodes.length;
  const d = gradients(g, loss, wrt);
  return { d, added: g.nodes.slice(before) };
}

async function evaluate(g: Graph, feeds: Record<string, Float32Array>, outs: Value[]): Promise<Float32Array[]> {
  const named = outs.map((v, i) => g.output(v, `fetch${i}`));
  const sess = await Session.create(serialize(g, { params: 'inputs' }));
  try {
    const res = await sess.run(Object.fromEntries(g.inputs.map((i) => [i.name, f32(feeds[i.name]!, i.shape)])));
    return named.map((v) => toF32(res[v.name]));
  } finally {
    await sess.release();
  }
}

describe('autodiff', () => {
  it('accumulates fan-out with one Sum: x used three times', async () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [2, 3]);
    const a = g.input('a', 'float32', [2, 3]);
    // y = x·a + exp(x) + x  →  dy/dx = a + exp(x) + 1
    const y = ops.sum(g, [ops.mul(g, x, a), ops.exp(g, x), x]);
    const loss = sumAll(g, y);
    const { d, added } = grads(g, loss, [x]);
    const dx = d.get('x')!;
    const sums = added.filter((n) => n.op === 'Sum');
    expect(sums).toHaveLength(1);
    expect(sums[0]!.inputs).toHaveLength(3);
    expect(sums[0]!.outputs[0]).toBe(dx.name);
    // a is not in wrt: Mul's rule emits only x's product, nothing for a
    expect(added.filter((n) => n.op === 'Mul')).toHaveLength(2); // dy·a and dy·exp(x)
    const xv = randn(6);
    const av = randn(6);
    const [got] = await evaluate(g, { x: xv, a: av }, [dx]);
    got!.forEach((v, i) => expect(v).toBeCloseTo(av[i]! + Math.exp(xv[i]!) + 1, 5));
  });

  it('fan-out gradient matches finite differences', async () => {
    const r = await gradCheck(
      [
        { name: 'x', shape: [2, 3] },
        { name: 'a', shape: [2, 3] },
      ],
      (g, [x, a]) => ops.sum(g, [ops.mul(g, x!, a!), ops.tanh(g, x!), ops.mul(g, x!, x!)]),
    );
    expect(r.maxRelErr).toBeLessThan(3e-3);
    expect(r.maxAbsGrad).toBeGreaterThan(0.1);
  });

  it('a value used directly and through a chain', async () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [4]);
    // y = x + tanh(2x) · x  →  dy/dx = 1 + 2(1 − tanh²(2x))·x + tanh(2x)
    const t = ops.tanh(g, ops.mul(g, x, g.scalar(2)));
    const y = ops.add(g, x, ops.mul(g, t, x));
    const { d, added } = grads(g, sumAll(g, y), [x]);
    expect(added.filter((n) => n.op === 'Sum')).toHaveLength(1);
    const xv = randn(4);
    const [got] = await evaluate(g, { x: xv }, [d.get('x')!]);
    got!.forEach((v, i) => {
      const th = Math.tanh(2 * xv[i]!);
      expect(v).toBeCloseTo(1 + 2 * (1 - th * th) * xv[i]! + th, 5);
    });
    const r = await gradCheck([{ name: 'x', shape: [3, 4] }], (gg, [xx]) =>
      ops.add(gg, xx!, ops.mul(gg, ops.tanh(gg, ops.mul(gg, xx!, gg.scalar(2))), xx!)),
    );
    expect(r.maxRelErr).toBeLessThan(3e-3);
  });

  it('emits no gradient nodes for branches that reach no wrt value', () => {
    const build = (withBranch: boolean) => {
      const g = new Graph();
      const x = g.input('x', 'float32', [3, 4]);
      const c = g.input('c', 'float32', [3, 4]);
      let loss = sumAll(g, ops.mul(g, ops.tanh(g, x), x));
      const branch: Node[] = [];
      if (withBranch) {
        // a long branch of c only, added to the loss...
        const n0 = g.nodes.length;
        const k = g.constant(tensorOf('float32', [1, 1, 2, 2], [1, 2, 3, 4]));
        const side = sumAll(g, ops.exp(g, ops.sigmoid(g, ops.conv(g, ops.reshape(g, c, [1, 1, 3, 4]), k))));
        branch.push(...g.nodes.slice(n0));
        loss = ops.add(g, loss, side);
        // ...and a dead branch of x that reaches no loss
        const n1 = g.nodes.length;
        ops.log(g, ops.softmax(g, x));
        branch.push(...g.nodes.slice(n1));
      }
      return { g, x, loss, branch };
    };
    const a = build(false);
    const b = build(true);
    const ga = grads(a.g, a.loss, [a.x]);
    const gb = grads(b.g, b.loss, [b.x]);
    expect(gb.added.length).toBe(ga.added.length);
    expect(gb.added.map((n) => n.op).sort()).toEqual(ga.added.map((n) => n.op).sort());
    const branchValues = new Set(b.branch.flatMap((n) => n.outputs));
    expect(branchValues.size).toBeGreaterThan(5);
    for (const n of gb.added) for (const i of n.inputs) expect(branchValues.has(i), `${n.name} reads ${i}`).toBe(false);
  });

  it('returns null for wrt values the loss does not depend on', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [3]);
    const unused = g.input('unused', 'float32', [3]);
    const dead = g.input('dead', 'float32', [3]);
    const cond = g.input('cond', 'float32', [3]);
    ops.exp(g, dead); // reaches no loss
    // cond reaches the loss only through a comparison (not differentiable)
    const y = ops.where(g, ops.greater(g, cond, g.scalar(0)), x, g.scalar(0));
    const { d } = grads(g, sumAll(g, y), [x, unused, dead, cond]);
    expect(d.get('x')).not.toBeNull();
    expect(d.get('unused')).toBeNull();
    expect(d.get('dead')).toBeNull();
    expect(d.get('cond')).toBeNull();
  });

  it('adds nothing when the loss depends on no wrt value', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [3]);
    const c = g.input('c', 'float32', [3]);
    const loss = sumAll(g, ops.exp(g, c));
    const { d, added } = grads(g, loss, [x]);
    expect(d.get('x')).toBeNull();
    expect(added).toHaveLength(0);
  });

  it('respects needs: a conv on a graph input not in wrt emits no ConvTranspose', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [2, 3, 6, 6]);
    const w = g.input('w', 'float32', [4, 3, 3, 3]);
    const w2 = g.input('w2', 'float32', [4, 4, 3, 3]);
    const y = ops.conv(g, ops.relu(g, ops.conv(g, x, w, { pad: 1 })), w2, { pad: 1 });
    const { d, added } = grads(g, sumAll(g, y), [w, w2]);
    expect(d.get('w')).not.toBeNull();
    expect(d.get('w2')).not.toBeNull();
    // the second conv needs an input gradient (its input depends on w); the first does not
    expect(added.filter((n) => n.op === 'ConvTranspose')).toHaveLength(1);
    expect(added.filter((n) => n.op === 'Conv')).toHaveLength(2); // two weight gradients
    // and no gradient of relu's input beyond what reaches w: Where/Greater once
    expect(added.filter((n) => n.op === 'Where')).toHaveLength(1);
  });

  it('respects needs: a conv with constant weights and wrt input emits no weight gradient', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [1, 2, 5, 5]);
    const w = g.input('w', 'float32', [3, 2, 3, 3]);
    const b = g.input('b', 'float32', [3]);
    const { added } = grads(g, sumAll(g, ops.conv(g, x, w, { stride: 2, pad: 1 }, b)), [x]);
    expect(added.filter((n) => n.op === 'Conv')).toHaveLength(0);
    expect(added.filter((n) => n.op === 'ConvTranspose')).toHaveLength(1);
    // no bias reduction either: just the loss's Expand and the ConvTranspose
    expect(added.filter((n) => n.op === 'ReduceSum')).toHaveLength(0);
  });

  it('multi-output nodes: unused Split outputs get no gradient work beyond zero fill', async () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [2, 6]);
    const [p0, , p2] = ops.split(g, x, [1, 2, 3], 1);
    const loss = ops.add(g, sumAll(g, ops.mul(g, p0!, g.scalar(3))), sumAll(g, p2!));
    const { d } = grads(g, loss, [x]);
    const xv = randn(12);
    const [got] = await evaluate(g, { x: xv }, [d.get('x')!]);
    expect(Array.from(got!)).toEqual([3, 0, 0, 1, 1, 1, 3, 0, 0, 1, 1, 1]);
  });

  it('a custom seed scales the gradient; an intermediate value can be a wrt value', async () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [3]);
    const h = ops.mul(g, x, x);
    const y = ops.exp(g, h);
    const seed = g.constant(tensorOf('float32', [3], [1, 2, 3]), 'seed');
    const d = gradients(g, y, [x, h], { seed });
    const xv = Float32Array.from([0.1, -0.2, 0.3]);
    const [dx, dh] = await evaluate(g, { x: xv }, [d.get('x')!, d.get(h.name)!]);
    xv.forEach((v, i) => {
      expect(dh![i]).toBeCloseTo((i + 1) * Math.exp(v * v), 5);
      expect(dx![i]).toBeCloseTo((i + 1) * Math.exp(v * v) * 2 * v, 5);
    });
  });

  it('refuses to differentiate through a float op without a gradient rule (no silent zero)', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [4]);
    const y = ops.scatterAdd(
      g,
      ops.zeros(g, [4]),
      g.constant(tensorOf('int64', [2], [1, 3]), 'idx'),
      ops.slice(g, x, [0], [2], [0]),
      0,
    );
    expect(() => gradients(g, sumAll(g, y), [x])).toThrow(/ScatterElements node .* has no gradient rule/);
    // integer/boolean results stop the gradient silently, as they should
    const g2 = new Graph();
    const x2 = g2.input('x', 'float32', [4]);
    const w = ops.where(g2, ops.greater(g2, x2, g2.scalar(0)), g2.scalar(1), g2.scalar(2));
    expect(gradients(g2, sumAll(g2, w), [x2]).get('x')).toBeNull();
  });

  it('rejects a rule returning a gradient of the wrong shape', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [2, 3]);
    const def = ops.getOp('Neg') as { grad?: (a: unknown) => unknown };
    const saved = def.grad;
    def.grad = (a: unknown) => [ops.reduceSum((a as { g: Graph }).g, (a as { dy: Value[] }).dy[0]!, [0], true)];
    try {
      expect(() => gradients(g, sumAll(g, ops.neg(g, x)), [x])).toThrow(/has shape \[1,3\] but the value is \[2,3\]/);
    } finally {
      def.grad = saved;
    }
  });

  it('gradient values are in the graph: every wrt gradient has its value’s shape', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [2, 3, 4]);
    const b = g.input('b', 'float32', [3, 1]);
    const s = g.input('s', 'float32', []);
    const y = ops.mul(g, ops.add(g, x, b), s);
    const { d } = grads(g, sumAll(g, y), [x, b, s]);
    for (const v of [x, b, s]) expect(d.get(v.name)!.shape).toEqual(v.shape);
    expect(numel(d.get('s')!.shape)).toBe(1);
  });
});
