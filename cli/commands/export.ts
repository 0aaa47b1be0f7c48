/**
 * `nas-onnx export`: a runnable inference .onnx of a discretized DARTS
 * network (CIFAR or ImageNet layout, or UnNAS's segmentation network: ImageNet
 * stem, one reduction, ASPP 256 [6, 12, 18], per-pixel logits at the input
 * size) from a genotype: BN in inference form, no auxiliary head, output
 * `logits`, random-initialized weights, a symbolic batch dimension and the
 * deploy metadata (input size; normalization of the layout's data set,
 * CIFAR-10 or ImageNet — seg: ImageNet's, as UnNAS uses for Cityscapes — for 3
 * channels, else mean 0.5 and std 0.5). The file is then loaded with
 * onnxruntime (CPU) and run on a batch of zeros.
 */
import { Option, type Command } from 'commander';
import { loadGenotype, type Genotype } from '../../graph/genotype.js';
import { buildEvalNet } from '../../graph/nets/models.js';
import { modelInfo, type ModelInfo } from '../../graph/onnx.js';
import { deployMeta, serializeInference, BATCH_DIM } from '../../graph/deploy.js';
import { KNOWN_STATS } from '../../train/data/index.js';
import { buildSegNet } from '../../graph/nets/seg.js';
import type { Graph, Value } from '../../graph/ir.js';
import { shapeStr } from '../../graph/ir.js';
import { initParams } from '../../train/runtime/params.js';
import { RuntimeError, Session, f32 } from '../../train/runtime/session.js';
import { fmtBytes, fmtInt, fmtSI, table } from '../format.js';
import { checkOutPath, intOption, outOption, seedOption, writeOutput } from '../options.js';

export type NetKind = 'cifar' | 'imagenet' | 'seg';

/** Per-channel normalization of the layout's data set (CIFAR-10, ImageNet) for RGB input. */
const LAYOUT_NORMALIZATION: Record<NetKind, { mean: number[]; std: number[] }> = {
  cifar: { mean: KNOWN_STATS.cifar10!.mean, std: KNOWN_STATS.cifar10!.std },
  imagenet: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
  seg: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
};

function exportNormalization(net: NetKind, channels: number): { mean: number[]; std: number[] } {
  if (channels === 3) return LAYOUT_NORMALIZATION[net];
  return { mean: new Array<number>(channels).fill(0.5), std: new Array<number>(channels).fill(0.5) };
}

/**
 * Evaluation-network defaults per layout: DARTS's CIFAR and ImageNet networks,
 * and UnNAS's Cityscapes network (Table 2: 12 cells, DARTS_V2 at C = 82, 19
 * classes, 769×769 training crops).
 */
export const NET_DEFAULTS: Record<NetKind, { C: number; layers: number; classes: number; size: number }> = {
  cifar: { C: 36, layers: 20, classes: 10, size: 32 },
  imagenet: { C: 48, layers: 14, classes: 1000, size: 224 },
  seg: { C: 82, layers: 12, classes: 19, size: 769 },
};

export interface ExportOptions {
  genotype: string;
  net: NetKind;
  C?: number;
  layers?: number;
  classes?: number;
  channels: number;
  size?: number;
  batch: number;
  seed: number;
  out: string;
  check: boolean;
}

export interface ExportResult {
  out: string;
  bytes: number;
  info: ModelInfo;
  genotype: string;
  config: { net: NetKind; C: number; layers: number; classes: number; channels: number; size: number; batch: number };
  check: { ms: number; logitsShape: number[] } | null;
}

/** Load an exported model on the CPU and run one batch of zeros; checks the logits' shape and finiteness. */
export async function smokeRun(
  bytes: Uint8Array,
  input: number[],
  logitsShape: number[],
): Promise<{ ms: number; logitsShape: number[] }> {
  const t0 = performance.now();
  const s = await Session.create(bytes, { ep: 'cpu' });
  try {
    const n = input.reduce((a, b) => a * b, 1);
    const out = await s.run({ x: f32(new Float32Array(n), input) });
    const y = out.logits;
    if (!y) throw new RuntimeError('exported model produced no logits');
    const dims = [...y.dims];
    if (shapeStr(dims) !== shapeStr(logitsShape))
      throw new RuntimeError(`exported model's logits have shape ${shapeStr(dims)}, expected ${shapeStr(logitsShape)}`);
    const data = y.data as Float32Array;
    for (let i = 0; i < data.length; i++)
      if (!Number.isFinite(data[i]!))
        throw new RuntimeError(`exported model's logits are not finite (logits[${i}] = ${data[i]})`);
    return { ms: performance.now() - t0, logitsShape: dims };
  } finally {
    await s.release();
  }
}

