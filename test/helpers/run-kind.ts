/** A small run kind for the lifecycle tests (test/run-lifecycle.test.ts and its child script). */
import type { RunKind } from '../../train/runtime/run.js';
import {
  nonNegativeNumber,
  nullable,
  numberKind,
  positiveInt,
  positiveNumber,
  type SettingsSpec,
} from '../../train/runtime/settings.js';

export interface ToyConfig {
  batch: number;
  C: number;
  lr: number;
  auxWeight: number;
  dropPath: number;
  limit: number | null;
}

export const TOY_SETTINGS: SettingsSpec<ToyConfig> = {
  batch: { kind: positiveInt, default: 64, flag: '--batch <n>', help: 'batch size' },
  C: { kind: positiveInt, default: 16, flag: '--C <n>', help: 'initial channels' },
  lr: { kind: positiveNumber, default: 0.025, flag: '--lr <x>', help: 'learning rate', resume: 'adjustable' },
  auxWeight: { kind: nonNegativeNumber, default: 0.4, flag: '--aux-weight <x>', help: 'auxiliary loss weight' },
  dropPath: {
    kind: numberKind('a probability in [0, 1)', { min: 0, max: 1, maxOpen: true }),
    default: 0.2,
    flag: '--drop-path <p>',
    help: 'drop-path probability',
  },
  limit: {
    kind: nullable(positiveInt),
    default: null,
    defaultText: 'all',
    flag: '--limit <n>',
    help: 'first N images',
  },
};

export const TOY: RunKind<ToyConfig> = {
  command: 'toy',
  kind: 'toy',
  verb: 'trained',
  settings: TOY_SETTINGS,
  outputs: ['model.onnx'],
  memory: ['batch', 'C'],
  rescue: 'lr',
};
