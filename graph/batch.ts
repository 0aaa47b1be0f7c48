/**
 * A symbolic batch dimension for shipped inference models. The IR keeps its
 * static shapes (a graph is built for one batch size B); when an inference
 * graph is serialized, this pass finds the values that carry the batch on
 * axis 0 (everything computed from the graph inputs), writes that axis as a
 * named dimension, and rewrites the few constants that spell B out:
 * Reshape targets get 0 ("copy the input's dimension") in place of B, an
 * Expand of a batched value gets 1 (broadcast), a constant-shape Expand of a
 * non-batched value (a zero state) takes its batch from `Shape(x)[0:1]`, and a
 * Slice over the whole batch axis ends at INT64_MAX.
 * Any node that mixes samples (a reduction, concat, softmax or transpose over
 * axis 0, a batched Gemm B operand...) is refused with a GraphError naming it,
 * so a model that serializes is batch-agnostic by construction.
 */
import { GraphError, type Graph, type Node, type TensorData } from './ir.js';

export interface BatchPlan {
  /** The dimension name written for the batch axis. */
  dim: string;
  /** The static batch the graph was built with. */
  batch: number;
  /** IR value names whose axis 0 is the batch. */
  batched: Set<string>;
  /** The graph's nodes with the batch-dependent constants rewritten (and the nodes rewriting needs). */
  nodes: Node[];
  /** Constants the rewritten nodes read besides the graph's own. */
  constants: Map<string, TensorData>;
}

/** Ops that act on each element (broadcasting), so a batched operand keeps its samples apart. */
const ELEMENTWISE = new Set([
  'Abs',
  'Add',
  'And',
  'Cast',
  'Clip',
  'Div',
  'Erf',
  'Exp',
  'Identity',
  'Log',
  'Max',
  'Min',
  'Mul',
  'Neg',
  'Not',
  'Pow',
  'Reciprocal',
  'Relu',
  'Sigmoid',
  'Sign',
  'Sqrt',
  'Sub',
  'Sum',
  'Tanh',
  'Where',
]);

/** Ops that treat axis 0 of their first input as the batch (weights in the other inputs). */
const PER_SAMPLE = new Set([
  'AveragePool',
  'BatchNormalization',
  'Conv',
  'ConvTranspose',
  'GlobalAveragePool',
  'GlobalMaxPool',
  'MaxPool',
]);

/** Ops with an axis attribute (and its ONNX default) that must not be the batch axis. */
const AXIS_OPS: Record<string, number> = { Concat: 0, Softmax: -1, LogSoftmax: -1, Split: 0, Gather: 0, ArgMax: 0 };

/** Ops whose second input lists axes, none of which may be the batch axis. */
const AXES_INPUT = new Set(['ReduceMax', 'ReduceMean', 'ReduceSum', 'ReduceSumSquare', 'Squeeze', 'Unsqueeze']);

const INT64_MAX = 0x7fffffffffffffffn;

class Planner {
  readonly batched = new Set<string>();
  readonly nodes: Node[] = [];
  readonly constants = new Map<string, TensorData>();
  readonly batch: number;
  private readonly x0: string;
  private batchShape: string | null = null;
  private count = 0;

  constructor(private readonly g: Graph) {
    const first = g.inputs[0];
    if (!first) throw new GraphError('a symbolic batch needs a graph input');
    this.batch = first.shape[0]!;
    this.x0 = first.name;
    for (const v of g.inputs) {
      if (v.shape[0] !== this.batch)
        throw new GraphError(`input '${v.name}' has batch ${v.shape[0]}, '${first.name}' has ${this.batch}`);
      this.batched.add(v.name);
    }
  }

  private name(base: string): string {
    let n: string;
    do n = `batch_dim/${base}_${this.count++}`;
    while (this.g.values.has(n));
    return n;
  }

  private ints(name: string): number[] | null {
    const t = this.g.constants.get(name) ?? this.constants.get(name);
    return t && t.dtype === 'int64' ? Array.from(t.data as BigInt64Array, Number) : null;
  }

  private constInts(n: Node, k: number): number[] {
    const v = this.ints(n.inputs[k] ?? '');
    if (!v) throw this.refuse(n, `input ${k} is not a constant`);
    return v;
  }

