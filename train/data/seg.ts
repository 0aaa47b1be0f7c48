/**
 * Segmentation data: a training set of images with label maps, streamed and
 * cut in the workers (stream.ts: Cityscapes scale + crop + flip, the label
 * maps through the same geometry with nearest sampling, Cityscapes labelIds
 * mapped to the 19 classes, every map checked to hold class ids or 255), and
 * the validation split as full frames (`SegFrames`): each image whole at its
 * own size, normalized and padded to the frame size with 0, its labels with
 * 255.
 */
import type { Dataset } from './dataset.js';
import { decodeImage, decodeLabelMap, imageHeader, readImageBytes } from './decode.js';
import { DataError } from './errors.js';
import { type FileIndex, openIndex } from './file-index.js';
import {
  CITYSCAPES_CLASSES,
  checkLabels,
  IGNORE,
  type LabelMapping,
  labelLut,
  mapLabels,
  paddedSide,
} from './seg-labels.js';
import { openImageStream, STREAM_DEFAULTS } from './stream.js';

export interface SegSetOptions {
  /** Classes of the label maps (ids 0..classes−1, 255 ignored). */
  classes: number;
  /** Folder where the file index is kept (a run's data folder). */
  indexDir?: string;
  /** Use only the first `limit` images. */
  limit?: number;
}

const NO_MASKS = (path: string): string =>
  `no label maps in ${path}: expected a Cityscapes root (leftImg8bit/ with gtFine/*_labelTrainIds.png or *_labelIds.png) ` +
  'or a folder with images/ and masks/';

/** The training images and label maps of `path`, streamed with Cityscapes-style crops of `crop` px. */
export async function openSegTrainSet(
  path: string,
  o: SegSetOptions & { crop: number; scaleBase?: number; lighting?: number; skipCorrupt?: boolean },
): Promise<Dataset> {
  const ds = await openImageStream(path, {
    crop: o.crop,
    split: 'train',
    geometry: 'cityscapes',
    scaleBase: o.scaleBase,
    lighting: o.lighting,
    limit: o.limit,
    indexDir: o.indexDir,
    skipCorrupt: o.skipCorrupt,
    maskClasses: o.classes,
  });
  if (!ds.stream?.masks) throw new DataError(NO_MASKS(path));
  return ds;
}

/** One validation frame: the normalized image and its labels, padded to the frame size. */
export interface SegFrame {
  /** 3 × H × W (frame size), normalized, 0 outside the image. */
  x: Float32Array;
  /** H × W class ids, 255 outside the image and where unlabelled. */
  labels: Int32Array;
  /** The image's own size. */
  h: number;
  w: number;
  path: string;
}

/** The validation split as full frames, read one by one. */
export class SegFrames {
  private readonly lut: Uint8Array | null;

  private constructor(
    private readonly index: FileIndex,
    /** [H, W] every frame is padded to: the least 16k + 1 ≥ the largest image's side. */
    readonly frame: [number, number],
    readonly classes: number,
    readonly classNames: string[],
  ) {
    const m: LabelMapping = index.maskMapping ?? 'identity';
    this.lut = m === 'identity' ? null : labelLut(m);
  }

  /** The test (Cityscapes: val) split of `path`: the images that have a label map. */
  static async open(path: string, o: SegSetOptions): Promise<SegFrames> {
    const full = await openIndex(path, 'test', o.indexDir);
    if (!full.masks) throw new DataError(NO_MASKS(path));
    let rows = full.files.flatMap((_, i) => (full.masks![i] ? [i] : []));
    if (o.limit !== undefined) rows = rows.slice(0, o.limit);
    if (rows.length === 0) throw new DataError(`no validation image of ${path} has a label map`);
    const index: FileIndex = {
      ...full,
      files: rows.map((i) => full.files[i]!),
      masks: rows.map((i) => full.masks![i]!),
    };
    let h = 1;
    let w = 1;
    for (const f of index.files) {
      const p = `${index.root}/${f}`;
      const head = await imageHeader(await readImageBytes(p), p);
      h = Math.max(h, head.h);
      w = Math.max(w, head.w);
    }
    const names =
      index.layout === 'cityscapes' && o.classes === CITYSCAPES_CLASSES.length
        ? [...CITYSCAPES_CLASSES]
        : Array.from({ length: o.classes }, (_, c) => String(c));
    return new SegFrames(index, [paddedSide(h), paddedSide(w)], o.classes, names);
  }

  get count(): number {
    return this.index.files.length;
  }

  /** Frame i: decoded, its labels mapped and checked, normalized with the ImageNet statistics, padded. */
  async frameAt(i: number): Promise<SegFrame> {
    const [H, W] = this.frame;
    const path = `${this.index.root}/${this.index.files[i]!}`;
    const mpath = `${this.index.root}/${this.index.masks![i]!}`;
    const img = await decodeImage(await readImageBytes(path), path, 3);
    const m = await decodeLabelMap(await readImageBytes(mpath), mpath);
    if (m.h !== img.h || m.w !== img.w)
      throw new DataError(`label map ${mpath} is ${m.w}x${m.h} but its image is ${img.w}x${img.h}`);
    if (this.lut) mapLabels(m.data, this.lut);
    checkLabels(m.data, this.classes, mpath);
    const x = new Float32Array(3 * H * W);
    const labels = new Int32Array(H * W).fill(IGNORE);
    const { mean, std } = STREAM_DEFAULTS;
    for (let y = 0; y < img.h; y++) {
      for (let xx = 0; xx < img.w; xx++) {
        const p = y * img.w + xx;
        for (let c = 0; c < 3; c++) x[(c * H + y) * W + xx] = (img.data[3 * p + c]! / 255 - mean[c]!) / std[c]!;
        labels[y * W + xx] = m.data[p]!;
      }
    }
    return { x, labels, h: img.h, w: img.w, path };
  }
}
