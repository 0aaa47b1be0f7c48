/**
 * `report.html` of a run directory: one self-contained HTML page (inline SVG
 * and CSS, no script, no external URL) with the cell diagrams, the loss and
 * accuracy curves per epoch, α per edge over the epochs, the collapse
 * monitor with the guards' decisions, the genotype per epoch, and the run's
 * config. Written at the end of `search` and `train`, and by
 * `nas-onnx report <run dir>` at any time (also while the run goes on).
 */
import { join } from 'node:path';
import { PRIMITIVES, type OpName } from '../../graph/genotype.js';
import { SSWP_OPS } from '../../graph/nets/sswp.js';
import { writeFileAtomic } from '../runtime/fsutil.js';
import { cellSvg, genotypeCells } from './cell-diagram.js';
import { heatmap, lineChart, type LinePoint } from './charts.js';
import { callout, esc, figure, htmlPage, keyValueTable, table, type Section } from './html.js';
import { readRun, type LoggedCollapse, type LogRecord, type RunData } from './run-data.js';
import { alphaSection, collapseSection, edgeLabels, genotypeTableSection, opLegend } from './search-sections.js';

const pct = (v: number | null | undefined): string => (typeof v === 'number' ? `${(100 * v).toFixed(1)}%` : '–');

/** Per-epoch curves of named fields: one chart, a series per field that the records hold. */
function curvePoints(epochs: readonly LogRecord[], fields: Record<string, keyof LogRecord>): LinePoint[] {
  return Object.entries(fields).flatMap(([series, f]) =>
    epochs.flatMap((r) => (typeof r[f] === 'number' && r.epoch ? [{ x: r.epoch, y: r[f] as number, series }] : [])),
  );
}

async function curvesSection(
  epochs: readonly LogRecord[],
  loss: Record<string, keyof LogRecord>,
  acc: Record<string, keyof LogRecord>,
  what: string,
): Promise<Section> {
  const parts: string[] = [];
  const l = curvePoints(epochs, loss);
  const a = curvePoints(epochs, acc).map((p) => ({ ...p, y: 100 * p.y }));
  if (l.length)
    parts.push(figure(await lineChart(l, { title: `${what} loss`, xTitle: 'epoch', yTitle: 'loss', integerX: true })));
  if (a.length)
    parts.push(
      figure(
        await lineChart(a, { title: `${what} accuracy`, xTitle: 'epoch', yTitle: 'accuracy (%)', integerX: true }),
      ),
    );
  const lr = curvePoints(epochs, { lr: 'lr' });
  if (lr.length > 1)
    parts.push(figure(await lineChart(lr, { title: 'learning rate', xTitle: 'epoch', yTitle: 'lr', integerX: true })));
  return { id: 'curves', title: 'Curves', body: parts.length ? parts.join('\n') : '<p>No finished epoch yet.</p>' };
}

async function genotypeSection(run: RunData, note: string): Promise<Section> {
  if (!run.genotype) return { id: 'cells', title: 'Cells', body: '<p>No genotype.json yet.</p>' };
  const figs = await Promise.all(genotypeCells(run.genotype).map(async (c) => figure(await cellSvg(c))));
  return { id: 'cells', title: 'Cells', body: `<p>${esc(note)}</p>${opLegend()}\n${figs.join('\n')}` };
}

function configSection(run: RunData): Section {
  const cfg = run.config ? keyValueTable(run.config) : '<p>No config.json in this run directory.</p>';
  const files = run.files.map((f) => `<code>${esc(f)}</code>`).join(' · ');
  return { id: 'config', title: 'Config and files', body: `${cfg}\n<h3>Files</h3><p>${files}</p>` };
}

function summaryRows(run: RunData, rows: [string, string][]): Section {
  const last = run.epochs[run.epochs.length - 1];
  const guards = run.epochs.flatMap((r) => r.guards ?? []);
  const stop = guards.find((g) => g.guard === 'early-stop-skip');
  const lastCollapse = last?.collapse && !Array.isArray(last.collapse) ? (last.collapse as LoggedCollapse) : null;
  const notes: string[] = [];
  if (stop) notes.push(callout('info', `The early-stop guard (DARTS+, k = ${stop.k}) ended the search.`));
  if (lastCollapse?.warning) notes.push(callout('warn', `Last epoch: ${esc(lastCollapse.warning)}`));
  return {
    id: 'summary',
    title: 'Summary',
    body: `${notes.join('\n')}${table(
      ['', ''],
      rows.map(([k, v]) => [esc(k), esc(v)]),
      'kv',
    )}`,
  };
}

