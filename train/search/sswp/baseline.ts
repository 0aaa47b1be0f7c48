/**
 * The two-stage baseline of SSWP-NAS (the paper's Fig. 5 and Table 4a): the
 * architecture a search found, pre-trained from random initialization with
 * the search's objective (SimCLR by default), data, epochs, batch and weight
 * optimizer, so it makes as many weight steps on the same images as the
 * search did. Its weights then start a fine-tune like the concomitant ones.
 *
 * Written to <run>/simclr/ (a run directory like the search's: final/,
 * model.onnx, checkpoints/), resumed when interrupted, reused when finished.
 */
import { join } from 'node:path';
import { latestCheckpoint } from '../../runtime/checkpoint.js';
import { TrainError } from '../../runtime/errors.js';
import type { EP } from '../../runtime/session.js';
import { loadSswpNetwork, runSswpSearch, sswpConfig, type SswpConfig, type SswpOptions } from './search.js';

/** The search options that reproduce a recorded search configuration. */
export function optionsOf(cfg: SswpConfig): SswpOptions {
  const { method: _method, limit, split, fixedCells, ...rest } = cfg;
  return {
    ...rest,
    limit: limit ?? undefined,
    split: split ?? undefined,
    fixedCells: fixedCells ?? undefined,
    out: '',
  };
}

export interface BaselineOptions {
  /** Where to pre-train (default <run>/simclr). */
  dir?: string;
  ep?: EP;
  workers?: number;
  quiet?: boolean;
  /** The command that runs this again (the pre-training resumes by itself when it has a checkpoint). */
  commandLine?: () => string;
}

/** Pre-train the searched architecture of `runDir` (or reuse a finished pre-training); returns its directory. */
export async function pretrainBaseline(runDir: string, o: BaselineOptions = {}): Promise<string> {
  const net = loadSswpNetwork(runDir);
  const cfg = net.config as unknown as SswpConfig;
  if (cfg.method !== 'sswp' || cfg.fixedCells)
    throw new TrainError(`${runDir} is not an SSWP search run: the baseline pre-trains what a search found`);
  const dir = o.dir ?? join(runDir, 'simclr');
  const cells = net.arch.cells.map((c) => c.ops);
  const want = { ...optionsOf(cfg), fixedCells: cells, out: dir };
  if (latestCheckpoint(join(dir, 'final'))) {
    if (JSON.stringify(loadSswpNetwork(dir).config) !== JSON.stringify(sswpConfig(want)))
      throw new TrainError(`${dir} holds a pre-training with other settings than ${runDir}'s search`);
    return dir;
  }
  const resume = latestCheckpoint(dir) !== null;
  await runSswpSearch({
    ...want,
    // a pre-training that failed before its first checkpoint is started afresh
    resume,
    overwrite: !resume,
    ep: o.ep,
    workers: o.workers,
    quiet: o.quiet,
    ...(o.commandLine ? { commandLine: o.commandLine } : {}),
  });
  return dir;
}
