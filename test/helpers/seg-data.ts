/**
 * Synthetic segmentation data the tests write: coloured shapes on noise, as
 * an images/ + masks/ folder pair (train/ and val/), and a small Cityscapes
 * tree whose label maps are official-style labelIds.
 *
 * Shapes: a red rectangle (class 1) and a blue disc (class 2) on gray noise
 * (class 0), at random places and sizes; a 1-pixel ring around the disc is
 * labelled 255 (ignored), like Cityscapes' void boundaries. The colour of a
 * pixel decides its class, wherever the crop, scale and flip put it — so a
 * network reaches a high mIoU only when each label map followed its image.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { Rng } from '../../graph/rng.js';

const COLORS: Record<number, [number, number, number]> = { 1: [220, 40, 40], 2: [40, 60, 220] };

/** One image (HWC RGB) and its label map (class ids, 255 on the disc's rim). */
export function shapesImage(h: number, w: number, rng: Rng): { rgb: Uint8Array; labels: Uint8Array } {
  const rgb = new Uint8Array(h * w * 3);
  const labels = new Uint8Array(h * w);
  for (let p = 0; p < h * w; p++) {
    const v = 70 + rng.int(110);
    rgb.set([v, v + rng.int(20) - 10, v + rng.int(20) - 10], 3 * p);
  }
  const paint = (p: number, cls: number): void => {
    const c = COLORS[cls]!;
    rgb.set(
      c.map((x) => Math.max(0, Math.min(255, x + rng.int(31) - 15))),
      3 * p,
    );
    labels[p] = cls;
  };
  const rh = Math.floor(h * rng.uniform(0.4, 0.7));
  const rw = Math.floor(w * rng.uniform(0.4, 0.7));
  const ry = rng.int(h - rh);
  const rx = rng.int(w - rw);
  for (let y = ry; y < ry + rh; y++) for (let x = rx; x < rx + rw; x++) paint(y * w + x, 1);
  const r = Math.min(h, w) * rng.uniform(0.2, 0.32);
  const cy = r + rng.uniform(0, h - 2 * r);
  const cx = r + rng.uniform(0, w - 2 * r);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const d = Math.hypot(y + 0.5 - cy, x + 0.5 - cx);
      if (d <= r) paint(y * w + x, 2);
      else if (d <= r + 1) labels[y * w + x] = 255;
    }
  }
  return { rgb, labels };
}

async function writePair(img: string, mask: string, h: number, w: number, rng: Rng): Promise<void> {
  const { rgb, labels } = shapesImage(h, w, rng);
  await sharp(Buffer.from(rgb), { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toFile(img);
  await sharp(Buffer.from(labels), { raw: { width: w, height: h, channels: 1 } })
    .png()
    .toFile(mask);
}

/** `dir/{train,val}/{images,masks}/<k>.png`: `n.train` and `n.val` h×w images of shapes on noise. */
export async function writeShapesFolder(
  dir: string,
  n: { train: number; val: number },
  size: [number, number],
  seed: number,
): Promise<void> {
  const rng = new Rng(seed);
  for (const split of ['train', 'val'] as const) {
    mkdirSync(join(dir, split, 'images'), { recursive: true });
    mkdirSync(join(dir, split, 'masks'), { recursive: true });
    for (let k = 0; k < n[split]; k++)
      await writePair(join(dir, split, 'images', `${k}.png`), join(dir, split, 'masks', `${k}.png`), ...size, rng);
  }
}

/**
 * A Cityscapes tree with official-style labelIds only (no labelTrainIds):
 * shapes on noise with class 1 → labelId 26 (car, trainId 13), class 2 →
 * labelId 24 (person, trainId 11), background → labelId 7 (road, trainId 0),
 * and the rim → labelId 0 (unlabeled, trainId 255).
 */
export async function writeCityscapesTree(
  dir: string,
  n: { train: number; val: number },
  size: [number, number],
  seed: number,
): Promise<void> {
  const rng = new Rng(seed);
  const labelId: Record<number, number> = { 0: 7, 1: 26, 2: 24, 255: 0 };
  for (const [split, count] of [
    ['train', n.train],
    ['val', n.val],
  ] as const) {
    const imgDir = join(dir, 'leftImg8bit', split, 'aachen');
    const gtDir = join(dir, 'gtFine', split, 'aachen');
    mkdirSync(imgDir, { recursive: true });
    mkdirSync(gtDir, { recursive: true });
    for (let k = 0; k < count; k++) {
      const [h, w] = size;
      const { rgb, labels } = shapesImage(h, w, rng);
      const ids = Uint8Array.from(labels, (v) => labelId[v]!);
      const stem = `aachen_${String(k).padStart(6, '0')}_000019`;
      await sharp(Buffer.from(rgb), { raw: { width: w, height: h, channels: 3 } })
        .png()
        .toFile(join(imgDir, `${stem}_leftImg8bit.png`));
      await sharp(Buffer.from(ids), { raw: { width: w, height: h, channels: 1 } })
        .png()
        .toFile(join(gtDir, `${stem}_gtFine_labelIds.png`));
    }
  }
}
