/**
 * DARTS networks (Liu et al., ICLR 2019; operations.py, model_search.py and
 * model.py of github.com/quark0/darts): the candidate operations, the search
 * supernet (MixedOp edges weighted by softmax(α), α graph parameters of role
 * 'arch'), and discretized networks from a genotype (CIFAR and ImageNet
 * layouts, auxiliary-head tap, drop path).
 *
 * Builders return the trunk's feature map; heads (graph/nets/heads.ts) turn it
 * into logits for a task.
 */
import type { Value } from '../ir.js';
import { avgPool, maxPool, mul, split, softmax, sum, add, zeros, concat } from '../ops/index.js';
import { EDGES, PRIMITIVES, STEPS, type Genotype, type OpName } from '../genotype.js';
import { LEVERS, type Layers } from './layers.js';

/**
 * One candidate op on an edge. `search` adds the BN (affine = false) that
 * the supernet puts after pools. Returns null for `none` (its output is zero,
 * so it contributes nothing to a sum).
 */
export function dartsOp(
  L: Layers,
  name: OpName,
  x: Value,
  c: number,
  stride: number,
  affine: boolean,
  search: boolean,
  /** Parameter-free pools may be shared with other edges reading x (supernet cells; see searchPool). */
  share = false,
): Value | null {
  return L.scope(name, () => {
    switch (name) {
      case 'none':
        return null;
      case 'max_pool_3x3':
      case 'avg_pool_3x3':
        return searchPool(L, name, x, stride, search, share);
      case 'skip_connect':
        return stride === 1 ? x : L.factorizedReduce(x, c, affine);
      case 'sep_conv_3x3':
        return L.sepConv(x, c, 3, stride, 1, affine);
      case 'sep_conv_5x5':
        return L.sepConv(x, c, 5, stride, 2, affine);
      case 'dil_conv_3x3':
        return L.dilConv(x, c, 3, stride, 2, 2, affine);
      case 'dil_conv_5x5':
        return L.dilConv(x, c, 5, stride, 4, 2, affine);
    }
  });
}

/**
 * A pool (with the supernet's non-affine BN after it when `search`). Without
 * parameters (no running statistics), every edge leaving one state computes the
 * same pool of it: built once per (input, pool, stride) (LEVERS.sharePools).
 */
function searchPool(
  L: Layers,
  name: 'max_pool_3x3' | 'avg_pool_3x3',
  x: Value,
  stride: number,
  search: boolean,
  share: boolean,
): Value {
  const make = (): Value => {
    const y = name === 'max_pool_3x3' ? maxPool(L.g, x, 3, stride, 1) : avgPool(L.g, x, 3, stride, 1, false);
    return search ? L.scope('bn', () => L.bn(y, false)) : y;
  };
  const parameterFree = !search || (L.g.training && !L.opts.trackRunningStats);
  if (!share || !parameterFree || !LEVERS.sharePools) return make();
  return L.shared(`${name}|${x.name}|${stride}|${search}`, make);
}

/** Output shape of an op on x (for `none`, which produces zeros). */
function opShape(x: Value, c: number, stride: number): number[] {
  return [x.shape[0]!, c, Math.ceil(x.shape[2]! / stride), Math.ceil(x.shape[3]! / stride)];
}

/** A cell's input preprocessing to c channels (FactorizedReduce after a reduction, else ReLUConvBN 1×1). */
export function preprocess(
  L: Layers,
  s0: Value,
  s1: Value,
  c: number,
  reductionPrev: boolean,
  affine: boolean,
): [Value, Value] {
  const p0 = L.scope('preprocess0', () =>
    reductionPrev ? L.factorizedReduce(s0, c, affine) : L.reluConvBn(s0, c, 1, 1, 0, affine),
  );
  const p1 = L.scope('preprocess1', () => L.reluConvBn(s1, c, 1, 1, 0, affine));
  return [p0, p1];
}

