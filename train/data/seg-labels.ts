/**
 * Label maps of semantic segmentation: Cityscapes' 19 training classes, the
 * standard mapping of its 34 `labelIds` to them (cityscapesScripts
 * helpers/labels.py: every id without a trainId becomes 255, ignored), the
 * check that a map holds only class ids and 255, and the frame size that
 * full-image evaluation pads to.
 */
import { IGNORE_LABEL } from '../../graph/ops/crossentropy.js';
import { DataError } from './errors.js';

/** The label of pixels without a class (ignored by the loss and the metric). */
export const IGNORE = IGNORE_LABEL;

/** Cityscapes' 19 classes in trainId order. */
export const CITYSCAPES_CLASSES = [
  'road',
  'sidewalk',
  'building',
  'wall',
  'fence',
  'pole',
  'traffic light',
  'traffic sign',
  'vegetation',
  'terrain',
  'sky',
  'person',
  'rider',
  'car',
  'truck',
  'bus',
  'train',
  'motorcycle',
  'bicycle',
] as const;

/** trainId of each Cityscapes labelId 0..33 (labels.py); 255 for the classes not evaluated. */
const TRAIN_ID: Record<number, number> = {
  7: 0,
  8: 1,
  11: 2,
  12: 3,
  13: 4,
  17: 5,
  19: 6,
  20: 7,
  21: 8,
  22: 9,
  23: 10,
  24: 11,
  25: 12,
  26: 13,
  27: 14,
  28: 15,
  31: 16,
  32: 17,
  33: 18,
};

/** How the values of a label map become class ids: as they are, or Cityscapes labelIds → trainIds. */
export type LabelMapping = 'identity' | 'cityscapes-labelIds';

/** A 256-entry lookup table of a mapping (byte value → class id or 255). */
export function labelLut(m: LabelMapping): Uint8Array {
  const lut = new Uint8Array(256);
  for (let v = 0; v < 256; v++) lut[v] = m === 'identity' ? v : (TRAIN_ID[v] ?? IGNORE);
  return lut;
}

/** Maps `labels` in place through a lookup table. */
export function mapLabels(labels: Uint8Array, lut: Uint8Array): void {
  for (let i = 0; i < labels.length; i++) labels[i] = lut[labels[i]!]!;
}

/**
 * Throws a DataError naming `where` when a label is neither a class id
 * (0..classes−1) nor 255: a map of other ids (e.g. Cityscapes labelIds read as
 * trainIds) or a colour-coded mask.
 */
export function checkLabels(labels: ArrayLike<number>, classes: number, where: string): void {
  for (let i = 0; i < labels.length; i++) {
    const v = labels[i]!;
    if (v < classes || v === IGNORE) continue;
    throw new DataError(
      `label map ${where} holds the value ${v}: expected class ids 0..${classes - 1} or ${IGNORE} (ignored); ` +
        `a map of other ids (e.g. Cityscapes labelIds) needs a mapping to the ${classes} classes`,
    );
  }
}

/**
 * The side a full image of `n` pixels is padded to for evaluation: the least
 * 16k + 1 ≥ n. With align_corners the output-stride-16 feature grid then sits
 * exactly on the padded frame's corners (UnNAS's release pads Cityscapes'
 * 1024×2048 frames to 1025×2049, images with 0 after normalization, labels
 * with 255).
 */
export function paddedSide(n: number, stride = 16): number {
  if (!Number.isInteger(n) || n < 1) throw new DataError(`image side must be a positive integer, got ${n}`);
  return Math.ceil((n - 1) / stride) * stride + 1;
}
