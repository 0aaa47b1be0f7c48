/**
 * `nas-onnx search` and `nas-onnx derive` as a user runs them (built with tsc,
 * `node bin/nas-onnx.js …` in a subprocess): a tiny colorization search on a
 * folder of colour PNGs, the genotype derived from its run directory, and bad
 * input — each a single `nas-onnx: …` line on stderr and a non-zero exit.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseGenotype } from '../graph/genotype.js';
import { startCli } from './helpers/cli-process.js';
import { checkReportHtml } from './helpers/report.js';
import { checkRunDir, writeColorFolder } from './helpers/search.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'nas-onnx.js');
let tmp: string;
let colour: string;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[]): Promise<Result> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.NAS_ONNX_DEBUG;
  return new Promise((res) => {
    execFile(process.execPath, [BIN, ...args], { cwd: tmp, env, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err
        ? typeof (err as { code?: unknown }).code === 'number'
          ? (err as { code: number }).code
          : 1
        : 0;
      res({ code, stdout, stderr });
    });
  });
}

/** A failed command: non-zero exit, exactly one `nas-onnx: …` line on stderr matching `pattern`. */
function expectOneLineError(r: Result, pattern: RegExp): void {
  expect(r.code, r.stderr).not.toBe(0);
  const lines = r.stderr.split('\n').filter((l) => l.length > 0);
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^nas-onnx: /);
  expect(lines[0]).toMatch(pattern);
}

// 8 images → 2 steps per epoch with batch 2
const TINY = ['--epochs', '2', '--batch', '2', '--C', '2', '--layers', '3', '--limit', '8', '--seed', '4', '--quiet'];

