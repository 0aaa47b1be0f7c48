/**
 * Command-line options from a command's settings table
 * (train/runtime/settings.ts): each option gets the setting's flag, help,
 * value check (one-line errors) and default (shown by --help), and the parsed
 * options map back to the config's keys, so the CLI only overrides fields.
 * Also renders the command line that continues a run (for the lifecycle's
 * messages).
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { Setting, SettingsSpec } from '../train/runtime/settings.js';
import { PROG } from './errors.js';

export interface SettingOptionOverrides {
  /** Help text instead of the setting's. */
  help?: string;
  /** Leave the default out of commander (e.g. it differs by method; the help says so). */
  noDefault?: boolean;
}

/** The commander option of one setting. */
export function settingOption<T>(s: Setting<T>, o: SettingOptionOverrides = {}): Option {
  const opt = new Option(s.flag, o.help ?? s.help);
  if (opt.negate) return opt; // `--no-x`: commander's boolean, default true
  if (s.kind.choices) opt.choices([...s.kind.choices]);
  else
    opt.argParser((text: string) => {
      const v = s.kind.parse(text);
      if (!s.kind.ok(v)) throw new InvalidArgumentError(`expected ${s.kind.what}, got '${text}'.`);
      return v as T;
    });
  if (!o.noDefault && (s.default !== undefined || s.defaultText))
    opt.default(s.default === undefined ? null : s.default, s.defaultText);
  return opt;
}

/**
 * Adds the options of `keys` (default: every setting with a flag) to `cmd`.
 * Returns the function that reads the options given on the command line as a
 * partial config.
 */
export function addSettings<C>(
  cmd: Command,
  spec: SettingsSpec<C>,
  keys: readonly (keyof C & string)[] = Object.keys(spec) as (keyof C & string)[],
  overrides: Partial<Record<keyof C & string, SettingOptionOverrides>> = {},
): (opts: Record<string, unknown>) => Partial<C> {
  for (const k of keys) {
    const s = spec[k] as Setting<unknown>;
    if (s.flag) cmd.addOption(settingOption(s, overrides[k]));
  }
  return readSettings(cmd, spec);
}

/**
 * The reader of a spec's settings from `cmd`'s parsed options (added by
 * addSettings, for this spec or another with the same flags): only what the
 * command line gave; the library fills in the defaults.
 */
export function readSettings<C>(cmd: Command, spec: SettingsSpec<C>): (opts: Record<string, unknown>) => Partial<C> {
  const attrs: [keyof C & string, string][] = [];
  for (const k of Object.keys(spec) as (keyof C & string)[]) {
    const flag = (spec[k] as Setting<unknown>).flag;
    if (flag) attrs.push([k, new Option(flag).attributeName()]);
  }
  return (opts) => {
    const out: Partial<C> = {};
    for (const [k, a] of attrs) {
      const source = cmd.getOptionValueSource(a);
      if (opts[a] !== undefined && source !== undefined && source !== 'default') out[k] = opts[a] as C[typeof k];
    }
    return out;
  };
}

function quote(t: string): string {
  if (/^[\w@%+=:,./-]+$/.test(t) || /^<[a-z]+>$/.test(t)) return t;
  return `'${t.replace(/'/g, `'\\''`)}'`;
}

/** The argv the program was parsed from (commander keeps it on the root command), else process.argv. */
function parsedArgv(cmd: Command): readonly string[] {
  let root = cmd;
  while (root.parent) root = root.parent;
  const raw = (root as unknown as { rawArgs?: string[] }).rawArgs;
  return raw?.length ? raw : process.argv;
}

/**
 * The command line of this process with options set (`true`: a flag) and
 * `--overwrite` dropped: `nas-onnx train … --resume`.
 */
export function continueCommand(cmd: Command, argv?: readonly string[]) {
  return (set: Record<string, string | true>): string => {
    let tokens = (argv ?? parsedArgv(cmd)).slice(2);
    for (const key of [...Object.keys(set), '--overwrite']) {
      const takesValue = cmd.options.some((o) => o.long === key && (o.required || o.optional));
      const out: string[] = [];
      for (let i = 0; i < tokens.length; i++) {
        const t = tokens[i]!;
        if (t.startsWith(`${key}=`)) continue;
        if (t === key) {
          if (takesValue) i++;
          continue;
        }
        out.push(t);
      }
      tokens = out;
    }
    for (const [k, v] of Object.entries(set)) tokens.push(...(v === true ? [k] : [k, v]));
    return [PROG, ...tokens].map(quote).join(' ');
  };
}
