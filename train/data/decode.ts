/**
 * Decoding one image file with sharp: the header (size and format, without
 * decoding), the pixels as interleaved uint8 (RGB or gray), optionally at a
 * reduced size (libvips then shrinks JPEGs while loading), and single-channel
 * label maps at full size. libvips's operation cache is off, so decoding any
 * number of files leaves memory flat. Every failure is a `DataError` naming
 * the file (`unreadable: true`: skippable with --skip-corrupt).
 */
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { DataError, errorText } from './errors.js';

sharp.cache(false);

/** A decode failure of one file (a missing, truncated or undecodable image). */
export class UnreadableImage extends DataError {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`cannot decode image ${path}: ${reason}`);
  }
}

/** Interleaved (HWC) uint8 pixels. */
export interface Decoded {
  data: Uint8Array;
  h: number;
  w: number;
  c: number;
}

/** Size and format of an image file, from its header. */
export interface ImageHeader {
  h: number;
  w: number;
  format: string;
}

/** The bytes of an image file. */
export async function readImageBytes(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new UnreadableImage(path, errorText(e));
  }
}

/** Width, height and format from the header (no pixel decoding). */
export async function imageHeader(bytes: Buffer, path: string): Promise<ImageHeader> {
  try {
    const m = await sharp(bytes).metadata();
    if (!m.width || !m.height) throw new Error('no image size in the header');
    return { h: m.height, w: m.width, format: m.format ?? 'unknown' };
  } catch (e) {
    if (e instanceof DataError) throw e;
    throw new UnreadableImage(path, errorText(e));
  }
}

/**
 * Decodes to `channels` (3: sRGB, alpha dropped; 1: gray). With `size`
 * ([h, w]) the whole image is resized to exactly that while decoding (linear
 * kernel; JPEGs are shrunk on load by libvips where the factor allows).
 */
export async function decodeImage(
  bytes: Buffer,
  path: string,
  channels: 1 | 3,
  size?: [number, number],
): Promise<Decoded> {
  try {
    let img = sharp(bytes, { failOn: 'truncated' });
    if (size) img = img.resize(size[1], size[0], { fit: 'fill', kernel: 'linear' });
    img = img.removeAlpha();
    img = channels === 1 ? img.grayscale() : img.toColourspace('srgb');
    const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== channels) throw new Error(`decoded to ${info.channels} channels, expected ${channels}`);
    return {
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
      h: info.height,
      w: info.width,
      c: channels,
    };
  } catch (e) {
    throw new UnreadableImage(path, errorText(e));
  }
}

/** Decodes a label map (an 8-bit single-channel PNG: its first channel) at full size. */
export async function decodeLabelMap(bytes: Buffer, path: string): Promise<Decoded> {
  try {
    const { data, info } = await sharp(bytes, { failOn: 'truncated' })
      .extractChannel(0)
      .raw()
      .toBuffer({ resolveWithObject: true });
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), h: info.height, w: info.width, c: 1 };
  } catch (e) {
    throw new UnreadableImage(path, errorText(e));
  }
}

/** Interleaved HWC → planar CHW. */
export function toPlanar(d: Decoded): Uint8Array {
  const plane = d.h * d.w;
  const out = new Uint8Array(plane * d.c);
  if (d.c === 1) out.set(d.data.subarray(0, plane));
  else for (let p = 0; p < plane; p++) for (let c = 0; c < d.c; c++) out[c * plane + p] = d.data[p * d.c + c]!;
  return out;
}
