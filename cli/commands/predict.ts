/**
 * `nas-onnx predict <model.onnx> <image|folder> [--top 5] [--json]`: what a
 * shipped classifier says about images. Each image is decoded, resized and
 * normalized as the model's metadata says; the model runs in batches; each
 * image gets its top-k classes with probabilities (and, for a folder of class
 * sub-folders named like the model's classes, the accuracy against them).
 */
import type { Command } from 'commander';
import { readDeployMeta } from '../../graph/deploy.js';
import { GraphError } from '../../graph/ir.js';
import { listImages } from '../../train/data/images.js';
import { predictImages, type PredictResult } from '../../train/eval/predict.js';
import type { EP } from '../../train/runtime/session.js';
import { CliError } from '../errors.js';
import { epOption, intOption } from '../options.js';
import { infoOf, readInputFile } from './info.js';

interface PredictCliOptions {
  top: number;
  batch: number;
  json: boolean;
  convert: boolean;
  ep: EP;
}

function formatPredictions(r: PredictResult): string {
  const lines = r.predictions.map(
    (p) => `${p.file}: ${p.top.map((t) => `${t.label} ${(100 * t.probability).toFixed(1)}%`).join(', ')}`,
  );
  if (r.accuracy) {
    const { correct, total } = r.accuracy;
    lines.push(`accuracy against the sub-folder names: ${((100 * correct) / total).toFixed(1)}% (${correct}/${total})`);
  }
  return lines.join('\n');
}

export async function predictCommand(model: string, images: string, o: PredictCliOptions): Promise<PredictResult> {
  const info = infoOf(model);
  const input = info.inputs[0];
  if (!input) throw new CliError(`${model} has no input`);
  let meta: ReturnType<typeof readDeployMeta>;
  try {
    meta = readDeployMeta(
      info.metadata,
      input,
      info.outputs.map((v) => v.name),
    );
  } catch (e) {
    if (e instanceof GraphError) throw new CliError(`${model}: ${e.message}`);
    throw e;
  }
  if (meta.task !== 'classification')
    throw new CliError(
      `${model} is a ${meta.task} model (outputs ${info.outputs.map((v) => v.name).join(', ')}), not a classifier: fine-tune it on labels first (nas-onnx finetune)`,
    );
  if (!meta.normalized)
    process.stderr.write(`nas-onnx: warning: ${model} records no normalization; pixels are fed as v/255\n`);
  const list = await listImages(images);
  const b0 = input.shape[0];
  return predictImages(readInputFile(model, 'model'), meta, typeof b0 === 'number' ? b0 : null, list, o);
}

export function register(program: Command): void {
  program
    .command('predict')
    .description("classify images with a shipped model (decoded and normalized as the model's metadata says)")
    .argument('<model>', '.onnx classifier (model.onnx of train or finetune, or export)')
    .argument('<images>', 'a PNG/JPEG file or a folder of them (class sub-folders: accuracy against their names)')
    .addOption(intOption('--top <k>', 'classes to show per image', 5))
    .addOption(intOption('--batch <n>', 'images per run', 32))
    .option('--convert', "convert gray or colour images to the model's channel count instead of refusing them", false)
    .option('--json', 'print one JSON object (for scripts)', false)
    .addOption(epOption())
    .action(async (model: string, images: string, o: PredictCliOptions) => {
      const r = await predictCommand(model, images, o);
      process.stdout.write(`${o.json ? JSON.stringify(r) : formatPredictions(r)}\n`);
    });
}
