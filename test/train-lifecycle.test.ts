/**
 * `nas-onnx train` under the run lifecycle (train/runtime/run.ts), as a user
 * runs it (the compiled CLI in processes of its own; a tiny network on 32
 * Fashion-MNIST images, 4 steps per epoch): bad settings are one line before
 * any work; SIGINT at a step boundary (the process is held there by the test
 * hook and signalled once it says so) saves a checkpoint and says how to
 * resume, and the resumed run logs and ends exactly as an uninterrupted one;
 * a second run into a directory in use, or into one that holds a run, is
 * refused; a resume names every changed setting; a damaged LATEST falls back
 * to the newest intact checkpoint; no checkpoint holds NaN, and a lower --lr
 * rescues a run from the last finite one; running out of memory names the
 * settings that shrink it.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { firstNonFinite, loadCheckpoint } from '../train/runtime/checkpoint.js';
import { buildDist, runCli, startCli } from './helpers/cli-process.js';
import { cli } from './helpers/sswp.js';

const TINY = ['--genotype', 'darts_v2', '--C', '2', '--layers', '3', '--limit', '32', '--batch', '8', '--epochs', '2'];
const QUIET = [...TINY, '--cutout', '0', '--quiet'];
const TINY_LINE = `nas-onnx train ${QUIET.join(' ')}`;
let tmp: string;
let fullLog: object[] = [];

const train = (out: string, ...extra: string[]) => runCli(['train', ...QUIET, '--out', out, ...extra], { cwd: tmp });
/** The same in this process (for what needs no signal and no second process: quicker). */
const trainHere = (out: string, ...extra: string[]) => cli(['train', ...QUIET, '--out', join(tmp, out), ...extra]);

/** log.jsonl records without their wall-clock seconds. */
function logOf(out: string): object[] {
  return readFileSync(join(tmp, out, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      const { seconds: _, ...rest } = JSON.parse(l) as Record<string, unknown>;
      return rest;
    });
}

/** The one stderr line of a failed command. */
function oneLine(r: { code: number; stderr: string }): string {
  expect(r.code, r.stderr).not.toBe(0);
  const lines = r.stderr.split('\n').filter(Boolean);
  expect(lines, r.stderr).toHaveLength(1);
  return lines[0]!;
}

/** Every checkpoint of a run loads and holds finite values only. */
function checkpointsFinite(out: string): string[] {
  const root = join(tmp, out, 'checkpoints');
  const steps = readdirSync(root).filter((f) => f.startsWith('step-'));
  for (const s of steps) expect(firstNonFinite(loadCheckpoint(join(root, s)).tensors), s).toBeNull();
  return steps.sort();
}

