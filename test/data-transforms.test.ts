/**
 * Exact checks of the transforms and pretext batch builders: rotations,
 * flip/crop/cutout, jigsaw tiling (reassembly under the inverse permutation and
 * tile normalization), Lab conversion and the 313-bin quantizer, SimCLR views.
 */
import { describe, expect, it } from 'vitest';
import { Rng } from '../graph/rng.js';
import { abPoints, AbQuantizer, labToRgb, nearestAbBrute, rgbToLab } from '../train/data/color.js';
import {
  buildBatch,
  type BatchJob,
  invertPermutation,
  jigsawPermutations,
  normalizationLut,
  resolveTask,
  type TaskOptions,
  writeAugmented,
} from '../train/data/pretext.js';
import {
  adjustBrightness,
  adjustHue,
  cutout,
  cutoutBox,
  flipHorizontal,
  jigsawGeometry,
  jigsawTiles,
  padCrop,
  randomResizedCropBox,
  resizedCropBilinear,
  rot90,
} from '../train/data/transforms.js';
import { syntheticDataset } from './fixtures/data-fixtures.js';

function jobFor(opts: TaskOptions, n: number, c: number, h: number, w: number, seed = 3, index = 0): BatchJob {
  const ds = syntheticDataset(n, c, h, w, 10, seed);
  const task = resolveTask(opts, { c, h, w, classes: 10 });
  return {
    images: ds.images,
    labels: ds.labels,
    rows: Int32Array.from({ length: n }, (_, i) => i),
    task: task.options,
    mean: Array(c).fill(0.5),
    std: Array(c).fill(0.25),
    seed,
    epoch: 0,
    index,
  };
}

/** The normalized float image of row `i` of a job. */
function normalized(job: BatchJob, i: number): Float32Array {
  const { c, h, w } = job.task;
  const per = c * h * w;
  const lut = normalizationLut(job.mean, job.std, c);
  const out = new Float32Array(per);
  for (let ch = 0; ch < c; ch++)
    for (let p = 0; p < h * w; p++) out[ch * h * w + p] = lut[ch * 256 + job.images[i * per + ch * h * w + p]!]!;
  return out;
}

