/**
 * `nas-onnx finetune` under the run lifecycle (train/runtime/run.ts), after a
 * tiny SSWP search: SIGINT in the middle of the second arm (the process held
 * at that step boundary by the test hook, signalled once it says so) saves a
 * checkpoint and says how to resume; the resumed fine-tune ends with the
 * results, logs and models of an uninterrupted one; an --out that holds a
 * fine-tune is refused unless --resume or --overwrite; --help states the
 * defaults.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FinetuneResult } from '../train/eval/finetune.js';
import { runSswpSearch } from '../train/search/sswp/search.js';
import { buildDist, startCli } from './helpers/cli-process.js';
import { cli, writeImageFolder } from './helpers/sswp.js';

let tmp: string;
let run: string;
// 24 labelled images, batch 8: 3 steps per epoch, 6 per arm
const ARGS = ['--labels-fraction', '0.5', '--init', 'concomitant,random', '--epochs', '2', '--batch', '8'];
const TRAIN = [...ARGS, '--cutout', '8', '--bn-batches', '2', '--workers', '0', '--seed', '3', '--quiet'];

beforeAll(async () => {
  expect(buildDist()).toBe(true);
  tmp = mkdtempSync(join(tmpdir(), 'nas-onnx-ft-run-'));
  await writeImageFolder(join(tmp, 'images'), { train: 12, test: 8 }, 4, 24);
  run = join(tmp, 'run');
  await runSswpSearch({
    data: join(tmp, 'images'),
    out: run,
    epochs: 1,
    batch: 8,
    C: 2,
    layers: 3,
    workers: 0,
    bnBatches: 2,
    seed: 5,
    quiet: true,
    report: false,
  });
}, 600_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** result.json's runs without wall-clock seconds and paths. */
function runsOf(out: string): object[] {
  const r = JSON.parse(readFileSync(join(out, 'result.json'), 'utf8')) as FinetuneResult;
  return r.runs.map(({ seconds: _s, modelPath: _m, ...rest }) => rest);
}

/** An arm's log records without wall-clock seconds. */
function logOf(out: string, arm: string): object[] {
  return readFileSync(join(out, arm, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      const { seconds: _s, ...rest } = JSON.parse(l) as Record<string, unknown>;
      return rest;
    });
}

describe('nas-onnx finetune: one run lifecycle', () => {
  it('SIGINT in the second arm: checkpoint, exit 130, how to resume; the resumed fine-tune equals an uninterrupted one', async () => {
    const full = join(tmp, 'full');
    const ref = await cli(['finetune', '--from', run, ...TRAIN, '--out', full]);
    expect(ref.code, ref.stderr).toBe(0);
    const part = join(tmp, 'part');
    const args = ['finetune', '--from', run, ...TRAIN, '--out', part];
    const held = startCli(args, { cwd: tmp, env: { NAS_ONNX_TEST_HOLD: 'step:8' } });
    await held.waitFor(/test hold at step:8$/);
    held.child.kill('SIGINT');
    expect(await held.exited).toBe(130);
    expect(held.stderr().trim().split('\n').at(-1)).toBe(
      `nas-onnx: interrupted by SIGINT at the random arm, epoch 1, step 2 of 3: saved checkpoint step-000000008 in ${join(part, 'checkpoints')}; continue with: nas-onnx ${args.join(' ')} --resume`,
    );
    const resumed = await cli([...args, '--resume']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(runsOf(part)).toEqual(runsOf(full));
    for (const arm of ['concomitant', 'random']) {
      expect(logOf(part, arm), arm).toEqual(logOf(full, arm));
      expect(readFileSync(join(part, arm, 'model.onnx'))).toEqual(readFileSync(join(full, arm, 'model.onnx')));
    }
    // the run directory is not reused by accident
    const again = await cli(['finetune', '--from', run, ...TRAIN, '--out', full]);
    expect(again.code).toBe(1);
    expect(again.stderr.trim()).toBe(
      `nas-onnx: ${full} already holds a run (config.json, checkpoints, result.json, concomitant, random): continue it with --resume, replace it with --overwrite, or choose another --out`,
    );
  });

  it('--help states the defaults', async () => {
    const help = (await cli(['finetune', '--help'])).stdout.replace(/\s+/g, ' ');
    for (const d of ['(default: 10)', '(default: 128)', '(default: 0.025)', '(default: 0.3)', 'default: "precise")'])
      expect(help).toContain(d);
  });
});
