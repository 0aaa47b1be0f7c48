/**
 * The run lifecycle (train/runtime/run.ts, settings.ts, lock.ts) on a toy run
 * kind: settings with defaults and one-line checks, the --out policy, the
 * lock, resume checks naming changed settings, the LATEST fallback, the
 * non-finite guard, out-of-memory hints, and SIGINT/SIGTERM at a step
 * boundary (a child process held there by the test hook, signalled once it
 * says so).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addSettings, continueCommand } from '../cli/settings.js';
import { loadCheckpoint, resumableCheckpoint, saveCheckpoint } from '../train/runtime/checkpoint.js';
import { TrainError } from '../train/runtime/errors.js';
import { LOCK_FILE, RunLock } from '../train/runtime/lock.js';
import { Run } from '../train/runtime/run.js';
import { resolveSettings, resumeChanges } from '../train/runtime/settings.js';
import { TOY, TOY_SETTINGS, type ToyConfig } from './helpers/run-kind.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CHILD = join(ROOT, 'test', 'helpers', 'run-child.ts');
let tmp: string;
let n = 0;
const fresh = (): string => join(tmp, `run${n++}`);
const config = (o: Partial<ToyConfig> = {}): ToyConfig => resolveSettings(TOY_SETTINGS, o);
const quiet = { signals: false, note: () => undefined };
const tensors = (v: number): Map<string, Float32Array> => new Map([['w', new Float32Array(3).fill(v)]]);

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'nas-onnx-run-'));
});
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

function errorOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(TrainError);
    return (e as Error).message;
  }
  throw new Error('no error');
}

describe('settings', () => {
  it('fills defaults and names a bad value in one line', () => {
    expect(config()).toEqual({ batch: 64, C: 16, lr: 0.025, auxWeight: 0.4, dropPath: 0.2, limit: null });
    expect(config({ lr: 0.1, limit: 8 })).toMatchObject({ lr: 0.1, limit: 8 });
    expect(errorOf(() => config({ auxWeight: Number.NaN }))).toBe(
      '--aux-weight: expected a non-negative number, got NaN',
    );
    expect(errorOf(() => config({ auxWeight: -1 }))).toBe('--aux-weight: expected a non-negative number, got -1');
    expect(errorOf(() => config({ dropPath: 1.5 }))).toBe('--drop-path: expected a probability in [0, 1), got 1.5');
    expect(errorOf(() => config({ dropPath: 1 }))).toBe('--drop-path: expected a probability in [0, 1), got 1');
    expect(errorOf(() => config({ batch: 2.5 }))).toBe('--batch: expected a positive integer, got 2.5');
    expect(TOY_SETTINGS.auxWeight.kind.parse('abc')).toBeNaN();
  });

  it('splits resume changes into adjustable and refused ones, naming each', () => {
    const c = resumeChanges(TOY_SETTINGS, config(), config({ lr: 0.01, batch: 32, C: 8 }));
    expect(c).toEqual({ adjusted: 'lr 0.025 → 0.01', refused: 'batch 64 → 32, C 16 → 8' });
  });
});

describe('run directory', () => {
  it('refuses an --out that holds a run unless --resume or --overwrite; --overwrite removes it', () => {
    const out = fresh();
    const a = Run.open(TOY, { out, config: config(), ...quiet });
    a.save(1, {}, tensors(1), 'step 1');
    a.log({ step: 1 });
    writeFileSync(join(out, 'model.onnx'), 'x');
    a.close(true);
    expect(errorOf(() => Run.open(TOY, { out, config: config(), ...quiet }))).toBe(
      `${out} already holds a run (config.json, log.jsonl, checkpoints, model.onnx): continue it with --resume, replace it with --overwrite, or choose another --out`,
    );
    expect(errorOf(() => Run.open(TOY, { out, config: config(), resume: true, overwrite: true, ...quiet }))).toBe(
      'give at most one of --resume and --overwrite',
    );
    const notes: string[] = [];
    const b = Run.open(TOY, { out, config: config(), overwrite: true, signals: false, note: (l) => notes.push(l) });
    expect(notes).toEqual([
      `nas-onnx: --overwrite: removed the previous run in ${out} (config.json, log.jsonl, checkpoints, model.onnx)`,
    ]);
    expect(readdirSync(out).sort()).toEqual([LOCK_FILE, 'config.json']);
    b.close(true);
  });

  it('locks the directory: a second run is refused while the first lives; a dead owner’s lock is taken over', () => {
    const out = fresh();
    const a = Run.open(TOY, { out, config: config(), ...quiet });
    expect(errorOf(() => Run.open(TOY, { out, config: config(), resume: true, ...quiet }))).toMatch(
      new RegExp(`^${out} is in use by another nas-onnx toy run \\(pid ${process.pid} on `),
    );
    a.close(true);
    // the lock of a process that is gone
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const pid = Number(dead.stdout);
    writeFileSync(
      join(out, LOCK_FILE),
      JSON.stringify({ pid, host: hostname(), command: 'toy', started: '', token: 'x' }),
    );
    const lock = RunLock.acquire(out, 'toy');
    expect(errorOf(() => RunLock.acquire(out, 'toy'))).toMatch(/is in use by another nas-onnx toy run/);
    lock.release();
    expect(existsSync(join(out, LOCK_FILE))).toBe(false);
  });

  it('a fresh run that fails before saving or logging leaves nothing behind', () => {
    const out = fresh();
    const a = Run.open(TOY, { out, config: config(), ...quiet });
    a.close(false);
    expect(existsSync(out)).toBe(false);
    const kept = fresh();
    mkdirSync(kept);
    writeFileSync(join(kept, 'notes.txt'), 'mine');
    Run.open(TOY, { out: kept, config: config(), ...quiet }).close(false);
    expect(readdirSync(kept)).toEqual(['notes.txt']);
  });
});

describe('resume', () => {
  function runWithSteps(steps: number): string {
    const out = fresh();
    const r = Run.open(TOY, { out, config: config(), ...quiet });
    for (let s = 1; s <= steps; s++) r.save(s, { pos: s }, tensors(s), `step ${s}`);
    r.close(true);
    return out;
  }

  it('names each changed setting: refuses fixed ones, takes adjustable ones with a note', () => {
    const out = runWithSteps(1);
    expect(errorOf(() => Run.open(TOY, { out, config: config({ batch: 32, C: 8 }), resume: true, ...quiet }))).toBe(
      `--resume: ${out} was trained with other settings (batch 64 → 32, C 16 → 8): resume with the same settings, or start afresh with --overwrite`,
    );
    const notes: string[] = [];
    const r = Run.open(TOY, {
      out,
      config: config({ lr: 0.01 }),
      resume: true,
      signals: false,
      note: (l) => notes.push(l),
    });
    expect(notes).toEqual([`nas-onnx: resuming ${out} with changed settings: lr 0.025 → 0.01`]);
    expect(r.resumed?.step).toBe(1);
    r.close(true);
    expect(errorOf(() => Run.open(TOY, { out: fresh(), config: config(), resume: true, ...quiet }))).toMatch(
      /^--resume: no checkpoint in /,
    );
  });

  it('falls back to the newest intact checkpoint when LATEST names a truncated or missing one, saying so', () => {
    const out = runWithSteps(3); // keeps step 2 and step 3
    const ck = join(out, 'checkpoints');
    truncateSync(join(ck, 'step-000000003', 'tensors.bin'), 5);
    const notes: string[] = [];
    const r = Run.open(TOY, { out, config: config(), resume: true, signals: false, note: (l) => notes.push(l) });
    expect(r.resumed?.step).toBe(2);
    expect(notes).toEqual([
      'nas-onnx: checkpoints/LATEST names step-000000003, which is unusable (tensors.bin has 5 bytes, expected 12): resuming from step-000000002, the newest intact checkpoint',
    ]);
    r.close(true);
    rmSync(join(ck, 'step-000000003'), { recursive: true });
    expect(resumableCheckpoint(out)?.note).toBe(
      'checkpoints/LATEST names step-000000003, which is unusable (it is missing): resuming from step-000000002, the newest intact checkpoint',
    );
    rmSync(join(ck, 'LATEST'));
    expect(resumableCheckpoint(out)?.note).toBe(
      'checkpoints/LATEST is missing: resuming from step-000000002, the newest intact checkpoint',
    );
    truncateSync(join(ck, 'step-000000002', 'tensors.bin'), 0);
    expect(errorOf(() => Run.open(TOY, { out, config: config(), resume: true, ...quiet }))).toBe(
      `--resume: no intact checkpoint in ${ck} (step-000000002: tensors.bin has 0 bytes, expected 12)`,
    );
  });
});

describe('guards', () => {
  it('never writes a non-finite checkpoint and names the last finite one and how to continue from it', () => {
    const out = fresh();
    const r = Run.open(TOY, {
      out,
      config: config({ lr: 1e6 }),
      ...quiet,
      commandLine: (s) => `toy ${JSON.stringify(s)}`,
    });
    expect(r.nonFinite('the loss', 'step 1').message).toBe(
      'the loss became non-finite at step 1, before any checkpoint: start again with a lower --lr (now 1000000)',
    );
    r.save(1, {}, tensors(1), 'epoch 1, step 1');
    const bad = tensors(2);
    bad.get('w')![1] = Number.NaN;
    expect(errorOf(() => r.save(2, {}, bad, 'epoch 1, step 2'))).toBe(
      'the weights (w) became non-finite at epoch 1, step 2; no checkpoint holds non-finite values: continue from step-000000001 (epoch 1, step 1) with a lower --lr (now 1000000): toy {"--resume":true,"--lr":"<lower>"}',
    );
    expect(loadCheckpoint(out).step).toBe(1);
    expect(readdirSync(join(out, 'checkpoints')).filter((f) => f.startsWith('step-'))).toEqual(['step-000000001']);
    r.close(false);
    expect(existsSync(join(out, 'checkpoints', 'step-000000001'))).toBe(true);
    // a non-finite checkpoint of an older version is skipped by a resume
    saveCheckpoint(out, { step: 5, meta: { kind: 'toy', config: config() }, tensors: bad });
    expect(resumableCheckpoint(out)?.note).toBe(
      'checkpoints/LATEST names step-000000005, which is unusable (w holds non-finite values): resuming from step-000000001, the newest intact checkpoint',
    );
  });

  it('explains running out of memory with the settings that shrink it', () => {
    const out = fresh();
    const r = Run.open(TOY, { out, config: config({ batch: 512 }), ...quiet });
    const e = r.explain(new Error('Non-zero status code returned while running Conv node. std::bad_alloc'));
    expect((e as Error).message).toBe('out of memory (std::bad_alloc): lower --batch (now 512) or --C (now 16)');
    const arena = new Error(
      "onnxruntime run failed: Non-zero status code returned while running Conv node. Name:'stem/0/Conv' Status Message: bfc_arena.cc:359 Failed to allocate memory for requested buffer of size 1204224000",
    );
    expect((r.explain(arena) as Error).message).toBe(
      'out of memory (a buffer of 1.12 GiB could not be allocated): lower --batch (now 512) or --C (now 16)',
    );
    const other = new Error('something else');
    expect(r.explain(other)).toBe(other);
    r.close(true);
  });
});

interface Child {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the toy child held at step boundary `hold`; sends `signal` once it says it is held there. */
function signalAtHold(out: string, mode: string, signal: NodeJS.Signals, hold: number): Promise<Child> {
  return new Promise((res) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, out, mode, '10', '4'], {
      cwd: ROOT,
      env: { ...process.env, NAS_ONNX_TEST_HOLD: `step:${hold}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let sent = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (!sent && stderr.includes(`nas-onnx: test hold at step:${hold}\n`)) {
        sent = true;
        child.kill(signal);
      }
    });
    child.on('exit', (code) => res({ code, stdout, stderr }));
  });
}

describe('signals', () => {
  it('SIGINT and SIGTERM at a step boundary: a checkpoint there, exit 130/143 with how to resume', async () => {
    const out = fresh();
    const a = await signalAtHold(out, 'fresh', 'SIGINT', 6);
    expect(a.code, a.stderr).toBe(130);
    expect(a.stdout.trim().split('\n').at(-1)).toBe('step 6');
    expect(a.stderr.trim().split('\n').at(-1)).toBe(
      `interrupted by SIGINT at step 6: saved checkpoint step-000000006 in ${join(out, 'checkpoints')}; continue with: toy --resume`,
    );
    expect(loadCheckpoint(out).step).toBe(6); // saved at the boundary, not only at the last multiple of 4
    const b = await signalAtHold(out, 'resume', 'SIGTERM', 9);
    expect(b.code, b.stderr).toBe(143);
    expect(b.stdout.trim().split('\n')).toEqual(['step 7', 'step 8', 'step 9']);
    expect(loadCheckpoint(out).step).toBe(9);
    expect(existsSync(join(out, LOCK_FILE))).toBe(false);
  }, 600_000);
});

describe('command-line options from the settings', () => {
  function toyCommand(): { cmd: Command; read: (o: Record<string, unknown>) => Partial<ToyConfig> } {
    const cmd = new Command('toy')
      .exitOverride()
      .configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
    const read = addSettings(cmd, TOY_SETTINGS);
    cmd.option('--overwrite', 'replace').option('--resume', 'continue');
    return { cmd, read };
  }

  it('states every default in --help, checks values in one line and maps options back to the config', () => {
    const { cmd, read } = toyCommand();
    const help = cmd.helpInformation();
    for (const d of ['(default: 64)', '(default: 0.025)', '(default: 0.4)', '(default: 0.2)', '(default: all)'])
      expect(help).toContain(d);
    cmd.parse(['--aux-weight', '0', '--limit', '9'], { from: 'user' });
    expect(resolveSettings(TOY_SETTINGS, read(cmd.opts()))).toEqual(config({ auxWeight: 0, limit: 9 }));
    for (const [args, msg] of [
      [
        ['--aux-weight', 'abc'],
        "option '--aux-weight <x>' argument 'abc' is invalid. expected a non-negative number, got 'abc'.",
      ],
      [
        ['--drop-path', '-0.1'],
        "option '--drop-path <p>' argument '-0.1' is invalid. expected a probability in [0, 1), got '-0.1'.",
      ],
      [['--batch', '1.5'], "option '--batch <n>' argument '1.5' is invalid. expected a positive integer, got '1.5'."],
    ] as const) {
      const c = toyCommand().cmd;
      expect(() => c.parse([...args], { from: 'user' })).toThrow(msg);
    }
  });

  it('renders the command that continues a run', () => {
    const { cmd } = toyCommand();
    const line = continueCommand(cmd, [
      'node',
      'nas-onnx',
      'toy',
      '--lr',
      '1e6',
      '--overwrite',
      '--limit=8',
      '--batch',
      '2',
    ]);
    expect(line({ '--resume': true })).toBe('nas-onnx toy --lr 1e6 --limit=8 --batch 2 --resume');
    expect(line({ '--resume': true, '--lr': '<lower>', '--limit': '9 0' })).toBe(
      "nas-onnx toy --batch 2 --resume --lr <lower> --limit '9 0'",
    );
  });
});