describe('geometric transforms', () => {
  const m3 = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]);

  it('rot90 is numpy rot90 (counter-clockwise)', () => {
    expect(Array.from(rot90(m3, 1, 3, 3, 0))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(Array.from(rot90(m3, 1, 3, 3, 1))).toEqual([3, 6, 9, 2, 5, 8, 1, 4, 7]);
    expect(Array.from(rot90(m3, 1, 3, 3, 2))).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1]);
    expect(Array.from(rot90(m3, 1, 3, 3, 3))).toEqual([7, 4, 1, 8, 5, 2, 9, 6, 3]);
    const r = new Rng(1);
    const img = Float32Array.from({ length: 2 * 5 * 5 }, () => r.next());
    let x: Float32Array = img;
    for (let k = 0; k < 4; k++) x = rot90(x, 2, 5, 5, 1);
    expect(x).toEqual(img);
    expect(rot90(rot90(img, 2, 5, 5, 1), 2, 5, 5, 2)).toEqual(rot90(img, 2, 5, 5, 3));
  });

  it('flip, padded crop and cutout have their documented semantics', () => {
    expect(Array.from(flipHorizontal(m3, 1, 3, 3))).toEqual([3, 2, 1, 6, 5, 4, 9, 8, 7]);
    // pad 1, offset (0, 2): shift down by one row, left by one column.
    expect(Array.from(padCrop(m3, 1, 3, 3, 1, 0, 2))).toEqual([0, 0, 0, 2, 3, 0, 5, 6, 0]);
    expect(Array.from(padCrop(m3, 1, 3, 3, 1, 1, 1))).toEqual(Array.from(m3));
    expect(Array.from(padCrop(m3, 1, 3, 3, 1, 2, 0))).toEqual([0, 4, 5, 0, 7, 8, 0, 0, 0]);
    // DARTS cutout: square of side L centred at (cy, cx), clipped at the borders.
    expect(cutoutBox(32, 32, 0, 0, 16)).toEqual([0, 8, 0, 8]);
    expect(cutoutBox(32, 32, 20, 10, 16)).toEqual([12, 28, 2, 18]);
    expect(cutoutBox(32, 32, 31, 31, 16)).toEqual([23, 32, 23, 32]);
    const ones = new Float32Array(2 * 6 * 6).fill(1);
    cutout(ones, 2, 6, 6, 1, 4, 4);
    for (let ch = 0; ch < 2; ch++) {
      for (let y = 0; y < 6; y++) {
        for (let x = 0; x < 6; x++) {
          const inside = y >= 0 && y < 3 && x >= 2 && x < 6;
          expect(ones[(ch * 6 + y) * 6 + x]).toBe(inside ? 0 : 1);
        }
      }
    }
  });

  it('the fused normalize+flip+crop writer equals flip then padCrop of the normalized image', () => {
    const job = jobFor({ name: 'cls' }, 1, 3, 8, 8);
    const lut = normalizationLut(job.mean, job.std, 3);
    const base = normalized(job, 0);
    for (const flip of [false, true]) {
      for (const [oy, ox] of [
        [0, 0],
        [4, 4],
        [8, 1],
        [3, 7],
      ] as const) {
        const out = new Float32Array(3 * 64);
        writeAugmented(job.images, 0, 3, 8, 8, lut, flip, 4, oy, ox, out, 0);
        const ref = padCrop(flip ? flipHorizontal(base, 3, 8, 8) : base, 3, 8, 8, 4, oy, ox);
        expect(out).toEqual(ref);
      }
    }
  });

  it('random resized crop stays inside the image with the requested area and ratio', () => {
    const rng = new Rng(5);
    for (let t = 0; t < 500; t++) {
      const b = randomResizedCropBox(rng, 32, 32, [0.08, 1], [3 / 4, 4 / 3]);
      expect(b.top).toBeGreaterThanOrEqual(0);
      expect(b.left).toBeGreaterThanOrEqual(0);
      expect(b.top + b.height).toBeLessThanOrEqual(32);
      expect(b.left + b.width).toBeLessThanOrEqual(32);
      expect(b.height * b.width).toBeGreaterThanOrEqual(0.05 * 1024);
    }
    // Bilinear resize of the whole image to its own size is the identity; of a
    // 2x2 box to 4x4 it interpolates at half-pixel centres.
    const img = Float32Array.from({ length: 16 }, (_, i) => i);
    expect(resizedCropBilinear(img, 1, 4, 4, { top: 0, left: 0, height: 4, width: 4 }, 4, 4)).toEqual(img);
    const up = resizedCropBilinear(
      Float32Array.from([0, 4, 8, 12]),
      1,
      2,
      2,
      { top: 0, left: 0, height: 2, width: 2 },
      4,
      4,
    );
    expect(Array.from(up.subarray(0, 4))).toEqual([0, 1, 3, 4]);
    expect(Array.from(up.subarray(12, 16))).toEqual([8, 9, 11, 12]);
  });
});

