/**
 * UnNAS at large image sizes: the stem and jigsaw-tile rules of a search, the
 * ImageNet-stem supernet, `build-supernet` writing exactly the parameters a
 * search trains, and a `nas-onnx search --stem imagenet --size 224` on a
 * folder of 400×300 JPEGs that is killed (SIGKILL) mid-run and resumed,
 * ending bit-identical to an uninterrupted run (with another worker count).
 */
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import onnxProto from 'onnx-proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSupernetFile } from '../cli/commands/build-supernet.js';
import { buildSearchForward } from '../graph/nets/search.js';
import { resolveTask } from '../train/data/pretext.js';
import { loadCheckpoint } from '../train/runtime/checkpoint.js';
import { runSearch, searchTask } from '../train/search/darts.js';
import { gradientImage, writeImage } from './fixtures/data-fixtures.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'nas-onnx.js');
let tmp: string;
let photos: string;

beforeAll(async () => {
  try {
    execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
      cwd: ROOT,
      stdio: 'pipe',
    });
  } catch {
    // type errors elsewhere: the CLI is still emitted (checked below)
  }
  expect(existsSync(join(ROOT, 'dist', 'cli', 'main.js'))).toBe(true);
  tmp = mkdtempSync(join(tmpdir(), 'nas-onnx-search-large-'));
  photos = join(tmp, 'photos');
  mkdirSync(photos);
  for (let i = 0; i < 8; i++) await writeImage(join(photos, `p${i}.jpg`), gradientImage(300, 400, i), 3, 300, 400);
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** stderr lines other than the search's per-epoch collapse warning (a note on a tiny search, not an error). */
function notes(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((l) => l && !/^epoch \d+: derived normal cell: .* the search may be collapsing/.test(l));
}

describe('search network for large images', () => {
  it('the stem follows the crop size; large crops get a 3×3 jigsaw of 1000 permutations, 30% gray', () => {
    expect(searchTask('rot', 224, undefined)).toEqual({ stem: 'imagenet', task: { name: 'rot' } });
    expect(searchTask('rot', 32, undefined)).toEqual({ stem: 'cifar', task: { name: 'rot' } });
    expect(searchTask('col', 64, 'cifar').stem).toBe('cifar');
    // 224 px, 3×3 grid: patches of 74, tiles of ⌊0.76·74⌋ = 56
    const jig = resolveTask(searchTask('jig', 224, undefined).task, { c: 3, h: 224, w: 224 });
    expect([jig.inputShape, jig.numClasses, jig.options.grayProb]).toEqual([[3, 56, 56], 1000, 0.3]);
    // CIFAR size: the 12-pixel tiles of UnNAS, 24 permutations, no gray images
    const small = resolveTask(searchTask('jig', 32, undefined).task, { c: 3, h: 32, w: 32 });
    expect([small.inputShape, small.numClasses, small.options.grayProb]).toEqual([[3, 12, 12], 24, 0]);
  });

  it('the ImageNet stem: three stride-2 convs, channels from C, the first cell sees a reduced s0', () => {
    const task = resolveTask('rot', { c: 3, h: 64, w: 64 });
    const f = buildSearchForward(task, { C: 4, layers: 3, batchRows: 8, stem: 'imagenet' });
    const names = [...f.g.params.keys()];
    const conv = (n: string): number[] => [...f.g.params.get(n)!.shape];
    expect(conv('stem0/0/weight')).toEqual([2, 3, 3, 3]);
    expect(conv('stem0/3/weight')).toEqual([4, 2, 3, 3]);
    expect(conv('stem1/1/weight')).toEqual([4, 4, 3, 3]);
    // FactorizedReduce preprocessing of the first cell (two 1×1 convs of C/2)
    expect(names.filter((n) => n.startsWith('cells/0/preprocess0/') && n.endsWith('weight'))).toHaveLength(2);
    expect(names.some((n) => n.startsWith('stem/'))).toBe(false);
    const cifar = buildSearchForward(task, { C: 4, layers: 3, batchRows: 8, stem: 'cifar' });
    expect([...cifar.g.params.get('stem/0/weight')!.shape]).toEqual([12, 3, 3, 3]);
  });
});

/** The float initializers of an .onnx file (name → element count). */
function initializers(file: string): Map<string, number> {
  const g = onnxProto.onnx.ModelProto.decode(readFileSync(file)).graph as onnxProto.onnx.GraphProto;
  return new Map(g.initializer.map((t) => [t.name!, (t.dims ?? []).map(Number).reduce((a, b) => a * b, 1)]));
}

