/**
 * Shipped models a user can deploy: every inference model kind takes any batch
 * (batch K agrees per sample with batch 1), a model trained here on two easy
 * classes predicts a folder of them through `nas-onnx predict`, bad input to
 * predict is one stderr line, and `info --bench` reports latency beside
 * parameters and multiply-adds. (SSWP search and finetune models: sswp-e2e.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { run } from '../cli/main.js';
import { exportModel } from '../cli/commands/export.js';
import { buildSupernetFile } from '../cli/commands/build-supernet.js';
import { loadGenotype, type Genotype } from '../graph/genotype.js';
import { Graph, GraphError } from '../graph/ir.js';
import { buildEvalNet } from '../graph/nets/models.js';
import { serialize } from '../graph/onnx.js';
import { deployMeta, serializeInference } from '../graph/deploy.js';
import { Layers } from '../graph/nets/layers.js';
import { add, concat, expand, globalAvgPool, reduceMean, relu, reshape, zeros } from '../graph/ops/index.js';
import { Rng } from '../graph/rng.js';
import { trainNetwork } from '../train/eval/trainer.js';
import { initParams } from '../train/runtime/params.js';
import { median, percentile } from '../train/runtime/bench.js';
import { evalNetCost } from '../train/report/cost.js';
import { expectAnyBatch } from './helpers/deploy.js';

let tmp: string;

/** Capture stdout and stderr of an in-process CLI run. */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const [w1, w2] = [process.stdout.write.bind(process.stdout), process.stderr.write.bind(process.stderr)];
  process.stdout.write = ((s: string | Uint8Array) => ((stdout += String(s)), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string | Uint8Array) => ((stderr += String(s)), true)) as typeof process.stderr.write;
  try {
    const code = await run(['node', 'nas-onnx', ...args]);
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = w1;
    process.stderr.write = w2;
  }
}

/** Gray 12×12 images of two classes: `bright` (pixels ~190) and `dark` (~60), noisy, with a random blob. */
async function writeTwoClasses(dir: string, perClass: { train: number; test: number }, seed: number): Promise<void> {
  const rng = new Rng(seed);
  const S = 12;
  for (const split of ['train', 'test'] as const) {
    for (const [name, level] of [
      ['bright', 190],
      ['dark', 60],
    ] as const) {
      const d = join(dir, split, name);
      mkdirSync(d, { recursive: true });
      for (let k = 0; k < perClass[split]; k++) {
        const px = Buffer.alloc(S * S);
        const [bx, by] = [rng.int(S - 4), rng.int(S - 4)];
        for (let y = 0; y < S; y++)
          for (let x = 0; x < S; x++) {
            const blob = x >= bx && x < bx + 4 && y >= by && y < by + 4 ? 40 : 0;
            px[y * S + x] = Math.max(0, Math.min(255, level + blob + rng.int(61) - 30));
          }
        await sharp(px, { raw: { width: S, height: S, channels: 1 } })
          .png()
          .toFile(join(d, `${k}.png`));
      }
    }
  }
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'nas-onnx-deploy-'));
  await writeTwoClasses(join(tmp, 'data'), { train: 48, test: 10 }, 7);
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** darts_v2 with node 0 of the normal cell reading only `none` ops: its state is a zero tensor. */
function withZeroNode(): Genotype {
  const g = loadGenotype('darts_v2');
  const normal = g.normal.map((e, i) => (i < 2 ? (['none', i] as [Genotype['normal'][0][0], number]) : e));
  return { ...g, normal };
}

