/**
 * Study trials that fail on every try (train/study/attempts.ts, errors.ts):
 * a NaN loss or a batch larger than the data is recorded as a failed trial
 * with its reason after one try, not retried, and a rerun leaves it alone
 * (`--retry-failed` runs it again); `nas-onnx study` ends with one line that
 * says so. A failure that may pass on another try is still retried.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunLock } from '../train/runtime/lock.js';
import { attemptTrial } from '../train/study/attempts.js';
import { StudyError } from '../train/study/errors.js';
import {
  openOrCreateStudy,
  runStudyLocal,
  selectArchitectures,
  type StudyConfig,
  type StudyEvent,
  StudyProgress,
} from '../train/study/runner.js';
import { runCli } from './helpers/cli-process.js';
import { TINY, TINY_ARGS } from './helpers/study.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'nas-onnx.js');
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nas-onnx-study-fail-'));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function study(name: string, config: StudyConfig) {
  return openOrCreateStudy(join(dir, name), {
    config,
    archs: selectArchitectures('darts', { source: 'pool', count: 1 }),
    objectives: ['cls'],
    seeds: [0],
    archSource: { source: 'pool', count: 1 },
  });
}

describe('trials that fail on every try', () => {
  it('records a batch larger than the data and a NaN loss as failed trials after one try', async () => {
    for (const [name, config, reason] of [
      ['small', { ...TINY, limit: 20 }, /^batch 32 is larger than the 20 training images$/],
      ['nan', { ...TINY, lr: 1e12, preciseBn: 0 }, /the loss became NaN at epoch 1, step \d+$/],
    ] as const) {
      const store = study(name, config);
      const events: StudyEvent[] = [];
      const stats = await runStudyLocal(store, { attempts: 3, onEvent: (e) => events.push(e) });
      expect(events.filter((e) => e.type === 'trial-start')).toHaveLength(1);
      expect(stats.failed).toHaveLength(1);
      expect(stats.failed[0]!.everyTry).toBe(true);
      expect(stats.failed[0]!.error).toMatch(reason);
      const f = store.failures();
      expect(f).toHaveLength(1);
      expect(f[0]!.reason).toMatch(reason);
      expect(store.pendingTrials()).toEqual([]);
      expect(store.progress()).toEqual({ done: 0, failed: 1, total: 1 });
      // a rerun does not try it again
      const again = await runStudyLocal(store, { attempts: 3 });
      expect(again).toMatchObject({ pending: 0, recorded: 0, failed: [] });
    }
  }, 600_000);

  it('still retries a failure that may pass on another try', async () => {
    const store = study('flaky', TINY);
    const trial = store.trials()[0]!;
    let tries = 0;
    const r = await attemptTrial(
      trial,
      async () => {
        tries++;
        if (tries < 3) throw new StudyError('the trial process exited (SIGKILL)');
        return { metrics: { accuracy: 0.5 }, info: {} };
      },
      { store, attempts: 3, emit: () => undefined, progress: new StudyProgress(1, 0) },
    );
    expect(tries).toBe(3);
    expect(r).toEqual({ recorded: true, failed: null });
    expect(store.failures()).toEqual([]);
  });

  it('nas-onnx study ends with one line naming the recorded failure; --retry-failed runs it again', async () => {
    execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
      cwd: ROOT,
      stdio: 'pipe',
    });
    const args = [BIN, 'study', ...TINY_ARGS.map((a) => (a === '200' ? '20' : a)), '--archs', '1', '--quiet'];
    args.splice(args.indexOf('--objectives') + 1, 1, 'cls');
    const out = join(dir, 'cli');
    const run = (extra: string[]) =>
      new Promise<{ code: number; stderr: string }>((res) =>
        execFile(process.execPath, [...args, '--out', out, ...extra], { cwd: dir }, (err, _o, stderr) =>
          res({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr }),
        ),
      );
    const first = await run([]);
    expect(first.code).toBe(1);
    const lines = first.stderr.trim().split('\n');
    expect(lines.at(-1)).toMatch(
      new RegExp(
        `^nas-onnx: 1 trial\\(s\\) failed in a way a retry would repeat, recorded in ${join(out, 'failed')} and not retried \\(first: \\S+-cls-s0: batch 32 is larger than the 20 training images\\); --retry-failed runs them again$`,
      ),
    );
    expect(first.stderr).toMatch(/FAILED \S+ \(fails on every try: not retried\): batch 32 is larger/);
    expect(first.stderr).not.toMatch(/retrying/);
    const second = await run(['--retry-failed']);
    expect(second.stderr).toMatch(/study: 1 failed trial\(s\) will run again \(--retry-failed\)/);
    expect(second.stderr).toMatch(/FAILED \S+ \(fails on every try/);
    expect(existsSync(join(out, 'failed'))).toBe(true);
  }, 600_000);
});

describe('a study directory in use', () => {
  it('is refused to a second study process, in one line', async () => {
    const out = join(dir, 'busy');
    mkdirSync(out);
    const lock = RunLock.acquire(out, 'study');
    try {
      const r = await runCli(['study', ...TINY_ARGS, '--out', out], { cwd: dir });
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toMatch(
        new RegExp(
          `^nas-onnx: ${out} is in use by another nas-onnx study run \\(pid ${process.pid} on .*\\): wait for it to end`,
        ),
      );
    } finally {
      lock.release();
    }
  });
});
