/**
 * A file-based trial store that makes a sample-based study idempotent and
 * resumable: the study directory holds a manifest of all trials and one
 * result file per finished trial. A study that is restarted asks
 * `pendingTrials()` and only runs those; a finished trial is never rerun and
 * its result is never silently replaced. A trial that failed for a reason
 * that would fail it again (NaN loss, batch larger than the data, bad
 * settings) is recorded as failed with that reason, and is not pending
 * either (until its failure record is cleared).
 *
 * Layout:
 *   <dir>/study.json               manifest: { version, createdAt, meta, trials: [{ id, archId, objective, seed, arch }] }
 *   <dir>/results/<trialId>.json   one TrialResult per finished trial
 *   <dir>/failed/<trialId>.json    one TrialFailureRecord per trial that failed for good
 *
 * Every file is written atomically (train/runtime/fsutil.ts writeFileAtomic;
 * a hard link when a result must not replace an existing one), so a crash
 * leaves either the old state or the new one, never a partial file. Several worker
 * processes may record results of different trials into the same store
 * concurrently; the manifest should be written by one process.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../runtime/fsutil.js';

/** A trial to run: one architecture trained for one objective with one seed. */
export interface TrialSpec {
  /** Stable architecture id (e.g. `dartsArchId(genotype)`, `nb101ArchId(spec)` or a pool id). */
  archId: string;
  /** Task / objective name, e.g. 'rot', 'col', 'jig', 'cls'. */
  objective: string;
  /** Training seed. */
  seed: number;
  /** The architecture itself (DARTS genotype, NAS-Bench-101 spec, …), stored verbatim in the manifest. */
  arch: unknown;
}

/** A trial of the manifest. */
export interface Trial extends TrialSpec {
  /** `trialId(archId, objective, seed)`. */
  id: string;
}

/** The manifest file. */
export interface StudyManifest {
  version: 1;
  createdAt: string;
  meta: Record<string, unknown>;
  trials: Trial[];
}

/** The result of one finished trial. */
export interface TrialResult {
  trialId: string;
  archId: string;
  objective: string;
  seed: number;
  /** Numbers measured by the trial; the study analysis reads `accuracy` by default. */
  metrics: Record<string, number>;
  /** Free-form extra information (timings, parameter count, …). */
  info?: Record<string, unknown>;
  /** ISO time the result was recorded. */
  finishedAt: string;
}

/** A trial that failed for good, and why. */
export interface TrialFailureRecord {
  trialId: string;
  archId: string;
  objective: string;
  seed: number;
  reason: string;
  info?: Record<string, unknown>;
  failedAt: string;
}

const SAFE_ID = /^[A-Za-z0-9_.]+(?:-[A-Za-z0-9_.]+)*$/;
const MANIFEST = 'study.json';
const RESULTS = 'results';
const FAILED = 'failed';

/**
 * Deterministic trial id `${archId}-${objective}-s${seed}`.
 * @throws if a part contains characters unsafe in file names (allowed: letters, digits, '_', '.', and '-' inside the arch id).
 */
export function trialId(archId: string, objective: string, seed: number): string {
  if (!SAFE_ID.test(archId) || archId.startsWith('.'))
    throw new Error(`trialId: unsafe arch id ${JSON.stringify(archId)}`);
  if (!/^[A-Za-z0-9_.]+$/.test(objective) || objective.startsWith('.')) {
    throw new Error(`trialId: unsafe objective ${JSON.stringify(objective)}`);
  }
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`trialId: seed must be a non-negative integer, got ${seed}`);
  return `${archId}-${objective}-s${seed}`;
}

/**
 * The cross product archs × objectives × seeds as trial specs, in that nesting order;
 * `seedsOf` gives some objectives their own seeds (e.g. a second seed of cls only).
 */
export function crossTrials(
  archs: { archId: string; arch: unknown }[],
  objectives: string[],
  seeds: number[],
  seedsOf: Record<string, number[]> = {},
): TrialSpec[] {
  const out: TrialSpec[] = [];
  for (const a of archs)
    for (const objective of objectives)
      for (const seed of seedsOf[objective] ?? seeds) out.push({ archId: a.archId, arch: a.arch, objective, seed });
  return out;
}