  private newInts(base: string, xs: (number | bigint)[]): string {
    const name = this.name(base);
    const data = BigInt64Array.from(xs, (x) => BigInt(x));
    this.constants.set(name, { dtype: 'int64', shape: [xs.length], data });
    return name;
  }

  refuse(n: Node, why: string): GraphError {
    return new GraphError(`node ${n.name} (${n.op}) is not batch-agnostic: ${why}`);
  }

  private rank(name: string): number {
    return this.g.value(name).shape.length;
  }

  /** `Shape(x)[0:1]`: the run's batch as a 1-element int64 tensor (emitted once). */
  private runBatch(): string {
    if (!this.batchShape) {
      this.batchShape = this.name('batch');
      this.nodes.push({
        op: 'Shape',
        name: this.name('Shape'),
        inputs: [this.x0],
        outputs: [this.batchShape],
        attrs: { start: { kind: 'int', v: 0 }, end: { kind: 'int', v: 1 } },
      });
    }
    return this.batchShape;
  }

  /** A non-batched node: kept, except an Expand to a constant [B, …] shape (a zero state). */
  private unbatched(n: Node): Node {
    if (n.op !== 'Expand') return n;
    const shape = this.ints(n.inputs[1] ?? '');
    if (!shape || shape.length < 2 || shape[0] !== this.batch) return n;
    const rest = this.newInts('shape_rest', shape.slice(1));
    const full = this.name('shape');
    this.nodes.push({
      op: 'Concat',
      name: this.name('Concat'),
      inputs: [this.runBatch(), rest],
      outputs: [full],
      attrs: { axis: { kind: 'int', v: 0 } },
    });
    for (const o of n.outputs) this.batched.add(o);
    return { ...n, inputs: [n.inputs[0]!, full] };
  }

  private checkAxis(n: Node, axis: number, rank: number): void {
    if ((axis < 0 ? axis + rank : axis) === 0) throw this.refuse(n, 'it works across the batch axis');
  }

  /** A node reading a batched value: checked, and rewritten where a constant spells out B. */
  private batchedNode(n: Node, ins: boolean[]): Node {
    const op = n.op;
    const r0 = n.inputs[0] ? this.rank(n.inputs[0]) : 0;
    const outRank = this.rank(n.outputs[0]!);
    if (ELEMENTWISE.has(op)) {
      n.inputs.forEach((x, k) => {
        if (x && !ins[k] && this.rank(x) === outRank && this.g.value(x).shape[0] !== 1)
          throw this.refuse(n, `operand '${x}' has a static leading dimension`);
      });
      return n;
    }
    if (ins.some((b, k) => b && k > 0) && (PER_SAMPLE.has(op) || op === 'Reshape' || op === 'Slice' || op === 'Pad'))
      throw this.refuse(n, 'a batched value in a weight or shape input');
    if (PER_SAMPLE.has(op)) return n;
    if (op in AXIS_OPS) {
      const a = n.attrs.axis;
      this.checkAxis(n, a && a.kind === 'int' ? a.v : AXIS_OPS[op]!, r0);
      if (op === 'Concat' && ins.some((b) => !b)) throw this.refuse(n, 'it joins batched and static values');
      if (op === 'Gather' && ins[1]) throw this.refuse(n, 'batched indices');
      return n;
    }
    if (AXES_INPUT.has(op)) {
      const axes = n.inputs[1] ? this.constInts(n, 1) : null;
      if (!axes) throw this.refuse(n, 'no axes: it works on every axis');
      for (const a of axes) this.checkAxis(n, a, op === 'Unsqueeze' ? outRank : r0);
      return n;
    }
    switch (op) {
      case 'Flatten': {
        const a = n.attrs.axis;
        this.checkAxis(n, a && a.kind === 'int' ? a.v : 1, r0);
        return n;
      }
      case 'Transpose': {
        const p = n.attrs.perm;
        if (p?.kind !== 'ints' || p.v[0] !== 0) throw this.refuse(n, 'it moves the batch axis');
        return n;
      }
      case 'Reshape':
        return this.reshape(n);
      case 'Expand':
        return this.expand(n, ins);
      case 'Slice':
        return this.slice(n);
      case 'Pad': {
        if (n.inputs[3]) throw this.refuse(n, 'pads with an axes input');
        const pads = this.constInts(n, 1);
        if (pads[0] !== 0 || pads[r0] !== 0) throw this.refuse(n, 'it pads the batch axis');
        return n;
      }
      case 'Gemm': {
        const t = n.attrs.transA;
        if (!ins[0] || ins[1] || ins[2] || (t && t.kind === 'int' && t.v !== 0))
          throw this.refuse(n, 'only A may be batched (rows = samples)');
        return n;
      }
      case 'MatMul': {
        const [a, b] = [n.inputs[0]!, n.inputs[1]!];
        const ok = ins[0] && ins[1] ? this.rank(a) === this.rank(b) && this.rank(a) >= 3 : ins[0] || this.rank(b) >= 3;
        if (!ok) throw this.refuse(n, 'the batch axis would be contracted');
        return n;
      }
      default:
        throw this.refuse(n, 'no batch rule for this op');
    }
  }

