/**
 * Training-graph assembly: losses and metrics, gradients (graph/autodiff),
 * global gradient-norm clipping and in-graph optimizer updates, so one ORT run
 * performs a whole training step.
 *
 * Naming contract of a step graph (train/ feeds and reads these):
 *   inputs:  every parameter by its name; optimizer state `<param>@<slot>`;
 *            `lr` (scalar); Adam also `adam_step_size` and `adam_bias2`
 *   outputs: `loss`, each metric by name, updated parameters `<param>@new`,
 *            updated optimizer state `<param>@<slot>@new`, updated BN state
 *            `<param>@new`, and requested gradients `<param>@grad`.
 */
import { GraphError, tensorOf, type Graph, type Param, type Value } from './ir.js';
import { gradients } from './autodiff.js';
import {
  add,
  argMax,
  cast,
  div,
  equal,
  logSoftmax,
  mul,
  reduceMean,
  reduceSum,
  reduceSumSquare,
  reshape,
  split,
  sqrt,
  sub,
  sum,
  unsqueeze,
} from './ops/index.js';

// ---- losses and metrics --------------------------------------------------------

export interface CrossEntropyOptions {
  /** Class axis of the logits (1: [N,K] or per-pixel [N,K,H,W]). */
  axis?: number;
  labelSmoothing?: number;
}

/** A one-hot float mask of integer labels along `axis` (Equal against a class-index constant). */
export function oneHot(g: Graph, labels: Value, classes: number, axis: number): Value {
  const rank = labels.shape.length + 1;
  const iotaShape = Array.from({ length: rank }, (_, i) => (i === axis ? classes : 1));
  const iota = g.constant(
    tensorOf(
      labels.dtype,
      iotaShape,
      Array.from({ length: classes }, (_, i) => i),
    ),
    'class_ids',
  );
  return cast(g, equal(g, unsqueeze(g, labels, [axis]), iota), 'float32');
}

/**
 * Mean cross entropy of logits against integer labels (labels' shape = the
 * logits' without the class axis), with optional label smoothing. Built from
 * LogSoftmax and a one-hot mask: no loss op that would fall back to the CPU.
 */
export function crossEntropy(g: Graph, logits: Value, labels: Value, o: CrossEntropyOptions = {}): Value {
  const axis = o.axis ?? 1;
  const k = logits.shape[axis]!;
  const positions = logits.shape.reduce((p, d) => p * d, 1) / k;
  let target = oneHot(g, labels, k, axis);
  const eps = o.labelSmoothing ?? 0;
  if (eps > 0) target = add(g, mul(g, target, g.scalar(1 - eps)), g.scalar(eps / k));
  const ll = reduceSum(g, mul(g, logSoftmax(g, logits, axis), target), [...logits.shape.keys()], false);
  return mul(g, ll, g.scalar(-1 / positions));
}

/** Number of positions whose arg-max equals the label (float scalar). */
export function correctCount(g: Graph, logits: Value, labels: Value, axis = 1): Value {
  const pred = argMax(g, logits, axis, false);
  const lab = labels.dtype === 'int64' ? labels : cast(g, labels, 'int64');
  const hits = cast(g, equal(g, pred, lab), 'float32');
  return reduceSum(g, hits, [...hits.shape.keys()], false);
}

// ---- optimizers ------------------------------------------------------------------

export type OptimizerSpec =
  | { kind: 'sgd'; momentum: number; weightDecay: number; nesterov?: boolean }
  | { kind: 'adam'; beta1: number; beta2: number; eps: number; weightDecay: number };

/** Optimizer state slots per parameter. */
export function optimizerSlots(o: OptimizerSpec): string[] {
  return o.kind === 'sgd' ? (o.momentum ? ['momentum'] : []) : ['exp_avg', 'exp_avg_sq'];
}

