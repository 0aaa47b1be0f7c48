/**
 * CrossEntropyIgnore: mean cross entropy of logits [N, K, …] against integer
 * labels [N, …] over the positions whose label is a class (0..K−1); any other
 * label — 255 in Cityscapes' labelTrainIds — is ignored, as PyTorch's
 * CrossEntropyLoss(ignore_index=255) does. A composite op: it lowers to
 * LogSoftmax and a one-hot mask (the ignored positions' one-hot rows are all
 * zero), never to SoftmaxCrossEntropyLoss / NegativeLogLikelihoodLoss, which
 * fall back to the CPU on the CUDA EP. Its gradient is the fused rule
 *     dlogits = (softmax ⊙ valid − onehot) · dloss / max(count, 1)
 * (valid: 1 where the label is a class). Outputs: loss (scalar), count (the
 * number of positions not ignored, float scalar) and the log-probabilities.
 * With every position ignored the loss and its gradient are 0 (PyTorch: NaN).
 */
import { tensorOf, type Graph, type Value } from '../ir.js';
import { registerOp } from './registry.js';
import { requireInputs } from './util.js';
import { cast, div, equal, exp, max, mul, neg, sub } from './elementwise.js';
import { logSoftmax, reduceSum } from './reduce.js';
import { unsqueeze } from './shape.js';

/** The label of pixels to ignore in segmentation masks (Cityscapes' labelTrainIds). */
export const IGNORE_LABEL = 255;

export interface CrossEntropyIgnoreOut {
  loss: Value;
  /** Positions not ignored (float scalar). */
  count: Value;
  logp: Value;
}

export function crossEntropyIgnore(g: Graph, logits: Value, labels: Value): CrossEntropyIgnoreOut {
  const [loss, count, logp] = g.node('CrossEntropyIgnore', [logits, labels]);
  return { loss: loss!, count: count!, logp: logp! };
}

/** Float one-hot of the labels along axis 1: zero rows where a label is no class (e.g. 255). */
function oneHotClasses(g: Graph, labels: Value, k: number): Value {
  const shape = [1, k, ...labels.shape.slice(1).map(() => 1)];
  const ids = g.constant(
    tensorOf(
      'int64',
      shape,
      Array.from({ length: k }, (_, i) => i),
    ),
    'class_ids',
  );
  return cast(g, equal(g, unsqueeze(g, labels, [1]), ids), 'float32');
}

const allAxes = (v: Value): number[] => [...v.shape.keys()];

registerOp({
  type: 'CrossEntropyIgnore',
  infer: (xs) => {
    const [x, y] = requireInputs(xs, 2);
    if (x!.shape.length < 2) throw new Error('logits must be [N, K, …]');
    if (y!.dtype !== 'int64') throw new Error('labels must be int64');
    const want = [x!.shape[0]!, ...x!.shape.slice(2)];
    if (y!.shape.join() !== want.join()) throw new Error(`labels must be [${want}] for logits [${x!.shape}]`);
    const scalar = { dtype: 'float32' as const, shape: [] };
    return [scalar, scalar, { dtype: 'float32', shape: [...x!.shape] }];
  },
  lower: ({ g, x }) => {
    const [logits, labels] = x as Value[];
    const logp = logSoftmax(g, logits!, 1);
    const oh = oneHotClasses(g, labels!, logits!.shape[1]!);
    const s = reduceSum(g, mul(g, logp, oh), allAxes(logp), false);
    const count = reduceSum(g, oh, allAxes(oh), false);
    return [div(g, neg(g, s), max(g, count, g.scalar(1))), count, logp];
  },
  grad: (a) => {
    const { g } = a;
    if (a.dy[1] || a.dy[2]) throw new Error('CrossEntropyIgnore: only the loss output is differentiable');
    if (!a.needs[0]) return [null, null];
    const [logits, labels] = a.x as Value[];
    const [, count, logp] = a.y;
    const oh = oneHotClasses(g, labels!, logits!.shape[1]!);
    const valid = reduceSum(g, oh, [1], true);
    const scale = div(g, a.dy[0]!, max(g, count!, g.scalar(1)));
    return [mul(g, sub(g, mul(g, exp(g, logp!), valid), oh), scale), null];
  },
});
