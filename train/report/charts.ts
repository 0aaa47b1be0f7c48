/**
 * Charts as SVG strings: Vega-Lite specifications compiled to Vega and
 * rendered headless by Vega's own SVG renderer (`View.toSVG()`, no canvas,
 * no browser, no network: the data is inline). Every chart of a report and
 * of a study is drawn here, so there is one way to draw.
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { OpName } from '../../graph/genotype.js';
import { opColors, SERIES_COLORS } from './palette.js';

const FONT = 'Helvetica, Arial, sans-serif';

/** Shared look: fonts, sizes, no grey frame around facets. */
const CONFIG = {
  font: FONT,
  title: { fontSize: 14, anchor: 'start' as const, offset: 8 },
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal' as const },
  legend: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal' as const },
  header: { labelFontSize: 11, titleFontSize: 12 },
  view: { stroke: '#dddddd' },
};

/** Render a Vega-Lite specification to an SVG document string. */
export async function renderChart(spec: TopLevelSpec): Promise<string> {
  const withConfig = { ...spec, config: { ...CONFIG, ...(spec.config ?? {}) } } as TopLevelSpec;
  const view = new vega.View(vega.parse(compile(withConfig).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Colour scale of named series: the given colours first, then the palette. */
function seriesScale(
  names: readonly string[],
  colors: Record<string, string> = {},
): { domain: string[]; range: string[] } {
  let k = 0;
  const range = names.map((n) => colors[n] ?? SERIES_COLORS[k++ % SERIES_COLORS.length]!);
  return { domain: [...names], range };
}

export interface LinePoint {
  x: number;
  y: number;
  series: string;
}

export interface LineChartOptions {
  title: string;
  xTitle: string;
  yTitle: string;
  /** Series colours by name (others from the palette). */
  colors?: Record<string, string>;
  /** A dashed horizontal line (a threshold) with its label. */
  rule?: { y: number; label: string };
  yDomain?: [number, number];
  /** Integer ticks on x (epochs). */
  integerX?: boolean;
  width?: number;
  height?: number;
}

/** Lines with points, one per series, and an optional threshold rule. */
export function lineChart(points: readonly LinePoint[], o: LineChartOptions): Promise<string> {
  const names = [...new Set(points.map((p) => p.series))];
  const x = {
    field: 'x',
    type: 'quantitative' as const,
    title: o.xTitle,
    axis: o.integerX ? { tickMinStep: 1, format: 'd' } : {},
    scale: { zero: false, nice: false, padding: 10 },
  };
  const layers: object[] = [
    {
      mark: { type: 'line', point: true, strokeWidth: 2 },
      encoding: {
        x,
        y: {
          field: 'y',
          type: 'quantitative',
          title: o.yTitle,
          scale: o.yDomain ? { domain: o.yDomain } : { zero: false },
        },
        color: {
          field: 'series',
          type: 'nominal',
          title: null,
          scale: seriesScale(names, o.colors),
          sort: names,
          // one series: its name is the chart's title
          ...(names.length === 1 ? { legend: null } : {}),
        },
      },
    },
  ];
  if (o.rule)
    layers.push(
      { mark: { type: 'rule', strokeDash: [5, 4], color: '#b03a2e' }, encoding: { y: { datum: o.rule.y } } },
      {
        mark: { type: 'text', align: 'left', dx: 4, dy: -6, color: '#b03a2e', fontSize: 10 },
        encoding: { y: { datum: o.rule.y }, x: { value: 0 }, text: { value: o.rule.label } },
      },
    );
  return renderChart({
    title: o.title,
    width: o.width ?? 360,
    height: o.height ?? 220,
    data: { values: points.map((p) => ({ ...p })) },
    layer: layers,
  } as TopLevelSpec);
}

export interface AlphaPoint {
  epoch: number;
  /** Edge label, e.g. "node 0 ← c_{k-2}". */
  edge: string;
  op: OpName;
  weight: number;
}

/** softmax(α) over the epochs, one small chart per edge (in the given edge order), a line per op. */
export function alphaSmallMultiples(
  points: readonly AlphaPoint[],
  o: { title: string; ops: readonly OpName[]; edges: readonly string[]; columns?: number },
): Promise<string> {
  return renderChart({
    title: o.title,
    data: { values: points.map((p) => ({ ...p })) },
    facet: { field: 'edge', type: 'nominal', title: null, sort: [...o.edges], header: { labelFontSize: 10 } },
    columns: o.columns ?? 7,
    spec: {
      width: 110,
      height: 80,
      mark: { type: 'line', point: { size: 12 }, strokeWidth: 1.5 },
      encoding: {
        x: { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1, format: 'd' } },
        // not from zero: in a short search α move little from uniform, and the moves are what matters
        y: { field: 'weight', type: 'quantitative', title: 'softmax(α)', scale: { zero: false } },
        color: { field: 'op', type: 'nominal', title: 'op', scale: opColors(o.ops), sort: [...o.ops] },
      },
    },
    resolve: { scale: { y: 'shared' } },
  } as TopLevelSpec);
}

export interface HeatCell {
  /** Row label (an edge, a cell). */
  row: string;
  /** Column label (an op, an epoch). */
  col: string;
  value: number;
}

/** A heatmap with the values written in the cells (rows and columns in the given orders). */
export function heatmap(
  cells: readonly HeatCell[],
  o: {
    title: string;
    rows: readonly string[];
    cols: readonly string[];
    rowTitle: string;
    colTitle: string;
    valueTitle: string;
    format?: string;
    domain?: [number, number];
    scheme?: string;
  },
): Promise<string> {
  const cellPx = 46;
  const enc = {
    x: { field: 'col', type: 'ordinal', sort: [...o.cols], title: o.colTitle, axis: { labelAngle: -35 } },
    y: { field: 'row', type: 'ordinal', sort: [...o.rows], title: o.rowTitle },
  };
  return renderChart({
    title: o.title,
    width: Math.max(cellPx * o.cols.length, 120),
    height: 18 * o.rows.length,
    data: { values: cells.map((c) => ({ ...c })) },
    encoding: enc,
    layer: [
      {
        mark: 'rect',
        encoding: {
          color: {
            field: 'value',
            type: 'quantitative',
            title: o.valueTitle,
            scale: { scheme: o.scheme ?? 'blues', ...(o.domain ? { domain: o.domain } : {}) },
          },
        },
      },
      {
        mark: { type: 'text', fontSize: 9 },
        encoding: {
          text: { field: 'value', type: 'quantitative', format: o.format ?? '.2f' },
          color: {
            condition: { test: `datum.value > ${heatThreshold(cells, o.domain)}`, value: 'white' },
            value: 'black',
          },
        },
      },
    ],
  } as TopLevelSpec);
}

/** Value above which a heatmap cell is dark enough for white text. */
function heatThreshold(cells: readonly HeatCell[], domain?: [number, number]): number {
  const vs = cells.map((c) => c.value);
  const lo = domain?.[0] ?? Math.min(...vs, 0);
  const hi = domain?.[1] ?? Math.max(...vs, 1);
  return lo + 0.6 * (hi - lo);
}

/** A scatter plot. */
export function scatterChart(o: {
  x: readonly number[];
  y: readonly number[];
  title: string;
  xTitle: string;
  yTitle: string;
  color?: string;
}): Promise<string> {
  // no points: a fixed domain instead of an empty one
  const empty = o.x.length ? {} : { domain: [0, 1] };
  return renderChart({
    title: o.title,
    width: 360,
    height: 320,
    data: { values: o.x.map((x, i) => ({ x, y: o.y[i] })) },
    mark: { type: 'circle', size: 28, opacity: 0.65, color: o.color ?? SERIES_COLORS[0] },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: o.xTitle, scale: { zero: false, padding: 8, ...empty } },
      y: { field: 'y', type: 'quantitative', title: o.yTitle, scale: { zero: false, padding: 8, ...empty } },
    },
  } as TopLevelSpec);
}