export interface StepSpec {
  loss: Value;
  /** Extra scalar outputs (accuracy counts, auxiliary losses, ...). */
  metrics?: Record<string, Value>;
  /** Parameters this step updates. */
  update: (p: Param) => boolean;
  optimizer: OptimizerSpec;
  /** Global gradient-norm clipping (DARTS: 5). */
  clipNorm?: number;
  /** Also output these parameters' gradients as `<name>@grad` (after clipping, before the update). */
  outputGrads?: (p: Param) => boolean;
  /** Differentiate but do not update: emit gradients only (no optimizer). */
  gradientsOnly?: boolean;
  /** Output BN running-statistic updates (default true). */
  stateOutputs?: boolean;
  /** Also differentiate w.r.t. these float graph inputs (e.g. SSWP's gates), output as `<name>@grad`. */
  inputGrads?: readonly string[];
  /**
   * Keep the updated parameters and their optimizer state in one flat buffer each
   * (input `weights@flat`, state `weights@flat@<slot>`, outputs `…@new`): one Split
   * feeds the parameters, the gradient arrives flat, and clipping and the update are a
   * handful of nodes instead of ~8 per parameter. Default true (not with gradientsOnly).
   */
  flat?: boolean;
}

/** A flat parameter buffer: where each member parameter lives in it. */
export interface FlatGroup {
  name: string;
  size: number;
  members: { name: string; offset: number; length: number; shape: number[] }[];
}

export const FLAT_WEIGHTS = 'weights@flat';

/**
 * Make `params` slices of one flat graph input: a Split (and Reshapes) at the head of
 * the graph produce them under their own names, so the rest of the graph is unchanged.
 */
export function flattenParams(g: Graph, params: readonly Param[], flatName = FLAT_WEIGHTS): FlatGroup {
  let off = 0;
  const members = params.map((p) => {
    const n = p.shape.reduce((a, b) => a * b, 1);
    const m = { name: p.name, offset: off, length: n, shape: [...p.shape] };
    off += n;
    return m;
  });
  const flat = g.input(flatName, 'float32', [off]);
  const start = g.nodes.length;
  g.scope('flat', () => {
    const pieces = split(
      g,
      flat,
      members.map((m) => m.length),
      0,
    );
    members.forEach((m, i) => {
      const piece = pieces[i]!;
      const v = piece.shape.join() === m.shape.join() ? piece : reshape(g, piece, m.shape);
      g.redirectValue(v.name, m.name, start);
      g.flatMember.set(m.name, flatName);
    });
  });
  g.nodes.unshift(...g.nodes.splice(start));
  return { name: flatName, size: off, members };
}

export interface StepGraphInfo {
  /** The flat parameter buffer this step updates (null: parameters updated one by one, in `updated`). */
  flat: FlatGroup | null;
  updated: string[];
  slots: string[];
  stateOutputs: string[];
  gradOutputs: string[];
  metrics: string[];
  /** Node count of the forward part, the gradient part and the update part. */
  nodes: { forward: number; backward: number; update: number };
}

/**
 * Turn a forward graph with a loss into a training-step graph: gradients,
 * optional clipping, optimizer update, and the outputs of the naming contract.
 * The optimizer updates one tensor per parameter, or the flat buffer (StepSpec.flat).
 */
