/**
 * SVG cell diagrams of a genotype (normal and reduce cells side by side):
 * inputs c_{k-2}, c_{k-1} on the left, the four intermediate nodes, and the
 * output c_{k} on the right; each edge is labelled with its op.
 */
import type { Genotype, OpName } from '../../graph/genotype.js';

const OP_COLOR: Record<OpName, string> = {
  none: '#999999',
  max_pool_3x3: '#1f77b4',
  avg_pool_3x3: '#17becf',
  skip_connect: '#7f7f7f',
  sep_conv_3x3: '#d62728',
  sep_conv_5x5: '#ff7f0e',
  dil_conv_3x3: '#2ca02c',
  dil_conv_5x5: '#9467bd',
};

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function cellSvg(ops: [OpName, number][], concat: number[], title: string, x0: number): string {
  const W = 520;
  const pos = (state: number): [number, number] => {
    if (state === 0) return [x0 + 40, 90];
    if (state === 1) return [x0 + 40, 250];
    const i = state - 2;
    return [x0 + 170 + i * 90, 70 + i * 60];
  };
  const out: [number, number] = [x0 + W - 40, 170];
  const parts: string[] = [
    `<text x="${x0 + W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>`,
  ];
  ops.forEach(([op, from], k) => {
    const to = 2 + Math.floor(k / 2);
    const [x1, y1] = pos(from);
    const [x2, y2] = pos(to);
    const mx = (x1 + x2) / 2;
    const my = (y1 + y2) / 2 - 18 + (k % 2) * 36;
    parts.push(
      `<path d="M${x1},${y1} Q${mx},${my} ${x2},${y2}" fill="none" stroke="${OP_COLOR[op]}" stroke-width="2" marker-end="url(#arrow)"/>`,
    );
    parts.push(
      `<text x="${mx}" y="${my}" font-size="10" text-anchor="middle" fill="${OP_COLOR[op]}">${esc(op)}</text>`,
    );
  });
  for (const s of concat) {
    const [x1, y1] = pos(s);
    parts.push(
      `<line x1="${x1}" y1="${y1}" x2="${out[0]}" y2="${out[1]}" stroke="#bbbbbb" stroke-dasharray="4 3" marker-end="url(#arrow)"/>`,
    );
  }
  const node = ([x, y]: [number, number], label: string, fill: string): string =>
    `<ellipse cx="${x}" cy="${y}" rx="26" ry="16" fill="${fill}" stroke="#333"/><text x="${x}" y="${y + 4}" font-size="12" text-anchor="middle">${esc(label)}</text>`;
  parts.push(node(pos(0), 'c_{k-2}', '#cfe8cf'), node(pos(1), 'c_{k-1}', '#cfe8cf'));
  for (let i = 0; i < 4; i++) parts.push(node(pos(i + 2), String(i), '#cde0f5'));
  parts.push(node(out, 'c_{k}', '#f5e3b3'));
  return parts.join('\n');
}

export function genotypeSvg(g: Genotype, caption = ''): string {
  const w = 1060;
  const h = 330;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif">`,
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
    `<rect width="${w}" height="${h}" fill="white"/>`,
    cellSvg(g.normal, g.normal_concat, 'normal cell', 0),
    cellSvg(g.reduce, g.reduce_concat, 'reduction cell', 530),
    caption
      ? `<text x="${w / 2}" y="${h - 8}" text-anchor="middle" font-size="12" fill="#555">${esc(caption)}</text>`
      : '',
    '</svg>',
    '',
  ].join('\n');
}

/** Per-cell architectures (SSWP-NAS: every cell may differ), two cells per row. */
export function cellsSvg(cells: { ops: [OpName, number][]; concat: number[]; title: string }[], caption = ''): string {
  const w = 1060;
  const rowH = 330;
  const rows = Math.ceil(cells.length / 2);
  const h = rows * rowH + (caption ? 20 : 0);
  const parts = cells.map(
    (c, i) =>
      `<g transform="translate(0,${Math.floor(i / 2) * rowH})">${cellSvg(c.ops, c.concat, c.title, (i % 2) * 530)}</g>`,
  );
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif">`,
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
    `<rect width="${w}" height="${h}" fill="white"/>`,
    ...parts,
    caption
      ? `<text x="${w / 2}" y="${h - 6}" text-anchor="middle" font-size="12" fill="#555">${esc(caption)}</text>`
      : '',
    '</svg>',
    '',
  ].join('\n');
}
