/**
 * SSWP-NAS end to end on CPU, through the CLI entry point (in-process): a
 * small search on a few dozen synthetic colour images (3 cells, C = 4, three
 * epochs: warm-up, bilevel and forward progressive pruning, interrupted and
 * resumed), the shipped model.onnx run by onnxruntime, and `finetune` at two
 * label fractions, concomitant weights beside random initialization.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../graph/rng.js';
import { cli, writeImageFolder } from './helpers/sswp.js';
import { parseSswpArch } from '../graph/nets/sswp.js';
import { loadCheckpoint } from '../train/runtime/checkpoint.js';
import {
  SAMPLE_STREAM,
  loadSswpNetwork,
  recomputeBnStats,
  runSswpSearch,
  type SswpOptions,
} from '../train/search/sswp/search.js';
import { loadDataset } from '../train/data/index.js';
import { sampleGates } from '../train/search/sswp/sampler.js';
import { initParams } from '../train/runtime/params.js';
import { NUM_OPS, buildSswpForward, edgeOf, opKey } from '../graph/nets/sswp.js';
import { EDGES } from '../graph/genotype.js';
import { checkReportHtml } from './helpers/report.js';
import { expectAnyBatch } from './helpers/deploy.js';

let tmp: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'nas-onnx-sswp-'));
  await writeImageFolder(join(tmp, 'images'), { train: 24, test: 16 }, 5);
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('SSWP-NAS end to end', () => {
  it('searches through warm-up, bilevel and FPP (resumed midway), ships a model.onnx, and fine-tunes at two label fractions', async () => {
    const out = join(tmp, 'run');
    // 96 images → halves of 48 → 3 steps per epoch of 16 images (32 views); 9 steps:
    // warm-up 0–1, bilevel 2–4, FPP 5–8 with cells pruned before steps 5, 6, 7
    const common = [
      'search',
      '--method',
      'sswp',
      '--data',
      join(tmp, 'images'),
      '--epochs',
      '3',
      '--batch',
      '16',
      '--C',
      '4',
      '--layers',
      '3',
      '--workers',
      '0',
      '--bn-batches',
      '2',
      '--out',
      out,
      '--quiet',
      '--seed',
      '3',
    ];
    const first = await cli([...common, '--stop-after', '4']);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/stopped early after 4 steps/);
    const r = await cli([...common, '--resume']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/written to .*cells\.json/);

    const log = readFileSync(join(out, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const steps = log.filter((x) => x.type === 'step');
    expect(steps.map((x) => x.step)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(steps.map((x) => x.phase)).toEqual([
      'warmup',
      'warmup',
      'bilevel',
      'bilevel',
      'bilevel',
      'fpp',
      'fpp',
      'fpp',
      'fpp',
    ]);
    expect(steps.map((x) => x.gated)).toEqual([3, 3, 3, 3, 3, 2, 1, 0, 0]);
    expect(steps.filter((x) => x.phase === 'warmup').every((x) => x.arch_loss === undefined && x.dropped === 0)).toBe(
      true,
    );
    expect(
      steps
        .filter((x) => x.phase !== 'warmup' && (x.gated as number) > 0)
        .every((x) => typeof x.arch_loss === 'number'),
    ).toBe(true);
    expect(steps.every((x) => x.arch_dropped === 0 && Number.isFinite(x.loss))).toBe(true);
    const prunes = log.filter((x) => x.type === 'prune');
    expect(prunes.map((x) => [x.cell, x.step])).toEqual([
      [0, 5],
      [1, 6],
      [2, 7],
    ]);
    expect(log.filter((x) => x.type === 'epoch').map((x) => x.phases)).toEqual([
      { warmup: 2, bilevel: 1 },
      { bilevel: 2, fpp: 1 },
      { fpp: 3 },
    ]);

    // the paper's rule: every pruned cell kept one op on each of its 14 edges; the final cells
    // (DARTS's rule: two edges per node) use the kept ops
    expect(prunes.every((p) => p.rule === 'op-per-edge' && (p.ops as string[]).length === EDGES)).toBe(true);
    const arch = parseSswpArch(JSON.parse(readFileSync(join(out, 'cells.json'), 'utf8')));
    arch.cells.forEach((c, i) =>
      c.ops.forEach(([op, j], k) => expect(op).toBe((prunes[i]!.ops as string[])[edgeOf(Math.floor(k / 2), j)])),
    );
    expect(log.find((x) => x.type === 'final')!.cells).toEqual(arch.cells.map((c) => c.ops));
    expect(arch.cells.map((c) => c.reduction)).toEqual([false, true, true]);
    expect(existsSync(join(out, 'cells.svg'))).toBe(true);
    // per epoch: softmax(α) and the collapse statistics of every cell
    const epochs = log.filter((x) => x.type === 'epoch') as {
      alpha: number[][][];
      collapse: { param_free: number }[];
    }[];
    expect(epochs.every((e) => e.alpha.length === 3 && e.collapse.length === 3)).toBe(true);
    expect(
      epochs.every((e) => e.alpha.every((c) => c.length === EDGES && c.every((row) => row.length === NUM_OPS))),
    ).toBe(true);
    // the report: a diagram per cell, the curves, α and pruning, the config
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    checkReportHtml(html, ['summary', 'cells', 'curves', 'alpha', 'config']);
    for (const c of ['cell 0', 'cell 1 (reduction)', 'cell 2 (reduction)']) expect(html).toContain(c);
    expect(html).toContain('Parameter-free ops in each derived cell');
    expect(html).toContain('<h3>Pruning</h3>');

    // the shipped model takes any batch (batch 3 agrees per sample with batch 1), gives finite
    // features and projections, and says what it is: predict wants a classifier
    const dims = await expectAnyBatch(join(out, 'model.onnx'), 3);
    expect(dims).toEqual({ features: [3, 64], projection: [3, 128] });
    const pr = await cli(['predict', join(out, 'model.onnx'), join(tmp, 'images', 'test')]);
    expect(pr.code).toBe(1);
    const fin = loadCheckpoint(join(out, 'final'));
    expect(fin.meta.kind).toBe('sswp-network');
    expect([...fin.tensors.keys()].some((k) => k.endsWith('running_var'))).toBe(true);

    // fine-tuning at two label fractions, concomitant beside random
    for (const f of ['0.1', '0.5']) {
      const ft = await cli([
        'finetune',
        '--from',
        out,
        '--labels-fraction',
        f,
        '--epochs',
        '2',
        '--batch',
        '16',
        '--aux-weight',
        '0',
        '--workers',
        '0',
        '--quiet',
        '--json',
      ]);
      expect(ft.code).toBe(0);
      const res = JSON.parse(ft.stdout) as {
        labelled: number;
        runs: { init: string; testAcc: number; modelPath: string }[];
        testImages: number;
      };
      expect(res.labelled).toBe(f === '0.1' ? 8 : 48);
      expect(res.testImages).toBe(64);
      expect(res.runs.map((x) => x.init)).toEqual(['concomitant', 'random']);
      for (const x of res.runs) expect(x.testAcc).toBeGreaterThanOrEqual(0);
      console.log(`fraction ${f}: ${res.runs.map((x) => `${x.init} ${(100 * x.testAcc).toFixed(1)}%`).join(', ')}`);
      // fine-tuned classifiers take any batch too
      for (const x of res.runs) expect((await expectAnyBatch(x.modelPath, 3)).logits).toEqual([3, 4]);
    }
  });

  it('resumes exactly: an interrupted and resumed search ends with the weights and α of the uninterrupted one', async () => {
    const base = (out: string): SswpOptions => ({
      data: join(tmp, 'images'),
      out,
      epochs: 2,
      batch: 16,
      C: 2,
      layers: 1,
      workers: 0,
      bnBatches: 1,
      quiet: true,
      seed: 11,
      split: [0.2, 0.4, 0.4],
    });
    const a = join(tmp, 'whole');
    const b = join(tmp, 'parts');
    await runSswpSearch(base(a));
    const stop = await runSswpSearch({ ...base(b), stopAfterSteps: 2 });
    expect(stop.stopped).toBe(true);
    // after steps 0 (warm-up) and 1 (bilevel): ops never active keep their initial weights and no momentum
    const ck = loadCheckpoint(b);
    const all = buildSswpForward(
      { name: 'simclr', numClasses: 0, groupSize: 1, inputShape: [3, 12, 12] },
      { C: 2, layers: 1, cells: [null], rows: 32 },
    );
    const init = initParams(all.g, 11);
    const alpha1 = ck.tensors.get('param:alpha_cell0')!;
    const s0 = sampleGates(
      Rng.derive(11, SAMPLE_STREAM, 0, 1),
      [new Float32Array(EDGES * NUM_OPS)],
      [true],
      'two-path',
      null,
    );
    const s1 = sampleGates(Rng.derive(11, SAMPLE_STREAM, 1, 1), [alpha1], [true], 'two-path', { skip: 0.2, pool: 0 });
    let untouched = 0;
    let trained = 0;
    for (let e = 0; e < EDGES; e++) {
      for (let k = 0; k < NUM_OPS; k++) {
        const names = all.trunk.opParams.get(opKey(0, e, k))!;
        if (!names.length) continue;
        const wasActive = s0.edges[0]![e]!.active === k || s1.edges[0]![e]!.active === k;
        const same = names.every(
          (n) => Array.from(ck.tensors.get(`param:${n}`)!).join() === Array.from(init.get(n)!).join(),
        );
        const noMomentum = names.every((n) =>
          (ck.tensors.get(`opt:${n}@momentum`) ?? new Float32Array(1)).every((v) => v === 0),
        );
        if (wasActive) {
          expect(same).toBe(false);
          trained++;
        } else {
          expect(same && noMomentum).toBe(true);
          untouched++;
        }
      }
    }
    expect(trained).toBeGreaterThan(0);
    expect(untouched).toBeGreaterThan(0);
    await runSswpSearch({ ...base(b), resume: true });
    const ta = loadCheckpoint(join(a, 'final')).tensors;
    const tb = loadCheckpoint(join(b, 'final')).tensors;
    expect([...tb.keys()]).toEqual([...ta.keys()]);
    for (const [k, v] of ta) expect(Array.from(tb.get(k)!), k).toEqual(Array.from(v));
    const losses = (d: string) =>
      readFileSync(join(d, 'log.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { type: string; loss?: number; arch_loss?: number })
        .filter((x) => x.type === 'step')
        .map((x) => [x.loss, x.arch_loss]);
    expect(losses(b)).toEqual(losses(a));
  });

  it('recomputes the final BN statistics of images streamed from a folder (--size) as of images in memory', async () => {
    const o: SswpOptions = {
      data: join(tmp, 'images'),
      out: join(tmp, 'streamed'),
      epochs: 1,
      batch: 16,
      C: 2,
      layers: 1,
      size: 12,
      workers: 0,
      bnBatches: 2,
      quiet: true,
      seed: 4,
      split: [0.2, 0.4, 0.4],
    };
    await runSswpSearch(o);
    const net = loadSswpNetwork(o.out);
    const isStat = (k: string) => /running_(mean|var)$/.test(k);
    const stats = [...net.params].filter(([k]) => isStat(k));
    expect(stats.length).toBeGreaterThan(5);
    for (const [k, v] of stats) expect(Array.from(v).every(Number.isFinite), k).toBe(true);
    expect(stats.some(([k, v]) => k.endsWith('running_var') && v.some((x) => Math.abs(x - 1) > 1e-3))).toBe(true);
    // the same weights on the same images, streamed (resized, centre-cropped: smoother) or held in memory:
    // finite statistics, the means alike (an empty pixel array read as images gave NaN)
    const shape = { C: 2, layers: 1, cells: net.arch.cells.map((c) => c.ops) };
    const memory = await loadDataset(join(tmp, 'images'), { split: 'train' });
    const streamed = await loadDataset(join(tmp, 'images'), { split: 'train', crop: 12 });
    expect(streamed.images.length).toBe(0);
    const opts = { rows: memory.n, batches: 1, seed: 4 }; // one batch of every image: the files' order does not matter
    const a = await recomputeBnStats(shape, net.params, memory, net.normalization, opts);
    const b = await recomputeBnStats(shape, net.params, streamed, net.normalization, opts);
    expect([...b.keys()]).toEqual([...a.keys()]);
    for (const [k, v] of b) {
      expect(Array.from(v).every(Number.isFinite), k).toBe(true);
      if (k === 'stem/1/running_mean')
        for (let i = 0; i < v.length; i++)
          expect(Math.abs(v[i]! - a.get(k)![i]!)).toBeLessThan(0.02 * (1 + Math.abs(v[i]!)));
      if (k.endsWith('running_var')) expect(v.every((x) => x > 0)).toBe(true);
    }
  });
});