export function assembleStep(g: Graph, s: StepSpec): StepGraphInfo {
  const forwardNodes = g.nodes.length;
  g.output(s.loss, 'loss');
  const metrics = Object.entries(s.metrics ?? {});
  for (const [name, v] of metrics) g.output(v, name);
  const params = [...g.params.values()].filter((p) => p.role !== 'state' && s.update(p));
  const gradWanted = [...g.params.values()].filter((p) => p.role !== 'state' && (s.update(p) || s.outputGrads?.(p)));
  const inputs = (s.inputGrads ?? []).map((n) => g.value(n));
  if (!params.length && !gradWanted.length && !inputs.length) throw new GraphError('the step updates no parameter');
  const flat = s.flat !== false && !s.gradientsOnly && params.length ? flattenParams(g, params) : null;
  // the tensors the optimizer updates: the flat buffer, or each parameter
  const units: { name: string; shape: readonly number[] }[] = flat ? [{ name: flat.name, shape: [flat.size] }] : params;
  const inFlat = new Set(flat ? params.map((p) => p.name) : []);
  const targets = flat ? [...units, ...gradWanted.filter((p) => !inFlat.has(p.name))] : gradWanted;
  const grads = g.scope('grad', () => gradients(g, s.loss, [...targets.map((t) => g.value(t.name)), ...inputs]));
  // a tensor the loss does not reach (e.g. a parameter of an unused op) gets a zero gradient
  const gradOf = new Map(targets.map((t) => [t.name, grads.get(t.name) ?? zeros(g, t.shape)]));
  const backwardEnd = g.nodes.length;
  if (s.clipNorm !== undefined) clipGradients(g, s.clipNorm, units, gradOf);
  const gradOutputs: string[] = [];
  if (flat) {
    const pieces = flatPieces(
      g,
      gradOf.get(flat.name)!,
      flat,
      params.filter((p) => s.outputGrads?.(p)),
    );
    for (const [name, d] of pieces) gradOutputs.push(g.output(d, `${name}@grad`).name);
  }
  for (const p of gradWanted)
    if (!inFlat.has(p.name) && s.outputGrads?.(p))
      gradOutputs.push(g.output(gradOf.get(p.name)!, `${p.name}@grad`).name);
  for (const v of inputs) gradOutputs.push(g.output(grads.get(v.name) ?? zeros(g, v.shape), `${v.name}@grad`).name);
  const slots = optimizerSlots(s.optimizer);
  if (!s.gradientsOnly) applyUpdates(g, s.optimizer, units, gradOf, flat ? () => 'update' : (n) => `update/${n}`);
  const stateOutputs: string[] = [];
  if (s.stateOutputs !== false)
    for (const [name, v] of g.stateUpdates) stateOutputs.push(g.output(v, `${name}@new`).name);
  return {
    flat,
    updated: flat || s.gradientsOnly ? [] : params.map((p) => p.name),
    slots,
    stateOutputs,
    gradOutputs,
    metrics: metrics.map(([n]) => n),
    nodes: { forward: forwardNodes, backward: backwardEnd - forwardNodes, update: g.nodes.length - backwardEnd },
  };
}

/** A float32 zero tensor (the gradient of a tensor the loss does not reach). */
function zeros(g: Graph, shape: readonly number[]): Value {
  return g.constant(
    tensorOf('float32', [...shape], new Array<number>(shape.reduce((a, b) => a * b, 1)).fill(0)),
    'zero_grad',
  );
}

/** Global gradient-norm clipping of the updated tensors' gradients (in `gradOf`, replaced); outputs `grad_norm`. */
function clipGradients(
  g: Graph,
  clipNorm: number,
  units: readonly { name: string }[],
  gradOf: Map<string, Value>,
): void {
  g.scope('clip', () => {
    const upd = units.map((u) => gradOf.get(u.name)!);
    const norm = sqrt(
      g,
      sum(
        g,
        upd.map((d) => reduceSumSquare(g, d, [...d.shape.keys()], false)),
      ),
    );
    const coef = g.op('Min', [div(g, g.scalar(clipNorm), add(g, norm, g.scalar(1e-6))), g.scalar(1)]);
    g.output(norm, 'grad_norm');
    for (const u of units) gradOf.set(u.name, mul(g, gradOf.get(u.name)!, coef));
  });
}

/** The gradients of `wanted` members of a flat buffer, cut out of its flat gradient (one Split). */
function flatPieces(g: Graph, dflat: Value, flat: FlatGroup, wanted: readonly Param[]): Map<string, Value> {
  const out = new Map<string, Value>();
  if (!wanted.length) return out;
  const pieces = split(
    g,
    dflat,
    flat.members.map((m) => m.length),
    0,
  );
  flat.members.forEach((m, i) => {
    if (!wanted.some((p) => p.name === m.name)) return;
    const piece = pieces[i]!;
    out.set(m.name, piece.shape.join() === m.shape.join() ? piece : reshape(g, piece, m.shape));
  });
  return out;
}