describe('symbolic batch dimension of inference models', () => {
  it('export: CIFAR and ImageNet layouts run batch 1 and batch 3 alike', async () => {
    for (const [net, size] of [
      ['cifar', 16],
      ['imagenet', 64],
    ] as const) {
      const out = join(tmp, `export-${net}.onnx`);
      await exportModel({
        genotype: 'darts_v2',
        net,
        C: 4,
        layers: 5,
        channels: 3,
        size,
        batch: 2,
        seed: 0,
        out,
        check: true,
      });
      const dims = await expectAnyBatch(out);
      expect(dims.logits).toEqual([3, net === 'cifar' ? 10 : 1000]);
    }
  });

  it('build-supernet: the inference form takes any batch, the training form keeps its batch', async () => {
    const base = { C: 4, layers: 5, classes: 10, channels: 3, size: 16, batch: 2, seed: 0 };
    const inf = join(tmp, 'supernet.onnx');
    buildSupernetFile({ ...base, out: inf, training: false });
    expect((await expectAnyBatch(inf, 3)).logits).toEqual([3, 10]);
    const tr = join(tmp, 'supernet-train.onnx');
    buildSupernetFile({ ...base, out: tr, training: true });
    const g = onnxProto.onnx.ModelProto.decode(readFileSync(tr)).graph as onnxProto.onnx.GraphProto;
    expect(Number(g.input[0]!.type!.tensorType!.shape!.dim![0]!.dimValue)).toBe(2);
  });

  it('a zero state (a node of `none` ops) gets its batch from the input', async () => {
    const { g, logits } = buildEvalNet({
      genotype: withZeroNode(),
      net: 'cifar',
      C: 4,
      layers: 3,
      classes: 5,
      channels: 3,
      size: 8,
      batch: 2,
      training: false,
    });
    g.output(logits, 'logits');
    g.prune();
    expect(g.nodes.some((n) => n.op === 'Expand')).toBe(true);
    const bytes = serialize(g, { params: 'initializers', values: initParams(g, 0), batchDim: 'N' });
    expect((await expectAnyBatch(bytes, 4)).logits).toEqual([4, 5]);
  });

  it('rewrites a Reshape that spells out the batch and refuses ops that mix samples', async () => {
    const build = (tail: (g: Graph, y: ReturnType<typeof relu>) => ReturnType<typeof relu>): Graph => {
      const g = new Graph('t');
      const x = g.input('x', 'float32', [2, 3, 4, 4]);
      const y = concat(g, [relu(g, x), zeros(g, [2, 3, 4, 4])], 1);
      g.output(tail(g, y), 'y');
      return g;
    };
    const ok = build((g, y) => reshape(g, y, [2, 96]));
    expect((await expectAnyBatch(serialize(ok, { params: 'initializers', batchDim: 'N' }), 3)).y).toEqual([3, 96]);
    // a 1×1 map broadcast back to the image (bilinear upsampling of a pooled map)
    const up = build((g, y) => add(g, y, expand(g, globalAvgPool(g, y), [2, 6, 4, 4])));
    expect((await expectAnyBatch(serialize(up, { params: 'initializers', batchDim: 'N' }), 3)).y).toEqual([3, 6, 4, 4]);
    const cases: [string, (g: Graph, y: ReturnType<typeof relu>) => ReturnType<typeof relu>][] = [
      ['regroups the batch', (g, y) => reshape(g, y, [1, 192])],
      ['works across the batch axis', (g, y) => reduceMean(g, y, [0, 2, 3])],
    ];
    for (const [why, tail] of cases)
      expect(() => serialize(build(tail), { params: 'initializers', batchDim: 'N' })).toThrow(
        new RegExp(`not batch-agnostic: .*${why}`),
      );
    expect(() =>
      serialize(
        build((g, y) => reduceMean(g, y, [0])),
        { params: 'initializers', batchDim: 'N' },
      ),
    ).toThrow(GraphError);
    // the same graphs serialize with their static batch as before
    expect(() =>
      serialize(
        build((g, y) => reduceMean(g, y, [0])),
        { params: 'initializers' },
      ),
    ).not.toThrow();
  });
});