export interface BandSeries {
  label: string;
  color?: string;
  points: readonly { m: number; mean: number; lo: number; hi: number }[];
}

/** Mean lines with shaded [lo, hi] bands per series (the study's random-experiment curves). */
export function bandChart(
  series: readonly BandSeries[],
  o: { title: string; xTitle: string; yTitle: string; logX?: boolean; note?: string },
): Promise<string> {
  const names = series.map((s) => s.label);
  const colors = Object.fromEntries(series.filter((s) => s.color).map((s) => [s.label, s.color!]));
  const values = series.flatMap((s) => s.points.map((p) => ({ ...p, series: s.label })));
  const color = { field: 'series', type: 'nominal', title: null, scale: seriesScale(names, colors), sort: names };
  const x = { field: 'm', type: 'quantitative', title: o.xTitle, scale: o.logX ? { type: 'log' } : { zero: false } };
  return renderChart({
    title: o.note ? { text: o.title, subtitle: o.note } : o.title,
    width: 420,
    height: 300,
    data: { values },
    encoding: { x },
    layer: [
      {
        mark: { type: 'area', opacity: 0.14 },
        encoding: {
          y: { field: 'lo', type: 'quantitative', title: o.yTitle, scale: { zero: false } },
          y2: { field: 'hi' },
          color: { ...color, legend: null },
        },
      },
      {
        mark: { type: 'line', point: true, strokeWidth: 2 },
        encoding: { y: { field: 'mean', type: 'quantitative' }, color },
      },
    ],
  } as TopLevelSpec);
}
