/**
 * Image transforms on single images, planar CHW. Geometric ops (flip, padded
 * crop, cutout, 90° rotations, random resized crop with bilinear resampling,
 * jigsaw tiling) and SimCLR's photometric ops (colour jitter as torchvision's
 * ColorJitter, grayscale). They are pure functions of their arguments; the
 * random parameters are drawn by the callers (pretext.ts) from a seeded `Rng`,
 * so every transform can be tested exactly.
 */
import type { Rng } from '../../graph/rng.js';

/** A float image (CHW planar) with its shape. */
export interface FloatImage {
  data: Float32Array;
  c: number;
  h: number;
  w: number;
}

/** Horizontal flip: out[c][y][x] = in[c][y][w-1-x]. */
export function flipHorizontal(img: Float32Array, c: number, h: number, w: number): Float32Array {
  const out = new Float32Array(img.length);
  for (let ch = 0; ch < c; ch++) {
    for (let y = 0; y < h; y++) {
      const row = (ch * h + y) * w;
      for (let x = 0; x < w; x++) out[row + x] = img[row + w - 1 - x]!;
    }
  }
  return out;
}

/**
 * Zero-pads by `pad` pixels on every side, then crops h×w at offset (oy, ox) of
 * the padded image (0 ≤ oy, ox ≤ 2·pad): out[y][x] = in[y+oy-pad][x+ox-pad], or 0 outside.
 */
export function padCrop(
  img: Float32Array,
  c: number,
  h: number,
  w: number,
  pad: number,
  oy: number,
  ox: number,
): Float32Array {
  const out = new Float32Array(img.length);
  for (let ch = 0; ch < c; ch++) {
    for (let y = 0; y < h; y++) {
      const sy = y + oy - pad;
      if (sy < 0 || sy >= h) continue;
      for (let x = 0; x < w; x++) {
        const sx = x + ox - pad;
        if (sx >= 0 && sx < w) out[(ch * h + y) * w + x] = img[(ch * h + sy) * w + sx]!;
      }
    }
  }
  return out;
}

/** The rectangle cut out by DARTS's Cutout: rows [y1, y2) × cols [x1, x2), centre (cy, cx), clipped. */
export function cutoutBox(
  h: number,
  w: number,
  cy: number,
  cx: number,
  length: number,
): [number, number, number, number] {
  const half = Math.floor(length / 2);
  const y1 = Math.min(h, Math.max(0, cy - half));
  const y2 = Math.min(h, Math.max(0, cy + half));
  const x1 = Math.min(w, Math.max(0, cx - half));
  const x2 = Math.min(w, Math.max(0, cx + half));
  return [y1, y2, x1, x2];
}

/** Cutout (DARTS): zeroes (in place, every channel) the square of side `length` centred at (cy, cx), clipped at the borders. */
export function cutout(
  img: Float32Array,
  c: number,
  h: number,
  w: number,
  cy: number,
  cx: number,
  length: number,
  offset = 0,
): void {
  const [y1, y2, x1, x2] = cutoutBox(h, w, cy, cx, length);
  for (let ch = 0; ch < c; ch++) {
    for (let y = y1; y < y2; y++) {
      const row = offset + (ch * h + y) * w;
      img.fill(0, row + x1, row + x2);
    }
  }
}

/**
 * Rotation by k·90° counter-clockwise (numpy's rot90(im, k, axes=(1, 2))), for
 * square images: k=1: out[y][x] = in[x][w-1-y]; k=2: in[h-1-y][w-1-x]; k=3: in[h-1-x][y].
 */
