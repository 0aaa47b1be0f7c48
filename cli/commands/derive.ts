/**
 * `nas-onnx derive`: the genotype of a search checkpoint (DARTS's rule:
 * top-2 incoming edges per node, strongest non-`none` op), as JSON and SVG,
 * with the cost of its evaluation network: parameters, multiply-adds and
 * latency at batch 1 measured here (input shape from the run's log unless given).
 * `--max-skip k` caps the normal cell's skip_connects (P-DARTS).
 */
import { Option, type Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { deriveGenotype, genotypeJson, type Genotype } from '../../graph/genotype.js';
import { loadCheckpoint } from '../../train/runtime/checkpoint.js';
import { writeFileAtomic } from '../../train/runtime/fsutil.js';
import type { EP } from '../../train/runtime/session.js';
import { genotypeSvg } from '../../train/report/cell-diagram.js';
import {
  EVAL_NET_DEFAULTS,
  evalNetCost,
  formatCost,
  type EvalNetCost,
  type EvalNetShape,
} from '../../train/report/cost.js';
import { CliError } from '../errors.js';
import { epOption, intOption } from '../options.js';

interface DeriveOptions {
  from: string;
  out?: string;
  name: string;
  json: boolean;
  cost: boolean;
  net?: 'cifar' | 'imagenet';
  C?: number;
  layers?: number;
  channels?: number;
  size?: number;
  classes?: number;
  maxSkip?: number;
  ep: EP;
}

/** The evaluation-network shape the search run's log recorded (its last epoch), if any. */
function loggedShape(from: string): Partial<EvalNetShape> {
  for (const dir of [from, dirname(dirname(from))]) {
    const log = join(dir, 'log.jsonl');
    if (!existsSync(log)) continue;
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    try {
      const rec = JSON.parse(lines[lines.length - 1] ?? '') as { eval_net?: Partial<EvalNetShape> };
      if (rec.eval_net) return rec.eval_net;
    } catch {
      // a log being written or damaged: fall back to the defaults
    }
  }
  return {};
}

function evalShape(o: DeriveOptions): EvalNetShape {
  const l = loggedShape(o.from);
  return {
    net: o.net ?? l.net ?? EVAL_NET_DEFAULTS.net,
    C: o.C ?? l.C ?? EVAL_NET_DEFAULTS.C,
    layers: o.layers ?? l.layers ?? EVAL_NET_DEFAULTS.layers,
    channels: o.channels ?? l.channels ?? 3,
    size: o.size ?? l.size ?? 32,
    classes: o.classes ?? l.classes ?? 10,
  };
}

async function derive(o: DeriveOptions): Promise<{ genotype: Genotype; eval_net: EvalNetCost | null }> {
  const c = loadCheckpoint(o.from);
  const an = c.tensors.get('param:alpha_normal');
  const ar = c.tensors.get('param:alpha_reduce');
  if (!an || !ar)
    throw new CliError(`${o.from}: the checkpoint holds no alpha_normal/alpha_reduce (not a DARTS search run)`);
  const cfg = (c.meta.config ?? {}) as { primitives?: string[] };
  const g = { name: o.name, ...deriveGenotype(an, ar, cfg.primitives as never, o.maxSkip) };
  if (o.out) {
    writeFileAtomic(o.out, genotypeJson(g));
    writeFileAtomic(
      `${String(o.out).replace(/\.json$/, '')}.svg`,
      await genotypeSvg(g, `derived from ${join(o.from)} (step ${c.step})`),
    );
  }
  return { genotype: g, eval_net: o.cost ? await evalNetCost(g, evalShape(o), { ep: o.ep }) : null };
}

export function register(program: Command): void {
  program
    .command('derive')
    .description('derive the genotype from a search run or checkpoint, with its evaluation network’s cost')
    .requiredOption('--from <dir>', 'search run directory or checkpoint directory')
    .option('--out <file>', 'genotype JSON to write (an SVG is written beside it; default: print only)')
    .option('--name <name>', 'name stored in the genotype', 'derived')
    .option('--json', 'print one JSON object {genotype, eval_net}', false)
    .addOption(
      intOption(
        '--max-skip <k>',
        'P-DARTS: at most k skip_connects in the normal cell (default: no cap)',
        undefined,
        0,
      ),
    )
    .option('--no-cost', 'do not build and time the evaluation network')
    .addOption(new Option('--net <net>', 'evaluation network layout (default cifar)').choices(['cifar', 'imagenet']))
    .addOption(
      intOption(
        '--C <n>',
        `evaluation network's initial channels (default: the search log's, else ${EVAL_NET_DEFAULTS.C})`,
      ),
    )
    .addOption(
      intOption(
        '--layers <n>',
        `evaluation network's cells (default: the search log's, else ${EVAL_NET_DEFAULTS.layers})`,
      ),
    )
    .addOption(intOption('--channels <n>', "input channels (default: the search log's, else 3)"))
    .addOption(intOption('--size <n>', "input height and width (default: the search log's, else 32)"))
    .addOption(intOption('--classes <n>', "classes (default: the search log's, else 10)"))
    .addOption(epOption())
    .action(async (o: DeriveOptions) => {
      const r = await derive(o);
      if (o.json) {
        process.stdout.write(`${JSON.stringify(r)}\n`);
        return;
      }
      process.stdout.write(genotypeJson(r.genotype));
      const e = r.eval_net;
      if (e)
        process.stdout.write(
          `evaluation network (${e.net}, C=${e.C}, ${e.layers} cells, ${e.channels}×${e.size}×${e.size} input, ${e.classes} classes): ${formatCost(e)}\n`,
        );
    });
}
