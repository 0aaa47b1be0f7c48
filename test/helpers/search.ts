/**
 * Helpers of the search tests: a small folder of real-looking colour images
 * (32×32 PNG crops of generated colour scenes: hue gradients, stripes and
 * discs, so the colorization targets spread over many ab bins) and checks of
 * a search run directory.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { expect } from 'vitest';
import { parseGenotype, PRIMITIVES, type Genotype } from '../../graph/genotype.js';
import { Rng } from '../../graph/rng.js';

export const FASHION_MNIST = process.env.FASHION_MNIST_DIR ?? '/usr/share/datasets/fashion-mnist';
export const HAVE_FASHION_MNIST =
  existsSync(join(FASHION_MNIST, 'train-images-idx3-ubyte.gz')) ||
  existsSync(join(FASHION_MNIST, 'train-images-idx3-ubyte'));

function hsvToRgb(h: number, s: number, v: number): [number, number, number] {
  const i = Math.floor(h * 6);
  const f = h * 6 - i;
  const p = v * (1 - s);
  const q = v * (1 - f * s);
  const t = v * (1 - (1 - f) * s);
  const [r, g, b] = [
    [v, t, p],
    [q, v, p],
    [p, v, t],
    [p, q, v],
    [t, p, v],
    [v, p, q],
  ][((i % 6) + 6) % 6]!;
  return [r!, g!, b!];
}

/** A 96×96 RGB scene (HWC uint8): a hue gradient, soft stripes and a few saturated discs. */
function scene(seed: number): Uint8Array {
  const S = 96;
  const rng = new Rng(seed);
  const h0 = rng.next();
  const dir = rng.next() * Math.PI;
  const freq = 0.05 + 0.1 * rng.next();
  const discs = Array.from({ length: 4 }, () => ({
    x: rng.next() * S,
    y: rng.next() * S,
    r: 8 + 16 * rng.next(),
    hue: rng.next(),
  }));
  const out = new Uint8Array(S * S * 3);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const u = (x * Math.cos(dir) + y * Math.sin(dir)) / S;
      let hue = (h0 + 0.5 * u) % 1;
      let sat = 0.45 + 0.35 * Math.sin(freq * (x + 2 * y));
      let val = 0.55 + 0.35 * Math.cos(freq * 1.3 * (2 * x - y));
      for (const d of discs) {
        if ((x - d.x) ** 2 + (y - d.y) ** 2 < d.r ** 2) {
          hue = d.hue;
          sat = 0.85;
          val = 0.9;
        }
      }
      const [r, g, b] = hsvToRgb(hue, Math.min(1, Math.max(0, sat)), Math.min(1, Math.max(0, val)));
      const o = (y * S + x) * 3;
      out[o] = Math.round(255 * r);
      out[o + 1] = Math.round(255 * g);
      out[o + 2] = Math.round(255 * b);
    }
  }
  return out;
}

/** Writes `n` 32×32 RGB PNGs (random crops of a few scenes) into `dir` (a flat, unlabelled image folder). */
export async function writeColorFolder(dir: string, n: number, seed = 1): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const rng = new Rng(seed);
  const scenes = Array.from({ length: 4 }, (_, i) => scene(seed * 31 + i));
  for (let i = 0; i < n; i++) {
    const src = scenes[i % scenes.length]!;
    const ox = rng.int(96 - 32);
    const oy = rng.int(96 - 32);
    const crop = new Uint8Array(32 * 32 * 3);
    for (let y = 0; y < 32; y++)
      crop.set(src.subarray(((oy + y) * 96 + ox) * 3, ((oy + y) * 96 + ox + 32) * 3), y * 32 * 3);
    await sharp(Buffer.from(crop), { raw: { width: 32, height: 32, channels: 3 } })
      .png()
      .toFile(join(dir, `img${String(i).padStart(3, '0')}.png`));
  }
}

/** Checks a finished search run directory: per-epoch log records, genotype.json (valid) and genotype.svg. Returns the genotype. */
export function checkRunDir(out: string, epochs: number): Genotype {
  const lines = readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n');
  expect(lines).toHaveLength(epochs);
  lines.forEach((line, i) => {
    const rec = JSON.parse(line) as Record<string, unknown>;
    expect(rec.epoch).toBe(i + 1);
    for (const k of ['train_loss', 'val_loss', 'train_acc', 'val_acc', 'lr']) {
      expect(Number.isFinite(rec[k] as number), `${k} of epoch ${i + 1}`).toBe(true);
    }
    for (const k of ['alpha_normal', 'alpha_reduce']) {
      const a = rec[k] as number[][];
      expect(a).toHaveLength(14);
      for (const row of a) {
        expect(row).toHaveLength(PRIMITIVES.length);
        expect(row.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 4);
      }
    }
    parseGenotype(rec.genotype, `log epoch ${i + 1}`);
  });
  const geno = parseGenotype(JSON.parse(readFileSync(join(out, 'genotype.json'), 'utf8')), 'genotype.json');
  expect(geno.normal_concat).toEqual([2, 3, 4, 5]);
  const svg = readFileSync(join(out, 'genotype.svg'), 'utf8');
  expect(svg.startsWith('<svg')).toBe(true);
  expect(svg.trim().endsWith('</svg>')).toBe(true);
  for (const [op] of [...geno.normal, ...geno.reduce]) expect(svg).toContain(op);
  return geno;
}
