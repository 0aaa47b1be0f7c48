/**
 * Helpers of the SSWP-NAS tests: a small labelled folder of synthetic colour
 * images and the CLI run in-process with its stdout captured.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { run } from '../../cli/main.js';
import { Rng } from '../../graph/rng.js';

/** 4 classes of S×S colour images: horizontal / vertical stripes, checkerboard, diagonal; random colours and noise. */
export async function writeImageFolder(
  dir: string,
  perClass: { train: number; test: number },
  seed: number,
  S = 12,
): Promise<void> {
  const rng = new Rng(seed);
  const pattern = [
    (y: number) => y % 4 < 2,
    (_y: number, x: number) => x % 4 < 2,
    (y: number, x: number) => (Math.floor(y / 3) + Math.floor(x / 3)) % 2 === 0,
    (y: number, x: number) => (x + y) % 6 < 3,
  ];
  for (const split of ['train', 'test'] as const) {
    for (let c = 0; c < 4; c++) {
      const d = join(dir, split, `class${c}`);
      mkdirSync(d, { recursive: true });
      for (let k = 0; k < perClass[split]; k++) {
        const a = [rng.int(256), rng.int(256), rng.int(256)];
        const b = [rng.int(256), rng.int(256), rng.int(256)];
        const px = Buffer.alloc(S * S * 3);
        for (let y = 0; y < S; y++) {
          for (let x = 0; x < S; x++) {
            const on = pattern[c]!(y, x);
            for (let ch = 0; ch < 3; ch++)
              px[(y * S + x) * 3 + ch] = Math.max(0, Math.min(255, (on ? a : b)[ch]! + rng.int(41) - 20));
          }
        }
        await sharp(px, { raw: { width: S, height: S, channels: 3 } })
          .png()
          .toFile(join(d, `${k}.png`));
      }
    }
  }
}

/** Run the CLI in-process; stdout and stderr captured. */
export async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const write = process.stdout.write.bind(process.stdout);
  const writeErr = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string | Uint8Array) => {
    stdout += String(s);
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((s: string | Uint8Array) => {
    stderr += String(s);
    return true;
  }) as typeof process.stderr.write;
  try {
    const code = await run(['node', 'nas-onnx', ...args]);
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = write;
    process.stderr.write = writeErr;
  }
}
