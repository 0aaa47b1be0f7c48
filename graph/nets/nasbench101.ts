/**
 * The NAS-Bench-101 network (Ying et al., ICML 2019; as the UnNAS study uses it)
 * built from a cell spec, as google-research/nasbench's model_builder does:
 *
 *   stem: 3×3 conv → BN → ReLU to `stemChannels` (128 in the benchmark)
 *   `numStacks` stacks of `cellsPerStack` cells; before every stack but the
 *   first a 2×2 max-pool of stride 2 ('same' padding) and the width doubles
 *   global average pool → linear (the head is the caller's: graph/nets/heads.ts
 *   or graph/nets/tasks.ts)
 *
 * A cell follows `nb101CellPlan` (graph/spaces/nasbench101.ts) exactly:
 * interior vertex t sums its interior sources (truncated to its width when one
 * channel wider) and, on an input edge, a 1×1 conv-BN-ReLU projection of the
 * cell input, then applies conv3x3-bn-relu, conv1x1-bn-relu or maxpool3x3
 * (3×3, stride 1, same padding). The output concatenates the vertices that
 * feed it (in vertex order) and adds a projection of the input on an
 * input→output edge.
 *
 * Convolutions have no bias; BN is affine (γ, β trainable), so the weight
 * parameter count equals the benchmark's `trainable_parameters` (the test
 * checks the README's Inception-like cell: 2,694,282). BN running statistics
 * use Layers' PyTorch convention (momentum 0.1; nasbench's TF BN uses 0.997,
 * i.e. 0.003 in that convention) — irrelevant for the trainable count, and
 * the study runner can recompute them precisely before evaluation.
 */
import { A, Graph, type Value } from '../ir.js';
import { concat, maxPool, slice, sum, add } from '../ops/index.js';
import { nb101CellPlan, nb101NetworkCellChannels, type Nb101CellPlan, type Nb101Spec } from '../spaces/nasbench101.js';
import { Layers } from './layers.js';
import { classifierHead } from './heads.js';
import type { InputSpec } from './models.js';

/** Network shape options (defaults: the benchmark's 128 channels, 3 stacks × 3 cells). */
export interface Nb101NetOptions {
  stemChannels?: number;
  numStacks?: number;
  cellsPerStack?: number;
}

/** k×k conv (same padding, no bias) → BN (affine) → ReLU: nasbench's conv_bn_relu. */
export function convBnRelu(L: Layers, x: Value, cout: number, k: number): Value {
  const y = L.scope('conv', () => L.conv(x, cout, k, { pad: (k - 1) / 2 }));
  return L.relu(L.scope('bn', () => L.bn(y, true)));
}

/**
 * 2×2 max-pool of stride 2 with TF's 'same' padding: an odd side gets one
 * padding row/column at the end (ignored by the max), so the output is ⌈H/2⌉.
 */
export function maxPool2x2Same(g: Graph, x: Value): Value {
  const [h, w] = x.shape.slice(2) as [number, number];
  if (h % 2 === 0 && w % 2 === 0) return maxPool(g, x, 2, 2, 0);
  return g.node(
    'MaxPool',
    [x],
    { kernel_shape: A.ints([2, 2]), strides: A.ints([2, 2]), pads: A.ints([0, 0, h % 2, w % 2]) },
    g.training ? 2 : 1,
  )[0]!;
}

