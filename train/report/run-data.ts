/**
 * What a run directory holds, read for a report: config.json, log.jsonl,
 * genotype.json or cells.json, and which kind of run wrote them (DARTS
 * search, SSWP-NAS search, evaluation training).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseGenotype, type Genotype, type OpName } from '../../graph/genotype.js';
import { parseSswpArch, type SswpArch } from '../../graph/nets/sswp.js';
import type { EvalNetCost } from './cost.js';
import { TrainError } from '../runtime/errors.js';

export type RunKind = 'darts-search' | 'sswp-search' | 'train';

/** Collapse statistics as logged (train/search/collapse.ts). */
export interface LoggedCollapse {
  param_free: number;
  skip: number;
  pools: number;
  skip_mass: number;
  pool_mass: number;
  warn_above?: number;
  warning?: string;
}

/** A guard's decision as logged. */
export interface LoggedGuard {
  guard: string;
  k: number;
  skip?: number;
  action?: string;
  removed?: { edge: number; node: number; from: number; weight: number }[];
}

/** One log.jsonl record; the fields a report reads, all optional (older logs lack some). */
export interface LogRecord {
  type?: string;
  epoch?: number;
  lr?: number;
  train_loss?: number;
  train_acc?: number;
  val_loss?: number;
  val_acc?: number;
  test_loss?: number;
  test_acc?: number;
  drop_path?: number;
  loss?: number;
  acc?: number;
  arch_loss?: number | null;
  arch_acc?: number | null;
  seconds?: number;
  phases?: Record<string, number>;
  pruned?: number[];
  genotype?: Genotype;
  alpha_normal?: number[][];
  alpha_reduce?: number[][];
  /** SSWP: softmax(α) per cell. */
  alpha?: number[][][];
  collapse?: LoggedCollapse | LoggedCollapse[];
  guards?: LoggedGuard[];
  /** The evaluation network's cost of the epoch's genotype (DARTS search). */
  eval_net?: EvalNetCost;
  cells?: [OpName, number][][];
  cell?: number;
  ops?: [OpName, number][];
  step?: number;
}

export interface RunData {
  dir: string;
  kind: RunKind;
  config: Record<string, unknown> | null;
  /** Per-epoch records (SSWP: its `type: 'epoch'` records). */
  epochs: LogRecord[];
  /** Every record of the log. */
  records: LogRecord[];
  genotype: Genotype | null;
  cells: SswpArch | null;
  /** Files and folders at the top of the run directory. */
  files: string[];
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new TrainError(`${path}: cannot be read as JSON (${(e as Error).message})`);
  }
}

/** The records of a log.jsonl; a torn last line (a run killed while writing) is left out. */
export function readLog(path: string): LogRecord[] {
  const lines = readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim());
  const out: LogRecord[] = [];
  lines.forEach((l, i) => {
    try {
      out.push(JSON.parse(l) as LogRecord);
    } catch {
      if (i < lines.length - 1) throw new TrainError(`${path}: line ${i + 1} is not JSON`);
    }
  });
  return out;
}

function kindOf(records: readonly LogRecord[], dir: string): RunKind {
  if (records.some((r) => r.alpha_normal)) return 'darts-search';
  if (records.some((r) => r.type === 'epoch' || r.type === 'step' || r.type === 'prune')) return 'sswp-search';
  if (records.some((r) => r.test_acc !== undefined)) return 'train';
  if (existsSync(join(dir, 'cells.json'))) return 'sswp-search';
  if (records.length === 0 && existsSync(join(dir, 'genotype.json')) && existsSync(join(dir, 'config.json')))
    return 'darts-search';
  throw new TrainError(`${dir}: log.jsonl holds no search or training epochs yet: nothing to report`);
}

/** Read a run directory (TrainError with one line when it is not one). */
export function readRun(dir: string): RunData {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new TrainError(`${dir} is not a directory`);
  const logPath = join(dir, 'log.jsonl');
  if (!existsSync(logPath))
    throw new TrainError(`${dir} holds no log.jsonl: not a search or training run (a study has study.json)`);
  const records = readLog(logPath);
  const kind = kindOf(records, dir);
  const cfgPath = join(dir, 'config.json');
  const config = existsSync(cfgPath) ? (readJson(cfgPath) as Record<string, unknown>) : null;
  const gPath = join(dir, 'genotype.json');
  const genotype = existsSync(gPath) ? parseGenotype(readJson(gPath), gPath) : null;
  const cPath = join(dir, 'cells.json');
  const cells = kind !== 'darts-search' && existsSync(cPath) ? parseSswpArch(readJson(cPath), cPath) : null;
  const epochs = kind === 'sswp-search' ? records.filter((r) => r.type === 'epoch') : records.filter((r) => !r.type);
  const files = readdirSync(dir)
    .filter((f) => !f.startsWith('.') && !f.includes('.tmp'))
    .sort();
  return { dir, kind, config, epochs, records, genotype, cells, files };
}
