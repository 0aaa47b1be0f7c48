/**
 * The NAS-Bench-101 network (graph/nets/nasbench101.ts): trainable parameter
 * counts against NAS-Bench-101's published number and a hand computation,
 * the channel split / truncation / projections of nb101CellPlan, TF 'same'
 * max-pooling on odd sizes, and onnxruntime running it (inference form and a
 * training step).
 */
import { describe, expect, it } from 'vitest';
import { buildNb101Net, maxPool2x2Same } from '../graph/nets/nasbench101.js';
import { Graph } from '../graph/ir.js';
import { serialize } from '../graph/onnx.js';
import { assembleStep, correctCount, crossEntropy } from '../graph/training.js';
import { nb101CellPlan, type Nb101Spec } from '../graph/spaces/nasbench101.js';
import { initParams } from '../train/runtime/params.js';
import { StepRunner, newTrainState } from '../train/runtime/engine.js';
import { Session, f32, i64, toF32 } from '../train/runtime/session.js';
import { Rng } from '../graph/rng.js';

/** The Inception-like cell of the NAS-Bench-101 README. */
const README_CELL: Nb101Spec = {
  matrix: [
    [0, 1, 1, 1, 0, 1, 0],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 1, 0, 0],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 0],
  ],
  ops: ['input', 'conv1x1-bn-relu', 'conv3x3-bn-relu', 'conv3x3-bn-relu', 'conv3x3-bn-relu', 'maxpool3x3', 'output'],
};

/** input → conv3x3 → output, plus input → output. */
const SIMPLE: Nb101Spec = {
  matrix: [
    [0, 1, 1],
    [0, 0, 1],
    [0, 0, 0],
  ],
  ops: ['input', 'conv3x3-bn-relu', 'output'],
};

/**
 * Three vertices feed the output (8 channels → 3, 3, 2), and vertex 1 (3
 * channels) also feeds vertex 3 (2 channels): a truncation; vertex 3 is a
 * max-pool; the input feeds vertices 1 and 2 (projections).
 */
const TRUNCATING: Nb101Spec = {
  matrix: [
    [0, 1, 1, 0, 0],
    [0, 0, 0, 1, 1],
    [0, 0, 0, 0, 1],
    [0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0],
  ],
  ops: ['input', 'conv3x3-bn-relu', 'conv1x1-bn-relu', 'maxpool3x3', 'output'],
};

function randn(n: number, seed: number): Float32Array {
  const r = new Rng(seed);
  return Float32Array.from({ length: n }, () => r.normal());
}

