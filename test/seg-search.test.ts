/**
 * `nas-onnx search --objective seg` (the supervised baseline of UnNAS's
 * Cityscapes experiments) end to end through the CLI on a Cityscapes tree the
 * test writes (official-style labelIds), and a pretext objective on the same
 * images: both run, log their epochs and write a genotype; the seg search
 * keeps its settings (classes, crop) for --resume.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseGenotype } from '../graph/genotype.js';
import { repoPath } from '../graph/paths.js';
import { ensureWorkerBuilt, tempDir } from './fixtures/data-fixtures.js';
import { writeCityscapesTree } from './helpers/seg-data.js';

const tmp = tempDir('nas-onnx-seg-search-');
const city = join(tmp.dir, 'city');

beforeAll(async () => {
  ensureWorkerBuilt();
  await writeCityscapesTree(city, { train: 16, val: 2 }, [48, 96], 4);
}, 600_000);
afterAll(() => tmp.cleanup());

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [repoPath('bin', 'nas-onnx.js'), ...args], (err, stdout, stderr) => {
      res({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const TINY = [
  '--C',
  '4',
  '--layers',
  '3',
  '--batch',
  '4',
  '--epochs',
  '1',
  '--size',
  '33',
  '--limit',
  '8',
  '--workers',
  '1',
  '--quiet',
];

describe('search --objective seg', () => {
  it('searches on label maps (Cityscapes labelIds mapped to 19 classes) and writes a genotype', async () => {
    const out = join(tmp.dir, 'seg');
    const r = await cli(['search', '--objective', 'seg', '--data', city, ...TINY, '--out', out]);
    // (stderr may hold the search's notes, e.g. on a collapsing cell; no error)
    expect(r.stderr).not.toMatch(/^nas-onnx:/m);
    expect(r.code).toBe(0);
    const geno = parseGenotype(JSON.parse(readFileSync(join(out, 'genotype.json'), 'utf8')), 'genotype.json');
    expect(geno.normal).toHaveLength(8);
    const log = readFileSync(join(out, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(log).toHaveLength(1);
    expect(Number.isFinite(log[0].train_loss)).toBe(true);
    expect(log[0].train_loss).toBeGreaterThan(0);
    const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(cfg).toMatchObject({ objective: 'seg', classes: 19, layers: 3, size: 33 });
    expect(existsSync(join(out, 'data', 'index-train.json'))).toBe(true);
  }, 600_000);

  it('a pretext objective searches on the same images', async () => {
    const out = join(tmp.dir, 'rot');
    const small = ['--eval-C', '4', '--eval-layers', '3']; // the evaluation network costed per epoch
    const r = await cli(['search', '--objective', 'rot', '--data', city, ...TINY, ...small, '--out', out]);
    expect(r.stderr).not.toMatch(/^nas-onnx:/m);
    expect(r.code).toBe(0);
    expect(existsSync(join(out, 'genotype.json'))).toBe(true);
  }, 600_000);

  it('refuses seg without label maps or with SSWP, in one line', async () => {
    const a = await cli(['search', '--objective', 'seg', '--dataset', 'fashion-mnist', '--out', join(tmp.dir, 'x')]);
    expect(a.code).not.toBe(0);
    expect(a.stderr.trim().split('\n')).toEqual(['nas-onnx: --objective seg reads label maps: give --data <root>']);
    const b = await cli([
      'search',
      '--objective',
      'seg',
      '--method',
      'sswp',
      '--data',
      city,
      '--out',
      join(tmp.dir, 'y'),
    ]);
    expect(b.stderr.trim().split('\n')).toEqual(['nas-onnx: --objective seg searches with --method darts']);
  });
});
