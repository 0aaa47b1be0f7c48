/**
 * The search's α gradients, on a tiny supernet and one fixed batch (training-form
 * BN normalizes with the batch statistics: deterministic for a fixed batch):
 *  - first order: the α-grad graph runSearch builds (buildSearchForward +
 *    assembleStep gradientsOnly, outputGrads α) against central finite
 *    differences of the forward loss;
 *  - second order: secondOrderArchGrad against the DARTS formula evaluated step
 *    by step here from plain gradient runs, and its Hessian-vector part against
 *    two independent finite differences.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as ort from 'onnxruntime-node';
import { serialize } from '../graph/onnx.js';
import { Rng } from '../graph/rng.js';
import { assembleStep, type StepSpec } from '../graph/training.js';
import { resolveTask } from '../train/data/index.js';
import { newTrainState, StepRunner, type TrainState } from '../train/runtime/engine.js';
import { initParams } from '../train/runtime/params.js';
import { Session, f32, i64, scalarOf } from '../train/runtime/session.js';
import { buildSearchForward, type SgdSpec } from '../graph/nets/search.js';
import { secondOrderArchGrad } from '../train/search/darts.js';

const C = 4;
const LAYERS = 3;
const BATCH = 4;
const SIZE = 8;
const THREADS = 2;
const task = resolveTask('cls', { c: 3, h: SIZE, w: SIZE, classes: 5, labelled: true });
const sgd: SgdSpec = { kind: 'sgd', momentum: 0.9, weightDecay: 3e-4 };

function batch(seed: number): Record<string, ort.Tensor> {
  const rng = new Rng(seed);
  const x = Float32Array.from({ length: BATCH * 3 * SIZE * SIZE }, () => rng.normal());
  return {
    x: f32(x, [BATCH, 3, SIZE, SIZE]),
    labels: i64(
      Array.from({ length: BATCH }, (_, i) => i % 5),
      [BATCH],
    ),
  };
}

/** Parameters of the supernet: seeded init, α drawn N(0, 0.5²) so the softmaxes are far from uniform. */
function params(g: ReturnType<typeof buildSearchForward>['g']): Map<string, Float32Array> {
  const p = initParams(g, 7);
  const rng = new Rng(11);
  for (const q of g.params.values())
    if (q.role === 'arch')
      p.set(
        q.name,
        Float32Array.from(p.get(q.name)!, () => 0.5 * rng.normal()),
      );
  return p;
}

/** A gradients-only step (as runSearch's α-grad and full-grad graphs): ∇α, or ∇ of every non-state parameter. */
const gradOnly = (f: ReturnType<typeof buildSearchForward>, outputs: 'arch' | 'all'): StepSpec => ({
  loss: f.loss,
  metrics: f.metrics,
  update: () => false,
  outputGrads: (p) => (outputs === 'arch' ? p.role === 'arch' : p.role !== 'state'),
  gradientsOnly: true,
  optimizer: sgd,
  stateOutputs: false,
});

let alphaRunner: StepRunner;
let allRunner: StepRunner;
let lossSession: Session;
let lossGraph: ReturnType<typeof buildSearchForward>['g'];
let p0: Map<string, Float32Array>;
let archNames: string[];
let weightNames: string[];
const trainFeeds = batch(1);
const valFeeds = batch(2);

beforeAll(async () => {
  const build = () => buildSearchForward(task, { C, layers: LAYERS, batchRows: BATCH });
  // the α-grad graph exactly as runSearch builds it
  const fa = build();
  const aInfo = assembleStep(fa.g, gradOnly(fa, 'arch'));
  alphaRunner = await StepRunner.create(fa.g, aInfo, null, { threads: THREADS, optimization: 'disabled' });
  const f2 = build();
  allRunner = await StepRunner.create(f2.g, assembleStep(f2.g, gradOnly(f2, 'all')), null, {
    threads: THREADS,
    optimization: 'disabled',
  });
  // forward loss only
  const fl = build();
  fl.g.output(fl.loss, 'loss');
  lossGraph = fl.g;
  lossSession = await Session.create(serialize(fl.g, { params: 'inputs', valueInfo: false }), {
    threads: THREADS,
    optimization: 'disabled',
  });
  p0 = params(fa.g);
  archNames = [...fa.g.params.values()].filter((p) => p.role === 'arch').map((p) => p.name);
  weightNames = [...fa.g.params.values()].filter((p) => p.role === 'weight').map((p) => p.name);
});

