/**
 * Study errors: StudyError, a user-facing one (bad option, incompatible study
 * directory, failed trial process…): one line; TrialFailure, a trial that
 * would fail again on every try.
 */
import { GenotypeError } from '../../graph/genotype.js';
import { GraphError } from '../../graph/ir.js';
import { SettingError } from '../runtime/settings.js';

export class StudyError extends Error {
  override name = 'StudyError';
}

/** A trial that fails the same way on every try (NaN loss, batch larger than the data, bad settings). */
export class TrialFailure extends StudyError {
  override name = 'TrialFailure';
}

/**
 * True when an error would fail a trial again on every try: such a trial is
 * recorded as failed with its reason, not retried. Everything else (a trial
 * process that died, a lost worker, memory) may pass on another try.
 */
export function failsEveryTry(e: unknown): boolean {
  return (
    e instanceof TrialFailure || e instanceof GraphError || e instanceof SettingError || e instanceof GenotypeError
  );
}