beforeAll(async () => {
  // tsc emits even when files elsewhere in the tree have type errors; only the emitted CLI matters here
  try {
    execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
      cwd: ROOT,
      stdio: 'pipe',
    });
  } catch {
    // type errors elsewhere: checked below that the CLI was emitted
  }
  expect(existsSync(join(ROOT, 'dist', 'cli', 'main.js'))).toBe(true);
  tmp = mkdtempSync(join(tmpdir(), 'nas-onnx-search-cli-'));
  colour = join(tmp, 'colour');
  await writeColorFolder(colour, 8, 2);
  mkdirSync(join(tmp, 'empty'));
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('nas-onnx search / derive', () => {
  it('searches with the colorization objective and derives the genotype of the run', async () => {
    const r = await cli(['search', '--objective', 'color', '--data', colour, '--out', 'run', ...TINY]);
    // --quiet leaves the collapse warnings (a tiny supernet's α hardly move from uniform)
    for (const line of r.stderr.split('\n').filter(Boolean))
      expect(line).toMatch(
        /^epoch [12]: derived normal cell: \d of 8 ops parameter-free .* the search may be collapsing/,
      );
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^genotype: \{"normal":/m);
    expect(r.stdout).toMatch(/s\/step, w-step graph \d+ nodes, α-grad graph \d+/);
    const run = join(tmp, 'run');
    const geno = checkRunDir(run, 2);
    expect(JSON.parse(r.stdout.split('\n')[0]!.slice('genotype: '.length))).toMatchObject({
      normal: geno.normal,
      reduce: geno.reduce,
    });
    expect(JSON.parse(readFileSync(join(run, 'config.json'), 'utf8'))).toMatchObject({
      objective: 'col',
      epochs: 2,
      batch: 2,
      C: 2,
      layers: 3,
      order: 1,
      limit: 8,
      seed: 4,
    });

    const d = await cli(['derive', '--from', 'run', '--out', 'derived.json', '--name', 'tiny_col', '--json']);
    expect(d.stderr).toBe('');
    expect(d.code).toBe(0);
    const derived = parseGenotype(JSON.parse(readFileSync(join(tmp, 'derived.json'), 'utf8')));
    expect(derived).toEqual({
      name: 'tiny_col',
      normal: geno.normal,
      normal_concat: geno.normal_concat,
      reduce: geno.reduce,
      reduce_concat: geno.reduce_concat,
    });
    const dj = JSON.parse(d.stdout) as { genotype: unknown; eval_net: Record<string, number | string> };
    expect(dj.genotype).toEqual(derived);
    // the evaluation network's cost, for the search's 3×32×32 colour images (train's default C and cells)
    expect(dj.eval_net).toMatchObject({ net: 'cifar', C: 16, layers: 8, channels: 3, size: 32, ep: 'cpu' });
    expect(dj.eval_net.params).toBeGreaterThan(0);
    expect(dj.eval_net.macs).toBeGreaterThan(0);
    expect(dj.eval_net.latency_ms).toBeGreaterThan(0);
    const last = readFileSync(join(run, 'log.jsonl'), 'utf8').trim().split('\n').pop()!;
    const logged = (JSON.parse(last) as { eval_net: Record<string, number> }).eval_net;
    expect([logged.params, logged.macs]).toEqual([dj.eval_net.params, dj.eval_net.macs]);
    expect(readFileSync(join(tmp, 'derived.svg'), 'utf8')).toMatch(/^<svg[\s\S]*<\/svg>\s*$/);
    expect(r.stdout).toMatch(/written to run\/genotype\.json, genotype\.svg and report\.html/);
  });

  it('derives with the skip cap, and writes the report of the run again', async () => {
    const run = join(tmp, 'run');
    // with the P-DARTS cap: no skip_connect in the normal cell
    const capped = await cli(['derive', '--from', 'run', '--max-skip', '0', '--json', '--no-cost']);
    expect(capped.code).toBe(0);
    const cappedGeno = parseGenotype((JSON.parse(capped.stdout) as { genotype: unknown }).genotype);
    expect(cappedGeno.normal.some(([op]) => op === 'skip_connect')).toBe(false);

    // the search wrote its report; `nas-onnx report` writes it again
    const first = readFileSync(join(run, 'report.html'), 'utf8');
    checkReportHtml(first, ['summary', 'cells', 'curves', 'collapse', 'alpha', 'genotypes', 'config']);
    rmSync(join(run, 'report.html'));
    const rep = await cli(['report', 'run']);
    expect(rep.stderr).toBe('');
    expect(rep.code).toBe(0);
    expect(rep.stdout).toBe(`${join('run', 'report.html')}\n`);
    checkReportHtml(readFileSync(join(run, 'report.html'), 'utf8'), [
      'summary',
      'cells',
      'curves',
      'collapse',
      'alpha',
      'genotypes',
      'config',
    ]);
  });

  it('rejects bad input with one line on stderr and a non-zero exit', async () => {
    const data = ['--data', colour];
    const cases: [string[], RegExp][] = [
      [
        ['search', '--objective', 'colour-ish', ...data],
        /argument 'colour-ish' is invalid\. expected rot, color, jigsaw, cls, simclr or seg, got 'colour-ish'/,
      ],
      [['search', '--data', colour], /--objective/],
      [
        ['search', '--objective', 'rot', '--data', colour, '--dataset', 'fashion-mnist'],
        /exactly one of --data PATH or --dataset NAME/,
      ],
      [['search', '--objective', 'rot'], /exactly one of --data PATH or --dataset NAME/],
      [
        ['search', '--objective', 'rot', '--data', join(tmp, 'no', 'such', 'images'), '--out', 'bad'],
        /no such file or directory: .*no\/such\/images/,
      ],
      [['search', '--objective', 'rot', ...data, '--out', 'empty', '--resume'], /--resume: no checkpoint in empty/],
      [['search', '--objective', 'rot', ...data, '--max-skip', '-1'], /--max-skip.*-1/],
      [['report', 'empty'], /empty holds no log\.jsonl: not a search or training run/],
      [['report', 'no-such-run'], /no-such-run is not a directory/],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(args)));
    results.forEach((r, i) => expectOneLineError(r, cases[i]![1]));
    // nothing was created for the failed runs
    expect(existsSync(join(tmp, 'bad'))).toBe(false);
  });

  it('refuses to resume a run with other settings, naming them', async () => {
    expect(existsSync(join(tmp, 'run', 'checkpoints', 'LATEST'))).toBe(true);
    const r = await cli([
      'search',
      '--objective',
      'color',
      '--data',
      colour,
      '--out',
      'run',
      ...TINY.map((a) => (a === '4' ? '5' : a)),
      '--epochs',
      '3',
      '--resume',
    ]);
    expectOneLineError(
      r,
      /--resume: run was searched with other settings \(.*epochs 2 → 3.*seed 4 → 5|--resume: run was searched with other settings \(.*seed 4 → 5.*epochs 2 → 3/,
    );
    const s = await cli(['search', '--objective', 'rot', '--data', colour, '--out', 'run', ...TINY, '--resume']);
    expectOneLineError(s, /other settings \(objective "col" → "rot"\)/);
  });

  it('refuses an --out that holds a run (nothing deleted), or that another search is using; SIGINT saves a checkpoint to resume from', async () => {
    const search = ['search', '--objective', 'color', '--data', colour, ...TINY];
    const again = await cli([...search, '--out', 'run']);
    expectOneLineError(
      again,
      /^nas-onnx: run already holds a run \(config\.json, log\.jsonl, checkpoints, genotype\.json, genotype\.svg, report\.html\): continue it with --resume, replace it with --overwrite, or choose another --out$/,
    );
    expect(existsSync(join(tmp, 'run', 'checkpoints', 'LATEST'))).toBe(true);
    // a search held at its first step boundary holds the directory; SIGINT there saves that step
    const held = startCli([...search, '--out', 'conc'], { cwd: tmp, env: { NAS_ONNX_TEST_HOLD: 'step:1' } });
    await held.waitFor(/test hold at step:1$/);
    expectOneLineError(
      await cli([...search, '--out', 'conc']),
      /^nas-onnx: conc is in use by another nas-onnx search run \(pid \d+/,
    );
    held.child.kill('SIGINT');
    expect(await held.exited).toBe(130);
    expect(held.stderr().trim().split('\n').at(-1)).toBe(
      `nas-onnx: interrupted by SIGINT at epoch 1, step 1 of 2: saved checkpoint step-000000001 in ${join('conc', 'checkpoints')}; continue with: nas-onnx ${[...search, '--out', 'conc'].join(' ')} --resume`,
    );
    const resumed = await cli([...search, '--out', 'conc', '--resume']);
    expect(resumed.code, resumed.stderr).toBe(0);
    const records = (dir: string) =>
      readFileSync(join(tmp, dir, 'log.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => {
          const { seconds: _s, eval_net: _e, ...rest } = JSON.parse(l) as Record<string, unknown>;
          return rest;
        });
    expect(records('conc')).toEqual(records('run'));
  });
});