describe('build-supernet writes the supernet search trains', () => {
  it('the training form holds exactly the weights and α of a search checkpoint; info counts them', {
    timeout: 600_000,
  }, async () => {
    const out = join(tmp, 'run-small');
    await runSearch({
      objective: 'col',
      data: photos,
      out,
      size: 64,
      epochs: 1,
      batch: 2,
      C: 2,
      layers: 3,
      order: 1,
      workers: 0,
      quiet: true,
      stopAfterSteps: 1,
      evalNet: false,
    });
    const ckpt = loadCheckpoint(out);
    const trained = new Map(
      [...ckpt.tensors].filter(([k]) => k.startsWith('param:')).map(([k, v]) => [k.slice(6), v.length]),
    );
    const file = join(tmp, 'supernet-col.onnx');
    const base = { C: 2, layers: 3, classes: 10, channels: 3, size: 64, batch: 2, seed: 0 };
    const r = buildSupernetFile({ ...base, objective: 'col', out: file, training: true });
    expect(r.stem).toBe('imagenet');
    // every trained tensor is in the file, and the file's parameters are exactly those
    const inits = initializers(file);
    for (const [k, n] of trained) expect(inits.get(k), k).toBe(n);
    const total = [...trained.values()].reduce((a, b) => a + b, 0);
    expect(r.parameters + r.archParameters).toBe(total);
    const info = await cli(['info', file]);
    expect(info.stdout).toMatch(new RegExp(`parameters\\s+${total.toLocaleString('en-US')} `));
    // the inference form: the same weights and α (plus BN running statistics), any batch
    const inf = join(tmp, 'supernet-col-inf.onnx');
    buildSupernetFile({ ...base, objective: 'col', out: inf, training: false });
    const infInits = initializers(inf);
    for (const [k, n] of trained) expect(infInits.get(k)).toBe(n);
  });
});

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [BIN, ...args], { cwd: tmp, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      res({ code, stdout, stderr });
    });
  });
}

/** Waits until the run's newest checkpoint is at least `step`, then kills the process (SIGKILL). */
function killAfter(child: ChildProcess, out: string, step: number): Promise<number> {
  return new Promise((res, rej) => {
    const timer = setInterval(() => {
      const latest = join(out, 'checkpoints', 'LATEST');
      if (!existsSync(latest)) return;
      const at = Number(readFileSync(latest, 'utf8').trim().replace('step-', ''));
      if (at >= step) {
        clearInterval(timer);
        child.kill('SIGKILL');
        res(at);
      }
    }, 20);
    child.on('exit', (code) => {
      clearInterval(timer);
      if (code !== null) rej(new Error(`the search ended (exit ${code}) before step ${step}`));
    });
  });
}

/** log.jsonl records without their wall-clock fields. */
function logRecords(out: string): unknown[] {
  return readFileSync(join(out, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      const { seconds: _s, eval_net, ...rest } = JSON.parse(l) as Record<string, unknown>;
      const { latency_ms: _l, ...cost } = (eval_net ?? {}) as Record<string, unknown>;
      return { ...rest, eval_net: cost };
    });
}

describe('nas-onnx search --stem imagenet --size 224 on real-size JPEGs', () => {
  // 8 images → halves of 4 → 2 steps per epoch with batch 2; 2 epochs = 4 steps
  const args = (out: string, workers: string): string[] => [
    'search',
    '--objective',
    'rot',
    '--data',
    photos,
    '--size',
    '224',
    '--stem',
    'imagenet',
    '--epochs',
    '2',
    '--batch',
    '2',
    '--C',
    '2',
    '--layers',
    '2',
    '--seed',
    '5',
    '--workers',
    workers,
    '--eval-C',
    '2',
    '--eval-layers',
    '2',
    '--quiet',
    '--out',
    out,
  ];

  it('runs end to end, and a run killed mid-epoch resumes to the same result', { timeout: 600_000 }, async () => {
    const ref = await cli(args('ref', '1'));
    expect(notes(ref.stderr)).toEqual([]);
    expect(ref.code).toBe(0);
    expect(ref.stdout).toMatch(/^genotype: /m);
    const index = JSON.parse(readFileSync(join(tmp, 'ref', 'data', 'index-train.json'), 'utf8'));
    expect(index.files).toHaveLength(8);

    const out = join(tmp, 'killed');
    const child = spawn(process.execPath, [BIN, ...args(out, '2'), '--checkpoint-every', '1'], {
      cwd: tmp,
      stdio: 'ignore',
    });
    const at = await killAfter(child, out, 1);
    expect(at).toBeLessThan(4);
    const resumed = await cli([...args(out, '0'), '--resume']);
    expect(notes(resumed.stderr)).toEqual([]);
    expect(resumed.code).toBe(0);
    const a = loadCheckpoint(join(tmp, 'ref'));
    const b = loadCheckpoint(out);
    expect(b.step).toBe(a.step);
    const differing = [...a.tensors].filter(
      ([k, v]) => !Buffer.from(b.tensors.get(k)!.buffer).equals(Buffer.from(v.buffer)),
    );
    expect(differing.map(([k]) => k)).toEqual([]);
    expect(logRecords(out)).toEqual(logRecords(join(tmp, 'ref')));
    expect(readFileSync(join(out, 'genotype.json'), 'utf8')).toBe(
      readFileSync(join(tmp, 'ref', 'genotype.json'), 'utf8'),
    );
  });
});
