/**
 * Streamed image sets: the file-index layouts (mixed-size JPEG/PNG folder,
 * ImageNet train/val tree, Cityscapes tree with label maps, image lists), the
 * index kept in a run folder, the crop geometries and resampling against exact
 * pixels, label maps following their images, PCA lighting, --skip-corrupt, and
 * bit-identical batches for one seed with 0, 1 and 2 workers, cached or not.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../graph/rng.js';
import { dartsSplit, materialize, subset } from '../train/data/dataset.js';
import { DataError } from '../train/data/errors.js';
import { buildIndex, openIndex, relativePathAt } from '../train/data/file-index.js';
import {
  chwLayout,
  type CropGeometry,
  drawGeometry,
  GEOMETRY_DEFAULTS,
  type GeometrySettings,
  hwcLayout,
  IMAGENET_EIGVAL,
  IMAGENET_EIGVEC,
  lightingOffsets,
  randomScaleCrop,
  resampleBilinear,
  resampleNearest,
  resizeCenterCrop,
} from '../train/data/geometry.js';
import { DataLoader, DataPool } from '../train/data/pool.js';
import type { Batch, TaskOptions } from '../train/data/pretext.js';
import { loadDataset } from '../train/data/readers.js';
import { openImageStream, SAMPLE_STREAM } from '../train/data/stream.js';
import { DataCache, defaultStudyConfig, studyKey } from '../train/study/runner.js';
import {
  ensureWorkerBuilt,
  gradientImage,
  randomBytes,
  tempDir,
  writeCityscapesTree,
  writeImage,
  writeImageNetTree,
} from './fixtures/data-fixtures.js';

let root: string;
let cleanup: () => void;
const pools: DataPool[] = [];

beforeAll(() => {
  ensureWorkerBuilt();
  ({ dir: root, cleanup } = tempDir('nas-onnx-stream-'));
  pools.push(new DataPool({ workers: 0 }), new DataPool({ workers: 1 }), new DataPool({ workers: 2 }));
});

afterAll(async () => {
  for (const p of pools) await p.close();
  cleanup?.();
});

async function expectDataError(p: Promise<unknown>, re: RegExp): Promise<void> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(DataError);
  expect((e as Error).message).toMatch(re);
}

async function collect(loader: DataLoader, epoch: number): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of loader.epoch(epoch)) out.push(b);
  return out;
}

function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Writes a flat folder of mixed sizes: JPEG and PNG. */
async function mixedFolder(dir: string, n: number): Promise<void> {
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < n; i++) {
    const [h, w] = [30 + 7 * (i % 3), 44 - 5 * (i % 4)];
    await writeImage(join(dir, `im${i}.${i % 2 ? 'png' : 'jpg'}`), gradientImage(h, w, i), 3, h, w);
  }
}

const settings = (size: number, kind: 'imagenet' | 'cityscapes' = 'imagenet'): GeometrySettings => ({
  ...GEOMETRY_DEFAULTS,
  kind,
  size,
});

