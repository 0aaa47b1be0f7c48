/**
 * `nas-onnx finetune --from RUN --labels-fraction F`: fine-tune an SSWP-NAS
 * network with its concomitant weights on a seeded fraction F of the labels
 * (fresh linear classifier in place of the projection head), beside the same
 * architecture trained from random initialization with the same budget, and
 * report both test accuracies (train/finetune.ts).
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { runFinetune } from '../../train/eval/finetune.js';
import { epOption, intOption, parsePositiveFloat, seedOption, sizeOption, skipCorruptOption } from '../options.js';
import { skipSummary } from '../../train/data/index.js';

function parseFraction(value: string): number {
  const n = Number(value.trim());
  if (value.trim() === '' || !(n > 0 && n <= 1))
    throw new InvalidArgumentError(`expected a fraction in (0, 1], got '${value}'.`);
  return n;
}

export function register(program: Command): void {
  program
    .command('finetune')
    .description(
      'fine-tune an SSWP-NAS network (concomitant weights) on a fraction of the labels, beside random initialization',
    )
    .requiredOption('--from <dir>', 'SSWP search run directory (cells.json, final/)')
    .requiredOption(
      '--labels-fraction <f>',
      'fraction of the training labels to use (seeded, class-stratified)',
      parseFraction,
    )
    .option('--dataset <spec>', 'labelled data set (default: the one searched on)')
    .addOption(intOption('--epochs <n>', 'epochs', 10))
    .addOption(intOption('--batch <n>', 'batch size', 64))
    .addOption(
      new Option('--lr <x>', 'initial learning rate (cosine to 0)').argParser(parsePositiveFloat).default(0.025),
    )
    .addOption(new Option('--weight-decay <x>', 'weight decay').argParser(Number).default(3e-4))
    .addOption(intOption('--cutout <n>', 'cutout length (0: off)', 0, 0))
    .addOption(intOption('--limit <n>', "use only the first N training images (default: the search's --limit)"))
    .addOption(sizeOption())
    .addOption(skipCorruptOption())
    .addOption(intOption('--test-limit <n>', 'use only the first N test images'))
    .addOption(new Option('--init <which>', 'which runs').choices(['both', 'concomitant', 'random']).default('both'))
    .addOption(intOption('--workers <n>', 'data worker threads', undefined, 0))
    .addOption(epOption())
    .addOption(seedOption())
    .option('--out <dir>', 'output directory (default: <from>/finetune-<F>)')
    .option('--json', 'print the result as JSON')
    .option('--quiet', 'no progress output')
    .action(async (o) => {
      const r = await runFinetune({
        from: o.from,
        labelsFraction: o.labelsFraction,
        dataset: o.dataset,
        out: o.out,
        epochs: o.epochs,
        batch: o.batch,
        lr: o.lr,
        weightDecay: o.weightDecay,
        cutout: o.cutout,
        limit: o.limit,
        size: o.size,
        skipCorrupt: !!o.skipCorrupt,
        testLimit: o.testLimit,
        inits: o.init === 'both' ? ['concomitant', 'random'] : [o.init],
        workers: o.workers,
        ep: o.ep,
        seed: o.seed,
        quiet: !!o.quiet,
      });
      if (o.json) {
        process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
        return;
      }
      const lines = r.runs.map(
        (x) =>
          `  ${x.init.padEnd(12)} test accuracy ${(100 * x.testAcc).toFixed(2)}%  (train acc ${(100 * x.trainAcc).toFixed(1)}%, ${x.seconds.toFixed(1)} s)`,
      );
      process.stdout.write(
        `fine-tuned on ${r.labelled} labelled images (${(100 * r.fraction).toFixed(1)}% of ${r.trainImages}), tested on ${r.testImages}:\n${lines.join('\n')}\nwritten to ${r.out}\n`,
      );
      if (r.skipped.count > 0) process.stdout.write(`${skipSummary(r.skipped)}\n`);
    });
}
