/**
 * `nas-onnx info model.onnx [--json]`: what an .onnx file holds: parameter
 * count, multiply-adds per sample, node count and op histogram, inputs and
 * outputs with shapes, and metadata (a nas-onnx model's genotype and config).
 */
import { readFileSync, statSync } from 'node:fs';
import type { Command } from 'commander';
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

export function register(program: Command): void {
  program
    .command('info')
    .description('describe an .onnx model: parameters, multiply-adds, nodes, ops, inputs/outputs, metadata')
    .argument('<model>', '.onnx file')
    .option('--json', 'print one JSON object (for scripts)', false)
    .action((model: string, opts: { json: boolean }) => {
      const r = infoOf(model);
      console.log(opts.json ? JSON.stringify(r) : formatInfo(r));
    });
}