/** Per-edge, per-op mixing weights: softmax over ops, split into [1,1] scalars (15 Split nodes). */
export function mixingWeights(L: Layers, alpha: Value): Value[][] {
  const g = L.g;
  const [e, k] = alpha.shape as [number, number];
  const w = softmax(g, alpha, -1);
  const rows = split(g, w, new Array<number>(e).fill(1), 0);
  return rows.map((r) => split(g, r, new Array<number>(k).fill(1), 1));
}

export interface SearchCellSpec {
  c: number;
  reduction: boolean;
  reductionPrev: boolean;
  /** Mixing weights per edge and op (from mixingWeights), aligned with `primitives`. */
  weights: Value[][];
  primitives: readonly OpName[];
}

/** A supernet cell: every edge a MixedOp Σ_k w_k · op_k(x). */
export function searchCell(L: Layers, s0: Value, s1: Value, spec: SearchCellSpec): Value {
  const [p0, p1] = preprocess(L, s0, s1, spec.c, spec.reductionPrev, false);
  const states = [p0, p1];
  let edge = 0;
  for (let i = 0; i < STEPS; i++) {
    const terms: Value[] = [];
    for (let j = 0; j < i + 2; j++) {
      const stride = spec.reduction && j < 2 ? 2 : 1;
      const x = states[j]!;
      L.scope(`edge${edge}`, () => {
        spec.primitives.forEach((name, k) => {
          const y = dartsOp(L, name, x, spec.c, stride, false, true, true);
          if (y) terms.push(mul(L.g, y, spec.weights[edge]![k]!));
        });
      });
      edge++;
    }
    states.push(L.scope(`node${i}`, () => sum(L.g, terms)));
  }
  return concat(L.g, states.slice(2), 1);
}

export interface SearchNetOptions {
  /** Initial channels (DARTS search: 16). */
  C: number;
  /** Number of cells (DARTS search: 8). */
  layers: number;
  stemMultiplier?: number;
  primitives?: readonly OpName[];
  /** One α per cell (SSWP) instead of one per cell type (DARTS). */
  alphaPerCell?: boolean;
  /** 'cifar': 3×3 conv + BN (default); 'imagenet': three stride-2 convs, channels start at C. */
  stem?: StemKind;
  /** Reduction-cell indices (default ⌊L/3⌋ and ⌊2L/3⌋; segmentation: ⌊L/3⌋ only). */
  reductions?: number[];
}

export interface SearchTrunk {
  features: Value;
  /** α parameters: [normal, reduce] (shared), or one per cell when alphaPerCell. */
  alphas: Value[];
  /** Cell index → α used by it. */
  cellAlpha: Value[];
  reductions: number[];
}

export function reductionCells(layers: number): number[] {
  return [Math.floor(layers / 3), Math.floor((2 * layers) / 3)];
}

/** The stems of DARTS's networks: CIFAR's single conv, or ImageNet's three stride-2 convs. */
export type StemKind = 'cifar' | 'imagenet';

/** CIFAR stem: 3×3 conv to c channels + affine BN; both cell inputs of the first cell are its output. */
export function cifarStem(L: Layers, x: Value, c: number): [Value, Value] {
  const stem = L.scope('stem', () => {
    const y = L.scope('0', () => L.conv(x, c, 3, { pad: 1 }));
    return L.scope('1', () => L.bn(y, true));
  });
  return [stem, stem];
}

/**
 * ImageNet stem (DARTS's NetworkImageNet, also UnNAS's search network for
 * large images): stem0 = conv 3×3 s2 → C/2, BN, ReLU, conv 3×3 s2 → C, BN;
 * stem1 = ReLU, conv 3×3 s2, BN. Affine BN. Returns s0 = stem0(x), s1 = stem1(s0).
 */
