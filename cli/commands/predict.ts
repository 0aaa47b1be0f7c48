/**
 * `nas-onnx predict <model.onnx> <image|folder> [--top 5] [--json]`: what a
 * shipped model says about images. Each image is decoded, resized and
 * normalized as the model's metadata says; the model runs in batches. A
 * classifier gives each image its top-k classes with probabilities (and, for a
 * folder of class sub-folders named like the model's classes, the accuracy
 * against them); a segmentation model writes each image's per-pixel argmax as
 * a class-id PNG under --out and names the classes covering most pixels.
 */
import type { Command } from 'commander';
import { readDeployMeta } from '../../graph/deploy.js';
import { GraphError } from '../../graph/ir.js';
import { listImages } from '../../train/data/images.js';
import { predictImages, segmentImages, type PredictResult, type SegPrediction } from '../../train/eval/predict.js';
import type { EP } from '../../train/runtime/session.js';
import { CliError } from '../errors.js';
import { epOption, intOption } from '../options.js';
import { infoOf, readInputFile } from './info.js';

interface PredictCliOptions {
  top: number;
  batch?: number;
  json: boolean;
  convert: boolean;
  out: string;
  ep: EP;
}

const pct = (t: { label: string; probability: number }): string => `${t.label} ${(100 * t.probability).toFixed(1)}%`;

function formatPredictions(r: PredictResult): string {
  const lines = r.predictions.map((p) => `${p.file}: ${p.top.map(pct).join(', ')}`);
  if (r.accuracy) {
    const { correct, total } = r.accuracy;
    lines.push(`accuracy against the sub-folder names: ${((100 * correct) / total).toFixed(1)}% (${correct}/${total})`);
  }
  return lines.join('\n');
}

function formatMasks(r: SegPrediction[]): string {
  return r.map((p) => `${p.file} → ${p.mask}: ${p.top.map(pct).join(', ')} of the pixels`).join('\n');
}

function modelMeta(model: string): { meta: ReturnType<typeof readDeployMeta>; staticBatch: number | null } {
  const info = infoOf(model);
  const input = info.inputs[0];
  if (!input) throw new CliError(`${model} has no input`);
  const outputs = info.outputs.map((v) => v.name);
  let meta: ReturnType<typeof readDeployMeta>;
  try {
    meta = readDeployMeta(info.metadata, input, outputs);
  } catch (e) {
    if (e instanceof GraphError) throw new CliError(`${model}: ${e.message}`);
    throw e;
  }
  if (meta.task === 'features')
    throw new CliError(
      `${model} is a features model (outputs ${outputs.join(', ')}), not a classifier: fine-tune it on labels first (nas-onnx finetune)`,
    );
  if (!meta.normalized)
    process.stderr.write(`nas-onnx: warning: ${model} records no normalization; pixels are fed as v/255\n`);
  const b0 = input.shape[0];
  return { meta, staticBatch: typeof b0 === 'number' ? b0 : null };
}

export async function predictCommand(
  model: string,
  images: string,
  o: PredictCliOptions,
): Promise<{ task: 'classification'; result: PredictResult } | { task: 'segmentation'; masks: SegPrediction[] }> {
  const { meta, staticBatch } = modelMeta(model);
  const list = await listImages(images);
  const bytes = readInputFile(model, 'model');
  if (meta.task === 'segmentation')
    return {
      task: 'segmentation',
      masks: await segmentImages(bytes, meta, staticBatch, list, { ...o, outDir: o.out }),
    };
  return { task: 'classification', result: await predictImages(bytes, meta, staticBatch, list, o) };
}

export function register(program: Command): void {
  program
    .command('predict')
    .description("run a shipped model on images (decoded and normalized as the model's metadata says)")
    .argument('<model>', '.onnx classifier or segmentation model (model.onnx of train or finetune, or export)')
    .argument('<images>', 'a PNG/JPEG file or a folder of them (class sub-folders: accuracy against their names)')
    .addOption(intOption('--top <k>', 'classes to show per image', 5))
    .addOption(intOption('--batch <n>', 'images per run (default: classifiers 32, segmentation 4)'))
    .option('--out <dir>', 'segmentation: folder for the class-id PNGs (one per image)', 'masks')
    .option(
      '--convert',
      'convert colour images for a gray model (and other channel counts) instead of refusing them',
      false,
    )
    .option('--json', 'print one JSON object (for scripts)', false)
    .addOption(epOption())
    .action(async (model: string, images: string, o: PredictCliOptions) => {
      const r = await predictCommand(model, images, o);
      const text =
        r.task === 'segmentation'
          ? o.json
            ? JSON.stringify({ masks: r.masks })
            : formatMasks(r.masks)
          : o.json
            ? JSON.stringify(r.result)
            : formatPredictions(r.result);
      process.stdout.write(`${text}\n`);
    });
}
