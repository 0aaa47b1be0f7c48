/**
 * `nas-onnx train`: the evaluation phase — train a discretized network from a
 * genotype, or from an SSWP-NAS cells.json (one architecture per cell), on
 * labels from scratch (or continue with --resume), report
 * train/test accuracy per epoch, write checkpoints and the shipped model.onnx.
 * The options come from the settings table (train/eval/train-config.ts).
 * `--task seg` trains UnNAS's segmentation network instead (train-seg.ts).
 */
import { type Command, Option, type OptionValues } from 'commander';
import { skipSummary } from '../../train/data/index.js';
import { TRAIN_SETTINGS, type TrainConfig } from '../../train/eval/train-config.js';
import { trainNetwork } from '../../train/eval/trainer.js';
import { CliError } from '../errors.js';
import { epOption, intOption, noSpinOption, runDirOptions, skipCorruptOption, threadsOption } from '../options.js';
import { addSettings, continueCommand } from '../settings.js';
import { addSegOptions, runSegTrain } from './train-seg.js';

export function register(program: Command): void {
  const cmd = program
    .command('train')
    .description('train a network from a genotype or per-cell cells on labels (DARTS evaluation phase)')
    .addOption(
      new Option(
        '--task <task>',
        'cls: image classes; seg: semantic segmentation (UnNAS Cityscapes: --data, ASPP network, mIoU; defaults --C 82 --layers 12 --batch 64 --epochs 2700 --lr 0.1)',
      )
        .choices(['cls', 'seg'])
        .default('cls'),
    );
  const settings = addSettings(cmd, TRAIN_SETTINGS);
  cmd
    .addOption(skipCorruptOption())
    .addOption(intOption('--workers <n>', 'data worker threads (default: cores − 1, at most 4)', undefined, 0))
    .addOption(intOption('--checkpoint-every <n>', 'checkpoint every N steps too (default: epoch ends only)'))
    .addOption(epOption())
    .addOption(threadsOption())
    .addOption(noSpinOption());
  runDirOptions(cmd, 'runs/train');
  cmd.option('--no-report', 'do not write report.html at the end');
  const readSeg = addSegOptions(cmd);
  cmd.action(async (o: OptionValues) => {
    if (o.task === 'seg') {
      if (o.cells) throw new CliError('--cells trains a classification network: leave it out with --task seg');
      return runSegTrain(cmd, readSeg);
    }
    await trainCls(cmd, o, settings(o));
  });
}

/** `train --task cls`: a genotype's network, or an SSWP-NAS network from its cells.json. */
async function trainCls(cmd: Command, o: OptionValues, settings: Partial<TrainConfig>): Promise<void> {
  const r = await trainNetwork({
    ...settings,
    out: o.out,
    skipCorrupt: !!o.skipCorrupt,
    workers: o.workers,
    checkpointEvery: o.checkpointEvery,
    ep: o.ep,
    threads: o.threads,
    spinning: o.spin !== false,
    resume: !!o.resume,
    overwrite: !!o.overwrite,
    quiet: !!o.quiet,
    commandLine: continueCommand(cmd),
    report: o.report !== false,
  });
  const last = r.history[r.history.length - 1];
  process.stdout.write(
    `trained ${r.history.length} epoch(s): test accuracy ${last ? (100 * last.test_acc).toFixed(2) : '?'}%, ` +
      `${r.params.toLocaleString('en-US')} parameters, ${r.secondsPerEpoch.toFixed(1)} s/epoch, step graph ${r.stepNodes} nodes\n` +
      `model: ${r.modelPath}${o.report !== false ? `, report: ${o.out}/report.html` : ''}\n`,
  );
  if (r.skipped.count > 0) process.stdout.write(`${skipSummary(r.skipped)}\n`);
}
