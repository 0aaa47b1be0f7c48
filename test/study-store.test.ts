import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dartsArchId, sampleDartsGenotypes } from '../train/study/darts-sampler.js';
import { nb101ArchId, sampleNasBench101 } from '../graph/spaces/nasbench101.js';
import { findRepoRoot } from '../graph/paths.js';
import { writeFileAtomic } from '../train/runtime/fsutil.js';
import { crossTrials, TrialStore, trialId, type TrialSpec } from '../train/study/store.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'study-store-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function dartsTrials(nArch: number): TrialSpec[] {
  const archs = sampleDartsGenotypes(nArch, 1).map((g) => ({ archId: dartsArchId(g), arch: g }));
  return crossTrials(archs, ['rot', 'cls'], [0, 1]);
}

function tempFiles(d: string): string[] {
  return readdirSync(d).filter((f) => f.endsWith('.tmp'));
}

describe('trial ids', () => {
  it('are deterministic and file-name safe', () => {
    expect(trialId('darts-0123456789abcdef', 'rot', 2)).toBe('darts-0123456789abcdef-rot-s2');
    const g = sampleDartsGenotypes(1, 4)[0]!;
    expect(trialId(dartsArchId(g), 'col', 0)).toBe(trialId(dartsArchId(structuredClone(g)), 'col', 0));
    const spec = sampleNasBench101(1, 4)[0]!;
    expect(trialId(nb101ArchId(spec), 'jig', 1)).toMatch(/^nb101-[0-9a-f]{32}-jig-s1$/);
    expect(() => trialId('../x', 'rot', 0)).toThrow(/unsafe/);
    expect(() => trialId('a', 'r/t', 0)).toThrow(/unsafe/);
    expect(() => trialId('a', 'rot', -1)).toThrow(/seed/);
    expect(() => trialId('a', 'rot', 1.5)).toThrow(/seed/);
  });
});

describe('TrialStore', () => {
  it('creates a manifest once; reopening with the same trials changes nothing', () => {
    const trials = dartsTrials(5);
    expect(trials).toHaveLength(20);
    const s1 = TrialStore.openOrCreate(dir, trials, { space: 'darts' });
    const manifest1 = readFileSync(join(dir, 'study.json'), 'utf8');
    expect(s1.trials()).toHaveLength(20);
    expect(s1.meta).toEqual({ space: 'darts' });
    // duplicates are merged, order kept, file untouched
    const s2 = TrialStore.openOrCreate(dir, [...trials, ...trials.slice(0, 3)], { other: 1 });
    expect(readFileSync(join(dir, 'study.json'), 'utf8')).toBe(manifest1);
    expect(s2.trials().map((t) => t.id)).toEqual(s1.trials().map((t) => t.id));
    expect(s2.meta).toEqual({ space: 'darts' });
    // the arch is stored verbatim
    expect(TrialStore.open(dir).trials()[0]!.arch).toEqual(trials[0]!.arch);
  });

  it('appends new trials and rejects a conflicting spec for an existing id', () => {
    const trials = dartsTrials(3);
    TrialStore.openOrCreate(dir, trials);
    const more = dartsTrials(4).slice(12);
    const s = TrialStore.openOrCreate(dir, [...trials, ...more]);
    expect(s.trials()).toHaveLength(16);
    const conflicting = { ...trials[0]!, arch: { something: 'else' } };
    expect(() => TrialStore.openOrCreate(dir, [conflicting])).toThrow(/different spec/);
    expect(() => TrialStore.open(join(dir, 'nope'))).toThrow(/no study\.json/);
  });

  it('resumes where it stopped and never reruns a finished trial', () => {
    const trials = dartsTrials(4); // 16 trials
    const runs = new Map<string, number>();
    const train = (id: string) => {
      runs.set(id, (runs.get(id) ?? 0) + 1);
      return { accuracy: (id.length % 7) / 10 };
    };
    // first session crashes after 5 trials
    const s1 = TrialStore.openOrCreate(dir, trials);
    expect(s1.pendingTrials()).toHaveLength(16);
    let done = 0;
    expect(() => {
      for (const t of s1.pendingTrials()) {
        if (done === 5) throw new Error('crash');
        s1.recordResult(t.id, train(t.id));
        done++;
      }
    }).toThrow('crash');
    // second session, new process: same trial list, only the 11 pending ones run
    const s2 = TrialStore.openOrCreate(dir, trials);
    expect(s2.pendingTrials()).toHaveLength(11);
    expect(s2.progress()).toEqual({ done: 5, failed: 0, total: 16 });
    for (const t of s2.pendingTrials()) s2.recordResult(t.id, train(t.id));
    // third session: nothing left
    const s3 = TrialStore.openOrCreate(dir, trials);
    expect(s3.pendingTrials()).toEqual([]);
    expect([...runs.values()].every((k) => k === 1)).toBe(true);
    expect(runs.size).toBe(16);
    // results come back in manifest order with their trial fields
    const res = s3.results();
    expect(res.map((r) => r.trialId)).toEqual(s3.trials().map((t) => t.id));
    expect(res[0]).toMatchObject({ archId: trials[0]!.archId, objective: 'rot', seed: 0 });
    expect(typeof res[0]!.finishedAt).toBe('string');
  });

  it('recordResult is idempotent: the first result is kept unless overwrite is asked', () => {
    const s = TrialStore.openOrCreate(dir, dartsTrials(1));
    const id = s.trials()[0]!.id;
    expect(s.recordResult(id, { accuracy: 0.5 }, { params: 123 })).toBe(true);
    expect(s.recordResult(id, { accuracy: 0.9 })).toBe(false);
    // another store instance on the same directory (another worker) also keeps the first
    expect(TrialStore.open(dir).recordResult(id, { accuracy: 0.7 })).toBe(false);
    expect(s.result(id)).toMatchObject({ metrics: { accuracy: 0.5 }, info: { params: 123 } });
    expect(s.recordResult(id, { accuracy: 0.9 }, undefined, { overwrite: true })).toBe(true);
    expect(s.result(id)!.metrics).toEqual({ accuracy: 0.9 });
    expect(() => s.recordResult('not-a-trial-s0', { accuracy: 1 })).toThrow(/unknown trial/);
    expect(tempFiles(join(dir, 'results'))).toEqual([]);
    expect(tempFiles(dir)).toEqual([]);
  });

  it('ignores leftovers of a crash: temp files, corrupt results, results of unknown trials', () => {
    const s = TrialStore.openOrCreate(dir, dartsTrials(1));
    const [a, b, c] = s.trials();
    s.recordResult(a!.id, { accuracy: 0.1 });
    const resultsDir = join(dir, 'results');
    // a temp file from an interrupted write of b
    writeFileSync(join(resultsDir, `.${b!.id}.json.1234.abcdef.tmp`), '{"trialId":');
    // a corrupt (truncated) result for c, e.g. from a non-atomic writer
    writeFileSync(join(resultsDir, `${c!.id}.json`), '{"trialId": "');
    // a result of a trial that is not in the manifest
    writeFileSync(join(resultsDir, 'stray-rot-s0.json'), JSON.stringify({ trialId: 'stray-rot-s0', metrics: {} }));
    const pending = s.pendingTrials().map((t) => t.id);
    expect(pending).toContain(b!.id);
    expect(pending).toContain(c!.id);
    expect(pending).not.toContain(a!.id);
    expect(s.results().map((r) => r.trialId)).toEqual([a!.id]);
    expect(s.isDone(c!.id)).toBe(false);
    // the corrupt result is replaced by a real one
    expect(s.recordResult(c!.id, { accuracy: 0.3 })).toBe(true);
    expect(s.result(c!.id)!.metrics).toEqual({ accuracy: 0.3 });
  });
});

