/**
 * A toy run in a process of its own (test/run-lifecycle.test.ts): opens
 * `argv[2]` as a TOY run (resumed when `argv[3]` is `resume`), then runs
 * `argv[4]` steps, saving a checkpoint every `argv[5]` steps and passing every
 * step boundary; prints `step N` after each step. Signals and the test hold
 * (NAS_ONNX_TEST_HOLD) act as in a real command.
 */
import { Run, RunInterrupted } from '../../train/runtime/run.js';
import { resolveSettings } from '../../train/runtime/settings.js';
import { TOY, TOY_SETTINGS } from './run-kind.js';

const [out, mode, stepsArg, everyArg] = process.argv.slice(2);
const steps = Number(stepsArg);
const every = Number(everyArg);
const run = Run.open(TOY, {
  out: out!,
  config: resolveSettings(TOY_SETTINGS, {}),
  resume: mode === 'resume',
  commandLine: (set) => `toy ${Object.keys(set).join(' ')}`,
});
let ok = false;
try {
  let step = run.resumed?.step ?? 0;
  const w = new Float32Array(4).fill(step);
  const save = (): void => run.save(step, {}, new Map([['w', w]]), `step ${step}`);
  while (step < steps) {
    step++;
    w.fill(step);
    process.stdout.write(`step ${step}\n`);
    if (step % every === 0) save();
    await run.boundary(step, `step ${step}`, save);
  }
  ok = true;
} catch (e) {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exitCode = e instanceof RunInterrupted ? e.exitCode : 1;
} finally {
  run.close(ok);
}
