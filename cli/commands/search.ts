/**
 * `nas-onnx search`: find an architecture from images alone — DARTS (first or
 * second order) with a pretext objective, on a supernet; writes log.jsonl,
 * checkpoints, genotype.json, genotype.svg and report.html to --out, with the
 * collapse guards by flag. `--method sswp`: SSWP-NAS (train/search/sswp), a
 * proxy-free search of the target-size network that keeps its weights;
 * writes cells.json, cells.svg, model.onnx, final/ and report.html.
 * The options come from the two methods' settings tables
 * (train/search/darts-config.ts, train/search/sswp/config.ts); where their
 * defaults differ, the help lists each.
 */
import { type Command, Option, type OptionValues } from 'commander';
import { skipSummary } from '../../train/data/index.js';
import { EVAL_NET_DEFAULTS, formatCost } from '../../train/report/cost.js';
import { DEFAULT_WARN_PARAM_FREE } from '../../train/search/collapse.js';
import type { Setting } from '../../train/runtime/settings.js';
import { runSearch, type SearchOptions } from '../../train/search/darts.js';
import { DARTS_SEARCH_SETTINGS, type DartsSearchConfig, SEG_SEARCH_DEFAULTS } from '../../train/search/darts-config.js';
import { SSWP_DEFAULTS, SSWP_SETTINGS, type SswpConfig } from '../../train/search/sswp/config.js';
import { runSswpSearch, type SswpOptions } from '../../train/search/sswp/search.js';
import { CliError } from '../errors.js';
import { epOption, intOption, noSpinOption, runDirOptions, skipCorruptOption, threadsOption } from '../options.js';
import { addSettings, continueCommand, readSettings, type SettingOptionOverrides } from '../settings.js';

type DartsKey = keyof DartsSearchConfig & string;

/** DARTS settings that are options (the SSWP ones with the same flags are read from them too). */
const DARTS_KEYS: DartsKey[] = [
  'objective',
  'epochs',
  'batch',
  'C',
  'layers',
  'order',
  'lr',
  'lrMin',
  'archLr',
  'seed',
  'limit',
  'size',
  'stem',
  'classes',
  'maxSkip',
  'earlyStopSkip',
];

/** Settings both methods have whose defaults differ: the help lists each method's. */
const BY_METHOD = ['epochs', 'batch', 'C', 'layers', 'lr', 'lrMin', 'archLr'] as const;

/** SSWP settings of their own. */
const SSWP_ONLY: (keyof SswpConfig & string)[] = [
  'prune',
  'pruneRule',
  'split',
  'sampling',
  'opDropout',
  'poolDropout',
  'affine',
  'temperature',
];

/** "(default: darts 50, sswp 300, seg 400)" */
function methodDefaults(k: (typeof BY_METHOD)[number]): string {
  const sswp = SSWP_SETTINGS[k] as Setting<unknown>;
  const parts = [`darts ${DARTS_SEARCH_SETTINGS[k].default}`, `sswp ${sswp.defaultText ?? sswp.default}`];
  if (k in SEG_SEARCH_DEFAULTS)
    parts.push(`--objective seg ${SEG_SEARCH_DEFAULTS[k as keyof typeof SEG_SEARCH_DEFAULTS]}`);
  return `(default: ${parts.join(', ')})`;
}

function dartsOverrides(): Partial<Record<DartsKey, SettingOptionOverrides>> {
  const o: Partial<Record<DartsKey, SettingOptionOverrides>> = {
    objective: {
      noDefault: true,
      help:
        `rot | color | jigsaw | cls | simclr | seg (required for darts; sswp default: ${SSWP_DEFAULTS.objective}). ` +
        'seg: label maps of a Cityscapes root or images/ + masks/ folder, UnNAS network (one reduction, ASPP 64 [6]), 321 crops',
    },
  };
  for (const k of BY_METHOD) o[k] = { noDefault: true, help: `${DARTS_SEARCH_SETTINGS[k].help} ${methodDefaults(k)}` };
  return o;
}

