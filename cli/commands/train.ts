/**
 * `nas-onnx train`: the evaluation phase — train a discretized network from a
 * genotype on labels from scratch (or continue with --resume), report
 * train/test accuracy per epoch, write checkpoints and the shipped model.onnx.
 */
import { Option, type Command } from 'commander';
import { loadGenotype } from '../../graph/genotype.js';
import { trainNetwork } from '../../train/eval/trainer.js';
import { EVAL_NET_DEFAULTS } from '../../train/report/cost.js';
import { epOption, intOption, parsePositiveFloat, seedOption, sizeOption, skipCorruptOption } from '../options.js';
import { skipSummary } from '../../train/data/index.js';

export function register(program: Command): void {
  program
    .command('train')
    .description('train a network from a genotype on labels (DARTS evaluation phase)')
    .requiredOption('--genotype <name|file>', 'shipped genotype name (e.g. darts_v2) or a genotype JSON file')
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
    .option('--quiet', 'no progress output')
    .action(async (o) => {
      const r = await trainNetwork({
        genotype: loadGenotype(o.genotype),
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
    });
}
