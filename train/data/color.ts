/**
 * Colour science for the colorization pretext task: sRGB ⇄ CIE Lab (D65
 * white, 2° observer, sRGB companding; the same constants as skimage's
 * rgb2lab/lab2rgb used by the UnNAS release) and the quantizer of the ab plane
 * to the 313 in-gamut points of Zhang et al. (hard nearest neighbour, lowest
 * index on ties, exactly like a brute-force scan but much faster).
 */
import { readFileSync } from 'node:fs';
import { DataError } from './errors.js';
import { modelDataPath } from './paths.js';

// skimage's xyz_from_rgb and the D65 2° white point.
const M = [0.412453, 0.35758, 0.180423, 0.212671, 0.71516, 0.072169, 0.019334, 0.119193, 0.950227];
const WHITE = [0.95047, 1.0, 1.08883];
const MINV = invert3(M);

function invert3(m: number[]): number[] {
  const [a, b, c, d, e, f, g, h, i] = m as [number, number, number, number, number, number, number, number, number];
  const A = e * i - f * h;
  const B = -(d * i - f * g);
  const C = d * h - e * g;
  const det = a * A + b * B + c * C;
  return [
    A / det,
    -(b * i - c * h) / det,
    (b * f - c * e) / det,
    B / det,
    (a * i - c * g) / det,
    -(a * f - c * d) / det,
    C / det,
    -(a * h - b * g) / det,
    (a * e - b * d) / det,
  ];
}

/** sRGB companding inverse: gamma-encoded value in [0,1] → linear light. */
export function srgbToLinear(v: number): number {
  return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
}

/** sRGB companding: linear light → gamma-encoded value (not clipped). */
export function linearToSrgb(v: number): number {
  return v <= 0.0031308 ? 12.92 * v : 1.055 * v ** (1 / 2.4) - 0.055;
}

/** Linearized value of each uint8 level (LUT). */
export const SRGB_LINEAR_U8: Float64Array = (() => {
  const t = new Float64Array(256);
  for (let i = 0; i < 256; i++) t[i] = srgbToLinear(i / 255);
  return t;
})();

function fLab(t: number): number {
  return t > 0.008856 ? Math.cbrt(t) : 7.787 * t + 16 / 116;
}

function fLabInv(t: number): number {
  return t > 0.2068966 ? t * t * t : (t - 16 / 116) / 7.787;
}

/** Lab of linear-light RGB. Writes [L, a, b] into `out`. */
export function linearRgbToLab(r: number, g: number, b: number, out: Float64Array | number[]): void {
  const x = (M[0]! * r + M[1]! * g + M[2]! * b) / WHITE[0]!;
  const y = (M[3]! * r + M[4]! * g + M[5]! * b) / WHITE[1]!;
  const z = (M[6]! * r + M[7]! * g + M[8]! * b) / WHITE[2]!;
  const fx = fLab(x);
  const fy = fLab(y);
  const fz = fLab(z);
  out[0] = 116 * fy - 16;
  out[1] = 500 * (fx - fy);
  out[2] = 200 * (fy - fz);
}

/** Lab of a gamma-encoded sRGB colour with components in [0, 1]. Writes [L, a, b] into `out`. */
export function rgbToLab(r: number, g: number, b: number, out: Float64Array | number[]): void {
  linearRgbToLab(srgbToLinear(r), srgbToLinear(g), srgbToLinear(b), out);
}

/** sRGB (components in [0, 1], clipped) of a Lab colour. Writes [r, g, b] into `out`. */
export function labToRgb(L: number, a: number, b: number, out: Float64Array | number[]): void {
  const fy = (L + 16) / 116;
  const fx = a / 500 + fy;
  const fz = Math.max(0, fy - b / 200);
  const x = fLabInv(fx) * WHITE[0]!;
  const y = fLabInv(fy) * WHITE[1]!;
  const z = fLabInv(fz) * WHITE[2]!;
  for (let k = 0; k < 3; k++) {
    const lin = MINV[3 * k]! * x + MINV[3 * k + 1]! * y + MINV[3 * k + 2]! * z;
    out[k] = Math.min(1, Math.max(0, linearToSrgb(lin)));
  }
}

// ---------------------------------------------------------------------------
// The 313 ab points

let abPointsCache: Float64Array | undefined;

