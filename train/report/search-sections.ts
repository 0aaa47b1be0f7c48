/**
 * Report sections about a search's architecture parameters: collapse
 * monitoring (parameter-free ops, softmax(α) mass, warnings, guard
 * decisions), α per edge over the epochs and at the end, and the genotype
 * of every epoch.
 */
import { PRIMITIVES, STEPS, type OpName } from '../../graph/genotype.js';
import { alphaSmallMultiples, heatmap, lineChart, type AlphaPoint, type LinePoint } from './charts.js';
import { formatCost } from './cost.js';
import { callout, esc, figure, table, type Section } from './html.js';
import { OP_COLOR } from './palette.js';
import type { LoggedCollapse, LoggedGuard, LogRecord } from './run-data.js';

/** Name of a cell state: c_{k-2}, c_{k-1}, then the intermediate nodes 0.. */
export function stateName(s: number): string {
  return s === 0 ? 'c_{k-2}' : s === 1 ? 'c_{k-1}' : String(s - 2);
}

/** Labels of a cell's 14 edges in α row order ("node 1 ← c_{k-2}"). */
export function edgeLabels(): string[] {
  const out: string[] = [];
  for (let i = 0; i < STEPS; i++) for (let j = 0; j < i + 2; j++) out.push(`node ${i} ← ${stateName(j)}`);
  return out;
}

/** A colour key of the ops. */
export function opLegend(ops: readonly OpName[] = PRIMITIVES): string {
  const items = ops.map((o) => `<span><i style="background:${OP_COLOR[o]}"></i>${esc(o)}</span>`);
  return `<div class="legend">${items.join('')}</div>`;
}

/** A cell's ops as text lines, coloured by op ("node 0: sep_conv_3x3 ← c_{k-1}, …"). */
export function cellText(ops: readonly (readonly [OpName, number])[]): string {
  const lines: string[] = [];
  for (let i = 0; i < ops.length / 2; i++) {
    const pair = ops.slice(2 * i, 2 * i + 2).map(([op, from]) => {
      return `<span class="op" style="color:${OP_COLOR[op] ?? '#000'}">${esc(op)} ← ${esc(stateName(from))}</span>`;
    });
    lines.push(`${i}: ${pair.join(', ')}`);
  }
  return lines.join('<br>');
}

/** The guards' decisions as lines. */
export function guardLines(epoch: number, gs: readonly LoggedGuard[]): string[] {
  return gs.map((g) => {
    if (g.guard === 'max-skip')
      return `epoch ${epoch}: skip cap (P-DARTS, k = ${g.k}) took skip_connect off ${(g.removed ?? []).map((r) => `${stateName(r.from)} → node ${r.node} (weight ${r.weight.toFixed(3)})`).join(', ')}`;
    if (g.guard === 'early-stop-skip')
      return `epoch ${epoch}: early stop (DARTS+, k = ${g.k}): the derived normal cell held ${g.skip} skip_connects; the search ended`;
    return `epoch ${epoch}: ${g.guard}`;
  });
}

