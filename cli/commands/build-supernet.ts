/**
 * `nas-onnx build-supernet`: the DARTS search supernet that `search` trains
 * for an objective (the same builder, stem and pretext head, and the task
 * geometry search derives from the crop size: rotations, jigsaw tiles,
 * colour bins), as a self-contained .onnx with the weights and α embedded, so
 * that `info` on it reports the parameters a search trains. Inference form by
 * default (BN with running statistics, output `logits`; any batch for the
 * per-sample heads); `--training` writes the training-form forward search runs
 * (batch-statistics BN, inputs x and labels, outputs loss and logits, the
 * --batch it was built for).
 */
import { type Command, Option } from 'commander';
import { BATCH_DIM } from '../../graph/deploy.js';
import type { StemKind } from '../../graph/nets/darts.js';
import { buildSearchForward } from '../../graph/nets/search.js';
import { ASPP_SEARCH } from '../../graph/nets/seg.js';
import type { Objective } from '../../graph/nets/tasks.js';
import { serialize } from '../../graph/onnx.js';
import { shapeStr } from '../../graph/ir.js';
import { resolveTask } from '../../train/data/pretext.js';
import { initParams } from '../../train/runtime/params.js';
import { searchTask } from '../../train/search/darts.js';
import { CliError } from '../errors.js';
import { fmtBytes, fmtInt, table } from '../format.js';
import { checkOutPath, intOption, outOption, seedOption, stemOption, writeOutput } from '../options.js';

export interface BuildSupernetOptions {
  /** The search objective (default cls: a classifier head over `classes`). */
  objective?: Objective;
  /** Default: imagenet for a size of 64 px or more, else cifar (as search). */
  stem?: StemKind;
  C: number;
  layers: number;
  /** Classes of the cls objective (the other objectives have their own). */
  classes: number;
  channels: number;
  /** Crop size (the images search is given). */
  size: number;
  /** Source images per batch (rot: 4 rows each, jigsaw: G² tiles). */
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
  stem: StemKind;
  /** Shape of x (rows of the batch: rotations and tiles included). */
  input: number[];
}

const OBJECTIVES: Record<string, Objective> = {
  cls: 'cls',
  rot: 'rot',
  rotation: 'rot',
  col: 'col',
  color: 'col',
  jig: 'jig',
  jigsaw: 'jig',
  simclr: 'simclr',
  seg: 'seg',
  segmentation: 'seg',
};

/** Inputs no node reads (the labels of a head whose loss was pruned away) are dropped. */
function dropUnreadInputs(g: ReturnType<typeof buildSearchForward>['g']): void {
  const read = new Set(g.nodes.flatMap((n) => n.inputs));
  for (let i = g.inputs.length - 1; i >= 0; i--) if (!read.has(g.inputs[i]!.name)) g.inputs.splice(i, 1);
}

/**
 * The batch axis of the written model: symbolic in the inference form of
 * the per-sample heads; the training form (batch statistics), the jigsaw head
 * (an image's tiles are consecutive rows) and SimCLR's (it compares the views
 * of a batch) keep the batch they were built for.
 */
function anyBatch(training: boolean, objective: Objective): string | undefined {
  return training || objective === 'jig' || objective === 'simclr' ? undefined : BATCH_DIM;
}

export function buildSupernetFile(o: BuildSupernetOptions): BuildSupernetResult {
  checkOutPath(o.out);
  const objective = o.objective ?? 'cls';
  const st = searchTask(objective, o.size, o.stem, o.classes);
  const shape = { c: o.channels, h: o.size, w: o.size, classes: o.classes, labelled: true };
  const task = resolveTask({ ...st.task, ...(objective === 'cls' ? { numClasses: o.classes } : {}) }, shape);
  const rows = task.xShape(o.batch)[0]!;
  const f = buildSearchForward(task, {
    C: o.C,
    layers: o.layers,
    batchRows: rows,
    stem: st.stem,
    training: o.training,
  });
  const g = f.g;
  if (o.training) g.output(f.loss, 'loss');
  g.output(f.logits, 'logits');
  g.prune();
  if (!o.training) dropUnreadInputs(g);
  g.meta.set('nas_onnx.kind', 'supernet');
  g.meta.set('nas_onnx.form', o.training ? 'training' : 'inference');
  g.meta.set('nas_onnx.seed', String(o.seed));
  g.meta.set(
    'nas_onnx.config',
    JSON.stringify({
      objective,
      stem: st.stem,
      C: o.C,
      layers: o.layers,
      classes: task.numClasses,
      input: [o.channels, o.size, o.size],
      ...(objective === 'seg' ? { task: 'seg', aspp: ASPP_SEARCH } : {}),
    }),
  );
  const values = initParams(g, o.seed);
  const bytes = serialize(g, { params: 'initializers', values, batchDim: anyBatch(o.training, objective) });
  writeOutput(o.out, bytes);
  const alphas = [...g.params.values()].filter((p) => p.role === 'arch');
  return {
    out: o.out,
    bytes: bytes.length,
    nodes: g.nodes.length,
    parameters: g.paramCount(['weight']),
    archParameters: g.paramCount(['arch']),
    alphaShapes: alphas.map((a) => [...a.shape]),
    stem: st.stem,
    input: task.xShape(o.batch),
  };
}

export function register(program: Command): void {
  program
    .command('build-supernet')
    .description(
      'write the DARTS supernet that search trains for an objective (weights and α embedded) as an .onnx file',
    )
    .addOption(
      new Option('--objective <task>', 'search objective: cls, rot, color, jigsaw, simclr or seg').default('cls'),
    )
    .addOption(stemOption())
    .addOption(intOption('--C <n>', 'initial channels', 16))
    .addOption(intOption('--layers <n>', 'number of cells', 8))
    .addOption(intOption('--classes <n>', 'number of classes of the cls and seg objectives (default: cls 10, seg 19)'))
    .addOption(intOption('--channels <n>', 'input channels', 3))
    .addOption(intOption('--size <n>', 'crop size (input height and width)', 32))
    .addOption(intOption('--batch <n>', 'images per batch of the training form (the inference form takes any)', 64))
    .addOption(seedOption())
    .addOption(outOption('supernet.onnx'))
    .option(
      '--training',
      'the training-form forward search runs (batch statistics, loss) instead of inference form',
      false,
    )
    .action((opts: BuildSupernetOptions & { objective: string }) => {
      const objective = OBJECTIVES[opts.objective.toLowerCase()];
      if (!objective)
        throw new CliError(`unknown objective '${opts.objective}' (use cls, rot, color, jigsaw, simclr or seg)`);
      const classes = opts.classes ?? (objective === 'seg' ? 19 : 10);
      const r = buildSupernetFile({ ...opts, objective, classes });
      const alpha = r.alphaShapes.map((s) => shapeStr(s)).join(' + ');
      const x = anyBatch(opts.training, objective) ? `[${BATCH_DIM},${r.input.slice(1).join(',')}]` : shapeStr(r.input);
      console.log(
        `wrote ${r.out} (${objective} search supernet, ${r.stem} stem, ${opts.training ? 'training' : 'inference'} form)`,
      );
      console.log(
        table(
          [
            ['nodes', fmtInt(r.nodes)],
            ['parameters', `${fmtInt(r.parameters)} weights + ${fmtInt(r.archParameters)} α`],
            ['α', `${alpha} (normal, reduce)`],
            ['input', `x ${x}`],
            ['file size', fmtBytes(r.bytes)],
          ],
          '  ',
        ),
      );
    });
}
