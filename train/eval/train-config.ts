/**
 * The settings of `nas-onnx train` (the DARTS evaluation phase) in one table:
 * defaults, checks, --help texts, and what a --resume may change (the
 * learning rates). trainer.ts reads its settings from a TrainConfig only;
 * the CLI overrides fields of it.
 */
import { readFileSync } from 'node:fs';
import { type Genotype, GenotypeError, loadGenotype, parseGenotype } from '../../graph/genotype.js';
import { parseSswpArch, type SswpArch } from '../../graph/nets/sswp.js';
import { TrainError } from '../runtime/errors.js';
import type { RunKind } from '../runtime/run.js';
import {
  choiceKind,
  nonNegativeInt,
  nonNegativeNumber,
  nullable,
  numberKind,
  positiveInt,
  positiveNumber,
  resolveSettings,
  SettingError,
  type SettingsSpec,
  seedKind,
  textKind,
  type ValueKind,
} from '../runtime/settings.js';
import { EVAL_NET_DEFAULTS } from '../report/cost.js';

export interface TrainConfig {
  /** The cell of every cell (a DARTS genotype), or null with `cells`. */
  genotype: Genotype | null;
  /** One architecture per cell (an SSWP-NAS cells.json; it sets C and layers), or null with `genotype`. */
  cells: SswpArch | null;
  dataset: string;
  net: 'cifar' | 'imagenet';
  C: number;
  layers: number;
  epochs: number;
  batch: number;
  /** Images per evaluation batch (null: max(batch, 100)). */
  evalBatch: number | null;
  lr: number;
  lrMin: number;
  momentum: number;
  weightDecay: number;
  clip: number;
  auxWeight: number;
  dropPath: number;
  cutout: number;
  seed: number;
  limit: number | null;
  testLimit: number | null;
  size: number | null;
}

export const genotypeKind: ValueKind<Genotype | null> = {
  what: 'a shipped genotype name or a genotype JSON file',
  parse: (t) => loadGenotype(t),
  ok: (v): v is Genotype | null => {
    if (v === null) return true;
    try {
      parseGenotype(v);
      return true;
    } catch {
      return false;
    }
  },
};

/** A cells.json file, checked (one clear error line when it is not one). */
export function readCells(file: string): SswpArch {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new SettingError(`--cells: cannot read ${file}`);
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch {
    throw new SettingError(`--cells: ${file} is not JSON`);
  }
  return parseSswpArch(obj, file);
}

const cellsKind: ValueKind<SswpArch | null> = {
  what: 'an SSWP-NAS cells.json file',
  parse: readCells,
  ok: (v): v is SswpArch | null => v === null || (typeof v === 'object' && Array.isArray((v as SswpArch).cells)),
};

const dropPathKind = numberKind('a probability in [0, 1)', { min: 0, max: 1, maxOpen: true });
const lr = { kind: positiveNumber, resume: 'adjustable' } as const;

