/**
 * Readers on small fixture files written by the tests (CIFAR-10/100 binary,
 * IDX plain and .gz, PNG and JPEG image folders), format detection, error
 * messages for wrong paths and corrupt files, `skipCorrupt`, limits, splits.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeMeanStd, dartsSplit, materialize, splitTrainVal, subset } from '../train/data/dataset.js';
import { DataError } from '../train/data/errors.js';
import { FASHION_MNIST_DIR, loadDataset } from '../train/data/readers.js';
import {
  cifarRecords,
  idxBytes,
  randomBytes,
  smoothImage,
  syntheticDataset,
  tempDir,
  writeIdx,
  writeImage,
} from './fixtures/data-fixtures.js';

let root: string;
let cleanup: () => void;

beforeAll(() => {
  ({ dir: root, cleanup } = tempDir());
});
afterAll(() => cleanup());

/** Expects a promise to reject with a one-line DataError matching `re`. */
async function expectDataError(p: Promise<unknown>, re: RegExp): Promise<void> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(DataError);
  const msg = (e as Error).message;
  expect(msg).toMatch(re);
  expect(msg.includes('\n')).toBe(false);
}

describe('CIFAR binary', () => {
  it('reads a CIFAR-10 release directory (train = data_batch_1..5, test = test_batch)', async () => {
    const dir = join(root, 'c10', 'cifar-10-batches-bin');
    mkdirSync(dir, { recursive: true });
    const batches = [1, 2, 3, 4, 5].map((i) => cifarRecords(3, 'cifar10', i));
    batches.forEach((b, i) => writeFileSync(join(dir, `data_batch_${i + 1}.bin`), b.bytes));
    const test = cifarRecords(4, 'cifar10', 99);
    writeFileSync(join(dir, 'test_batch.bin'), test.bytes);
    writeFileSync(join(dir, 'batches.meta.txt'), 'airplane\n');

    for (const spec of [`cifar10:${join(root, 'c10')}`, join(root, 'c10'), dir]) {
      const ds = await loadDataset(spec);
      expect([ds.n, ds.c, ds.h, ds.w, ds.classes]).toEqual([15, 3, 32, 32, 10]);
      expect(Array.from(ds.labels!)).toEqual(batches.flatMap((b) => b.labels));
      expect(ds.images.subarray(3 * 3072, 4 * 3072)).toEqual(batches[1]!.images.subarray(0, 3072));
      expect(ds.images.buffer).toBeInstanceOf(SharedArrayBuffer);
      expect(ds.mean).toEqual([0.4914, 0.4822, 0.4465]);
    }
    const ts = await loadDataset(`cifar10:${dir}`, { split: 'test' });
    expect(ts.n).toBe(4);
    expect(ts.images).toEqual(test.images);
    expect(Array.from(ts.labels!)).toEqual(test.labels);
    const lim = await loadDataset(dir, { limit: 5 });
    expect(lim.n).toBe(5);
    expect(lim.images).toEqual(ds0(batches).subarray(0, 5 * 3072));
  });

  it('reads CIFAR-100 (coarse, fine) records with fine or coarse labels', async () => {
    const dir = join(root, 'c100');
    mkdirSync(dir, { recursive: true });
    const tr = cifarRecords(6, 'cifar100', 5);
    writeFileSync(join(dir, 'train.bin'), tr.bytes);
    writeFileSync(join(dir, 'test.bin'), cifarRecords(2, 'cifar100', 6).bytes);
    const fine = await loadDataset(dir);
    expect([fine.n, fine.classes, fine.name]).toEqual([6, 100, 'cifar100/train']);
    expect(Array.from(fine.labels!)).toEqual(tr.labels);
    expect(fine.images).toEqual(tr.images);
    const coarse = await loadDataset(`cifar100:${dir}`, { cifar100Labels: 'coarse' });
    expect(coarse.classes).toBe(20);
    expect(Array.from(coarse.labels!)).toEqual(tr.coarse);
    expect((await loadDataset(dir, { split: 'test' })).n).toBe(2);
  });

  it('a truncated batch is an error naming the file, or skipped and counted with skipCorrupt', async () => {
    const dir = join(root, 'c10bad');
    mkdirSync(dir, { recursive: true });
    for (let i = 1; i <= 5; i++) writeFileSync(join(dir, `data_batch_${i}.bin`), cifarRecords(2, 'cifar10', i).bytes);
    const b3 = cifarRecords(2, 'cifar10', 3).bytes;
    writeFileSync(join(dir, 'data_batch_3.bin'), b3.subarray(0, b3.length - 100));
    await expectDataError(loadDataset(dir), /data_batch_3\.bin is truncated/);
    const ds = await loadDataset(dir, { skipCorrupt: true });
    expect(ds.n).toBe(9);
    expect(ds.skipped).toBe(1);
    expect(ds.warnings![0]).toMatch(/data_batch_3\.bin/);
    // A record with an impossible label.
    const b4 = cifarRecords(2, 'cifar10', 4).bytes;
    b4[0] = 200;
    writeFileSync(join(dir, 'data_batch_3.bin'), b3);
    writeFileSync(join(dir, 'data_batch_4.bin'), b4);
    await expectDataError(loadDataset(dir), /data_batch_4\.bin is corrupt: record 0 has label 200/);
    expect((await loadDataset(dir, { skipCorrupt: true })).n).toBe(9);
    // A missing batch file.
    const d2 = join(root, 'c10missing');
    mkdirSync(d2);
    writeFileSync(join(d2, 'data_batch_1.bin'), b3);
    await expectDataError(loadDataset(`cifar10:${d2}`), /missing data_batch_2\.bin, data_batch_3\.bin/);
  });
});

