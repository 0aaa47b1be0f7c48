/**
 * `nas-onnx finetune --from RUN --labels-fraction F`: fine-tune an SSWP-NAS
 * network on a seeded fraction F of the labels from its concomitant weights,
 * beside random initialization and the SimCLR two-stage baseline, with the
 * same budget, data order and BN treatment (train/eval/finetune.ts).
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { FINETUNE_DEFAULTS, INITS, runFinetune, type FinetuneOptions, type Init } from '../../train/eval/finetune.js';
import { skipSummary } from '../../train/data/index.js';
import { FINETUNE_SETTINGS, type FinetuneConfig } from '../../train/eval/finetune-config.js';
import { epOption, intOption, seedOption, skipCorruptOption } from '../options.js';
import { addSettings, continueCommand, readSettings } from '../settings.js';

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

/** The settings finetune and sweep share (the training of every arm). */
const TRAINING: (keyof FinetuneConfig & string)[] = [
  'dataset',
  'epochs',
  'batch',
  'lr',
  'lrMin',
  'weightDecay',
  'cutout',
  'auxWeight',
  'dropPath',
  'bn',
  'bnBatches',
  'limit',
  'testLimit',
  'size',
];

/** The training options of finetune and sweep (from the settings table; defaults: the paper's fine-tuning). */
export function addTrainingOptions(cmd: Command): Command {
  addSettings(cmd, FINETUNE_SETTINGS, TRAINING);
  return cmd
    .addOption(skipCorruptOption())
    .addOption(
      intOption('--workers <n>', 'data worker threads (default: none, batches built in the main thread)', undefined, 0),
    )
    .addOption(epOption());
}

/**
 * The FinetuneOptions the training options give: every training setting
 * (defaults filled in; a sweep records them), --lr-min only when given.
 */
export function trainingOptionsOf(
  cmd: Command,
  o: Record<string, unknown>,
): Omit<FinetuneOptions, 'from' | 'labelsFraction'> {
  const given = readSettings(cmd, FINETUNE_SETTINGS)(o);
  const out: Record<string, unknown> = {};
  for (const k of TRAINING) {
    if (k === 'lrMin' && given.lrMin === undefined) continue;
    const v = given[k] !== undefined ? given[k] : FINETUNE_SETTINGS[k].default;
    out[k] = v === null ? undefined : v;
  }
  return {
    ...(out as Partial<FinetuneConfig>),
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
    .option(
      '--out <dir>',
      'run directory (default: <from>/finetune-<F>; one that holds a run needs --resume or --overwrite)',
    )
    .option('--resume', 'continue the run in --out from its newest intact checkpoint (only learning rates may change)')
    .option('--overwrite', 'replace the run that --out holds')
    .option('--json', 'print the result as JSON')
    .option('--quiet', 'no progress output')
    .action(async (o) => {
      const r = await runFinetune({
        ...trainingOptionsOf(cmd, o),
        from: o.from,
        labelsFraction: o.labelsFraction,
        out: o.out,
        inits: o.init,
        seed: o.seed,
        quiet: !!o.quiet,
        resume: !!o.resume,
        overwrite: !!o.overwrite,
        commandLine: continueCommand(cmd),
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
