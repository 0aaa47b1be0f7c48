/**
 * The segmentation graph pieces (graph/nets/seg.ts, graph/nets/upsample.ts,
 * graph/ops/crossentropy.ts): finite-difference gradients of the bilinear
 * upsampling, of the ASPP head with its image-pool branch and of the
 * ignore-label loss on top of it; the confusion matrix and the loss values
 * against host computations; the networks' shapes and sizes (UnNAS Table 2
 * widths land every shipped genotype in 9.5–10.5M parameters).
 */
import { describe, expect, it } from 'vitest';
import { Graph, tensorOf } from '../graph/ir.js';
import { loadGenotype } from '../graph/genotype.js';
import { Layers } from '../graph/nets/layers.js';
import { ASPP_EVAL, buildSegNet, buildSegSupernet, confusionMatrix, segHead, segLoss } from '../graph/nets/seg.js';
import { bilinearMatrix, upsampleBilinear } from '../graph/nets/upsample.js';
import { gradients } from '../graph/autodiff.js';
import { serialize } from '../graph/onnx.js';
import { Rng } from '../graph/rng.js';
import { Session, f32, i64, toF32 } from '../train/runtime/session.js';
import { gradCheck } from './helpers/gradcheck.js';

const LINEAR = 1e-3;
const COMPOSITE = 3e-3;
/**
 * The ASPP head's differences run on its inference form (BN with frozen
 * statistics, a per-channel affine map) under the loss: with training-form BN
 * every output depends on every input through the batch statistics, and a
 * parameter's perturbation shifts whole channels across ReLU's kink, which no
 * step keeps clear of both kinks and rounding. The training form's gradients
 * are checked exactly against PyTorch (test/seg-torch.test.ts), the BN
 * composite's rule by finite differences (test/ops-grad.test.ts). h = 1e-3
 * keeps ReLU kinks rare (the head is piecewise linear in each single
 * parameter); elements whose one-sided differences disagree (a kink within h)
 * are left out, at most a tenth of them.
 */
const KINKS = { h: 1e-3, kinkTol: 0.02, training: false } as const;
const rng = new Rng(915);
const normal = (n: number, s = 1): Float32Array => Float32Array.from({ length: n }, () => s * rng.normal());

/** Labels in 0..k−1 with every `ignoreEvery`-th pixel 255. */
function labelsWithIgnore(n: number, k: number, ignoreEvery: number): number[] {
  return Array.from({ length: n }, (_, i) => (i % ignoreEvery === ignoreEvery - 1 ? 255 : rng.int(k)));
}

describe('bilinear upsampling (align_corners) gradient', () => {
  it('3×4 → 7×9 and 1×1 → 4×5 (Expand) against finite differences', async () => {
    const r = await gradCheck([{ name: 'x', shape: [2, 3, 3, 4] }], (g, [x]) => upsampleBilinear(g, x!, 7, 9), {
      seed: 3,
    });
    expect(r.maxAbsGrad).toBeGreaterThan(0.1);
    expect(r.maxRelErr).toBeLessThan(LINEAR);
    expect(r.gradOps.MatMul).toBe(2);
    const r1 = await gradCheck([{ name: 'x', shape: [2, 3, 1, 1] }], (g, [x]) => upsampleBilinear(g, x!, 4, 5));
    expect(r1.forwardOps).toContain('Expand');
    expect(r1.maxAbsGrad).toBeGreaterThan(0.1);
    expect(r1.maxRelErr).toBeLessThan(LINEAR);
  });
  it('the interpolation matrix keeps the corners and sums rows to 1', () => {
    const m = bilinearMatrix(7, 3);
    expect(m[0]).toBe(1); // out 0 ← in 0
    expect(m[6 * 3 + 2]).toBe(1); // out 6 ← in 2
    for (let o = 0; o < 7; o++) expect(m[o * 3]! + m[o * 3 + 1]! + m[o * 3 + 2]!).toBeCloseTo(1, 6);
    expect(m[1 * 3]).toBeCloseTo(2 / 3, 6); // out 1 sits at in 1/3
  });
});

