/**
 * The cell diagrams (Graphviz dot, via @viz-js/viz) are readable: read back
 * from the SVG, every op label is a box on its own edge, no two boxes
 * (nodes, op labels) overlap, no edge runs through a box that is not one of
 * its ends, every text sits in its box, and the drawing is the genotype
 * (each op once, on the edge from its input to its node). Checked on the
 * shipped genotypes, seeded random ones and crowded hand-made ones.
 */
import { describe, expect, it } from 'vitest';
import { loadGenotype, PRIMITIVES, shippedGenotypes, STEPS, type OpName } from '../graph/genotype.js';
import { Rng } from '../graph/rng.js';
import { cellSvg, genotypeSvg, type CellSpec } from '../train/report/cell-diagram.js';
import { OP_COLOR } from '../train/report/palette.js';

interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

interface NodeShape {
  id: string;
  box: Box;
  texts: { x: number; y: number; size: number; text: string; fill: string | null }[];
  stroke: string | null;
}

interface EdgeShape {
  tail: string;
  head: string;
  /** Cubic Bézier segments, each [p0, c1, c2, p3]. */
  curves: [number, number][][];
}

const unescapeXml = (s: string): string =>
  s.replace(/&#45;/g, '-').replace(/&gt;/g, '>').replace(/&lt;/g, '<').replace(/&amp;/g, '&');

function numbers(s: string): number[] {
  return [...s.matchAll(/-?\d+(?:\.\d+)?/g)].map((m) => Number(m[0]));
}

function boxOf(coords: number[]): Box {
  const xs = coords.filter((_, i) => i % 2 === 0);
  const ys = coords.filter((_, i) => i % 2 === 1);
  return { x0: Math.min(...xs), y0: Math.min(...ys), x1: Math.max(...xs), y1: Math.max(...ys) };
}

/** Nodes and edges of a Graphviz SVG (one cell). */
function parse(svg: string): { nodes: Map<string, NodeShape>; edges: EdgeShape[] } {
  const nodes = new Map<string, NodeShape>();
  const edges: EdgeShape[] = [];
  for (const g of svg.matchAll(/<g class="(node|edge)">([\s\S]*?)<\/g>/g)) {
    const body = g[2]!;
    const title = unescapeXml(/<title>([^<]*)<\/title>/.exec(body)![1]!);
    if (g[1] === 'node') {
      const shape = /<(polygon|path) fill="[^"]*" stroke="([^"]*)"[^>]* (?:points|d)="([^"]*)"/.exec(body)!;
      const texts = [
        ...body.matchAll(/<text[^>]* x="([-\d.]+)" y="([-\d.]+)"[^>]*font-size="([\d.]+)"([^>]*)>([^<]*)<\/text>/g),
      ].map((t) => ({
        x: Number(t[1]),
        y: Number(t[2]),
        size: Number(t[3]),
        fill: /fill="([^"]*)"/.exec(t[4]!)?.[1] ?? null,
        text: unescapeXml(t[5]!),
      }));
      nodes.set(title, { id: title, box: boxOf(numbers(shape[3]!)), texts, stroke: shape[2]! });
    } else {
      const [tail, head] = title.split('->') as [string, string];
      const d = /<path fill="none"[^>]* d="([^"]*)"/.exec(body)![1]!;
      const pts = numbers(d);
      const p: [number, number][] = [];
      for (let i = 0; i < pts.length; i += 2) p.push([pts[i]!, pts[i + 1]!]);
      const curves: [number, number][][] = [];
      for (let i = 0; i + 3 < p.length; i += 3) curves.push(p.slice(i, i + 4));
      edges.push({ tail, head, curves });
    }
  }
  return { nodes, edges };
}

function bezier(c: [number, number][], t: number): [number, number] {
  const u = 1 - t;
  const w = [u * u * u, 3 * u * u * t, 3 * u * t * t, t * t * t];
  return [c.reduce((s, p, i) => s + w[i]! * p[0], 0), c.reduce((s, p, i) => s + w[i]! * p[1], 0)];
}

/** Interiors intersect (boxes shrunk by `m` points: touching borders do not count). */
function overlaps(a: Box, b: Box, m = 0.5): boolean {
  return a.x0 + m < b.x1 - m && b.x0 + m < a.x1 - m && a.y0 + m < b.y1 - m && b.y0 + m < a.y1 - m;
}

function inside(p: [number, number], b: Box, m = 0.5): boolean {
  return p[0] > b.x0 + m && p[0] < b.x1 - m && p[1] > b.y0 + m && p[1] < b.y1 - m;
}

