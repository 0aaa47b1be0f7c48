/**
 * Finite-difference gradient checking: builds loss = Σ y ⊙ R (R fixed random,
 * |R| in [0.5, 1.5])
 * over a graph fragment, emits its gradient with graph/autodiff, runs both in
 * onnxruntime (CPU) and compares with central differences.
 *
 * The analytic gradient is the graph's own (seeded by the in-graph loss). For
 * the finite differences the loss is re-summed here in float64 from the
 * fetched outputs y, so the only float32 rounding left in (L(x+h) − L(x−h))/2h
 * is that of the few y elements a perturbation moves (≈ 6e-8·|y|/h each),
 * not that of a float32 reduction over the whole output.
 */
import { Graph, attrInts, numel, type Lowering, type Node, type Value } from '../../graph/ir.js';
import { gradients } from '../../graph/autodiff.js';
import { serialize } from '../../graph/onnx.js';
import { mul, reduceSum } from '../../graph/ops/index.js';
import { Session, f32, toF32 } from '../../train/runtime/session.js';
import { Rng } from '../../graph/rng.js';

export interface GradInput {
  name: string;
  shape: number[];
  /** Values; default N(0,1) from the seed. */
  data?: Float32Array;
  /** Check this input's gradient (default true). Unchecked inputs are not differentiated at all. */
  check?: boolean;
}

export interface GradCheckOptions {
  seed?: number;
  /** Central-difference step (default 1e-2). */
  h?: number;
  /** Check this many distinct random elements of each input instead of all. */
  samples?: number;
  /** Graph training form (default true). */
  training?: boolean;
  /** EP-specific lowering of the checked graph (default: portable standard ops, also checked to run on CUDA). */
  lowering?: Lowering;
  /**
   * Parameters that `build` creates (g.param, e.g. through graph/nets Layers) are
   * fed like inputs, with N(0, paramStd²) values (default 0.5; 1 + N(0, 0.1²)
   * for those initialized to ones, i.e. BN scales), and checked too; BN running
   * statistics (role 'state') are fed (1 + N(0, 0.1²) or N(0, 0.1²)), not checked.
   */
  paramStd?: number;
  /**
   * Leave out elements whose forward and backward differences (L(x+h) − L(x))/h
   * and (L(x) − L(x−h))/h differ by more than kinkTol·max(1, |fd|): a kink (ReLU
   * after a BN that a perturbation shifts as a whole) within h of the point. A
   * wrong rule gives one-sided differences that agree with each other and not
   * with it, so it is still caught; callers bound `kinks`.
   */
  kinkTol?: number;
}

export interface GradCheckResult {
  maxAbsErr: number;
  /** max over elements of |fd − analytic| / max(1, |fd|). */
  maxRelErr: number;
  checked: number;
  /** All nodes of the checked graph (forward, loss, gradient). */
  nodes: number;
  /** Nodes emitted by autodiff. */
  gradNodes: number;
  /** Op histogram of the nodes emitted by autodiff. */
  gradOps: Record<string, number>;
  /** Op types of the forward fragment built by `build`. */
  forwardOps: string[];
  /** Op histogram of the whole graph as ORT runs it (composites and EP-specific forms lowered). */
  loweredOps: Record<string, number>;
  /** The gradients of the checked inputs, as computed by the graph. */
  analytic: Float32Array[];
  /** The outputs y at the unperturbed inputs. */
  outputs: Float32Array[];
  /** Largest |finite difference| seen: shows the check was not trivially 0 = 0. */
  maxAbsGrad: number;
  /** Where the largest relative error was. */
  worst: { input: string; index: number; fd: number; analytic: number } | null;
  /** Elements left out as kink straddles (with `kinkTol`). */
  kinks: number;
}

/**
 * Reasons a gradient node would not run on ORT's CUDA EP (ops it lacks, or
 * attributes its kernels reject). Empty when all are fine.
 */
export function cudaIssues(nodes: readonly Node[]): string[] {
  const banned = new Set(['SoftmaxCrossEntropyLoss', 'NegativeLogLikelihoodLoss', 'Bernoulli']);
  const out: string[] = [];
  for (const n of nodes) {
    // subgraphs (Gated/If branches) run on the EP too
    for (const a of Object.values(n.attrs)) if (a.kind === 'graph') out.push(...cudaIssues(a.v.nodes));
    if (banned.has(n.op)) out.push(`${n.name}: ${n.op} has no CUDA kernel for training here`);
    if (n.op === 'ConvTranspose' || n.op === 'AveragePool' || n.op === 'MaxPool') {
      const p = attrInts(n.attrs, 'pads', []);
      const r = p.length / 2;
      if (p.some((v, i) => i < r && v !== p[i + r])) out.push(`${n.name}: ${n.op} with asymmetric pads [${p}]`);
    }
  }
  return out;
}