export function rot90(
  img: Float32Array,
  c: number,
  h: number,
  w: number,
  k: number,
  out?: Float32Array,
  outOffset = 0,
): Float32Array {
  if (h !== w) throw new Error(`rot90 needs a square image, got ${h}x${w}`);
  const o = out ?? new Float32Array(img.length);
  const n = h;
  const kk = ((k % 4) + 4) % 4;
  for (let ch = 0; ch < c; ch++) {
    const base = ch * n * n;
    const ob = outOffset + base;
    for (let y = 0; y < n; y++) {
      for (let x = 0; x < n; x++) {
        let s: number;
        if (kk === 0) s = y * n + x;
        else if (kk === 1) s = x * n + (n - 1 - y);
        else if (kk === 2) s = (n - 1 - y) * n + (n - 1 - x);
        else s = (n - 1 - x) * n + y;
        o[ob + y * n + x] = img[base + s]!;
      }
    }
  }
  return o;
}

/** A crop rectangle: top row, left column, height, width. */
export interface Box {
  top: number;
  left: number;
  height: number;
  width: number;
}

/**
 * Parameters of torchvision's RandomResizedCrop: up to 10 tries of an area
 * fraction in `scale` and a log-uniform aspect ratio in `ratio`, then a centre
 * crop fallback.
 */
export function randomResizedCropBox(
  rng: Rng,
  h: number,
  w: number,
  scale: [number, number],
  ratio: [number, number],
): Box {
  const area = h * w;
  const lr0 = Math.log(ratio[0]);
  const lr1 = Math.log(ratio[1]);
  for (let t = 0; t < 10; t++) {
    const target = area * rng.uniform(scale[0], scale[1]);
    const ar = Math.exp(rng.uniform(lr0, lr1));
    const cw = Math.round(Math.sqrt(target * ar));
    const chh = Math.round(Math.sqrt(target / ar));
    if (cw > 0 && cw <= w && chh > 0 && chh <= h) {
      const top = rng.int(h - chh + 1);
      const left = rng.int(w - cw + 1);
      return { top, left, height: chh, width: cw };
    }
  }
  const inRatio = w / h;
  let cw = w;
  let chh = h;
  if (inRatio < Math.min(...ratio)) chh = Math.round(cw / Math.min(...ratio));
  else if (inRatio > Math.max(...ratio)) cw = Math.round(chh * Math.max(...ratio));
  return { top: Math.floor((h - chh) / 2), left: Math.floor((w - cw) / 2), height: chh, width: cw };
}

/**
 * Crops `box` from a float image and resizes it to oh×ow with bilinear
 * interpolation (half-pixel centres, align_corners = false, edge clamped).
 */
export function resizedCropBilinear(
  img: Float32Array,
  c: number,
  h: number,
  w: number,
  box: Box,
  oh: number,
  ow: number,
  out?: Float32Array,
  outOffset = 0,
): Float32Array {
  const o = out ?? new Float32Array(c * oh * ow);
  const sy = box.height / oh;
  const sx = box.width / ow;
  const x0s = new Int32Array(ow);
  const x1s = new Int32Array(ow);
  const wxs = new Float64Array(ow);
  for (let x = 0; x < ow; x++) {
    const fx = Math.max(0, (x + 0.5) * sx - 0.5);
    const x0 = Math.min(Math.floor(fx), box.width - 1);
    x0s[x] = box.left + x0;
    x1s[x] = box.left + Math.min(x0 + 1, box.width - 1);
    wxs[x] = fx - x0;
  }
  for (let y = 0; y < oh; y++) {
    const fy = Math.max(0, (y + 0.5) * sy - 0.5);
    const y0 = Math.min(Math.floor(fy), box.height - 1);
    const y1 = Math.min(y0 + 1, box.height - 1);
    const wy = fy - y0;
    for (let ch = 0; ch < c; ch++) {
      const r0 = (ch * h + box.top + y0) * w;
      const r1 = (ch * h + box.top + y1) * w;
      const orow = outOffset + (ch * oh + y) * ow;
      for (let x = 0; x < ow; x++) {
        const wx = wxs[x]!;
        const a = img[r0 + x0s[x]!]! * (1 - wx) + img[r0 + x1s[x]!]! * wx;
        const b = img[r1 + x0s[x]!]! * (1 - wx) + img[r1 + x1s[x]!]! * wx;
        o[orow + x] = a * (1 - wy) + b * wy;
      }
    }
  }
  return o;
}

