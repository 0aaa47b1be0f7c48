/**
 * Gated: a region of the graph that runs only when a boolean condition is
 * true (else its outputs are zeros), as a composite op that lowers to ONNX
 * `If` and has its own gradient rule. SSWP-NAS uses it so that a step
 * computes only the sampled ops of each edge (graph/nets/sswp.ts).
 *
 *     Gated(cond…, captured…) { body }  →  If(cond) then { body } else { zeros }
 *
 * - `body` (attribute) is a Graph whose nodes read the captured values of the
 *   enclosing graph by name (`Graph.capture`: listed as the node's inputs
 *   after the conditions, so pruning, parameter flattening and the
 *   serializer see them). It produces the node's outputs.
 * - `conds` (attribute, 1 or 2): the leading inputs are boolean scalars. The
 *   forward runs the body when input 0 is true; the backward runs when input
 *   `conds − 1` is true (SSWP: run = the op was sampled, grad = it is the
 *   active op; an op sampled but not active needs its output for the gate
 *   gradient only, and no backward work).
 * - Gradient rule: a second Gated node, conditioned on the backward
 *   condition, whose body recomputes the forward body and differentiates it
 *   with our autodiff (seeded with the incoming gradient). ORT frees a
 *   branch's intermediate values when the branch ends, so the backward
 *   recomputes them rather than keeping them: the memory of a gated region is
 *   its outputs alone, at the price of one more forward of the regions that run.
 *   Only single-output regions are differentiable.
 */
import { A, attrInt, Graph, GraphError, type Attrs, type Value } from '../ir.js';
import { registerOp, type OutSpec } from './registry.js';

function graphAttr(attrs: Attrs, name: string): Graph {
  const a = attrs[name];
  if (a?.kind !== 'graph') throw new Error(`attribute ${name} must be a graph`);
  return a.v;
}

const specsOf = (body: Graph): OutSpec[] => body.outputs.map((v) => ({ dtype: v.dtype, shape: [...v.shape] }));

registerOp({
  type: 'If',
  infer: (xs, attrs) => {
    if (xs[0]?.dtype !== 'bool' || xs[0].shape.reduce((a, b) => a * b, 1) !== 1)
      throw new Error('the condition must be one bool');
    const t = specsOf(graphAttr(attrs, 'then_branch'));
    const e = specsOf(graphAttr(attrs, 'else_branch'));
    if (t.length !== e.length || t.some((s, i) => s.dtype !== e[i]!.dtype || s.shape.join() !== e[i]!.shape.join()))
      throw new Error('then and else branches must produce the same outputs');
    return t;
  },
});

/**
 * Move the nodes appended to `g` since index `start` (they compute `out`)
 * into a Gated node run under `conds`; returns the gated value of `out`.
 * Nothing appended (e.g. an identity op): `out` itself.
 */
export function gateRegion(g: Graph, start: number, out: Value, conds: Value[]): Value {
  if (g.nodes.length === start) return out;
  if (conds.length < 1 || conds.length > 2) throw new GraphError('gateRegion: one or two conditions');
  const nodes = g.detach(start);
  const produced = new Set(nodes.flatMap((n) => n.outputs));
  if (!produced.has(out.name)) throw new GraphError(`gateRegion: ${out.name} is not computed by the region`);
  const captured: string[] = [];
  const seen = new Set<string>();
  for (const n of nodes)
    for (const i of n.inputs) if (i && !produced.has(i) && !seen.has(i)) seen.add(i), captured.push(i);
  const body = new Graph(`${g.name}/${out.name}`);
  body.training = g.training;
  for (const c of captured) body.capture(g.value(c), g.constants.get(c));
  for (const n of nodes) body.adopt(n, g);
  body.output(body.value(out.name));
  // the region's values now live in the body only: a later node reading one fails at build time
  for (const name of produced) g.values.delete(name);
  return g.node(
    'Gated',
    [...conds, ...captured.map((c) => g.value(c))],
    { conds: A.i(conds.length), body: { kind: 'graph', v: body } },
    1,
  )[0]!;
}

/** Copy `body`'s nodes into `dst`, captured values mapped by name to dst's values; returns the mapped outputs. */
function inline(dst: Graph, body: Graph, map: Map<string, Value>): Value[] {
  for (const n of body.nodes) {
    const ins = n.inputs.map((i) => (i ? map.get(i)! : null));
    const outs = dst.node(n.op, ins, n.attrs, n.outputs.length);
    n.outputs.forEach((o, k) => map.set(o, outs[k]!));
  }
  return body.outputs.map((o) => map.get(o.name)!);
}

registerOp({
  type: 'Gated',
  infer: (xs, attrs) => {
    const body = graphAttr(attrs, 'body');
    const conds = attrInt(attrs, 'conds', 1);
    for (let i = 0; i < conds; i++)
      if (!xs[i] || xs[i]!.dtype !== 'bool') throw new Error(`input ${i} must be a bool condition`);
    if (xs.length - conds !== body.outer.size)
      throw new Error(`the body captures ${body.outer.size} values, ${xs.length - conds} given`);
    return specsOf(body);
  },
  lower: ({ g, node, x, y }) => {
    const body = graphAttr(node.attrs, 'body');
    const els = new Graph(`${node.name}#else`);
    els.scope(`${node.name}#else`, () => {
      for (const v of y) els.output(els.op('Expand', [els.scalar(0, v.dtype), els.int64s([...v.shape])]));
    });
    return g.node(
      'If',
      [x[0]!],
      { then_branch: { kind: 'graph', v: body }, else_branch: { kind: 'graph', v: els } },
      y.length,
    );
  },
  grad: (a) => {
    const { g, node } = a;
    const body = graphAttr(node.attrs, 'body');
    const conds = attrInt(node.attrs, 'conds', 1);
    if (a.y.length !== 1) throw new Error('Gated: only single-output regions are differentiable');
    const dy = a.dy[0];
    const none = a.x.map((): Value | null => null);
    if (!dy) return none;
    // the backward body: captured values and dy from the enclosing graph, the forward recomputed
    const prefix = `${node.name}#bwd`;
    const sg = new Graph(prefix);
    sg.training = body.training;
    const map = new Map<string, Value>();
    const capturedNames = node.inputs.slice(conds);
    const differentiated: number[] = []; // input index of each body output
    sg.scope(prefix, () => {
      for (const c of capturedNames) map.set(c, sg.capture(g.value(c), body.constants.get(c)));
      const seed = sg.capture(dy);
      const [out] = inline(sg, body, map);
      const wrt = capturedNames.map((c, i) => (a.needs[conds + i] ? map.get(c)! : null));
      const grads = a.differentiate(
        sg,
        out!,
        wrt.filter((v): v is Value => !!v),
        { seed },
      );
      wrt.forEach((w, i) => {
        let d = w ? (grads.get(w.name) ?? null) : null;
        if (!d) return;
        // a branch output must be computed in the branch
        if (sg.outer.has(d.name)) d = sg.op('Identity', [d]);
        sg.output(d);
        differentiated.push(conds + i);
      });
    });
    const result = none.slice();
    if (!differentiated.length) return result;
    const condB = g.value(node.inputs[conds - 1]!);
    const outs = g.node(
      'Gated',
      [condB, ...[...sg.outer].map((c) => g.value(c))],
      { conds: A.i(1), body: { kind: 'graph', v: sg } },
      sg.outputs.length,
    );
    differentiated.forEach((i, k) => (result[i] = outs[k]!));
    return result;
  },
});
