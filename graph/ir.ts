/**
 * The nas-onnx graph IR: values with a dtype and a static shape, nodes of
 * standard ONNX ops, constant tensors, parameters and graph inputs/outputs.
 *
 * Graphs are built incrementally, so `nodes` is always in topological order.
 * Every node's output shapes come from its op's shape rule (graph/ops), so a
 * shape error surfaces at build time, naming the node, not inside ORT.
 */
import { getOp } from './ops/registry.js';

export type DType = 'float32' | 'int64' | 'int32' | 'bool';

export type TypedData = Float32Array | BigInt64Array | Int32Array | Uint8Array;

export interface TensorData {
  dtype: DType;
  shape: number[];
  data: TypedData;
}

export interface Value {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

/** ONNX attribute, tagged with its ONNX type (JS numbers alone cannot tell INT from FLOAT). */
export type Attr =
  | { kind: 'int'; v: number }
  | { kind: 'float'; v: number }
  | { kind: 'ints'; v: number[] }
  | { kind: 'floats'; v: number[] }
  | { kind: 'string'; v: string }
  | { kind: 'tensor'; v: TensorData }
  | { kind: 'graph'; v: Graph };

export type Attrs = Record<string, Attr>;

export const A = {
  i: (v: number): Attr => ({ kind: 'int', v }),
  f: (v: number): Attr => ({ kind: 'float', v }),
  ints: (v: number[]): Attr => ({ kind: 'ints', v }),
  floats: (v: number[]): Attr => ({ kind: 'floats', v }),
  s: (v: string): Attr => ({ kind: 'string', v }),
};

export function attrInt(attrs: Attrs, name: string, def: number): number {
  const a = attrs[name];
  if (!a) return def;
  if (a.kind !== 'int') throw new Error(`attribute ${name} must be an int`);
  return a.v;
}

export function attrInts(attrs: Attrs, name: string, def: number[]): number[] {
  const a = attrs[name];
  if (!a) return def;
  if (a.kind !== 'ints') throw new Error(`attribute ${name} must be ints`);
  return a.v;
}

export function attrFloat(attrs: Attrs, name: string, def: number): number {
  const a = attrs[name];
  if (!a) return def;
  if (a.kind !== 'float') throw new Error(`attribute ${name} must be a float`);
  return a.v;
}

export function attrString(attrs: Attrs, name: string, def: string): string {
  const a = attrs[name];
  if (!a) return def;
  if (a.kind !== 'string') throw new Error(`attribute ${name} must be a string`);
  return a.v;
}

export interface Node {
  readonly op: string;
  readonly name: string;
  readonly inputs: readonly string[]; // '' marks an omitted optional input
  readonly outputs: readonly string[];
  readonly attrs: Attrs;
}

/** How a parameter is initialized (materialized by train/params). */
export type Init =
  | { kind: 'zeros' }
  | { kind: 'ones' }
  | { kind: 'normal'; std: number }
  | { kind: 'uniform'; bound: number }
  /** PyTorch's default for conv/linear weights: kaiming_uniform(a=√5) = U(±1/√fan_in). */
  | { kind: 'fan_in_uniform'; fanIn: number };

/**
 * Parameter roles. `weight` and `arch` are trained; `state` (BN running
 * statistics) is updated by the forward pass in training form.
 */
export type ParamRole = 'weight' | 'arch' | 'state';

export interface Param {
  readonly name: string;
  readonly shape: readonly number[];
  readonly role: ParamRole;
  readonly init: Init;
  /** Excluded from weight decay (e.g. BN affine parameters could be); default false. */
  readonly noDecay?: boolean;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

/**
 * Execution-provider-specific lowering of a graph (graph/ops rules read it while
 * emitting gradients and lowering composites). Absent: portable standard ONNX ops
 * (what the CUDA EP runs and what ships).
 */
export interface Lowering {
  /**
   * Formulations whose kernels ORT's CPU EP runs in parallel: balanced Add trees for
   * variadic Sums, Conv (not ConvTranspose) input gradients of pointwise convs, batched
   * MatMul weight gradients of pointwise convs.
   */
  cpu?: boolean;
  /**
   * Block size of onnxruntime's NCHWc CPU kernels (com.microsoft.nchwc ops; 8 with
   * AVX2, 16 with AVX-512): depthwise convolutions and their gradients run in that
   * blocked layout. Only for graphs run on ORT's CPU EP.
   */
  nchwcBlock?: number;
}

export class GraphError extends Error {
  override name = 'GraphError';
}

export class Graph {
  readonly values = new Map<string, Value>();
  readonly nodes: Node[] = [];
  readonly inputs: Value[] = [];
  readonly outputs: Value[] = [];
  /** Constant tensors (ONNX initializers that are not graph inputs). */
  readonly constants = new Map<string, TensorData>();
  /** Parameters: graph inputs in training graphs, initializers in inference graphs. */
  readonly params = new Map<string, Param>();
  /** State updates produced by the forward pass: param name -> value holding the new state. */
  readonly stateUpdates = new Map<string, Value>();
  /** Free-form metadata carried into the ONNX model's metadata_props. */
  readonly meta = new Map<string, string>();