beforeAll(() => {
  expect(buildDist()).toBe(true);
  tmp = mkdtempSync(join(tmpdir(), 'nas-onnx-train-run-'));
});
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('nas-onnx train: one run lifecycle', () => {
  it('says what is wrong with a setting in one line, before any work; --help states the defaults', async () => {
    const cases: [string[], string][] = [
      [
        ['--batch', '1000'],
        '--batch 1000 is larger than the 32 training images: nothing to train on (lower --batch or raise --limit)',
      ],
      [['--aux-weight', 'nan'], "argument 'nan' is invalid. expected a non-negative number, got 'nan'."],
      [['--aux-weight', 'abc'], "argument 'abc' is invalid. expected a non-negative number, got 'abc'."],
      [['--aux-weight', '-1'], "argument '-1' is invalid. expected a non-negative number, got '-1'."],
      [['--drop-path', '1.5'], "argument '1.5' is invalid. expected a probability in [0, 1), got '1.5'."],
      [['--drop-path', '-0.1'], "argument '-0.1' is invalid. expected a probability in [0, 1), got '-0.1'."],
      [
        ['--net', 'imagenet'],
        'the --net imagenet network cannot be built for 1×28×28 images (the auxiliary head needs a feature map of at least 5×5, got 1×1): --net imagenet is for ImageNet-sized images (e.g. --size 224); use --net cifar for small ones',
      ],
    ];
    const results = [];
    for (const [i, [a]] of cases.entries()) results.push(await trainHere(`bad${i}`, ...a));
    results.forEach((r, i) => {
      const line = oneLine(r);
      expect(line).toMatch(/^nas-onnx: /);
      expect(line).not.toMatch(/internal error/);
      expect(line.endsWith(cases[i]![1]), line).toBe(true);
    });
    expect(readdirSync(tmp)).toEqual([]); // nothing left behind
    const help = (await cli(['train', '--help'])).stdout.replace(/\s+/g, ' ');
    for (const d of [
      '--lr <x>',
      '(default: 0.025)',
      '(default: 0.4)',
      '(default: 0.2)',
      '(default: 16)',
      '(default: all)',
    ])
      expect(help).toContain(d);
  });

  it('SIGINT at a step: checkpoint there, exit 130 with how to resume; the resumed run logs and ends exactly as an uninterrupted one', async () => {
    const full = await train('full');
    expect(full.code, full.stderr).toBe(0);
    fullLog = logOf('full');
    expect(fullLog).toHaveLength(2);
    const held = startCli(['train', ...QUIET, '--out', 'part'], { cwd: tmp, env: { NAS_ONNX_TEST_HOLD: 'step:3' } });
    await held.waitFor(/^nas-onnx: test hold at step:3$/);
    // while it runs, the directory is locked
    const second = await train('part', '--resume');
    expect(oneLine(second)).toMatch(
      /^nas-onnx: part is in use by another nas-onnx train run \(pid \d+ on .*\): wait for it to end or choose another --out/,
    );
    held.child.kill('SIGINT');
    expect(await held.exited).toBe(130);
    expect(held.stderr().trim().split('\n').at(-1)).toBe(
      `nas-onnx: interrupted by SIGINT at epoch 1, step 3 of 4: saved checkpoint step-000000003 in ${join('part', 'checkpoints')}; continue with: ${TINY_LINE} --out part --resume`,
    );
    expect(checkpointsFinite('part')).toEqual(['step-000000003']);
    const resumed = await train('part', '--resume');
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(logOf('part')).toEqual(fullLog); // steps, lr, losses and accuracies of the interrupted epoch too
    expect(readFileSync(join(tmp, 'part', 'model.onnx'))).toEqual(readFileSync(join(tmp, 'full', 'model.onnx')));
  });

  it('resumes from the newest intact checkpoint when LATEST names a damaged one, and says so', async () => {
    expect(readFileSync(join(tmp, 'part', 'checkpoints', 'LATEST'), 'utf8').trim()).toBe('step-000000008');
    truncateSync(join(tmp, 'part', 'checkpoints', 'step-000000008', 'tensors.bin'), 100);
    const r = await train('part', '--resume');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.trim()).toMatch(
      /^nas-onnx: checkpoints\/LATEST names step-000000008, which is unusable \(tensors\.bin has 100 bytes, expected \d+\): resuming from step-000000004, the newest intact checkpoint$/,
    );
    expect(logOf('part')).toEqual(fullLog); // epoch 2 again, from the end of epoch 1
  });

  it('refuses an --out that holds a run unless --resume or --overwrite; a resume names each changed setting', async () => {
    const full = join(tmp, 'full');
    expect(oneLine(await trainHere('full'))).toBe(
      `nas-onnx: ${full} already holds a run (config.json, log.jsonl, checkpoints, model.onnx, genotype.json, report.html): continue it with --resume, replace it with --overwrite, or choose another --out`,
    );
    const refused = `nas-onnx: --resume: ${full} was trained with other settings`;
    expect(oneLine(await trainHere('full', '--resume', '--batch', '4'))).toBe(
      `${refused} (batch 8 → 4): resume with the same settings, or start afresh with --overwrite`,
    );
    const other = await trainHere('full', '--resume', '--genotype', 'darts_v1', '--C', '4');
    expect(oneLine(other).startsWith(`${refused} (genotype (changed), C 2 → 4)`)).toBe(true);
    const lr = await trainHere('full', '--resume', '--lr', '0.05');
    expect(lr.code, lr.stderr).toBe(0);
    expect(lr.stderr.trim()).toBe(`nas-onnx: resuming ${full} with changed settings: lr 0.025 → 0.05`);
    const over = await trainHere('full', '--overwrite', '--epochs', '1');
    expect(over.code, over.stderr).toBe(0);
    expect(over.stderr.trim()).toBe(
      `nas-onnx: --overwrite: removed the previous run in ${full} (config.json, log.jsonl, checkpoints, model.onnx, genotype.json, report.html)`,
    );
    expect(logOf('full')).toHaveLength(1);
  });

  it('never keeps a non-finite checkpoint; --resume with a lower --lr continues from the last finite one', async () => {
    const nan = await train('nan', '--lr', '1e6', '--checkpoint-every', '1');
    expect(oneLine(nan)).toMatch(
      /^nas-onnx: the (loss \(NaN\)|weights \(.*\)) became non-finite at epoch 1, step \d of 4; no checkpoint holds non-finite values: continue from step-\d+ \(epoch 1, step \d of 4\) with a lower --lr \(now 1000000\): nas-onnx train .* --out nan --checkpoint-every 1 --resume --lr <lower>$/,
    );
    checkpointsFinite('nan');
    // a run that diverges in its second epoch (learning rate raised on resume) is rescued from epoch 1
    const held = startCli(['train', ...QUIET, '--out', 'rescue'], { cwd: tmp, env: { NAS_ONNX_TEST_HOLD: 'step:5' } });
    await held.waitFor(/test hold at step:5$/);
    held.child.kill('SIGINT');
    expect(await held.exited).toBe(130);
    const diverged = await train('rescue', '--resume', '--lr', '1e12');
    const lines = diverged.stderr.trim().split('\n');
    expect(lines[0]).toBe('nas-onnx: resuming rescue with changed settings: lr 0.025 → 1000000000000');
    expect(lines[1]).toMatch(
      /became non-finite at epoch 2, step \d of 4; no checkpoint holds non-finite values: continue from step-000000005 \(epoch 2, step 1 of 4\) with a lower --lr \(now 1000000000000\)/,
    );
    expect(checkpointsFinite('rescue')).toEqual(['step-000000004', 'step-000000005']);
    const rescued = await train('rescue', '--resume', '--lr', '0.025');
    expect(rescued.code, rescued.stderr).toBe(0);
    expect(logOf('rescue')).toEqual(fullLog);
  });

  it('out of memory: one line naming the settings that shrink it (a 3 GB address-space limit)', async () => {
    const args = ['train', '--genotype', 'darts_v2', '--C', '256', '--layers', '3', '--limit', '2000'];
    const r = await runCli([...args, '--batch', '2000', '--workers', '0', '--quiet', '--out', 'oom'], {
      cwd: tmp,
      shell: 'ulimit -v 3000000 && exec "$@"',
    });
    expect(oneLine(r)).toMatch(
      /^nas-onnx: out of memory \(.+\): lower --batch \(now 2000\), --C \(now 256\) or --layers \(now 3\)$/,
    );
    expect(existsSync(join(tmp, 'oom'))).toBe(false);
  });
});
