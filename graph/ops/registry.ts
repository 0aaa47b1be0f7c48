/**
 * The op registry: each op of the library registers one OpDef holding its
 * shape rule and its gradient rule; its forward emitter lives beside it in
 * the same file (graph/ops/*.ts).
 */
import type { Attrs, DType, Graph, Node, Value } from '../ir.js';

export interface OutSpec {
  dtype: DType;
  shape: number[];
}

export interface GradArgs {
  g: Graph;
  node: Node;
  /** Forward input values ('' optional inputs are null). */
  x: (Value | null)[];
  /** Forward output values. */
  y: Value[];
  /** Gradients flowing into each output (null: no gradient reaches it). */
  dy: (Value | null)[];
  /** Which inputs need a gradient. A rule must return null for the others and should skip their work. */
  needs: boolean[];
  /** Reverse-mode autodiff itself (graph/autodiff.ts), for rules that differentiate a sub-graph (Gated). */
  differentiate: Differentiate;
}

/** The signature of graph/autodiff.ts `gradients`; passed in so that ops need not import autodiff. */
export type Differentiate = (
  g: Graph,
  loss: Value,
  wrt: readonly Value[],
  opts?: { seed?: Value },
) => Map<string, Value | null>;

export interface OpDef {
  readonly type: string;
  /** ONNX domain of the op (default: the standard domain). */
  readonly domain?: string;
  /** ONNX op type when it differs from `type` (ops of another domain named apart in the IR). */
  readonly onnxType?: string;
  /** Shape rule: output dtypes and static shapes from the inputs and attributes. */
  infer(inputs: (Value | null)[], attrs: Attrs, g: Graph): OutSpec[];
  /**
   * Gradient rule: emits ONNX nodes computing the gradient of each input
   * from the output gradients. Absent for ops that are not differentiable
   * (integer/boolean results); autodiff then stops there.
   */
  grad?(a: GradArgs): (Value | null)[];
  /**
   * Composite ops only: expand the node into standard ONNX nodes, returning one
   * value per output. Composites exist so that autodiff can use a fused gradient
   * rule (fewer nodes than differentiating the expansion); graph/lower.ts expands
   * them before serialization, so no composite reaches an ONNX file.
   */
  lower?(a: { g: Graph; node: Node; x: (Value | null)[]; y: Value[] }): Value[];
  /**
   * An execution-provider-specific formulation of a standard op (per g.lowering),
   * applied with the composites' expansion (graph/lower.ts); null keeps the node as it is.
   */
  lowerFor?(a: { g: Graph; node: Node; x: (Value | null)[]; y: Value[] }): Value[] | null;
}

const registry = new Map<string, OpDef>();

export function registerOp(def: OpDef): OpDef {
  if (registry.has(def.type)) throw new Error(`op ${def.type} registered twice`);
  registry.set(def.type, def);
  return def;
}

export function getOp(type: string): OpDef {
  const d = registry.get(type);
  if (!d) throw new Error(`op '${type}' is not in the nas-onnx op library`);
  return d;
}

export function registeredOps(): string[] {
  return [...registry.keys()].sort();
}
