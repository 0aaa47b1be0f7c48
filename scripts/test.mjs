// The project's test command: build, run the vitest suite, then print the
// plain closing line "N passed, N failed, N skipped" (CI reads it) and exit
// with vitest's status.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';

const results = '.vitest-results.json';
rmSync(results, { force: true });
const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
if (tsc.status !== 0) {
  console.log('build failed');
  process.exit(tsc.status ?? 1);
}
const args = ['node_modules/vitest/vitest.mjs', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${results}`, ...process.argv.slice(2)];
const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
if (existsSync(results)) {
  const j = JSON.parse(readFileSync(results, 'utf8'));
  console.log(`${j.numPassedTests} passed, ${j.numFailedTests} failed, ${j.numPendingTests + j.numTodoTests} skipped`);
}
process.exit(r.status ?? 1);
