/**
 * Expansion of composite ops (OpDef.lower) into standard ONNX nodes, and the
 * execution-provider-specific formulations of standard ops (OpDef.lowerFor, per
 * g.lowering), in place and in topological order. Each replaced node's outputs
 * keep their names: the expansion's nodes are rewired to produce them.
 */
import { GraphError, type Graph, type Node } from './ir.js';
import { getOp } from './ops/registry.js';

export function hasComposites(g: Graph): boolean {
  const ep = Object.keys(g.lowering).length > 0;
  return g.nodes.some((n) => {
    const d = getOp(n.op);
    return d.lower || (ep && d.lowerFor);
  });
}

export function lowerComposites(g: Graph): number {
  if (!hasComposites(g)) return 0;
  const orig = g.nodes.splice(0, g.nodes.length);
  let count = 0;
  const ep = Object.keys(g.lowering).length > 0;
  for (const n of orig) {
    const def = getOp(n.op);
    const rule = def.lower ?? (ep ? def.lowerFor : undefined);
    if (!rule) {
      g.nodes.push(n);
      continue;
    }
    const start = g.nodes.length;
    const x = n.inputs.map((i) => (i ? g.value(i) : null));
    const y = n.outputs.map((o) => g.value(o));
    const vals = g.scope(n.name, () => rule({ g, node: n, x, y }));
    if (!vals) {
      g.nodes.push(n);
      continue;
    }
    count++;
    if (vals.length !== y.length)
      throw new GraphError(`${n.op} lowering returned ${vals.length} values for ${y.length} outputs`);
    const rename = new Map<string, string>();
    vals.forEach((v, k) => {
      const target = y[k]!.name;
      const emitted = g.nodes.slice(start).some((m) => m.outputs.includes(v.name));
      if (emitted && !rename.has(v.name)) rename.set(v.name, target);
      else g.nodes.push({ op: 'Identity', name: g.fresh('Identity'), inputs: [v.name], outputs: [target], attrs: {} });
    });
    for (let i = start; i < g.nodes.length; i++) {
      const m = g.nodes[i]!;
      if (![...m.inputs, ...m.outputs].some((s) => rename.has(s))) continue;
      const re = (s: string): string => rename.get(s) ?? s;
      const fixed: Node = { ...m, inputs: m.inputs.map(re), outputs: m.outputs.map(re) };
      g.nodes[i] = fixed;
      g.rebindProducer(fixed);
    }
    for (const old of rename.keys()) g.values.delete(old);
  }
  if (count && ep) removeDeadNodes(g);
  return count;
}

/**
 * Drop nodes none of whose outputs reaches a graph output or a state update (a
 * lowering can leave e.g. the Reshape of a parameter no node reads any more).
 */
export function removeDeadNodes(g: Graph): number {
  const live = new Set<string>();
  for (const o of g.outputs) live.add(g.aliasOf.get(o.name) ?? o.name);
  for (const v of g.stateUpdates.values()) live.add(v.name);
  const keep = new Array<boolean>(g.nodes.length).fill(false);
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i]!;
    if (!n.outputs.some((o) => live.has(o))) continue;
    keep[i] = true;
    for (const x of n.inputs) if (x) live.add(x);
    // an If branch reads values of this graph by name
    for (const a of Object.values(n.attrs)) if (a.kind === 'graph') for (const x of a.v.outer) live.add(x);
  }
  const before = g.nodes.length;
  const kept = g.nodes.filter((_, i) => keep[i]);
  g.nodes.length = 0;
  g.nodes.push(...kept);
  return before - kept.length;
}
