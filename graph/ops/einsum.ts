/**
 * Einsum (two operands, explicit output, no repeated index within an operand):
 * emitter, shape rule and gradient rule. The gradient of an operand is the
 * einsum of the output gradient with the other operand, back to the operand's
 * indices; an index only the operand carries (summed out before any product)
 * would need a broadcast and is rejected.
 */
import { A, attrString, type Graph, type Value } from '../ir.js';
import { registerOp } from './registry.js';
import { requireInputs } from './util.js';

export const einsum = (g: Graph, equation: string, a: Value, b: Value): Value =>
  g.op('Einsum', [a, b], { equation: A.s(equation) });

function parse(eq: string): { ins: string[]; out: string } {
  const m = /^([a-z]+),([a-z]+)->([a-z]*)$/.exec(eq.replace(/\s+/g, ''));
  if (!m) throw new Error(`Einsum equation '${eq}' must look like 'ab,bc->ac' (two operands, explicit output)`);
  const ins = [m[1]!, m[2]!];
  for (const s of [...ins, m[3]!]) if (new Set(s).size !== s.length) throw new Error(`repeated index in '${s}'`);
  return { ins, out: m[3]! };
}

registerOp({
  type: 'Einsum',
  infer: (xs, attrs) => {
    const [a, b] = requireInputs(xs, 2);
    const { ins, out } = parse(attrString(attrs, 'equation', ''));
    const dims = new Map<string, number>();
    [a!, b!].forEach((v, k) => {
      if (v.shape.length !== ins[k]!.length)
        throw new Error(`operand ${k} has rank ${v.shape.length}, equation says ${ins[k]!.length}`);
      [...ins[k]!].forEach((c, i) => {
        const d = v.shape[i]!;
        if (dims.has(c) && dims.get(c) !== d) throw new Error(`index '${c}' is ${dims.get(c)} and ${d}`);
        dims.set(c, d);
      });
    });
    for (const c of out) if (!dims.has(c)) throw new Error(`output index '${c}' is in no operand`);
    return [{ dtype: a!.dtype, shape: [...out].map((c) => dims.get(c)!) }];
  },
  grad: (a) => {
    const { ins, out } = parse(attrString(a.node.attrs, 'equation', ''));
    return [0, 1].map((k) => {
      if (!a.needs[k]) return null;
      const mine = ins[k]!;
      const other = ins[1 - k]!;
      for (const c of mine)
        if (!out.includes(c) && !other.includes(c))
          throw new Error(`Einsum gradient: index '${c}' of operand ${k} is summed out alone`);
      return einsum(a.g, `${out},${other}->${mine}`, a.dy[0]!, a.x[1 - k]!);
    });
  },
});