function ds0(batches: { images: Uint8Array }[]): Uint8Array {
  const out = new Uint8Array(batches.length * batches[0]!.images.length);
  batches.forEach((b, i) => out.set(b.images, i * b.images.length));
  return out;
}

describe('IDX', () => {
  const n = 7;
  const imgs = randomBytes(n * 28 * 28, 11);
  const labs = Uint8Array.from({ length: n }, (_, i) => (i * 3) % 10);

  it('reads plain and gzip IDX (directory or images file, labels found beside it)', async () => {
    for (const gz of ['', '.gz']) {
      const dir = join(root, `idx${gz || 'plain'}`);
      mkdirSync(dir, { recursive: true });
      writeIdx(join(dir, `train-images-idx3-ubyte${gz}`), [n, 28, 28], imgs);
      writeIdx(join(dir, `train-labels-idx1-ubyte${gz}`), [n], labs);
      writeIdx(join(dir, `t10k-images-idx3-ubyte${gz}`), [2, 28, 28], imgs.subarray(0, 2 * 784));
      writeIdx(join(dir, `t10k-labels-idx1-ubyte${gz}`), [2], labs.subarray(0, 2));
      for (const spec of [dir, `idx:${dir}`, `fashion-mnist:${dir}`, join(dir, `train-images-idx3-ubyte${gz}`)]) {
        const ds = await loadDataset(spec);
        expect([ds.n, ds.c, ds.h, ds.w, ds.classes]).toEqual([n, 1, 28, 28, 10]);
        expect(ds.images).toEqual(imgs);
        expect(Array.from(ds.labels!)).toEqual(Array.from(labs));
      }
      const ts = await loadDataset(dir, { split: 'test' });
      expect(ts.n).toBe(2);
      expect((await loadDataset(dir, { limit: 3 })).n).toBe(3);
      // Known dataset names get the standard constants; paths get computed ones.
      expect((await loadDataset(`fashion-mnist:${dir}`)).mean).toEqual([0.286]);
      const computed = (await loadDataset(dir)).mean![0]!;
      expect(computed).toBeCloseTo(computeMeanStd(syntheticFromIdx(imgs, n)).mean[0]!, 10);
    }
  });

  it('an images file without a labels file is unlabelled; IDX is sniffed under any name', async () => {
    const f = join(root, 'lonely-images-idx3-ubyte');
    writeIdx(f, [n, 28, 28], imgs);
    const ds = await loadDataset(f);
    expect(ds.labels).toBeNull();
    expect(ds.classes).toBe(0);
    for (const name of ['pixels.dat', 'pixels.dat.gz']) {
      writeIdx(join(root, name), [n, 28, 28], imgs);
      expect((await loadDataset(join(root, name))).images).toEqual(imgs);
    }
  });

  it('truncated or corrupt IDX files give errors naming the file; skipCorrupt keeps the complete images', async () => {
    const dir = join(root, 'idxbad');
    mkdirSync(dir);
    const full = idxBytes([n, 28, 28], imgs);
    writeFileSync(join(dir, 'train-images-idx3-ubyte'), full.subarray(0, full.length - 1000));
    writeIdx(join(dir, 'train-labels-idx1-ubyte'), [n], labs);
    await expectDataError(loadDataset(dir), /train-images-idx3-ubyte is truncated: expected 5488 data bytes/);
    const ds = await loadDataset(dir, { skipCorrupt: true });
    expect(ds.n).toBe(5);
    expect(ds.skipped).toBe(2 + 2); // 2 truncated images, 2 labels without an image
    expect(ds.images).toEqual(imgs.subarray(0, 5 * 784));

    const gzdir = join(root, 'idxbadgz');
    mkdirSync(gzdir);
    const gz = gzipSync(full);
    writeFileSync(join(gzdir, 'train-images-idx3-ubyte.gz'), gz.subarray(0, Math.floor(gz.length * 0.6)));
    await expectDataError(loadDataset(gzdir), /train-images-idx3-ubyte\.gz: corrupt or truncated gzip data/);
    const part = await loadDataset(gzdir, { skipCorrupt: true });
    expect(part.n).toBeGreaterThan(0);
    expect(part.n).toBeLessThan(n);
    expect(part.images).toEqual(imgs.subarray(0, part.n * 784));

    const bad = join(root, 'bad-images-idx3-ubyte');
    writeFileSync(bad, Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]));
    await expectDataError(loadDataset(bad), /bad-images-idx3-ubyte is not an IDX file/);
  });
});

