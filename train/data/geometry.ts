/**
 * Per-sample geometry of streamed images (any size in, a square crop out):
 * where the crop comes from in the source image, drawn from a seeded `Rng`,
 * and the resampling that cuts it out.
 *
 * A `CropGeometry` is a rectangle in source pixel-edge coordinates (it may be
 * fractional), the output size, a flip, and the integer region that sampling
 * is clamped to: the box itself for crop-then-resize (torchvision's and
 * pycls's random-sized crop), the whole image for resize-then-crop (the test
 * transform, Cityscapes's random scale + crop). Output pixel (y, x) samples the
 * source at (top + (y + ½)·height/oh − ½, left + (x' + ½)·width/ow − ½), with
 * x' = ow − 1 − x when flipped: bilinear for images, nearest for label maps.
 * So a label map follows its image through the same geometry exactly, and a
 * geometry drawn on the full-size image applies to a reduced decode after
 * `scaleGeometry`.
 *
 * Recipes: ImageNet train = random-sized crop (area [0.08, 1], aspect [3/4,
 * 4/3]) + flip; test = shorter side to round(size·256/224), centre crop;
 * Cityscapes train = shorter side to max(size, T·2^u), u ~ U(−1, 1), random
 * crop + flip (UnNAS, pycls-based release). PCA lighting (AlexNet) is a
 * per-image RGB offset drawn here and added by the batch builders.
 */
import type { Rng } from '../../graph/rng.js';
import { type Box, randomResizedCropBox } from './transforms.js';

/** Where a crop comes from and how it is sampled. */
export interface CropGeometry {
  /** Source rectangle (pixel-edge coordinates, may be fractional). */
  top: number;
  left: number;
  height: number;
  width: number;
  /** Integer source region that sampling positions are clamped to. */
  clamp: Box;
  /** Mirror the output horizontally. */
  flip: boolean;
  /** Output size. */
  oh: number;
  ow: number;
}

/** How streamed images are cut: ImageNet-style or Cityscapes-style. */
export type GeometryKind = 'imagenet' | 'cityscapes';

/** The transform settings of a streamed image set (defaults: `GEOMETRY_DEFAULTS`). */
export interface GeometrySettings {
  kind: GeometryKind;
  /** Output side (the crop size). */
  size: number;
  /** Random-sized crop: area fraction range. */
  cropScale: [number, number];
  /** Random-sized crop: aspect ratio range. */
  cropRatio: [number, number];
  /** Test transform: the shorter side is resized to round(size · testResize) before the centre crop. */
  testResize: number;
  /** Cityscapes train: the shorter side is scaled to max(size, scaleBase · 2^u), u ~ U(−1, 1). */
  scaleBase: number;
  /** PCA lighting strength (standard deviation of the AlexNet α), 0 = off. */
  lighting: number;
}

/** UnNAS's search settings (ImageNet: 224 crops, test resize 256/224; Cityscapes: T = 512). */
export const GEOMETRY_DEFAULTS: Omit<GeometrySettings, 'size' | 'kind'> = {
  cropScale: [0.08, 1],
  cropRatio: [3 / 4, 4 / 3],
  testResize: 256 / 224,
  scaleBase: 512,
  lighting: 0.1,
};

function fullImage(h: number, w: number): Box {
  return { top: 0, left: 0, height: h, width: w };
}

/** Random-sized crop of an h×w image to size×size (crop-then-resize: sampling clamped to the box). */
export function randomSizedCrop(rng: Rng, h: number, w: number, s: GeometrySettings): CropGeometry {
  const box = randomResizedCropBox(rng, h, w, s.cropScale, s.cropRatio);
  return { ...box, clamp: box, flip: false, oh: s.size, ow: s.size };
}

/**
 * Resize-then-crop: the image is scaled so that its shorter side is `side`
 * (the scaled size rounded to whole pixels), and a size×size window at
 * (top, left) of the scaled image is cut; `pick` chooses the window's offsets
 * from the ranges 0..maxTop and 0..maxLeft.
 */
