/**
 * Typed run settings. A command's settings are one table (a SettingsSpec):
 * per setting its flag, help, default, what a valid value is, and whether a
 * `--resume` may change it. The library fills in the defaults and checks every
 * value from this table (resolveSettings), the CLI builds its options from it
 * (cli/settings.ts, so `--help` states the defaults the library uses), and a
 * resume compares a run's stored settings against it (resumeChanges).
 */
import { configDiff } from './config.js';
import { TrainError } from './errors.js';

/** A setting with a value that is not valid: one line naming the option. */
export class SettingError extends TrainError {
  override name = 'SettingError';
}

/** What values a setting takes: how the command line's text becomes one, and which are valid. */
export interface ValueKind<T> {
  /** A valid value, in words ("a positive integer"). */
  what: string;
  /** The value a command-line argument stands for (checked with `ok` afterwards). */
  parse(text: string): unknown;
  ok(v: unknown): v is T;
  /** The values, when they are a fixed list. */
  choices?: readonly string[];
}

export interface Setting<T> {
  kind: ValueKind<T>;
  /** The default; undefined: the setting must be given. */
  default: T | undefined;
  /** Command-line flag with its argument, e.g. `--aux-weight <x>`. */
  flag: string;
  help: string;
  /** How --help shows the default when it is not a plain value (e.g. `all` for null). */
  defaultText?: string;
  /** 'adjustable': a --resume may change it (the change is named); otherwise a resume must keep the run's value. */
  resume?: 'fixed' | 'adjustable';
}

/** The settings of a command, one entry per field of its config. */
export type SettingsSpec<C> = { [K in keyof C]-?: Setting<C[K]> };

const INT_RE = /^[+-]?\d+$/;

function numberOf(text: string): number {
  const s = text.trim();
  return s === '' ? Number.NaN : Number(s);
}

/** Integers in [min, max]. */
export function intKind(min: number, max = Number.MAX_SAFE_INTEGER): ValueKind<number> {
  const what =
    min === 1 && max === Number.MAX_SAFE_INTEGER
      ? 'a positive integer'
      : min === 0 && max === Number.MAX_SAFE_INTEGER
        ? 'a non-negative integer'
        : max === Number.MAX_SAFE_INTEGER
          ? `an integer ≥ ${min}`
          : `an integer in ${min}..${max}`;
  return {
    what,
    parse: (t) => (INT_RE.test(t.trim()) ? Number(t.trim()) : Number.NaN),
    ok: (v): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max,
  };
}

export interface Interval {
  min?: number;
  max?: number;
  /** Exclude the bound itself. */
  minOpen?: boolean;
  maxOpen?: boolean;
}

/** Finite numbers in an interval. */
export function numberKind(what: string, r: Interval = {}): ValueKind<number> {
  return {
    what,
    parse: numberOf,
    ok: (v): v is number =>
      typeof v === 'number' &&
      Number.isFinite(v) &&
      (r.min === undefined || (r.minOpen ? v > r.min : v >= r.min)) &&
      (r.max === undefined || (r.maxOpen ? v < r.max : v <= r.max)),
  };
}

export const positiveInt = intKind(1);
export const nonNegativeInt = intKind(0);
export const seedKind = intKind(0, 0xffffffff);
export const positiveNumber = numberKind('a positive number', { min: 0, minOpen: true });
export const nonNegativeNumber = numberKind('a non-negative number', { min: 0 });
export const probability = numberKind('a probability in [0, 1]', { min: 0, max: 1 });

/** One of a fixed list of strings. */
export function choiceKind<T extends string>(values: readonly T[]): ValueKind<T> {
  return {
    what: `one of ${values.join(', ')}`,
    choices: values,
    parse: (t) => t.trim(),
    ok: (v): v is T => typeof v === 'string' && (values as readonly string[]).includes(v),
  };
}

/** A kind, or null ("none", e.g. no --limit: all images). */
export function nullable<T>(k: ValueKind<T>): ValueKind<T | null> {
  return { ...k, ok: (v): v is T | null => v === null || k.ok(v) };
}

export const textKind: ValueKind<string> = {
  what: 'a non-empty text',
  parse: (t) => t,
  ok: (v): v is string => typeof v === 'string' && v.length > 0,
};

export const boolKind: ValueKind<boolean> = {
  what: 'true or false',
  parse: (t) => (t === 'true' ? true : t === 'false' ? false : t),
  ok: (v): v is boolean => typeof v === 'boolean',
};

/** The option name of a setting (`--aux-weight`), for messages. */
export function optionName(s: Setting<unknown>, key: string): string {
  return s.flag ? s.flag.split(/[ ,]/)[0]! : `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

function shown(v: unknown): string {
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : String(v);
  if (typeof v === 'string') return `'${v}'`;
  return JSON.stringify(v) ?? String(v);
}

/** The one-line problem with value `v` of a setting, or null when it is valid. */
export function settingProblem<T>(s: Setting<T>, key: string, v: unknown): string | null {
  if (v === undefined) return `${optionName(s, key)} is required`;
  return s.kind.ok(v) ? null : `${optionName(s, key)}: expected ${s.kind.what}, got ${shown(v)}`;
}

/** The defaults of a spec (settings without one are left out). */
export function settingsDefaults<C>(spec: SettingsSpec<C>): Partial<C> {
  const out: Partial<C> = {};
  for (const k of Object.keys(spec) as (keyof C & string)[]) {
    const d = spec[k].default;
    if (d !== undefined) out[k] = d;
  }
  return out;
}

/**
 * The config of `given` over the defaults, every value checked: throws a
 * SettingError naming the first bad or missing setting. Keys of `given` that
 * are not settings are ignored (execution options travel beside the config).
 */
export function resolveSettings<C>(spec: SettingsSpec<C>, given: Partial<C>): C {
  const out = {} as C;
  for (const k of Object.keys(spec) as (keyof C & string)[]) {
    const s = spec[k];
    const v = given[k] === undefined ? s.default : given[k];
    const problem = settingProblem(s, k, v);
    if (problem) throw new SettingError(problem);
    out[k] = v as C[typeof k];
  }
  return out;
}

/** What differs between a run's stored config and the config of a resume, split by what a resume may change. */
export interface ResumeChanges {
  /** Changes a resume may make, `key old → new, …` (empty: none). */
  adjusted: string;
  /** Changes a resume may not make (empty: none). */
  refused: string;
}

export function resumeChanges<C extends object>(spec: SettingsSpec<C>, stored: Partial<C>, now: C): ResumeChanges {
  const keys = Object.keys(spec) as (keyof C & string)[];
  const changes = (adjustable: boolean): string =>
    keys
      .filter((k) => (spec[k].resume === 'adjustable') === adjustable)
      .map((k) => {
        const d = configDiff(stored as C, now, [k]);
        // a long value (a genotype, a cells file) is named, not printed
        return d.length > 80 ? `${k} (changed)` : d;
      })
      .filter(Boolean)
      .join(', ');
  return { adjusted: changes(true), refused: changes(false) };
}
