/**
 * `nas-onnx search`: find an architecture from images alone — DARTS (first or
 * second order) with a pretext objective, on a supernet; writes log.jsonl,
 * checkpoints, genotype.json, genotype.svg and report.html to --out, with the
 * collapse guards by flag. `--method sswp`: SSWP-NAS (train/search/sswp), a
 * proxy-free search of the target-size network that keeps its weights;
 * writes cells.json, cells.svg, model.onnx, final/ and report.html.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { DEFAULT_WARN_PARAM_FREE } from '../../train/search/collapse.js';
import { runSearch } from '../../train/search/darts.js';
import { EVAL_NET_DEFAULTS, formatCost } from '../../train/report/cost.js';
import { SSWP_DEFAULTS, runSswpSearch } from '../../train/search/sswp/search.js';
import { PRUNE_RULES } from '../../train/search/sswp/prune.js';
import { parseSplit, PRUNE_MODES } from '../../train/search/sswp/schedule.js';
import { SAMPLING_MODES } from '../../train/search/sswp/sampler.js';
import { skipSummary } from '../../train/data/index.js';
import type { EP } from '../../train/runtime/session.js';
import { CliError } from '../errors.js';
import {
  epOption,
  intOption,
  parsePositiveFloat,
  seedOption,
  sizeOption,
  skipCorruptOption,
  stemOption,
} from '../options.js';

/** A probability in [0, 1]. */
function parseProbability(value: string): number {
  const n = Number(value.trim());
  if (value.trim() === '' || !(n >= 0 && n <= 1))
    throw new InvalidArgumentError(`expected a probability in [0, 1], got '${value}'.`);
  return n;
}

/**
 * Method defaults for options whose DARTS and SSWP defaults differ, and those
 * of the seg objective: UnNAS's Cityscapes search (12 cells, one reduction,
 * batch 32, 321 crops, lr 0.1, 400 epochs).
 */
const DEFAULTS = {
  darts: { epochs: 50, batch: 64, C: 16, layers: 8, lr: 0.025, archLr: 3e-4 },
  sswp: { epochs: 300, batch: 96, C: 36, layers: 20, lr: 0.025, archLr: 1e-3 },
  seg: { epochs: 400, batch: 32, C: 16, layers: 12, lr: 0.1, archLr: 3e-4 },
} as const;

const OBJECTIVE_ALIASES: Record<string, 'rot' | 'col' | 'jig' | 'cls' | 'simclr' | 'seg'> = {
  rot: 'rot',
  rotation: 'rot',
  color: 'col',
  col: 'col',
  colorization: 'col',
  jigsaw: 'jig',
  jig: 'jig',
  cls: 'cls',
  supervised: 'cls',
  simclr: 'simclr',
  seg: 'seg',
  segmentation: 'seg',
};

/** The options of SSWP-NAS (--method sswp). */
function addSswpOptions(cmd: Command): void {
  cmd
    .addOption(
      new Option(
        '--prune <mode>',
        'sswp: progressive pruning from the input side (fpp), the output side (bpp), or none (all at the end)',
      )
        .choices([...PRUNE_MODES])
        .default(SSWP_DEFAULTS.prune),
    )
    .addOption(
      new Option(
        '--prune-rule <rule>',
        "sswp: what a pruned cell keeps: op-per-edge (the paper's: the best op on each of the 14 edges; the final cell by " +
          "DARTS's rule at the end) or two-per-node (DARTS's final cell at once)",
      )
        .choices([...PRUNE_RULES])
        .default(SSWP_DEFAULTS.pruneRule),
    )
    .addOption(
      new Option(
        '--fpp-split <w,b,p>',
        'sswp: phase fractions warm-up,bilevel,prune (default 0.2,0.4,0.4; with --prune none: w,b, default 0.2,0.8)',
      ),
    )
    .addOption(
      new Option('--sampling <mode>', 'sswp: path sampling')
        .choices([...SAMPLING_MODES])
        .default(SSWP_DEFAULTS.sampling),
    )
    .addOption(
      new Option(
        '--op-dropout <p>',
        "sswp: skip_connect dropout in weight steps after warm-up, never in α steps (the release and the paper's " +
          'Table 3c; its §3.2 names all parameter-free ops: add --pool-dropout)',
      )
        .argParser(parseProbability)
        .default(SSWP_DEFAULTS.opDropout),
    )
    .addOption(
      new Option('--pool-dropout <p>', 'sswp: pooling dropout in weight steps after warm-up')
        .argParser(parseProbability)
        .default(SSWP_DEFAULTS.poolDropout),
    )
    .option('--no-bn-affine', 'sswp: search with plain (non-affine) BN in the ops; the final network gets γ = 1, β = 0')
    .addOption(
      new Option('--temperature <t>', 'sswp: SimCLR temperature (the paper gives none; its release uses 0.07)')
        .argParser(parsePositiveFloat)
        .default(SSWP_DEFAULTS.temperature),
    )
    .addOption(
      intOption('--bn-batches <n>', 'sswp: batches of images for the final BN statistics', SSWP_DEFAULTS.bnBatches),
    );
}

