/**
 * The study distributed over BullMQ (train/study/queue.ts) end to end: a
 * private redis-server on a free loopback port, two `nas-onnx worker`
 * processes and a `nas-onnx study --queue` process (the compiled CLI). One
 * worker is SIGKILLed in the middle of a trial: the trials it finished stay
 * recorded, the killed one is detected as stalled, retried on the other
 * worker and finishes. The kill happens at a known point, not after a delay:
 * worker 1 is held (NAS_ONNX_TEST_HOLD) after the first step of its second
 * trial, and killed once it says so; worker 2 waits before its third trial
 * until then, so worker 1 always gets a second trial. The results are those
 * of the same study run locally: the same trial ids (test/study-runner.test.ts
 * runs that study locally), and (seeded, one thread, CPU) the same metrics
 * when trials are rerun here.
 *
 * Needs redis-server (Debian package redis-server; scripts/setup.sh installs
 * it): without it this file fails, it does not skip.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DataCache, openOrCreateStudy, runTrial, selectArchitectures } from '../train/study/runner.js';
import { checkRedisDriver } from '../train/study/queue.js';
import { TrialStore, type Trial } from '../train/study/store.js';
import { TINY, TINY_ARGS } from './helpers/study.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'nas-onnx.js');

let dir: string;
let redis: ChildProcess | null = null;
let url = '';
const procs: ChildProcess[] = [];
let localTrials: Trial[] = [];

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

/** One PING over RESP; true on +PONG. */
function ping(port: number): Promise<boolean> {
  return new Promise((res) => {
    const c = createConnection({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      c.destroy();
      res(ok);
    };
    c.setTimeout(500, () => done(false));
    c.once('error', () => done(false));
    c.once('connect', () => c.write('PING\r\n'));
    c.once('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

interface Proc {
  child: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
  /** Resolves with the first line matching `re` seen from now on or already seen after index `from`. */
  waitFor(re: RegExp, from?: number): Promise<string>;
}

function start(args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: dir,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  procs.push(child);
  const lines: string[] = [];
  const waiters: { re: RegExp; from: number; resolve: (l: string) => void }[] = [];
  let buf = '';
  const onData = (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      lines.push(line);
      for (const w of waiters.splice(0)) {
        if (w.re.test(line) && lines.length - 1 >= w.from) w.resolve(line);
        else waiters.push(w);
      }
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  return {
    child,
    lines,
    exited,
    waitFor(re, from = 0) {
      const hit = lines.slice(from).find((l) => re.test(l));
      if (hit !== undefined) return Promise.resolve(hit);
      return new Promise((res) => waiters.push({ re, from, resolve: res }));
    },
  };
}

beforeAll(async () => {
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      'redis-server is not installed: the distributed-study test needs it (apt-get install -y redis-server, or bash scripts/setup.sh)',
    );
  }
  checkRedisDriver(); // throws "npm install ioredis" when BullMQ has no Redis driver
  try {
    execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
      cwd: ROOT,
      stdio: 'pipe',
    });
  } catch {
    // type errors elsewhere: checked below that what the test runs was emitted
  }
  expect(existsSync(join(ROOT, 'dist', 'cli', 'main.js'))).toBe(true);
  expect(existsSync(join(ROOT, 'dist', 'train', 'study', 'child.js'))).toBe(true);
  dir = mkdtempSync(join(tmpdir(), 'nas-onnx-queue-'));
  const port = await freePort();
  redis = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'],
    { stdio: 'ignore' },
  );
  url = `redis://127.0.0.1:${port}`;
  const t0 = Date.now();
  while (!(await ping(port))) {
    if (Date.now() - t0 > 10_000) throw new Error(`redis-server did not answer on port ${port}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  // the same study's manifest as a local run would have it: the reference set of trial ids
  const archs = selectArchitectures('darts', { source: 'pool', count: 3 });
  const store = openOrCreateStudy(join(dir, 'local'), {
    config: TINY,
    archs,
    objectives: ['rot', 'cls'],
    seeds: [0],
    archSource: { source: 'pool', count: 3 },
  });
  localTrials = store.trials();
  expect(localTrials).toHaveLength(6);
}, 600_000);

afterAll(async () => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
  await Promise.all(
    procs.map(
      (p) =>
        new Promise<void>((res) => {
          if (p.exitCode !== null || p.signalCode !== null) return res();
          const t = setTimeout(() => p.kill('SIGKILL'), 5000);
          p.once('exit', () => {
            clearTimeout(t);
            res();
          });
        }),
    ),
  );
  redis?.kill('SIGTERM');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('distributed study (BullMQ on a private redis-server)', () => {
  it('runs on two worker processes, survives a SIGKILLed worker, and matches the local run', async () => {
    const queueName = `test-${process.pid}`;
    const workerArgs = [
      'worker',
      '--queue',
      url,
      '--queue-name',
      queueName,
      '--threads',
      '1',
      '--lock-duration',
      '3000',
      '--stalled-interval',
      '1000',
    ];
    const release = join(dir, 'release-w2');
    const w1 = start(workerArgs, { NAS_ONNX_TEST_HOLD: 'trial:2:step:1' });
    const w2 = start(workerArgs, { NAS_ONNX_TEST_HOLD: `trial:3:step:0@${release}` });
    await w1.waitFor(/waiting for trials/);
    await w2.waitFor(/waiting for trials/);
    const study = start([
      'study',
      ...TINY_ARGS,
      '--out',
      join(dir, 'queued'),
      '--queue',
      url,
      '--queue-name',
      queueName,
    ]);

    // kill worker 1 in the middle of its second trial (after it finished one): held after its first step
    const firstDone = await w1.waitFor(/ done /);
    const finishedByW1 = firstDone.match(/ done (\S+)/)![1]!;
    const secondStart = await w1.waitFor(/ start /, w1.lines.indexOf(firstDone) + 1);
    const killed = secondStart.match(/ start (\S+)/)![1]!;
    await w1.waitFor(/test hold at trial:2:step:1$/, w1.lines.indexOf(secondStart) + 1);
    expect(w1.lines.some((l) => l.includes(`done ${killed}`))).toBe(false);
    w1.child.kill('SIGKILL');
    writeFileSync(release, '');

    const code = await study.exited;
    const out = study.lines.join('\n');
    expect(code, out).toBe(0);
    expect(out).toMatch(/\[6\/6\]/);
    expect(out).toMatch(/stalled/);
    expect(out).toMatch(/rot\s+3\s+-?\d\.\d{3}/); // the summary table
    expect(w2.lines.some((l) => l.includes(`start ${killed} (attempt 2)`))).toBe(true);

    const store = TrialStore.open(join(dir, 'queued'));
    const results = store.results();
    expect(results.map((r) => r.trialId).sort()).toEqual(localTrials.map((t) => t.id).sort());
    // the trial worker 1 finished is recorded from worker 1; the killed one was redone elsewhere
    const w1Id = w1.lines[0]!.match(/worker (\S+) waiting/)![1]!;
    expect(store.result(finishedByW1)!.info!.worker).toBe(w1Id);
    const redone = store.result(killed)!;
    expect(redone.info!.worker).not.toBe(w1Id);
    expect(Number(redone.info!.attemptsStarted)).toBeGreaterThanOrEqual(2);

    // seeded CPU runs with one thread are deterministic: the same accuracies when run here, in-process
    // (the killed-and-retried trial, the one worker 1 finished, and one of worker 2's)
    const byW2 = results.find((r) => r.info!.worker !== w1Id && r.trialId !== killed)!.trialId;
    const data = new DataCache();
    for (const id of [...new Set([killed, finishedByW1, byW2])]) {
      const t = localTrials.find((x) => x.id === id)!;
      const here = await runTrial(t, TINY, { threads: 1, data });
      expect(store.result(id)!.metrics, id).toEqual(here.metrics);
    }
  }, 600_000);
});