describe("writeFileAtomic (the store's writes)", () => {
  it('writes via a temporary file and leaves none behind', () => {
    const p = join(dir, 'a.json');
    expect(writeFileAtomic(p, 'first')).toBe(true);
    expect(readFileSync(p, 'utf8')).toBe('first');
    expect(writeFileAtomic(p, 'second')).toBe(true);
    expect(readFileSync(p, 'utf8')).toBe('second');
    expect(writeFileAtomic(p, 'third', { overwrite: false })).toBe(false);
    expect(readFileSync(p, 'utf8')).toBe('second');
    expect(writeFileAtomic(join(dir, 'b.bin'), new Uint8Array([1, 2, 3]), { overwrite: false })).toBe(true);
    expect([...readFileSync(join(dir, 'b.bin'))]).toEqual([1, 2, 3]);
    expect(readdirSync(dir).sort()).toEqual(['a.json', 'b.bin']);
  });

  it('a reader in another process never sees a partial file while it is being replaced', () => {
    const p = join(dir, 'big.json');
    const doneMarker = join(dir, 'writer.done');
    writeFileAtomic(p, JSON.stringify({ k: 0, data: '' }));
    const fsutilUrl = new URL('../train/runtime/fsutil.ts', import.meta.url).href;
    const script = `
      const { writeFileAtomic } = await import(${JSON.stringify(fsutilUrl)});
      const { writeFileSync } = await import('node:fs');
      for (let k = 1; k <= 40; k++) writeFileAtomic(${JSON.stringify(p)}, JSON.stringify({ k, data: 'x'.repeat(1 << 20) }));
      writeFileSync(${JSON.stringify(doneMarker)}, '');`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: 'inherit',
      cwd: findRepoRoot(),
    });
    let reads = 0;
    let last = 0;
    const t0 = Date.now();
    while (!existsSync(doneMarker) && Date.now() - t0 < 30_000) {
      const got = JSON.parse(readFileSync(p, 'utf8')) as { k: number }; // throws on a partial file
      expect(got.k).toBeGreaterThanOrEqual(last);
      last = got.k;
      reads++;
    }
    child.kill();
    expect(existsSync(doneMarker)).toBe(true);
    expect(reads).toBeGreaterThan(0);
    expect((JSON.parse(readFileSync(p, 'utf8')) as { k: number }).k).toBe(40);
    expect(tempFiles(dir)).toEqual([]);
  });
});