export async function gradCheck(
  given: GradInput[],
  build: (g: Graph, xs: Value[]) => Value | Value[],
  o: GradCheckOptions = {},
): Promise<GradCheckResult> {
  let inputs = given;
  const rng = new Rng(o.seed ?? 1);
  const g = new Graph('gradcheck');
  g.training = o.training ?? true;
  if (o.lowering) g.lowering = o.lowering;
  const xs = inputs.map((i) => g.input(i.name, 'float32', i.shape));
  const outsRaw = build(g, xs);
  const outs = Array.isArray(outsRaw) ? outsRaw : [outsRaw];
  for (const p of g.params.values()) {
    const std = p.role === 'state' ? 0.1 : (o.paramStd ?? 0.5);
    // scales (BN γ, init 'ones') near 1: a γ near 0 packs a channel around ReLU's kink
    const data = Float32Array.from({ length: numel(p.shape) }, () =>
      p.init.kind === 'ones' ? 1 + 0.1 * rng.normal() : std * rng.normal(),
    );
    inputs = [...inputs, { name: p.name, shape: [...p.shape], data, check: p.role !== 'state' }];
    xs.push(g.value(p.name));
  }
  const forwardOps = [...new Set(g.nodes.map((n) => n.op))];
  let loss: Value | null = null;
  const rs: Float32Array[] = [];
  outs.forEach((y, k) => {
    // R = ±U(0.5, 1.5): every output element weighs in, none by a negligible weight
    const r = new Float32Array(numel(y.shape));
    for (let i = 0; i < r.length; i++) r[i] = (rng.next() < 0.5 ? -1 : 1) * rng.uniform(0.5, 1.5);
    rs.push(r);
    g.output(y, `y${k}`);
    const term = reduceSum(
      g,
      mul(g, y, g.constant({ dtype: 'float32', shape: [...y.shape], data: r }, 'R')),
      [...y.shape.keys()],
      false,
    );
    loss = loss ? g.op('Add', [loss, term]) : term;
  });
  g.output(loss!, 'loss');
  const wrt = xs.filter((_, i) => inputs[i]!.check !== false);
  const before = g.nodes.length;
  const grads = gradients(g, loss!, wrt);
  const gradNodeList = g.nodes.slice(before);
  const issues = g.lowering.nchwcBlock ? [] : cudaIssues(gradNodeList);
  if (issues.length) throw new Error(`gradient graph would not run on CUDA: ${issues.join('; ')}`);
  const gradOps: Record<string, number> = {};
  for (const n of gradNodeList) gradOps[n.op] = (gradOps[n.op] ?? 0) + 1;
  for (const w of wrt) {
    const d = grads.get(w.name);
    if (!d) throw new Error(`no gradient reached ${w.name}`);
    g.output(d, `grad_${w.name}`);
  }
  const bytes = serialize(g, { params: 'inputs' });
  const loweredOps: Record<string, number> = {};
  for (const n of g.nodes) loweredOps[n.op] = (loweredOps[n.op] ?? 0) + 1;
  const sess = await Session.create(bytes, { optimization: 'disabled' });
  const data = inputs.map((i) => i.data ?? Float32Array.from({ length: numel(i.shape) }, () => rng.normal()));
  const feeds = () => Object.fromEntries(inputs.map((inp, k) => [inp.name, f32(data[k]!, inp.shape)]));
  const yNames = outs.map((_, k) => `y${k}`);
  const lossAt = async (): Promise<number> => {
    const res = await sess.run(feeds(), yNames);
    let s = 0;
    yNames.forEach((nm, k) => {
      const y = toF32(res[nm], nm);
      const r = rs[k]!;
      for (let i = 0; i < y.length; i++) s += y[i]! * r[i]!;
    });
    return s;
  };
  const res = await sess.run(feeds());
  const outputs = yNames.map((nm) => Float32Array.from(toF32(res[nm], nm)));
  const analytic = inputs.filter((i) => i.check !== false).map((i) => Float32Array.from(toF32(res[`grad_${i.name}`])));
  const h = o.h ?? 1e-2;
  const l0 = o.kinkTol === undefined ? null : await lossAt();
  let maxAbs = 0;
  let maxRel = 0;
  let maxAbsGrad = 0;
  let checked = 0;
  let kinks = 0;
  let worst: GradCheckResult['worst'] = null;
  try {
    for (let k = 0; k < inputs.length; k++) {
      if (inputs[k]!.check === false) continue;
      const an = toF32(res[`grad_${inputs[k]!.name}`]);
      const n = an.length;
      if (n !== data[k]!.length)
        throw new Error(`gradient of ${inputs[k]!.name} has ${n} elements, expected ${data[k]!.length}`);
      const idx =
        o.samples && o.samples < n ? Array.from(rng.permutation(n).subarray(0, o.samples)) : [...Array(n).keys()];
      for (const i of idx) {
        const orig = data[k]![i]!;
        data[k]![i] = orig + h;
        const lp = await lossAt();
        data[k]![i] = orig - h;
        const lm = await lossAt();
        data[k]![i] = orig;
        const fd = (lp - lm) / (2 * h);
        // one-sided differences disagree by ~h·|f''| where f is smooth, by a jump where a kink lies within h
        if (o.kinkTol !== undefined && Math.abs(lp - 2 * l0! + lm) / h > o.kinkTol * Math.max(1, Math.abs(fd))) {
          kinks++;
          continue;
        }
        const err = Math.abs(fd - an[i]!);
        const rel = err / Math.max(1, Math.abs(fd));
        maxAbs = Math.max(maxAbs, err);
        maxAbsGrad = Math.max(maxAbsGrad, Math.abs(fd));
        if (rel >= maxRel) {
          maxRel = rel;
          worst = { input: inputs[k]!.name, index: i, fd, analytic: an[i]! };
        }
        checked++;
      }
    }
  } finally {
    await sess.release();
  }
  return {
    maxAbsErr: maxAbs,
    maxRelErr: maxRel,
    checked,
    nodes: g.nodes.length,
    gradNodes: gradNodeList.length,
    gradOps,
    forwardOps,
    loweredOps,
    analytic,
    outputs,
    maxAbsGrad,
    worst,
    kinks,
  };
}
