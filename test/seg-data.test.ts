/**
 * Segmentation data (train/data/seg.ts, seg-labels.ts, the label-map path of
 * stream.ts and file-index.ts): label maps follow their images through the
 * random scale, crop and flip in the workers (checked pixel by pixel against
 * the colour that decides each class), Cityscapes labelIds are mapped to the
 * 19 training classes, a map with a stray value fails naming its file, and
 * validation frames are whole images padded to 16k + 1 with labels 255.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildIndex,
  DataLoader,
  DataPool,
  openSegTrainSet,
  paddedSide,
  SegFrames,
  STREAM_DEFAULTS,
  type Batch,
} from '../train/data/index.js';
import { checkLabels, labelLut } from '../train/data/seg-labels.js';
import { ensureWorkerBuilt, tempDir } from './fixtures/data-fixtures.js';
import { writeCityscapesTree, writeShapesFolder } from './helpers/seg-data.js';

const tmp = tempDir('nas-onnx-seg-data-');
const shapes = join(tmp.dir, 'shapes');
const city = join(tmp.dir, 'city');

beforeAll(async () => {
  ensureWorkerBuilt();
  await writeShapesFolder(shapes, { train: 12, val: 3 }, [48, 64], 5);
  await writeCityscapesTree(city, { train: 4, val: 2 }, [32, 64], 6);
}, 600_000);
afterAll(() => tmp.cleanup());

/** The class a pixel's colour says (0 gray, 1 red, 2 blue), or null where interpolation blurred it. */
function colourClass(r: number, g: number, b: number): number | null {
  // shape pixels: red (220, 40, 40) and blue (40, 60, 220) ± 15
  if (r > 0.75 && g < 0.3 && b < 0.3) return 1;
  if (b > 0.75 && r < 0.3 && g < 0.35) return 2;
  if (Math.abs(r - g) < 0.08 && Math.abs(r - b) < 0.08 && r > 0.25 && r < 0.75) return 0;
  return null;
}

/** Agreements and disagreements of the labels with the colours of a batch (x un-normalized). */
function agreement(b: Batch): { agree: number; disagree: number; ignored: number } {
  const [n, , h, w] = b.xShape as [number, number, number, number];
  const { mean, std } = STREAM_DEFAULTS;
  const px = (i: number, c: number, p: number): number => b.x[(i * 3 + c) * h * w + p]! * std[c]! + mean[c]!;
  const out = { agree: 0, disagree: 0, ignored: 0 };
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < h * w; p++) {
      const l = b.y[i * h * w + p]!;
      if (l === 255) {
        out.ignored++;
        continue;
      }
      const c = colourClass(px(i, 0, p), px(i, 1, p), px(i, 2, p));
      if (c === null) continue;
      if (c === l) out.agree++;
      else out.disagree++;
    }
  }
  return out;
}

describe('label maps through the crops (images/ + masks/)', () => {
  it('scale + crop + flip: every clearly coloured pixel keeps its class; the same batches with a worker', async () => {
    const ds = await openSegTrainSet(shapes, { classes: 3, crop: 40, scaleBase: 56, lighting: 0, indexDir: undefined });
    expect(ds.stream!.layout).toBe('masks');
    const batches: Batch[][] = [];
    for (const workers of [0, 1]) {
      const pool = new DataPool({ workers });
      const loader = new DataLoader(ds, { task: { name: 'seg', numClasses: 3 }, batchSize: 6, seed: 3, pool });
      const got: Batch[] = [];
      for (const e of [0, 1]) for await (const b of loader.epoch(e)) got.push(b);
      await loader.close();
      await pool.close();
      batches.push(got);
    }
    const [inProcess, worker] = batches as [Batch[], Batch[]];
    expect(worker.map((b) => Array.from(b.y))).toEqual(inProcess.map((b) => Array.from(b.y)));
    expect(worker.map((b) => Array.from(b.x))).toEqual(inProcess.map((b) => Array.from(b.x)));
    const total = { agree: 0, disagree: 0, ignored: 0 };
    for (const b of inProcess) {
      expect(b.xShape).toEqual([6, 3, 40, 40]);
      expect(b.yShape).toEqual([6, 40, 40]);
      const a = agreement(b);
      total.agree += a.agree;
      total.disagree += a.disagree;
      total.ignored += a.ignored;
    }
    // nearest-sampled labels on bilinear-sampled colours: only the blurred edge pixels are left out
    expect(total.agree).toBeGreaterThan(0.8 * 4 * 6 * 40 * 40);
    expect(total.disagree).toBe(0);
    expect(total.ignored).toBeGreaterThan(0); // the discs' rims
  });

  it('a label map with a value that is no class fails its batch, naming the file', async () => {
    const bad = join(tmp.dir, 'bad');
    await writeShapesFolder(bad, { train: 2, val: 1 }, [32, 32], 9);
    const stray = new Uint8Array(32 * 32).fill(40);
    await sharp(Buffer.from(stray), { raw: { width: 32, height: 32, channels: 1 } })
      .png()
      .toFile(join(bad, 'train', 'masks', '1.png'));
    const ds = await openSegTrainSet(bad, { classes: 3, crop: 32, scaleBase: 32 });
    const loader = new DataLoader(ds, { task: { name: 'seg', numClasses: 3 }, batchSize: 2, seed: 0, workers: 0 });
    await expect(loader.batch(0, 0)).rejects.toThrow(
      /masks\/1\.png holds the value 40: expected class ids 0\.\.2 or 255/,
    );
    await loader.close();
  });
});

