/**
 * The `nas-onnx` command-line program. Each command lives in
 * cli/commands/<name>.ts and exports `register(program)`; adding one is one
 * line in COMMANDS below.
 *
 * bin/nas-onnx.js imports this module from dist/ and calls `run`.
 */
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { repoPath } from '../graph/paths.js';
import { formatCommanderError, reportError } from './errors.js';
import * as buildSupernet from './commands/build-supernet.js';
import * as exportCmd from './commands/export.js';
import * as info from './commands/info.js';
import * as predict from './commands/predict.js';
import * as doctor from './commands/doctor.js';
import * as train from './commands/train.js';
import * as search from './commands/search.js';
import * as derive from './commands/derive.js';
import * as finetune from './commands/finetune.js';
import * as setupCuda from './commands/setup-cuda.js';
import * as study from './commands/study.js';
import * as sweep from './commands/sweep.js';
import * as report from './commands/report.js';

interface CommandModule {
  register(program: Command): void;
}

/** Registered commands, in help order. */
const COMMANDS: CommandModule[] = [
  search,
  derive,
  train,
  finetune,
  sweep,
  study,
  report,
  buildSupernet,
  exportCmd,
  info,
  predict,
  doctor,
  setupCuda,
];

export function version(): string {
  try {
    return (JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** The configured program (commands registered, errors routed through cli/errors). */
export function buildProgram(): Command {
  const program = new Command('nas-onnx');
  program
    .description('neural architecture search without labels: DARTS networks as ONNX graphs, run by onnxruntime')
    .version(version(), '-V, --version', 'print the version')
    .configureOutput({ outputError: (str, write) => write(formatCommanderError(str)) })
    .exitOverride()
    .showSuggestionAfterError(true);
  // settings above are copied to subcommands created with program.command(), which commands use
  for (const c of COMMANDS) c.register(program);
  return program;
}

/** Run the CLI on `argv` (node-style: [node, script, ...args]); resolves to the exit code. */
export async function run(argv: readonly string[] = process.argv): Promise<number> {
  const onError = (e: NodeJS.ErrnoException): void => {
    // `nas-onnx info m.onnx | head`: the reader went away; nothing left to say
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  };
  process.stdout.on('error', onError);
  try {
    await buildProgram().parseAsync([...argv]);
    return Number(process.exitCode ?? 0);
  } catch (e) {
    return reportError(e);
  } finally {
    process.stdout.off('error', onError);
  }
}