  private reshape(n: Node): Node {
    if (n.attrs.allowzero && n.attrs.allowzero.kind === 'int' && n.attrs.allowzero.v !== 0)
      throw this.refuse(n, 'allowzero');
    const target = this.constInts(n, 1);
    if (target[0] === 0) return n;
    if (target[0] !== this.batch) throw this.refuse(n, `target ${JSON.stringify(target)} regroups the batch`);
    return { ...n, inputs: [n.inputs[0]!, this.newInts('reshape', [0, ...target.slice(1)])] };
  }

  /** Expand of a batched value to [B, …] of its own rank: [1, …] broadcasts the run's batch. */
  private expand(n: Node, ins: boolean[]): Node {
    const shape = this.constInts(n, 1);
    if (ins[1] || shape.length !== this.rank(n.inputs[0]!)) throw this.refuse(n, 'the shape moves the batch axis');
    if (shape[0] === 1) return n;
    if (shape[0] !== this.batch) throw this.refuse(n, `shape ${JSON.stringify(shape)} changes the batch`);
    return { ...n, inputs: [n.inputs[0]!, this.newInts('expand', [1, ...shape.slice(1)])] };
  }

  private slice(n: Node): Node {
    const starts = this.constInts(n, 1);
    const ends = this.constInts(n, 2);
    const r = this.rank(n.inputs[0]!);
    const axes = n.inputs[3] ? this.constInts(n, 3) : starts.map((_, i) => i);
    const k = axes.findIndex((a) => (a < 0 ? a + r : a) === 0);
    if (k < 0) return n;
    if (starts[k] !== 0 || ends[k]! < this.batch) throw this.refuse(n, 'it slices the batch axis');
    const e: (number | bigint)[] = [...ends];
    e[k] = INT64_MAX;
    const inputs = [...n.inputs];
    inputs[2] = this.newInts('slice_ends', e);
    return { ...n, inputs };
  }

  add(n: Node): void {
    for (const [k, a] of Object.entries(n.attrs))
      if (a.kind === 'graph') throw this.refuse(n, `subgraph attribute '${k}'`);
    const ins = n.inputs.map((x) => !!x && this.batched.has(x));
    if (!ins.some(Boolean)) {
      this.nodes.push(this.unbatched(n));
      return;
    }
    const m = this.batchedNode(n, ins);
    for (const o of n.outputs) {
      const d = this.g.value(o).shape[0];
      if (d !== this.batch)
        throw this.refuse(n, `output '${o}' has leading dimension ${d}, not the batch ${this.batch}`);
      this.batched.add(o);
    }
    this.nodes.push(m);
  }
}

/**
 * Plan the serialization of inference graph `g` (composites lowered) with
 * batch axis `dim`. Throws a GraphError naming the first node that depends on
 * the static batch in a way no rewrite fixes.
 */
export function symbolicBatch(g: Graph, dim = 'N'): BatchPlan {
  const p = new Planner(g);
  for (const n of g.nodes) p.add(n);
  for (const o of g.outputs) {
    const src = g.aliasOf.get(o.name) ?? o.name;
    if (p.batched.has(src)) p.batched.add(o.name);
  }
  return { dim, batch: p.batch, batched: p.batched, nodes: p.nodes, constants: p.constants };
}
