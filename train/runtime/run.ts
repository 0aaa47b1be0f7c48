/**
 * The lifecycle of a run directory (`--out`), one for every long-running
 * command (search, train, finetune):
 *  - the directory is locked while a run uses it (lock.ts);
 *  - an `--out` that holds a run is refused unless `--resume` (continue it)
 *    or `--overwrite` (remove it first) is given;
 *  - a resume starts from the checkpoint LATEST names or, when that one is
 *    missing or damaged, from the newest intact one (saying so), and compares
 *    the stored settings with the given ones: each changed setting is named,
 *    and only settings marked adjustable (learning rates) may change;
 *  - no checkpoint with a NaN or an infinity is ever written, and a
 *    non-finite loss stops the run with a message naming the newest (finite)
 *    checkpoint and how to continue from it;
 *  - SIGINT / SIGTERM during the step loop: a checkpoint at the next step
 *    boundary, then an exit with a message saying how to resume; a second
 *    signal quits at once;
 *  - running out of memory is reported with the settings that shrink it;
 *  - a fresh run that fails before it saved or logged anything leaves nothing
 *    behind.
 */
import { existsSync, mkdirSync, rmdirSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { type Checkpoint, CheckpointError, firstNonFinite, resumableCheckpoint, saveCheckpoint } from './checkpoint.js';
import { TrainError } from './errors.js';
import { writeFileAtomic } from './fsutil.js';
import { RunLock } from './lock.js';
import { appendJsonLine } from './log.js';
import { optionName, resumeChanges, type SettingsSpec, SettingError } from './settings.js';

/** What is the same for every run of a command. */
export interface RunKind<C extends object> {
  /** The command, in messages ('train'). */
  command: string;
  /** The checkpoints' `meta.kind`: a resume refuses another kind's run. */
  kind: string;
  /** The verb of the stored-settings message ("was trained with other settings"). */
  verb: string;
  settings: SettingsSpec<C>;
  /** What the run writes besides config.json, log.jsonl and checkpoints/ (removed by --overwrite). */
  outputs: readonly string[];
  /** The settings that shrink memory, named when a step runs out of it. */
  memory: readonly (keyof C & string)[];
  /** The setting to lower when the loss becomes non-finite ('lr'). */
  rescue: keyof C & string;
}

export interface RunOptions<C> {
  out: string;
  /** The run's settings, resolved (resolveSettings). */
  config: C;
  resume?: boolean;
  overwrite?: boolean;
  /**
   * The command line that runs this again with options set (`true`: a flag),
   * for messages; the CLI renders it from its own command line. Default: "the
   * same command with …".
   */
  commandLine?: (set: Record<string, string | true>) => string;
  /** Where notes go (fallback checkpoint, adjusted settings, overwritten run); default stderr. */
  note?: (line: string) => void;
  /** Catch SIGINT and SIGTERM (default true). */
  signals?: boolean;
}

/** A run stopped by SIGINT or SIGTERM after saving a checkpoint; exits with 128 + the signal number. */
export class RunInterrupted extends TrainError {
  override name = 'RunInterrupted';

  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

const SIGNAL_CODES: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };
const RUN_FILES = ['config.json', 'log.jsonl', 'checkpoints'];

/** True for an allocation failure (ORT's std::bad_alloc, V8's array buffer failures, ENOMEM). */
export function isOutOfMemory(e: unknown): boolean {
  const m = e instanceof Error ? e.message : String(e);
  return /bad_alloc|failed to allocate|out of memory|cannot allocate memory|ENOMEM|array buffer allocation failed/i.test(
    m,
  );
}

function defaultCommandLine(set: Record<string, string | true>): string {
  const opts = Object.entries(set).map(([k, v]) => (v === true ? k : `${k} ${v}`));
  return `the same command with ${opts.join(' ')}`;
}

interface Saved {
  step: number;
  name: string;
  at: string;
}

export class Run<C extends object> {
  readonly logPath: string;
  /** The checkpoint this run continues (null: a fresh run). */
  readonly resumed: Checkpoint | null;
  private lock: RunLock | null;
  private last: Saved | null;
  private saved = false;
  private logged = false;
  private signal: NodeJS.Signals | null = null;
  private inLoop = false;
  private readonly onSignal = (sig: NodeJS.Signals): void => this.signalled(sig);
  private readonly note: (line: string) => void;
  private readonly commandLine: (set: Record<string, string | true>) => string;

  private constructor(
    readonly kind: RunKind<C>,
    readonly dir: string,
    readonly config: C,
    private readonly created: boolean,
    lock: RunLock,
    resumed: { checkpoint: Checkpoint; dir: string } | null,
    o: RunOptions<C>,
  ) {
    this.lock = lock;
    this.logPath = join(dir, 'log.jsonl');
    this.resumed = resumed?.checkpoint ?? null;
    this.last = resumed
      ? { step: resumed.checkpoint.step, name: basename(resumed.dir), at: String(resumed.checkpoint.meta.at ?? '') }
      : null;
    this.note = o.note ?? ((line) => process.stderr.write(`${line}\n`));
    this.commandLine = o.commandLine ?? defaultCommandLine;
    if (o.signals !== false) {
      process.on('SIGINT', this.onSignal);
      process.on('SIGTERM', this.onSignal);
    }
  }

  /**
   * Opens `o.out` for a run of `kind`: locks it, applies the --out policy,
   * and for a resume finds the checkpoint and checks the settings. Writes
   * config.json. Throws a TrainError (one line) when the run cannot start.
   */
  static open<C extends object>(kind: RunKind<C>, o: RunOptions<C>): Run<C> {
    if (o.resume && o.overwrite) throw new SettingError('give at most one of --resume and --overwrite');
    const dir = o.out;
    const created = !existsSync(dir);
    if (o.resume && created) throw new TrainError(`--resume: no checkpoint in ${dir}`);
    mkdirSync(dir, { recursive: true });
    const lock = RunLock.acquire(dir, kind.command);
    try {
      const note = o.note ?? ((line: string) => process.stderr.write(`${line}\n`));
      const resumed = o.resume ? findResume(kind, o, note) : null;
      if (!o.resume) clearForFreshRun(kind, dir, !!o.overwrite, note);
      const run = new Run(kind, dir, o.config, created, lock, resumed, o);
      writeFileAtomic(join(dir, 'config.json'), `${JSON.stringify(o.config, null, 2)}\n`);
      return run;
    } catch (e) {
      lock.release();
      if (created) rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /** Appends a record to log.jsonl. */
  log(rec: unknown): void {
    appendJsonLine(this.logPath, rec);
    this.logged = true;
  }

  /** Replaces log.jsonl with `records` (a resume: the log holds exactly the checkpoint's records). */
  rewriteLog(records: readonly unknown[]): void {
    writeFileAtomic(this.logPath, records.map((r) => `${JSON.stringify(r)}\n`).join(''));
  }

  /**
   * Saves a checkpoint at `step` (`at` says where, e.g. "epoch 2, step 5");
   * the meta gets the run's kind, config and position. Never writes NaN or
   * infinity: throws the non-finite error instead.
   */
  save(step: number, meta: Record<string, unknown>, tensors: Map<string, Float32Array>, at: string): void {
    const bad = firstNonFinite(tensors);
    if (bad) throw this.nonFinite(`the weights (${bad})`, at);
    const dir = saveCheckpoint(this.dir, {
      step,
      meta: { ...meta, kind: this.kind.kind, config: this.config, at },
      tensors,
    });
    this.last = { step, name: basename(dir), at };
    this.saved = true;
  }

  /** The newest checkpoint of this run (saved or resumed from), or null. */
  get lastCheckpoint(): { step: number; name: string; at: string } | null {
    return this.last;
  }

  /**
   * The error that stops a run whose `what` ("the loss") became non-finite at
   * `at`: names the newest checkpoint (all finite) and how to continue from
   * it with a lower learning rate.
   */
  nonFinite(what: string, at: string): TrainError {
    const k = this.kind.rescue;
    const opt = optionName(this.kind.settings[k], k);
    const now = `${opt} (now ${String(this.config[k])})`;
    if (!this.last)
      return new TrainError(
        `${what} became non-finite at ${at}, before any checkpoint: start again with a lower ${now}` +
          (this.leavesNothing() ? '' : ' and --overwrite'),
      );
    const where = this.last.at ? ` (${this.last.at})` : '';
    return new TrainError(
      `${what} became non-finite at ${at}; no checkpoint holds non-finite values: continue from ${this.last.name}${where} ` +
        `with a lower ${now}: ${this.commandLine({ '--resume': true, [opt]: '<lower>' })}`,
    );
  }

  /**
   * Opens a run (Run.open), runs `body` in it and closes it, kept only when `body` returns;
   * an out-of-memory error comes out explained (`explain`).
   */
  static async execute<C extends object, T>(
    kind: RunKind<C>,
    o: RunOptions<C>,
    body: (run: Run<C>) => Promise<T>,
  ): Promise<T> {
    const run = Run.open(kind, o);
    let ok = false;
    try {
      const r = await body(run);
      ok = true;
      return r;
    } catch (e) {
      throw run.explain(e);
    } finally {
      run.close(ok);
    }
  }

  /** The error for an out-of-memory failure, naming the settings that shrink memory; other errors unchanged. */
  explain(e: unknown): unknown {
    if (!isOutOfMemory(e) || e instanceof TrainError) return e;
    const raw = e instanceof Error ? e.message : String(e);
    const size = /requested buffer of size (\d+)/.exec(raw)?.[1];
    const why = /bad_alloc/.test(raw)
      ? 'std::bad_alloc'
      : size
        ? `a buffer of ${(Number(size) / 2 ** 30).toFixed(2)} GiB could not be allocated`
        : raw.split('\n')[0]!.slice(0, 120);
    const opts = this.kind.memory.map(
      (k) => `${optionName(this.kind.settings[k], k)} (now ${JSON.stringify(this.config[k])})`,
    );
    const list = opts.length > 1 ? `${opts.slice(0, -1).join(', ')} or ${opts[opts.length - 1]}` : (opts[0] ?? '');
    return new TrainError(`out of memory (${why}): lower ${list}`);
  }

  /**
   * A step boundary (`step` steps done, `at` in words): the test hold
   * point `step:<n>`; after a signal, `save()` (unless this step is saved
   * already) and a RunInterrupted that says how to resume.
   */
  async boundary(step: number, at: string, save: () => void): Promise<void> {
    this.inLoop = true;
    await testHold(`step:${step}`, () => this.signal !== null);
    if (!this.signal) return;
    if (this.last?.step !== step) save();
    const sig = this.signal;
    throw new RunInterrupted(
      `interrupted by ${sig} at ${at}: saved checkpoint ${this.last!.name} in ${join(this.dir, 'checkpoints')}; ` +
        `continue with: ${this.commandLine({ '--resume': true })}`,
      SIGNAL_CODES[sig] ?? 1,
    );
  }

  /** The step loop is over: a signal from now on exits at once (the last checkpoint holds the whole run). */
  endLoop(): void {
    this.inLoop = false;
  }

  private signalled(sig: NodeJS.Signals): void {
    const code = SIGNAL_CODES[sig] ?? 1;
    const last = this.last ? `the newest checkpoint is ${this.last.name}` : 'no checkpoint was saved';
    if (this.signal || !this.inLoop) {
      const when = this.signal ? `${sig} again` : `interrupted by ${sig}`;
      this.note(
        `nas-onnx: ${when}: quitting now; ${last}${this.last ? ` (continue with: ${this.commandLine({ '--resume': true })})` : ''}`,
      );
      this.close(!!this.last);
      process.exit(code);
    }
    this.signal = sig;
    this.note(`nas-onnx: ${sig}: saving a checkpoint after this step (${sig} again quits at once)`);
  }

  /** True when closing this run as failed removes everything it wrote. */
  private leavesNothing(): boolean {
    return this.resumed === null && !this.saved && !this.logged;
  }

  /**
   * Ends the run: signal handlers off, lock released. A failed (`ok` false)
   * fresh run that saved and logged nothing removes what it wrote (its run
   * files and outputs, and the directory, if it created it).
   */
  close(ok: boolean): void {
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
    if (!ok && this.leavesNothing())
      // a fresh run starts without any of these: what is there, it wrote
      for (const f of [...RUN_FILES, ...this.kind.outputs]) rmSync(join(this.dir, f), { recursive: true, force: true });
    this.lock?.release();
    this.lock = null;
    if (!ok && this.leavesNothing() && this.created) {
      try {
        rmdirSync(this.dir);
      } catch {
        // not empty: something else was put there meanwhile
      }
    }
  }
}

/** The checkpoint a resume starts from, its kind and settings checked. */
function findResume<C extends object>(
  kind: RunKind<C>,
  o: RunOptions<C>,
  note: (line: string) => void,
): { checkpoint: Checkpoint; dir: string } {
  let found: ReturnType<typeof resumableCheckpoint>;
  try {
    found = resumableCheckpoint(o.out);
  } catch (e) {
    if (e instanceof CheckpointError) throw new TrainError(`--resume: ${e.message}`);
    throw e;
  }
  if (!found) throw new TrainError(`--resume: no checkpoint in ${o.out}`);
  if (found.note) note(`nas-onnx: ${found.note}`);
  const meta = found.checkpoint.meta;
  if (meta.kind !== kind.kind)
    throw new TrainError(
      `--resume: ${o.out} is not a ${kind.command} run of this kind (its checkpoints are '${String(meta.kind)}' ones)`,
    );
  const changes = resumeChanges(kind.settings, (meta.config ?? {}) as Partial<C>, o.config);
  if (changes.refused)
    throw new TrainError(
      `--resume: ${o.out} was ${kind.verb} with other settings (${changes.refused}): resume with the same settings, or start afresh with --overwrite`,
    );
  if (changes.adjusted) note(`nas-onnx: resuming ${o.out} with changed settings: ${changes.adjusted}`);
  return found;
}

/** The --out policy of a fresh run: refuse a directory that holds a run, unless --overwrite (which removes it). */
function clearForFreshRun<C extends object>(
  kind: RunKind<C>,
  dir: string,
  overwrite: boolean,
  note: (line: string) => void,
): void {
  const present = [...RUN_FILES, ...kind.outputs].filter((f) => existsSync(join(dir, f)));
  if (!present.length) return;
  const list = present.join(', ');
  if (!overwrite)
    throw new TrainError(
      `${dir} already holds a run (${list}): continue it with --resume, replace it with --overwrite, or choose another --out`,
    );
  for (const f of present) rmSync(join(dir, f), { recursive: true, force: true });
  note(`nas-onnx: --overwrite: removed the previous run in ${dir} (${list})`);
}

/**
 * Test hook: `NAS_ONNX_TEST_HOLD="<point>[@<file>],…"` holds the process at a
 * named point (`step:<n>`, a step boundary of a run; `trial:<k>:step:<n>`, a
 * study trial) after printing `nas-onnx: test hold at <point>` on stderr,
 * until `<file>` exists, or without one until `released()` is true (a signal
 * came) — or for ever. Tests use it to act at a known point, not after a delay.
 */
export async function testHold(point: string, released: () => boolean = () => false): Promise<void> {
  const spec = process.env.NAS_ONNX_TEST_HOLD;
  if (!spec) return;
  const hit = spec.split(',').find((p) => p.split('@')[0] === point);
  if (hit === undefined) return;
  const file = hit.includes('@') ? hit.slice(hit.indexOf('@') + 1) : null;
  process.stderr.write(`nas-onnx: test hold at ${point}\n`);
  while (!(file ? existsSync(file) : released())) await new Promise((r) => setTimeout(r, 10));
}
