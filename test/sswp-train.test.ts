/**
 * Retraining a searched SSWP-NAS network from scratch (`nas-onnx train
 * --cells cells.json`): every cell its own architecture, with the DARTS
 * evaluation options (auxiliary head, drop path, cutout), and the network
 * builder's auxiliary head and drop-path inputs; the ImageNet setting (the
 * large-image stem, 48 channels, 14 cells) from search to training.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STEPS } from '../graph/genotype.js';
import { buildSswpNetwork, edgeOf, parseSswpArch, sswpArch, sswpArchJson, type CellOps } from '../graph/nets/sswp.js';
import { sswpNetworkOf } from '../train/search/sswp/config.js';
import { cli, writeImageFolder } from './helpers/sswp.js';
import { expectAnyBatch } from './helpers/deploy.js';

let tmp: string;

/** Three different cells (no identity skip_connect, so every kept op has weights or nodes of its own). */
const CELLS: CellOps[] = [
  [
    ['sep_conv_3x3', 0],
    ['dil_conv_3x3', 1],
    ['max_pool_3x3', 2],
    ['sep_conv_5x5', 0],
    ['avg_pool_3x3', 1],
    ['dil_conv_5x5', 3],
    ['sep_conv_3x3', 4],
    ['max_pool_3x3', 0],
  ],
  [
    ['dil_conv_5x5', 1],
    ['skip_connect', 0],
    ['sep_conv_3x3', 2],
    ['avg_pool_3x3', 1],
    ['max_pool_3x3', 3],
    ['sep_conv_5x5', 2],
    ['dil_conv_3x3', 0],
    ['sep_conv_3x3', 4],
  ],
  [
    ['avg_pool_3x3', 0],
    ['sep_conv_5x5', 1],
    ['dil_conv_3x3', 0],
    ['sep_conv_3x3', 2],
    ['dil_conv_5x5', 1],
    ['max_pool_3x3', 3],
    ['sep_conv_3x3', 4],
    ['avg_pool_3x3', 2],
  ],
];

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'nas-onnx-sswp-train-'));
  await writeImageFolder(join(tmp, 'images'), { train: 16, test: 8 }, 9, 24);
  await writeImageFolder(join(tmp, 'large'), { train: 4, test: 2 }, 10, 64);
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('SSWP network for training on labels', () => {
  it('has the auxiliary head on cell ⌊2L/3⌋ and one drop-path mask per op that is not an identity', () => {
    const o = { C: 4, layers: 3, cells: CELLS, batch: 2, input: [3, 24, 24], classes: 4 };
    const m = buildSswpNetwork({ ...o, training: true, auxiliary: true, dropPath: true });
    expect(m.auxLogits!.shape).toEqual([2, 4]);
    expect([...m.g.params.keys()].some((k) => k.startsWith('auxiliary_head/'))).toBe(true);
    // every op but skip_connect at stride 1 (cell 1 is a reduction cell: its skip from s0 is a FactorizedReduce)
    expect(m.dropPathInputs.length).toBe(3 * 2 * STEPS);
    const inference = buildSswpNetwork({ ...o, training: false, auxiliary: true, dropPath: true });
    expect(inference.auxLogits).toBeNull();
    expect(inference.dropPathInputs).toEqual([]);
    const plain = buildSswpNetwork({ ...o, training: true });
    expect(plain.auxLogits).toBeNull();
    expect(plain.dropPathInputs).toEqual([]);
  });

  it('`train --cells` trains every cell as its own architecture, with aux head, drop path and cutout', async () => {
    const cellsFile = join(tmp, 'cells.json');
    const arch = sswpArch({ C: 4, layers: 3, input: [3, 24, 24], cells: CELLS });
    writeFileSync(cellsFile, sswpArchJson(arch));
    const out = join(tmp, 'train');
    const args = ['train', '--cells', cellsFile, '--dataset', join(tmp, 'images'), '--epochs', '1', '--batch', '16'];
    const opts = ['--aux-weight', '0.4', '--drop-path', '0.3', '--cutout', '4', '--workers', '0', '--quiet'];
    const r = await cli([...args, ...opts, '--out', out]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/trained 1 epoch\(s\): test accuracy/);
    expect(parseSswpArch(JSON.parse(readFileSync(join(out, 'cells.json'), 'utf8')))).toEqual(arch);
    const s = await ort.InferenceSession.create(join(out, 'model.onnx'));
    const logits = (await s.run({ x: new ort.Tensor('float32', new Float32Array(100 * 3 * 576), [100, 3, 24, 24]) }))
      .logits!;
    expect(logits.dims).toEqual([100, 4]);
    await s.release();
    expect((await expectAnyBatch(join(out, 'model.onnx'), 3)).logits).toEqual([3, 4]);
    // the weights of each cell are those of its own ops
    const model = readFileSync(join(out, 'model.onnx')).toString('latin1');
    CELLS.forEach((cell, i) => {
      cell.forEach(([op, j], k) => {
        if (op === 'skip_connect' || op.endsWith('pool_3x3')) return;
        expect(model).toContain(`cells/${i}/edge${edgeOf(Math.floor(k / 2), j)}/${op}/`);
      });
      const used = new Set(cell.map(([op, j], k) => `${edgeOf(Math.floor(k / 2), j)}/${op}`));
      for (let e = 0; e < 14; e++)
        for (const other of ['sep_conv_3x3', 'dil_conv_5x5'])
          if (!used.has(`${e}/${other}`)) expect(model).not.toContain(`cells/${i}/edge${e}/${other}/`);
    });
  });

  it('rejects --cells with --genotype, and a --C that differs from the file', async () => {
    const cellsFile = join(tmp, 'cells.json');
    const both = await cli(['train', '--cells', cellsFile, '--genotype', 'darts_v2', '--quiet']);
    expect(both.code).not.toBe(0);
    expect(both.stderr).toMatch(/exactly one of --genotype or --cells/);
    const c = await cli(['train', '--cells', cellsFile, '--C', '8', '--quiet']);
    expect(c.code).not.toBe(0);
    expect(c.stderr).toMatch(/--C 8 differs/);
  });

  it('the ImageNet setting: 48 channels and 14 cells by default with the large-image stem, its auxiliary head, train --cells', async () => {
    expect(sswpNetworkOf({ C: null, layers: null }, 'imagenet')).toEqual({ C: 48, layers: 14 });
    expect(sswpNetworkOf({ C: null, layers: null }, 'cifar')).toEqual({ C: 36, layers: 20 });
    expect(sswpNetworkOf({ C: 8, layers: null }, 'imagenet')).toEqual({ C: 8, layers: 14 });
    // 224 px: stems to 28, reductions to 14 and 7: the ImageNet auxiliary head (no BN after its 2×2 conv)
    const o = { C: 4, layers: 3, cells: CELLS, batch: 1, input: [3, 224, 224], classes: 4, stem: 'imagenet' as const };
    const m = buildSswpNetwork({ ...o, training: true, auxiliary: true, dropPath: true });
    const names = [...m.g.params.keys()];
    expect(names.some((k) => k.startsWith('stem0/')) && names.some((k) => k.startsWith('stem1/'))).toBe(true);
    expect(names.some((k) => k.startsWith('auxiliary_head/features/5/'))).toBe(true);
    expect(names.some((k) => k.startsWith('auxiliary_head/features/6/'))).toBe(false);
    expect(m.auxLogits!.shape).toEqual([1, 4]);
    expect(() => buildSswpNetwork({ ...o, input: [3, 64, 64], training: true, auxiliary: true })).toThrow(
      /at least 7×7 .* use an auxiliary weight of 0/,
    );
    // train --cells takes the stem from the file
    const cellsFile = join(tmp, 'imagenet-cells.json');
    writeFileSync(
      cellsFile,
      sswpArchJson(sswpArch({ C: 4, layers: 3, stem: 'imagenet', input: [3, 64, 64], cells: CELLS })),
    );
    const out = join(tmp, 'train-imagenet');
    const args = ['train', '--cells', cellsFile, '--dataset', join(tmp, 'large'), '--epochs', '1', '--batch', '8'];
    const r = await cli([...args, '--aux-weight', '0', '--cutout', '0', '--workers', '0', '--quiet', '--out', out]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(parseSswpArch(JSON.parse(readFileSync(join(out, 'cells.json'), 'utf8'))).stem).toBe('imagenet');
    expect(readFileSync(join(out, 'model.onnx')).toString('latin1')).toContain('stem1/');
    const wrong = await cli([...args, '--net', 'cifar', '--quiet', '--out', join(tmp, 'x')]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/--net cifar differs from the cells file's stem \(imagenet\)/);
  });
});