describe('ASPP head gradient (finite differences, BN in inference form)', () => {
  for (const rates of [[2], [1, 2, 3]]) {
    it(`rates [${rates}] under the ignore-label loss: x and every parameter, image-pool branch included`, async () => {
      const labels = labelsWithIgnore(2 * 5 * 6, 2, 4);
      const r = await gradCheck(
        [{ name: 'x', shape: [2, 4, 3, 4] }],
        (g, [x]) => {
          const L = new Layers(g, { trackRunningStats: true });
          const logits = segHead(L, x!, { channels: 3, rates }, 2, 5, 6);
          const lab = g.constant(tensorOf('int64', [2, 5, 6], labels), 'labels');
          return g.op('Mul', [segLoss(g, logits, lab).loss, g.scalar(20)]);
        },
        { seed: 11, ...KINKS },
      );
      expect(r.forwardOps).toEqual(
        expect.arrayContaining([
          'GlobalAveragePool',
          'Expand',
          'BatchNormalization',
          'Relu',
          'MatMul',
          'CrossEntropyIgnore',
        ]),
      );
      expect(r.maxAbsGrad).toBeGreaterThan(0.1);
      expect(r.kinks).toBeLessThan(r.checked / 10);
      expect(r.maxRelErr, JSON.stringify(r.worst)).toBeLessThan(COMPOSITE);
    });
  }
});

/** Run a graph on the CPU with the given feeds; returns the named outputs. */
async function runGraph(
  g: Graph,
  feeds: Record<string, ReturnType<typeof f32>>,
): Promise<Record<string, Float32Array>> {
  const s = await Session.create(serialize(g, { params: 'inputs' }), { threads: 1 });
  try {
    const out = await s.run(feeds);
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, toF32(v, k)]));
  } finally {
    await s.release();
  }
}

describe('loss and confusion matrix values', () => {
  const [N, K, H, W] = [2, 4, 5, 3];
  const logits = normal(N * K * H * W, 2);
  const labels = labelsWithIgnore(N * H * W, K, 3);
  const at = (n: number, k: number, p: number): number => logits[(n * K + k) * H * W + p]!;

  it('mean cross entropy over the pixels not ignored, valid and correct counts, confusion matrix', async () => {
    const g = new Graph('seg_metrics');
    const x = g.input('x', 'float32', [N, K, H, W]);
    const y = g.input('labels', 'int64', [N, H, W]);
    const m = segLoss(g, x, y);
    g.output(m.loss, 'loss');
    g.output(m.valid, 'valid');
    g.output(m.correct, 'correct');
    g.output(confusionMatrix(g, x, y), 'confusion');
    const out = await runGraph(g, { x: f32(logits, [N, K, H, W]), labels: i64(labels, [N, H, W]) });
    let ce = 0;
    let valid = 0;
    let correct = 0;
    const conf = new Float64Array(K * K);
    for (let n = 0; n < N; n++) {
      for (let p = 0; p < H * W; p++) {
        const l = labels[n * H * W + p]!;
        let best = 0;
        for (let k = 1; k < K; k++) if (at(n, k, p) > at(n, best, p)) best = k;
        if (l === 255) continue;
        const mx = at(n, best, p);
        let se = 0;
        for (let k = 0; k < K; k++) se += Math.exp(at(n, k, p) - mx);
        ce += Math.log(se) + mx - at(n, l, p);
        valid++;
        if (best === l) correct++;
        conf[l * K + best]!++;
      }
    }
    expect(valid).toBeGreaterThan(0);
    expect(valid).toBeLessThan(N * H * W);
    expect(out.loss![0]).toBeCloseTo(ce / valid, 5);
    expect(out.valid![0]).toBe(valid);
    expect(out.correct![0]).toBe(correct);
    expect(Array.from(out.confusion!)).toEqual(Array.from(conf));
  });

  it('every pixel ignored: loss 0 and zero gradient (not NaN)', async () => {
    const g = new Graph('seg_all_ignored');
    g.training = true;
    const x = g.input('x', 'float32', [N, K, H, W]);
    const y = g.input('labels', 'int64', [N, H, W]);
    const { loss } = segLoss(g, x, y);
    g.output(loss, 'loss');
    g.output(gradients(g, loss, [x]).get('x')!, 'dx');
    const out = await runGraph(g, {
      x: f32(logits, [N, K, H, W]),
      labels: i64(new Array<number>(N * H * W).fill(255), [N, H, W]),
    });
    expect(out.loss![0]).toBe(0);
    expect(out.dx!.every((v) => v === 0)).toBe(true);
  });
});

