/**
 * The settings of a DARTS search (`nas-onnx search`, UnNAS) in one table:
 * defaults (DARTS's; the seg objective's are UnNAS's Cityscapes search),
 * checks, --help texts, and what a --resume may change (the learning rates).
 * darts.ts reads its settings from a DartsSearchConfig only; the CLI
 * overrides fields of it.
 */
import { type OpName, PRIMITIVES } from '../../graph/genotype.js';
import type { StemKind } from '../../graph/nets/darts.js';
import { OBJECTIVES, type Objective } from '../../graph/nets/tasks.js';
import type { RunKind } from '../runtime/run.js';
import {
  choiceKind,
  nonNegativeInt,
  nonNegativeNumber,
  nullable,
  positiveInt,
  positiveNumber,
  probability,
  resolveSettings,
  SettingError,
  type SettingsSpec,
  seedKind,
  textKind,
  type ValueKind,
} from '../runtime/settings.js';

export interface DartsSearchConfig {
  objective: Objective;
  /** Dataset name or path (train/data loadDataset spec). */
  data: string;
  epochs: number;
  batch: number;
  C: number;
  layers: number;
  order: 1 | 2;
  seed: number;
  limit: number | null;
  /** Crop size of a streamed image set (null: the images' own size). */
  size: number | null;
  /** Objective seg: the classes of the label maps (null otherwise). */
  classes: number | null;
  /** The stem asked for (null: the default for the images' size). */
  stem: StemKind | null;
  lr: number;
  lrMin: number;
  momentum: number;
  weightDecay: number;
  clip: number;
  archLr: number;
  archBeta1: number;
  archBeta2: number;
  archWeightDecay: number;
  primitives: readonly OpName[];
  /** P-DARTS guard: normal cells derived with at most this many skip_connects (null: no cap). */
  maxSkip: number | null;
  /** DARTS+ guard: the search ends once the derived normal cell has more skip_connects (null: off). */
  earlyStopSkip: number | null;
}

/** Objective names as the command line takes them. */
export const OBJECTIVE_ALIASES: Record<string, Objective> = {
  rot: 'rot',
  rotation: 'rot',
  color: 'col',
  col: 'col',
  colorization: 'col',
  jigsaw: 'jig',
  jig: 'jig',
  cls: 'cls',
  supervised: 'cls',
  simclr: 'simclr',
  seg: 'seg',
  segmentation: 'seg',
};

export const objectiveKind: ValueKind<Objective> = {
  what: 'rot, color, jigsaw, cls, simclr or seg',
  parse: (t) => OBJECTIVE_ALIASES[t.trim().toLowerCase()] ?? t,
  ok: (v): v is Objective => OBJECTIVES.includes(v as Objective),
};

const orderKind: ValueKind<1 | 2> = {
  what: '1 or 2',
  parse: (t) => Number(t),
  ok: (v): v is 1 | 2 => v === 1 || v === 2,
};

const primitivesKind: ValueKind<readonly OpName[]> = {
  what: 'a list of DARTS operations',
  parse: (t) => t.split(','),
  ok: (v): v is readonly OpName[] =>
    Array.isArray(v) && v.length > 0 && v.every((p) => (PRIMITIVES as readonly string[]).includes(p)),
};

const lr = { kind: positiveNumber, resume: 'adjustable' } as const;

