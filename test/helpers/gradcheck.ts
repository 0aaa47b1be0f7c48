/**
 * Finite-difference gradient checking: builds loss = Σ y ⊙ R (R fixed random)
 * over a graph fragment, emits its gradient with graph/autodiff, runs both in
 * onnxruntime (CPU) and compares with central differences.
 */
import { Graph, numel, type Value } from '../../graph/ir.js';
import { gradients } from '../../graph/autodiff.js';
import { serialize } from '../../graph/onnx.js';
import { mul, reduceSum } from '../../graph/ops/index.js';
import { Session, f32, scalarOf, toF32 } from '../../train/runtime.js';
import { Rng } from '../../graph/rng.js';

export interface GradInput {
  name: string;
  shape: number[];
  /** Values; default N(0,1) from the seed. */
  data?: Float32Array;
  /** Check this input's gradient (default true). */
  check?: boolean;
}

export interface GradCheckResult {
  maxAbsErr: number;
  maxRelErr: number;
  checked: number;
  nodes: number;
}

export async function gradCheck(
  inputs: GradInput[],
  build: (g: Graph, xs: Value[]) => Value | Value[],
  o: { seed?: number; h?: number; samples?: number; training?: boolean } = {},
): Promise<GradCheckResult> {
  const rng = new Rng(o.seed ?? 1);
  const g = new Graph('gradcheck');
  g.training = o.training ?? true;
  const xs = inputs.map((i) => g.input(i.name, 'float32', i.shape));
  const outsRaw = build(g, xs);
  const outs = Array.isArray(outsRaw) ? outsRaw : [outsRaw];
  let loss: Value | null = null;
  for (const y of outs) {
    const r = new Float32Array(numel(y.shape));
    for (let i = 0; i < r.length; i++) r[i] = rng.normal();
    const term = reduceSum(g, mul(g, y, g.constant({ dtype: 'float32', shape: [...y.shape], data: r }, 'R')), [...y.shape.keys()], false);
    loss = loss ? g.op('Add', [loss, term]) : term;
  }
  g.output(loss!, 'loss');
  const wrt = xs.filter((_, i) => inputs[i]!.check !== false);
  const grads = gradients(g, loss!, wrt);
  for (const w of wrt) {
    const d = grads.get(w.name);
    if (!d) throw new Error(`no gradient reached ${w.name}`);
    g.output(d, `grad_${w.name}`);
  }
  const sess = await Session.create(serialize(g, { params: 'inputs' }), { optimization: 'disabled' });
  const data = inputs.map((i) => i.data ?? Float32Array.from({ length: numel(i.shape) }, () => rng.normal()));
  const feeds = () => Object.fromEntries(inputs.map((inp, k) => [inp.name, f32(data[k]!, inp.shape)]));
  const res = await sess.run(feeds());
  const h = o.h ?? 1e-2;
  let maxAbs = 0;
  let maxRel = 0;
  let checked = 0;
  for (let k = 0; k < inputs.length; k++) {
    if (inputs[k]!.check === false) continue;
    const an = toF32(res[`grad_${inputs[k]!.name}`]);
    const n = an.length;
    const idx = o.samples && o.samples < n ? Array.from({ length: o.samples }, () => rng.int(n)) : [...Array(n).keys()];
    for (const i of idx) {
      const orig = data[k]![i]!;
      data[k]![i] = orig + h;
      const lp = scalarOf((await sess.run(feeds(), ['loss'])).loss);
      data[k]![i] = orig - h;
      const lm = scalarOf((await sess.run(feeds(), ['loss'])).loss);
      data[k]![i] = orig;
      const fd = (lp - lm) / (2 * h);
      const err = Math.abs(fd - an[i]!);
      maxAbs = Math.max(maxAbs, err);
      maxRel = Math.max(maxRel, err / Math.max(1, Math.abs(fd)));
      checked++;
    }
  }
  await sess.release();
  return { maxAbsErr: maxAbs, maxRelErr: maxRel, checked, nodes: g.nodes.length };
}
