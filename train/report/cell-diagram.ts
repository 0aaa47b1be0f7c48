/**
 * Cell diagrams: a DARTS cell as a left-to-right DAG (c_{k-2}, c_{k-1} → the
 * intermediate nodes → c_{k}), in the style of the DARTS reference code's
 * plot script, laid out by Graphviz's dot (compiled to WebAssembly:
 * @viz-js/viz). dot places each edge label as a node of its own, so labels
 * neither overlap each other nor sit on nodes; each label has a white box
 * and the op family's colour (palette.ts), and so has its edge.
 */
import { instance, type Viz } from '@viz-js/viz';
import type { Genotype, OpName } from '../../graph/genotype.js';
import { OP_COLOR } from './palette.js';

export interface CellSpec {
  /** Two [op, input state] pairs per intermediate node (0, 1 = c_{k-2}, c_{k-1}; 2.. = earlier nodes). */
  ops: readonly (readonly [OpName, number])[];
  /** The states concatenated into c_{k}. */
  concat: readonly number[];
  title: string;
}

let viz: Promise<Viz> | null = null;

/** Graphviz, loaded once per process. */
function graphviz(): Promise<Viz> {
  viz ??= instance();
  return viz;
}

/** Text for a Graphviz HTML-like label. */
function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const FILL = { input: '#b4eeb4', node: '#add8e6', output: '#eee8aa' };

/** The dot statements of one cell, its node ids prefixed with `p`. */
function cellStatements(c: CellSpec, p: string): string[] {
  const id = (state: number): string => (state < 2 ? `${p}_in${state}` : `${p}_n${state - 2}`);
  const steps = c.ops.length / 2;
  const s = [
    `subgraph cluster_${p} {`,
    `label=<<B>${esc(c.title)}</B>>; labeljust=l; labelloc=t; fontsize=13; color="#cccccc"; style=rounded;`,
    `${id(0)} [label=<c<SUB>k-2</SUB>> fillcolor="${FILL.input}"];`,
    `${id(1)} [label=<c<SUB>k-1</SUB>> fillcolor="${FILL.input}"];`,
    // c_{k-2} above c_{k-1}
    `{rank=same; ${id(1)} -> ${id(0)} [style=invis];}`,
  ];
  for (let i = 0; i < steps; i++) s.push(`${id(i + 2)} [label="${i}" fillcolor="${FILL.node}"];`);
  s.push(`${p}_out [label=<c<SUB>k</SUB>> fillcolor="${FILL.output}"];`);
  // nodes at the same depth in one column
  const depth: number[] = [0, 0];
  for (let i = 0; i < steps; i++)
    depth.push(1 + Math.max(...c.ops.slice(2 * i, 2 * i + 2).map(([, from]) => depth[from] ?? 0)));
  for (let d = 1; d <= steps; d++) {
    const same = depth.flatMap((x, st) => (x === d && st >= 2 ? [id(st)] : []));
    if (same.length > 1) s.push(`{rank=same; ${same.join('; ')};}`);
  }
  // each op is a small box on its edge: the edge runs through its label, so no label can be read as another's
  c.ops.forEach(([op, from], k) => {
    const color = OP_COLOR[op] ?? '#000000';
    const o = `${p}_op${k}`;
    s.push(
      `${o} [label="${esc(op)}" shape=box style="rounded,filled" fillcolor=white color="${color}" fontcolor="${color}" fontsize=11 height=0.25 margin="0.06,0.02"];`,
    );
    s.push(`${id(from)} -> ${o} [color="${color}" arrowhead=none];`);
    s.push(`${o} -> ${id(Math.floor(k / 2) + 2)} [color="${color}"];`);
  });
  for (const st of c.concat) s.push(`${id(st)} -> ${p}_out [color="#9e9e9e" style=dashed];`);
  s.push('}');
  return s;
}

/** Graphviz dot source of one cell, with an optional caption below it. */
export function cellDot(cell: CellSpec, caption = ''): string {
  return [
    'digraph cell {',
    'rankdir=LR; nodesep=0.25; ranksep=0.45; fontname="Helvetica"; bgcolor=white;',
    caption ? `label=<${esc(caption)}>; labelloc=b; fontsize=12;` : '',
    'node [shape=box style=filled fontname="Helvetica" fontsize=12 height=0.4 width=0.5 penwidth=1.2];',
    'edge [fontname="Helvetica" fontsize=11 penwidth=1.6 arrowsize=0.7];',
    ...cellStatements(cell, 'c'),
    '}',
  ].join('\n');
}

/** An SVG document of dot source (Graphviz's prolog, comments and ids dropped). */
export async function renderDot(dot: string): Promise<string> {
  const svg = (await graphviz()).renderString(dot, { format: 'svg' });
  // Graphviz's element ids (graph0, node1, …) are not referenced: dropped, so that figures can share a page
  return svg
    .slice(svg.indexOf('<svg'))
    .replace(/<!--[\s\S]*?-->\n?/g, '')
    .replace(/ id="[^"]*"/g, '');
}

/** SVG diagram of one cell. */
export function cellSvg(cell: CellSpec, caption = ''): Promise<string> {
  return renderDot(cellDot(cell, caption));
}

/** Width and height (pt) of a Graphviz SVG. */
function svgSize(svg: string): [number, number] {
  const m = /viewBox="[\d.-]+ [\d.-]+ ([\d.]+) ([\d.]+)"/.exec(svg);
  if (!m) throw new Error('cell diagram: Graphviz gave an SVG without a viewBox');
  return [Number(m[1]), Number(m[2])];
}

/**
 * SVG diagrams of cells, one under the other (each laid out on its own, so
 * the order is the given one); the caption goes under the last.
 */
export async function cellsSvg(cells: readonly CellSpec[], caption = ''): Promise<string> {
  const parts = await Promise.all(cells.map((c, i) => cellSvg(c, i === cells.length - 1 ? caption : '')));
  const sizes = parts.map(svgSize);
  const width = Math.max(...sizes.map((s) => s[0]), 1);
  const height = sizes.reduce((a, s) => a + s[1], 0);
  let y = 0;
  const nested = parts.map((p, i) => {
    const [w, h] = sizes[i]!;
    const out = p.replace(/^<svg width="[^"]*" height="[^"]*"/, `<svg x="0" y="${y}" width="${w}" height="${h}"`);
    y += h;
    return out;
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}pt" height="${height}pt" viewBox="0 0 ${width} ${height}">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    ...nested,
    '</svg>',
    '',
  ].join('\n');
}

/** The genotype's cells as specs: normal, then reduction. */
export function genotypeCells(g: Genotype): CellSpec[] {
  return [
    { ops: g.normal, concat: g.normal_concat, title: 'normal cell' },
    { ops: g.reduce, concat: g.reduce_concat, title: 'reduction cell' },
  ];
}

/** SVG diagram of a genotype: the normal cell above the reduction cell. */
export function genotypeSvg(g: Genotype, caption = ''): Promise<string> {
  return cellsSvg(genotypeCells(g), caption);
}
