// The project's test command: typecheck, lint, build, run the vitest suite, then print the
// plain closing line "N passed, N failed, N skipped" (CI reads it) and exit
// with vitest's status.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';

const results = '.vitest-results.json';
rmSync(results, { force: true });
// typecheck everything (tests included), lint + format check, then build dist/ (tests spawn the CLI and workers)
const steps = [
  ['typecheck', ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.check.json']],
  ['lint', ['node_modules/@biomejs/biome/bin/biome', 'check', '.']],
  ['build', ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json']],
];
for (const [name, cmd] of steps) {
  const r = spawnSync(process.execPath, cmd, { stdio: 'inherit' });
  if (r.status !== 0) {
    console.log(`${name} failed`);
    process.exit(r.status ?? 1);
  }
}
const args = [
  'node_modules/vitest/vitest.mjs',
  'run',
  '--reporter=default',
  '--reporter=json',
  `--outputFile.json=${results}`,
  ...process.argv.slice(2),
];
const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
if (existsSync(results)) {
  const j = JSON.parse(readFileSync(results, 'utf8'));
  console.log(`${j.numPassedTests} passed, ${j.numFailedTests} failed, ${j.numPendingTests + j.numTodoTests} skipped`);
}
process.exit(r.status ?? 1);