function scaledWindow(
  h: number,
  w: number,
  side: number,
  size: number,
  pick: (maxTop: number, maxLeft: number) => [number, number],
): CropGeometry {
  const f = side / Math.min(h, w);
  const hs = Math.max(size, Math.round(h * f));
  const ws = Math.max(size, Math.round(w * f));
  const [ty, tx] = pick(hs - size, ws - size);
  const sy = h / hs;
  const sx = w / ws;
  return {
    top: ty * sy,
    left: tx * sx,
    height: size * sy,
    width: size * sx,
    clamp: fullImage(h, w),
    flip: false,
    oh: size,
    ow: size,
  };
}

/** Test transform: shorter side to round(size·testResize), centre crop of size×size. */
export function resizeCenterCrop(h: number, w: number, s: GeometrySettings): CropGeometry {
  const side = Math.max(s.size, Math.round(s.size * s.testResize));
  return scaledWindow(h, w, side, s.size, (mt, ml) => [Math.floor(mt / 2), Math.floor(ml / 2)]);
}

/** Cityscapes train transform: shorter side to max(size, T·2^u), u ~ U(−1, 1), then a random size×size window. */
export function randomScaleCrop(rng: Rng, h: number, w: number, s: GeometrySettings): CropGeometry {
  const side = Math.max(s.size, Math.round(s.scaleBase * 2 ** rng.uniform(-1, 1)));
  return scaledWindow(h, w, side, s.size, (mt, ml) => [rng.int(mt + 1), rng.int(ml + 1)]);
}

/**
 * The geometry of one sample: train (`augment`) draws the crop of the set's
 * kind and then a flip (p = 0.5, when `flip`); test is the deterministic
 * resize + centre crop.
 */
export function drawGeometry(
  rng: Rng,
  h: number,
  w: number,
  s: GeometrySettings,
  o: { augment: boolean; flip: boolean },
): CropGeometry {
  if (!o.augment) return resizeCenterCrop(h, w, s);
  const g = s.kind === 'cityscapes' ? randomScaleCrop(rng, h, w, s) : randomSizedCrop(rng, h, w, s);
  if (o.flip) g.flip = rng.next() < 0.5;
  return g;
}

/** The geometry on an image decoded at another scale (sy = decoded rows / source rows, sx likewise). */
export function scaleGeometry(g: CropGeometry, sy: number, sx: number, dh: number, dw: number): CropGeometry {
  const top = Math.max(0, Math.floor(g.clamp.top * sy));
  const left = Math.max(0, Math.floor(g.clamp.left * sx));
  const bottom = Math.min(dh, Math.max(top + 1, Math.ceil((g.clamp.top + g.clamp.height) * sy)));
  const right = Math.min(dw, Math.max(left + 1, Math.ceil((g.clamp.left + g.clamp.width) * sx)));
  return {
    ...g,
    top: g.top * sy,
    left: g.left * sx,
    height: g.height * sy,
    width: g.width * sx,
    clamp: { top, left, height: bottom - top, width: right - left },
  };
}

/** Memory layout of a source image: element (ch, y, x) is at offset + ch·cs + y·ys + x·xs. */
export interface PixelLayout {
  offset: number;
  cs: number;
  ys: number;
  xs: number;
}

/** Interleaved HWC (what a decoder returns). */
export function hwcLayout(w: number, c: number, offset = 0): PixelLayout {
  return { offset, cs: 1, ys: w * c, xs: c };
}

/** Planar CHW. */
export function chwLayout(h: number, w: number, offset = 0): PixelLayout {
  return { offset, cs: h * w, ys: w, xs: 1 };
}

/** Sampling positions along one axis: lower index, upper index, weight of the upper one. */
interface Taps {
  i0: Int32Array;
  i1: Int32Array;
  f: Float64Array;
}

function taps(start: number, extent: number, n: number, lo: number, count: number, flip: boolean): Taps {
  const i0 = new Int32Array(n);
  const i1 = new Int32Array(n);
  const f = new Float64Array(n);
  const hi = lo + count - 1;
  for (let o = 0; o < n; o++) {
    const q = flip ? n - 1 - o : o;
    const p = Math.min(hi, Math.max(lo, start + ((q + 0.5) * extent) / n - 0.5));
    const a = Math.floor(p);
    i0[o] = a;
    i1[o] = Math.min(a + 1, hi);
    f[o] = p - a;
  }
  return { i0, i1, f };
}

