/**
 * `train --task seg` end to end on a synthetic images/ + masks/ set the test
 * writes (coloured shapes on noise, test/helpers/seg-data.ts): a tiny network
 * learns it to a high validation mIoU — which it can only if every label map
 * went through the same random scale, crop and flip as its image — with the
 * per-epoch log (mIoU, per-class IoU), checkpoints and the shipped model that
 * maps a frame to per-pixel logits. Then an interrupted run (SIGINT at a step
 * boundary through the CLI) resumed to the end matches an uninterrupted one
 * exactly.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoPath } from '../graph/paths.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trainSeg, type SegTrainConfig } from '../train/eval/seg.js';
import { f32, Session } from '../train/runtime/session.js';
import { SegFrames } from '../train/data/index.js';
import { ensureWorkerBuilt, tempDir } from './fixtures/data-fixtures.js';
import { writeShapesFolder } from './helpers/seg-data.js';
import { expectAnyBatch } from './helpers/deploy.js';

const tmp = tempDir('nas-onnx-seg-train-');
const data = join(tmp.dir, 'shapes');

beforeAll(async () => {
  ensureWorkerBuilt();
  await writeShapesFolder(data, { train: 64, val: 8 }, [64, 80], 11);
}, 600_000);
afterAll(() => tmp.cleanup());

/**
 * A network small enough for the CPU: C 8, 3 cells (the reduction in the
 * middle), ASPP 32 wide. Crops of 16k + 1 pixels (49, like UnNAS's 321 and
 * 769) keep the output-stride-16 feature grid on the crop's corners, where
 * the align_corners upsampling puts it.
 */
const TINY: Partial<SegTrainConfig> = {
  genotype: 'darts_v2',
  data,
  C: 8,
  layers: 3,
  classes: 3,
  asppChannels: 32,
  crop: 49,
  scaleBase: 64,
  batch: 8,
  lr: 0.2,
  weightDecay: 1e-4,
  lighting: 0.05,
  seed: 1,
};

describe('train --task seg', () => {
  it('refuses a batch of one image (BN of the image-pool branch) and a missing genotype, in one line', async () => {
    const out = join(tmp.dir, 'refused');
    await expect(trainSeg({ ...TINY, batch: 1 }, { out })).rejects.toThrow('--batch: expected an integer ≥ 2, got 1');
    await expect(trainSeg({ ...TINY, genotype: undefined }, { out })).rejects.toThrow('--genotype is required');
  });

  it('learns coloured shapes on noise to a high mIoU; logs per-class IoU; ships a frame → logits model', async () => {
    const out = join(tmp.dir, 'run');
    const r = await trainSeg({ ...TINY, epochs: 8, evalEvery: 4 }, { out, workers: 1, quiet: true });
    const last = r.history.at(-1)!;
    expect(last.val_miou).toBeGreaterThan(0.8);
    expect(last.val_iou).toHaveLength(3);
    expect(r.history.filter((h) => h.val_miou !== undefined).map((h) => h.epoch)).toEqual([4, 8]);
    const log = readFileSync(join(out, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(log.map((l) => l.epoch)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(log[7].val_iou.every((v: number) => v > 0.5)).toBe(true);
    // the shipped model on a validation frame: logits of the frame, the arg-max mostly right
    expect(r.frame).toEqual([65, 81]);
    const frames = await SegFrames.open(data, { classes: 3 });
    const f = await frames.frameAt(0);
    const s = await Session.create(r.modelPath);
    try {
      const y = await s.run({ x: f32(f.x, [1, 3, 65, 81]) });
      expect(y.logits!.dims).toEqual([1, 3, 65, 81]);
      const logits = y.logits!.data as Float32Array;
      let right = 0;
      let labelled = 0;
      for (let p = 0; p < 65 * 81; p++) {
        const l = f.labels[p]!;
        if (l === 255) continue;
        let best = 0;
        for (let c = 1; c < 3; c++) if (logits[c * 65 * 81 + p]! > logits[best * 65 * 81 + p]!) best = c;
        labelled++;
        if (best === l) right++;
      }
      expect(right / labelled).toBeGreaterThan(0.9);
    } finally {
      await s.release();
    }
  }, 600_000);

  it('an interrupted run (SIGINT through the CLI) resumed to the end equals an uninterrupted one', async () => {
    const small = { C: 4, layers: 3, asppChannels: 8, crop: 33, scaleBase: 40, batch: 8, lr: 0.1, valLimit: 2 };
    const whole = join(tmp.dir, 'whole');
    await trainSeg({ ...TINY, ...small, epochs: 2 }, { out: whole, workers: 0, quiet: true });
    const cut = join(tmp.dir, 'cut');
    const args = [
      'train',
      '--task',
      'seg',
      '--genotype',
      'darts_v2',
      '--data',
      data,
      '--classes',
      '3',
      '--lighting',
      '0.05',
      '--seed',
      '1',
      '--epochs',
      '2',
      '--workers',
      '1',
      '--quiet',
      '--out',
      cut,
      ...Object.entries(small).flatMap(([k, v]) => [
        k === 'C' ? '--C' : `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`,
        String(v),
      ]),
    ];
    // 8 steps per epoch: held (and interrupted) at step 11, in the second epoch
    const first = await cliHeld(args, 11);
    expect(first.code, first.stderr).toBe(130);
    expect(first.stderr).toMatch(/interrupted by SIGINT at epoch 2, step 3: saved checkpoint step-000000011/);
    expect(first.stderr).toMatch(/continue with: nas-onnx train .*--resume/);
    const second = await cliHeld([...args, '--resume'], null);
    expect(second.stderr).toBe('');
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/trained 2 epoch\(s\): val mIoU/);
    const records = (dir: string) =>
      readFileSync(join(dir, 'log.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => ({ ...JSON.parse(l), seconds: 0 }));
    expect(records(cut)).toEqual(records(whole));
    expect(readFileSync(join(cut, 'model.onnx')).equals(readFileSync(join(whole, 'model.onnx')))).toBe(true);
    // the shipped segmentation model takes any batch: two frames at once agree with each alone
    expect((await expectAnyBatch(join(whole, 'model.onnx'), 2)).logits![0]).toBe(2);
  }, 600_000);
});

/** Runs the built CLI; with `hold`, sends SIGINT once it is held at step boundary `hold`. */
function cliHeld(
  args: string[],
  hold: number | null,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env = { ...process.env, ...(hold === null ? {} : { NAS_ONNX_TEST_HOLD: `step:${hold}` }) };
    const child = spawn(process.execPath, [repoPath('bin', 'nas-onnx.js'), ...args], { env });
    let stdout = '';
    let stderr = '';
    let sent = false;
    child.stdout.on('data', (d) => (stdout += String(d)));
    child.stderr.on('data', (d) => {
      stderr += String(d);
      if (!sent && hold !== null && stderr.includes(`nas-onnx: test hold at step:${hold}\n`)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