async function dartsSections(run: RunData): Promise<Section[]> {
  const cfg = run.config ?? {};
  const ops = (cfg.primitives as OpName[] | undefined) ?? [...PRIMITIVES];
  const last = run.epochs[run.epochs.length - 1];
  const logged = run.epochs.map((r) => (Array.isArray(r.collapse) ? undefined : r.collapse?.warn_above));
  const warn = logged.reverse().find((v) => typeof v === 'number') ?? -1;
  const summary = summaryRows(run, [
    ['method', `DARTS (order ${String(cfg.order ?? '?')}), objective ${String(cfg.objective ?? '?')}`],
    ['epochs', `${run.epochs.length} of ${String(cfg.epochs ?? '?')}`],
    [
      'last epoch',
      last
        ? `loss ${last.train_loss?.toFixed(3)} / val ${last.val_loss?.toFixed(3)}, accuracy ${pct(last.train_acc)} / val ${pct(last.val_acc)}`
        : '–',
    ],
    ['network', `C = ${String(cfg.C ?? '?')}, ${String(cfg.layers ?? '?')} cells, batch ${String(cfg.batch ?? '?')}`],
    ['data', `${String(cfg.data ?? '?')}${cfg.limit ? ` (first ${String(cfg.limit)} images)` : ''}`],
    ['time', `${run.epochs.reduce((s, r) => s + (r.seconds ?? 0), 0).toFixed(0)} s`],
  ]);
  return [
    summary,
    await genotypeSection(run, 'The genotype derived from α at the last epoch (genotype.json).'),
    await curvesSection(
      run.epochs,
      { train: 'train_loss', val: 'val_loss' },
      { train: 'train_acc', val: 'val_acc' },
      `${String(cfg.objective ?? '')} pretext`,
    ),
    await collapseSection(run.epochs, warn),
    await alphaSection(run.epochs, ops),
    genotypeTableSection(run.epochs),
    configSection(run),
  ];
}

async function sswpCellsSection(run: RunData): Promise<Section> {
  if (!run.cells) return { id: 'cells', title: 'Cells', body: '<p>No cells.json yet.</p>' };
  return perCellSection(run.cells);
}

/** One diagram per cell of a cells.json (SSWP-NAS). */
async function perCellSection(arch: NonNullable<RunData['cells']>): Promise<Section> {
  const figs = await Promise.all(
    arch.cells.map(async (c) => {
      const title = `cell ${c.cell}${c.reduction ? ' (reduction)' : ''}${c.pruned ? '' : ' (searching)'}`;
      return figure(await cellSvg({ ops: c.ops, concat: c.concat, title }));
    }),
  );
  return {
    id: 'cells',
    title: 'Cells',
    body: `<p>One architecture per cell (cells.json).</p>${opLegend(SSWP_OPS)}\n${figs.join('\n')}`,
  };
}

/** SSWP: parameter-free ops per cell over the epochs, and the last epoch's α per cell. */
async function sswpAlphaSection(run: RunData): Promise<Section> {
  const withStats = run.epochs.filter((r) => Array.isArray(r.collapse));
  const parts: string[] = [];
  if (withStats.length) {
    const cellsN = (withStats[0]!.collapse as LoggedCollapse[]).length;
    const rows = Array.from({ length: cellsN }, (_, i) => `cell ${i}`);
    const cols = withStats.map((r) => String(r.epoch));
    const data = withStats.flatMap((r) =>
      (r.collapse as LoggedCollapse[]).map((c, i) => ({ row: rows[i]!, col: String(r.epoch), value: c.param_free })),
    );
    const svg = await heatmap(data, {
      title: 'Parameter-free ops in each derived cell (of 8)',
      rows,
      cols,
      rowTitle: 'cell',
      colTitle: 'epoch',
      valueTitle: 'ops',
      format: 'd',
      domain: [0, 8],
      scheme: 'oranges',
    });
    parts.push(figure(svg));
  }
  const last = [...run.epochs].reverse().find((r) => r.alpha);
  if (last?.alpha) {
    const edges = edgeLabels();
    for (const [i, cell] of last.alpha.entries()) {
      const cells = cell.flatMap((row, e) => row.map((value, k) => ({ row: edges[e]!, col: SSWP_OPS[k]!, value })));
      const svg = await heatmap(cells, {
        title: `cell ${i}: softmax(α), epoch ${last.epoch}`,
        rows: edges,
        cols: SSWP_OPS,
        rowTitle: 'edge',
        colTitle: 'op',
        valueTitle: 'softmax(α)',
        domain: [0, 1],
      });
      parts.push(figure(svg));
    }
  }
  const prunes = run.records.filter((r) => r.type === 'prune');
  if (prunes.length)
    parts.push(
      `<h3>Pruning</h3>${table(
        ['step', 'cell', 'ops'],
        prunes.map((p) => [String(p.step), String(p.cell), esc(JSON.stringify(p.ops))]),
      )}`,
    );
  return {
    id: 'alpha',
    title: 'Architecture weights α and pruning',
    body: parts.join('\n') || '<p>Nothing logged yet.</p>',
  };
}