function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

function sameTrial(a: TrialSpec, b: TrialSpec): boolean {
  return (
    a.archId === b.archId &&
    a.objective === b.objective &&
    a.seed === b.seed &&
    JSON.stringify(a.arch) === JSON.stringify(b.arch)
  );
}

/** A study directory: its manifest and its finished results. */
export class TrialStore {
  private manifest: StudyManifest;

  private constructor(
    /** The study directory. */
    readonly dir: string,
    manifest: StudyManifest,
  ) {
    this.manifest = manifest;
  }

  /** Opens an existing study. @throws if `dir` has no manifest. */
  static open(dir: string): TrialStore {
    const path = join(dir, MANIFEST);
    if (!existsSync(path)) throw new Error(`TrialStore.open: no ${MANIFEST} in ${dir}`);
    const m = readJson<StudyManifest>(path);
    if (m.version !== 1 || !Array.isArray(m.trials)) throw new Error(`TrialStore.open: unsupported manifest in ${dir}`);
    mkdirSync(join(dir, RESULTS), { recursive: true });
    return new TrialStore(dir, m);
  }

  /**
   * Opens the study in `dir`, creating it if needed, and makes sure every
   * trial of `trials` is in the manifest: trials already present are kept
   * (and must have the same arch/objective/seed), new ones are appended
   * (duplicates in `trials` are merged). Calling it again with the same
   * arguments changes nothing. `meta` is stored on creation only.
   * @throws if a trial id is already in the manifest with a different spec.
   */
  static openOrCreate(dir: string, trials: TrialSpec[], meta: Record<string, unknown> = {}): TrialStore {
    mkdirSync(join(dir, RESULTS), { recursive: true });
    const path = join(dir, MANIFEST);
    const existing = existsSync(path);
    const store = existing
      ? TrialStore.open(dir)
      : new TrialStore(dir, { version: 1, createdAt: new Date().toISOString(), meta, trials: [] });
    const byId = new Map(store.manifest.trials.map((t) => [t.id, t]));
    let added = 0;
    for (const spec of trials) {
      const id = trialId(spec.archId, spec.objective, spec.seed);
      const have = byId.get(id);
      if (have) {
        if (!sameTrial(have, spec)) throw new Error(`TrialStore: trial ${id} already exists with a different spec`);
        continue;
      }
      const t: Trial = { id, archId: spec.archId, objective: spec.objective, seed: spec.seed, arch: spec.arch };
      byId.set(id, t);
      store.manifest.trials.push(t);
      added++;
    }
    if (!existing || added > 0) writeFileAtomic(path, `${JSON.stringify(store.manifest, null, 1)}\n`);
    return store;
  }

  /** The manifest's metadata. */
  get meta(): Record<string, unknown> {
    return this.manifest.meta;
  }

  /** All trials, in manifest order. */
  trials(): Trial[] {
    return this.manifest.trials.slice();
  }

  /** The trial with this id, if any. */
  trial(id: string): Trial | undefined {
    return this.manifest.trials.find((t) => t.id === id);
  }

  private resultPath(id: string): string {
    return join(this.dir, RESULTS, `${id}.json`);
  }

  /** Reads a result file; undefined if absent or unreadable (an unreadable file counts as not finished). */
  private readResult(id: string): TrialResult | undefined {
    const p = this.resultPath(id);
    if (!existsSync(p)) return undefined;
    try {
      const r = readJson<TrialResult>(p);
      return r && r.trialId === id ? r : undefined;
    } catch {
      return undefined;
    }
  }

  /** Ids of the trials with a result file (one directory listing). */
  private finishedIds(): Set<string> {
    const names = readdirSync(join(this.dir, RESULTS));
    const ids = new Set<string>();
    for (const n of names) if (!n.startsWith('.') && n.endsWith('.json')) ids.add(n.slice(0, -5));
    return ids;
  }

