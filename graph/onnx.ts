/**
 * Serialization of the IR to an ONNX ModelProto (opset 18, IR version 8)
 * with onnx-proto (a prebuilt protobufjs module of onnx.proto), and reading
 * models back for `nas-onnx info`.
 */
import onnxProto from 'onnx-proto';
import { symbolicBatch, type BatchPlan } from './batch.js';
import { lowerComposites } from './lower.js';
import { GraphError, numel, type Attr, type DType, type Graph, type TensorData, type Value } from './ir.js';
import { getOp } from './ops/registry.js';

const { onnx } = onnxProto;

export const OPSET = 18;
export const IR_VERSION = 8;

const DT: Record<DType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  bool: onnx.TensorProto.DataType.BOOL,
};
const DT_NAME = new Map<number, DType>(Object.entries(DT).map(([k, v]) => [v, k as DType]));

export interface SerializeOptions {
  /**
   * 'inputs': parameters are graph inputs fed at every run (training graphs);
   * 'initializers': parameters are embedded (shipped inference models).
   */
  params: 'inputs' | 'initializers';
  /** Parameter values, required for 'initializers'. */
  values?: ReadonlyMap<string, Float32Array>;
  /** Emit value_info for intermediate values (shapes for tools and `info`). Default true. */
  valueInfo?: boolean;
  docString?: string;
  /**
   * Name of a symbolic batch dimension (inference models): axis 0 of every
   * value computed from the inputs is written as this name and batch-dependent
   * constants are rewritten (graph/batch.ts), so one file runs any batch size.
   * Default: the graph's static batch.
   */
  batchDim?: string;
}

function tensorProto(name: string, t: TensorData): onnxProto.onnx.ITensorProto {
  const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  return { name, dataType: DT[t.dtype], dims: t.shape, rawData: bytes };
}

function valueInfo(v: Value, plan?: BatchPlan | null, as = v.name): onnxProto.onnx.IValueInfoProto {
  const sym = plan?.batched.has(v.name) ?? false;
  const dim = v.shape.map((d, i) => (sym && i === 0 ? { dimParam: plan!.dim } : { dimValue: d }));
  return { name: as, type: { tensorType: { elemType: DT[v.dtype], shape: { dim } } } };
}

function attrProto(name: string, a: Attr, opts: SerializeOptions): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  switch (a.kind) {
    case 'int':
      return { name, type: T.INT, i: a.v };
    case 'float':
      return { name, type: T.FLOAT, f: a.v };
    case 'ints':
      return { name, type: T.INTS, ints: a.v };
    case 'floats':
      return { name, type: T.FLOATS, floats: a.v };
    case 'string':
      return { name, type: T.STRING, s: new TextEncoder().encode(a.v) };
    case 'tensor':
      return { name, type: T.TENSOR, t: tensorProto('', a.v) };
    case 'graph':
      // a subgraph (If branch): its composites lowered, outer values read by name
      lowerComposites(a.v);
      return { name, type: T.GRAPH, g: graphProto(a.v, opts) };
  }
}

function graphProto(g: Graph, opts: SerializeOptions, top = false): onnxProto.onnx.IGraphProto {
  const plan = top && opts.batchDim ? symbolicBatch(g, opts.batchDim) : null;
  const nodes = plan ? plan.nodes : g.nodes;
  const read = plan ? new Set(nodes.flatMap((n) => n.inputs)) : null;
  const initializer: onnxProto.onnx.ITensorProto[] = [];
  for (const [name, t] of g.constants)
    if (!g.outer.has(name) && (!read || read.has(name))) initializer.push(tensorProto(name, t));
  for (const [name, t] of plan?.constants ?? []) initializer.push(tensorProto(name, t));
  const inputs = g.inputs.map((v) => valueInfo(v, plan));
  for (const p of g.params.values()) {
    if (g.flatMember.has(p.name)) continue; // produced from its flat input
    if (opts.params === 'inputs') {
      inputs.push(valueInfo(g.value(p.name)));
    } else {
      const data = opts.values?.get(p.name);
      if (!data) throw new GraphError(`no value for parameter '${p.name}'`);
      if (data.length !== numel(p.shape))
        throw new GraphError(`parameter '${p.name}' has ${data.length} values, expected ${numel(p.shape)}`);
      initializer.push(tensorProto(p.name, { dtype: 'float32', shape: [...p.shape], data }));
    }
  }
  const io = new Set([...g.inputs, ...g.outputs].map((v) => v.name));
  const rn = (name: string): string => g.renamed.get(name) ?? name;
  const vi: onnxProto.onnx.IValueInfoProto[] = [];
  if (opts.valueInfo !== false) {
    for (const n of g.nodes)
      for (const o of n.outputs) if (!io.has(o) && !g.renamed.has(o)) vi.push(valueInfo(g.value(o), plan));
  }
  return {
    name: g.name,
    node: nodes.map((n) => {
      const def = getOp(n.op);
      return {
        opType: def.onnxType ?? n.op,
        ...(def.domain ? { domain: def.domain } : {}),
        name: n.name,
        input: n.inputs.map(rn),
        output: n.outputs.map(rn),
        attribute: Object.entries(n.attrs).map(([k, a]) => attrProto(k, a, opts)),
      };
    }),
    initializer,
    input: inputs,
    output: g.outputs.map((v) => valueInfo(v, plan)),
    valueInfo: vi,
  };
}

/** Non-standard op domains a graph (or a subgraph of it) uses. */
function opDomains(g: Graph): string[] {
  const out = new Set<string>();
  const visit = (h: Graph): void => {
    for (const n of h.nodes) {
      const d = getOp(n.op).domain;
      if (d) out.add(d);
      for (const a of Object.values(n.attrs)) if (a.kind === 'graph') visit(a.v);
    }
  };
  visit(g);
  return [...out].sort();
}