describe('train → predict → info --bench', () => {
  let model: string;
  let testAcc: number;

  beforeAll(async () => {
    const out = join(tmp, 'train');
    const r = await trainNetwork({
      genotype: loadGenotype('darts_v2'),
      dataset: join(tmp, 'data'),
      out,
      C: 4,
      layers: 3,
      epochs: 2,
      batch: 16,
      lr: 0.05,
      cutout: 0,
      auxWeight: 0,
      dropPath: 0,
      workers: 0,
      quiet: true,
      seed: 1,
    });
    model = r.modelPath;
    testAcc = r.history[r.history.length - 1]!.test_acc;
  });

  it("train's model.onnx takes any batch and records its input, normalization and class names", async () => {
    expect((await expectAnyBatch(model, 5)).logits).toEqual([5, 2]);
    const r = await cli(['info', model, '--json']);
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout) as { metadata: Record<string, string>; inputs: { shape: unknown[] }[] };
    // the image-folder reader reads the gray PNGs as RGB
    expect(info.inputs[0]!.shape).toEqual(['N', 3, 12, 12]);
    expect(info.metadata['nas_onnx.task']).toBe('classification');
    expect(JSON.parse(info.metadata['nas_onnx.classes']!)).toEqual(['bright', 'dark']);
    expect(JSON.parse(info.metadata['nas_onnx.input']!)).toMatchObject({
      channels: 3,
      height: 12,
      width: 12,
      resize: 'cover',
    });
  });

  it('predicts the two classes of a folder it has not seen', async () => {
    const r = await cli(['predict', model, join(tmp, 'data', 'test'), '--json', '--top', '2', '--batch', '7']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const res = JSON.parse(r.stdout) as {
      predictions: { file: string; folder: string; top: { label: string; probability: number }[] }[];
      accuracy: { correct: number; total: number };
    };
    expect(res.predictions).toHaveLength(20);
    for (const p of res.predictions) {
      expect(p.top.map((t) => t.label).sort()).toEqual(['bright', 'dark']);
      expect(p.top[0]!.probability + p.top[1]!.probability).toBeCloseTo(1, 5);
      expect(p.top[0]!.probability).toBeGreaterThanOrEqual(p.top[1]!.probability);
    }
    expect(res.accuracy.total).toBe(20);
    expect(res.accuracy.correct).toBeGreaterThanOrEqual(18);
    expect(res.accuracy.correct).toBe(res.predictions.filter((p) => p.top[0]!.label === p.folder).length);
    // the shipped file, decoded and normalized from its metadata, scores what training measured on these images
    expect(res.accuracy.correct / res.accuracy.total).toBe(testAcc);
    // one image, human output; a larger image is resized to the model's 12×12
    const big = join(tmp, 'big-bright.png');
    await sharp(Buffer.alloc(40 * 30, 200), { raw: { width: 40, height: 30, channels: 1 } })
      .png()
      .toFile(big);
    const one = await cli(['predict', model, big, '--top', '1']);
    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(/big-bright\.png: (bright|dark) \d+\.\d%\n$/);
  });

  it('says in one stderr line what is wrong with a model or an image', async () => {
    writeFileSync(join(tmp, 'notes.txt'), 'not a model\n');
    writeFileSync(join(tmp, 'broken.png'), 'not a PNG either');
    const colour = join(tmp, 'colour.png');
    await sharp({ create: { width: 12, height: 12, channels: 3, background: { r: 200, g: 10, b: 10 } } })
      .png()
      .toFile(colour);
    const gray = join(tmp, 'gray-export.onnx');
    await exportModel({
      genotype: 'darts_v2',
      net: 'cifar',
      C: 4,
      layers: 3,
      channels: 1,
      size: 12,
      batch: 1,
      seed: 0,
      out: gray,
      check: false,
    });
    const cases: [string[], RegExp][] = [
      [['predict', join(tmp, 'notes.txt'), colour], /is not an ONNX model/],
      [['predict', model, join(tmp, 'broken.png')], /cannot decode image .*broken\.png/],
      [['predict', gray, colour], /colour\.png has 3 channels \(colour\) but the model takes 1 channel \(gray\)/],
      [['predict', model, join(tmp, 'nowhere')], /cannot read .*nowhere.*no such file/],
    ];
    for (const [args, re] of cases) {
      const r = await cli(args);
      expect(r.code, `${args.join(' ')}: ${r.stdout}`).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(re);
      expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
    }
    // --convert feeds a colour image to a gray model as training's reader converts it
    const conv = await cli(['predict', gray, colour, '--convert']);
    expect(conv.code).toBe(0);
    expect(conv.stdout).toMatch(/colour\.png: \d \d+\.\d%, /); // an export names no classes: indices
    // a gray image is a colour one with equal channels, as training read it
    const g1 = join(tmp, 'gray.png');
    await sharp(Buffer.alloc(144, 200), { raw: { width: 12, height: 12, channels: 1 } })
      .toColourspace('b-w')
      .png()
      .toFile(g1);
    expect((await sharp(g1).metadata()).channels).toBe(1);
    const gp = await cli(['predict', model, g1, '--top', '1']);
    expect(gp.code).toBe(0);
    expect(gp.stdout).toMatch(/gray\.png: (bright|dark) \d+\.\d%/);
  });

  it('info --bench reports latency and throughput beside parameters and multiply-adds', async () => {
    const r = await cli(['info', model, '--bench', '--batch', '4', '--runs', '3', '--warmup', '1', '--json']);
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout) as {
      parameters: number;
      multiplyAdds: number;
      bench: {
        ep: string;
        batch: number;
        runs: number;
        medianMs: number;
        p90Ms: number;
        minMs: number;
        throughput: number;
      };
    };
    expect(info.parameters).toBeGreaterThan(0);
    expect(info.multiplyAdds).toBeGreaterThan(0);
    expect(info.bench).toMatchObject({ ep: 'cpu', batch: 4, runs: 3 });
    expect(info.bench.minMs).toBeGreaterThan(0);
    expect(info.bench.p90Ms).toBeGreaterThanOrEqual(info.bench.medianMs);
    expect(info.bench.medianMs).toBeGreaterThanOrEqual(info.bench.minMs);
    expect(info.bench.throughput).toBeCloseTo((1000 * 4) / info.bench.medianMs, 6);
    // a model with a fixed batch (written before the symbolic batch) is timed at that batch
    const g = new Graph('fixed');
    g.output(relu(g, g.input('x', 'float32', [2, 3, 4, 4])), 'y');
    const fixed = join(tmp, 'fixed.onnx');
    writeFileSync(fixed, serialize(g, { params: 'initializers' }));
    const fb = await cli(['info', fixed, '--bench', '--runs', '1', '--json']);
    expect((JSON.parse(fb.stdout) as { bench: { batch: number } }).bench.batch).toBe(2);
    const bad = await cli(['info', fixed, '--bench', '--batch', '3']);
    expect([bad.code, bad.stderr]).toEqual([
      1,
      "nas-onnx: the model's input 'x' has a fixed batch of 2: time it with --batch 2\n",
    ]);
    const human = await cli(['info', model, '--bench', '--runs', '2']);
    expect(human.stdout).toMatch(/parameters\s+[\d,]+/);
    expect(human.stdout).toMatch(/multiply-adds\s+[\d,]+ per sample/);
    expect(human.stdout).toMatch(
      /latency\s+median \d+\.\d+ ms, p90 \d+\.\d+ ms \(cpu, batch 1, 2 runs after 3 warm-up\)/,
    );
    expect(human.stdout).toMatch(/throughput\s+\d+(\.\d)? samples\/s/);
  });
});