function syntheticFromIdx(images: Uint8Array, n: number) {
  return { images, labels: null, n, c: 1, h: 28, w: 28, classes: 0, name: 'x' };
}

describe('image folders', () => {
  it('reads PNG class sub-folders exactly (labels from sorted folder names)', async () => {
    const dir = join(root, 'pngs');
    const classes = ['cat', 'dog'];
    const want: Uint8Array[] = [];
    for (const [k, cls] of classes.entries()) {
      mkdirSync(join(dir, cls), { recursive: true });
      for (let i = 0; i < 3; i++) {
        const img = randomBytes(3 * 6 * 5, 100 + 10 * k + i);
        want.push(img);
        await writeImage(join(dir, cls, `im${i}.png`), img, 3, 6, 5);
      }
    }
    writeFileSync(join(dir, 'README.txt'), 'not an image');
    const ds = await loadDataset(dir);
    expect([ds.n, ds.c, ds.h, ds.w, ds.classes]).toEqual([6, 3, 6, 5, 2]);
    expect(ds.classNames).toEqual(classes);
    expect(Array.from(ds.labels!)).toEqual([0, 0, 0, 1, 1, 1]);
    want.forEach((img, i) => expect(ds.images.subarray(i * 90, (i + 1) * 90)).toEqual(img));
    const gray = await loadDataset(`folder:${dir}`, { channels: 1, size: 4 });
    expect([gray.c, gray.h, gray.w]).toEqual([1, 4, 4]);
  });

  it('reads a flat JPEG folder as unlabelled, resizing to the size option', async () => {
    const dir = join(root, 'jpgs');
    mkdirSync(dir);
    const want: Uint8Array[] = [];
    for (let i = 0; i < 4; i++) {
      const img = smoothImage(3, 16, 16, i);
      want.push(img);
      await writeImage(join(dir, `p${i}.jpg`), img, 3, 16, 16);
    }
    const ds = await loadDataset(dir);
    expect([ds.n, ds.c, ds.h, ds.w, ds.classes, ds.labels]).toEqual([4, 3, 16, 16, 0, null]);
    let worst = 0;
    want.forEach((img, i) => img.forEach((v, q) => (worst = Math.max(worst, Math.abs(v - ds.images[i * 768 + q]!)))));
    expect(worst).toBeLessThanOrEqual(8); // lossy but close
    const small = await loadDataset(dir, { size: [8, 12] });
    expect([small.n, small.h, small.w]).toEqual([4, 8, 12]);
  });

  it('a folder with train/ and test/ sub-folders is split by them', async () => {
    const dir = join(root, 'splitfolder');
    for (const [part, k] of [
      ['train', 3],
      ['test', 2],
    ] as const) {
      for (const cls of ['a', 'b']) {
        mkdirSync(join(dir, part, cls), { recursive: true });
        for (let i = 0; i < k; i++)
          await writeImage(join(dir, part, cls, `${i}.png`), randomBytes(3 * 4 * 4, i), 3, 4, 4);
      }
    }
    const tr = await loadDataset(dir);
    const ts = await loadDataset(dir, { split: 'test' });
    expect([tr.n, tr.classes, ts.n, ts.classes]).toEqual([6, 2, 4, 2]);
    expect(ts.name).toBe('splitfolder/test');
  });

  it('different sizes without a size option, and corrupt images, are clear errors (or skipped)', async () => {
    const dir = join(root, 'mixed');
    mkdirSync(dir);
    await writeImage(join(dir, 'a.png'), randomBytes(3 * 8 * 8, 1), 3, 8, 8);
    await writeImage(join(dir, 'b.png'), randomBytes(3 * 9 * 8, 2), 3, 9, 8);
    await expectDataError(loadDataset(dir), /images differ in size: .*b\.png is 8x9/);
    expect((await loadDataset(dir, { size: 8 })).n).toBe(2);
    const png = readFileSync(join(dir, 'a.png'));
    writeFileSync(join(dir, 'c.png'), png.subarray(0, 40));
    writeFileSync(join(dir, 'd.jpg'), 'this is not a jpeg');
    await expectDataError(loadDataset(dir, { size: 8 }), /cannot decode image .*c\.png/);
    const ds = await loadDataset(dir, { size: 8, skipCorrupt: true });
    expect(ds.n).toBe(2);
    expect(ds.skipped).toBe(2);
  });
});