// ---------------------------------------------------------------------------
// Photometric ops (RGB in [0, 1], CHW, in place), as torchvision's functional ops.

function clamp01(v: number): number {
  return v < 0 ? 0 : Math.min(v, 1);
}

/** Luma of torchvision's rgb_to_grayscale. */
export function luma(r: number, g: number, b: number): number {
  return 0.2989 * r + 0.587 * g + 0.114 * b;
}

/** Brightness: x ← clamp(f·x). */
export function adjustBrightness(img: Float32Array, f: number): void {
  for (let i = 0; i < img.length; i++) img[i] = clamp01(img[i]! * f);
}

/** Contrast: x ← clamp(f·x + (1−f)·m), m = mean luma of the image. */
export function adjustContrast(img: Float32Array, h: number, w: number, f: number): void {
  const p = h * w;
  let s = 0;
  for (let i = 0; i < p; i++) s += luma(img[i]!, img[p + i]!, img[2 * p + i]!);
  const m = s / p;
  for (let i = 0; i < img.length; i++) img[i] = clamp01(f * img[i]! + (1 - f) * m);
}

/** Saturation: x ← clamp(f·x + (1−f)·luma(pixel)). */
export function adjustSaturation(img: Float32Array, h: number, w: number, f: number): void {
  const p = h * w;
  for (let i = 0; i < p; i++) {
    const g = luma(img[i]!, img[p + i]!, img[2 * p + i]!);
    img[i] = clamp01(f * img[i]! + (1 - f) * g);
    img[p + i] = clamp01(f * img[p + i]! + (1 - f) * g);
    img[2 * p + i] = clamp01(f * img[2 * p + i]! + (1 - f) * g);
  }
}

/** Hue: shifts the HSV hue by f (in turns, |f| ≤ 0.5). */
export function adjustHue(img: Float32Array, h: number, w: number, f: number): void {
  const p = h * w;
  for (let i = 0; i < p; i++) {
    const r = img[i]!;
    const g = img[p + i]!;
    const b = img[2 * p + i]!;
    const maxc = Math.max(r, g, b);
    const minc = Math.min(r, g, b);
    const cr = maxc - minc;
    if (cr === 0) continue; // gray: hue is undefined and the shift changes nothing
    const v = maxc;
    const s = cr / maxc;
    const rc = (maxc - r) / cr;
    const gc = (maxc - g) / cr;
    const bc = (maxc - b) / cr;
    let hh = maxc === r ? bc - gc : maxc === g ? 2 + rc - bc : 4 + gc - rc;
    hh = hh / 6 + f;
    hh -= Math.floor(hh);
    const h6 = hh * 6;
    let k = Math.floor(h6);
    const fr = h6 - k;
    k %= 6;
    const pp = v * (1 - s);
    const q = v * (1 - s * fr);
    const t = v * (1 - s * (1 - fr));
    let R: number, G: number, B: number;
    switch (k) {
      case 0:
        R = v;
        G = t;
        B = pp;
        break;
      case 1:
        R = q;
        G = v;
        B = pp;
        break;
      case 2:
        R = pp;
        G = v;
        B = t;
        break;
      case 3:
        R = pp;
        G = q;
        B = v;
        break;
      case 4:
        R = t;
        G = pp;
        B = v;
        break;
      default:
        R = v;
        G = pp;
        B = q;
    }
    img[i] = clamp01(R);
    img[p + i] = clamp01(G);
    img[2 * p + i] = clamp01(B);
  }
}

/** Grayscale with 3 output channels (every channel = luma). */
export function toGrayscale3(img: Float32Array, h: number, w: number): void {
  const p = h * w;
  for (let i = 0; i < p; i++) {
    const g = luma(img[i]!, img[p + i]!, img[2 * p + i]!);
    img[i] = g;
    img[p + i] = g;
    img[2 * p + i] = g;
  }
}