describe('predict with a segmentation model', () => {
  it('writes per-pixel argmax class-id PNGs of each image’s size (padded frame; larger images scaled to fit)', async () => {
    // the DARTS segmentation network takes any batch
    const segNet = join(tmp, 'seg.onnx');
    await exportModel({
      genotype: 'darts_v2',
      net: 'seg',
      C: 4,
      layers: 3,
      classes: 5,
      channels: 3,
      size: 33,
      batch: 1,
      seed: 2,
      out: segNet,
      check: false,
    });
    expect((await expectAnyBatch(segNet, 2)).logits).toEqual([2, 5, 33, 33]);
    // predict's part, on a per-pixel classifier whose classes vary over the image: a 1×1 conv to 5 classes
    const g = new Graph('pixels');
    const L = new Layers(g);
    g.output(L.conv(g.input('x', 'float32', [1, 3, 33, 33]), 5, 1, { bias: true }), 'logits');
    const model = join(tmp, 'pixels.onnx');
    const norm = { mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3] };
    writeFileSync(
      model,
      serializeInference(g, initParams(g, 3), deployMeta({ c: 3, h: 33, w: 33 }, norm, 'segmentation')),
    );
    const dir = join(tmp, 'seg-images', 'street');
    mkdirSync(dir, { recursive: true });
    const rng = new Rng(4);
    const small = Buffer.from(Array.from({ length: 20 * 25 * 3 }, () => rng.int(256)));
    await sharp(small, { raw: { width: 20, height: 25, channels: 3 } })
      .png()
      .toFile(join(dir, 'small.png'));
    const large = Buffer.from(Array.from({ length: 50 * 40 * 3 }, () => rng.int(256)));
    await sharp(large, { raw: { width: 50, height: 40, channels: 3 } })
      .png()
      .toFile(join(dir, 'large.png'));
    const out = join(tmp, 'masks');
    const r = await cli(['predict', model, join(tmp, 'seg-images'), '--out', out, '--json', '--top', '5']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const masks = (
      JSON.parse(r.stdout) as {
        masks: {
          file: string;
          mask: string;
          width: number;
          height: number;
          top: { index: number; probability: number }[];
        }[];
      }
    ).masks;
    expect(masks.map((m) => [m.mask, m.width, m.height])).toEqual([
      [join(out, 'street', 'large.png'), 50, 40],
      [join(out, 'street', 'small.png'), 20, 25],
    ]);
    for (const m of masks) {
      expect(await sharp(m.mask).metadata()).toMatchObject({ width: m.width, height: m.height, channels: 1 });
      const data = await sharp(m.mask).toColourspace('b-w').raw().toBuffer();
      const counts = new Array<number>(5).fill(0);
      for (const v of data) counts[v]! += 1;
      expect(counts.reduce((a, b) => a + b, 0)).toBe(m.width * m.height);
      for (const t of m.top) expect(t.probability).toBeCloseTo(counts[t.index]! / (m.width * m.height), 10);
    }
    // the small image's mask is the argmax of the model's logits on the image at the top left of a zero frame
    const meta = JSON.parse(
      onnxProto.onnx.ModelProto.decode(readFileSync(model)).metadataProps.find((p) => p.key === 'nas_onnx.input')!
        .value!,
    ) as { mean: number[]; std: number[] };
    const x = new Float32Array(3 * 33 * 33);
    for (let y = 0; y < 25; y++)
      for (let xx = 0; xx < 20; xx++)
        for (let c = 0; c < 3; c++)
          x[(c * 33 + y) * 33 + xx] = (small[(y * 20 + xx) * 3 + c]! / 255 - meta.mean[c]!) / meta.std[c]!;
    const s = await ort.InferenceSession.create(model);
    const logits = (await s.run({ x: new ort.Tensor('float32', x, [1, 3, 33, 33]) })).logits!.data as Float32Array;
    await s.release();
    const expected = new Uint8Array(20 * 25);
    for (let y = 0; y < 25; y++)
      for (let xx = 0; xx < 20; xx++) {
        let best = 0;
        for (let c = 1; c < 5; c++) if (logits[(c * 33 + y) * 33 + xx]! > logits[(best * 33 + y) * 33 + xx]!) best = c;
        expected[y * 20 + xx] = best;
      }
    const got = await sharp(masks[1]!.mask).toColourspace('b-w').raw().toBuffer();
    expect(new Set(expected).size).toBeGreaterThan(2);
    expect(Buffer.from(got).equals(Buffer.from(expected))).toBe(true);
  });
});

describe('latency statistics and evaluation-network cost', () => {
  it('median and nearest-rank p90', () => {
    expect(median([1, 2, 3])).toBe(2);
    expect(median([1, 2, 3, 10])).toBe(2.5);
    const xs = Array.from({ length: 20 }, (_, i) => i + 1);
    expect(percentile(xs, 0.9)).toBe(18);
    expect(percentile([5], 0.9)).toBe(5);
  });

  it("costs a genotype's evaluation network as export builds it", async () => {
    const shape = { net: 'cifar', C: 4, layers: 5, classes: 10, channels: 3, size: 16 } as const;
    const c = await evalNetCost(loadGenotype('darts_v2'), shape, { runs: 2 });
    const out = join(tmp, 'cost-ref.onnx');
    const ex = await exportModel({ genotype: 'darts_v2', ...shape, batch: 1, seed: 0, out, check: false });
    expect([c.params, c.macs]).toEqual([ex.info.parameters, ex.info.multiplyAdds]);
    expect(c.latency_ms).toBeGreaterThan(0);
  });
});
