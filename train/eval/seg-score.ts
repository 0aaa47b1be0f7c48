/**
 * Segmentation scores from a confusion matrix accumulated over a whole split
 * (rows: label, columns: prediction), as the Cityscapes benchmark computes
 * them — not averaged per image: IoU_c = TP / (TP + FP + FN), mIoU the mean
 * over the classes that occur (in the labels or the predictions), pixel
 * accuracy over the labelled pixels.
 */

export interface SegScores {
  /** Mean IoU over the classes with TP + FP + FN > 0. */
  miou: number;
  /** Correct pixels over labelled pixels. */
  pixelAcc: number;
  /** IoU per class, null where the class neither occurs nor is predicted. */
  iou: (number | null)[];
  /** Labelled pixels counted. */
  pixels: number;
}

/** Adds a [K, K] confusion matrix (float counts) into a float64 accumulator. */
export function accumulate(total: Float64Array, batch: ArrayLike<number>): void {
  if (total.length !== batch.length)
    throw new Error(`confusion matrices differ in size: ${total.length} vs ${batch.length}`);
  for (let i = 0; i < total.length; i++) total[i] = total[i]! + batch[i]!;
}

export function segScores(conf: ArrayLike<number>, classes: number): SegScores {
  if (conf.length !== classes * classes)
    throw new Error(`a confusion matrix of ${classes} classes has ${classes * classes} cells, got ${conf.length}`);
  const iou: (number | null)[] = [];
  let correct = 0;
  let pixels = 0;
  for (let c = 0; c < classes; c++) {
    let row = 0;
    let col = 0;
    for (let k = 0; k < classes; k++) {
      row += conf[c * classes + k]!;
      col += conf[k * classes + c]!;
    }
    const tp = conf[c * classes + c]!;
    const union = row + col - tp;
    iou.push(union > 0 ? tp / union : null);
    correct += tp;
    pixels += row;
  }
  const present = iou.filter((v): v is number => v !== null);
  return {
    miou: present.length ? present.reduce((a, b) => a + b, 0) / present.length : 0,
    pixelAcc: pixels ? correct / pixels : 0,
    iou,
    pixels,
  };
}

/** Per-class IoU as a log line: `road 97.1  sidewalk 80.2 …` (percent; `-` where undefined). */
export function iouLine(iou: readonly (number | null)[], names?: readonly string[]): string {
  return iou.map((v, c) => `${names?.[c] ?? c} ${v === null ? '-' : (100 * v).toFixed(1)}`).join('  ');
}
