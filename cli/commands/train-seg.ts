/**
 * `nas-onnx train --task seg`: the options and the action of UnNAS's
 * segmentation evaluation (train/eval/seg.ts) inside the train command. Its
 * own settings (data, crop, scale, ASPP width…) come from the settings table;
 * the options train shares with classification (--C, --layers, --epochs,
 * --batch, --lr, --limit, --checkpoint-every, --seed) count only when given
 * on the command line, so their defaults are segmentation's, not
 * classification's.
 */
import type { Command } from 'commander';
import { SEG_TRAIN_SETTINGS, type SegTrainConfig, trainSeg } from '../../train/eval/seg.js';
import { iouLine } from '../../train/eval/seg-score.js';
import { addSettings, continueCommand } from '../settings.js';

/** Settings that only segmentation has (options of their own on the train command). */
const SEG_ONLY: (keyof SegTrainConfig & string)[] = [
  'data',
  'classes',
  'asppChannels',
  'crop',
  'scaleBase',
  'momentum',
  'clip',
  'lighting',
  'flip',
  'valLimit',
  'evalEvery',
];

/** Settings whose options classification training already has (attribute names on the command). */
const SHARED: (keyof SegTrainConfig & string)[] = [
  'genotype',
  'C',
  'layers',
  'epochs',
  'batch',
  'lr',
  'lrMin',
  'weightDecay',
  'limit',
  'checkpointEvery',
  'seed',
];

/** Adds the segmentation-only options to `cmd`; returns the reader of the parsed segmentation config. */
export function addSegOptions(cmd: Command): (opts: Record<string, unknown>) => Partial<SegTrainConfig> {
  const overrides = Object.fromEntries(
    SEG_ONLY.map((k) => [k, { help: `seg: ${SEG_TRAIN_SETTINGS[k].help}` }]),
  ) as Partial<Record<keyof SegTrainConfig & string, { help: string }>>;
  const readOwn = addSettings(cmd, SEG_TRAIN_SETTINGS, SEG_ONLY, overrides);
  return (opts) => {
    const given: Partial<SegTrainConfig> = readOwn(opts);
    for (const k of SHARED) {
      // a default of classification's option is not a choice the user made
      if (cmd.getOptionValueSource(k) === 'cli') (given as Record<string, unknown>)[k] = opts[k];
    }
    return given;
  };
}

/** The action of `train --task seg`. */
export async function runSegTrain(
  cmd: Command,
  read: (opts: Record<string, unknown>) => Partial<SegTrainConfig>,
): Promise<void> {
  const o = cmd.opts();
  const r = await trainSeg(read(o), {
    out: o.out as string,
    resume: !!o.resume,
    overwrite: !!o.overwrite,
    ep: o.ep,
    workers: o.workers as number | undefined,
    quiet: !!o.quiet,
    commandLine: continueCommand(cmd),
  });
  const last = [...r.history].reverse().find((h) => h.val_miou !== undefined);
  const miou = last ? `val mIoU ${(100 * last.val_miou!).toFixed(2)}%` : 'no validation yet';
  process.stdout.write(
    `trained ${r.history.length} epoch(s): ${miou}, ${r.params.toLocaleString('en-US')} parameters, ` +
      `step graph ${r.stepNodes} nodes\n` +
      (last ? `per-class IoU: ${iouLine(last.val_iou!, r.classNames)}\n` : '') +
      `model: ${r.modelPath} (per-pixel logits of a ${r.frame[0]}×${r.frame[1]} frame)\n`,
  );
}
