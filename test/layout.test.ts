/**
 * The layout's rules, checked on the source: imports flow one way
 * (cli/bench → train → graph; inside train: runtime/data → report → search →
 * eval → study) and there are no import cycles between modules.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');

/** Each folder and the folders its modules may import (besides itself and npm/node modules). */
const ALLOWED: Record<string, string[]> = {
  graph: ['graph'],
  'train/runtime': ['graph', 'train/runtime'],
  'train/data': ['graph', 'train/runtime', 'train/data'],
  'train/report': ['graph', 'train/runtime', 'train/report'],
  'train/search': ['graph', 'train/runtime', 'train/data', 'train/report', 'train/search'],
  'train/eval': ['graph', 'train/runtime', 'train/data', 'train/report', 'train/search', 'train/eval'],
  'train/study': ['graph', 'train/runtime', 'train/data', 'train/report', 'train/search', 'train/eval', 'train/study'],
  cli: ['graph', 'train', 'cli'],
  bench: ['graph', 'train', 'bench'],
};

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(root, dir))) {
    const p = join(dir, e);
    if (statSync(join(root, p)).isDirectory()) out.push(...sources(p));
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** The folder rule a file falls under (the longest matching key). */
function area(file: string): string {
  const keys = Object.keys(ALLOWED).filter((k) => file === k || file.startsWith(`${k}/`));
  const key = keys.sort((a, b) => b.length - a.length)[0];
  if (!key) throw new Error(`${file} is in no folder of the layout: add it to ALLOWED`);
  return key;
}

/** Relative imports of a file: static ones (with whether they are type-only) and dynamic ones. */
function imports(file: string): { target: string; typeOnly: boolean }[] {
  const src = readFileSync(join(root, file), 'utf8');
  const out: { target: string; typeOnly: boolean }[] = [];
  const re =
    /(?:^|\n)\s*(import|export)\s+(type\s+)?(?:[^'"]*?\s+from\s+)?['"](\.\.?\/[^'"]+)['"]|import\(\s*['"](\.\.?\/[^'"]+)['"]\s*\)/g;
  for (const m of src.matchAll(re)) {
    const spec = m[3] ?? m[4];
    if (!spec) continue;
    const target = relative(root, resolve(root, dirname(file), spec)).replace(/\.js$/, '.ts');
    out.push({ target, typeOnly: !!m[2] });
  }
  return out;
}

const files = ['graph', 'train', 'cli', 'bench'].flatMap(sources);

describe('layout', () => {
  it('every import goes to a folder its folder may import', () => {
    const bad: string[] = [];
    for (const f of files) {
      const allowed = ALLOWED[area(f)]!;
      for (const { target } of imports(f)) {
        if (!allowed.some((a) => target === a || target.startsWith(`${a}/`))) bad.push(`${f} → ${target}`);
      }
    }
    expect(bad).toEqual([]);
  });

  it('has no import cycles between modules (type-only imports aside)', () => {
    const edges = new Map(
      files.map((f) => [
        f,
        imports(f)
          .filter((i) => !i.typeOnly)
          .map((i) => i.target),
      ]),
    );
    const state = new Map<string, 'open' | 'done'>();
    const cycles: string[] = [];
    const visit = (f: string, path: string[]): void => {
      if (state.get(f) === 'done') return;
      if (state.get(f) === 'open') {
        cycles.push([...path.slice(path.indexOf(f)), f].join(' → '));
        return;
      }
      state.set(f, 'open');
      for (const t of edges.get(f) ?? []) visit(t, [...path, f]);
      state.set(f, 'done');
    };
    for (const f of files) visit(f, []);
    expect(cycles).toEqual([]);
  });

  it('finds a climbing import and a cycle when there is one (the checks can fail)', () => {
    expect(ALLOWED[area('graph/nets/darts.ts')]).not.toContain('train');
    expect(area('train/search/sswp/search.ts')).toBe('train/search');
    expect(() => area('elsewhere/x.ts')).toThrow(/no folder/);
  });
});