describe('file index layouts', () => {
  it('a flat folder of mixed-size JPEG and PNG is one unlabelled streamed set', async () => {
    const dir = join(root, 'mixed');
    await mixedFolder(dir, 6);
    writeFileSync(join(dir, 'notes.txt'), 'not an image');
    const ds = await loadDataset(dir, { crop: 24, memoryBytes: 0 });
    expect([ds.n, ds.c, ds.h, ds.w, ds.labels, ds.classes]).toEqual([6, 3, 24, 24, null, 0]);
    expect(ds.images.length).toBe(0);
    expect(ds.stream?.layout).toBe('folder');
    expect(ds.stream?.cache).toBeNull();
    expect(ds.mean).toEqual([0.485, 0.456, 0.406]);
    // without --size, images of different sizes stay a clear error
    await expectDataError(loadDataset(dir), /images differ in size: .*pass a size/);
  });

  it('an ImageNet train/val tree: classes from train, val numbered by the train names', async () => {
    const dir = join(root, 'imagenet');
    await writeImageNetTree(dir, ['n01', 'n02', 'n03'], 3, ['n02', 'n03']);
    const tr = await loadDataset(dir, { crop: 16 });
    const va = await loadDataset(dir, { crop: 16, split: 'test' });
    expect([tr.n, tr.classes, va.n, va.classes]).toEqual([9, 3, 4, 3]);
    expect(tr.classNames).toEqual(['n01', 'n02', 'n03']);
    expect(Array.from(tr.labels!)).toEqual([0, 0, 0, 1, 1, 1, 2, 2, 2]);
    expect(Array.from(va.labels!)).toEqual([1, 1, 2, 2]);
    expect(va.name).toBe('imagenet/val');
    expect(tr.stream?.layout).toBe('classes');
  });

  it('a Cityscapes tree: train/val images with their label maps, the cityscapes crop recipe', async () => {
    const dir = join(root, 'cityscapes');
    const names = await writeCityscapesTree(dir, 24, 48);
    const idx = await buildIndex(dir, 'train');
    expect(idx.layout).toBe('cityscapes');
    expect(idx.files.map((f) => f.split('/').pop())).toEqual(names.map((n) => `${n}_leftImg8bit.png`));
    expect(idx.masks!.every((m, i) => m.endsWith(`${names[i]}_gtFine_labelTrainIds.png`))).toBe(true);
    const va = await buildIndex(dir, 'test');
    expect(va.files[0]).toMatch(/^leftImg8bit\/val\/aachen\//);
    const ds = await loadDataset(dir, { crop: 16 });
    expect([ds.n, ds.labels, ds.stream?.kind, ds.stream?.masks?.count]).toEqual([4, null, 'cityscapes', 4]);
    await expectDataError(loadDataset(dir), /Cityscapes layout: its images are streamed, pass --size/);
  });

  it('image lists: tab- or space-separated labels (names or integers), train.txt with val.txt', async () => {
    const dir = join(root, 'listed');
    await mixedFolder(join(dir, 'img'), 4);
    writeFileSync(join(dir, 'train.txt'), 'img/im0.jpg\tdog\nimg/im1.png\tcat\n# comment\nimg/im2.jpg dog\n');
    writeFileSync(join(dir, 'val.txt'), 'img/im3.png\tcat\n');
    const tr = await loadDataset(join(dir, 'train.txt'), { crop: 16 });
    const va = await loadDataset(join(dir, 'train.txt'), { crop: 16, split: 'test' });
    expect([tr.n, tr.classes, tr.classNames, Array.from(tr.labels!)]).toEqual([3, 2, ['cat', 'dog'], [1, 0, 1]]);
    expect([va.n, Array.from(va.labels!)]).toEqual([1, [0]]);
    writeFileSync(join(dir, 'ints.txt'), 'img/im0.jpg 4\nimg/im1.png 1\n');
    const ints = await loadDataset(join(dir, 'ints.txt'), { crop: 16 });
    expect([ints.classes, Array.from(ints.labels!)]).toEqual([5, [4, 1]]);
    writeFileSync(join(dir, 'bad.txt'), 'img/im0.jpg 4\nimg/im1.png\n');
    await expectDataError(loadDataset(join(dir, 'bad.txt'), { crop: 16 }), /1 of 2 lines have a label/);
    await expectDataError(loadDataset(join(dir, 'train.txt')), /image list: its images are streamed, pass --size/);
  });

  it('the index is saved in the run folder and reused: no rescan, same files after the folder changes', async () => {
    const dir = join(root, 'indexed');
    await mixedFolder(dir, 3);
    const runData = join(root, 'run-data');
    mkdirSync(runData);
    const a = await openIndex(dir, 'train', runData);
    await writeImage(join(dir, 'zz-new.png'), gradientImage(20, 20, 9), 3, 20, 20);
    const b = await openIndex(dir, 'train', runData);
    expect(b.files).toEqual(a.files);
    expect(JSON.parse(readFileSync(join(runData, 'index-train.json'), 'utf8')).files).toHaveLength(3);
    expect((await buildIndex(dir, 'train')).files).toHaveLength(4);
    // another source in the same folder is scanned afresh
    const other = join(root, 'mixed');
    expect((await openIndex(other, 'train', runData)).root).toBe(other);
  });

  it('crop sizes apply to folders and lists only', async () => {
    const dir = join(root, 'idx-like');
    mkdirSync(dir);
    await expectDataError(loadDataset(`cifar10:${dir}`, { crop: 64 }), /.+/);
  });
});

describe('crop geometry and resampling (exact pixels)', () => {
  const src = randomBytes(3 * 10 * 12, 3); // CHW 3×10×12

  it('a crop at scale 1 copies the box exactly; a flip mirrors it', () => {
    const box = { top: 2, left: 3, height: 6, width: 6 };
    const g: CropGeometry = { ...box, clamp: box, flip: false, oh: 6, ow: 6 };
    const out = new Uint8Array(3 * 36);
    resampleBilinear(src, chwLayout(10, 12), 3, g, out);
    const flipped = new Uint8Array(3 * 36);
    resampleBilinear(src, chwLayout(10, 12), 3, { ...g, flip: true }, flipped);
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < 6; y++)
        for (let x = 0; x < 6; x++) {
          const want = src[(c * 10 + 2 + y) * 12 + 3 + x]!;
          expect(out[(c * 6 + y) * 6 + x]).toBe(want);
          expect(flipped[(c * 6 + y) * 6 + 5 - x]).toBe(want);
        }
  });

  it('downscaling by 2 averages 2×2 blocks; HWC and CHW sources agree; nearest picks one pixel', () => {
    const box = { top: 0, left: 2, height: 10, width: 10 };
    const g: CropGeometry = { ...box, clamp: box, flip: false, oh: 5, ow: 5 };
    const out = new Uint8Array(75);
    resampleBilinear(src, chwLayout(10, 12), 3, g, out);
    const hwc = new Uint8Array(src.length);
    for (let c = 0; c < 3; c++) for (let p = 0; p < 120; p++) hwc[p * 3 + c] = src[c * 120 + p]!;
    const out2 = new Uint8Array(75);
    resampleBilinear(hwc, hwcLayout(12, 3), 3, g, out2);
    expect(out2).toEqual(out);
    const near = new Uint8Array(25);
    resampleNearest(src, chwLayout(10, 12), g, near);
    for (let y = 0; y < 5; y++)
      for (let x = 0; x < 5; x++) {
        const at = (c: number, yy: number, xx: number): number => src[(c * 10 + yy) * 12 + 2 + xx]!;
        for (let c = 0; c < 3; c++) {
          const s =
            at(c, 2 * y, 2 * x) + at(c, 2 * y, 2 * x + 1) + at(c, 2 * y + 1, 2 * x) + at(c, 2 * y + 1, 2 * x + 1);
          expect(out[(c * 5 + y) * 5 + x]).toBe(Math.round(s / 4));
        }
        // the pixel containing the sample position (2y + 1, 2x + 1)
        expect(near[y * 5 + x]).toBe(at(0, 2 * y + 1, 2 * x + 1));
      }
  });

  it('test transform: shorter side to round(size·256/224), centre crop', () => {
    const g = resizeCenterCrop(300, 400, settings(224));
    // scaled to 256×341, window at (16, 58)
    expect(g.top).toBeCloseTo((16 * 300) / 256, 12);
    expect(g.height).toBeCloseTo((224 * 300) / 256, 12);
    expect(g.left).toBeCloseTo((58 * 400) / 341, 12);
    expect(g.width).toBeCloseTo((224 * 400) / 341, 12);
    expect([g.clamp, g.flip, g.oh, g.ow]).toEqual([{ top: 0, left: 0, height: 300, width: 400 }, false, 224, 224]);
  });

  it('random-sized crop and Cityscapes scale + crop stay inside the image with the drawn scale', () => {
    for (let t = 0; t < 200; t++) {
      const rng = new Rng(t);
      const g = drawGeometry(rng, 300, 400, settings(64), { augment: true, flip: true });
      expect(g.top >= 0 && g.left >= 0 && g.top + g.height <= 300 && g.left + g.width <= 400).toBe(true);
      expect(g.clamp).toEqual({ top: g.top, left: g.left, height: g.height, width: g.width });
      const area = (g.height * g.width) / (300 * 400);
      expect(area).toBeLessThanOrEqual(1);
      const c = randomScaleCrop(new Rng(t), 1024, 2048, settings(321, 'cityscapes'));
      const side = (321 * 1024) / c.height; // the scaled shorter side
      expect(side).toBeGreaterThanOrEqual(321 - 1e-9);
      expect(side).toBeLessThanOrEqual(1024 + 1);
      expect(c.top >= 0 && c.left >= 0 && c.top + c.height <= 1024 + 1e-9 && c.left + c.width <= 2048 + 1e-9).toBe(
        true,
      );
    }
  });

  it('PCA lighting is AlexNet’s: offsets = eigvec · (α ⊙ eigval), α ~ N(0, 0.1²)', () => {
    const off = lightingOffsets(new Rng(5), 0.1);
    const r = new Rng(5);
    const alpha = [r.normal() * 0.1, r.normal() * 0.1, r.normal() * 0.1];
    for (let c = 0; c < 3; c++) {
      const want = [0, 1, 2].reduce((s, j) => s + IMAGENET_EIGVEC[c]![j]! * alpha[j]! * IMAGENET_EIGVAL[j]!, 0);
      expect(off[c]).toBeCloseTo(want, 14);
    }
  });
});

