/**
 * `nas-onnx info model.onnx [--json] [--bench]`: what an .onnx file holds:
 * parameter count, multiply-adds per sample, node count and op histogram,
 * inputs and outputs with shapes, and metadata (a nas-onnx model's genotype and
 * config); with --bench also its measured latency (median and p90 over warm
 * runs) and throughput on the chosen execution provider and batch.
 */
import { readFileSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { benchModel, type BenchResult } from '../../train/runtime/bench.js';
import type { EP } from '../../train/runtime/session.js';
import { epOption, intOption } from '../options.js';
import { genotypeJson, parseGenotype, type Genotype } from '../../graph/genotype.js';
import { modelInfo, type ModelInfo } from '../../graph/onnx.js';
import { GraphError } from '../../graph/ir.js';
import { fsReason } from '../../train/runtime/fsutil.js';
import { CliError } from '../errors.js';
import { fmtBytes, fmtInt, fmtSI, fmtShape, table } from '../format.js';

export interface InfoReport extends ModelInfo {
  file: string;
  fileBytes: number;
  /** The genotype recorded in a nas-onnx network's metadata, if any. */
  genotype: Genotype | null;
  /** The build configuration recorded in the metadata, if any. */
  config: Record<string, unknown> | null;
  /** Measured latency (--bench). */
  bench?: BenchResult;
}

/** Read an input file with one-line errors (missing, a directory, unreadable). */
export function readInputFile(path: string, what = 'file'): Uint8Array {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (e) {
    throw new CliError(`cannot read ${what} '${path}': ${fsReason(e)}`);
  }
  if (st.isDirectory()) throw new CliError(`cannot read ${what} '${path}': is a directory`);
  try {
    return readFileSync(path);
  } catch (e) {
    throw new CliError(`cannot read ${what} '${path}': ${fsReason(e)}`);
  }
}

function jsonOrNull(s: string | undefined): unknown {
  if (s === undefined) return null;
  try {
    return JSON.parse(s) as unknown;
  } catch {
    return null;
  }
}

export function infoOf(path: string): InfoReport {
  const bytes = readInputFile(path, 'model');
  let info: ModelInfo;
  try {
    info = modelInfo(bytes);
  } catch (e) {
    if (e instanceof GraphError)
      throw new CliError(e.message.startsWith('not an ONNX') ? `'${path}' is ${e.message}` : `${path}: ${e.message}`);
    throw e;
  }
  if (info.nodes === 0 && info.inputs.length === 0 && info.outputs.length === 0) {
    // protobuf decodes many non-ONNX byte strings into an empty message
    throw new CliError(`'${path}' is not an ONNX model (no nodes, inputs or outputs)`);
  }
  let genotype: Genotype | null = null;
  const gj = jsonOrNull(info.metadata['nas_onnx.genotype']);
  if (gj) {
    try {
      genotype = parseGenotype(gj, 'metadata');
    } catch {
      genotype = null;
    }
  }
  const cfg = jsonOrNull(info.metadata['nas_onnx.config']);
  return {
    file: path,
    fileBytes: bytes.length,
    ...info,
    genotype,
    config: cfg && typeof cfg === 'object' && !Array.isArray(cfg) ? (cfg as Record<string, unknown>) : null,
  };
}

const ms = (x: number): string => `${x.toFixed(x < 10 ? 2 : 1)} ms`;

/** Table rows of a latency measurement. */
export function benchRows(b: BenchResult): [string, string][] {
  return [
    [
      'latency',
      `median ${ms(b.medianMs)}, p90 ${ms(b.p90Ms)} (${b.ep}, batch ${b.batch}, ${b.runs} runs after ${b.warmup} warm-up)`,
    ],
    ['throughput', `${b.throughput.toFixed(b.throughput < 100 ? 1 : 0)} samples/s`],
  ];
}

/** What a model computes, from its recorded config (segmentation networks say so; others need no line). */
function taskLine(cfg: Record<string, unknown> | null): string | null {
  if (cfg?.task !== 'seg') return null;
  const aspp = cfg.aspp as { channels?: number; rates?: number[] } | undefined;
  const head = aspp ? `, ASPP ${aspp.channels} [${(aspp.rates ?? []).join(', ')}]` : '';
  return `semantic segmentation: per-pixel logits over ${cfg.classes} classes at the input size${head}`;
}

export function formatInfo(r: InfoReport): string {
  const lines: string[] = [];
  lines.push(
    `${r.file}: ONNX IR ${r.irVersion}, opset ${r.opset}${r.producer ? `, producer ${r.producer}` : ''}, ${fmtBytes(r.fileBytes)}`,
  );
  const rows: [string, string][] = [
    ['parameters', `${fmtInt(r.parameters)} (${fmtSI(r.parameters)})`],
    ['multiply-adds', `${fmtInt(r.multiplyAdds)} per sample (${fmtSI(r.multiplyAdds)})`],
    ['nodes', fmtInt(r.nodes)],
  ];
  if (r.bench) rows.push(...benchRows(r.bench));
  const task = taskLine(r.config);
  if (task) rows.push(['task', task]);
  for (const v of r.inputs) rows.push(['input', `${v.name} ${v.dtype} ${fmtShape(v.shape)}`]);
  for (const v of r.outputs) rows.push(['output', `${v.name} ${v.dtype} ${fmtShape(v.shape)}`]);
  lines.push(table(rows, '  '));
  const ops = Object.entries(r.opCounts).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  lines.push('ops:');
  lines.push(
    table(
      ops.map(([k, v]) => [k, String(v).padStart(6)] as const),
      '  ',
    ),
  );
  const meta = Object.entries(r.metadata).filter(([k]) => k !== 'nas_onnx.genotype');
  if (meta.length) {
    lines.push('metadata:');
    lines.push(
      table(
        meta.map(([k, v]) => [k, v.length > 200 ? `${v.slice(0, 200)}…` : v] as const),
        '  ',
      ),
    );
  }
  if (r.genotype) {
    lines.push(`genotype${r.genotype.name ? ` (${r.genotype.name})` : ''}:`);
    lines.push(
      genotypeJson({ ...r.genotype, name: undefined })
        .trimEnd()
        .split('\n')
        .map((l) => `  ${l}`)
        .join('\n'),
    );
  }
  return lines.join('\n');
}

interface InfoCliOptions {
  json: boolean;
  bench: boolean;
  ep: EP;
  batch?: number;
  runs: number;
  warmup: number;
}

export function register(program: Command): void {
  program
    .command('info')
    .description('describe an .onnx model: parameters, multiply-adds, nodes, ops, inputs/outputs, metadata')
    .argument('<model>', '.onnx file')
    .option('--json', 'print one JSON object (for scripts)', false)
    .option('--bench', 'measure latency and throughput with onnxruntime', false)
    .addOption(epOption())
    .addOption(intOption('--batch <n>', "samples per run with --bench (default: 1, or the model's fixed batch)"))
    .addOption(intOption('--runs <n>', 'timed runs with --bench', 20))
    .addOption(intOption('--warmup <n>', 'untimed runs first with --bench', 3, 0))
    .action(async (model: string, opts: InfoCliOptions) => {
      const r = infoOf(model);
      if (opts.bench) {
        r.bench = await benchModel(readInputFile(model, 'model'), {
          ep: opts.ep,
          batch: opts.batch,
          runs: opts.runs,
          warmup: opts.warmup,
        });
      }
      process.stdout.write(`${opts.json ? JSON.stringify(r) : formatInfo(r)}\n`);
    });
}
