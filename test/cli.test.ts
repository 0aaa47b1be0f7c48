/**
 * The nas-onnx CLI end to end: built with tsc, run as a subprocess
 * (`node bin/nas-onnx.js …`) in a temp directory.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { GenotypeError } from '../graph/genotype.js';
import { reportError } from '../cli/errors.js';
import { FsError, checkWritableFile, writeFileAtomic, writeFileAtomicAsync } from '../train/runtime/fsutil.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'nas-onnx.js');
let tmp: string;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[], o: { env?: Record<string, string>; bin?: string } = {}): Promise<Result> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...o.env };
  if (!o.env?.NAS_ONNX_DEBUG) delete env.NAS_ONNX_DEBUG;
  return new Promise((res) => {
    execFile(
      process.execPath,
      [o.bin ?? BIN, ...args],
      { cwd: tmp, env, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : 1
          : 0;
        res({ code, stdout, stderr });
      },
    );
  });
}

function json<T = Record<string, unknown>>(r: Result): T {
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as T;
}

interface Info {
  parameters: number;
  multiplyAdds: number;
  nodes: number;
  opCounts: Record<string, number>;
  inputs: { name: string; dtype: string; shape: (number | string)[] }[];
  outputs: { name: string; dtype: string; shape: (number | string)[] }[];
  metadata: Record<string, string>;
  genotype: { name?: string; normal: unknown[] } | null;
  config: Record<string, unknown> | null;
}

const GENOTYPE_TAIL = `"normal_concat": [2,3,4,5],
 "reduce": [["max_pool_3x3",0],["max_pool_3x3",1],["skip_connect",2],["max_pool_3x3",1],["max_pool_3x3",0],["skip_connect",2],["skip_connect",2],["max_pool_3x3",1]],
 "reduce_concat": [2,3,4,5]}`;

beforeAll(() => {
  // tsc emits even when files elsewhere in the tree have type errors; only the emitted CLI matters here
  try {
    execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
      cwd: ROOT,
      stdio: 'pipe',
    });
  } catch {
    // type errors elsewhere: checked below that the CLI was emitted
  }
  expect(existsSync(join(ROOT, 'dist', 'cli', 'main.js'))).toBe(true);
  tmp = mkdtempSync(join(tmpdir(), 'nas-onnx-cli-'));
  writeFileSync(
    join(tmp, 'badop.json'),
    `{"normal": [["sep_conv_3x3",0],["sep_conv_3x3",1],["sep_conv_3x3",0],["sep_conv_3x3",1],["sep_conv_3x3",1],["skip_connect",0],["skip_connect",0],["conv_9x9",2]],\n ${GENOTYPE_TAIL}`,
  );
  writeFileSync(join(tmp, 'malformed.json'), '{"normal": [["sep_conv_3x3",0],');
  writeFileSync(join(tmp, 'notes.txt'), 'hello, this is not a model\n');
  mkdirSync(join(tmp, 'adir'));
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('nas-onnx CLI', () => {
  it('prints its version', async () => {
    const r = await cli(['--version']);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it('exports a small darts_v2 CIFAR network that info describes', async () => {
    const ex = await cli([
      'export',
      '--genotype',
      'darts_v2',
      '--net',
      'cifar',
      '--C',
      '8',
      '--layers',
      '5',
      '--out',
      'small.onnx',
    ]);
    expect(ex.stderr).toBe('');
    expect(ex.code).toBe(0);
    expect(ex.stdout).toMatch(/check\s+ran one batch of zeros on CPU .*logits \[1,10\]/);
    const info = json<Info>(await cli(['info', 'small.onnx', '--json']));
    expect(info.parameters).toBeGreaterThan(0);
    expect(info.multiplyAdds).toBeGreaterThan(0);
    expect(info.nodes).toBeGreaterThan(0);
    expect(info.nodes).toBe(Object.values(info.opCounts).reduce((a, b) => a + b, 0));
    expect(info.opCounts.BatchNormalization).toBeGreaterThan(0); // inference-form BN
    expect(info.opCounts.ReduceMean ?? 0).toBe(0);
    // any batch: a symbolic axis 0
    expect(info.inputs).toEqual([{ name: 'x', dtype: 'float32', shape: ['N', 3, 32, 32] }]);
    expect(info.outputs).toEqual([{ name: 'logits', dtype: 'float32', shape: ['N', 10] }]);
    expect(info.metadata['nas_onnx.task']).toBe('classification');
    expect(info.metadata['nas_onnx.kind']).toBe('network');
    expect(info.genotype?.name).toBe('darts_v2');
    expect(info.config).toMatchObject({ net: 'cifar', C: 8, layers: 5, classes: 10 });
    const human = await cli(['info', 'small.onnx']);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/parameters\s+[\d,]+/);
    expect(human.stdout).toContain('output         logits float32 [N,10]');
  });

  it('exports the default darts_v2 CIFAR network with the published size (3.3M parameters)', async () => {
    const ex = await cli(['export', '--genotype', 'darts_v2', '--net', 'cifar']);
    expect(ex.stderr).toBe('');
    expect(ex.code).toBe(0);
    expect(existsSync(join(tmp, 'model.onnx'))).toBe(true);
    const info = json<Info>(await cli(['info', 'model.onnx', '--json']));
    expect(Math.abs(info.parameters - 3.3e6)).toBeLessThanOrEqual(0.1e6);
    expect(info.parameters).toBe(3_349_342);
    // every conv and the classifier, per 32×32 sample
    expect(info.multiplyAdds).toBeGreaterThan(4e8);
    expect(info.multiplyAdds).toBeLessThan(6e8);
    expect(info.config).toMatchObject({ net: 'cifar', C: 36, layers: 20, classes: 10, input: [3, 32, 32] });
    expect(info.outputs[0]!.shape).toEqual(['N', 10]);
    console.log(
      `default darts_v2 cifar: ${info.parameters} parameters, ${info.multiplyAdds} multiply-adds, ${info.nodes} nodes`,
    );
  });

  it('builds a supernet with α embedded that onnxruntime runs', async () => {
    const r = await cli(['build-supernet', '--C', '4', '--layers', '5', '--batch', '2', '--out', 'supernet.onnx']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/α\s+\[14,8\] \+ \[14,8\]/);
    const path = join(tmp, 'supernet.onnx');

    // α are initializers, not graph inputs: the only input is x
    const graph = onnxProto.onnx.ModelProto.decode(readFileSync(path)).graph as onnxProto.onnx.GraphProto;
    const inits = new Map(graph.initializer.map((t) => [t.name, (t.dims ?? []).map(Number)]));
    expect(inits.get('alpha_normal')).toEqual([14, 8]);
    expect(inits.get('alpha_reduce')).toEqual([14, 8]);
    expect(graph.input.map((v) => v.name)).toEqual(['x']);

    const s = await ort.InferenceSession.create(path);
    const x = new ort.Tensor(
      'float32',
      Float32Array.from({ length: 2 * 3 * 32 * 32 }, (_, i) => Math.sin(i)),
      [2, 3, 32, 32],
    );
    const out = await s.run({ x });
    expect(out.logits!.dims).toEqual([2, 10]);
    expect(Array.from(out.logits!.data as Float32Array).every(Number.isFinite)).toBe(true);
    await s.release();
    console.log(`supernet C=4 layers=5: ${graph.node.length} nodes (inference form)`);

    // the training-form forward (batch-statistics BN) runs too
    const rt = await cli([
      'build-supernet',
      '--C',
      '4',
      '--layers',
      '5',
      '--batch',
      '2',
      '--training',
      '--out',
      'supernet_train.onnx',
    ]);
    expect(rt.code).toBe(0);
    const st = await ort.InferenceSession.create(join(tmp, 'supernet_train.onnx'));
    const labels = new ort.Tensor('int64', BigInt64Array.from([1n, 7n]), [2]);
    const tout = await st.run({ x, labels });
    expect(tout.logits!.dims).toEqual([2, 10]);
    expect(Number.isFinite((tout.loss!.data as Float32Array)[0])).toBe(true);
    await st.release();
  });

  it('reports every bad input with exactly one stderr line and a non-zero exit', async () => {
    const cases: [string[], RegExp][] = [
      [
        ['export', '--genotype', './badop.json', '--net', 'cifar', '--C', '8', '--layers', '5'],
        /unknown op 'conv_9x9'/,
      ],
      [['export', '--genotype', './malformed.json', '--net', 'cifar'], /malformed JSON/],
      [
        ['export', '--genotype', 'no_such_genotype', '--net', 'cifar'],
        /'no_such_genotype' is neither a shipped name .*darts_v2.* nor a file/,
      ],
      [
        ['export', '--genotype', 'darts_v2', '--net', 'cifar', '--out', '/proc/x.onnx'],
        /cannot write output '\/proc\/x\.onnx'.*not writable/,
      ],
      [
        ['export', '--genotype', 'darts_v2', '--net', 'cifar', '--out', 'no/such/dir/m.onnx'],
        /directory '.*no\/such\/dir' does not exist/,
      ],
      [['build-supernet', '--out', 'adir'], /output path 'adir' is a directory/],
      [['info', 'notes.txt'], /'notes\.txt' is not an ONNX model/],
      [['info', 'malformed.json'], /not an ONNX model/],
      [['info', 'missing.onnx'], /cannot read model 'missing\.onnx': no such file/],
      [['export', '--genotype', 'darts_v2', '--net', 'resnet'], /--net.*'resnet' is invalid.*cifar, imagenet/],
      [['export', '--genotype', 'darts_v2', '--net', 'cifar', '--C', 'abc'], /--C.*'abc' is invalid.*positive integer/],
      [['build-supernet', '--layers', '0'], /--layers.*positive integer/],
      [['export', '--net', 'cifar'], /required option '--genotype/],
      [['frobnicate'], /unknown command 'frobnicate'/],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(args)));
    results.forEach((r, i) => {
      const [args, re] = cases[i]!;
      const lines = r.stderr.split('\n').filter((l) => l !== '');
      expect({ args, code: r.code }).toEqual({ args, code: 1 });
      expect({ args, lines: lines.length }).toEqual({ args, lines: 1 });
      expect(lines[0]).toMatch(/^nas-onnx: /);
      expect(lines[0]).toMatch(re);
      expect(r.stdout).toBe('');
    });
    // nothing half-written next to the refused outputs
    expect(readdirSync(tmp).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(readdirSync(join(tmp, 'adir'))).toEqual([]);
  });

  it('doctor reports the CPU provider working and exits 0', async () => {
    const r = await cli(['doctor']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/CPU provider\s+ok/);
    expect(r.stdout).toMatch(/CUDA provider files\s+(ok|missing)/);
    const j = json<{
      providers: { cpu: boolean; cuda: boolean };
      checks: { id: string; status: string; detail: string }[];
    }>(await cli(['doctor', '--json']));
    expect(j.providers.cpu).toBe(true);
    const ids = j.checks.map((c) => c.id);
    expect(ids).toEqual(
      expect.arrayContaining([
        'cpu',
        'cuda.provider',
        'cuda.driver',
        'cuda.nvidia_smi',
        'cuda.libraries',
        'cuda.session',
      ]),
    );
    for (const c of j.checks) {
      expect(['ok', 'missing', 'failed', 'skipped']).toContain(c.status);
      expect(c.detail.length).toBeGreaterThan(0);
    }
  });

  it('the launcher says so in one line when dist/ is not built', async () => {
    const fake = join(tmp, 'unbuilt');
    mkdirSync(join(fake, 'bin'), { recursive: true });
    copyFileSync(BIN, join(fake, 'bin', 'nas-onnx.js'));
    const r = await cli(['--version'], { bin: join(fake, 'bin', 'nas-onnx.js') });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('nas-onnx: not built — run npm run build\n');
  });
});

describe('cli error reporting', () => {
  function report(e: unknown, debug: boolean): { code: number; text: string } {
    const saved = process.env.NAS_ONNX_DEBUG;
    if (debug) process.env.NAS_ONNX_DEBUG = '1';
    else delete process.env.NAS_ONNX_DEBUG;
    let text = '';
    try {
      return { code: reportError(e, (s) => (text += s)), text };
    } finally {
      if (saved === undefined) delete process.env.NAS_ONNX_DEBUG;
      else process.env.NAS_ONNX_DEBUG = saved;
    }
  }

  it('prints a known error as one line, even a multi-line message', () => {
    const r = report(new GenotypeError('bad genotype\n  at line 3'), false);
    expect(r).toEqual({ code: 1, text: 'nas-onnx: bad genotype at line 3\n' });
  });

  it('prints an unknown error as one line, with the stack only under NAS_ONNX_DEBUG=1', () => {
    const plain = report(new TypeError('x is undefined'), false);
    expect(plain.code).toBe(1);
    expect(plain.text.split('\n').filter(Boolean)).toHaveLength(1);
    expect(plain.text).toMatch(/^nas-onnx: internal error: TypeError: x is undefined/);
    const debug = report(new TypeError('x is undefined'), true);
    expect(debug.text.split('\n').filter(Boolean).length).toBeGreaterThan(1);
    expect(debug.text).toContain('at ');
  });
});

describe('train/fsutil atomic writes', () => {
  it('writes, overwrites and accepts chunk lists, leaving no temp files', async () => {
    const d = mkdtempSync(join(tmpdir(), 'nas-onnx-fs-'));
    try {
      const p = join(d, 'f.bin');
      writeFileAtomic(p, Uint8Array.of(1, 2, 3));
      expect([...readFileSync(p)]).toEqual([1, 2, 3]);
      writeFileAtomic(p, [Uint8Array.of(4), Uint8Array.of(5, 6)]);
      expect([...readFileSync(p)]).toEqual([4, 5, 6]);
      await writeFileAtomicAsync(p, 'text\n');
      expect(readFileSync(p, 'utf8')).toBe('text\n');
      expect(checkWritableFile(p)).toBe(p);
      expect(readdirSync(d)).toEqual(['f.bin']);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('fails with an FsError and removes its temp file when the rename cannot happen', () => {
    const d = mkdtempSync(join(tmpdir(), 'nas-onnx-fs-'));
    try {
      mkdirSync(join(d, 'sub'));
      writeFileSync(join(d, 'sub', 'keep'), 'x');
      // renaming a file over a non-empty directory fails after the temp file was written
      expect(() => writeFileAtomic(join(d, 'sub'), Uint8Array.of(1))).toThrow(FsError);
      expect(readdirSync(d)).toEqual(['sub']);
      expect(() => checkWritableFile(join(d, 'sub'))).toThrow(/is a directory/);
      expect(() => checkWritableFile(join(d, 'nope', 'x'))).toThrow(/does not exist/);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