/** Every readability check on one cell's diagram; returns the problems found. */
function problems(cell: CellSpec, svg: string): string[] {
  const out: string[] = [];
  const { nodes, edges } = parse(svg);
  const list = [...nodes.values()];
  // 2 inputs, the nodes, the output, one box per op; an edge into and out of each op box, one per concat state
  if (nodes.size !== 3 + cell.ops.length / 2 + cell.ops.length) out.push(`${nodes.size} nodes read back`);
  if (edges.length !== 2 * cell.ops.length + cell.concat.length) out.push(`${edges.length} edges read back`);
  if (edges.some((e) => e.curves.length === 0)) out.push('an edge without a curve');
  // the drawing is the cell: an op box per op, on the edge from its input to its node
  const state = (s: number): string => (s < 2 ? `c_in${s}` : `c_n${s - 2}`);
  cell.ops.forEach(([op, from], k) => {
    const n = nodes.get(`c_op${k}`);
    if (!n) return out.push(`op ${k} (${op}) has no box`);
    if (n.texts.map((t) => t.text).join('') !== op) out.push(`op ${k}: box reads '${n.texts.map((t) => t.text)}'`);
    if (n.stroke !== OP_COLOR[op]) out.push(`op ${k}: box colour ${n.stroke}, not ${op}'s`);
    const into = edges.filter((e) => e.head === n.id);
    const outOf = edges.filter((e) => e.tail === n.id);
    if (into.length !== 1 || into[0]!.tail !== state(from)) out.push(`op ${k}: not fed by ${state(from)}`);
    if (outOf.length !== 1 || outOf[0]!.head !== state(Math.floor(k / 2) + 2)) out.push(`op ${k}: not into its node`);
  });
  // no two boxes overlap
  for (let i = 0; i < list.length; i++)
    for (let j = i + 1; j < list.length; j++)
      if (overlaps(list[i]!.box, list[j]!.box)) out.push(`${list[i]!.id} overlaps ${list[j]!.id}`);
  // every text is in its box
  for (const n of list)
    for (const t of n.texts) {
      const half = 0.25 * t.size * t.text.length; // half of a width of at least 0.5 em per character
      if (!inside([t.x, t.y], n.box, 0) || n.box.x1 - n.box.x0 < 2 * half)
        out.push(`text '${t.text}' is not inside ${n.id}`);
    }
  // no edge runs through a box other than its ends
  for (const e of edges)
    for (const c of e.curves)
      for (let t = 0; t <= 1; t += 0.02) {
        const p = bezier(c, t);
        const hit = list.find((n) => n.id !== e.tail && n.id !== e.head && inside(p, n.box, 1));
        if (hit) {
          out.push(`edge ${e.tail}->${e.head} crosses ${hit.id}`);
          break;
        }
      }
  return out;
}

function randomCell(rng: Rng, ops: readonly OpName[]): [OpName, number][] {
  const cell: [OpName, number][] = [];
  for (let i = 0; i < STEPS; i++) {
    const a = rng.int(i + 2);
    let b = rng.int(i + 1);
    if (b >= a) b++;
    cell.push([ops[rng.int(ops.length)]!, a], [ops[rng.int(ops.length)]!, b]);
  }
  return cell;
}

const concat = [2, 3, 4, 5];
const ops = PRIMITIVES.filter((p) => p !== 'none');

describe('cell diagrams', () => {
  it('draws the shipped genotypes without overlaps, each op a labelled box on its edge', async () => {
    for (const name of shippedGenotypes()) {
      const g = loadGenotype(name);
      for (const [cellOps, title] of [
        [g.normal, 'normal'],
        [g.reduce, 'reduce'],
      ] as const) {
        const cell = { ops: cellOps, concat: g.normal_concat, title };
        expect(problems(cell, await cellSvg(cell)), `${name} ${title}`).toEqual([]);
      }
    }
  });

  it('draws random and crowded cells without overlaps', async () => {
    const rng = new Rng(19);
    const cells: [OpName, number][][] = Array.from({ length: 30 }, () => randomCell(rng, ops));
    // every edge from one input; a chain through the nodes; one op everywhere, the longest name
    cells.push(Array.from({ length: 8 }, (_, k) => [ops[k % ops.length]!, k % 2] as [OpName, number]));
    cells.push(Array.from({ length: 8 }, (_, k) => ['sep_conv_5x5', Math.floor(k / 2) + (k % 2)] as [OpName, number]));
    cells.push(Array.from({ length: 8 }, () => ['skip_connect', 0] as [OpName, number]));
    for (const [i, c] of cells.entries()) {
      const cell = { ops: c, concat, title: `cell ${i}` };
      expect(problems(cell, await cellSvg(cell)), JSON.stringify(c)).toEqual([]);
    }
  });

  it('finds an overlap when there is one (the check can fail)', async () => {
    const cell = { ops: loadGenotype('darts_v2').normal, concat, title: 'normal' };
    const svg = await cellSvg(cell);
    // move op box 1 onto op box 0
    const { nodes } = parse(svg);
    const b0 = nodes.get('c_op0')!.box;
    const b1 = nodes.get('c_op1')!.box;
    const dx = b0.x0 - b1.x0;
    const dy = b0.y0 - b1.y0;
    const moved = svg.replace(
      /(<g class="node">\s*<title>c_op1<\/title>\s*<path[^>]* d=")([^"]*)"/,
      (_, pre, d: string) => {
        const n = numbers(d);
        let s = '';
        for (let i = 0; i < n.length; i += 2) s += `${i ? ' ' : 'M'}${n[i]! + dx},${n[i + 1]! + dy}`;
        return `${pre}${s}"`;
      },
    );
    expect(moved).not.toBe(svg);
    expect(problems(cell, moved).some((p) => /c_op0 overlaps c_op1|c_op1 overlaps c_op0/.test(p))).toBe(true);
  });

  it('stacks the normal cell above the reduction cell in one SVG, with the caption', async () => {
    const svg = await genotypeSvg(loadGenotype('darts_v2'), 'a caption & more');
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="[\d.]+pt" height="[\d.]+pt"/);
    const inner = [...svg.matchAll(/<svg x="0" y="([\d.]+)"/g)].map((m) => Number(m[1]));
    expect(inner).toHaveLength(2);
    expect(inner[0]).toBe(0);
    expect(inner[1]).toBeGreaterThan(0);
    expect(svg.indexOf('normal cell')).toBeLessThan(svg.indexOf('reduction cell'));
    expect(svg).toContain('a caption &amp; more');
    expect(svg).not.toMatch(/ id="/);
  });
});