  private readonly producer = new Map<string, Node>();
  private readonly constCache = new Map<string, Value>();
  private readonly nameCounts = new Map<string, number>();
  private scopes: string[] = [];

  /**
   * Training form: BN uses batch statistics and emits running-stat updates,
   * MaxPool keeps its argmax indices for the backward pass.
   */
  training = false;

  /** EP-specific lowering (set before building the graph; see Lowering). */
  lowering: Lowering = {};

  constructor(readonly name = 'nas_onnx') {}

  /** Run `fn` with names prefixed by `scope/` (nested scopes join with '/'). */
  scope<T>(scope: string, fn: () => T): T {
    this.scopes.push(scope);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  /** A fresh name under the current scope. */
  fresh(base: string): string {
    const prefix = this.scopes.length ? `${this.scopes.join('/')}/` : '';
    const full = prefix + base;
    let n = this.nameCounts.get(full) ?? 0;
    let name = n === 0 ? full : `${full}_${n}`;
    while (this.values.has(name)) name = `${full}_${++n}`;
    this.nameCounts.set(full, n + 1);
    return name;
  }

  value(name: string): Value {
    const v = this.values.get(name);
    if (!v) throw new GraphError(`unknown value '${name}'`);
    return v;
  }

  producerOf(name: string): Node | undefined {
    return this.producer.get(name);
  }

  /**
   * Parameters that are slices of a flat graph input (param name → input name):
   * the serializer does not list them as inputs; a Split of the flat input
   * produces them (graph/training.ts flattenParams).
   */
  readonly flatMember = new Map<string, string>();

  /**
   * Make the node producing value `from` produce `to` instead (an existing value name
   * without a producer, e.g. a parameter), rewriting the nodes from index `since` on.
   */
  redirectValue(from: string, to: string, since = 0): void {
    const v = this.value(from);
    const t = this.value(to);
    if (v.shape.join() !== t.shape.join() || v.dtype !== t.dtype)
      throw new GraphError(`cannot redirect ${from} to ${to}: types differ`);
    if (this.producer.has(to)) throw new GraphError(`${to} already has a producer`);
    for (let i = since; i < this.nodes.length; i++) {
      const n = this.nodes[i]!;
      if (!n.inputs.includes(from) && !n.outputs.includes(from)) continue;
      const re = (x: string): string => (x === from ? to : x);
      const m: Node = { ...n, inputs: n.inputs.map(re), outputs: n.outputs.map(re) };
      this.nodes[i] = m;
      this.rebindProducer(m);
    }
    this.producer.delete(from);
    this.values.delete(from);
  }

  /** Record `n` as the producer of its outputs (after a node was rewritten in place). */
  rebindProducer(n: Node): void {
    for (const o of n.outputs) this.producer.set(o, n);
  }

  private define(name: string, dtype: DType, shape: readonly number[]): Value {
    if (this.values.has(name)) throw new GraphError(`value '${name}' defined twice`);
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new GraphError(`value '${name}' has a bad shape ${shapeStr(shape)}`);
    }
    const v: Value = { name, dtype, shape: [...shape] };
    this.values.set(name, v);
    return v;
  }

