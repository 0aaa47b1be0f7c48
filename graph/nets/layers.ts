/**
 * Network layers with parameters: conv, batch norm (training form built from
 * standard ops, inference form as ONNX BatchNormalization), linear, and the
 * DARTS building blocks (ReLUConvBN, SepConv, DilConv, FactorizedReduce).
 *
 * Parameters are created in PyTorch's registration order (conv weight, then
 * BN weight/bias), so a reference implementation can be loaded positionally.
 * Initialization follows PyTorch's defaults: conv/linear weights and biases
 * U(±1/√fan_in), BN γ = 1, β = 0, running mean 0, running var 1.
 */
import { numel, tensorOf, type Graph, type Value } from '../ir.js';
import {
  add,
  batchNormInference,
  batchNormTrain,
  conv,
  div,
  gemm,
  mul,
  reduceMean,
  relu,
  reshape,
  pad,
  slice,
  sqrt,
  sub,
  concat,
} from '../ops/index.js';

export const BN_EPS = 1e-5;
export const BN_MOMENTUM = 0.1;

export interface LayerOptions {
  /** Emit running-statistic updates in training form (needed to export inference models). */
  trackRunningStats: boolean;
  /**
   * Compute ReLU(x) once per value x however many ops read it (the candidate
   * ops of an edge, and the edges leaving one state, all start with ReLU of the
   * same input). Same values and gradients, fewer nodes. Default true.
   */
  shareRelu?: boolean;
  /** Training-form BN as one composite op with a fused gradient rule (graph/ops/batchnorm.ts). Default true. */
  fusedBn?: boolean;
}

/**
 * Process-wide defaults of the graph-size levers, so benchmarks can measure
 * each one on and off (bench/steps.ts); builders use them unless told otherwise.
 */
export const LEVERS = { shareRelu: true, fusedBn: true, ifGates: true, sharePools: true };

export class Layers {
  constructor(
    readonly g: Graph,
    readonly opts: LayerOptions = { trackRunningStats: true },
  ) {}

  scope<T>(name: string, fn: () => T): T {
    return this.g.scope(name, fn);
  }

  conv(
    x: Value,
    cout: number,
    k: number,
    o: { stride?: number; pad?: number; dilation?: number; group?: number; bias?: boolean } = {},
  ): Value {
    const cin = x.shape[1]!;
    const group = o.group ?? 1;
    const fanIn = (cin / group) * k * k;
    const w = this.g.param('weight', [cout, cin / group, k, k], 'weight', { kind: 'fan_in_uniform', fanIn });
    const b = o.bias ? this.g.param('bias', [cout], 'weight', { kind: 'fan_in_uniform', fanIn }) : null;
    return conv(this.g, x, w, o, b);
  }

  /**
   * Batch norm over N·H·W per channel. Training form: batch statistics
   * (biased variance for normalization), running statistics updated with
   * momentum 0.1 and the unbiased variance, as PyTorch does.
   */
  bn(x: Value, affine: boolean): Value {
    const g = this.g;
    const c = x.shape[1]!;
    const gamma = affine ? g.param('weight', [c], 'weight', { kind: 'ones' }) : null;
    const beta = affine ? g.param('bias', [c], 'weight', { kind: 'zeros' }) : null;
    const track = this.opts.trackRunningStats || !g.training;
    const rm = track ? g.param('running_mean', [c], 'state', { kind: 'zeros' }) : null;
    const rv = track ? g.param('running_var', [c], 'state', { kind: 'ones' }) : null;
    if (!g.training) {
      const ones = g.constant(tensorOf('float32', [c], new Array<number>(c).fill(1)), 'bn_ones', `bn_ones|${c}`);
      const zeros = g.constant(tensorOf('float32', [c], new Array<number>(c).fill(0)), 'bn_zeros', `bn_zeros|${c}`);
      return batchNormInference(g, x, gamma ?? ones, beta ?? zeros, rm!, rv!, BN_EPS);
    }
    let y: Value;
    let mean: Value;
    let variance: Value;
    if (this.opts.fusedBn ?? LEVERS.fusedBn) {
      ({ y, mean, variance } = batchNormTrain(g, x, gamma, beta, BN_EPS));
    } else {
      // the same computation as plain ops, differentiated node by node (the lever's baseline)
      const axes = [0, ...x.shape.slice(2).map((_, i) => i + 2)];
      mean = reduceMean(g, x, axes);
      const xc = sub(g, x, mean);
      variance = reduceMean(g, mul(g, xc, xc), axes);
      y = div(g, xc, sqrt(g, add(g, variance, g.scalar(BN_EPS))));
      const bshape = [1, c, ...x.shape.slice(2).map(() => 1)];
      if (gamma && beta) y = add(g, mul(g, y, reshape(g, gamma, bshape)), reshape(g, beta, bshape));
    }
    if (rm && rv) {
      const n = numel(x.shape) / c;
      const m = BN_MOMENTUM;
      const upd = (run: Value, stat: Value, scale: number): Value =>
        add(g, mul(g, run, g.scalar(1 - m)), mul(g, reshape(g, stat, [c]), g.scalar(m * scale)));
      g.setStateUpdate(rm, upd(rm, mean, 1));
      g.setStateUpdate(rv, upd(rv, variance, n / Math.max(n - 1, 1)));
    }
    return y;
  }