/** The inference network of a layout (classification: [N, classes] logits; seg: [N, classes, H, W]). */
function buildExportNet(cfg: ExportResult['config'], genotype: Genotype): { g: Graph; logits: Value } {
  if (cfg.net === 'seg') return buildSegNet({ ...cfg, genotype, training: false, height: cfg.size, width: cfg.size });
  return buildEvalNet({ ...cfg, net: cfg.net, genotype, training: false, auxiliary: false });
}

export async function exportModel(o: ExportOptions): Promise<ExportResult> {
  const d = NET_DEFAULTS[o.net];
  const cfg = {
    net: o.net,
    C: o.C ?? d.C,
    layers: o.layers ?? d.layers,
    classes: o.classes ?? d.classes,
    channels: o.channels,
    size: o.size ?? d.size,
    batch: o.batch,
  };
  const genotype = loadGenotype(o.genotype);
  checkOutPath(o.out);
  const { g, logits } = buildExportNet(cfg, genotype);
  g.output(logits, 'logits');
  g.prune();
  g.meta.set('nas_onnx.seed', String(o.seed));
  const values = initParams(g, o.seed);
  const data = { c: cfg.channels, h: cfg.size, w: cfg.size };
  const bytes = serializeInference(
    g,
    values,
    deployMeta(data, exportNormalization(o.net, cfg.channels), o.net === 'seg' ? 'segmentation' : 'classification'),
  );
  writeOutput(o.out, bytes);
  const check = o.check
    ? await smokeRun(bytes, [cfg.batch, cfg.channels, cfg.size, cfg.size], [...logits.shape])
    : null;
  return {
    out: o.out,
    bytes: bytes.length,
    info: modelInfo(bytes),
    genotype: genotype.name ?? o.genotype,
    config: cfg,
    check,
  };
}

export function register(program: Command): void {
  program
    .command('export')
    .description('write a runnable inference .onnx of a DARTS network from a genotype (random weights)')
    .requiredOption('--genotype <name|path>', 'shipped genotype name (e.g. darts_v2) or a genotype JSON file')
    .addOption(
      new Option('--net <net>', 'network layout (seg: UnNAS segmentation network, ASPP head)')
        .choices(['cifar', 'imagenet', 'seg'])
        .makeOptionMandatory(),
    )
    .addOption(intOption('--C <n>', 'initial channels (default: cifar 36, imagenet 48, seg 82)'))
    .addOption(intOption('--layers <n>', 'number of cells (default: cifar 20, imagenet 14, seg 12)'))
    .addOption(intOption('--classes <n>', 'number of classes (default: cifar 10, imagenet 1000, seg 19)'))
    .addOption(intOption('--channels <n>', 'input channels', 3))
    .addOption(intOption('--size <n>', 'input height and width (default: cifar 32, imagenet 224, seg 769)'))
    .addOption(intOption('--batch <n>', 'batch size of the check run (the model takes any batch)', 1))
    .addOption(seedOption())
    .addOption(outOption('model.onnx'))
    .option('--no-check', 'skip loading and running the written model with onnxruntime')
    .action(async (opts: ExportOptions) => {
      const r = await exportModel(opts);
      const c = r.config;
      const what = c.net === 'seg' ? 'seg (ASPP 256 [6,12,18], per-pixel logits)' : c.net;
      console.log(`wrote ${r.out} (${r.genotype}, ${what}: C=${c.C}, ${c.layers} cells, ${c.classes} classes)`);
      const rows: [string, string][] = [
        ['parameters', `${fmtInt(r.info.parameters)} (${fmtSI(r.info.parameters)})`],
        ['multiply-adds', `${fmtInt(r.info.multiplyAdds)} per sample (${fmtSI(r.info.multiplyAdds)})`],
        ['nodes', fmtInt(r.info.nodes)],
        ['input', `x [${BATCH_DIM},${c.channels},${c.size},${c.size}] (any batch)`],
        ['file size', fmtBytes(r.bytes)],
      ];
      rows.push([
        'check',
        r.check
          ? `ran one batch of zeros on CPU in ${r.check.ms.toFixed(0)} ms → logits ${shapeStr(r.check.logitsShape)}`
          : 'skipped (--no-check)',
      ]);
      console.log(table(rows, '  '));
    });
}