/** ColorJitter strengths (torchvision semantics: factors in [1−s, 1+s], hue in [−hue, hue]). */
export interface JitterStrength {
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
}

/**
 * torchvision's ColorJitter: draws a random order of the four ops and their
 * factors (brightness, contrast, saturation, hue), then applies them in that order.
 */
export function colorJitter(img: Float32Array, h: number, w: number, s: JitterStrength, rng: Rng): void {
  const order = rng.permutation(4);
  const b = rng.uniform(Math.max(0, 1 - s.brightness), 1 + s.brightness);
  const c = rng.uniform(Math.max(0, 1 - s.contrast), 1 + s.contrast);
  const sa = rng.uniform(Math.max(0, 1 - s.saturation), 1 + s.saturation);
  const hu = rng.uniform(-s.hue, s.hue);
  for (const op of order) {
    if (op === 0 && s.brightness > 0) adjustBrightness(img, b);
    else if (op === 1 && s.contrast > 0) adjustContrast(img, h, w, c);
    else if (op === 2 && s.saturation > 0) adjustSaturation(img, h, w, sa);
    else if (op === 3 && s.hue > 0) adjustHue(img, h, w, hu);
  }
}

// ---------------------------------------------------------------------------
// Jigsaw

/** Geometry of a jigsaw puzzle for an h×w image cut in a grid×grid grid. */
export interface JigsawGeometry {
  grid: number;
  /** Patch size (rows, cols): ⌊h/G⌋, ⌊w/G⌋. */
  ph: number;
  pw: number;
  /** Tile size: ⌊fraction·patch⌋ (0.76 in UnNAS). */
  th: number;
  tw: number;
}

export function jigsawGeometry(h: number, w: number, grid: number, tileFraction: number): JigsawGeometry {
  const ph = Math.floor(h / grid);
  const pw = Math.floor(w / grid);
  const th = Math.max(1, Math.floor(ph * tileFraction));
  const tw = Math.max(1, Math.floor(pw * tileFraction));
  return { grid, ph, pw, th, tw };
}

/**
 * Cuts the tiles of a jigsaw puzzle: for grid cell k = G·i + j, the tile of
 * th×tw at offset (offsets[2k], offsets[2k+1]) inside patch (i, j) is
 * (optionally) normalized by its own mean and standard deviation (over all its
 * channels and pixels; a constant tile only has its mean removed) and written
 * to slot perm[k] of `out` (G² tiles of c×th×tw from `outOffset`).
 */
export function jigsawTiles(
  img: Float32Array,
  c: number,
  h: number,
  w: number,
  g: JigsawGeometry,
  offsets: ArrayLike<number>,
  perm: ArrayLike<number>,
  normalize: boolean,
  out: Float32Array,
  outOffset = 0,
): void {
  const { grid, ph, pw, th, tw } = g;
  const tsz = c * th * tw;
  for (let i = 0; i < grid; i++) {
    for (let j = 0; j < grid; j++) {
      const k = grid * i + j;
      const y0 = ph * i + offsets[2 * k]!;
      const x0 = pw * j + offsets[2 * k + 1]!;
      const dst = outOffset + perm[k]! * tsz;
      for (let ch = 0; ch < c; ch++) {
        for (let y = 0; y < th; y++) {
          const src = (ch * h + y0 + y) * w + x0;
          const d = dst + (ch * th + y) * tw;
          for (let x = 0; x < tw; x++) out[d + x] = img[src + x]!;
        }
      }
      if (normalize) {
        let s = 0;
        for (let q = 0; q < tsz; q++) s += out[dst + q]!;
        const mu = s / tsz;
        let v = 0;
        for (let q = 0; q < tsz; q++) {
          const e = out[dst + q]! - mu;
          v += e * e;
        }
        const sd = Math.sqrt(v / tsz);
        const inv = sd > 1e-6 ? 1 / sd : 1;
        for (let q = 0; q < tsz; q++) out[dst + q] = (out[dst + q]! - mu) * inv;
      }
    }
  }
}
