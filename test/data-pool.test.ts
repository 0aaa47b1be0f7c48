/**
 * The batch loader: identical batches for one seed with 0, 1 and 2 workers and
 * across runs, exact resume from a batch index, epoch order, subsets,
 * prefetching with early exit, and clean shutdown. The pool's workers run the
 * compiled dist/ code, which `ensureWorkerBuilt` refreshes when stale.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dartsSplit, type Dataset } from '../train/data/dataset.js';
import { DataError } from '../train/data/errors.js';
import { DataLoader, DataPool, resolveWorkerFile } from '../train/data/pool.js';
import type { Batch, TaskName, TaskOptions } from '../train/data/pretext.js';
import { ensureWorkerBuilt, syntheticDataset } from './fixtures/data-fixtures.js';

const TASKS: (TaskName | TaskOptions)[] = ['cls', 'rot', 'col', 'jig', 'simclr', { name: 'cls', cutout: 8 }];

async function collect(loader: DataLoader, epoch: number, startBatch = 0): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of loader.epoch(epoch, { startBatch })) out.push(b);
  return out;
}

function expectSameBatches(a: Batch[], b: Batch[]): void {
  expect(b.length).toBe(a.length);
  a.forEach((x, i) => {
    const y = b[i]!;
    expect([y.index, y.epoch, y.size, y.xShape, y.yShape]).toEqual([x.index, x.epoch, x.size, x.xShape, x.yShape]);
    expect(
      Buffer.compare(
        Buffer.from(y.x.buffer, y.x.byteOffset, y.x.byteLength),
        Buffer.from(x.x.buffer, x.x.byteOffset, x.x.byteLength),
      ),
    ).toBe(0);
    expect(y.y).toEqual(x.y);
    expect(y.rows).toEqual(x.rows);
    expect(y.labels).toEqual(x.labels);
  });
}

let rgb: Dataset;
let gray: Dataset;
const pools: DataPool[] = [];

beforeAll(() => {
  ensureWorkerBuilt();
  rgb = syntheticDataset(37, 3, 32, 32, 10, 1);
  gray = syntheticDataset(30, 1, 28, 28, 10, 2);
  pools.push(new DataPool({ workers: 0 }), new DataPool({ workers: 1 }), new DataPool({ workers: 2 }));
});

afterAll(async () => {
  for (const p of pools) await p.close();
});

describe('DataLoader reproducibility', () => {
  it('the worker script resolves to the compiled dist file', () => {
    expect(resolveWorkerFile()).toMatch(/dist[/\\]train[/\\]data[/\\]worker\.js$/);
  });

  it('one seed gives identical batches with 0, 1 and 2 workers, for every task', async () => {
    for (const ds of [rgb, gray]) {
      for (const task of TASKS) {
        if (ds.c === 1 && task === 'col') continue; // colorization needs RGB
        let ref: Batch[] | null = null;
        for (const pool of pools) {
          const loader = new DataLoader(ds, { task, batchSize: 8, seed: 42, pool });
          const got = await collect(loader, 3);
          expect(got.length).toBe(Math.ceil(ds.n / 8));
          if (ref) expectSameBatches(ref, got);
          else ref = got;
        }
      }
    }
  });

  it('unlabelled data works in workers (labels null) and matches in-process batches', async () => {
    const unl: Dataset = { ...gray, labels: null, classes: 0 };
    const a = await collect(new DataLoader(unl, { task: 'rot', batchSize: 7, seed: 1, pool: pools[0] }), 0);
    const b = await collect(new DataLoader(unl, { task: 'rot', batchSize: 7, seed: 1, pool: pools[2] }), 0);
    expectSameBatches(a, b);
    expect(b[0]!.labels).toBeNull();
  });

  it('two runs with one seed are identical; another seed or epoch differs', async () => {
    const mk = (seed: number): DataLoader =>
      new DataLoader(rgb, { task: 'simclr', batchSize: 10, seed, pool: pools[2] });
    const a = await collect(mk(7), 0);
    const b = await collect(mk(7), 0);
    expectSameBatches(a, b);
    const c = await collect(mk(8), 0);
    expect(c[0]!.x).not.toEqual(a[0]!.x);
    const d = await collect(mk(7), 1);
    expect(d[0]!.rows).not.toEqual(a[0]!.rows);
  });

  it('resuming at a batch index yields exactly the remaining batches', async () => {
    for (const pool of [pools[0]!, pools[2]!]) {
      const loader = new DataLoader(rgb, { task: 'jig', batchSize: 4, seed: 5, pool });
      const full = await collect(loader, 2);
      const rest = await collect(loader, 2, 6);
      expectSameBatches(full.slice(6), rest);
      expect(await collect(loader, 2, loader.batchesPerEpoch)).toEqual([]);
      const one = await loader.batch(2, 3);
      expectSameBatches([full[3]!], [one]);
    }
  });
});

describe('DataLoader epochs', () => {
  it('each epoch is a seeded permutation of the rows; shuffle: false keeps the order; dropLast', async () => {
    const loader = new DataLoader(rgb, { task: 'cls', batchSize: 8, seed: 1, workers: 0 });
    const rows = (await collect(loader, 0)).flatMap((b) => Array.from(b.rows));
    expect([...rows].sort((a, b) => a - b)).toEqual(Array.from({ length: 37 }, (_, i) => i));
    expect(rows).not.toEqual(Array.from({ length: 37 }, (_, i) => i));
    const last = (await collect(loader, 0)).at(-1)!;
    expect(last.size).toBe(5);
    expect(last.xShape).toEqual([5, 3, 32, 32]);
    const ordered = new DataLoader(rgb, {
      task: 'cls',
      batchSize: 8,
      seed: 1,
      workers: 0,
      shuffle: false,
      dropLast: true,
    });
    expect(ordered.batchesPerEpoch).toBe(4);
    expect((await collect(ordered, 9)).flatMap((b) => Array.from(b.rows))).toEqual(
      Array.from({ length: 32 }, (_, i) => i),
    );
  });

  it('a subset (DARTS half) only yields its rows, with the labels of those rows', async () => {
    const { weights, arch } = dartsSplit(rgb, { seed: 3 });
    const lw = new DataLoader(weights, { task: 'cls', batchSize: 6, seed: 1, pool: pools[1] });
    const la = new DataLoader(arch, { task: 'rot', batchSize: 6, seed: 2, pool: pools[1] });
    const bw = await collect(lw, 0);
    const ba = await collect(la, 0);
    const rw = bw.flatMap((b) => Array.from(b.rows)).sort((a, b) => a - b);
    expect(rw).toEqual(Array.from(weights.indices).sort((a, b) => a - b));
    for (const b of bw) expect(Array.from(b.y)).toEqual(Array.from(b.rows).map((r) => rgb.labels![r]!));
    expect(ba.flatMap((b) => Array.from(b.rows)).sort((a, b) => a - b)).toEqual(
      Array.from(arch.indices).sort((a, b) => a - b),
    );
  });

  it('leaving an epoch early, then closing, is clean; a closed pool refuses work', async () => {
    const loader = new DataLoader(rgb, { task: 'col', batchSize: 2, seed: 1, workers: 2, prefetch: 6 });
    let n = 0;
    for await (const b of loader.epoch(0)) {
      expect(b.xShape).toEqual([2, 1, 32, 32]);
      if (++n === 2) break;
    }
    await loader.close();
    await loader.close(); // idempotent
    await expect(loader.batch(0, 0)).rejects.toThrow(DataError);
  });

  it('bad options are DataErrors', () => {
    expect(() => new DataLoader(rgb, { task: 'cls', batchSize: 0, seed: 1, workers: 0 })).toThrow(/batchSize/);
    expect(
      () => new DataLoader(rgb, { task: 'cls', batchSize: 4, seed: 1, workers: 0, mean: [0.5], std: [0.5] }),
    ).toThrow(/3 means/);
    const l = new DataLoader(rgb, { task: 'cls', batchSize: 4, seed: 1, workers: 0 });
    expect(() => l.batchRows(0, 99)).toThrow(/outside/);
    const unl: Dataset = { ...rgb, labels: null, classes: 0 };
    expect(() => new DataLoader(unl, { task: 'cls', batchSize: 4, seed: 1, workers: 0 })).toThrow(/unlabelled/);
  });
});
