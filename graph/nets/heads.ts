/**
 * Task heads on a trunk's feature map: the classifier (global average pool →
 * linear) and the DARTS auxiliary heads. Pretext heads build on these.
 */
import type { Value } from '../ir.js';
import { avgPool, flatten, globalAvgPool } from '../ops/index.js';
import type { Layers } from './layers.js';

/** Global average pool → flatten → linear to `classes`. */
export function classifierHead(L: Layers, features: Value, classes: number, scope = 'classifier'): Value {
  const pooled = flatten(L.g, globalAvgPool(L.g, features), 1);
  return L.scope(scope, () => L.linear(pooled, classes));
}

/**
 * DARTS auxiliary head. CIFAR (8×8 input): ReLU → AvgPool 5 s3 → 1×1 conv 128 → BN → ReLU →
 * 2×2 conv 768 → BN → ReLU → linear. ImageNet (14×14): AvgPool 5 s2 and no BN after the 2×2 conv.
 * The linear layer reads the flattened map, whatever its spatial size.
 */
export function auxiliaryHead(L: Layers, x: Value, classes: number, net: 'cifar' | 'imagenet'): Value {
  return L.scope('auxiliary_head', () => {
    // CIFAR: 5×5 pool of stride 3 maps DARTS's 8×8 to 2×2; stride H−5 does so for any H in 6..8
    // (e.g. 7×7 from 28×28 Fashion-MNIST images)
    const h = x.shape[2]!;
    if (h < 5) throw new Error(`the auxiliary head needs a feature map of at least 5×5, got ${h}×${h}`);
    const stride = net === 'cifar' ? (h >= 6 && h <= 8 ? h - 5 : 3) : 2;
    let y = avgPool(L.g, L.relu(x), 5, stride, 0, false);
    y = L.scope('features/2', () => L.conv(y, 128, 1));
    y = L.relu(L.scope('features/3', () => L.bn(y, true)));
    y = L.scope('features/5', () => L.conv(y, 768, 2));
    if (net === 'cifar') y = L.scope('features/6', () => L.bn(y, true));
    y = L.relu(y);
    return L.scope('classifier', () => L.linear(flatten(L.g, y, 1), classes));
  });
}