async function sswpSections(run: RunData): Promise<Section[]> {
  const cfg = run.config ?? {};
  const summary = summaryRows(run, [
    ['method', `SSWP-NAS, objective ${String(cfg.objective ?? '?')}`],
    ['epochs', `${run.epochs.length} of ${String(cfg.epochs ?? '?')}`],
    ['network', `C = ${String(cfg.C ?? run.cells?.C ?? '?')}, ${String(cfg.layers ?? run.cells?.layers ?? '?')} cells`],
    ['time', `${run.epochs.reduce((s, r) => s + (r.seconds ?? 0), 0).toFixed(0)} s`],
  ]);
  return [
    summary,
    await sswpCellsSection(run),
    await curvesSection(
      run.epochs,
      { weights: 'loss', 'α steps': 'arch_loss' },
      { weights: 'acc', 'α steps': 'arch_acc' },
      'pretext',
    ),
    await sswpAlphaSection(run),
    configSection(run),
  ];
}

async function trainSections(run: RunData): Promise<Section[]> {
  const cfg = run.config ?? {};
  const last = run.epochs[run.epochs.length - 1];
  const summary = summaryRows(run, [
    ['network', run.cells ? 'one architecture per cell (cells.json)' : String(run.genotype?.name ?? '?')],
    ['epochs', `${run.epochs.length} of ${String(cfg.epochs ?? '?')}`],
    ['last epoch', last ? `train accuracy ${pct(last.train_acc)}, test accuracy ${pct(last.test_acc)}` : '–'],
    ['time', `${run.epochs.reduce((s, r) => s + (r.seconds ?? 0), 0).toFixed(0)} s`],
  ]);
  return [
    summary,
    run.cells ? await perCellSection(run.cells) : await genotypeSection(run, 'The trained genotype.'),
    await curvesSection(
      run.epochs,
      { train: 'train_loss', test: 'test_loss' },
      { train: 'train_acc', test: 'test_acc' },
      'classification',
    ),
    configSection(run),
  ];
}

const TITLES = { 'darts-search': 'DARTS search', 'sswp-search': 'SSWP-NAS search', train: 'Training' } as const;

/** The report page of a run directory. */
export async function runReportHtml(dir: string): Promise<string> {
  const run = readRun(dir);
  const sections =
    run.kind === 'darts-search'
      ? await dartsSections(run)
      : run.kind === 'sswp-search'
        ? await sswpSections(run)
        : await trainSections(run);
  return htmlPage({
    title: `${TITLES[run.kind]}: ${dir}`,
    subtitle: `nas-onnx run report, written ${new Date().toISOString()}`,
    sections,
  });
}

/** Write `<dir>/report.html`; returns its path. */
export async function writeRunReport(dir: string): Promise<string> {
  const html = await runReportHtml(dir);
  const path = join(dir, 'report.html');
  writeFileAtomic(path, html);
  return path;
}

/** writeRunReport at the end of a run: a failure is a warning line, not the run's failure. */
export async function tryWriteRunReport(dir: string): Promise<string | null> {
  try {
    return await writeRunReport(dir);
  } catch (e) {
    process.stderr.write(`warning: ${join(dir, 'report.html')} not written: ${(e as Error).message}\n`);
    return null;
  }
}
