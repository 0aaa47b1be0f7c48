/**
 * Run reports of small real runs: a DARTS search (with the collapse guards
 * on) and an evaluation training each leave report.html — valid HTML with
 * the expected sections, no external URL, the cell diagrams, the curves, α
 * and the guards' decisions — and `writeRunReport` renders a run directory
 * again (or says in one line why it cannot).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deriveCellCapped, loadGenotype, type OpName } from '../graph/genotype.js';
import { trainNetwork } from '../train/eval/trainer.js';
import { writeRunReport } from '../train/report/run-report.js';
import { runSearch, type SearchEpochRecord } from '../train/search/darts.js';
import { checkReportHtml } from './helpers/report.js';
import { HAVE_FASHION_MNIST, writeColorFolder } from './helpers/search.js';

let tmp: string;
let colour: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'nas-onnx-report-'));
  colour = join(tmp, 'colour');
  await writeColorFolder(colour, 8);
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const SEARCH_SECTIONS = ['summary', 'cells', 'curves', 'collapse', 'alpha', 'genotypes', 'config'];
// a small space where skip_connect is one of two parametric-free choices, so the guards have work
const OPS: OpName[] = ['none', 'max_pool_3x3', 'skip_connect', 'sep_conv_3x3'];

describe('run report', () => {
  it('a small DARTS search with both guards leaves a valid, self-contained report.html', async () => {
    const out = join(tmp, 'search');
    const r = await runSearch({
      objective: 'rot',
      data: colour,
      out,
      epochs: 3,
      batch: 2,
      C: 2,
      layers: 3,
      order: 1,
      limit: 8,
      workers: 0,
      quiet: true,
      seed: 5,
      primitives: OPS,
      collapse: { warnParamFree: 2, earlyStopSkip: 2, maxSkip: 1 },
    });
    const log = readFileSync(join(out, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as SearchEpochRecord);
    // each epoch: the statistics are those of α by DARTS's rule, the recorded genotype is capped,
    // and each guard acted exactly when its rule says so
    for (const rec of log) {
      const logits = rec.alpha_normal.flat().map(Math.log);
      const plain = deriveCellCapped(logits, OPS).cell;
      const skips = plain.filter(([op]) => op === 'skip_connect').length;
      expect(rec.collapse.skip).toBe(skips);
      expect(rec.collapse.param_free).toBe(plain.filter(([op]) => op !== 'sep_conv_3x3').length);
      expect(rec.genotype.normal).toEqual(deriveCellCapped(logits, OPS, 1).cell);
      expect(rec.genotype.normal.filter(([op]) => op === 'skip_connect').length).toBeLessThanOrEqual(1);
      expect((rec.guards ?? []).map((g) => g.guard)).toEqual([
        ...(skips > 1 ? ['max-skip'] : []),
        ...(skips > 2 ? ['early-stop-skip'] : []),
      ]);
      expect(!!rec.collapse.warning).toBe(rec.collapse.param_free > 2);
    }
    // this seed collapses at once: the first epoch's cell has 4 skip_connects, so the search ends there
    expect(log).toHaveLength(1);
    expect(log[0]!.collapse.skip).toBe(4);
    expect(r.guardStopEpoch).toBe(1);
    expect(r.history).toHaveLength(1);

    const html = readFileSync(join(out, 'report.html'), 'utf8');
    const els = checkReportHtml(html, SEARCH_SECTIONS);
    // the two cell diagrams, and charts: 2 curves, 2 collapse charts, 2 × α over epochs, 2 α heatmaps
    expect(els.filter((e) => e.tagName === 'svg').length).toBeGreaterThanOrEqual(2 + 2 + 2 + 4);
    expect(html).toContain('normal cell');
    expect(html).toContain('reduction cell');
    expect(html).toMatch(/early stop \(DARTS\+, k = 2\): the derived normal cell held 4 skip_connects/);
    expect(html).toMatch(/skip cap \(P-DARTS, k = 1\) took skip_connect off/);
    expect(html).toMatch(/The early-stop guard \(DARTS\+, k = 2\) ended the search/);
    expect(html).toMatch(/Warnings<\/b><br>epoch 1: derived normal cell: \d of 8 ops parameter-free/);
    expect(html).toContain('softmax(α) per edge over the epochs: normal cell');
    expect(html).toContain('<code>earlyStopSkip</code>');

    // rendered again from the directory alone: the same page, but for the time it was written
    rmSync(join(out, 'report.html'));
    expect(await writeRunReport(out)).toBe(join(out, 'report.html'));
    const again = readFileSync(join(out, 'report.html'), 'utf8');
    const strip = (s: string): string => s.replace(/written [\dT:.Z-]+/, '');
    expect(strip(again)).toBe(strip(html));
  });

  it.skipIf(!HAVE_FASHION_MNIST)('a small training run leaves its report.html', async () => {
    const out = join(tmp, 'train');
    await trainNetwork({
      genotype: loadGenotype('darts_v2'),
      dataset: 'fashion-mnist',
      out,
      C: 4,
      layers: 3,
      epochs: 2,
      batch: 8,
      limit: 16,
      auxWeight: 0,
      workers: 0,
      quiet: true,
    });
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    checkReportHtml(html, ['summary', 'cells', 'curves', 'config']);
    expect(html).toContain('classification accuracy');
    expect(html).toMatch(/<td>network<\/td><td>darts_v2<\/td>/);
    expect(html).toMatch(/2 of 2/);
  });

  it('says in one line why a directory cannot be reported', async () => {
    await expect(writeRunReport(join(tmp, 'nope'))).rejects.toThrow(/nope is not a directory/);
    mkdirSync(join(tmp, 'empty'));
    await expect(writeRunReport(join(tmp, 'empty'))).rejects.toThrow(
      /holds no log\.jsonl: not a search or training run/,
    );
    mkdirSync(join(tmp, 'started'));
    writeFileSync(join(tmp, 'started', 'log.jsonl'), '');
    await expect(writeRunReport(join(tmp, 'started'))).rejects.toThrow(/no search or training epochs yet/);
  });
});
