/**
 * Checkpoint writes survive SIGKILL: a child process saves large checkpoints
 * in a loop (tensors whose values encode their step), and is killed at random
 * moments, mostly in the middle of a write (at least one is checked to have been). After every kill the run
 * directory's latest checkpoint loads, is complete and self-consistent, and is
 * no older than the last save the child reported; the next child resumes from it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '../graph/rng.js';
import { loadCheckpoint } from '../train/runtime/checkpoint.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TENSORS = 3;
const LENGTH = 1 << 21; // 8 MiB each: a save takes long enough to be killed in the middle of it

let tmp: string;
let script: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'nas-onnx-ckpt-kill-'));
  script = join(tmp, 'writer.ts');
  // resumes from the latest checkpoint (if any) and saves steps forever, reporting each on stdout
  writeFileSync(
    script,
    `import { latestCheckpoint, loadCheckpoint, saveCheckpoint } from ${JSON.stringify(join(ROOT, 'train', 'runtime', 'checkpoint.js'))};
const run = process.argv[2];
let step = latestCheckpoint(run) ? loadCheckpoint(run).step : 0;
for (;;) {
  step++;
  const tensors = new Map();
  for (let k = 0; k < ${TENSORS}; k++) tensors.set('t' + k, new Float32Array(${LENGTH}).fill(step * 10 + k));
  process.stdout.write('begin ' + step + '\\n');
  saveCheckpoint(run, { step, meta: { step, marker: 'step ' + step, sizes: [${LENGTH}, ${LENGTH}, ${LENGTH}] }, tensors });
  process.stdout.write('done ' + step + '\\n');
}
`,
  );
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/**
 * Starts a writer and, once it has completed a save, SIGKILLs it `delayMs` after it begins
 * the next one (so mostly in the middle of writing it). Returns the last step it completed.
 */
function writeAndKill(run: string, delayMs: number): Promise<number> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, run], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let done = 0;
    let out = '';
    let err = '';
    let timer: NodeJS.Timeout | null = null;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const lines = out.split('\n');
      out = lines.pop()!;
      for (const l of lines) {
        const [what, step] = l.split(' ');
        if (what === 'done') done = Number(step);
        else if (what === 'begin' && done > 0 && !timer) timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
      }
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') rej(new Error(`writer exited with ${code ?? signal}: ${err}`));
      else res(done);
    });
  });
}

describe('checkpoints under SIGKILL', () => {
  it('the latest checkpoint stays loadable and self-consistent however a writer is killed', async () => {
    const run = join(tmp, 'run');
    const rng = new Rng(Number(process.env.KILL_SEED ?? Date.now() % 100000));
    let previous = 0;
    let midWrite = 0;
    // at least 5 kills, and until 2 of them have hit a write in progress (at most 10)
    for (let round = 0; round < 10 && (round < 5 || midWrite < 2); round++) {
      const reported = await writeAndKill(run, rng.int(150));
      expect(reported).toBeGreaterThan(previous);
      if (readdirSync(join(run, 'checkpoints')).some((f) => f.startsWith('.step-'))) midWrite++;
      const c = loadCheckpoint(run);
      // no older than the last save the writer completed (it may have finished one more before dying)
      expect(c.step).toBeGreaterThanOrEqual(reported);
      expect(c.step).toBeLessThanOrEqual(reported + 1);
      expect(c.meta).toEqual({ step: c.step, marker: `step ${c.step}`, sizes: [LENGTH, LENGTH, LENGTH] });
      expect([...c.tensors.keys()]).toEqual(['t0', 't1', 't2']);
      for (let k = 0; k < TENSORS; k++) {
        const t = c.tensors.get(`t${k}`)!;
        expect(t.length).toBe(LENGTH);
        const want = c.step * 10 + k;
        let bad = -1;
        for (let i = 0; i < t.length; i++) {
          if (t[i] !== want) {
            bad = i;
            break;
          }
        }
        expect(bad, `t${k}[${bad}] = ${t[bad]} in the checkpoint of step ${c.step}`).toBe(-1);
      }
      previous = c.step;
    }
    // the kills did land in the middle of writes (a dead writer's temporary was left behind)
    expect(midWrite).toBeGreaterThanOrEqual(1);
    // no pile-up: the 2 kept checkpoints (+ 1 renamed into place just before a kill, not yet pruned),
    // and the temporaries of at most the last killed writer (each save removes dead writers' ones)
    const left = readdirSync(join(run, 'checkpoints')).filter((f) => f !== 'LATEST');
    expect(left.filter((f) => /^step-\d+$/.test(f)).length).toBeLessThanOrEqual(3);
    expect(left.filter((f) => f.startsWith('.step-')).length).toBeLessThanOrEqual(1);
    expect(left.filter((f) => f.startsWith('.LATEST.')).length).toBeLessThanOrEqual(1);
  });
});
