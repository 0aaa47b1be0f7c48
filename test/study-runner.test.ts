/**
 * The sample-based study run locally (train/study/runner.ts): a tiny study
 * (3 DARTS architectures of the published UnNAS pool × rot, cls × 1 seed on
 * the first 200 Fashion-MNIST images, 1 epoch, tiny networks) records its
 * results and writes a report with a finite ρ; running it again runs nothing;
 * a study directory refuses other settings; jig (DARTS tile rounding), col
 * (per-pixel accuracy) and the NAS-Bench-101 space train too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DataCache,
  StudyError,
  openOrCreateStudy,
  runStudyLocal,
  runTrial,
  selectArchitectures,
  trialTaskOptions,
  writeStudyReportFor,
  type StudyConfig,
  type StudyEvent,
} from '../train/study/runner.js';
import { loadUnnasPool } from '../train/study/darts-sampler.js';
import { resolveTask } from '../train/data/index.js';
import { cifarRecords } from './fixtures/data-fixtures.js';
import { TINY } from './helpers/study.js';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nas-onnx-study-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('local study', () => {
  const archs = () => selectArchitectures('darts', { source: 'pool', count: 3 });

  it('takes the first architectures of the published UnNAS pool', () => {
    const a = archs();
    const pool = loadUnnasPool().darts.slice(0, 3);
    expect(a.map((x) => x.arch)).toEqual(
      pool.map((p) => ({
        normal: p.normal,
        normal_concat: p.normal_concat,
        reduce: p.reduce,
        reduce_concat: p.reduce_concat,
      })),
    );
    expect(new Set(a.map((x) => x.archId)).size).toBe(3);
  });

  it('runs 3 architectures × rot, cls, records results and writes a report with a finite ρ', async () => {
    const out = join(dir, 'tiny');
    const store = openOrCreateStudy(out, {
      config: TINY,
      archs: archs(),
      objectives: ['rot', 'cls'],
      seeds: [0],
      archSource: { source: 'pool', count: 3 },
    });
    expect(store.pendingTrials()).toHaveLength(6);
    const events: StudyEvent[] = [];
    const stats = await runStudyLocal(store, { concurrency: 1, threads: 1, onEvent: (e) => events.push(e) });
    expect(stats.failed).toEqual([]);
    expect(stats.recorded).toBe(6);
    const results = store.results();
    expect(results).toHaveLength(6);
    for (const r of results) {
      expect(r.metrics.accuracy).toBeGreaterThanOrEqual(0);
      expect(r.metrics.accuracy).toBeLessThanOrEqual(1);
      expect(Number.isFinite(r.metrics.loss)).toBe(true);
      expect(r.info?.params).toBeGreaterThan(0);
      expect(r.info?.nodes).toBeGreaterThan(0);
      expect(r.info?.seconds).toBeGreaterThan(0);
      // rot counts the 4 rotated copies of the 100 test images
      expect(r.info?.testImages).toBe(100);
    }
    // progress: done/total and an ETA per finished trial
    const done = events.filter((e) => e.type === 'trial-done');
    expect(done.map((e) => (e.type === 'trial-done' ? `${e.done}/${e.total}` : ''))).toEqual([
      '1/6',
      '2/6',
      '3/6',
      '4/6',
      '5/6',
      '6/6',
    ]);

    const rep = await writeStudyReportFor(store);
    for (const f of [
      'summary.json',
      'summary.txt',
      'random_experiment.svg',
      'scatter_rot.svg',
      'report.html',
      'trials.csv',
    ])
      expect(existsSync(join(out, 'report', f))).toBe(true);
    const summary = JSON.parse(readFileSync(join(out, 'report', 'summary.json'), 'utf8')) as {
      objectives: { objective: string; spearman: number | null; n: number }[];
    };
    const rot = summary.objectives.find((o) => o.objective === 'rot')!;
    expect(rot.n).toBe(3);
    expect(rot.spearman).not.toBeNull();
    expect(Number.isFinite(rep.summary.objectives[0]!.spearman)).toBe(true);
    expect(rep.text).toMatch(/rot\s+3\s+-?\d\.\d{3}/);
  });

  it('does no new trial when run again and keeps the recorded results', async () => {
    const out = join(dir, 'tiny');
    const store = openOrCreateStudy(out, {
      config: TINY,
      archs: archs(),
      objectives: ['rot', 'cls'],
      seeds: [0],
      archSource: { source: 'pool', count: 3 },
    });
    const before = store.results().map((r) => [r.trialId, r.finishedAt]);
    const events: StudyEvent[] = [];
    const stats = await runStudyLocal(store, { concurrency: 1, threads: 1, onEvent: (e) => events.push(e) });
    expect(stats.pending).toBe(0);
    expect(stats.recorded).toBe(0);
    expect(events.filter((e) => e.type === 'trial-start')).toHaveLength(0);
    expect(store.results().map((r) => [r.trialId, r.finishedAt])).toEqual(before);
  });

  it('refuses to extend a study with other training settings', () => {
    const out = join(dir, 'tiny');
    expect(() =>
      openOrCreateStudy(out, {
        config: { ...TINY, epochs: 2 },
        archs: archs(),
        objectives: ['rot'],
        seeds: [0],
        archSource: { source: 'pool', count: 3 },
      }),
    ).toThrow(StudyError);
    expect(() =>
      openOrCreateStudy(out, {
        config: { ...TINY, epochs: 2 },
        archs: archs(),
        objectives: ['rot'],
        seeds: [0],
        archSource: { source: 'pool', count: 3 },
      }),
    ).toThrow(/epochs 1 → 2/);
  });
});

describe('trials of the other objectives and of the NAS-Bench-101 space', () => {
  const small: StudyConfig = { ...TINY, limit: 48, testLimit: 24, batch: 16, preciseBn: 32 };
  const data = new DataCache();

  it('rounds jigsaw tiles to a multiple of 4 on DARTS networks (UnNAS’s 12 px on 32 px images)', () => {
    const t28 = resolveTask(trialTaskOptions(TINY, 'jig', { h: 28, w: 28 }), { c: 1, h: 28, w: 28 });
    expect(t28.inputShape).toEqual([1, 12, 12]);
    const t32 = resolveTask(trialTaskOptions(TINY, 'jig', { h: 32, w: 32 }), { c: 3, h: 32, w: 32 });
    expect(t32.inputShape).toEqual([3, 12, 12]);
    // NAS-Bench-101 pools with 'same' padding: UnNAS's default tile
    const n28 = resolveTask(trialTaskOptions({ ...TINY, space: 'nb101' }, 'jig', { h: 28, w: 28 }), {
      c: 1,
      h: 28,
      w: 28,
    });
    expect(n28.inputShape).toEqual([1, 10, 10]);
  });

  it('trains jig on a DARTS network and col on a NAS-Bench-101 network (per-pixel accuracy)', async () => {
    const [d] = selectArchitectures('darts', { source: 'pool', count: 1 });
    const jig = await runTrial({ archId: d!.archId, objective: 'jig', seed: 0, arch: d!.arch }, small, {
      threads: 1,
      data,
    });
    expect(jig.metrics.accuracy).toBeGreaterThanOrEqual(0);
    expect(jig.metrics.accuracy).toBeLessThanOrEqual(1);
    expect(Number.isFinite(jig.metrics.loss)).toBe(true);

    // colorization needs colour: a tiny CIFAR-10-format set (5 × 8 training images, 16 test images)
    const cifar = join(dir, 'cifar');
    mkdirSync(cifar);
    for (let k = 1; k <= 5; k++) writeFileSync(join(cifar, `data_batch_${k}.bin`), cifarRecords(8, 'cifar10', k).bytes);
    writeFileSync(join(cifar, 'test_batch.bin'), cifarRecords(16, 'cifar10', 9).bytes);
    const nb: StudyConfig = {
      ...small,
      dataset: `cifar10:${cifar}`,
      limit: null,
      testLimit: null,
      space: 'nb101',
      width: 8,
      stacks: 3,
      cellsPerStack: 1,
    };
    const [c] = selectArchitectures('nb101', { source: 'pool', count: 1 });
    const col = await runTrial({ archId: c!.archId, objective: 'col', seed: 0, arch: c!.arch }, nb, {
      threads: 1,
      data,
    });
    expect(col.metrics.accuracy).toBeGreaterThanOrEqual(0);
    expect(col.metrics.accuracy).toBeLessThanOrEqual(1);
    expect(Number.isFinite(col.metrics.loss)).toBe(true);
    expect(col.info.testImages).toBe(16);
    // per-pixel: the loss is averaged over 16 × 32 × 32 predictions, near log(313) after so little training
    expect(col.metrics.loss).toBeGreaterThan(1);
    const cls = await runTrial(
      { archId: c!.archId, objective: 'cls', seed: 0, arch: c!.arch },
      { ...nb, dataset: TINY.dataset, limit: 48, testLimit: 24 },
      { threads: 1, data },
    );
    expect(cls.info.params).toBeGreaterThan(0);
    expect(cls.info.testImages).toBe(24);
  });

  it('gives the same result twice for a seeded trial', async () => {
    const [d] = selectArchitectures('darts', { source: 'sample', count: 1, seed: 5 });
    const t = { archId: d!.archId, objective: 'cls', seed: 1, arch: d!.arch };
    const a = await runTrial(t, small, { threads: 1, data });
    const b = await runTrial(t, small, { threads: 1, data });
    expect(b.metrics).toEqual(a.metrics);
  });
});
