/**
 * `nas-onnx derive`: the genotype of a search checkpoint (DARTS's rule:
 * top-2 incoming edges per node, strongest non-`none` op), as JSON and SVG.
 */
import type { Command } from 'commander';
import { join } from 'node:path';
import { deriveGenotype, genotypeJson } from '../../graph/genotype.js';
import { loadCheckpoint } from '../../train/runtime/checkpoint.js';
import { writeFileAtomic } from '../../train/runtime/fsutil.js';
import { genotypeSvg } from '../../train/report/genotype-svg.js';
import { CliError } from '../errors.js';

export function register(program: Command): void {
  program
    .command('derive')
    .description('derive the genotype from a search run or checkpoint')
    .requiredOption('--from <dir>', 'search run directory or checkpoint directory')
    .option('--out <file>', 'genotype JSON to write (an SVG is written beside it)')
    .option('--name <name>', 'name stored in the genotype', 'derived')
    .action((o) => {
      const c = loadCheckpoint(o.from);
      const an = c.tensors.get('param:alpha_normal');
      const ar = c.tensors.get('param:alpha_reduce');
      if (!an || !ar)
        throw new CliError(`${o.from}: the checkpoint holds no alpha_normal/alpha_reduce (not a DARTS search run)`);
      const cfg = (c.meta.config ?? {}) as { primitives?: string[] };
      const g = { name: o.name as string, ...deriveGenotype(an, ar, cfg.primitives as never) };
      const json = genotypeJson(g);
      if (o.out) {
        writeFileAtomic(o.out, json);
        writeFileAtomic(
          `${String(o.out).replace(/\.json$/, '')}.svg`,
          genotypeSvg(g, `derived from ${join(o.from)} (step ${c.step})`),
        );
      }
      process.stdout.write(json);
    });
}
