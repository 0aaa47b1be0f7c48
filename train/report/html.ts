/**
 * One self-contained HTML page: inline CSS, inline SVG figures, no scripts,
 * no external URL (SVG namespace attributes are dropped: HTML parses inline
 * <svg> without them; element ids are made unique per figure).
 */

/** Text for HTML content and attribute values. */
export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

let figureCount = 0;

/**
 * An SVG document as inline HTML: no XML prolog, doctype, comments or
 * namespace declarations, and its ids (and the url(#…)/href="#…" that name
 * them) renamed `f<figure>-<k>` in order, so that figures on one page do not
 * share ids and the same figure gets the same ids every time.
 */
export function inlineSvg(svg: string): string {
  const p = `f${++figureCount}-`;
  const body = svg
    .replace(/<\?xml[^>]*\?>\s*/g, '')
    .replace(/<!DOCTYPE[^>]*>\s*/gi, '')
    .replace(/<!--[\s\S]*?-->\s*/g, '')
    .replace(/\s+xmlns(:\w+)?="[^"]*"/g, '')
    .trim();
  const ids = new Map<string, string>();
  for (const m of body.matchAll(/\sid="([^"]+)"/g)) if (!ids.has(m[1]!)) ids.set(m[1]!, `${p}${ids.size + 1}`);
  const name = (id: string): string => ids.get(id) ?? id;
  return body
    .replace(/(\sid=")([^"]+)"/g, (_, pre: string, id: string) => `${pre}${name(id)}"`)
    .replace(/url\(#([^)]+)\)/g, (_, id: string) => `url(#${name(id)})`)
    .replace(/(\s(?:xlink:)?href)="#([^"]+)"/g, (_, pre: string, id: string) => `${pre}="#${name(id)}"`);
}

export interface Section {
  id: string;
  title: string;
  /** HTML content. */
  body: string;
}

/** A figure: inline SVG with a caption. */
export function figure(svg: string, caption = ''): string {
  return `<figure>${inlineSvg(svg)}${caption ? `<figcaption>${esc(caption)}</figcaption>` : ''}</figure>`;
}

/** A table; cells are HTML (escape text with esc); no header row when every header is empty. */
export function table(header: readonly string[], rows: readonly (readonly string[])[], cls = ''): string {
  const head = header.some((h) => h)
    ? `<thead><tr>${header.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead>`
    : '';
  const body = rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('\n');
  return `<table${cls ? ` class="${cls}"` : ''}>${head}<tbody>${body}</tbody></table>`;
}

/** Key → value rows of an object (values as JSON unless strings). */
export function keyValueTable(obj: Record<string, unknown>): string {
  const rows = Object.entries(obj).map(([k, v]) => [
    `<code>${esc(k)}</code>`,
    esc(typeof v === 'string' ? v : JSON.stringify(v)),
  ]);
  return table(['setting', 'value'], rows, 'kv');
}

/** A highlighted note: 'warn' (orange) or 'info' (blue). */
export function callout(kind: 'warn' | 'info', html: string): string {
  return `<div class="callout ${kind}">${html}</div>`;
}

const CSS = `
body{font-family:Helvetica,Arial,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#263238;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#cfd8dc;font-size:13px}
nav{padding:8px 24px;background:#eceff1;font-size:13px;position:sticky;top:0}
nav a{margin-right:14px;color:#1565c0;text-decoration:none}
main{padding:8px 24px 40px}
section{background:#fff;border:1px solid #e0e0e0;border-radius:6px;margin:16px 0;padding:12px 18px}
h2{font-size:17px;margin:4px 0 10px}
h3{font-size:14px;margin:14px 0 6px}
figure{display:inline-block;margin:6px 18px 6px 0;vertical-align:top;max-width:100%;overflow-x:auto}
figure svg{max-width:100%;height:auto}
figcaption{font-size:12px;color:#555;margin-top:2px}
table{border-collapse:collapse;font-size:12px;margin:6px 0}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f3f3}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:12px}
.callout{padding:8px 12px;border-radius:4px;margin:8px 0;font-size:13px}
.callout.warn{background:#fff3e0;border-left:4px solid #ef6c00}
.callout.info{background:#e3f2fd;border-left:4px solid #1565c0}
.legend span{display:inline-block;margin-right:14px;font-size:12px}
.legend i{display:inline-block;width:22px;height:4px;margin-right:5px;vertical-align:middle}
.op{white-space:nowrap}
`;

/** Figure id prefixes numbered in page order (the same page gets the same ids however many came before). */
function renumberFigures(html: string): string {
  const seen = new Map<string, number>();
  return html.replace(/(id="|url\(#|href="#)f(\d+)-/g, (_, pre: string, n: string) => {
    if (!seen.has(n)) seen.set(n, seen.size + 1);
    return `${pre}f${seen.get(n)}-`;
  });
}

/** The page. */
export function htmlPage(o: { title: string; subtitle?: string; sections: readonly Section[] }): string {
  const nav = o.sections.map((s) => `<a href="#${esc(s.id)}">${esc(s.title)}</a>`).join('');
  const body = renumberFigures(
    o.sections.map((s) => `<section id="${esc(s.id)}">\n<h2>${esc(s.title)}</h2>\n${s.body}\n</section>`).join('\n'),
  );
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${esc(o.title)}</title>`,
    `<style>${CSS}</style>`,
    '</head>',
    '<body>',
    `<header><h1>${esc(o.title)}</h1>${o.subtitle ? `<p>${esc(o.subtitle)}</p>` : ''}</header>`,
    `<nav>${nav}</nav>`,
    `<main>\n${body}\n</main>`,
    '</body>',
    '</html>',
    '',
  ].join('\n');
}