/** The geometry sample i of batch (epoch, index) draws, re-drawn here from the same stream. */
function drawnGeometry(
  seed: number,
  epoch: number,
  index: number,
  i: number,
  h: number,
  w: number,
  s: GeometrySettings,
) {
  return drawGeometry(Rng.derive(seed, SAMPLE_STREAM, epoch, index, i), h, w, s, { augment: true, flip: true });
}

async function decodeHwc(file: string, channels: 3 | 1): Promise<{ data: Uint8Array; w: number; h: number }> {
  const img = channels === 1 ? sharp(file).extractChannel(0) : sharp(file).removeAlpha().toColourspace('srgb');
  const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), w: info.width, h: info.height };
}

describe('streamed batches', () => {
  it('images and their label maps are cut with the same geometry (exact pixels, Cityscapes recipe)', async () => {
    const dir = join(root, 'cityscapes');
    const ds = await loadDataset(dir, { crop: 16, memoryBytes: 0, lighting: 0 });
    const index = await buildIndex(dir, 'train');
    // rot: row 4i (rotation 0) is sample i, normalized
    const rot = new DataLoader(ds, {
      task: 'rot',
      batchSize: 4,
      seed: 3,
      shuffle: false,
      masks: true,
      pool: pools[0]!,
    });
    const b = await rot.batch(0, 0);
    for (let i = 0; i < 4; i++) {
      const g = drawnGeometry(3, 0, 0, i, 24, 48, ds.stream!);
      const img = await decodeHwc(join(dir, index.files[i]!), 3);
      const want = new Uint8Array(3 * 256);
      resampleBilinear(img.data, hwcLayout(img.w, 3), 3, g, want);
      for (let c = 0; c < 3; c++)
        for (let p = 0; p < 256; p++) {
          const v = (want[c * 256 + p]! / 255 - ds.mean![c]!) / ds.std![c]!;
          expect(b.x[4 * i * 768 + c * 256 + p]).toBeCloseTo(v, 5);
        }
      const mask = await decodeHwc(join(dir, index.masks![i]!), 1);
      const wantMask = new Uint8Array(256);
      resampleNearest(mask.data, hwcLayout(mask.w, 1), g, wantMask);
      expect(b.masks!.subarray(i * 256, (i + 1) * 256)).toEqual(wantMask);
    }
    await rot.close();
  });

  it('cls with PCA lighting: the normalized crop plus offset/std per channel, offsets drawn after the crop', async () => {
    const dir = join(root, 'imagenet');
    const ds = await loadDataset(dir, { crop: 16, memoryBytes: 0 });
    const plain = await loadDataset(dir, { crop: 16, memoryBytes: 0, lighting: 0 });
    const index = await buildIndex(dir, 'train');
    const opts = { task: 'cls' as const, batchSize: 3, seed: 8, shuffle: false, pool: pools[0]! };
    const a = await new DataLoader(ds, opts).batch(0, 0);
    const b = await new DataLoader(plain, opts).batch(0, 0);
    expect(Array.from(a.y)).toEqual(Array.from(b.y));
    for (let i = 0; i < 3; i++) {
      const m = await sharp(join(index.root, index.files[i]!)).metadata();
      const r = Rng.derive(8, SAMPLE_STREAM, 0, 0, i);
      drawGeometry(r, m.height!, m.width!, ds.stream!, { augment: true, flip: true });
      const off = lightingOffsets(r, 0.1);
      for (let c = 0; c < 3; c++)
        for (let p = 0; p < 256; p++) {
          const d = a.x[i * 768 + c * 256 + p]! - b.x[i * 768 + c * 256 + p]!;
          expect(d).toBeCloseTo(off[c]! / ds.std![c]!, 5);
        }
    }
  });

  it('one seed gives bit-identical batches with 0, 1 and 2 workers, streamed or cached, for every task', async () => {
    const dir = join(root, 'det');
    await mixedFolder(dir, 14);
    const streamed = await loadDataset(dir, { crop: 32, memoryBytes: 0 });
    const cached = await loadDataset(dir, { crop: 32 });
    expect(streamed.stream!.cache).toBeNull();
    expect(cached.stream!.cache).not.toBeNull();
    const tasks: TaskOptions[] = [{ name: 'rot' }, { name: 'col' }, { name: 'jig' }, { name: 'simclr' }];
    for (const task of tasks) {
      const runs: Batch[][] = [];
      for (const [ds, pool] of [
        [streamed, pools[0]!],
        [streamed, pools[1]!],
        [streamed, pools[2]!],
        [cached, pools[2]!],
      ] as const) {
        const l = new DataLoader(ds, { task, batchSize: 4, seed: 11, pool, dropLast: true });
        runs.push(await collect(l, 1));
      }
      // the JPEGs here are never shrunk on load (crops are at most 1.4× smaller), so cached = streamed
      for (const r of runs.slice(1)) {
        expect(r.length).toBe(runs[0]!.length);
        r.forEach((b, k) => {
          expect(sameBytes(b.x, runs[0]![k]!.x)).toBe(true);
          expect(sameBytes(b.y, runs[0]![k]!.y)).toBe(true);
          expect(b.rows).toEqual(runs[0]![k]!.rows);
        });
      }
    }
    // DARTS halves of a streamed set are subsets of it
    const halves = dartsSplit(streamed, { seed: 1 });
    const w = new DataLoader(halves.weights, { task: 'rot', batchSize: 2, seed: 1, pool: pools[1]! });
    expect((await collect(w, 0)).length).toBe(4);
  });

  it('--skip-corrupt: an unreadable file fails a batch, or is skipped, reported and replaced in its batch', async () => {
    const dir = join(root, 'corrupt');
    await mixedFolder(dir, 5);
    writeFileSync(join(dir, 'im2.jpg'), readFileSync(join(dir, 'im0.jpg')).subarray(0, 200));
    const bad = join(dir, 'im2.jpg');
    const strict = await loadDataset(dir, { crop: 16, memoryBytes: 0 });
    const l = new DataLoader(strict, { task: 'rot', batchSize: 5, seed: 2, shuffle: false, pool: pools[1]! });
    await expectDataError(l.batch(0, 0), /cannot decode image .*im2\.jpg/);
    const ds = await loadDataset(dir, { crop: 16, memoryBytes: 0, skipCorrupt: true });
    for (const pool of [pools[0]!, pools[2]!]) {
      const sl = new DataLoader(ds, { task: 'rot', batchSize: 5, seed: 2, shuffle: false, pool });
      const b = await sl.batch(0, 0);
      expect(b.corrupt).toEqual([bad]);
      expect(sl.unreadable).toEqual([bad]);
      expect(b.x.every(Number.isFinite)).toBe(true);
    }
    // a set cached at open drops the file there and counts it
    await expectDataError(loadDataset(dir, { crop: 16 }), /cannot decode image .*im2\.jpg/);
    const cached = await loadDataset(dir, { crop: 16, skipCorrupt: true });
    expect([cached.n, cached.skipped, cached.stream!.cache !== null]).toEqual([4, 1, true]);
    expect(cached.warnings![0]).toMatch(/im2\.jpg/);
  });

  it('large JPEGs are decoded at a reduced size when the crop allows, close to the full-size cut', async () => {
    const dir = join(root, 'large');
    mkdirSync(dir);
    // a slow gradient: a plain bilinear cut of the full-size image is then not aliased either
    const img = new Uint8Array(3 * 600 * 800);
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < 600; y++)
        for (let x = 0; x < 800; x++)
          img[(c * 600 + y) * 800 + x] = Math.round(128 + 100 * Math.sin(x / 150 + c) * Math.cos(y / 120));
    await writeImage(join(dir, 'big.jpg'), img, 3, 600, 800);
    const ds = await loadDataset(dir, { crop: 32, memoryBytes: 0 });
    // test transform: shorter side to 37, so the crop shrinks the image 16×: decoded at 1/16
    const l = new DataLoader(ds, { task: { name: 'rot', augment: false }, batchSize: 1, seed: 0, pool: pools[0]! });
    const b = await l.batch(0, 0);
    const full = await decodeHwc(join(dir, 'big.jpg'), 3);
    const want = new Uint8Array(3 * 1024);
    resampleBilinear(full.data, hwcLayout(full.w, 3), 3, resizeCenterCrop(600, 800, ds.stream!), want);
    let diff = 0;
    for (let c = 0; c < 3; c++)
      for (let p = 0; p < 1024; p++) {
        const got = (b.x[c * 1024 + p]! * ds.std![c]! + ds.mean![c]!) * 255;
        diff += Math.abs(got - want[c * 1024 + p]!);
      }
    expect(diff / 3072).toBeLessThan(2);
  });
});

