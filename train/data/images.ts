/**
 * Images for a shipped model (`nas-onnx predict`): the PNG/JPEG files of a
 * path (one file, or a folder with its class sub-folders' names as the
 * expected labels), each decoded with sharp and brought to the model's input
 * as training brought its data: resized to cover height×width and
 * centre-cropped when its size differs, gray replicated for a colour model,
 * pixels v/255 normalized per channel.
 */
import { statSync } from 'node:fs';
import { relative, sep } from 'node:path';
import sharp, { type Metadata, type OutputInfo } from 'sharp';
import { DataError, errorText } from './errors.js';
import { imagesUnder } from './readers.js';

export interface ImageList {
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
  if (!st.isDirectory()) return { files: [path], folders: [null] };
  const files = await imagesUnder(path, true);
  if (!files.length) throw new DataError(`no PNG or JPEG images in ${path}`);
  const folders = files.map((f) => {
    const parts = relative(path, f).split(sep);
    return parts.length > 1 ? parts[0]! : null;
  });
  return { files, folders };
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

/** Decode `file` to normalized CHW float32 of the spec's shape (DataError naming the file when it cannot). */
export async function decodeForModel(file: string, s: ImageSpec): Promise<Float32Array> {
  let img = sharp(file, { failOn: 'warning' });
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
  if (meta.width !== s.width || meta.height !== s.height) img = img.resize(s.width, s.height, { fit: 'cover' });
  img = img.removeAlpha();
  img = s.channels === 1 ? img.grayscale() : img.toColourspace('srgb');
  let out: { data: Buffer; info: OutputInfo };
  try {
    out = await img.raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new DataError(`cannot decode image ${file}: ${errorText(e)}`);
  }
  const c = s.channels;
  if (out.info.channels !== c)
    throw new DataError(`image ${file} decoded to ${out.info.channels} channels, expected ${c}`);
  const plane = s.height * s.width;
  const x = new Float32Array(c * plane);
  for (let p = 0; p < plane; p++)
    for (let ch = 0; ch < c; ch++) x[ch * plane + p] = (out.data[p * c + ch]! / 255 - s.mean[ch]!) / s.std[ch]!;
  return x;
}
