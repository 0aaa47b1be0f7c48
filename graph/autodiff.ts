/**
 * Reverse-mode automatic differentiation over the IR. Given a scalar (or
 * seeded) loss and the values to differentiate, it appends the gradient graph
 * to the same Graph, using each op's gradient rule (graph/ops). Only nodes on a
 * path from a `wrt` value to the loss get gradient work; fan-out gradients are
 * accumulated with one Sum node per value.
 */
import { GraphError, numel, type Graph, type Node, type Value } from './ir.js';
import { getOp } from './ops/registry.js';
import './ops/index.js';
import { sum } from './ops/elementwise.js';

export interface GradOptions {
  /** Gradient of the loss itself (default: ones of the loss's shape). */
  seed?: Value;
}

/**
 * Append ∂loss/∂w for every w in `wrt`. Returns a map from each wrt value's
 * name to its gradient value; a wrt value the loss does not depend on maps to null.
 */
export function gradients(
  g: Graph,
  loss: Value,
  wrt: readonly Value[],
  opts: GradOptions = {},
): Map<string, Value | null> {
  const forward = g.nodes.slice(); // the gradient nodes appended below are not revisited
  const wrtSet = new Set(wrt.map((v) => v.name));

  // values the loss depends on (backward reachability)
  const lossNeeds = new Set([loss.name]);
  for (let i = forward.length - 1; i >= 0; i--) {
    const n = forward[i]!;
    if (n.outputs.some((o) => lossNeeds.has(o))) for (const x of n.inputs) if (x) lossNeeds.add(x);
  }
  // values that depend on some wrt value (forward reachability). Ops without a gradient
  // rule stop dependence; that is only right for integer/boolean results, so a float
  // result on a wrt → loss path without a rule is an error, not a silent zero gradient.
  const isFloat = (name: string): boolean => g.value(name).dtype === 'float32';
  const dependsOnWrt = new Set(wrtSet);
  for (const n of forward) {
    if (!n.inputs.some((i) => i && dependsOnWrt.has(i) && isFloat(i))) continue;
    if (!getOp(n.op).grad) {
      const o = n.outputs.find((v) => lossNeeds.has(v) && isFloat(v));
      if (o)
        throw new GraphError(
          `${n.op} node '${n.name}' has no gradient rule, but the loss depends on its output '${o}' through a differentiated value`,
        );
      continue;
    }
    for (const o of n.outputs) dependsOnWrt.add(o);
  }
  const active = (name: string): boolean =>
    dependsOnWrt.has(name) && lossNeeds.has(name) && g.value(name).dtype === 'float32';

  const contribs = new Map<string, Value[]>();
  const addContrib = (name: string, d: Value): void => {
    const v = g.value(name);
    if (d.shape.join() !== v.shape.join()) {
      throw new GraphError(`gradient of '${name}' has shape [${d.shape}] but the value is [${v.shape}]`);
    }
    const list = contribs.get(name);
    if (list) list.push(d);
    else contribs.set(name, [d]);
  };
  const gradOf = (name: string): Value | null => {
    const list = contribs.get(name);
    if (!list) return null;
    if (list.length > 1) {
      const s = g.scope('grad', () => sum(g, list));
      contribs.set(name, [s]);
      return s;
    }
    return list[0]!;
  };

  if (!active(loss.name)) return new Map(wrt.map((w) => [w.name, null]));
  const seed =
    opts.seed ??
    g.constant(
      { dtype: 'float32', shape: [...loss.shape], data: new Float32Array(numel(loss.shape)).fill(1) },
      'grad_seed',
    );
  addContrib(loss.name, seed);

  for (let i = forward.length - 1; i >= 0; i--) {
    const n: Node = forward[i]!;
    if (!n.outputs.some((o) => contribs.has(o))) continue;
    const needs = n.inputs.map((x) => !!x && active(x));
    if (!needs.some(Boolean)) continue;
    const def = getOp(n.op);
    const dy = n.outputs.map((o) => (active(o) ? gradOf(o) : null));
    const x = n.inputs.map((name) => (name ? g.value(name) : null));
    const y = n.outputs.map((name) => g.value(name));
    const dx = g.scope('grad', () => def.grad!({ g, node: n, x, y, dy, needs, differentiate: gradients }));
    n.inputs.forEach((name, k) => {
      if (needs[k] && dx[k]) addContrib(name, dx[k]!);
    });
  }
  return new Map(wrt.map((w) => [w.name, gradOf(w.name)]));
}