describe('NAS-Bench-101 network', () => {
  it("has NAS-Bench-101's published trainable-parameter count for the README cell (2,694,282)", () => {
    // 128 channels, 3 stacks × 3 cells, CIFAR-10 input: nasbench's README query prints trainable_parameters: 2694282
    const m = buildNb101Net({ spec: README_CELL, batch: 1, channels: 3, size: 32, classes: 10, training: false });
    expect(m.g.paramCount(['weight'])).toBe(2_694_282);
    expect(m.features.shape).toEqual([1, 512, 8, 8]);
    // the training form has the same trainable parameters (plus BN state)
    const t = buildNb101Net({ spec: README_CELL, batch: 2, channels: 3, size: 32, classes: 10, training: true });
    expect(t.g.paramCount(['weight'])).toBe(2_694_282);
  });

  it('matches a hand count for a small cell', () => {
    // width 4, 2 stacks × 1 cell, 1 input channel, 10 classes; conv weights k·k·cin·cout, BN γ+β = 2c
    const stem = 3 * 3 * 1 * 4 + 2 * 4; // 44
    // cell 4→4: vertex 1 (4 ch) = projection 1×1 4→4 + conv3x3 4→4; output projection 1×1 4→4
    const cell0 = 4 * 4 + 8 + (9 * 4 * 4 + 8) + (4 * 4 + 8); // 200
    // after the 2×2 max-pool, cell 4→8: projection 4→8, conv3x3 8→8, output projection 4→8
    const cell1 = 4 * 8 + 16 + (9 * 8 * 8 + 16) + (4 * 8 + 16); // 688
    const classifier = 8 * 10 + 10;
    const m = buildNb101Net({
      spec: SIMPLE,
      batch: 1,
      channels: 1,
      size: 8,
      classes: 10,
      training: false,
      stemChannels: 4,
      numStacks: 2,
      cellsPerStack: 1,
    });
    expect(m.g.paramCount(['weight'])).toBe(stem + cell0 + cell1 + classifier);
    expect(stem + cell0 + cell1 + classifier).toBe(1022);
  });

  it('splits, truncates and projects as nb101CellPlan says', () => {
    const plan = nb101CellPlan(TRUNCATING, 4, 8);
    expect(plan.vertexChannels).toEqual([4, 3, 3, 2, 8]);
    expect(plan.vertices[2]!.inputs).toEqual([{ src: 1, kind: 'truncate' }]);
    // hand count, width 8, one cell 8→8, 1 input channel, 10 classes
    const stem = 9 * 8 + 16;
    const v1 = 8 * 3 + 6 + (9 * 3 * 3 + 6); // projection 8→3, conv3x3 3→3
    const v2 = 8 * 3 + 6 + (3 * 3 + 6); // projection 8→3, conv1x1 3→3
    const v3 = 0; // max-pool of the truncated vertex 1
    const classifier = 8 * 10 + 10;
    const m = buildNb101Net({
      spec: TRUNCATING,
      batch: 1,
      channels: 1,
      size: 8,
      classes: 10,
      training: false,
      stemChannels: 8,
      numStacks: 1,
      cellsPerStack: 1,
    });
    expect(m.g.paramCount(['weight'])).toBe(stem + v1 + v2 + v3 + classifier);
    expect(m.g.nodes.some((n) => n.op === 'Slice')).toBe(true);
  });

  it("max-pools odd sides with TF 'same' padding (7 → 4)", () => {
    const g = new Graph('pool');
    const x = g.input('x', 'float32', [1, 1, 7, 7]);
    expect(maxPool2x2Same(g, x).shape).toEqual([1, 1, 4, 4]);
    const e = g.input('e', 'float32', [1, 1, 8, 6]);
    expect(maxPool2x2Same(g, e).shape).toEqual([1, 1, 4, 3]);
  });

  it('runs in onnxruntime: inference form and a training step on odd-sized maps', async () => {
    const opts = {
      spec: TRUNCATING,
      channels: 1,
      size: 14,
      classes: 10,
      stemChannels: 8,
      numStacks: 3,
      cellsPerStack: 1,
    };
    // inference: 14 → 7 → 4
    const inf = buildNb101Net({ ...opts, batch: 3, training: false });
    expect(inf.features.shape).toEqual([3, 32, 4, 4]);
    inf.g.output(inf.logits, 'logits');
    const values = initParams(inf.g, 1);
    const s = await Session.create(serialize(inf.g, { params: 'initializers', values }));
    const out = await s.run({ x: f32(randn(3 * 14 * 14, 2), [3, 1, 14, 14]) });
    const logits = toF32(out.logits);
    expect(out.logits!.dims).toEqual([3, 10]);
    expect(logits.every(Number.isFinite)).toBe(true);
    await s.release();

    // training step: the loss goes down on a fixed batch
    const tr = buildNb101Net({ ...opts, batch: 4, training: true });
    const labels = tr.g.input('labels', 'int64', [4]);
    const info = assembleStep(tr.g, {
      loss: crossEntropy(tr.g, tr.logits, labels),
      metrics: { correct: correctCount(tr.g, tr.logits, labels) },
      update: (p) => p.role === 'weight',
      optimizer: { kind: 'sgd', momentum: 0.9, weightDecay: 5e-4, nesterov: true },
    });
    const runner = await StepRunner.create(
      tr.g,
      info,
      { kind: 'sgd', momentum: 0.9, weightDecay: 5e-4, nesterov: true },
      { threads: 1 },
    );
    const st = newTrainState(initParams(tr.g, 3));
    const feeds = { x: f32(randn(4 * 14 * 14, 4), [4, 1, 14, 14]), labels: i64([1, 2, 3, 4], [4]) };
    const losses: number[] = [];
    for (let k = 0; k < 8; k++) losses.push((await runner.run(st, feeds, 0.05)).loss);
    await runner.release();
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[losses.length - 1]!).toBeLessThan(losses[0]!);
    // BN running statistics were updated by the training form
    const rm = [...tr.g.params.values()].find((p) => p.role === 'state' && p.name.endsWith('running_mean'))!;
    expect(st.params.get(rm.name)!.some((v) => v !== 0)).toBe(true);
  });
});