describe('pretext batches', () => {
  it('rot: row 4i+k is image i (augmented) rotated by k·90°, target k', () => {
    const job = jobFor({ name: 'rot', augment: false }, 3, 3, 6, 6);
    const b = buildBatch(job);
    expect(b.xShape).toEqual([12, 3, 6, 6]);
    expect(Array.from(b.y)).toEqual([0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]);
    const per = 3 * 36;
    for (let i = 0; i < 3; i++) {
      const img = normalized(job, i);
      for (let k = 0; k < 4; k++)
        expect(b.x.subarray((4 * i + k) * per, (4 * i + k + 1) * per)).toEqual(rot90(img, 3, 6, 6, k));
    }
    // With augmentation: the four rows are still rotations of one augmented image.
    const ja = jobFor({ name: 'rot', cutout: 4 }, 2, 1, 8, 8);
    const ba = buildBatch(ja);
    const p1 = 64;
    for (let i = 0; i < 2; i++) {
      const r0 = ba.x.slice(4 * i * p1, (4 * i + 1) * p1);
      for (let k = 1; k < 4; k++)
        expect(ba.x.subarray((4 * i + k) * p1, (4 * i + k + 1) * p1)).toEqual(rot90(r0, 1, 8, 8, k));
    }
  });

  it('cls: y are the labels of the rows; without augmentation x is the normalized image', () => {
    const job = jobFor({ name: 'cls', augment: false }, 4, 3, 5, 5);
    const all = job.labels!;
    job.rows = Int32Array.from([3, 1, 0, 2]);
    job.labels = Int32Array.from(job.rows, (r) => all[r]!);
    const b = buildBatch(job);
    expect(Array.from(b.y)).toEqual(Array.from(job.rows).map((r) => all[r]!));
    expect(b.x.subarray(0, 75)).toEqual(normalized(job, 3));
    // With cutout everywhere (L larger than twice the image) the output is zero.
    const jc = jobFor({ name: 'cls', cutout: 20, cropPad: 0, flip: false }, 2, 3, 5, 5);
    expect(buildBatch(jc).x.every((v) => v === 0)).toBe(true);
  });

  it('jig: tiles reassemble to the image under the inverse permutation (no gap, no tile normalization)', () => {
    for (const [c, size, grid] of [
      [3, 8, 2],
      [1, 9, 3],
    ] as const) {
      const job = jobFor(
        { name: 'jig', augment: false, tileFraction: 1, normalizeTiles: false, jigsawGrid: grid },
        4,
        c,
        size,
        size,
      );
      const b = buildBatch(job);
      const g2 = grid * grid;
      const p = size / grid;
      expect(b.xShape).toEqual([4 * g2, c, p, p]);
      expect(b.yShape).toEqual([4]);
      const perms = jigsawPermutations(grid);
      for (let i = 0; i < 4; i++) {
        const perm = perms[b.y[i]!]!;
        const inv = invertPermutation(perm);
        const img = new Float32Array(c * size * size);
        for (let s = 0; s < g2; s++) {
          const k = inv[s]!; // slot s holds the tile of grid cell k
          const gi = Math.floor(k / grid);
          const gj = k % grid;
          const tile = b.x.subarray((i * g2 + s) * c * p * p, (i * g2 + s + 1) * c * p * p);
          for (let ch = 0; ch < c; ch++) {
            for (let y = 0; y < p; y++)
              for (let x = 0; x < p; x++)
                img[(ch * size + gi * p + y) * size + gj * p + x] = tile[(ch * p + y) * p + x]!;
          }
        }
        expect(img).toEqual(normalized(job, i));
      }
    }
  });

  it('jig: default tiles are ⌊0.76·p⌋ crops normalized by their own mean and std', () => {
    const job = jobFor({ name: 'jig', augment: false }, 3, 3, 32, 32);
    const b = buildBatch(job);
    const t = Math.floor(0.76 * 16);
    expect(b.xShape).toEqual([12, 3, t, t]);
    const tsz = 3 * t * t;
    for (let r = 0; r < 12; r++) {
      const tile = b.x.subarray(r * tsz, (r + 1) * tsz);
      const mu = tile.reduce((s, v) => s + v, 0) / tsz;
      const sd = Math.sqrt(tile.reduce((s, v) => s + (v - mu) ** 2, 0) / tsz);
      expect(Math.abs(mu)).toBeLessThan(1e-5);
      expect(Math.abs(sd - 1)).toBeLessThan(1e-4);
    }
    // Tile normalization alone: normalized tile = (raw tile − mean) / std.
    const img = normalized(job, 0);
    const g = jigsawGeometry(32, 32, 2, 0.76);
    const offs = [0, 4, 3, 1, 2, 2, 4, 0];
    const perm = [2, 0, 3, 1];
    const raw = new Float32Array(4 * tsz);
    const nrm = new Float32Array(4 * tsz);
    jigsawTiles(img, 3, 32, 32, g, offs, perm, false, raw);
    jigsawTiles(img, 3, 32, 32, g, offs, perm, true, nrm);
    for (let s = 0; s < 4; s++) {
      const rt = raw.subarray(s * tsz, (s + 1) * tsz);
      const mu = rt.reduce((a, v) => a + v, 0) / tsz;
      const sd = Math.sqrt(rt.reduce((a, v) => a + (v - mu) ** 2, 0) / tsz);
      for (let q = 0; q < tsz; q += 17) expect(nrm[s * tsz + q]).toBeCloseTo((rt[q]! - mu) / sd, 4);
    }
    // Slot perm[k] holds grid cell k's tile at its offset: cell 1 = patch (0, 1), offset (3, 1) → slot 0.
    expect(raw[0]).toBe(img[3 * 32 + 16 + 1]);
    // A constant tile normalizes to zeros (no division by zero).
    const flat = new Float32Array(3 * 32 * 32).fill(0.7);
    const out = new Float32Array(4 * tsz);
    jigsawTiles(flat, 3, 32, 32, g, offs, perm, true, out);
    expect(out.every((v) => v === 0)).toBe(true);
  });

  it('jig: permutation sets are all 24 of 4! and 1000 distinct ones for 3x3; targets index them', () => {
    const p2 = jigsawPermutations(2);
    expect(p2.length).toBe(24);
    expect(new Set(p2.map((p) => Array.from(p).join())).size).toBe(24);
    const p3 = jigsawPermutations(3);
    expect(p3.length).toBe(1000);
    expect(new Set(p3.map((p) => Array.from(p).join())).size).toBe(1000);
    const t = resolveTask({ name: 'jig', jigsawPerms: 100 }, { c: 3, h: 96, w: 96 });
    expect(t.options.jigsawGrid).toBe(3);
    expect(t.numClasses).toBe(100);
    expect(t.inputShape).toEqual([3, 24, 24]);
    expect(t.groupSize).toBe(9);
    const b = buildBatch(jobFor({ name: 'jig', jigsawPerms: 100 }, 6, 3, 96, 96));
    for (const y of b.y) expect(y >= 0 && y < 100).toBe(true);
  });
});