describe('loadDataset errors and detection', () => {
  it('a wrong path or unknown format gives one clear DataError', async () => {
    await expectDataError(loadDataset(join(root, 'nope')), /no such file or directory: .*nope/);
    await expectDataError(loadDataset(`cifar10:${join(root, 'nope')}`), /no such file or directory/);
    const dir = join(root, 'texts');
    mkdirSync(dir);
    writeFileSync(join(dir, 'a.txt'), 'hello');
    await expectDataError(loadDataset(dir), /cannot detect the dataset format of .*texts/);
    await expectDataError(loadDataset(join(dir, 'a.txt')), /cannot detect the dataset format of .*a\.txt/);
    await expectDataError(loadDataset(''), /empty dataset spec/);
    await expectDataError(loadDataset('cifar10'), /needs a location/);
    const empty = join(root, 'emptydir');
    mkdirSync(empty);
    await expectDataError(loadDataset(`folder:${empty}`), /no PNG or JPEG images/);
  });

  it('loads real Fashion-MNIST when installed (limit keeps it cheap)', async () => {
    const dir = process.env.FASHION_MNIST_DIR ?? FASHION_MNIST_DIR;
    if (!existsSync(dir)) {
      // Not installed on this machine: the name must still fail with a clear message.
      await expectDataError(loadDataset('fashion-mnist'), /no such file or directory/);
      return;
    }
    const ds = await loadDataset('fashion-mnist', { limit: 100 });
    expect([ds.n, ds.c, ds.h, ds.w, ds.classes, ds.name]).toEqual([100, 1, 28, 28, 10, 'fashion-mnist/train']);
    expect(ds.labels!.every((l) => l >= 0 && l < 10)).toBe(true);
    const ts = await loadDataset('fashion-mnist', { split: 'test', limit: 10 });
    expect(Array.from(ts.labels!)).toEqual([9, 2, 1, 1, 6, 1, 4, 6, 5, 7]);
  });
});

describe('splits', () => {
  const ds = syntheticDataset(101, 1, 4, 4, 5, 3);

  it('DARTS halves are disjoint, cover the set and are reproducible', () => {
    const a = dartsSplit(ds, { seed: 7 });
    const b = dartsSplit(ds, { seed: 7 });
    const c = dartsSplit(ds, { seed: 8 });
    expect(a.weights.indices.length).toBe(50);
    expect(a.arch.indices.length).toBe(51);
    expect(a.weights.indices).toEqual(b.weights.indices);
    expect(a.weights.indices).not.toEqual(c.weights.indices);
    const all = [...a.weights.indices, ...a.arch.indices].sort((x, y) => x - y);
    expect(all).toEqual(Array.from({ length: 101 }, (_, i) => i));
    const plain = dartsSplit(ds, { seed: 7, shuffle: false });
    expect(Array.from(plain.weights.indices)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('train/val split and materialize copy the right rows', () => {
    const { train, val } = splitTrainVal(ds, { valFraction: 0.2, seed: 1 });
    expect(train.indices.length + val.indices.length).toBe(101);
    expect(val.indices.length).toBe(20);
    expect(new Set([...train.indices, ...val.indices]).size).toBe(101);
    const m = materialize(val);
    expect(m.n).toBe(20);
    const r = val.indices[3]!;
    expect(m.images.subarray(3 * 16, 4 * 16)).toEqual(ds.images.subarray(r * 16, (r + 1) * 16));
    expect(m.labels![3]).toBe(ds.labels![r]);
    expect(() => subset(ds, [0, 101])).toThrow(DataError);
    const noShuffle = splitTrainVal(ds, { valCount: 1 });
    expect(Array.from(noShuffle.val.indices)).toEqual([100]);
  });
});
