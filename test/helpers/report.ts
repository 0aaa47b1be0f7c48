/**
 * Checks of a report page: valid HTML (no parse error by the WHATWG parsing
 * rules, as parse5 implements them; doctype, lang, charset, title, unique
 * ids), the expected sections, and nothing that reaches outside the file.
 */
import { parse, type DefaultTreeAdapterMap } from 'parse5';
import { expect } from 'vitest';

type Node = DefaultTreeAdapterMap['node'];
type Element = DefaultTreeAdapterMap['element'];

function elements(n: Node, out: Element[] = []): Element[] {
  if ('tagName' in n) out.push(n);
  const kids = 'childNodes' in n ? n.childNodes : [];
  for (const c of kids) elements(c, out);
  // <template> content is not used in reports
  return out;
}

/** Assert `html` is a valid, self-contained report page with these section ids; returns its elements. */
export function checkReportHtml(html: string, sections: readonly string[]): Element[] {
  const errors: string[] = [];
  const doc = parse(html, { onParseError: (e) => errors.push(`${e.code} at line ${e.startLine}`) });
  expect(errors).toEqual([]);
  expect(doc.mode).toBe('no-quirks'); // the doctype is there
  const all = elements(doc);
  const attr = (e: Element, name: string): string | undefined => e.attrs.find((a) => a.name === name)?.value;
  const html0 = all.find((e) => e.tagName === 'html')!;
  expect(attr(html0, 'lang')).toBe('en');
  expect(all.some((e) => e.tagName === 'meta' && attr(e, 'charset') === 'utf-8')).toBe(true);
  const HTML_NS = 'http://www.w3.org/1999/xhtml';
  expect(all.filter((e) => e.tagName === 'title' && e.namespaceURI === HTML_NS)).toHaveLength(1);
  // unique ids
  const ids = all.map((e) => attr(e, 'id')).filter((v): v is string => v !== undefined);
  expect(ids.length).toBe(new Set(ids).size);
  // the sections, in order, each with content
  const found = all.filter((e) => e.tagName === 'section').map((e) => attr(e, 'id'));
  expect(found).toEqual([...sections]);
  // self-contained: no script, no stylesheet link, no frame or image source, no URL outside the page
  expect(all.filter((e) => ['script', 'link', 'iframe', 'img', 'object', 'embed'].includes(e.tagName))).toEqual([]);
  for (const e of all)
    for (const a of e.attrs) {
      if (a.name === 'src' || a.name.endsWith('href')) expect(a.value, `${e.tagName} ${a.name}`).toMatch(/^#/);
    }
  expect(html).not.toMatch(/https?:\/\/|\/\/[a-z0-9.-]+\.[a-z]{2,}\/|@import|url\((?!#)/i);
  return all;
}
