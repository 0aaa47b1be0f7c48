#!/usr/bin/env node
// nas-onnx launcher: runs the compiled CLI (dist/, built by `npm run build`).
import { existsSync } from 'node:fs';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('nas-onnx: not built — run npm run build\n');
  process.exit(1);
}
const { run } = await import(main.href);
process.exitCode = await run(process.argv);
