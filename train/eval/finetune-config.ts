/**
 * The settings of `nas-onnx finetune` (and of the sweep's fine-tunes) in one
 * table: defaults (the SSWP-NAS paper's fine-tuning from the concomitant
 * weights, its Table 5), checks, --help texts, and what a --resume may change
 * (the learning rates). Which arms to run is not a setting: every arm of one
 * run shares these.
 */
import type { RunKind } from '../runtime/run.js';
import {
  choiceKind,
  nonNegativeInt,
  nonNegativeNumber,
  nullable,
  numberKind,
  positiveInt,
  positiveNumber,
  probability,
  resolveSettings,
  type SettingsSpec,
  seedKind,
  textKind,
} from '../runtime/settings.js';

export type Init = 'concomitant' | 'random' | 'simclr';
export const INITS: readonly Init[] = ['concomitant', 'random', 'simclr'];
export type BnTreatment = 'precise' | 'running';
export const BN_TREATMENTS: readonly BnTreatment[] = ['precise', 'running'];

/** Fine-tuning defaults: the paper's training from the concomitant weights (its Table 5). */
export const FINETUNE_DEFAULTS = {
  epochs: 10,
  batch: 128,
  lr: 0.025,
  lrMin: 0,
  momentum: 0.9,
  weightDecay: 3e-4,
  clip: 5,
  cutout: 16,
  auxWeight: 0.4,
  dropPath: 0.3,
  bn: 'precise' as BnTreatment,
  bnBatches: 20,
  inits: ['concomitant', 'random'] as Init[],
};

export interface FinetuneConfig {
  /** SSWP run directory (cells.json, final/). */
  from: string;
  labelsFraction: number;
  /** Data set (null: the search's). */
  dataset: string | null;
  epochs: number;
  batch: number;
  lr: number;
  lrMin: number;
  momentum: number;
  weightDecay: number;
  clip: number;
  cutout: number;
  /** Auxiliary loss weight (0: no auxiliary head). */
  auxWeight: number;
  /** Maximum drop-path probability (0: none). */
  dropPath: number;
  bn: BnTreatment;
  /** Batches of labelled images for precise BN. */
  bnBatches: number;
  /** Images per evaluation batch (null: max(batch, 100)). */
  evalBatch: number | null;
  /** First N training images (null: the search's --limit). */
  limit: number | null;
  testLimit: number | null;
  /** Crop size of a streamed image set (null: the search's --size). */
  size: number | null;
  /** Seeds the labelled subset, the data order, the drop-path masks and the fresh weights. */
  seed: number;
}

const d = FINETUNE_DEFAULTS;
const lr = { kind: positiveNumber, resume: 'adjustable' } as const;

export const FINETUNE_SETTINGS: SettingsSpec<FinetuneConfig> = {
  from: {
    kind: textKind,
    default: undefined,
    flag: '--from <dir>',
    help: 'SSWP search run directory (cells.json, final/)',
  },
  labelsFraction: {
    kind: numberKind('a fraction in (0, 1]', { min: 0, minOpen: true, max: 1 }),
    default: undefined,
    flag: '--labels-fraction <f>',
    help: 'fraction of the training labels to use (seeded, class-stratified)',
  },
  dataset: {
    kind: nullable(textKind),
    default: null,
    defaultText: 'the one searched on',
    flag: '--dataset <spec>',
    help: 'labelled data set',
  },
  epochs: { kind: positiveInt, default: d.epochs, flag: '--epochs <n>', help: 'epochs' },
  batch: { kind: positiveInt, default: d.batch, flag: '--batch <n>', help: 'batch size' },
  lr: { ...lr, default: d.lr, flag: '--lr <x>', help: 'initial learning rate (cosine per step to --lr-min)' },
  lrMin: { ...lr, kind: nonNegativeNumber, default: d.lrMin, flag: '--lr-min <x>', help: 'final learning rate' },
  momentum: { kind: probability, default: d.momentum, flag: '', help: 'SGD momentum' },
  weightDecay: { kind: nonNegativeNumber, default: d.weightDecay, flag: '--weight-decay <x>', help: 'weight decay' },
  clip: { kind: positiveNumber, default: d.clip, flag: '', help: 'gradient norm clipping' },
  cutout: { kind: nonNegativeInt, default: d.cutout, flag: '--cutout <n>', help: 'cutout length (0: off)' },
  auxWeight: {
    kind: nonNegativeNumber,
    default: d.auxWeight,
    flag: '--aux-weight <x>',
    help: 'auxiliary loss weight (0: no auxiliary head)',
  },
  dropPath: {
    kind: numberKind('a probability in [0, 1)', { min: 0, max: 1, maxOpen: true }),
    default: d.dropPath,
    flag: '--drop-path <p>',
    help: 'maximum drop-path probability',
  },
  bn: {
    kind: choiceKind(BN_TREATMENTS),
    default: d.bn,
    flag: '--bn <how>',
    help:
      'BN statistics every arm is evaluated with: precise (recomputed for its final weights on the labelled ' +
      'images) or running (every arm starts from 0/1 and tracks them while training)',
  },
  bnBatches: {
    kind: positiveInt,
    default: d.bnBatches,
    flag: '--bn-batches <n>',
    help: 'batches of labelled images for precise BN',
  },
  evalBatch: { kind: nullable(positiveInt), default: null, flag: '', help: 'images per evaluation batch' },
  limit: {
    kind: nullable(positiveInt),
    default: null,
    defaultText: "the search's --limit",
    flag: '--limit <n>',
    help: 'use only the first N training images',
  },
  testLimit: {
    kind: nullable(positiveInt),
    default: null,
    defaultText: 'all',
    flag: '--test-limit <n>',
    help: 'use only the first N test images',
  },
  size: {
    kind: nullable(positiveInt),
    default: null,
    defaultText: "the search's --size",
    flag: '--size <n>',
    help: 'crop size N of streamed image folders/lists',
  },
  seed: { kind: seedKind, default: 0, flag: '--seed <n>', help: 'random seed' },
};

/** What the lifecycle needs to know about fine-tuning runs. */
export const FINETUNE_RUN: RunKind<FinetuneConfig> = {
  command: 'finetune',
  kind: 'finetune',
  verb: 'fine-tuned',
  settings: FINETUNE_SETTINGS,
  outputs: ['result.json', ...INITS],
  memory: ['batch'],
  rescue: 'lr',
};

/** The config of a fine-tune: `o` over the defaults, every value checked (one-line SettingError). */
export function finetuneConfig(o: Partial<FinetuneConfig>): FinetuneConfig {
  return resolveSettings(FINETUNE_SETTINGS, o);
}