describe('colour', () => {
  it('rgbToLab matches known values (D65, sRGB)', () => {
    const lab = [0, 0, 0];
    rgbToLab(1, 1, 1, lab);
    expect(lab[0]).toBeCloseTo(100, 3);
    expect(lab[1]).toBeCloseTo(0, 2);
    expect(lab[2]).toBeCloseTo(0, 2);
    // Published sRGB (D65) values: red (53.24, 80.09, 67.20), blue (32.30, 79.19, -107.86).
    rgbToLab(1, 0, 0, lab);
    expect(lab[0]).toBeCloseTo(53.24, 1);
    expect(lab[1]).toBeCloseTo(80.09, 1);
    expect(lab[2]).toBeCloseTo(67.2, 1);
    rgbToLab(0, 0, 1, lab);
    expect(lab[0]).toBeCloseTo(32.3, 1);
    expect(lab[1]).toBeCloseTo(79.19, 1);
    expect(lab[2]).toBeCloseTo(-107.86, 1);
  });

  it('Lab → RGB round trip is within 1e-6', () => {
    const rng = new Rng(9);
    const lab = [0, 0, 0];
    const rgb = [0, 0, 0];
    let worst = 0;
    for (let t = 0; t < 5000; t++) {
      const c = [rng.next(), rng.next(), rng.next()];
      rgbToLab(c[0]!, c[1]!, c[2]!, lab);
      labToRgb(lab[0]!, lab[1]!, lab[2]!, rgb);
      for (let k = 0; k < 3; k++) worst = Math.max(worst, Math.abs(rgb[k]! - c[k]!));
    }
    expect(worst).toBeLessThan(1e-6);
  });

  it('the fast quantizer equals brute-force nearest neighbour over the 313 points', () => {
    const pts = abPoints();
    expect(pts.length).toBe(626);
    const q = new AbQuantizer();
    const rng = new Rng(4);
    for (let t = 0; t < 20000; t++) {
      const a = rng.uniform(-130, 130);
      const b = rng.uniform(-130, 130);
      expect(q.nearest(a, b)).toBe(nearestAbBrute(a, b));
    }
    // Ties on the Voronoi boundaries (half-way between grid points) and the points themselves.
    for (let a = -115; a <= 115; a += 5)
      for (let b = -115; b <= 115; b += 5) expect(q.nearest(a, b)).toBe(nearestAbBrute(a, b));
    for (let k = 0; k < 313; k++) expect(q.nearest(pts[2 * k]!, pts[2 * k + 1]!)).toBe(k);
    expect(q.nearest(300, -300)).toBe(nearestAbBrute(300, -300));
  });

  it('col: input is normalized L/100, targets are the brute-force nearest ab bins, flip before Lab', () => {
    const job = jobFor({ name: 'col', augment: false }, 3, 3, 8, 8);
    const b = buildBatch(job);
    expect(b.xShape).toEqual([3, 1, 8, 8]);
    expect(b.yShape).toEqual([3, 8, 8]);
    const lab = [0, 0, 0];
    for (let i = 0; i < 3; i++) {
      for (let p = 0; p < 64; p++) {
        const px = (ch: number): number => job.images[i * 192 + ch * 64 + p]! / 255;
        rgbToLab(px(0), px(1), px(2), lab);
        expect(b.y[i * 64 + p]).toBe(nearestAbBrute(lab[1]!, lab[2]!));
        expect(b.x[i * 64 + p]).toBeCloseTo((lab[0]! / 100 - 0.5) / 0.25, 4);
      }
    }
    // With flips on, each image's input and target are either as above or both mirrored.
    const n = 8;
    const j0 = jobFor({ name: 'col', augment: false }, n, 3, 8, 8);
    const b0 = buildBatch(j0);
    const bf = buildBatch({ ...j0, task: resolveTask({ name: 'col' }, { c: 3, h: 8, w: 8 }).options });
    const mirror = (p: number): number => Math.floor(p / 8) * 8 + 7 - (p % 8);
    let flipped = 0;
    for (let i = 0; i < n; i++) {
      const o = i * 64;
      const same =
        b0.y.subarray(o, o + 64).every((v, p) => bf.y[o + p] === v) &&
        b0.x.subarray(o, o + 64).every((v, p) => bf.x[o + p] === v);
      const mirrored =
        b0.y.subarray(o, o + 64).every((v, p) => bf.y[o + mirror(p)] === v) &&
        b0.x.subarray(o, o + 64).every((v, p) => bf.x[o + mirror(p)] === v);
      expect(same || mirrored).toBe(true);
      if (!same) flipped++;
    }
    expect(flipped).toBeGreaterThan(0);
    expect(flipped).toBeLessThan(n);
  });
});