/** Encode a graph as ONNX model bytes. */
export function serialize(g: Graph, opts: SerializeOptions): Uint8Array {
  lowerComposites(g);
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET }, ...opDomains(g).map((domain) => ({ domain, version: 1 }))],
    producerName: 'nas-onnx',
    producerVersion: '0.1.0',
    docString: opts.docString ?? '',
    graph: graphProto(g, opts, true),
    metadataProps: [
      ...[...g.meta].map(([key, value]) => ({ key, value })),
      { key: 'nas_onnx.parameters', value: String(g.paramCount(['weight', 'arch'])) },
    ],
  });
  return onnx.ModelProto.encode(model).finish();
}

// ---- reading models back -----------------------------------------------------

export interface ModelInfo {
  irVersion: number;
  opset: number;
  producer: string;
  nodes: number;
  opCounts: Record<string, number>;
  /** Trainable parameters (BN running statistics excluded). */
  parameters: number;
  initializerBytes: number;
  /** Multiply-accumulates of Conv/ConvTranspose/Gemm/MatMul nodes per sample (value_info shapes ÷ the first input's batch; a symbolic batch counts 1). */
  multiplyAdds: number;
  inputs: { name: string; dtype: string; shape: (number | string)[] }[];
  outputs: { name: string; dtype: string; shape: (number | string)[] }[];
  metadata: Record<string, string>;
}

function dimsOf(vi: onnxProto.onnx.IValueInfoProto): (number | string)[] {
  const dims = vi.type?.tensorType?.shape?.dim ?? [];
  return dims.map((d) => (d.dimParam ? d.dimParam : Number(d.dimValue ?? 0)));
}

/** Parse model bytes and compute parameter count, multiply-adds and node statistics. */
export function modelInfo(bytes: Uint8Array): ModelInfo {
  let m: onnxProto.onnx.ModelProto;
  try {
    m = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new GraphError(`not an ONNX model (${(e as Error).message})`);
  }
  const graph = m.graph as onnxProto.onnx.GraphProto | null;
  if (!graph) throw new GraphError('not an ONNX model (no graph)');
  const shapes = new Map<string, (number | string)[]>();
  for (const vi of [...graph.input, ...graph.output, ...graph.valueInfo]) shapes.set(vi.name!, dimsOf(vi));
  for (const t of graph.initializer as onnxProto.onnx.TensorProto[]) shapes.set(t.name, t.dims.map(Number));
  const opCounts: Record<string, number> = {};
  let macs = 0;
  // a symbolic dimension (the batch of a batch-agnostic model) counts as 1: MACs per sample
  const num = (s: (number | string)[] | undefined): number[] | null =>
    s ? s.map((d) => (typeof d === 'number' ? d : 1)) : null;
  for (const n of graph.node as onnxProto.onnx.NodeProto[]) {
    opCounts[n.opType!] = (opCounts[n.opType!] ?? 0) + 1;
    if (n.opType === 'Conv' || n.opType === 'ConvTranspose') {
      const w = num(shapes.get(n.input[1]!));
      const outShape = num(shapes.get(n.opType === 'Conv' ? n.output[0]! : n.input[0]!));
      if (w && outShape)
        macs += numel(outShape) * numel(w.slice(1)) * (n.opType === 'ConvTranspose' ? w[0]! / outShape[1]! : 1);
    } else if (n.opType === 'Gemm' || n.opType === 'MatMul') {
      const a = num(shapes.get(n.input[0]!));
      const y = num(shapes.get(n.output[0]!));
      if (a && y) {
        const transA = n.attribute.find((x) => x.name === 'transA')?.i;
        const k = transA ? a[0]! : a[a.length - 1]!;
        macs += numel(y) * k;
      }
    }
  }
  // nas-onnx models record their trainable parameter count (BN running statistics excluded,
  // as PyTorch counts); for other models every float initializer of more than one element counts
  const metadata = Object.fromEntries(m.metadataProps.map((p) => [p.key!, p.value!]));
  let floatInit = 0;
  for (const t of graph.initializer as onnxProto.onnx.TensorProto[]) {
    const n = numel(t.dims.map(Number));
    if (t.dataType === onnx.TensorProto.DataType.FLOAT && n > 1) floatInit += n;
  }
  const params = metadata['nas_onnx.parameters'] !== undefined ? Number(metadata['nas_onnx.parameters']) : floatInit;
  const io = (vi: onnxProto.onnx.IValueInfoProto) => ({
    name: vi.name!,
    dtype: DT_NAME.get(vi.type?.tensorType?.elemType ?? 0) ?? String(vi.type?.tensorType?.elemType),
    shape: dimsOf(vi),
  });
  const inits = new Set(graph.initializer.map((t) => t.name!));
  const firstInput = graph.input.find((vi) => !inits.has(vi.name!));
  const b0 = firstInput ? dimsOf(firstInput)[0] : 1;
  const batch = typeof b0 === 'number' && b0 > 0 ? b0 : 1;
  return {
    irVersion: Number(m.irVersion),
    opset: Number(m.opsetImport.find((o) => !o.domain)?.version ?? 0),
    producer: m.producerName ?? '',
    nodes: graph.node.length,
    opCounts,
    parameters: params,
    initializerBytes: graph.initializer.reduce((b, t) => b + (t.rawData?.length ?? 0), 0),
    multiplyAdds: macs / batch,
    inputs: graph.input.filter((vi) => !inits.has(vi.name!)).map(io),
    outputs: graph.output.map(io),
    metadata,
  };
}
