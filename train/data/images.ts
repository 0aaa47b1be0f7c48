/**
 * Images for a shipped model (`nas-onnx predict`): the PNG/JPEG files of a
 * path (one file, or a folder with its class sub-folders' names as the
 * expected labels), each decoded with sharp and brought to the model's input
 * as training brought its data: gray replicated for a colour model, pixels
 * v/255 normalized per channel; for a classifier resized to cover
 * height×width and centre-cropped, for a segmentation model placed at the top
 * left of a zero frame (scaled down to fit when larger).
 */
import { statSync } from 'node:fs';
import { relative, sep } from 'node:path';
import sharp, { type Metadata, type OutputInfo, type Sharp } from 'sharp';
import { DataError, errorText } from './errors.js';
import { imagesUnder } from './readers.js';

export interface ImageList {
  /** The folder listed (null: a single file). */
  root: string | null;
  files: string[];
  /** Per file, the class sub-folder it lies in below the folder given (null: directly in it, or a single file). */
  folders: (string | null)[];
}

/** The images of `path`: the file itself, or the PNG/JPEG files anywhere below a folder (sorted). */
export async function listImages(path: string): Promise<ImageList> {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (e) {
    throw new DataError(
      `cannot read '${path}': ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : errorText(e)}`,
    );
  }
  if (!st.isDirectory()) return { root: null, files: [path], folders: [null] };
  const files = await imagesUnder(path, true);
  if (!files.length) throw new DataError(`no PNG or JPEG images in ${path}`);
  const folders = files.map((f) => {
    const parts = relative(path, f).split(sep);
    return parts.length > 1 ? parts[0]! : null;
  });
  return { root: path, files, folders };
}

export interface ImageSpec {
  channels: number;
  height: number;
  width: number;
  mean: readonly number[];
  std: readonly number[];
  /** Convert colour images for a gray model (and other channel counts) as the image-folder reader does, instead of refusing them. */
  convert?: boolean;
}

const channelWord = (c: number): string =>
  c === 1 ? '1 channel (gray)' : c === 3 ? '3 channels (colour)' : `${c} channels`;

/** `file` opened with sharp, its channel count checked against the spec (refused when converting loses information). */
async function openImage(file: string, s: ImageSpec): Promise<{ img: Sharp; width: number; height: number }> {
  const img = sharp(file, { failOn: 'warning' });
  let meta: Metadata;
  try {
    meta = await img.metadata();
  } catch (e) {
    throw new DataError(`cannot decode image ${file}: ${errorText(e)}`);
  }
  const have = (meta.channels ?? 0) - (meta.hasAlpha ? 1 : 0);
  // a gray image is a colour image with equal channels (the training reader reads it so); other
  // mismatches, colour to gray above all, lose information: only with `convert`
  const lossless = have === s.channels || (have === 1 && s.channels === 3);
  if (!lossless && !s.convert)
    throw new DataError(
      `image ${file} has ${channelWord(have)} but the model takes ${channelWord(s.channels)} (--convert converts it)`,
    );
  return { img, width: meta.width ?? 0, height: meta.height ?? 0 };
}

/** Decode `img` (resized already) to normalized CHW float32, `width`×`height`. */
async function normalized(
  file: string,
  img: Sharp,
  s: ImageSpec,
): Promise<{ x: Float32Array; width: number; height: number }> {
  const pipe = s.channels === 1 ? img.removeAlpha().grayscale() : img.removeAlpha().toColourspace('srgb');
  let out: { data: Buffer; info: OutputInfo };
  try {
    out = await pipe.raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new DataError(`cannot decode image ${file}: ${errorText(e)}`);
  }
  const c = s.channels;
  if (out.info.channels !== c)
    throw new DataError(`image ${file} decoded to ${out.info.channels} channels, expected ${c}`);
  const { width, height } = out.info;
  const plane = width * height;
  const x = new Float32Array(c * plane);
  for (let p = 0; p < plane; p++)
    for (let ch = 0; ch < c; ch++) x[ch * plane + p] = (out.data[p * c + ch]! / 255 - s.mean[ch]!) / s.std[ch]!;
  return { x, width, height };
}

/** Decode `file` to normalized CHW float32 of the spec's shape (resized to cover, centre-cropped). */
export async function decodeForModel(file: string, s: ImageSpec): Promise<Float32Array> {
  let { img, width, height } = await openImage(file, s);
  if (width !== s.width || height !== s.height) img = img.resize(s.width, s.height, { fit: 'cover' });
  return (await normalized(file, img, s)).x;
}

export interface PlacedImage {
  /** Normalized CHW of the spec's shape: the image at the top left, zeros (the mean) elsewhere. */
  x: Float32Array;
  /** The image's size in `x` (scaled down to fit when it was larger). */
  width: number;
  height: number;
  /** The file's own size. */
  fileWidth: number;
  fileHeight: number;
}

/**
 * Decode `file` for a segmentation model: normalized, at the top left of the
 * input with zeros to the right and below (as the model was evaluated on
 * frames); an image larger than the input is first scaled down to fit inside.
 */
export async function decodePadded(file: string, s: ImageSpec): Promise<PlacedImage> {
  let { img, width, height } = await openImage(file, s);
  if (width > s.width || height > s.height) img = img.resize(s.width, s.height, { fit: 'inside' });
  const d = await normalized(file, img, s);
  const x = new Float32Array(s.channels * s.height * s.width);
  for (let ch = 0; ch < s.channels; ch++)
    for (let y = 0; y < d.height; y++) {
      const src = (ch * d.height + y) * d.width;
      x.set(d.x.subarray(src, src + d.width), (ch * s.height + y) * s.width);
    }
  return { x, width: d.width, height: d.height, fileWidth: width, fileHeight: height };
}