export function imagenetStem(L: Layers, x: Value, c: number): [Value, Value] {
  if (c % 2) throw new Error(`the ImageNet stem needs an even C (its first conv has C/2 channels), got ${c}`);
  const s0 = L.scope('stem0', () => {
    let y = L.scope('0', () => L.conv(x, c / 2, 3, { stride: 2, pad: 1 }));
    y = L.scope('1', () => L.bn(y, true));
    y = L.relu(y);
    y = L.scope('3', () => L.conv(y, c, 3, { stride: 2, pad: 1 }));
    return L.scope('4', () => L.bn(y, true));
  });
  const s1 = L.scope('stem1', () => {
    const y = L.scope('1', () => L.conv(L.relu(s0), c, 3, { stride: 2, pad: 1 }));
    return L.scope('2', () => L.bn(y, true));
  });
  return [s0, s1];
}

/**
 * The DARTS search supernet's trunk: stem (3×3 conv + BN, or the ImageNet
 * stem), `layers` cells with reductions at ⌊L/3⌋ and ⌊2L/3⌋ (or at
 * `reductions`). α are created as 'arch' parameters ([14 × ops], init
 * 1e-3·N(0,1)) after the weights, as DARTS does.
 */
export function searchTrunk(L: Layers, x: Value, o: SearchNetOptions): SearchTrunk {
  const prims = o.primitives ?? PRIMITIVES;
  const reds = o.reductions ?? reductionCells(o.layers);
  const imagenet = o.stem === 'imagenet';
  let cCurr = imagenet ? o.C : (o.stemMultiplier ?? 3) * o.C;
  // The stem BN is affine, as in the DARTS reference (model_search.py); all cell BNs are not.
  const [stem0, stem1] = imagenet ? imagenetStem(L, x, o.C) : cifarStem(L, x, cCurr);
  // α are graph parameters; created up front so every cell can read its weights
  const alphas: Value[] = [];
  const cellAlpha: Value[] = [];
  const alphaInit = { kind: 'normal', std: 1e-3 } as const;
  if (o.alphaPerCell) {
    for (let i = 0; i < o.layers; i++) {
      const a = L.g.param(`alpha_cell${i}`, [EDGES, prims.length], 'arch', alphaInit);
      alphas.push(a);
      cellAlpha.push(a);
    }
  } else {
    const an = L.g.param('alpha_normal', [EDGES, prims.length], 'arch', alphaInit);
    const ar = L.g.param('alpha_reduce', [EDGES, prims.length], 'arch', alphaInit);
    alphas.push(an, ar);
    for (let i = 0; i < o.layers; i++) cellAlpha.push(reds.includes(i) ? ar : an);
  }
  const weightCache = new Map<string, Value[][]>();
  const weightsOf = (a: Value): Value[][] => {
    let w = weightCache.get(a.name);
    if (!w) {
      w = L.scope('arch_weights', () => mixingWeights(L, a));
      weightCache.set(a.name, w);
    }
    return w;
  };
  let s0 = stem0;
  let s1 = stem1;
  let cpp = cCurr;
  let cp = cCurr;
  cCurr = o.C;
  // both ImageNet stems reduce: the first cell's s0 is at twice s1's resolution
  let reductionPrev = imagenet;
  for (let i = 0; i < o.layers; i++) {
    const reduction = reds.includes(i);
    if (reduction) cCurr *= 2;
    const spec: SearchCellSpec = {
      c: cCurr,
      reduction,
      reductionPrev,
      weights: weightsOf(cellAlpha[i]!),
      primitives: prims,
    };
    const out = L.scope(`cells/${i}`, () => searchCell(L, s0, s1, spec));
    if (out.shape[1] !== STEPS * cCurr || s1.shape[1] !== cp || s0.shape[1] !== cpp)
      throw new Error('channel bookkeeping mismatch');
    [s0, s1] = [s1, out];
    [cpp, cp] = [cp, STEPS * cCurr];
    reductionPrev = reduction;
  }
  return { features: s1, alphas, cellAlpha, reductions: reds };
}

// ---- discretized networks -------------------------------------------------------