/** The 313 (a, b) colour points as a flat [a0, b0, a1, b1, …] array (models/data/ab_points_313.json). */
export function abPoints(): Float64Array {
  if (abPointsCache) return abPointsCache;
  const file = modelDataPath('ab_points_313.json');
  let pts: unknown;
  try {
    pts = (JSON.parse(readFileSync(file, 'utf8')) as { points?: unknown }).points;
  } catch (e) {
    throw new DataError(`cannot read the colorization classes ${file}: ${(e as Error).message}`);
  }
  if (!Array.isArray(pts) || pts.length !== 313) throw new DataError(`${file}: expected 313 ab points`);
  const flat = new Float64Array(2 * pts.length);
  pts.forEach((p, i) => {
    flat[2 * i] = (p as number[])[0]!;
    flat[2 * i + 1] = (p as number[])[1]!;
  });
  abPointsCache = flat;
  return flat;
}

/** Index of the nearest ab point by brute force (strictly smaller distance wins: lowest index on ties). */
export function nearestAbBrute(a: number, b: number, pts: Float64Array = abPoints()): number {
  let best = 0;
  let bestD = Infinity;
  for (let k = 0; k < pts.length / 2; k++) {
    const da = a - pts[2 * k]!;
    const db = b - pts[2 * k + 1]!;
    const d = da * da + db * db;
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best;
}

/**
 * Fast exact nearest-ab-point search. The ab plane is cut into square cells;
 * each cell keeps (sorted by index) every point that can be the nearest for
 * some position in the cell: the points whose distance to the cell is at most
 * the smallest farthest-corner distance. Scanning those candidates in index
 * order with a strict comparison gives the brute-force answer, ties included.
 */
export class AbQuantizer {
  readonly points: Float64Array;
  private readonly lo = -140;
  private readonly cell = 10;
  private readonly cells = 28; // covers [-140, 140): all of sRGB's ab range
  private readonly start: Int32Array;
  private readonly cand: Int32Array;

  constructor(points: Float64Array = abPoints()) {
    this.points = points;
    const np = points.length / 2;
    const nc = this.cells * this.cells;
    const lists: number[][] = [];
    for (let ci = 0; ci < nc; ci++) {
      const a0 = this.lo + (ci % this.cells) * this.cell;
      const b0 = this.lo + Math.floor(ci / this.cells) * this.cell;
      const a1 = a0 + this.cell;
      const b1 = b0 + this.cell;
      let bound = Infinity;
      const dmin = new Float64Array(np);
      for (let k = 0; k < np; k++) {
        const pa = points[2 * k]!;
        const pb = points[2 * k + 1]!;
        const fa = Math.max(Math.abs(pa - a0), Math.abs(pa - a1));
        const fb = Math.max(Math.abs(pb - b0), Math.abs(pb - b1));
        bound = Math.min(bound, fa * fa + fb * fb);
        const na = pa < a0 ? a0 - pa : pa > a1 ? pa - a1 : 0;
        const nb = pb < b0 ? b0 - pb : pb > b1 ? pb - b1 : 0;
        dmin[k] = na * na + nb * nb;
      }
      const list: number[] = [];
      for (let k = 0; k < np; k++) if (dmin[k]! <= bound * (1 + 1e-9) + 1e-9) list.push(k);
      lists.push(list);
    }
    this.start = new Int32Array(nc + 1);
    let total = 0;
    lists.forEach((l, i) => {
      this.start[i] = total;
      total += l.length;
    });
    this.start[nc] = total;
    this.cand = new Int32Array(total);
    lists.forEach((l, i) => this.cand.set(l, this.start[i]!));
  }

  /** Index (0..312) of the nearest ab point; identical to `nearestAbBrute`. */
  nearest(a: number, b: number): number {
    const ia = Math.floor((a - this.lo) / this.cell);
    const ib = Math.floor((b - this.lo) / this.cell);
    if (ia < 0 || ib < 0 || ia >= this.cells || ib >= this.cells || Number.isNaN(a) || Number.isNaN(b))
      return nearestAbBrute(a, b, this.points);
    const ci = ib * this.cells + ia;
    const pts = this.points;
    const cand = this.cand;
    let best = -1;
    let bestD = Infinity;
    for (let j = this.start[ci]!; j < this.start[ci + 1]!; j++) {
      const k = cand[j]!;
      const da = a - pts[2 * k]!;
      const db = b - pts[2 * k + 1]!;
      const d = da * da + db * db;
      if (d < bestD) {
        bestD = d;
        best = k;
      }
    }
    return best;
  }
}

let quantizerCache: AbQuantizer | undefined;

/** The shared quantizer over the 313 points (built once per thread, ~ms). */
export function abQuantizer(): AbQuantizer {
  return (quantizerCache ??= new AbQuantizer());
}