  /**
   * Values of an enclosing graph that this graph (an `If` branch) reads:
   * defined here for the shape and gradient rules (constants with their data,
   * which rules read statically), but neither inputs nor initializers when
   * serialized — ONNX subgraphs see outer-scope values by name.
   */
  readonly outer = new Set<string>();

  /** Define outer value `v` (with its data when it is a constant of the enclosing graph). */
  capture(v: Value, data?: TensorData): Value {
    const c = this.define(v.name, v.dtype, v.shape);
    if (data) this.constants.set(v.name, data);
    this.outer.add(v.name);
    return c;
  }

  /**
   * Remove the nodes from index `start` on and return them (to move them into
   * a subgraph). Their output values stay defined, for `adopt`.
   */
  detach(start: number): Node[] {
    const tail = this.nodes.splice(start);
    for (const n of tail) for (const o of n.outputs) this.producer.delete(o);
    return tail;
  }

  /** Append node `n` of graph `from` as it is (names kept), defining its outputs here. */
  adopt(n: Node, from: Graph): void {
    for (const o of n.outputs) {
      const v = from.value(o);
      this.define(o, v.dtype, v.shape);
    }
    this.pushNode(n);
  }

  /** A graph input fed at run time (a batch, a target, a learning rate...). */
  input(name: string, dtype: DType, shape: readonly number[]): Value {
    const v = this.define(name, dtype, shape);
    this.inputs.push(v);
    return v;
  }

  /** A named parameter (graph input in training graphs, initializer when exported). */
  param(name: string, shape: readonly number[], role: ParamRole, init: Init, noDecay = false): Value {
    const full = this.fresh(name);
    const v = this.define(full, 'float32', shape);
    this.params.set(full, { name: full, shape: [...shape], role, init, noDecay });
    return v;
  }

  /** Mark a value as a graph output (optionally renamed through an Identity). */
  output(v: Value, name?: string): Value {
    let out = v;
    if (name && name !== v.name) {
      const renamable =
        this.producer.has(v.name) && !this.renamed.has(v.name) && !this.outputs.some((o) => o.name === v.name);
      out = this.define(name, v.dtype, v.shape);
      if (renamable) {
        // no Identity node: the serializer gives the producing node's output this name
        this.renamed.set(v.name, name);
        this.aliasOf.set(name, v.name);
      } else {
        this.pushNode({ op: 'Identity', name: this.fresh('Identity'), inputs: [v.name], outputs: [name], attrs: {} });
      }
    }
    this.outputs.push(out);
    return out;
  }

  /** value name → graph-output name it is emitted under (outputs that need no Identity). */
  readonly renamed = new Map<string, string>();
  /** graph-output name → the value it names. */
  readonly aliasOf = new Map<string, string>();

  /** A constant tensor; identical small constants are shared. */
  constant(t: TensorData, hint = 'const', cacheKey?: string): Value {
    let key = cacheKey;
    if (!key && t.data.length <= 64)
      key = `${t.dtype}|${t.shape.join(',')}|${Array.from(t.data as ArrayLike<number | bigint>, String).join(',')}`;
    if (key) {
      const hit = this.constCache.get(key);
      if (hit) return hit;
    }
    const name = this.fresh(hint);
    const v = this.define(name, t.dtype, t.shape);
    this.constants.set(name, t);
    if (key) this.constCache.set(key, v);
    return v;
  }

  scalar(x: number, dtype: DType = 'float32'): Value {
    return this.constant(tensorOf(dtype, [], [x]), 'scalar');
  }

  /** An int64 1-D constant (shapes, axes, starts/ends). */
  int64s(xs: readonly number[]): Value {
    return this.constant(tensorOf('int64', [xs.length], xs), 'ints');
  }