/** The run options both methods take. */
function execOptions(cmd: Command, o: OptionValues) {
  return {
    data: (o.data ?? o.dataset) as string,
    out: o.out as string,
    skipCorrupt: !!o.skipCorrupt,
    workers: o.workers as number | undefined,
    checkpointEvery: o.checkpointEvery as number | undefined,
    stopAfterSteps: o.stopAfter as number | undefined,
    ep: o.ep,
    threads: o.threads as number | undefined,
    spinning: o.spin !== false,
    resume: !!o.resume,
    overwrite: !!o.overwrite,
    quiet: !!o.quiet,
    report: o.report !== false,
    commandLine: continueCommand(cmd),
  };
}

async function searchSswp(o: SswpOptions): Promise<void> {
  const r = await runSswpSearch(o);
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

async function searchDarts(o: SearchOptions): Promise<void> {
  const r = await runSearch(o);
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

async function searchAction(cmd: Command, o: OptionValues): Promise<void> {
  if (!!o.data === !!o.dataset) throw new CliError('give exactly one of --data PATH or --dataset NAME');
  const exec = execOptions(cmd, o);
  if (o.method === 'sswp') {
    await searchSswp({ ...readSettings(cmd, SSWP_SETTINGS)(o), ...exec, bnBatches: o.bnBatches });
    return;
  }
  const given = readSettings(cmd, DARTS_SEARCH_SETTINGS)(o);
  if (given.objective === 'seg' && !o.data) throw new CliError('--objective seg reads label maps: give --data <root>');
  await searchDarts({
    ...given,
    ...exec,
    evalNet: { C: o.evalC, layers: o.evalLayers },
    collapse: { warnParamFree: o.collapseWarn },
  });
}

export function register(program: Command): void {
  const cmd = program
    .command('search')
    .description('search an architecture with a (self-)supervised objective: UnNAS-DARTS, or SSWP-NAS (--method sswp)')
    .option('--data <path>', 'images: an image folder, CIFAR batches directory or IDX file (this or --dataset)')
    .option('--dataset <name>', 'a named data set (fashion-mnist, cifar10:<dir>, …; this or --data)')
    .addOption(new Option('--method <m>', 'search method').choices(['darts', 'sswp']).default('darts'));
  addSettings(cmd, DARTS_SEARCH_SETTINGS, DARTS_KEYS, dartsOverrides());
  addSettings(cmd, SSWP_SETTINGS, SSWP_ONLY);
  cmd
    .addOption(
      intOption('--bn-batches <n>', 'sswp: batches of images for the final BN statistics', SSWP_DEFAULTS.bnBatches),
    )
    .addOption(
      intOption(
        '--eval-C <n>',
        `darts: initial channels of the evaluation network costed per epoch`,
        EVAL_NET_DEFAULTS.C,
      ),
    )
    .addOption(
      intOption(
        '--eval-layers <n>',
        `darts: cells of the evaluation network costed per epoch`,
        EVAL_NET_DEFAULTS.layers,
      ),
    )
    .addOption(
      intOption(
        '--collapse-warn <k>',
        'darts: warn when the derived normal cell has more than k parameter-free ops',
        DEFAULT_WARN_PARAM_FREE,
        0,
      ),
    )
    .option('--no-report', 'do not write report.html at the end')
    .addOption(skipCorruptOption())
    .addOption(intOption('--workers <n>', 'data worker threads (default: cores − 1, at most 4)', undefined, 0))
    .addOption(intOption('--checkpoint-every <n>', 'checkpoint every N steps too (default: epoch ends only)'))
    .addOption(
      intOption(
        '--stop-after <n>',
        'stop after N steps in total (checkpointed; continue with --resume; default: run to the end)',
      ),
    )
    .addOption(epOption())
    .addOption(threadsOption())
    .addOption(noSpinOption());
  runDirOptions(cmd, 'runs/search');
  cmd.action((o: OptionValues) => searchAction(cmd, o));
}
