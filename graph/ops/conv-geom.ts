/** Convolution geometry (kernel, strides, dilations, pads, groups) shared by the conv and NCHWc ops. */
import { A, attrInt, attrInts, attrString, type Attrs } from '../ir.js';

export interface Geom {
  k: number[];
  s: number[];
  d: number[];
  p: number[]; // [begin..., end...]
  group: number;
}

export function geom(attrs: Attrs, k: number[]): Geom {
  const r = k.length;
  const p = attrInts(attrs, 'pads', new Array<number>(2 * r).fill(0));
  if (attrString(attrs, 'auto_pad', 'NOTSET') !== 'NOTSET') throw new Error('auto_pad is not supported; give pads');
  return {
    k,
    s: attrInts(attrs, 'strides', new Array<number>(r).fill(1)),
    d: attrInts(attrs, 'dilations', new Array<number>(r).fill(1)),
    p,
    group: attrInt(attrs, 'group', 1),
  };
}

export function convOut(inp: number, k: number, s: number, d: number, pb: number, pe: number, ceil = false): number {
  const span = inp + pb + pe - d * (k - 1) - 1;
  if (span < 0) throw new Error(`kernel ${k} (dilation ${d}) larger than padded input ${inp + pb + pe}`);
  return (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
}

export function geomAttrs(gm: Geom, extra: Attrs = {}): Attrs {
  return {
    kernel_shape: A.ints(gm.k),
    strides: A.ints(gm.s),
    dilations: A.ints(gm.d),
    pads: A.ints(gm.p),
    group: A.i(gm.group),
    ...extra,
  };
}
