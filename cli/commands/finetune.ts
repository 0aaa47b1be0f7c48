/**
 * `nas-onnx finetune --from RUN --labels-fraction F`: fine-tune an SSWP-NAS
 * network on a seeded fraction F of the labels from its concomitant weights,
 * beside random initialization and the SimCLR two-stage baseline, with the
 * same budget, data order and BN treatment (train/eval/finetune.ts).
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import {
  BN_TREATMENTS,
  FINETUNE_DEFAULTS,
  INITS,
  runFinetune,
  type FinetuneOptions,
  type Init,
} from '../../train/eval/finetune.js';
import { skipSummary } from '../../train/data/index.js';
import { epOption, intOption, parsePositiveFloat, seedOption, sizeOption, skipCorruptOption } from '../options.js';

export function parseFraction(value: string): number {
  const n = Number(value.trim());
  if (value.trim() === '' || !(n > 0 && n <= 1))
    throw new InvalidArgumentError(`expected a fraction in (0, 1], got '${value}'.`);
  return n;
}

/** A comma list of arms, or `all`. */
export function parseInits(value: string): Init[] {
  const xs = value.trim() === 'all' ? [...INITS] : value.split(',').map((x) => x.trim());
  for (const x of xs)
    if (!INITS.includes(x as Init))
      throw new InvalidArgumentError(`unknown initialization '${x}' (use ${INITS.join(', ')} or all).`);
  if (new Set(xs).size !== xs.length) throw new InvalidArgumentError(`'${value}' names an initialization twice.`);
  return xs as Init[];
}

/** The training options of finetune and sweep (defaults: the paper's fine-tuning from concomitant weights). */
export function addTrainingOptions(cmd: Command): Command {
  const d = FINETUNE_DEFAULTS;
  return cmd
    .option('--dataset <spec>', 'labelled data set (default: the one searched on)')
    .addOption(intOption('--epochs <n>', 'epochs', d.epochs))
    .addOption(intOption('--batch <n>', 'batch size', d.batch))
    .addOption(
      new Option('--lr <x>', 'initial learning rate (cosine to 0)').argParser(parsePositiveFloat).default(d.lr),
    )
    .addOption(new Option('--weight-decay <x>', 'weight decay').argParser(Number).default(d.weightDecay))
    .addOption(intOption('--cutout <n>', 'cutout length (0: off)', d.cutout, 0))
    .addOption(
      new Option('--aux-weight <x>', 'auxiliary loss weight (0: no auxiliary head)')
        .argParser(Number)
        .default(d.auxWeight),
    )
    .addOption(new Option('--drop-path <p>', 'maximum drop-path probability').argParser(Number).default(d.dropPath))
    .addOption(
      new Option(
        '--bn <how>',
        'BN statistics every arm is evaluated with: precise (recomputed for its final weights on the labelled ' +
          'images) or running (every arm starts from 0/1 and tracks them while training)',
      )
        .choices([...BN_TREATMENTS])
        .default(d.bn),
    )
    .addOption(intOption('--bn-batches <n>', 'batches of labelled images for precise BN', d.bnBatches))
    .addOption(intOption('--limit <n>', "use only the first N training images (default: the search's --limit)"))
    .addOption(intOption('--test-limit <n>', 'use only the first N test images'))
    .addOption(sizeOption())
    .addOption(skipCorruptOption())
    .addOption(intOption('--workers <n>', 'data worker threads', undefined, 0))
    .addOption(epOption());
}

/** The FinetuneOptions the training options give. */
export function trainingOptionsOf(o: Record<string, unknown>): Omit<FinetuneOptions, 'from' | 'labelsFraction'> {
  return {
    dataset: o.dataset as string | undefined,
    epochs: o.epochs as number,
    batch: o.batch as number,
    lr: o.lr as number,
    weightDecay: o.weightDecay as number,
    cutout: o.cutout as number,
    auxWeight: o.auxWeight as number,
    dropPath: o.dropPath as number,
    bn: o.bn as FinetuneOptions['bn'],
    bnBatches: o.bnBatches as number,
    limit: o.limit as number | undefined,
    testLimit: o.testLimit as number | undefined,
    size: o.size as number | undefined,
    skipCorrupt: !!o.skipCorrupt,
    workers: o.workers as number | undefined,
    ep: o.ep as FinetuneOptions['ep'],
  };
}

export function register(program: Command): void {
  const cmd = program
    .command('finetune')
    .description(
      'fine-tune an SSWP-NAS network on a fraction of the labels from its concomitant weights, random ' +
        'initialization or a SimCLR pre-training of the same architecture',
    )
    .requiredOption('--from <dir>', 'SSWP search run directory (cells.json, final/)')
    .requiredOption(
      '--labels-fraction <f>',
      'fraction of the training labels to use (seeded, class-stratified)',
      parseFraction,
    )
    .addOption(
      new Option(
        '--init <list>',
        'initializations, comma-separated: concomitant, random, simclr (the architecture pre-trained with the ' +
          "search's objective and budget from random init, in <from>/simclr; run first when missing), or all",
      )
        .argParser(parseInits)
        .default(FINETUNE_DEFAULTS.inits, FINETUNE_DEFAULTS.inits.join(',')),
    );
  addTrainingOptions(cmd)
    .addOption(seedOption())
    .option('--out <dir>', 'output directory (default: <from>/finetune-<F>)')
    .option('--json', 'print the result as JSON')
    .option('--quiet', 'no progress output')
    .action(async (o) => {
      const r = await runFinetune({
        ...trainingOptionsOf(o),
        from: o.from,
        labelsFraction: o.labelsFraction,
        out: o.out,
        inits: o.init,
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
        `fine-tuned on ${r.labelled} labelled images (${(100 * r.fraction).toFixed(1)}% of ${r.trainImages}), tested on ${r.testImages} (BN: ${r.runs[0]?.bn.mode}):\n${lines.join('\n')}\nwritten to ${r.out}\n`,
      );
      if (r.skipped.count > 0) process.stdout.write(`${skipSummary(r.skipped)}\n`);
    });
}