describe('streamed sets: subsets', () => {
  it('a streamed subset materializes to a set of its own files', async () => {
    const ds = await openImageStream(join(root, 'imagenet'), { crop: 8, cacheBytes: 0 });
    const m = materialize(subset(ds, [4, 1]));
    expect([m.n, Array.from(m.labels!), m.stream!.paths.count]).toEqual([2, [1, 0], 2]);
    expect(relativePathAt(m.stream!.paths, 0)).toBe(relativePathAt(ds.stream!.paths, 4));
    const opts = { task: 'cls' as const, batchSize: 2, seed: 4, shuffle: false, pool: pools[0]! };
    const x1 = (await new DataLoader(subset(ds, [4, 1]), opts).batch(0, 0)).x;
    const x2 = (await new DataLoader(m, opts).batch(0, 0)).x;
    expect(sameBytes(x1, x2)).toBe(true);
  });
});

describe('study data with --size', () => {
  it('the study data cache streams a folder at the crop size; the key of a study without it is unchanged', async () => {
    const ds = await new DataCache().get(join(root, 'imagenet'), 'test', null, { size: 16, skipCorrupt: true });
    expect([ds.n, ds.h, ds.w, ds.stream?.skipCorrupt]).toEqual([4, 16, 16, true]);
    // studies made before these fields existed keep their key: the fields are hashed only when set
    const def = defaultStudyConfig('darts');
    const { size: _s, skipCorrupt: _k, ...old } = def;
    const oldJson = JSON.stringify(Object.keys(old).map((k) => [k, old[k as keyof typeof old]]));
    expect(studyKey(def)).toBe(createHash('md5').update(oldJson, 'utf8').digest('hex').slice(0, 12));
    expect(studyKey({ ...def, size: 64 })).not.toBe(studyKey(def));
  });
});
