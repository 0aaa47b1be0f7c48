/**
 * The settings of an SSWP-NAS search (`nas-onnx search --method sswp`) in one
 * table: defaults (the paper's, Table 5, where it gives them, else its public
 * release's), checks, --help texts, and what a --resume may change (the
 * learning rates). search.ts reads its settings from an SswpConfig only.
 */
import type { StemKind } from '../../../graph/nets/darts.js';
import type { CellOps } from '../../../graph/nets/sswp.js';
import type { Objective } from '../../../graph/nets/tasks.js';
import type { RunKind } from '../../runtime/run.js';
import {
  boolKind,
  choiceKind,
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
} from '../../runtime/settings.js';
import { objectiveKind } from '../darts-config.js';
import { PRUNE_RULES, type PruneRule } from './prune.js';
import { SAMPLING_MODES, type SamplingMode } from './sampler.js';
import { makeSchedule, PRUNE_MODES, parseSplit, type PruneMode } from './schedule.js';

/** The settings that define a search (recorded in checkpoints and config.json; a resume must match them). */
export interface SswpConfig {
  method: 'sswp';
  objective: Objective;
  data: string;
  epochs: number;
  /** Source images per batch (SimCLR: 2 views each). */
  batch: number;
  /** Initial channels (null: the stem's default, SSWP_NETWORKS). */
  C: number | null;
  /** Cells (null: the stem's default, SSWP_NETWORKS). */
  layers: number | null;
  seed: number;
  limit: number | null;
  /** Crop size of a streamed image set (null: the images' own size). */
  size: number | null;
  /** The stem asked for (null: the default for the images' size). */
  stem: StemKind | null;
  prune: PruneMode;
  pruneRule: PruneRule;
  /** A fixed architecture trained without search (the two-stage baseline's pre-training), else null. */
  fixedCells: CellOps[] | null;
  /** Phase fractions (fpp/bpp: 3, none: 2; null: the mode's default). */
  split: number[] | null;
  sampling: SamplingMode;
  opDropout: number;
  poolDropout: number;
  affine: boolean;
  lr: number;
  lrMin: number;
  momentum: number;
  weightDecay: number;
  clip: number;
  archLr: number;
  archBeta1: number;
  archBeta2: number;
  archWeightDecay: number;
  temperature: number;
  projectionDim: number;
}

/**
 * Defaults: the paper's (Table 5) where it gives them, else its public
 * release's: SimCLR temperature 0.07 (the paper gives none); op dropout
 * redraws skip_connect with probability 0.2 and pools with 0, in weight steps
 * after warm-up only (the paper's §3.2 names all parameter-free ops, its
 * Table 3c and the release skip_connect only). `bnBatches` is not a setting
 * of the search: it only shapes the final BN statistics.
 */
export const SSWP_DEFAULTS = {
  objective: 'simclr',
  epochs: 300,
  batch: 96,
  prune: 'fpp',
  pruneRule: 'op-per-edge',
  sampling: 'two-path',
  opDropout: 0.2,
  poolDropout: 0,
  affine: true,
  lr: 0.025,
  lrMin: 0,
  momentum: 0.9,
  weightDecay: 4e-5,
  clip: 5,
  archLr: 1e-3,
  archBeta1: 0,
  archBeta2: 0.99,
  archWeightDecay: 0,
  temperature: 0.07,
  projectionDim: 128,
  bnBatches: 20,
} as const satisfies Partial<SswpConfig> & { bnBatches: number };

/** The full-size networks of the paper: CIFAR (its stem) 20 cells of 36 channels, ImageNet 14 cells of 48. */
export const SSWP_NETWORKS: Record<StemKind, { C: number; layers: number }> = {
  cifar: { C: 36, layers: 20 },
  imagenet: { C: 48, layers: 14 },
};

/** The network a search builds: the settings given, else its stem's full-size network. */
export function sswpNetworkOf(cfg: Pick<SswpConfig, 'C' | 'layers'>, stem: StemKind): { C: number; layers: number } {
  const d = SSWP_NETWORKS[stem];
  return { C: cfg.C ?? d.C, layers: cfg.layers ?? d.layers };
}

const splitKind: ValueKind<number[] | null> = {
  what: 'phase fractions like 0.2,0.4,0.4',
  parse: (t) => parseSplit(t),
  ok: (v): v is number[] | null => v === null || (Array.isArray(v) && v.every((x) => Number.isFinite(x))),
};

const cellsKind: ValueKind<CellOps[] | null> = {
  what: 'one cell per layer',
  parse: (t) => JSON.parse(t),
  ok: (v): v is CellOps[] | null => v === null || Array.isArray(v),
};

const d = SSWP_DEFAULTS;
const lr = { kind: positiveNumber, resume: 'adjustable' } as const;
const sswp = (help: string): string => `sswp: ${help}`;