export interface EvalNetOptions {
  C: number;
  layers: number;
  net: 'cifar' | 'imagenet';
  /** Tap the auxiliary-head input (output of cell ⌊2L/3⌋). */
  auxiliary?: boolean;
  /** Drop path in training graphs: adds one [N,1,1,1] mask input per droppable op. */
  dropPath?: boolean;
  stemMultiplier?: number;
  /** Reduction-cell indices (default ⌊L/3⌋ and ⌊2L/3⌋; segmentation: ⌊L/3⌋ only). */
  reductions?: number[];
}

export interface EvalTrunk {
  features: Value;
  aux: Value | null;
  /** Names of the drop-path mask inputs ([N,1,1,1], already scaled by 1/keep). */
  dropPathInputs: string[];
}

/**
 * A discretized cell: node i = op_a(state_a) + op_b(state_b); drop path on
 * every op output that is not an identity; output = concat of `concat` states.
 */
export function evalCell(
  L: Layers,
  s0: Value,
  s1: Value,
  genotype: Genotype,
  c: number,
  reduction: boolean,
  reductionPrev: boolean,
  dropPath: ((y: Value) => Value) | null,
): Value {
  const [p0, p1] = preprocess(L, s0, s1, c, reductionPrev, true);
  const ops = reduction ? genotype.reduce : genotype.normal;
  const cat = reduction ? genotype.reduce_concat : genotype.normal_concat;
  const states = [p0, p1];
  for (let i = 0; i < STEPS; i++) {
    const terms: Value[] = [];
    let shape: number[] = [];
    for (const k of [2 * i, 2 * i + 1]) {
      const [name, idx] = ops[k]!;
      const stride = reduction && idx < 2 ? 2 : 1;
      const x = states[idx]!;
      shape = opShape(x, c, stride);
      let y = L.scope(`ops/${k}`, () => dartsOp(L, name, x, c, stride, true, false));
      if (y && dropPath && !(name === 'skip_connect' && stride === 1)) y = dropPath(y);
      if (y) terms.push(y);
    }
    const node = L.scope(`node${i}`, () =>
      terms.length === 2 ? add(L.g, terms[0]!, terms[1]!) : terms.length === 1 ? terms[0]! : zeros(L.g, shape),
    );
    states.push(node);
  }
  return concat(
    L.g,
    cat.map((k) => states[k]!),
    1,
  );
}

/** CIFAR or ImageNet evaluation network trunk from a genotype. */
export function evalTrunk(L: Layers, x: Value, genotype: Genotype, o: EvalNetOptions): EvalTrunk {
  const g = L.g;
  const reds = o.reductions ?? reductionCells(o.layers);
  const auxAt = Math.floor((2 * o.layers) / 3);
  const dropPathInputs: string[] = [];
  const useDrop = !!o.dropPath && g.training;
  const dropPath = useDrop
    ? (y: Value): Value => {
        const m = g.input(g.fresh('drop_path_mask'), 'float32', [y.shape[0]!, 1, 1, 1]);
        dropPathInputs.push(m.name);
        return mul(g, y, m);
      }
    : null;
  let s0: Value;
  let s1: Value;
  let cCurr: number;
  let reductionPrev: boolean;
  if (o.net === 'cifar') {
    [s0, s1] = cifarStem(L, x, (o.stemMultiplier ?? 3) * o.C);
    cCurr = o.C;
    reductionPrev = false;
  } else {
    [s0, s1] = imagenetStem(L, x, o.C);
    cCurr = o.C;
    reductionPrev = true;
  }
  let aux: Value | null = null;
  for (let i = 0; i < o.layers; i++) {
    const reduction = reds.includes(i);
    if (reduction) cCurr *= 2;
    const out = L.scope(`cells/${i}`, () => evalCell(L, s0, s1, genotype, cCurr, reduction, reductionPrev, dropPath));
    [s0, s1] = [s1, out];
    reductionPrev = reduction;
    if (o.auxiliary && i === auxAt) aux = s1;
  }
  return { features: s1, aux, dropPathInputs };
}
