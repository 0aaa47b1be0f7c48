/**
 * `nas-onnx train`: the evaluation phase — train a discretized network from a
 * genotype, or from an SSWP-NAS cells.json (one architecture per cell), on
 * labels from scratch (or continue with --resume), report
 * train/test accuracy per epoch, write checkpoints and the shipped model.onnx.
 * `--task seg` trains UnNAS's segmentation network instead (train-seg.ts).
 */
import { readFileSync } from 'node:fs';
import { Option, type Command, type OptionValues } from 'commander';
import { loadGenotype } from '../../graph/genotype.js';
import { parseSswpArch, type SswpArch } from '../../graph/nets/sswp.js';
import { CliError } from '../errors.js';
import { trainNetwork } from '../../train/eval/trainer.js';
import { EVAL_NET_DEFAULTS } from '../../train/report/cost.js';
import { epOption, intOption, parsePositiveFloat, seedOption, sizeOption, skipCorruptOption } from '../options.js';
import { skipSummary } from '../../train/data/index.js';
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
    )
    .option('--genotype <name|file>', 'shipped genotype name (e.g. darts_v2) or a genotype JSON file')
    .option(
      '--cells <file>',
      'an SSWP-NAS cells.json instead: every cell its own architecture; C and layers from the file ' +
        '(the SSWP-NAS paper retrains with --batch 128 --epochs 600 --drop-path 0.3 --cutout 16 --aux-weight 0.4)',
    )
    .option('--dataset <spec>', 'data set: fashion-mnist, cifar10:<dir>, cifar100:<dir>, or a path', 'fashion-mnist')
    .addOption(
      new Option('--net <net>', 'network layout').choices(['cifar', 'imagenet']).default(EVAL_NET_DEFAULTS.net),
    )
    .addOption(intOption('--C <n>', 'initial channels', EVAL_NET_DEFAULTS.C))
    .addOption(intOption('--layers <n>', 'cells', EVAL_NET_DEFAULTS.layers))
    .addOption(intOption('--epochs <n>', 'epochs', 1))
    .addOption(intOption('--batch <n>', 'batch size', 64))
    .addOption(
      new Option('--lr <x>', 'initial learning rate (cosine to 0)').argParser(parsePositiveFloat).default(0.025),
    )
    .addOption(
      new Option('--aux-weight <x>', 'auxiliary loss weight (0: no auxiliary head)').argParser(Number).default(0.4),
    )
    .addOption(new Option('--drop-path <p>', 'maximum drop-path probability').argParser(Number).default(0.2))
    .addOption(intOption('--cutout <n>', 'cutout length (0: off)', 16, 0))
    .addOption(intOption('--limit <n>', 'use only the first N training and test images'))
    .addOption(sizeOption())
    .addOption(skipCorruptOption())
    .addOption(intOption('--workers <n>', 'data worker threads', undefined, 0))
    .addOption(intOption('--checkpoint-every <n>', 'checkpoint every N steps too'))
    .addOption(epOption())
    .addOption(seedOption())
    .option('--out <dir>', 'run directory', 'runs/train')
    .option('--resume', 'continue the run in --out from its latest checkpoint')
    .option('--quiet', 'no progress output');
  const readSeg = addSegOptions(cmd);
  cmd.action(async (o: OptionValues) => {
    if (o.task === 'seg') {
      if (o.cells) throw new CliError('--cells trains a classification network: leave it out with --task seg');
      return runSegTrain(cmd, readSeg);
    }
    await trainCls(cmd, o);
  });
}

/** `train --task cls`: a genotype's network, or an SSWP-NAS network from its cells.json. */
async function trainCls(cmd: Command, o: OptionValues): Promise<void> {
  if (!!o.genotype === !!o.cells) throw new CliError('give exactly one of --genotype or --cells');
  const cells = o.cells ? readCells(o.cells) : undefined;
  if (cells) {
    for (const k of ['C', 'layers'] as const)
      if (cmd.getOptionValueSource(k) === 'cli' && o[k] !== cells[k])
        throw new CliError(`--${k} ${o[k]} differs from ${o.cells} (${k} ${cells[k]}); leave it out with --cells`);
    if (o.net !== 'cifar') throw new CliError('--cells builds the CIFAR layout only (--net cifar)');
    o.C = cells.C;
    o.layers = cells.layers;
  }
  const r = await trainNetwork({
    genotype: o.genotype ? loadGenotype(o.genotype) : undefined,
    cells,
    dataset: o.dataset,
    out: o.out,
    net: o.net,
    C: o.C,
    layers: o.layers,
    epochs: o.epochs,
    batch: o.batch,
    lr: o.lr,
    auxWeight: o.auxWeight,
    dropPath: o.dropPath,
    cutout: o.cutout,
    limit: o.limit,
    size: o.size,
    skipCorrupt: !!o.skipCorrupt,
    workers: o.workers,
    checkpointEvery: o.checkpointEvery,
    ep: o.ep,
    seed: o.seed,
    resume: !!o.resume,
    quiet: !!o.quiet,
  });
  const last = r.history[r.history.length - 1];
  process.stdout.write(
    `trained ${r.history.length} epoch(s): test accuracy ${last ? (100 * last.test_acc).toFixed(2) : '?'}%, ` +
      `${r.params.toLocaleString('en-US')} parameters, ${r.secondsPerEpoch.toFixed(1)} s/epoch, step graph ${r.stepNodes} nodes\n` +
      `model: ${r.modelPath}\n`,
  );
  if (r.skipped.count > 0) process.stdout.write(`${skipSummary(r.skipped)}\n`);
}

/** A cells.json file, checked (one clear error line when it is not one). */
function readCells(file: string): SswpArch {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new CliError(`cannot read ${file}`);
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch {
    throw new CliError(`${file} is not JSON`);
  }
  return parseSswpArch(obj, file);
}