  /**
   * Add a node of a registered op. Output dtypes/shapes come from the op's
   * shape rule. Returns the output values.
   */
  node(op: string, inputs: readonly (Value | null)[], attrs: Attrs = {}, nOutputs?: number): Value[] {
    const def = getOp(op);
    const ins = inputs.map((x) => x ?? null);
    let specs: { dtype: DType; shape: number[] }[];
    try {
      specs = def.infer(ins, attrs, this);
    } catch (e) {
      const shapes = ins.map((x) => (x ? `${x.name}${shapeStr(x.shape)}` : '∅')).join(', ');
      throw new GraphError(`${op}(${shapes}): ${(e as Error).message}`);
    }
    if (nOutputs !== undefined) specs = specs.slice(0, nOutputs);
    const nodeName = this.fresh(op);
    const outs = specs.map((s, i) =>
      this.define(specs.length === 1 ? this.fresh(`${op}_out`) : this.fresh(`${op}_out${i}`), s.dtype, s.shape),
    );
    this.pushNode({
      op,
      name: nodeName,
      inputs: ins.map((x) => (x ? x.name : '')),
      outputs: outs.map((o) => o.name),
      attrs,
    });
    return outs;
  }

  /** Single-output convenience for `node`. */
  op(op: string, inputs: readonly (Value | null)[], attrs: Attrs = {}): Value {
    return this.node(op, inputs, attrs, 1)[0]!;
  }

  private pushNode(n: Node): void {
    for (const i of n.inputs)
      if (i && !this.values.has(i)) throw new GraphError(`node ${n.name} reads unknown value '${i}'`);
    this.nodes.push(n);
    for (const o of n.outputs) this.producer.set(o, n);
  }

  /** Record that the forward pass produces a new value for a state parameter. */
  setStateUpdate(param: Value, next: Value): void {
    if (!this.params.has(param.name)) throw new GraphError(`'${param.name}' is not a parameter`);
    this.stateUpdates.set(param.name, next);
  }

  paramsByRole(role: ParamRole): Param[] {
    return [...this.params.values()].filter((p) => p.role === role);
  }

  /** Number of elements over parameters of the given roles. */
  paramCount(roles: ParamRole[] = ['weight']): number {
    let n = 0;
    for (const p of this.params.values()) if (roles.includes(p.role)) n += numel(p.shape);
    return n;
  }

  /**
   * Remove nodes whose outputs reach no graph output and no state update
   * (e.g. an auxiliary head left out of an inference graph). Returns the count removed.
   */
  prune(): number {
    const live = new Set<string>();
    for (const o of this.outputs) live.add(this.aliasOf.get(o.name) ?? o.name);
    for (const v of this.stateUpdates.values()) live.add(v.name);
    const keep: boolean[] = new Array(this.nodes.length).fill(false);
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const n = this.nodes[i]!;
      if (n.outputs.some((o) => live.has(o))) {
        keep[i] = true;
        for (const x of n.inputs) if (x) live.add(x);
      }
    }
    const before = this.nodes.length;
    const kept = this.nodes.filter((_, i) => keep[i]);
    const dead = this.nodes.filter((_, i) => !keep[i]);
    this.nodes.length = 0;
    this.nodes.push(...kept);
    for (const n of dead)
      for (const o of n.outputs) {
        this.producer.delete(o);
        this.values.delete(o);
      }
    for (const name of [...this.constants.keys()]) {
      if (!live.has(name)) {
        this.constants.delete(name);
        this.values.delete(name);
        for (const [k, v] of this.constCache) if (v.name === name) this.constCache.delete(k);
      }
    }
    for (const name of [...this.params.keys()]) {
      if (!live.has(name)) {
        this.params.delete(name);
        this.values.delete(name);
      }
    }
    return before - this.nodes.length;
  }
}

export function tensorOf(dtype: DType, shape: number[], xs: ArrayLike<number>): TensorData {
  const n = numel(shape);
  if (xs.length !== n) throw new GraphError(`tensor of shape ${shapeStr(shape)} needs ${n} values, got ${xs.length}`);
  let data: TypedData;
  switch (dtype) {
    case 'float32':
      data = Float32Array.from(xs);
      break;
    case 'int64':
      data = BigInt64Array.from(Array.from(xs, (x) => BigInt(Math.trunc(x))));
      break;
    case 'int32':
      data = Int32Array.from(xs);
      break;
    case 'bool':
      data = Uint8Array.from(xs, (x) => (x ? 1 : 0));
      break;
  }
  return { dtype, shape, data };
}