/** Collapse monitoring of a DARTS search: counts and masses per epoch, warnings, guard decisions. */
export async function collapseSection(epochs: readonly LogRecord[], warnAbove: number): Promise<Section> {
  const rows = epochs.filter((r) => r.collapse && !Array.isArray(r.collapse));
  if (!rows.length)
    return { id: 'collapse', title: 'Collapse monitor', body: '<p>This log holds no collapse statistics.</p>' };
  const st = (r: LogRecord): LoggedCollapse => r.collapse as LoggedCollapse;
  const counts: LinePoint[] = rows.flatMap((r) => [
    { x: r.epoch!, y: st(r).param_free, series: 'parameter-free ops' },
    { x: r.epoch!, y: st(r).skip, series: 'skip_connect' },
    { x: r.epoch!, y: st(r).pools, series: 'pools' },
  ]);
  const mass: LinePoint[] = rows.flatMap((r) => [
    { x: r.epoch!, y: st(r).skip_mass, series: 'skip_connect' },
    { x: r.epoch!, y: st(r).pool_mass, series: 'max + avg pool' },
  ]);
  const colors = { 'parameter-free ops': '#b03a2e', skip_connect: OP_COLOR.skip_connect, pools: OP_COLOR.max_pool_3x3 };
  const countSvg = await lineChart(counts, {
    title: 'Derived normal cell: parameter-free ops (of 8)',
    xTitle: 'epoch',
    yTitle: 'ops',
    yDomain: [0, 2 * STEPS],
    integerX: true,
    colors,
    ...(warnAbove >= 0 ? { rule: { y: warnAbove, label: `warning above ${warnAbove}` } } : {}),
  });
  const massSvg = await lineChart(mass, {
    title: 'Normal cell: mean softmax(α) on parameter-free ops',
    xTitle: 'epoch',
    yTitle: 'share of softmax(α)',
    integerX: true,
    colors: { skip_connect: OP_COLOR.skip_connect, 'max + avg pool': OP_COLOR.max_pool_3x3 },
  });
  const warnings = rows.filter((r) => st(r).warning).map((r) => `epoch ${r.epoch}: ${esc(st(r).warning!)}`);
  const guards = epochs.flatMap((r) => guardLines(r.epoch ?? 0, r.guards ?? [])).map(esc);
  const table1 = table(
    ['epoch', 'parameter-free', 'skip_connect', 'pools', 'mass on skip', 'mass on pools'],
    rows.map((r) => [
      String(r.epoch),
      String(st(r).param_free),
      String(st(r).skip),
      String(st(r).pools),
      st(r).skip_mass.toFixed(3),
      st(r).pool_mass.toFixed(3),
    ]),
  );
  return {
    id: 'collapse',
    title: 'Collapse monitor',
    body: [
      warnings.length ? callout('warn', `<b>Warnings</b><br>${warnings.join('<br>')}`) : '',
      guards.length ? callout('info', `<b>Guard decisions</b><br>${guards.join('<br>')}`) : '',
      !warnings.length && !guards.length ? callout('info', 'No warning: the normal cell did not collapse.') : '',
      figure(countSvg),
      figure(massSvg),
      table1,
    ].join('\n'),
  };
}

/** α of a DARTS search: per edge over the epochs (small multiples) and at the last epoch (heatmaps). */
export async function alphaSection(epochs: readonly LogRecord[], ops: readonly OpName[]): Promise<Section> {
  const withAlpha = epochs.filter((r) => r.alpha_normal && r.alpha_reduce);
  const last = withAlpha[withAlpha.length - 1];
  if (!last) return { id: 'alpha', title: 'Architecture weights α', body: '<p>No α in this log.</p>' };
  const edges = edgeLabels();
  const parts: string[] = [opLegend(ops)];
  for (const [key, name] of [
    ['alpha_normal', 'normal'],
    ['alpha_reduce', 'reduction'],
  ] as const) {
    const points: AlphaPoint[] = withAlpha.flatMap((r) =>
      r[key]!.flatMap((row, e) => row.map((weight, k) => ({ epoch: r.epoch!, edge: edges[e]!, op: ops[k]!, weight }))),
    );
    parts.push(
      figure(
        await alphaSmallMultiples(points, { title: `softmax(α) per edge over the epochs: ${name} cell`, ops, edges }),
      ),
    );
  }
  for (const [key, name] of [
    ['alpha_normal', 'normal'],
    ['alpha_reduce', 'reduction'],
  ] as const) {
    const cells = last[key]!.flatMap((row, e) => row.map((value, k) => ({ row: edges[e]!, col: ops[k]!, value })));
    const svg = await heatmap(cells, {
      title: `softmax(α), epoch ${last.epoch}: ${name} cell`,
      rows: edges,
      cols: ops,
      rowTitle: 'edge',
      colTitle: 'op',
      valueTitle: 'softmax(α)',
      format: '.3f',
      domain: [0, 1],
    });
    parts.push(figure(svg));
  }
  return { id: 'alpha', title: 'Architecture weights α', body: parts.join('\n') };
}

/** The genotype derived at every epoch (and its evaluation network's cost, where the log has it). */
export function genotypeTableSection(epochs: readonly LogRecord[]): Section {
  const withCost = epochs.some((r) => r.eval_net);
  const rows = epochs
    .filter((r) => r.genotype)
    .map((r) => {
      const c = r.collapse && !Array.isArray(r.collapse) ? String(r.collapse.param_free) : '';
      const cost = withCost ? [r.eval_net ? esc(formatCost(r.eval_net)) : ''] : [];
      return [String(r.epoch), cellText(r.genotype!.normal), cellText(r.genotype!.reduce), c, ...cost];
    });
  const header = ['epoch', 'normal cell (node: op ← input)', 'reduction cell', 'parameter-free (normal)'];
  if (withCost) header.push('evaluation network');
  return {
    id: 'genotypes',
    title: 'Genotype per epoch',
    body: rows.length ? table(header, rows) : '<p>No genotype in this log.</p>',
  };
}