describe('SimCLR views', () => {
  it('layout [2N, C, H, W]; identity views give the normalized image at rows i and N+i', () => {
    const simclr = {
      scale: [1, 1] as [number, number],
      ratio: [1, 1] as [number, number],
      flip: false,
      jitterProb: 0,
      grayProb: 0,
    };
    const job = jobFor({ name: 'simclr', simclr }, 3, 3, 8, 8);
    const b = buildBatch(job);
    expect(b.xShape).toEqual([6, 3, 8, 8]);
    expect(b.y.length).toBe(0);
    for (let i = 0; i < 3; i++) {
      const ref = normalized(job, i);
      for (const r of [i, 3 + i]) {
        const row = b.x.subarray(r * 192, (r + 1) * 192);
        for (let q = 0; q < 192; q++) expect(row[q]).toBeCloseTo(ref[q]!, 5);
      }
    }
  });

  it('default views differ between the two views; grayscale p=1 gives equal channels; 1-channel skips colour ops', () => {
    const job = jobFor({ name: 'simclr' }, 4, 3, 16, 16);
    const b = buildBatch(job);
    const per = 3 * 256;
    for (let i = 0; i < 4; i++)
      expect(b.x.subarray(i * per, (i + 1) * per)).not.toEqual(b.x.subarray((4 + i) * per, (5 + i) * per));
    const jg = jobFor({ name: 'simclr', simclr: { grayProb: 1, jitterProb: 0 } }, 2, 3, 8, 8);
    jg.mean = [0, 0, 0];
    jg.std = [1, 1, 1];
    const bg = buildBatch(jg);
    for (let r = 0; r < 4; r++) {
      for (let p = 0; p < 64; p++) {
        expect(bg.x[r * 192 + p]).toBeCloseTo(bg.x[r * 192 + 64 + p]!, 6);
        expect(bg.x[r * 192 + p]).toBeCloseTo(bg.x[r * 192 + 128 + p]!, 6);
      }
    }
    const b1 = buildBatch(jobFor({ name: 'simclr' }, 2, 1, 8, 8));
    expect(b1.xShape).toEqual([4, 1, 8, 8]);
  });

  it('colour ops: brightness scales and clamps, hue shifts red by a third of a turn to green', () => {
    const img = Float32Array.from([0.2, 0.6, 0.9]);
    adjustBrightness(img, 1.5);
    expect(Array.from(img).map((v) => +v.toFixed(6))).toEqual([0.3, 0.9, 1]);
    const red = Float32Array.from([1, 0, 0]); // 1x1 RGB image, planar
    adjustHue(red, 1, 1, 1 / 3);
    expect(Array.from(red).map((v) => +v.toFixed(5))).toEqual([0, 1, 0]);
  });
});