  /** True if the trial has a (readable) result. */
  isDone(id: string): boolean {
    return this.readResult(id) !== undefined;
  }

  /** Trials without a result or a failure record, in manifest order — what a resumed study still has to run. */
  pendingTrials(): Trial[] {
    const done = this.finishedIds();
    const failed = new Set(this.failures().map((f) => f.trialId));
    return this.manifest.trials.filter(
      (t) => !failed.has(t.id) && (!done.has(t.id) || this.readResult(t.id) === undefined),
    );
  }

  /** Records that a trial of the manifest failed for good, with its reason (replaces an earlier record). */
  recordFailure(id: string, reason: string, info?: Record<string, unknown>): void {
    const t = this.trial(id);
    if (!t) throw new Error(`TrialStore.recordFailure: unknown trial ${id}`);
    const r: TrialFailureRecord = {
      trialId: id,
      archId: t.archId,
      objective: t.objective,
      seed: t.seed,
      reason,
      ...(info ? { info } : {}),
      failedAt: new Date().toISOString(),
    };
    mkdirSync(join(this.dir, FAILED), { recursive: true });
    writeFileAtomic(join(this.dir, FAILED, `${id}.json`), `${JSON.stringify(r, null, 1)}\n`);
  }

  /** The trials recorded as failed, in manifest order (a trial with a result is not failed). */
  failures(): TrialFailureRecord[] {
    const dir = join(this.dir, FAILED);
    if (!existsSync(dir)) return [];
    const names = new Set(readdirSync(dir));
    const done = this.finishedIds();
    const out: TrialFailureRecord[] = [];
    for (const t of this.manifest.trials) {
      if (!names.has(`${t.id}.json`) || done.has(t.id)) continue;
      try {
        out.push(readJson<TrialFailureRecord>(join(dir, `${t.id}.json`)));
      } catch {
        // unreadable: not a record
      }
    }
    return out;
  }

  /** Removes every failure record (those trials are pending again); returns how many there were. */
  clearFailures(): number {
    const n = this.failures().length;
    rmSync(join(this.dir, FAILED), { recursive: true, force: true });
    return n;
  }

  /**
   * Records the result of a trial of the manifest, atomically. A trial that
   * already has a result keeps it (returns false) unless `overwrite` is set.
   * @returns true if this call wrote the result.
   * @throws if `id` is not a trial of the manifest.
   */
  recordResult(
    id: string,
    metrics: Record<string, number>,
    info?: Record<string, unknown>,
    opts: { overwrite?: boolean } = {},
  ): boolean {
    const t = this.trial(id);
    if (!t) throw new Error(`TrialStore.recordResult: unknown trial ${id}`);
    const r: TrialResult = {
      trialId: id,
      archId: t.archId,
      objective: t.objective,
      seed: t.seed,
      metrics,
      ...(info ? { info } : {}),
      finishedAt: new Date().toISOString(),
    };
    const data = `${JSON.stringify(r, null, 1)}\n`;
    // An unreadable (corrupt) result counts as unfinished and may be replaced.
    const overwrite = opts.overwrite === true || (existsSync(this.resultPath(id)) && this.readResult(id) === undefined);
    return writeFileAtomic(this.resultPath(id), data, { overwrite });
  }

  /** The result of a trial, if finished. */
  result(id: string): TrialResult | undefined {
    return this.readResult(id);
  }

  /** All finished results, in manifest order (result files of trials not in the manifest are ignored). */
  results(): TrialResult[] {
    const done = this.finishedIds();
    const out: TrialResult[] = [];
    for (const t of this.manifest.trials) {
      if (!done.has(t.id)) continue;
      const r = this.readResult(t.id);
      if (r) out.push(r);
    }
    return out;
  }

  /** Counts of finished, failed and all trials. */
  progress(): { done: number; failed: number; total: number } {
    return { done: this.results().length, failed: this.failures().length, total: this.manifest.trials.length };
  }
}
