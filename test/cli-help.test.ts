/**
 * Every command's --help states its defaults: each option that takes a value
 * shows a default (commander's "(default: …)" or one in its text), or says it
 * is required or an alternative to another option.
 */
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../cli/main.js';

describe('--help', () => {
  it('states the default of every option that takes a value', () => {
    const missing: string[] = [];
    for (const cmd of buildProgram().commands) {
      for (const o of cmd.options) {
        if (o.isBoolean() || o.negate || o.mandatory || o.defaultValue !== undefined) continue;
        if (/default|required|this or --|instead of/.test(o.description)) continue;
        missing.push(`${cmd.name()} ${o.flags}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