export const TRAIN_SETTINGS: SettingsSpec<TrainConfig> = {
  genotype: {
    kind: genotypeKind,
    default: null,
    defaultText: 'none: give this or --cells',
    flag: '--genotype <name|file>',
    help: 'shipped genotype name (e.g. darts_v2) or a genotype JSON file',
  },
  cells: {
    kind: cellsKind,
    default: null,
    defaultText: 'none',
    flag: '--cells <file>',
    help:
      'an SSWP-NAS cells.json instead: every cell its own architecture; C and layers from the file ' +
      '(the SSWP-NAS paper retrains with --batch 128 --epochs 600 --drop-path 0.3 --cutout 16 --aux-weight 0.4)',
  },
  dataset: {
    kind: textKind,
    default: 'fashion-mnist',
    flag: '--dataset <spec>',
    help: 'data set: fashion-mnist, cifar10:<dir>, cifar100:<dir>, or a path',
  },
  net: {
    kind: choiceKind(['cifar', 'imagenet'] as const),
    default: EVAL_NET_DEFAULTS.net,
    flag: '--net <net>',
    help: 'network layout',
  },
  C: { kind: positiveInt, default: EVAL_NET_DEFAULTS.C, flag: '--C <n>', help: 'initial channels' },
  layers: { kind: positiveInt, default: EVAL_NET_DEFAULTS.layers, flag: '--layers <n>', help: 'cells' },
  epochs: { kind: positiveInt, default: 1, flag: '--epochs <n>', help: 'epochs' },
  batch: { kind: positiveInt, default: 64, flag: '--batch <n>', help: 'images per training batch' },
  evalBatch: {
    kind: nullable(positiveInt),
    default: null,
    defaultText: 'max(batch, 100)',
    flag: '',
    help: 'images per evaluation batch',
  },
  lr: { ...lr, default: 0.025, flag: '--lr <x>', help: 'initial learning rate, cosine to --lr-min per step' },
  lrMin: { ...lr, kind: nonNegativeNumber, default: 0, flag: '--lr-min <x>', help: 'final learning rate' },
  momentum: { kind: nonNegativeNumber, default: 0.9, flag: '', help: 'SGD momentum' },
  weightDecay: { kind: nonNegativeNumber, default: 3e-4, flag: '--weight-decay <x>', help: 'weight decay' },
  clip: { kind: positiveNumber, default: 5, flag: '', help: 'gradient norm clipping' },
  auxWeight: {
    kind: nonNegativeNumber,
    default: 0.4,
    flag: '--aux-weight <x>',
    help: 'auxiliary loss weight (0: no auxiliary head)',
  },
  dropPath: { kind: dropPathKind, default: 0.2, flag: '--drop-path <p>', help: 'maximum drop-path probability' },
  cutout: { kind: nonNegativeInt, default: 16, flag: '--cutout <n>', help: 'cutout length (0: off)' },
  seed: { kind: seedKind, default: 0, flag: '--seed <n>', help: 'random seed' },
  limit: {
    kind: nullable(positiveInt),
    default: null,
    defaultText: 'all',
    flag: '--limit <n>',
    help: 'use only the first N training (and test) images',
  },
  testLimit: {
    kind: nullable(positiveInt),
    default: null,
    defaultText: '--limit',
    flag: '--test-limit <n>',
    help: 'use only the first N test images',
  },
  size: {
    kind: nullable(positiveInt),
    default: null,
    defaultText: 'none',
    flag: '--size <n>',
    help: 'crop size N: stream image folders/lists from disk as N×N crops (training: random-sized crops and flips; test: resize and centre crop)',
  },
};

/** What the lifecycle needs to know about train runs. */
export const TRAIN_RUN: RunKind<TrainConfig> = {
  command: 'train',
  kind: 'train',
  verb: 'trained',
  settings: TRAIN_SETTINGS,
  outputs: ['model.onnx', 'genotype.json', 'cells.json', 'data', 'report.html'],
  memory: ['batch', 'C', 'layers'],
  rescue: 'lr',
};

/**
 * The config of a train run: `given` over the defaults, every value checked,
 * exactly one of genotype and cells (whose C, layers and stem it takes: given
 * ones must agree). Throws a SettingError (one line).
 */
export function trainConfig(given: Partial<TrainConfig>): TrainConfig {
  const c = resolveSettings(TRAIN_SETTINGS, given);
  if ((c.genotype === null) === (c.cells === null)) throw new SettingError('give exactly one of --genotype or --cells');
  if (c.cells) {
    for (const k of ['C', 'layers'] as const)
      if (given[k] !== undefined && given[k] !== c.cells[k])
        throw new SettingError(
          `--${k} ${given[k]} differs from the cells file (${k} ${c.cells[k]}); leave it out with --cells`,
        );
    const stem = c.cells.stem ?? 'cifar';
    if (given.net !== undefined && given.net !== stem)
      throw new SettingError(
        `--net ${given.net} differs from the cells file's stem (${stem}); leave it out with --cells`,
      );
    c.net = stem;
    c.C = c.cells.C;
    c.layers = c.cells.layers;
  }
  return c;
}

/** An error of building the network for the data's image size, as a one-line settings error. */
export function netError(c: TrainConfig, shape: readonly number[], e: unknown): Error {
  if (e instanceof TrainError || e instanceof GenotypeError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  const hint =
    c.net === 'imagenet'
      ? ': --net imagenet is for ImageNet-sized images (e.g. --size 224); use --net cifar for small ones'
      : c.auxWeight > 0
        ? ' (--aux-weight 0 leaves the auxiliary head out)'
        : '';
  return new SettingError(`the --net ${c.net} network cannot be built for ${shape.join('×')} images (${msg})${hint}`);
}