/** One cell from its plan (`nb101CellPlan(spec, cin, cout)`); x must have `plan.inChannels` channels. */
export function nb101Cell(L: Layers, x: Value, plan: Nb101CellPlan): Value {
  const g = L.g;
  if (x.shape[1] !== plan.inChannels)
    throw new Error(`NB101 cell: input has ${x.shape[1]} channels, the plan expects ${plan.inChannels}`);
  const tensors = new Map<number, Value>([[0, x]]);
  for (const v of plan.vertices) {
    const y = L.scope(`vertex_${v.vertex}`, () => {
      const terms = v.inputs.map((inp) => {
        if (inp.kind === 'project') return L.scope('projection', () => convBnRelu(L, x, v.channels, 1));
        const src = tensors.get(inp.src)!;
        return inp.kind === 'identity' ? src : slice(g, src, [0], [v.channels], [1]);
      });
      if (terms.length === 0) throw new Error(`NB101 cell: vertex ${v.vertex} has no input (prune the spec first)`);
      const vin = sum(g, terms);
      switch (v.op) {
        case 'conv3x3-bn-relu':
          return convBnRelu(L, vin, v.channels, 3);
        case 'conv1x1-bn-relu':
          return convBnRelu(L, vin, v.channels, 1);
        case 'maxpool3x3':
          return maxPool(g, vin, 3, 1, 1);
      }
    });
    if (y.shape[1] !== v.channels)
      throw new Error(`NB101 cell: vertex ${v.vertex} has ${y.shape[1]} channels, expected ${v.channels}`);
    tensors.set(v.vertex, y);
  }
  return L.scope('output', () => {
    const parts = plan.outputConcat.map((t) => tensors.get(t)!);
    const projected = plan.outputInputProjection
      ? L.scope('projection', () => convBnRelu(L, x, plan.outChannels, 1))
      : null;
    if (parts.length === 0) {
      if (!projected) throw new Error('NB101 cell: the output has no input');
      return projected;
    }
    const cat = parts.length === 1 ? parts[0]! : concat(g, parts, 1);
    return projected ? add(g, cat, projected) : cat;
  });
}

/** The network's feature map (before global pooling) for a cell spec. */
export function nb101Trunk(L: Layers, x: Value, spec: Nb101Spec, o: Nb101NetOptions = {}): Value {
  const stem = o.stemChannels ?? 128;
  const slots = nb101NetworkCellChannels(stem, o.numStacks ?? 3, o.cellsPerStack ?? 3);
  let net = L.scope('stem', () => convBnRelu(L, x, stem, 3));
  const plans = new Map<string, Nb101CellPlan>();
  for (const s of slots) {
    if (s.downsampleBefore) net = L.scope(`downsample${s.stack}`, () => maxPool2x2Same(L.g, net));
    const key = `${s.inChannels}>${s.outChannels}`;
    let plan = plans.get(key);
    if (!plan) plans.set(key, (plan = nb101CellPlan(spec, s.inChannels, s.outChannels)));
    const p = plan;
    const input = net;
    net = L.scope(`stack${s.stack}/module${s.cell}`, () => nb101Cell(L, input, p));
  }
  return net;
}

export interface Nb101NetBuildOptions extends InputSpec, Nb101NetOptions {
  spec: Nb101Spec;
  classes: number;
  training: boolean;
}

export interface BuiltNb101Net {
  g: Graph;
  x: Value;
  features: Value;
  logits: Value;
}

/** The whole classification network (trunk, global average pool, linear), like buildEvalNet. */
export function buildNb101Net(o: Nb101NetBuildOptions): BuiltNb101Net {
  const g = new Graph('nasbench101');
  g.training = o.training;
  const L = new Layers(g, { trackRunningStats: true });
  const x = g.input('x', 'float32', [o.batch, o.channels, o.size, o.size]);
  const features = nb101Trunk(L, x, o.spec, o);
  const logits = classifierHead(L, features, o.classes);
  g.meta.set('nas_onnx.kind', 'network');
  g.meta.set('nas_onnx.nb101_spec', JSON.stringify({ matrix: o.spec.matrix, ops: o.spec.ops }));
  g.meta.set(
    'nas_onnx.config',
    JSON.stringify({
      net: 'nasbench101',
      stemChannels: o.stemChannels ?? 128,
      numStacks: o.numStacks ?? 3,
      cellsPerStack: o.cellsPerStack ?? 3,
      classes: o.classes,
      input: [o.channels, o.size, o.size],
    }),
  );
  return { g, x, features, logits };
}