  private readonly reluOf = new Map<string, Value>();
  private readonly sharedOf = new Map<string, Value>();

  /**
   * The value `make` builds, built once per key (a parameter-free op of a given input:
   * the supernet's pools, whose every edge leaving one state computes the same thing).
   */
  shared(key: string, make: () => Value): Value {
    let y = this.sharedOf.get(key);
    if (!y) this.sharedOf.set(key, (y = make()));
    return y;
  }

  relu(x: Value): Value {
    if (!(this.opts.shareRelu ?? LEVERS.shareRelu)) return relu(this.g, x);
    let y = this.reluOf.get(x.name);
    if (!y) this.reluOf.set(x.name, (y = relu(this.g, x)));
    return y;
  }

  /** y = x Wᵀ + b (PyTorch nn.Linear). */
  linear(x: Value, out: number, bias = true): Value {
    const inF = x.shape[1]!;
    const w = this.g.param('weight', [out, inF], 'weight', { kind: 'fan_in_uniform', fanIn: inF });
    const b = bias ? this.g.param('bias', [out], 'weight', { kind: 'fan_in_uniform', fanIn: inF }) : null;
    return gemm(this.g, x, w, b, false, true);
  }

  // ---- DARTS blocks ----------------------------------------------------------

  /** ReLU → k×k conv → BN. */
  reluConvBn(x: Value, cout: number, k: number, stride: number, pad: number, affine: boolean): Value {
    return this.scope('relu_conv_bn', () => {
      const y = this.scope('op1', () => this.conv(this.relu(x), cout, k, { stride, pad }));
      return this.scope('op2', () => this.bn(y, affine));
    });
  }

  /** ReLU → depthwise k×k (dilation) → 1×1 → BN. */
  dilConv(x: Value, cout: number, k: number, stride: number, pad: number, dilation: number, affine: boolean): Value {
    const cin = x.shape[1]!;
    return this.scope('dil_conv', () => {
      const r = this.relu(x);
      const d = this.scope('op1', () => this.conv(r, cin, k, { stride, pad, dilation, group: cin }));
      const p = this.scope('op2', () => this.conv(d, cout, 1));
      return this.scope('op3', () => this.bn(p, affine));
    });
  }

  /** Two stacked DilConv(dilation 1), the first strided: DARTS's SepConv. */
  sepConv(x: Value, cout: number, k: number, stride: number, pad: number, affine: boolean): Value {
    const cin = x.shape[1]!;
    return this.scope('sep_conv', () => {
      const a = this.scope('a', () => this.dilConv(x, cin, k, stride, pad, 1, affine));
      return this.scope('b', () => this.dilConv(a, cout, k, 1, pad, 1, affine));
    });
  }

  /**
   * ReLU → two 1×1 stride-2 convs to cout/2, the second on x shifted by one
   * pixel (x[:, :, 1:, 1:]) → concat → BN.
   */
  factorizedReduce(x: Value, cout: number, affine: boolean): Value {
    if (cout % 2) throw new Error('FactorizedReduce needs an even channel count');
    return this.scope('factorized_reduce', () => {
      const r = this.relu(x);
      const a = this.scope('conv_1', () => this.conv(r, cout / 2, 1, { stride: 2 }));
      const [h, w] = [x.shape[2]!, x.shape[3]!];
      let shifted = slice(this.g, r, [1, 1], [h, w], [2, 3]);
      // odd sizes: one zero row/col at the far end gives both halves ⌈H/2⌉ (even sizes never read it)
      if (h % 2 || w % 2) shifted = pad(this.g, shifted, [0, 0, 0, 0, 0, 0, h % 2, w % 2]);
      const b = this.scope('conv_2', () => this.conv(shifted, cout / 2, 1, { stride: 2 }));
      return this.scope('bn', () => this.bn(concat(this.g, [a, b], 1), affine));
    });
  }
}
