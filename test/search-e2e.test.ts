/**
 * Label-free DARTS search end to end, one tiny supernet per objective on real
 * images: rot, jig and cls on Fashion-MNIST, col and simclr on a folder of
 * colour PNGs. Each run must leave a valid genotype, per-epoch log records
 * with finite losses and α, genotype.json and genotype.svg.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseGenotype } from '../graph/genotype.js';
import { runSearch, type SearchOptions } from '../train/search/darts.js';
import { checkRunDir, HAVE_FASHION_MNIST, writeColorFolder } from './helpers/search.js';

let tmp: string;
let colour: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'nas-onnx-search-e2e-'));
  colour = join(tmp, 'colour');
  await writeColorFolder(colour, 8);
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

// 8 images → two halves of 4 → 2 steps per epoch with batch 2; 2 epochs
// (no evaluation-network cost per epoch: search-cli's run covers it)
const tiny = {
  epochs: 2,
  batch: 2,
  C: 2,
  layers: 3,
  order: 1,
  limit: 8,
  workers: 0,
  quiet: true,
  seed: 3,
  evalNet: false,
} as const;

async function search(
  objective: NonNullable<SearchOptions['objective']>,
  data: string,
  order: 1 | 2 = 1,
): Promise<void> {
  const out = join(tmp, objective);
  const r = await runSearch({ ...tiny, objective, data, out, order });
  expect(r.stopped).toBe(false);
  expect(r.history).toHaveLength(2);
  parseGenotype(r.genotype);
  const geno = checkRunDir(out, 2);
  expect(geno.normal).toEqual(r.genotype.normal);
  expect(geno.reduce).toEqual(r.genotype.reduce);
  // α were trained: their softmax moved between the two epochs; the last record shows the final genotype
  const [first, last] = readFileSync(join(out, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { genotype: unknown; alpha_normal: number[][]; alpha_reduce: number[][] });
  expect(last!.alpha_normal).not.toEqual(first!.alpha_normal);
  expect(last!.alpha_reduce).not.toEqual(first!.alpha_reduce);
  expect(last!.genotype).toEqual(r.genotype);
  expect(r.nodes.wStep).toBeGreaterThan(r.nodes.alphaGrad);
  if (order === 2) expect(r.nodes.allGrad).toBeGreaterThan(r.nodes.alphaGrad);
}

describe('search end to end (tiny supernet, real images)', () => {
  it.skipIf(!HAVE_FASHION_MNIST)('rot on Fashion-MNIST', () => search('rot', 'fashion-mnist'));
  it.skipIf(!HAVE_FASHION_MNIST)('jig on Fashion-MNIST', () => search('jig', 'fashion-mnist'));
  it.skipIf(!HAVE_FASHION_MNIST)('cls on Fashion-MNIST', () => search('cls', 'fashion-mnist'));
  it('col on colour images', () => search('col', colour));
  it('simclr on colour images, second order', () => search('simclr', colour, 2));
});