describe('task descriptors', () => {
  it('declare input shape, target kind, classes and rows per image', () => {
    const s = { c: 3, h: 32, w: 32, classes: 10 };
    const rot = resolveTask('rot', s);
    expect([rot.inputShape, rot.targetKind, rot.numClasses, rot.batchMultiplier, rot.xShape(8), rot.yShape(8)]).toEqual(
      [[3, 32, 32], 'class', 4, 4, [32, 3, 32, 32], [32]],
    );
    const col = resolveTask('col', s);
    expect([col.inputShape, col.targetKind, col.numClasses, col.yShape(2)]).toEqual([
      [1, 32, 32],
      'pixel-class',
      313,
      [2, 32, 32],
    ]);
    const jig = resolveTask('jig', s);
    expect([jig.inputShape, jig.numClasses, jig.batchMultiplier, jig.groupSize, jig.xShape(2)]).toEqual([
      [3, 12, 12],
      24,
      4,
      4,
      [8, 3, 12, 12],
    ]);
    const sim = resolveTask('simclr', s);
    expect([sim.targetKind, sim.numClasses, sim.batchMultiplier, sim.xShape(5)]).toEqual([
      'none',
      0,
      2,
      [10, 3, 32, 32],
    ]);
    const cls = resolveTask('cls', s);
    expect([cls.numClasses, cls.batchMultiplier]).toEqual([10, 1]);
    expect(() => resolveTask('rot', { c: 3, h: 32, w: 16 })).toThrow(/square/);
    expect(() => resolveTask('col', { c: 1, h: 28, w: 28, name: 'fashion-mnist/train' })).toThrow(
      /col needs RGB images \(fashion-mnist/,
    );
    expect(() => resolveTask('cls', { ...s, labelled: false })).toThrow(/unlabelled/);
    expect(() => resolveTask('nope' as never, s)).toThrow(/unknown task/);
  });
});
