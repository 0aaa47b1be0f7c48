/**
 * Data side of nas-onnx: dataset readers, splits, augmentations, pretext-task
 * batch builders and the worker-pool batch loader. See the individual modules
 * for details; this module only re-exports their public API.
 */
export { DataError } from './errors.js';
export { findRepoRoot, modelDataPath, repoPath } from './paths.js';
export {
  computeMeanStd,
  dartsSplit,
  type DataSource,
  type Dataset,
  limitDataset,
  materialize,
  normalizationOf,
  splitTrainVal,
  type Subset,
  subset,
  toSharedImages,
  validateDataset,
} from './dataset.js';
export {
  type DataFormat,
  detectFormat,
  FASHION_MNIST_DIR,
  type FolderOptions,
  KNOWN_STATS,
  loadDataset,
  type LoadOptions,
  parseIdx,
  readCifarDir,
  readCifarFiles,
  readIdxDataset,
  readIdxFile,
  readIdxPath,
  readImageFolder,
  type ReadOptions,
  type SplitName,
} from './readers.js';
export { AbQuantizer, abPoints, abQuantizer, labToRgb, nearestAbBrute, rgbToLab } from './color.js';
export {
  AUG_STREAM,
  type Batch,
  type BatchJob,
  batchRng,
  buildBatch,
  invertPermutation,
  jigsawPermutations,
  type PretextTask,
  resolveTask,
  SHUFFLE_STREAM,
  type SimclrOptions,
  TASK_NAMES,
  type TargetKind,
  type TaskName,
  type TaskOptions,
} from './pretext.js';
export {
  DataLoader,
  DataPool,
  type DataPoolOptions,
  defaultWorkers,
  type EpochOptions,
  type LoaderOptions,
  resolveWorkerFile,
  type SkipReport,
  skipReport,
  skipSummary,
} from './pool.js';
export {
  buildIndex,
  type FileIndex,
  type IndexLayout,
  loadIndex,
  openIndex,
  type PathTable,
  pathAt,
  relativePathAt,
  saveIndex,
} from './file-index.js';
export {
  type CropGeometry,
  drawGeometry,
  GEOMETRY_DEFAULTS,
  type GeometryKind,
  type GeometrySettings,
  lightingOffsets,
  randomScaleCrop,
  randomSizedCrop,
  resampleBilinear,
  resampleNearest,
  resizeCenterCrop,
  scaleGeometry,
} from './geometry.js';
export {
  buildStreamBatch,
  cutBatch,
  type ImageStream,
  openImageStream,
  runDataDir,
  SAMPLE_STREAM,
  STREAM_DEFAULTS,
  type StreamJob,
  type StreamOptions,
} from './stream.js';
export { openSegTrainSet, type SegFrame, SegFrames, type SegSetOptions } from './seg.js';
export {
  CITYSCAPES_CLASSES,
  checkLabels,
  IGNORE,
  type LabelMapping,
  labelLut,
  mapLabels,
  paddedSide,
} from './seg-labels.js';