afterAll(async () => {
  await alphaRunner?.release();
  await allRunner?.release();
  await lossSession?.release();
});

async function loss(values: Map<string, Float32Array>, feeds: Record<string, ort.Tensor>): Promise<number> {
  const f: Record<string, ort.Tensor> = { ...feeds };
  for (const p of lossGraph.params.values()) f[p.name] = f32(values.get(p.name)!, p.shape);
  return scalarOf((await lossSession.run(f, ['loss'])).loss);
}

const state = (values: Map<string, Float32Array>, opt = new Map<string, Float32Array>()): TrainState => ({
  ...newTrainState(new Map(values)),
  opt,
});

describe('search gradients', () => {
  it('first-order ∇α L_val matches central finite differences of the validation loss', async () => {
    const r = await alphaRunner.run(state(p0), valFeeds);
    expect(Math.abs(r.loss - (await loss(p0, valFeeds)))).toBeLessThan(1e-5);
    const h = 1e-3;
    let checked = 0;
    let worst = 0;
    for (const name of archNames) {
      const g = r.grads.get(name)!;
      const scale = Math.max(...Array.from(g, Math.abs));
      expect(scale).toBeGreaterThan(1e-4);
      // the three largest entries and two random ones of each α
      const order = Array.from(g.keys()).sort((a, b) => Math.abs(g[b]!) - Math.abs(g[a]!));
      const rng = new Rng(5);
      const picks = [...order.slice(0, 3), rng.int(g.length), rng.int(g.length)];
      for (const i of picks) {
        const at = (d: number): Map<string, Float32Array> => {
          const m = new Map(p0);
          const a = Float32Array.from(p0.get(name)!);
          a[i] = a[i]! + d;
          m.set(name, a);
          return m;
        };
        const fd = ((await loss(at(h), valFeeds)) - (await loss(at(-h), valFeeds))) / (2 * h);
        // float32 forward: the loss (~2) carries a few 1e-7 of rounding, i.e. ~1e-4 on fd with h = 1e-3;
        // a small h also keeps the ReLU / max-pool kinks crossed between α ± h few (each one bends the loss)
        const err = Math.abs(fd - g[i]!);
        worst = Math.max(worst, err / scale);
        expect(err, `${name}[${i}]: fd ${fd} analytic ${g[i]}`).toBeLessThan(0.01 * scale + 4e-4);
        checked++;
      }
    }
    expect(checked).toBe(10);
    expect(worst).toBeLessThan(0.02);
  });

  it('second order: secondOrderArchGrad equals the DARTS formula computed step by step', async () => {
    const xi = 0.05;
    const rng = new Rng(21);
    const opt = new Map<string, Float32Array>();
    for (const n of weightNames)
      opt.set(
        `${n}@momentum`,
        Float32Array.from(p0.get(n)!, () => 0.05 * rng.normal()),
      );
    const st = state(p0, opt);
    const got = await secondOrderArchGrad(
      st,
      allRunner,
      alphaRunner,
      trainFeeds,
      valFeeds,
      weightNames,
      archNames,
      xi,
      sgd,
    );
    // the state is left as it was
    for (const n of [...weightNames, ...archNames]) expect(st.params.get(n)).toBe(p0.get(n));

    // ---- independently, with plain gradient runs of the full-gradient graph
    const grads = async (values: Map<string, Float32Array>, feeds: Record<string, ort.Tensor>) =>
      allRunner.run(state(values), feeds);
    const gTrain = (await grads(p0, trainFeeds)).grads;
    // w' = w − ξ(∇w L_train(w) + μ·buf + wd·w)
    const wPrime = new Map(p0);
    for (const n of weightNames) {
      const w = p0.get(n)!;
      const d = gTrain.get(n)!;
      const buf = opt.get(`${n}@momentum`)!;
      wPrime.set(
        n,
        Float32Array.from(w, (v, i) => v - xi * (d[i]! + sgd.momentum * buf[i]! + sgd.weightDecay * v)),
      );
    }
    const val = await grads(wPrime, valFeeds);
    expect(got.loss).toBeCloseTo(val.loss, 6);
    // ε = 0.01 / ‖∇w' L_val(w')‖, w± = w ± ε ∇w' L_val(w')
    let sq = 0;
    for (const n of weightNames) for (const v of val.grads.get(n)!) sq += v * v;
    const eps = 0.01 / Math.sqrt(sq);
    const shifted = (sign: number, e: number) => {
      const m = new Map(p0);
      for (const n of weightNames) {
        const d = val.grads.get(n)!;
        m.set(
          n,
          Float32Array.from(p0.get(n)!, (v, i) => v + sign * e * d[i]!),
        );
      }
      return m;
    };
    const gp = (await grads(shifted(1, eps), trainFeeds)).grads;
    const gm = (await grads(shifted(-1, eps), trainFeeds)).grads;
    let hvScale = 0;
    let gScale = 0;
    const implicit = new Map<string, Float64Array>();
    for (const n of archNames) {
      const hv = Float64Array.from(gp.get(n)!, (v, i) => (v - gm.get(n)![i]!) / (2 * eps));
      implicit.set(n, hv);
      const expected = Float64Array.from(val.grads.get(n)!, (v, i) => v - xi * hv[i]!);
      const g = got.grads.get(n)!;
      for (let i = 0; i < g.length; i++) {
        hvScale = Math.max(hvScale, Math.abs(xi * hv[i]!));
        gScale = Math.max(gScale, Math.abs(expected[i]!));
      }
      for (let i = 0; i < g.length; i++)
        expect(Math.abs(g[i]! - expected[i]!), `${n}[${i}]`).toBeLessThan(1e-3 * gScale + 1e-6);
    }
    // the unrolling matters: the second-order term is not negligible, and differs from first order
    expect(hvScale).toBeGreaterThan(1e-3 * gScale);

    // ---- sanity of the Hessian-vector part H·v (H = ∇²_{α,w} L_train, v = ∇w' L_val(w')): along a
    // direction u of α, u·(∇α L_train(w + εv) − ∇α L_train(w − εv))/2ε must equal the mixed second
    // difference of the training loss itself, [L(w+εv, α+δu) − L(w+εv, α−δu) − L(w−εv, α+δu) + L(w−εv, α−δu)]/4εδ.
    // (The same ε on both sides: the supernet is piecewise smooth — ReLU, max-pool — and ∇α jumps where
    // a kink is crossed, so finite-difference Hessians taken with different steps legitimately differ.)
    const flat = (m: Map<string, Float64Array | Float32Array>): number[] =>
      archNames.flatMap((n) => Array.from(m.get(n)!));
    const hvFlat = flat(implicit);
    const norm = (a: number[]): number => Math.sqrt(a.reduce((q, x) => q + x * x, 0));
    const dirs = [hvFlat.map((x) => x / norm(hvFlat))];
    const r3 = new Rng(33);
    const rand = hvFlat.map(() => r3.normal());
    dirs.push(rand.map((x) => x / norm(rand)));
    const delta = 1e-3;
    const sizes = archNames.map((n) => p0.get(n)!.length);
    const withAlpha = (base: Map<string, Float32Array>, u: number[], d: number): Map<string, Float32Array> => {
      const m = new Map(base);
      let off = 0;
      archNames.forEach((n, k) => {
        m.set(
          n,
          Float32Array.from(base.get(n)!, (x, i) => x + d * u[off + i]!),
        );
        off += sizes[k]!;
      });
      return m;
    };
    const wp = shifted(1, eps);
    const wm = shifted(-1, eps);
    for (const u of dirs) {
      const implicitAlong = u.reduce((q, x, i) => q + x * hvFlat[i]!, 0);
      const mixed =
        ((await loss(withAlpha(wp, u, delta), trainFeeds)) -
          (await loss(withAlpha(wp, u, -delta), trainFeeds)) -
          (await loss(withAlpha(wm, u, delta), trainFeeds)) +
          (await loss(withAlpha(wm, u, -delta), trainFeeds))) /
        (4 * eps * delta);
      expect(Math.abs(mixed - implicitAlong), `along u: mixed ${mixed} vs implicit ${implicitAlong}`).toBeLessThan(
        0.01 * norm(hvFlat),
      );
    }
  });
});
