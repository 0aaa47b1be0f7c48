/**
 * The segmentation network through the CLI (`node bin/nas-onnx.js`, built
 * dist/): `export --net seg` writes a model that onnxruntime runs to
 * per-pixel logits, and `info` says what it is.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoPath } from '../graph/paths.js';
import { f32, Session } from '../train/runtime/session.js';

/** Runs the built CLI; resolves with its exit code and output. */
function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [repoPath('bin', 'nas-onnx.js'), ...args], (err, stdout, stderr) => {
      res({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const tmp = mkdtempSync(join(tmpdir(), 'nas-onnx-seg-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('nas-onnx export --net seg', () => {
  it('writes the ASPP network (per-pixel logits at the input size) that info describes', async () => {
    const out = join(tmp, 'seg.onnx');
    const ex = await cli(
      `export --net seg --genotype darts_v2 --C 8 --layers 4 --classes 5 --size 65 --out ${out}`.split(' '),
    );
    expect(ex.stderr).toBe('');
    expect(ex.code).toBe(0);
    expect(ex.stdout).toMatch(/check\s+ran one batch of zeros on CPU .*logits \[1,5,65,65\]/);
    const js = await cli(['info', out, '--json']);
    const info = JSON.parse(js.stdout) as {
      outputs: { shape: (number | string)[] }[];
      metadata: Record<string, string>;
      config: Record<string, unknown>;
      opCounts: Record<string, number>;
    };
    expect(info.outputs[0]!.shape).toEqual(['N', 5, 65, 65]);
    // the symbolic batch: two images at once
    const sess = await Session.create(out);
    try {
      const y = await sess.run({ x: f32(new Float32Array(2 * 3 * 65 * 65), [2, 3, 65, 65]) });
      expect(y.logits!.dims).toEqual([2, 5, 65, 65]);
    } finally {
      await sess.release();
    }
    expect(info.config).toMatchObject({
      task: 'seg',
      C: 8,
      layers: 4,
      classes: 5,
      aspp: { channels: 256, rates: [6, 12, 18] },
    });
    expect(info.opCounts.GlobalAveragePool).toBe(1); // the image-pool branch
    expect(info.metadata['nas_onnx.task']).toBe('segmentation');
    const human = await cli(['info', out]);
    expect(human.stdout).toMatch(/task\s+semantic segmentation: per-pixel logits over 5 classes/);
  });

  it('rejects an odd C for the ImageNet stem in one line', async () => {
    const r = await cli(['export', '--net', 'seg', '--genotype', 'darts_v2', '--C', '9', '--out', join(tmp, 'x.onnx')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/even C/);
  });
});

describe('nas-onnx build-supernet --objective seg', () => {
  it('writes the supernet search trains: ImageNet stem, one reduction, ASPP 64 [6], per-pixel logits', async () => {
    const out = join(tmp, 'super.onnx');
    const r = await cli(`build-supernet --objective seg --C 4 --layers 3 --size 65 --out ${out}`.split(' '));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/seg search supernet, imagenet stem/);
    const info = JSON.parse((await cli(['info', out, '--json'])).stdout) as {
      outputs: { shape: (number | string)[] }[];
      config: Record<string, unknown>;
      opCounts: Record<string, number>;
    };
    expect(info.outputs[0]!.shape).toEqual(['N', 19, 65, 65]);
    expect(info.config).toMatchObject({
      objective: 'seg',
      stem: 'imagenet',
      classes: 19,
      aspp: { channels: 64, rates: [6] },
    });
    expect(info.opCounts.GlobalAveragePool).toBe(1);
    const tr = join(tmp, 'super-training.onnx');
    const t = await cli(
      `build-supernet --objective seg --C 4 --layers 3 --size 65 --batch 2 --training --out ${tr}`.split(' '),
    );
    expect(t.code).toBe(0);
    const ti = JSON.parse((await cli(['info', tr, '--json'])).stdout) as {
      inputs: { name: string; dtype: string; shape: number[] }[];
      outputs: { name: string }[];
    };
    expect(ti.inputs.find((v) => v.name === 'labels')).toEqual({ name: 'labels', dtype: 'int64', shape: [2, 65, 65] });
    expect(ti.outputs.map((v) => v.name)).toContain('loss');
    const bad = await cli(['build-supernet', '--objective', 'seg', '--stem', 'cifar', '--out', join(tmp, 'y.onnx')]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr.trim()).toBe('nas-onnx: --objective seg searches the segmentation network: its stem is imagenet');
  });
});
