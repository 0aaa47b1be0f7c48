/**
 * Trying a trial of a local study: up to `attempts` tries; a failure that
 * would happen again on every try (errors.ts failsEveryTry: NaN loss, batch
 * larger than the data, bad settings) is recorded in the study as a failed
 * trial with its reason at once, not retried. A stop request ends the tries.
 */
import { failsEveryTry } from './errors.js';
import type { StudyEvent, StudyProgress, TrialOutcome } from './runner.js';
import type { Trial, TrialStore } from './store.js';

/** A trial that failed for good in this run. */
export interface FailedTrial {
  trialId: string;
  error: string;
  /** True when it fails the same way on every try (recorded in the study, not retried). */
  everyTry: boolean;
}

export interface AttemptContext {
  store: TrialStore;
  attempts: number;
  emit: (e: StudyEvent) => void;
  progress: StudyProgress;
  signal?: AbortSignal;
}

/** Runs `trial` with `exec` until it succeeds, fails for good, or the run stops; returns whether a result was recorded and the failure. */
export async function attemptTrial(
  trial: Trial,
  exec: (t: Trial) => Promise<TrialOutcome>,
  c: AttemptContext,
): Promise<{ recorded: boolean; failed: FailedTrial | null }> {
  for (let attempt = 1; attempt <= c.attempts; attempt++) {
    if (attempt > 1 && c.signal?.aborted) break;
    c.emit({ type: 'trial-start', trial });
    try {
      const outcome = await exec(trial);
      outcome.info.attempt = attempt;
      const recorded = c.store.recordResult(trial.id, outcome.metrics, outcome.info);
      c.emit({ type: 'trial-done', trial, outcome, ...c.progress.finish() });
      return { recorded, failed: null };
    } catch (e) {
      const error = (e as Error).message ?? String(e);
      const everyTry = failsEveryTry(e);
      const final = everyTry || attempt === c.attempts;
      if (everyTry) c.store.recordFailure(trial.id, error, { attempt });
      c.emit({ type: 'trial-failed', trial, error, final, everyTry });
      if (final) return { recorded: false, failed: { trialId: trial.id, error, everyTry } };
    }
  }
  return { recorded: false, failed: null };
}
