/** Shared settings of the study tests (test/study-runner.test.ts, test/study-queue.test.ts). */
import { defaultStudyConfig, type StudyConfig } from '../../train/study/runner.js';

/**
 * The tiny study: DARTS C=4, 3 cells, 1 epoch on the first 200 Fashion-MNIST
 * training images (batch 32), evaluated on the first 100 test images.
 */
export const TINY: StudyConfig = {
  ...defaultStudyConfig('darts'),
  limit: 200,
  testLimit: 100,
  batch: 32,
  epochs: 1,
  C: 4,
  layers: 3,
  preciseBn: 64,
};

/** The same study as `nas-onnx study` options (with --pool unnas --archs 3 --objectives rot,cls). */
export const TINY_ARGS = [
  '--space',
  'darts',
  '--pool',
  'unnas',
  '--archs',
  '3',
  '--objectives',
  'rot,cls',
  '--seeds',
  '1',
  '--dataset',
  'fashion-mnist',
  '--limit',
  '200',
  '--test-limit',
  '100',
  '--batch',
  '32',
  '--epochs',
  '1',
  '--C',
  '4',
  '--layers',
  '3',
  '--precise-bn',
  '64',
];