describe('segmentation networks', () => {
  // UnNAS Table 2 / the release's configs: width per genotype for 9.5–10.5M parameters
  const WIDTHS: Record<string, number> = {
    darts_v2: 82,
    unnas_imagenet_cls: 78,
    unnas_imagenet_rot: 78,
    unnas_imagenet_jig: 78,
    unnas_imagenet_col: 80,
    unnas_imagenet22k_rot: 78,
    unnas_imagenet22k_col: 78,
    unnas_imagenet22k_jig: 78,
    unnas_imagenet22k_cls: 80,
    unnas_cityscapes_seg: 80,
    unnas_cityscapes_jig: 80,
    unnas_cityscapes_rot: 78,
    unnas_cityscapes_col: 86,
  };
  for (const [name, C] of Object.entries(WIDTHS)) {
    it(`${name} at C = ${C}, 12 cells, ASPP 256 [6, 12, 18], 19 classes: 9.5–10.5M parameters`, () => {
      const { g } = buildSegNet({
        genotype: loadGenotype(name),
        C,
        layers: 12,
        classes: 19,
        training: false,
        batch: 1,
        channels: 3,
        height: 65,
        width: 65,
      });
      const n = g.paramCount();
      expect(n).toBeGreaterThan(9.5e6);
      expect(n).toBeLessThan(10.5e6);
    });
  }

  it('evaluation network: one reduction (features at 1/16), logits at the input size, non-square frames', () => {
    const { g, logits } = buildSegNet({
      genotype: loadGenotype('darts_v2'),
      C: 8,
      layers: 6,
      classes: 19,
      training: false,
      batch: 1,
      channels: 3,
      height: 1025,
      width: 2049,
    });
    expect(logits.shape).toEqual([1, 19, 1025, 2049]);
    const gap = g.nodes.find((n) => n.op === 'GlobalAveragePool')!;
    // 1025 → 513 → 257 → 129 (stem) → 65 (the one reduction cell); 2049 → 129
    expect(g.value(gap.inputs[0]!).shape).toEqual([1, 64, 65, 129]);
    const dilations = g.nodes.filter((n) => n.op === 'Conv' && n.name.includes('aspp')).map((n) => n.attrs.dilations);
    // aspp1, aspp5, classifier (two 1×1 convs) and the three dilated branches
    expect(dilations.map((d) => (d && d.kind === 'ints' ? d.v[0] : 0)).sort((a, b) => a! - b!)).toEqual([
      1, 1, 1, 1, 6, 12, 18,
    ]);
    expect(ASPP_EVAL.rates).toEqual([6, 12, 18]);
  });

  it('search supernet: ImageNet stem, one reduction cell, ASPP 64 [6], α of both cell types', () => {
    const s = buildSegSupernet({
      C: 8,
      layers: 6,
      classes: 19,
      training: true,
      batch: 2,
      channels: 3,
      height: 65,
      width: 65,
    });
    expect(s.logits.shape).toEqual([2, 19, 65, 65]);
    expect(s.trunk.reductions).toEqual([2]);
    expect(s.trunk.alphas.map((a) => a.shape)).toEqual([
      [14, 8],
      [14, 8],
    ]);
    const gap = s.g.nodes.find((n) => n.op === 'GlobalAveragePool')!;
    // stem: 65 → 33 → 17 → 9; reduction: 5; 4 nodes × 2C channels
    expect(s.g.value(gap.inputs[0]!).shape).toEqual([2, 64, 5, 5]);
    // conv weights of aspp1, aspp2 (rate 6), aspp5 and the classifier's two convs
    const convs = [...s.g.params.values()].filter((p) => p.name.startsWith('aspp/') && p.shape.length === 4);
    expect(convs.map((p) => p.shape[0])).toEqual([64, 64, 64, 64, 19]);
  });
});
