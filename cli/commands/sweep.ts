/**
 * `nas-onnx sweep --from RUN`: the label-fraction sweep of SSWP-NAS — fine-tune
 * the searched architecture at each label fraction, with each seed, from each
 * initialization, and write one table and one chart (train/study/sweep.ts).
 * Resumable: run the same command again to finish an interrupted sweep.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { PAPER_FRACTIONS, runSweep, sweepTable } from '../../train/study/sweep.js';
import { addTrainingOptions, parseFraction, parseInits, trainingOptionsOf } from './finetune.js';
import { parseSeed } from '../options.js';

function parseList<T>(parse: (s: string) => T): (value: string) => T[] {
  return (value) => {
    const xs = value.split(',').map((x) => parse(x.trim()));
    if (!xs.length) throw new InvalidArgumentError(`expected a comma-separated list, got '${value}'.`);
    return xs;
  };
}

export function register(program: Command): void {
  const cmd = program
    .command('sweep')
    .description(
      'fine-tune an SSWP-NAS network at several label fractions and seeds from each initialization (concomitant, ' +
        'random, simclr): one table and one chart; resumable',
    )
    .requiredOption('--from <dir>', 'SSWP search run directory (cells.json, final/)')
    .requiredOption('--out <dir>', 'sweep directory (run the same command again to resume)')
    .option(
      '--fractions <list>',
      `label fractions (default: the paper's ${PAPER_FRACTIONS.join(',')})`,
      parseList(parseFraction),
    )
    .option('--seeds <list>', 'seeds (default 0,1,2)', parseList(parseSeed))
    .option('--inits <list>', 'initializations (default all: concomitant,random,simclr)', parseInits);
  addTrainingOptions(cmd)
    .option('--json', 'print the summary as JSON')
    .option('--quiet', 'no progress output')
    .action(async (o) => {
      const { ep, workers, ...run } = trainingOptionsOf(cmd, o);
      const s = await runSweep({
        from: o.from,
        out: o.out,
        fractions: o.fractions,
        seeds: o.seeds,
        inits: o.inits,
        training: run,
        ep,
        workers,
        quiet: !!o.quiet,
      });
      if (o.json) {
        process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
        return;
      }
      process.stdout.write(
        `test accuracy (%), mean ± std over seeds ${s.seeds.join(',')}:\n${sweepTable(s)}` +
          `${s.ranNow} arm(s) run now in ${s.wallSeconds.toFixed(0)} s; all arms ${s.armSeconds.toFixed(0)} s\n` +
          `written to ${o.out}/table.md, accuracy.svg, summary.json\n`,
      );
    });
}
