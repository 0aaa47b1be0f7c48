/**
 * `nas-onnx build-supernet`: the DARTS search supernet as a self-contained
 * .onnx (weights, BN running statistics and α embedded as initializers).
 * Inference form by default (BN with running statistics); `--training`
 * writes the training-form forward (BN with batch statistics). The inference
 * form has a symbolic batch dimension; the training form the --batch it was built for.
 */
import type { Command } from 'commander';
import { buildSupernet } from '../../graph/nets/models.js';
import { serialize } from '../../graph/onnx.js';
import { BATCH_DIM } from '../../graph/deploy.js';
import { shapeStr } from '../../graph/ir.js';
import { initParams } from '../../train/runtime/params.js';
import { fmtBytes, fmtInt, table } from '../format.js';
import { checkOutPath, intOption, outOption, seedOption, writeOutput } from '../options.js';

export interface BuildSupernetOptions {
  C: number;
  layers: number;
  classes: number;
  channels: number;
  size: number;
  batch: number;
  seed: number;
  out: string;
  training: boolean;
}

export interface BuildSupernetResult {
  out: string;
  bytes: number;
  nodes: number;
  parameters: number;
  archParameters: number;
  alphaShapes: number[][];
}

export function buildSupernetFile(o: BuildSupernetOptions): BuildSupernetResult {
  checkOutPath(o.out);
  const { g, logits, trunk } = buildSupernet({
    C: o.C,
    layers: o.layers,
    classes: o.classes,
    channels: o.channels,
    size: o.size,
    batch: o.batch,
    training: o.training,
  });
  g.output(logits, 'logits');
  g.prune();
  g.meta.set('nas_onnx.form', o.training ? 'training' : 'inference');
  g.meta.set('nas_onnx.seed', String(o.seed));
  const values = initParams(g, o.seed);
  // the inference form takes any batch; the training form (batch statistics) keeps the built one
  const bytes = serialize(g, { params: 'initializers', values, batchDim: o.training ? undefined : BATCH_DIM });
  writeOutput(o.out, bytes);
  return {
    out: o.out,
    bytes: bytes.length,
    nodes: g.nodes.length,
    parameters: g.paramCount(['weight']),
    archParameters: g.paramCount(['arch']),
    alphaShapes: trunk.alphas.map((a) => [...a.shape]),
  };
}

export function register(program: Command): void {
  program
    .command('build-supernet')
    .description('write the DARTS search supernet (weights and α embedded) as an .onnx file')
    .addOption(intOption('--C <n>', 'initial channels', 16))
    .addOption(intOption('--layers <n>', 'number of cells', 8))
    .addOption(intOption('--classes <n>', 'number of classes', 10))
    .addOption(intOption('--channels <n>', 'input channels', 3))
    .addOption(intOption('--size <n>', 'input height and width', 32))
    .addOption(intOption('--batch <n>', 'batch size of the training form (the inference form takes any batch)', 64))
    .addOption(seedOption())
    .addOption(outOption('supernet.onnx'))
    .option('--training', 'training-form forward (BN with batch statistics) instead of inference form', false)
    .action((opts: BuildSupernetOptions) => {
      const r = buildSupernetFile(opts);
      const alpha = r.alphaShapes.map((s) => shapeStr(s)).join(' + ');
      console.log(`wrote ${r.out} (${opts.training ? 'training' : 'inference'} form)`);
      console.log(
        table(
          [
            ['nodes', fmtInt(r.nodes)],
            ['parameters', `${fmtInt(r.parameters)} weights + ${fmtInt(r.archParameters)} α`],
            ['α', `${alpha} (normal, reduce)`],
            [
              'input',
              `x ${opts.training ? shapeStr([opts.batch, opts.channels, opts.size, opts.size]) : `[${BATCH_DIM},${opts.channels},${opts.size},${opts.size}]`}`,
            ],
            ['file size', fmtBytes(r.bytes)],
          ],
          '  ',
        ),
      );
    });
}
