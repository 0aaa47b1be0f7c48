/**
 * SSWP-NAS fine-tuning arms and the label-fraction sweep, after a tiny search
 * on synthetic 24×24 colour images: the three arms (concomitant weights,
 * random, the SimCLR two-stage baseline) see the same data order and get the
 * same BN treatment (precise BN recomputed for each arm's final weights), the
 * baseline pre-trains the searched architecture with the search's budget, and
 * the sweep resumes exactly after an interruption.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSswpNetwork } from '../graph/nets/sswp.js';
import { bnStatsGraph } from '../graph/training.js';
import { DataPool, loadDataset } from '../train/data/index.js';
import { bnLoaderOf, labelledFraction, preciseBn, type FinetuneResult } from '../train/eval/finetune.js';
import { loadCheckpoint } from '../train/runtime/checkpoint.js';
import { loadSswpNetwork, runSswpSearch } from '../train/search/sswp/search.js';
import { cli, writeImageFolder } from './helpers/sswp.js';

let tmp: string;
let run: string;
const SEARCH_EPOCHS = 2;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'nas-onnx-sswp-ft-'));
  await writeImageFolder(join(tmp, 'images'), { train: 12, test: 8 }, 4, 24);
  run = join(tmp, 'run');
  // 48 images → halves of 24 → 3 steps of 8 images per epoch; 3 cells: the aux head sees 6×6
  await runSswpSearch({
    data: join(tmp, 'images'),
    out: run,
    epochs: SEARCH_EPOCHS,
    batch: 8,
    C: 2,
    layers: 3,
    workers: 0,
    bnBatches: 2,
    seed: 5,
    quiet: true,
  });
}, 600_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const TRAIN = ['--epochs', '2', '--batch', '8', '--cutout', '8', '--bn-batches', '2', '--workers', '0', '--quiet'];

describe('SSWP fine-tuning arms', () => {
  it('concomitant, random and simclr: same data order, precise BN for every arm, the baseline pre-trained with the search budget', async () => {
    const r = await cli([
      'finetune',
      '--from',
      run,
      '--labels-fraction',
      '0.5',
      '--init',
      'all',
      ...TRAIN,
      '--seed',
      '2',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const res = JSON.parse(readFileSync(join(run, 'finetune-0.5', 'result.json'), 'utf8')) as FinetuneResult;
    expect(res.runs.map((x) => x.init)).toEqual(['concomitant', 'random', 'simclr']);
    expect(res.labelled).toBe(24);
    // the same batches in the same order for every arm, epoch by epoch
    expect(new Set(res.runs.map((x) => x.dataDigest)).size).toBe(1);
    const epochDigests = res.runs.map((x) =>
      readFileSync(join(run, 'finetune-0.5', x.init, 'log.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { data?: string }).data)
        .filter(Boolean),
    );
    expect(epochDigests[0]!.length).toBe(2);
    expect(epochDigests[1]).toEqual(epochDigests[0]);
    expect(epochDigests[2]).toEqual(epochDigests[0]);
    // the same BN treatment: every arm's statistics are precise BN's for its own final weights
    for (const x of res.runs) expect(x.bn).toEqual({ mode: 'precise', batches: 2 });
    const net = loadSswpNetwork(run);
    const trainSet = await loadDataset(join(tmp, 'images'), { split: 'train' });
    const labelled = labelledFraction(trainSet, 0.5, 2);
    const cells = net.arch.cells.map((c) => c.ops);
    const bnG = bnStatsGraph(
      buildSswpNetwork({ C: 2, layers: 3, cells, batch: 8, input: [3, 24, 24], training: true, classes: 4 }).g,
    );
    const pool = new DataPool({ workers: 0 });
    for (const x of res.runs) {
      const t = loadCheckpoint(join(run, 'finetune-0.5', x.init, 'final')).tensors;
      const params = new Map([...t].map(([k, v]) => [k.slice('param:'.length), v]));
      const loader = bnLoaderOf(labelled, net.normalization, 8, 2, pool);
      const { stats } = await preciseBn({ s: { bnBatches: 2, ep: undefined }, bnG, bnLoader: loader }, params);
      expect(stats.size).toBeGreaterThan(10);
      for (const [k, v] of stats) expect(Array.from(params.get(k)!), `${x.init} ${k}`).toEqual(Array.from(v));
      await loader.close();
    }
    await pool.close();
    // the baseline: the searched cells, pre-trained for as many steps as the search made
    const base = loadSswpNetwork(join(run, 'simclr'));
    expect(base.arch.cells.map((c) => c.ops)).toEqual(cells);
    expect(base.config.fixedCells).toEqual(cells);
    const stepsOf = (dir: string): string[] =>
      readFileSync(join(dir, 'log.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { type: string; phase?: string })
        .filter((l) => l.type === 'step')
        .map((l) => l.phase!);
    expect(stepsOf(join(run, 'simclr'))).toEqual(new Array(stepsOf(run).length).fill('pretrain'));
    expect(stepsOf(run).length).toBe(3 * SEARCH_EPOCHS);
  }, 600_000);

  it('--bn running: every arm starts from running statistics 0/1 and is evaluated with what it tracked', async () => {
    const r = await cli([
      'finetune',
      '--from',
      run,
      '--labels-fraction',
      '0.25',
      '--init',
      'concomitant,random',
      '--bn',
      'running',
      '--out',
      join(tmp, 'ft-running'),
      ...TRAIN,
      '--json',
    ]);
    expect(r.code).toBe(0);
    const res = JSON.parse(r.stdout) as FinetuneResult;
    for (const x of res.runs) expect(x.bn).toEqual({ mode: 'running', batches: 0 });
    expect(res.runs[0]!.dataDigest).toBe(res.runs[1]!.dataDigest);
  }, 600_000);
});

describe('label-fraction sweep', () => {
  it('writes one table and one chart, and resumes only the missing arms with identical results', async () => {
    const out = join(tmp, 'sweep');
    const args = ['sweep', '--from', run, '--out', out, '--fractions', '0.5,0.25', '--seeds', '0,1'];
    const arms = ['--inits', 'concomitant,random', ...TRAIN.filter((x) => x !== '--quiet'), '--epochs', '1'];
    const first = await cli([...args, ...arms, '--quiet']);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/8 arm\(s\) run now/);
    const table = readFileSync(join(out, 'table.md'), 'utf8');
    expect(table.split('\n')[0]).toBe('| labels | concomitant | random |');
    expect(table).toMatch(/^\| 50% \(24\) \| \d+\.\d\d ± \d+\.\d\d \| \d+\.\d\d ± \d+\.\d\d \|$/m);
    expect(table).toMatch(/^\| 25% \(12\) \|/m);
    const svg = readFileSync(join(out, 'accuracy.svg'), 'utf8');
    // a mean line and a band per arm (Vega-Lite, train/report/charts.ts)
    expect(svg.match(/aria-roledescription="line mark"/g)!.length).toBe(2);
    expect(svg.match(/aria-roledescription="area mark"/g)!.length).toBe(2);
    const summary = readFileSync(join(out, 'summary.json'), 'utf8');
    // an interruption: one (fraction, seed) lost both arms, another one arm
    const files = ['f0.25-s1-concomitant', 'f0.25-s1-random', 'f0.5-s0-random'].map((k) =>
      join(out, 'results', `${k}.json`),
    );
    const before = files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as { testAcc: number; dataDigest: string });
    const kept = join(out, 'results', 'f0.5-s1-concomitant.json');
    const keptTime = statSync(kept).mtimeMs;
    for (const f of files) unlinkSync(f);
    const again = await cli([...args, ...arms, '--quiet']);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/3 arm\(s\) run now/);
    expect(statSync(kept).mtimeMs).toBe(keptTime);
    const after = files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as { testAcc: number; dataDigest: string });
    expect(after.map((x) => [x.testAcc, x.dataDigest])).toEqual(before.map((x) => [x.testAcc, x.dataDigest]));
    const strip = (s: string) => {
      const { ranNow: _r, wallSeconds: _w, armSeconds: _a, ...rest } = JSON.parse(s) as Record<string, unknown>;
      return rest;
    };
    expect(strip(readFileSync(join(out, 'summary.json'), 'utf8'))).toEqual(strip(summary));
    // nothing left to run (how it runs, e.g. the worker count, may change on resume)
    const done = await cli([...args, ...arms, '--workers', '1', '--quiet']);
    expect(done.stdout).toMatch(/0 arm\(s\) run now/);
    // other settings in the same directory are refused
    const other = await cli([...args, ...arms, '--lr', '0.05', '--quiet']);
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/holds a sweep with other settings/);
    expect(existsSync(join(out, 'runs', 'f0.5-s0', 'random', 'model.onnx'))).toBe(false);
  }, 600_000);
});