export const SSWP_SETTINGS: SettingsSpec<SswpConfig> = {
  method: { kind: choiceKind(['sswp'] as const), default: 'sswp', flag: '', help: 'search method' },
  objective: { kind: objectiveKind, default: d.objective, flag: '--objective <task>', help: 'the search objective' },
  data: { kind: textKind, default: undefined, flag: '', help: 'images' },
  epochs: { kind: positiveInt, default: d.epochs, flag: '--epochs <n>', help: 'epochs' },
  batch: { kind: positiveInt, default: d.batch, flag: '--batch <n>', help: 'images per batch' },
  C: {
    kind: nullable(positiveInt),
    default: null,
    defaultText: '36 with the CIFAR stem, 48 with the ImageNet stem',
    flag: '--C <n>',
    help: 'initial channels',
  },
  layers: {
    kind: nullable(positiveInt),
    default: null,
    defaultText: '20 with the CIFAR stem, 14 with the ImageNet stem',
    flag: '--layers <n>',
    help: 'cells',
  },
  seed: { kind: seedKind, default: 0, flag: '--seed <n>', help: 'random seed' },
  limit: { kind: nullable(positiveInt), default: null, flag: '--limit <n>', help: 'use only the first N images' },
  size: { kind: nullable(positiveInt), default: null, flag: '--size <n>', help: 'crop size of streamed images' },
  stem: {
    kind: nullable(choiceKind(['cifar', 'imagenet'] as const)),
    default: null,
    flag: '--stem <stem>',
    help: 'network stem',
  },
  prune: {
    kind: choiceKind(PRUNE_MODES),
    default: d.prune,
    flag: '--prune <mode>',
    help: sswp('progressive pruning from the input side (fpp), the output side (bpp), or none (all at the end)'),
  },
  pruneRule: {
    kind: choiceKind(PRUNE_RULES),
    default: d.pruneRule,
    flag: '--prune-rule <rule>',
    help: sswp(
      "what a pruned cell keeps: op-per-edge (the paper's: the best op on each of the 14 edges; the final cell by " +
        "DARTS's rule at the end) or two-per-node (DARTS's final cell at once)",
    ),
  },
  fixedCells: { kind: cellsKind, default: null, flag: '', help: 'a fixed architecture (no search)' },
  split: {
    kind: splitKind,
    default: null,
    defaultText: '0.2,0.4,0.4; with --prune none: 0.2,0.8',
    flag: '--fpp-split <w,b,p>',
    help: sswp('phase fractions warm-up,bilevel,prune (with --prune none: warm-up,bilevel)'),
  },
  sampling: {
    kind: choiceKind(SAMPLING_MODES),
    default: d.sampling,
    flag: '--sampling <mode>',
    help: sswp('path sampling'),
  },
  opDropout: {
    kind: probability,
    default: d.opDropout,
    flag: '--op-dropout <p>',
    help: sswp(
      "skip_connect dropout in weight steps after warm-up, never in α steps (the release and the paper's " +
        'Table 3c; its §3.2 names all parameter-free ops: add --pool-dropout)',
    ),
  },
  poolDropout: {
    kind: probability,
    default: d.poolDropout,
    flag: '--pool-dropout <p>',
    help: sswp('pooling dropout in weight steps after warm-up'),
  },
  affine: {
    kind: boolKind,
    default: d.affine,
    flag: '--no-bn-affine',
    help: sswp('search with plain (non-affine) BN in the ops; the final network gets γ = 1, β = 0'),
  },
  lr: { ...lr, default: d.lr, flag: '--lr <x>', help: 'weight learning rate' },
  lrMin: { ...lr, kind: nonNegativeNumber, default: d.lrMin, flag: '--lr-min <x>', help: 'final weight learning rate' },
  momentum: { kind: probability, default: d.momentum, flag: '', help: 'SGD momentum' },
  weightDecay: { kind: nonNegativeNumber, default: d.weightDecay, flag: '', help: 'weight decay' },
  clip: { kind: positiveNumber, default: d.clip, flag: '', help: 'gradient norm clipping' },
  archLr: { ...lr, default: d.archLr, flag: '--arch-lr <x>', help: 'α learning rate (Adam)' },
  archBeta1: { kind: probability, default: d.archBeta1, flag: '', help: 'α Adam β1' },
  archBeta2: { kind: probability, default: d.archBeta2, flag: '', help: 'α Adam β2' },
  archWeightDecay: { kind: nonNegativeNumber, default: d.archWeightDecay, flag: '', help: 'α weight decay' },
  temperature: {
    kind: positiveNumber,
    default: d.temperature,
    flag: '--temperature <t>',
    help: sswp('SimCLR temperature (the paper gives none; its release uses 0.07)'),
  },
  projectionDim: { kind: positiveInt, default: d.projectionDim, flag: '', help: 'SimCLR projection size' },
};

/** What the lifecycle needs to know about SSWP search runs. */
export const SSWP_RUN: RunKind<SswpConfig> = {
  command: 'search',
  kind: 'sswp-search',
  verb: 'searched',
  settings: SSWP_SETTINGS,
  outputs: ['cells.json', 'cells.svg', 'model.onnx', 'final', 'report.html', 'data'],
  memory: ['batch', 'C', 'layers'],
  rescue: 'lr',
};

/** The config of an SSWP search: `o` over the defaults, every value checked (one-line SettingError). */
export function sswpConfig(o: Partial<SswpConfig>): SswpConfig {
  const c = resolveSettings(SSWP_SETTINGS, o);
  if (c.fixedCells && c.layers !== null && c.fixedCells.length !== c.layers)
    throw new SettingError(`${c.fixedCells.length} fixed cells for ${c.layers} layers`);
  if (c.objective === 'seg') throw new SettingError('--objective seg searches with --method darts');
  // settings errors before any work
  makeSchedule({
    epochs: c.epochs,
    stepsPerEpoch: 1,
    layers: c.layers ?? 1,
    prune: c.prune,
    split: c.split ?? undefined,
  });
  return c;
}