export const DARTS_SEARCH_SETTINGS: SettingsSpec<DartsSearchConfig> = {
  objective: { kind: objectiveKind, default: undefined, flag: '--objective <task>', help: 'the search objective' },
  data: { kind: textKind, default: undefined, flag: '', help: 'images' },
  epochs: { kind: positiveInt, default: 50, flag: '--epochs <n>', help: 'epochs' },
  batch: { kind: positiveInt, default: 64, flag: '--batch <n>', help: 'images per batch' },
  C: { kind: positiveInt, default: 16, flag: '--C <n>', help: 'initial channels' },
  layers: { kind: positiveInt, default: 8, flag: '--layers <n>', help: 'cells' },
  order: { kind: orderKind, default: 1, flag: '--order <n>', help: 'darts: order of the α gradient (1 or 2)' },
  seed: { kind: seedKind, default: 0, flag: '--seed <n>', help: 'random seed' },
  limit: {
    kind: nullable(positiveInt),
    default: null,
    defaultText: 'all',
    flag: '--limit <n>',
    help: 'use only the first N images',
  },
  size: {
    kind: nullable(positiveInt),
    default: null,
    defaultText: 'none',
    flag: '--size <n>',
    help: 'crop size N: stream image folders/lists from disk as N×N crops',
  },
  classes: {
    kind: nullable(positiveInt),
    default: null,
    defaultText: '19',
    flag: '--classes <n>',
    help: 'seg: classes of the label maps (ids 0..n-1, 255 ignored)',
  },
  stem: {
    kind: nullable(choiceKind(['cifar', 'imagenet'] as const)),
    default: null,
    defaultText: 'imagenet for crops of 64 px or more, else cifar',
    flag: '--stem <stem>',
    help: 'network stem: cifar (3×3 conv) or imagenet (three stride-2 convs)',
  },
  lr: { ...lr, default: 0.025, flag: '--lr <x>', help: 'weight learning rate, cosine per epoch to --lr-min' },
  lrMin: { ...lr, kind: nonNegativeNumber, default: 0.001, flag: '--lr-min <x>', help: 'final weight learning rate' },
  momentum: { kind: probability, default: 0.9, flag: '', help: 'SGD momentum' },
  weightDecay: { kind: nonNegativeNumber, default: 3e-4, flag: '', help: 'weight decay' },
  clip: { kind: positiveNumber, default: 5, flag: '', help: 'gradient norm clipping' },
  archLr: { ...lr, default: 3e-4, flag: '--arch-lr <x>', help: 'α learning rate (Adam)' },
  archBeta1: { kind: probability, default: 0.5, flag: '', help: 'α Adam β1' },
  archBeta2: { kind: probability, default: 0.999, flag: '', help: 'α Adam β2' },
  archWeightDecay: { kind: nonNegativeNumber, default: 1e-3, flag: '', help: 'α weight decay' },
  primitives: { kind: primitivesKind, default: PRIMITIVES, flag: '', help: 'candidate operations' },
  maxSkip: {
    kind: nullable(nonNegativeInt),
    default: null,
    defaultText: 'no cap',
    flag: '--max-skip <k>',
    help: 'darts (P-DARTS guard): derive normal cells with at most k skip_connects',
  },
  earlyStopSkip: {
    kind: nullable(nonNegativeInt),
    default: null,
    defaultText: 'off',
    flag: '--early-stop-skip <k>',
    help: 'darts (DARTS+ guard): end the search once the derived normal cell has more than k skip_connects',
  },
};

/** The seg objective's defaults: UnNAS's Cityscapes search (12 cells, batch 32, 321 crops, lr 0.1, 400 epochs). */
export const SEG_SEARCH_DEFAULTS = { epochs: 400, batch: 32, layers: 12, lr: 0.1, classes: 19 } as const;

/** UnNAS's crop side of the seg search. */
export const SEG_SEARCH_CROP = 321;

/** What the lifecycle needs to know about DARTS search runs. */
export const DARTS_RUN: RunKind<DartsSearchConfig> = {
  command: 'search',
  kind: 'search',
  verb: 'searched',
  settings: DARTS_SEARCH_SETTINGS,
  outputs: ['genotype.json', 'genotype.svg', 'report.html', 'data'],
  memory: ['batch', 'C', 'layers'],
  rescue: 'lr',
};

/** The keys of `o` that are set. */
function given<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * The config of a DARTS search: `o` over the defaults (the seg objective's
 * where they differ), every value checked. Throws a SettingError (one line).
 */
export function dartsSearchConfig(o: Partial<DartsSearchConfig>): DartsSearchConfig {
  const seg = o.objective === 'seg';
  const c = resolveSettings(DARTS_SEARCH_SETTINGS, seg ? { ...SEG_SEARCH_DEFAULTS, ...given(o) } : o);
  if (seg && c.batch < 2)
    // BN normalizes the ASPP image-pool branch over the batch alone: one image would make it a constant
    throw new SettingError(`--objective seg needs --batch 2 or more, got ${c.batch}`);
  if (!seg && c.classes !== null) throw new SettingError('--classes is for --objective seg');
  return c;
}