/** The parsed options of `search`. */
interface SearchCliOptions {
  objective?: string;
  data?: string;
  dataset?: string;
  method: 'darts' | 'sswp';
  order: '1' | '2';
  epochs?: number;
  batch?: number;
  C?: number;
  layers?: number;
  lr?: number;
  archLr?: number;
  prune: (typeof PRUNE_MODES)[number];
  pruneRule: (typeof PRUNE_RULES)[number];
  fppSplit?: string;
  sampling: (typeof SAMPLING_MODES)[number];
  opDropout: number;
  poolDropout: number;
  bnAffine?: boolean;
  temperature: number;
  bnBatches: number;
  evalC?: number;
  evalLayers?: number;
  classes?: number;
  limit?: number;
  size?: number;
  stem?: 'cifar' | 'imagenet';
  skipCorrupt?: boolean;
  workers?: number;
  checkpointEvery?: number;
  stopAfter?: number;
  ep: EP;
  seed?: number;
  out: string;
  resume?: boolean;
  quiet?: boolean;
  collapseWarn: number;
  earlyStopSkip?: number;
  maxSkip?: number;
  report?: boolean;
}

type Objective = (typeof OBJECTIVE_ALIASES)[string];

/** The options both methods take (method defaults filled in). */
function commonOptions(o: SearchCliOptions, objective: Objective) {
  const d = objective === 'seg' ? DEFAULTS.seg : DEFAULTS[o.method];
  return {
    objective,
    data: (o.data ?? o.dataset)!,
    out: o.out,
    epochs: o.epochs ?? d.epochs,
    batch: o.batch ?? d.batch,
    C: o.C ?? d.C,
    layers: o.layers ?? d.layers,
    lr: o.lr ?? d.lr,
    archLr: o.archLr ?? d.archLr,
    limit: o.limit,
    size: o.size,
    stem: o.stem,
    skipCorrupt: !!o.skipCorrupt,
    workers: o.workers,
    checkpointEvery: o.checkpointEvery,
    stopAfterSteps: o.stopAfter,
    ep: o.ep,
    seed: o.seed,
    resume: !!o.resume,
    quiet: !!o.quiet,
    report: o.report !== false,
  };
}

async function searchSswp(common: ReturnType<typeof commonOptions>, o: SearchCliOptions): Promise<void> {
  const r = await runSswpSearch({
    ...common,
    prune: o.prune,
    pruneRule: o.pruneRule,
    split: o.fppSplit === undefined ? undefined : parseSplit(o.fppSplit),
    sampling: o.sampling,
    opDropout: o.opDropout,
    poolDropout: o.poolDropout,
    affine: o.bnAffine !== false,
    temperature: o.temperature,
    bnBatches: o.bnBatches,
  });
  const t = r.timing
    .map((x) => `${x.gated} gated cells: w ${x.wSeconds.toFixed(3)} s, α ${x.aSeconds.toFixed(3)} s (${x.steps} steps)`)
    .join('; ');
  const cells = r.arch.cells
    .map((c) => `cell ${c.cell}${c.reduction ? ' (reduction)' : ''}: ${JSON.stringify(c.ops)}`)
    .join('\n');
  process.stdout.write(
    r.stopped
      ? `stopped early after ${r.steps} steps (resume with --resume)\n`
      : `${cells}\nsteps per phase: ${JSON.stringify(r.phases)}\ntime per step: ${t}\n` +
          `written to ${o.out}/cells.json, cells.svg, model.onnx (concomitant weights), final/ (checkpoint for nas-onnx finetune)${o.report !== false ? ' and report.html' : ''}\n`,
  );
  if (r.skipped && r.skipped.count > 0) process.stdout.write(`${skipSummary(r.skipped)}\n`);
}

async function searchDarts(common: ReturnType<typeof commonOptions>, o: SearchCliOptions): Promise<void> {
  const r = await runSearch({
    ...common,
    order: Number(o.order) as 1 | 2,
    classes: o.classes,
    evalNet: { C: o.evalC, layers: o.evalLayers },
    collapse: { warnParamFree: o.collapseWarn, earlyStopSkip: o.earlyStopSkip, maxSkip: o.maxSkip },
  });
  const cost = r.history[r.history.length - 1]?.eval_net;
  const costLine = cost
    ? `evaluation network (${cost.net}, C=${cost.C}, ${cost.layers} cells): ${formatCost(cost)}\n`
    : '';
  const nodes = `w-step graph ${r.nodes.wStep} nodes, α-grad graph ${r.nodes.alphaGrad}${r.nodes.allGrad ? `, full-grad graph ${r.nodes.allGrad}` : ''}`;
  process.stdout.write(
    (r.stopped ? 'stopped early (resume with --resume)\n' : '') +
      (r.guardStopEpoch ? `ended by the early-stop guard after epoch ${r.guardStopEpoch}\n` : '') +
      `genotype: ${JSON.stringify(r.genotype)}\n${costLine}${r.stepSeconds.toFixed(3)} s/step, ${nodes}\n` +
      `written to ${o.out}/genotype.json, genotype.svg${o.report !== false ? ' and report.html' : ''}\n`,
  );
  if (r.skipped.count > 0) process.stdout.write(`${skipSummary(r.skipped)}\n`);
}