describe('Cityscapes label maps', () => {
  it('official labelIds (no labelTrainIds) are mapped to the 19 training classes in batches and frames', async () => {
    const idx = await buildIndex(city, 'train');
    expect(idx.layout).toBe('cityscapes');
    expect(idx.maskMapping).toBe('cityscapes-labelIds');
    expect(idx.masks!.every((m) => m.endsWith('_gtFine_labelIds.png'))).toBe(true);
    const ds = await openSegTrainSet(city, { classes: 19, crop: 32, scaleBase: 32, lighting: 0 });
    const loader = new DataLoader(ds, { task: { name: 'seg', numClasses: 19 }, batchSize: 4, seed: 1, workers: 0 });
    const b = await loader.batch(0, 0);
    await loader.close();
    // road (7 → 0), person (24 → 11), car (26 → 13), unlabeled (0 → 255)
    expect([...new Set(b.y)].sort((p, q) => p - q)).toEqual([0, 11, 13, 255]);
    const frames = await SegFrames.open(city, { classes: 19 });
    expect(frames.count).toBe(2);
    expect(frames.classNames[13]).toBe('car');
    const f = await frames.frameAt(0);
    expect([...new Set(f.labels)].sort((p, q) => p - q)).toEqual([0, 11, 13, 255]);
  });

  it('the labelIds mapping is cityscapesScripts’: 34 ids, 19 classes, the rest ignored', () => {
    const lut = labelLut('cityscapes-labelIds');
    const mapped = Array.from({ length: 34 }, (_, i) => lut[i]!);
    expect(mapped.filter((v) => v !== 255).sort((a, b) => a - b)).toEqual(Array.from({ length: 19 }, (_, i) => i));
    expect([lut[7], lut[8], lut[11], lut[23], lut[24], lut[26], lut[33]]).toEqual([0, 1, 2, 10, 11, 13, 18]);
    expect([lut[0], lut[6], lut[9], lut[14], lut[29], lut[30]]).toEqual([255, 255, 255, 255, 255, 255]);
    expect(() => checkLabels(Uint8Array.of(0, 18, 255), 19, 'x')).not.toThrow();
    expect(() => checkLabels(Uint8Array.of(0, 19), 19, 'x.png')).toThrow(/x\.png holds the value 19/);
  });
});

describe('validation frames', () => {
  it('whole images padded to 16k + 1: normalized pixels inside, 0 and label 255 outside', async () => {
    expect([1024, 2048, 1025, 64, 48, 1].map((n) => paddedSide(n))).toEqual([1025, 2049, 1025, 65, 49, 1]);
    const frames = await SegFrames.open(shapes, { classes: 3 });
    expect(frames.count).toBe(3);
    expect(frames.frame).toEqual([49, 65]);
    const f = await frames.frameAt(1);
    const [H, W] = frames.frame;
    expect([f.h, f.w]).toEqual([48, 64]);
    // the label map as written (row 48 and column 64 are padding)
    const { data } = await sharp(join(shapes, 'val', 'masks', '1.png'))
      .extractChannel(0)
      .raw()
      .toBuffer({ resolveWithObject: true });
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        const want = y < 48 && x < 64 ? data[y * 64 + x]! : 255;
        if (f.labels[y * W + x] !== want) throw new Error(`label at ${y},${x}: ${f.labels[y * W + x]} vs ${want}`);
      }
    expect(f.x[48 * W + 10]).toBe(0);
    expect(f.x[2 * H * W + 10 * W + 64]).toBe(0);
    expect(f.x.some((v) => v !== 0)).toBe(true);
  });

  it('a validation split without label maps is refused in one line', async () => {
    const bare = join(tmp.dir, 'bare');
    await writeShapesFolder(bare, { train: 1, val: 1 }, [16, 16], 2);
    writeFileSync(join(bare, 'note.txt'), 'no masks here\n');
    await expect(SegFrames.open(join(bare, 'val', 'images'), { classes: 3 })).rejects.toThrow(/no label maps in/);
  });
});
