/**
 * Exact resume: a seeded search interrupted with stopAfterSteps — mid-epoch,
 * then at an epoch boundary, then with checkpointEvery — and resumed each time
 * ends bit-identical to an uninterrupted run: α, genotype, every weight and
 * optimizer slot of the final checkpoint, and the per-epoch log records.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCheckpoint } from '../train/runtime/checkpoint.js';
import { runSearch, type SearchOptions, type SearchResult } from '../train/search/darts.js';
import { writeColorFolder } from './helpers/search.js';

let tmp: string;
let data: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'nas-onnx-search-resume-'));
  data = join(tmp, 'colour');
  await writeColorFolder(data, 12, 5);
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

// 12 images → halves of 6 → 3 steps per epoch with batch 2; 2 epochs = 6 steps
const base = (out: string): SearchOptions => ({
  objective: 'rot',
  data,
  out,
  epochs: 2,
  batch: 2,
  C: 2,
  layers: 2,
  order: 1,
  limit: 12,
  workers: 0,
  quiet: true,
  seed: 9,
  // no evaluation-network cost per epoch (a function of the genotype; search-cli covers it)
  evalNet: false,
  // the report is not what this test checks (test/report.test.ts does)
  report: false,
});

/** log.jsonl records without their wall-clock seconds. */
function logRecords(out: string): unknown[] {
  return readFileSync(join(out, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      const { seconds: _s, ...rest } = JSON.parse(l) as Record<string, unknown>;
      return rest;
    });
}

function expectSameRun(a: { r: SearchResult; out: string }, b: { r: SearchResult; out: string }): void {
  expect(
    Buffer.from(b.r.alphas.normal.buffer, b.r.alphas.normal.byteOffset, b.r.alphas.normal.byteLength).equals(
      Buffer.from(a.r.alphas.normal.buffer, a.r.alphas.normal.byteOffset, a.r.alphas.normal.byteLength),
    ),
  ).toBe(true);
  expect(
    Buffer.from(b.r.alphas.reduce.buffer, b.r.alphas.reduce.byteOffset, b.r.alphas.reduce.byteLength).equals(
      Buffer.from(a.r.alphas.reduce.buffer, a.r.alphas.reduce.byteOffset, a.r.alphas.reduce.byteLength),
    ),
  ).toBe(true);
  expect(b.r.genotype).toEqual(a.r.genotype);
  expect(readFileSync(join(b.out, 'genotype.json'), 'utf8')).toBe(readFileSync(join(a.out, 'genotype.json'), 'utf8'));
  // every parameter and optimizer slot of the final checkpoints, bit for bit
  const ca = loadCheckpoint(a.out);
  const cb = loadCheckpoint(b.out);
  expect(cb.step).toBe(ca.step);
  expect([...cb.tensors.keys()].sort()).toEqual([...ca.tensors.keys()].sort());
  const differing: string[] = [];
  for (const [k, v] of ca.tensors) {
    const w = cb.tensors.get(k)!;
    if (!Buffer.from(w.buffer).equals(Buffer.from(v.buffer))) differing.push(k);
  }
  expect(differing).toEqual([]);
  expect(cb.meta.steps).toEqual(ca.meta.steps);
  expect(logRecords(b.out)).toEqual(logRecords(a.out));
}

describe('search resume', () => {
  it('interrupted and resumed runs end bit-identical to an uninterrupted one', async () => {
    const ref = { out: join(tmp, 'ref'), r: await runSearch(base(join(tmp, 'ref'))) };
    expect(ref.r.stopped).toBe(false);
    expect(ref.r.history).toHaveLength(2);
    expect(loadCheckpoint(ref.out).step).toBe(6);

    const out = join(tmp, 'chain');
    // mid-epoch: after step 1 of epoch 1
    let r = await runSearch({ ...base(out), stopAfterSteps: 1 });
    expect(r.stopped).toBe(true);
    expect(r.history).toHaveLength(0);
    let c = loadCheckpoint(out);
    expect([c.step, c.meta.epoch, c.meta.batch]).toEqual([1, 0, 1]);
    // at the epoch boundary: steps 2, 3 end epoch 1
    r = await runSearch({ ...base(out), resume: true, stopAfterSteps: 3 });
    expect(r.stopped).toBe(true);
    expect(r.history).toHaveLength(1);
    c = loadCheckpoint(out);
    expect([c.step, c.meta.epoch, c.meta.batch]).toEqual([3, 1, 0]);
    // with a checkpoint after every step, stopped mid-epoch 2
    r = await runSearch({ ...base(out), resume: true, checkpointEvery: 1, stopAfterSteps: 5 });
    expect(r.stopped).toBe(true);
    c = loadCheckpoint(out);
    expect([c.step, c.meta.epoch, c.meta.batch]).toEqual([5, 1, 2]);
    // to the end
    r = await runSearch({ ...base(out), resume: true, checkpointEvery: 2 });
    expect(r.stopped).toBe(false);
    expect(r.history).toHaveLength(2);
    expectSameRun(ref, { out, r });
  });
});
