/**
 * `nas-onnx report <dir>`: the HTML report of a run directory — a search
 * (DARTS or SSWP-NAS) or a training run: `<dir>/report.html`; of a study
 * (a directory with study.json): `<dir>/report/report.html` with the rest of
 * the study report. Works on a run that is still going.
 */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeRunReport } from '../../train/report/run-report.js';
import { openStudy } from '../../train/study/runner.js';
import { printReport } from './study.js';

export function register(program: Command): void {
  program
    .command('report')
    .description('write the HTML report of a search, training or study directory (one offline file)')
    .argument('<dir>', 'run directory (search, train) or study directory')
    .action(async (dir: string) => {
      if (existsSync(join(dir, 'study.json'))) {
        await printReport(openStudy(dir));
        return;
      }
      process.stdout.write(`${await writeRunReport(dir)}\n`);
    });
}