async function searchAction(o: SearchCliOptions): Promise<void> {
  if (o.objective === undefined && o.method === 'darts')
    throw new CliError("required option '--objective <task>' not specified (darts)");
  const objective = OBJECTIVE_ALIASES[String(o.objective ?? 'simclr').toLowerCase()];
  if (!objective) throw new CliError(`unknown objective '${o.objective}' (use rot, color, jigsaw, cls, simclr or seg)`);
  if (!!o.data === !!o.dataset) throw new CliError('give exactly one of --data PATH or --dataset NAME');
  if (objective === 'seg' && o.method !== 'darts') throw new CliError('--objective seg searches with --method darts');
  if (objective === 'seg' && !o.data) throw new CliError('--objective seg reads label maps: give --data <root>');
  const common = commonOptions(o, objective);
  if (o.method === 'sswp') await searchSswp(common, o);
  else await searchDarts(common, o);
}

export function register(program: Command): void {
  const cmd = program
    .command('search')
    .description('search an architecture with a (self-)supervised objective: UnNAS-DARTS, or SSWP-NAS (--method sswp)')
    .option(
      '--objective <task>',
      'rot | color | jigsaw | cls | simclr | seg (required for darts; sswp default: simclr). seg: label maps of a ' +
        'Cityscapes root or images/ + masks/ folder, UnNAS network (one reduction, ASPP 64 [6]), 321 crops',
    )
    .option('--data <path>', 'images: an image folder, CIFAR batches directory or IDX file')
    .option('--dataset <name>', 'a named data set (fashion-mnist, cifar10:<dir>, …)')
    .addOption(new Option('--method <m>', 'search method').choices(['darts', 'sswp']).default('darts'))
    .addOption(new Option('--order <n>', 'DARTS order').choices(['1', '2']).default('1'))
    .addOption(intOption('--epochs <n>', 'epochs (darts 50, sswp 300)'))
    .addOption(intOption('--batch <n>', 'images per batch (darts 64, sswp 96)'))
    .addOption(intOption('--C <n>', 'initial channels (darts supernet 16, sswp 36)'))
    .addOption(intOption('--layers <n>', 'cells (darts supernet 8, sswp 20)'))
    .addOption(
      new Option('--lr <x>', 'weight learning rate (cosine; darts to 0.001, sswp to 0)').argParser(parsePositiveFloat),
    )
    .addOption(
      new Option('--arch-lr <x>', 'α learning rate, Adam (darts 3e-4, sswp 1e-3)').argParser(parsePositiveFloat),
    );
  addSswpOptions(cmd);
  cmd
    .addOption(
      intOption(
        '--eval-C <n>',
        `darts: initial channels of the evaluation network costed per epoch (${EVAL_NET_DEFAULTS.C})`,
      ),
    )
    .addOption(
      intOption(
        '--eval-layers <n>',
        `darts: cells of the evaluation network costed per epoch (${EVAL_NET_DEFAULTS.layers})`,
      ),
    )
    .addOption(intOption('--classes <n>', 'seg: classes of the label maps (ids 0..n-1, 255 ignored; default 19)'))
    .addOption(
      intOption(
        '--collapse-warn <k>',
        'darts: warn when the derived normal cell has more than k parameter-free ops',
        DEFAULT_WARN_PARAM_FREE,
        0,
      ),
    )
    .addOption(
      intOption(
        '--early-stop-skip <k>',
        'darts (DARTS+ guard): end the search once the derived normal cell has more than k skip_connects',
        undefined,
        0,
      ),
    )
    .addOption(
      intOption(
        '--max-skip <k>',
        'darts (P-DARTS guard): derive normal cells with at most k skip_connects',
        undefined,
        0,
      ),
    )
    .option('--no-report', 'do not write report.html at the end')
    .addOption(intOption('--limit <n>', 'use only the first N images'))
    .addOption(sizeOption())
    .addOption(stemOption())
    .addOption(skipCorruptOption())
    .addOption(intOption('--workers <n>', 'data worker threads', undefined, 0))
    .addOption(intOption('--checkpoint-every <n>', 'checkpoint every N steps too'))
    .addOption(intOption('--stop-after <n>', 'stop after N steps in total (checkpointed; continue with --resume)'))
    .addOption(epOption())
    .addOption(seedOption())
    .option('--out <dir>', 'run directory', 'runs/search')
    .option('--resume', 'continue the search in --out from its latest checkpoint')
    .option('--quiet', 'no progress output')
    .action(searchAction);
}