/**
 * The optimizer step of each updated tensor: inputs `lr` (Adam also `adam_step_size`,
 * `adam_bias2`) and `<name>@<slot>`, outputs `<name>@new` and `<name>@<slot>@new`.
 */
function applyUpdates(
  g: Graph,
  o: OptimizerSpec,
  units: readonly { name: string; shape: readonly number[] }[],
  gradOf: Map<string, Value>,
  scopeOf: (name: string) => string,
): void {
  const slots = optimizerSlots(o);
  const lr = g.input('lr', 'float32', []);
  const adamIn =
    o.kind === 'adam'
      ? { stepSize: g.input('adam_step_size', 'float32', []), bias2: g.input('adam_bias2', 'float32', []) }
      : null;
  for (const u of units) {
    g.scope(scopeOf(u.name), () => {
      const state = slots.map((slot) => g.input(`${u.name}@${slot}`, 'float32', [...u.shape]));
      const res = applyOptimizer(g, o, g.value(u.name), gradOf.get(u.name)!, state, lr, adamIn);
      g.output(res.w, `${u.name}@new`);
      res.state.forEach((v, i) => g.output(v, `${u.name}@${slots[i]}@new`));
    });
  }
}

/**
 * One optimizer update, PyTorch semantics (weight decay added to the gradient):
 *  SGD:  d = g + wd·w; buf = μ·buf + d; w −= lr·buf   (Nesterov: w −= lr·(d + μ·buf))
 *  Adam: d = g + wd·w; m = β1·m + (1−β1)·d; v = β2·v + (1−β2)·d²;
 *        w −= step_size · m / (√v · bias2 + ε), with step_size = lr/(1−β1ᵗ), bias2 = 1/√(1−β2ᵗ) fed per step.
 */
export function applyOptimizer(
  g: Graph,
  o: OptimizerSpec,
  w: Value,
  grad: Value,
  state: Value[],
  lr: Value,
  adam: { stepSize: Value; bias2: Value } | null,
): { w: Value; state: Value[] } {
  const d = o.weightDecay ? add(g, grad, mul(g, w, g.scalar(o.weightDecay))) : grad;
  if (o.kind === 'sgd') {
    if (!o.momentum) return { w: sub(g, w, mul(g, d, lr)), state: [] };
    const buf = add(g, mul(g, state[0]!, g.scalar(o.momentum)), d);
    const step = o.nesterov ? add(g, d, mul(g, buf, g.scalar(o.momentum))) : buf;
    return { w: sub(g, w, mul(g, step, lr)), state: [buf] };
  }
  const m = add(g, mul(g, state[0]!, g.scalar(o.beta1)), mul(g, d, g.scalar(1 - o.beta1)));
  const v = add(g, mul(g, state[1]!, g.scalar(o.beta2)), mul(g, mul(g, d, d), g.scalar(1 - o.beta2)));
  const denom = add(g, mul(g, sqrt(g, v), adam!.bias2), g.scalar(o.eps));
  return { w: sub(g, w, mul(g, div(g, m, denom), adam!.stepSize)), state: [m, v] };
}

/**
 * The precise-BN form of a training-form forward graph (train/runtime/precise-bn.ts):
 * its outputs become the BN state updates `<state>@new`, the rest is pruned.
 * Null when the network has no BN running statistics.
 */
export function bnStatsGraph(g: Graph): Graph | null {
  for (const [name, v] of g.stateUpdates) g.output(v, `${name}@new`);
  if (!g.stateUpdates.size) return null;
  g.prune();
  return g;
}

/** Mean of a value over all its elements (e.g. a per-sample loss). */
export const meanAll = (g: Graph, v: Value): Value => reduceMean(g, v, [...v.shape.keys()], false);