/**
 * Cuts a crop with bilinear interpolation into planar uint8 `out` (c×oh×ow at
 * `outOffset`), rounding to the nearest integer.
 */
export function resampleBilinear(
  src: Uint8Array,
  layout: PixelLayout,
  c: number,
  g: CropGeometry,
  out: Uint8Array,
  outOffset = 0,
): void {
  const ty = taps(g.top, g.height, g.oh, g.clamp.top, g.clamp.height, false);
  const tx = taps(g.left, g.width, g.ow, g.clamp.left, g.clamp.width, g.flip);
  const { offset, cs, ys, xs } = layout;
  for (let ch = 0; ch < c; ch++) {
    for (let y = 0; y < g.oh; y++) {
      const r0 = offset + ch * cs + ty.i0[y]! * ys;
      const r1 = offset + ch * cs + ty.i1[y]! * ys;
      const wy = ty.f[y]!;
      const d = outOffset + (ch * g.oh + y) * g.ow;
      for (let x = 0; x < g.ow; x++) {
        const a = tx.i0[x]! * xs;
        const b = tx.i1[x]! * xs;
        const wx = tx.f[x]!;
        const top = src[r0 + a]! + (src[r0 + b]! - src[r0 + a]!) * wx;
        const bot = src[r1 + a]! + (src[r1 + b]! - src[r1 + a]!) * wx;
        out[d + x] = Math.round(top + (bot - top) * wy);
      }
    }
  }
}

/** Nearest-neighbour index along one axis (the pixel containing the sampling position). */
function nearest(start: number, extent: number, n: number, lo: number, count: number, flip: boolean): Int32Array {
  const idx = new Int32Array(n);
  for (let o = 0; o < n; o++) {
    const q = flip ? n - 1 - o : o;
    idx[o] = Math.min(lo + count - 1, Math.max(lo, Math.floor(start + ((q + 0.5) * extent) / n)));
  }
  return idx;
}

/** Cuts a single-channel map (labels) with nearest-neighbour sampling into `out` (oh×ow at `outOffset`). */
export function resampleNearest(
  src: Uint8Array,
  layout: PixelLayout,
  g: CropGeometry,
  out: Uint8Array,
  outOffset = 0,
): void {
  const iy = nearest(g.top, g.height, g.oh, g.clamp.top, g.clamp.height, false);
  const ix = nearest(g.left, g.width, g.ow, g.clamp.left, g.clamp.width, g.flip);
  for (let y = 0; y < g.oh; y++) {
    const r = layout.offset + iy[y]! * layout.ys;
    const d = outOffset + y * g.ow;
    for (let x = 0; x < g.ow; x++) out[d + x] = src[r + ix[x]! * layout.xs]!;
  }
}

/** AlexNet's PCA of ImageNet RGB pixels in [0, 1] (eigenvalues; eigenvectors as columns, RGB rows). */
export const IMAGENET_EIGVAL = [0.2175, 0.0188, 0.0045] as const;
export const IMAGENET_EIGVEC = [
  [-0.5675, 0.7192, 0.4009],
  [-0.5808, -0.0045, -0.814],
  [-0.5836, -0.6948, 0.4203],
] as const;

/**
 * PCA lighting noise (AlexNet; pycls `lighting`): α ~ N(0, std²) per
 * eigenvector, offset_c = Σ_j eigvec[c][j]·α_j·eigval[j], added to channel c of
 * the image in [0, 1] units. Returns the three offsets.
 */
export function lightingOffsets(rng: Rng, std: number): [number, number, number] {
  const alpha = [rng.normal() * std, rng.normal() * std, rng.normal() * std];
  const off: [number, number, number] = [0, 0, 0];
  for (let c = 0; c < 3; c++) {
    let s = 0;
    for (let j = 0; j < 3; j++) s += IMAGENET_EIGVEC[c]![j]! * alpha[j]! * IMAGENET_EIGVAL[j]!;
    off[c] = s;
  }
  return off;
}
