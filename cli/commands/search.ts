/**
 * `nas-onnx search`: find an architecture from images alone — DARTS (first or
 * second order) with a pretext objective, on a supernet; writes log.jsonl,
 * checkpoints, genotype.json and genotype.svg to --out.
 */
import { Option, type Command } from 'commander';
import { runSearch } from '../../train/search.js';
import { CliError } from '../errors.js';
import { epOption, intOption, parsePositiveFloat, seedOption } from '../options.js';

const OBJECTIVE_ALIASES: Record<string, 'rot' | 'col' | 'jig' | 'cls' | 'simclr'> = {
  rot: 'rot', rotation: 'rot', color: 'col', col: 'col', colorization: 'col', jigsaw: 'jig', jig: 'jig', cls: 'cls', supervised: 'cls', simclr: 'simclr',
};

export function register(program: Command): void {
  program
    .command('search')
    .description('search a cell with a (self-)supervised objective (UnNAS-DARTS)')
    .requiredOption('--objective <task>', 'rot | color | jigsaw | cls | simclr')
    .option('--data <path>', 'images: an image folder, CIFAR batches directory or IDX file')
    .option('--dataset <name>', 'a named data set (fashion-mnist, cifar10:<dir>, …)')
    .addOption(new Option('--method <m>', 'search method').choices(['darts']).default('darts'))
    .addOption(new Option('--order <n>', 'DARTS order').choices(['1', '2']).default('1'))
    .addOption(intOption('--epochs <n>', 'epochs', 50))
    .addOption(intOption('--batch <n>', 'images per batch', 64))
    .addOption(intOption('--C <n>', 'supernet initial channels', 16))
    .addOption(intOption('--layers <n>', 'supernet cells', 8))
    .addOption(new Option('--lr <x>', 'weight learning rate (cosine to 0.001)').argParser(parsePositiveFloat).default(0.025))
    .addOption(new Option('--arch-lr <x>', 'α learning rate (Adam)').argParser(parsePositiveFloat).default(3e-4))
    .addOption(intOption('--limit <n>', 'use only the first N images'))
    .addOption(intOption('--workers <n>', 'data worker threads', undefined, 0))
    .addOption(intOption('--checkpoint-every <n>', 'checkpoint every N steps too'))
    .addOption(intOption('--stop-after <n>', 'stop after N steps in total (checkpointed; continue with --resume)'))
    .addOption(epOption())
    .addOption(seedOption())
    .option('--out <dir>', 'run directory', 'runs/search')
    .option('--resume', 'continue the search in --out from its latest checkpoint')
    .option('--quiet', 'no progress output')
    .action(async (o) => {
      const objective = OBJECTIVE_ALIASES[String(o.objective).toLowerCase()];
      if (!objective) throw new CliError(`unknown objective '${o.objective}' (use rot, color, jigsaw, cls or simclr)`);
      if (!!o.data === !!o.dataset) throw new CliError('give exactly one of --data PATH or --dataset NAME');
      const r = await runSearch({
        objective,
        data: o.data ?? o.dataset,
        out: o.out,
        epochs: o.epochs,
        batch: o.batch,
        C: o.C,
        layers: o.layers,
        order: Number(o.order) as 1 | 2,
        lr: o.lr,
        archLr: o.archLr,
        limit: o.limit,
        workers: o.workers,
        checkpointEvery: o.checkpointEvery,
        stopAfterSteps: o.stopAfter,
        ep: o.ep,
        seed: o.seed,
        resume: !!o.resume,
        quiet: !!o.quiet,
      });
      const nodes = `w-step graph ${r.nodes.wStep} nodes, α-grad graph ${r.nodes.alphaGrad}${r.nodes.allGrad ? `, full-grad graph ${r.nodes.allGrad}` : ''}`;
      process.stdout.write(
        (r.stopped ? 'stopped early (resume with --resume)\n' : '') +
          `genotype: ${JSON.stringify(r.genotype)}\n${r.stepSeconds.toFixed(3)} s/step, ${nodes}\nwritten to ${o.out}/genotype.json and genotype.svg\n`,
      );
    });
}
