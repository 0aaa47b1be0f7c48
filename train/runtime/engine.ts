/**
 * Running training-step graphs (graph/training.ts naming contract): a
 * StepRunner owns an ORT session for one step graph and feeds it the current
 * parameters, optimizer state and batch; the updated tensors it returns
 * replace the old ones (no copies on the host side).
 */
import type * as ort from 'onnxruntime-node';
import { serialize } from '../../graph/onnx.js';
import type { Graph } from '../../graph/ir.js';
import type { FlatGroup, OptimizerSpec, StepGraphInfo } from '../../graph/training.js';
import { Session, f32, scalarF32, scalarOf, toF32, type EP, type SessionOptions } from './session.js';
import type { ParamValues } from './params.js';

/** Everything a run trains: parameters (weights, α, BN state) and optimizer slots. */
export interface TrainState {
  params: ParamValues;
  /** `<param>@<slot>` → values. */
  opt: Map<string, Float32Array>;
  /** Adam step counts per optimizer group name. */
  steps: Record<string, number>;
}

export function newTrainState(params: ParamValues): TrainState {
  return { params, opt: new Map(), steps: {} };
}

/** Parameters and optimizer state as checkpoint tensors (`param:<name>`, `opt:<name>@<slot>`). */
export function stateTensors(st: TrainState): Map<string, Float32Array> {
  const tensors = new Map<string, Float32Array>();
  for (const [k, v] of st.params) tensors.set(`param:${k}`, v);
  for (const [k, v] of st.opt) tensors.set(`opt:${k}`, v);
  return tensors;
}

/** The inverse of stateTensors (step counts come from the checkpoint's metadata). */
export function stateFromTensors(t: ReadonlyMap<string, Float32Array>): TrainState {
  const st = newTrainState(new Map());
  for (const [k, v] of t) {
    if (k.startsWith('param:')) st.params.set(k.slice(6), v);
    else if (k.startsWith('opt:')) st.opt.set(k.slice(4), v);
  }
  return st;
}

export interface StepResult {
  loss: number;
  metrics: Record<string, number>;
  gradNorm?: number;
  /** Requested gradients (`<param>` → values). */
  grads: Map<string, Float32Array>;
}

export class StepRunner {
  private constructor(
    readonly session: Session,
    readonly graph: Graph,
    readonly info: StepGraphInfo,
    readonly optimizer: OptimizerSpec | null,
    /** Optimizer group name (for the Adam step counter). */
    readonly group: string,
    /** Seconds spent serializing the graph and creating its ORT session. */
    readonly created: { serializeS: number; sessionS: number },
  ) {}

  static async create(
    g: Graph,
    info: StepGraphInfo,
    optimizer: OptimizerSpec | null,
    o: { ep?: EP; group?: string; threads?: number } & Pick<
      SessionOptions,
      'optimization' | 'cpuMemArena' | 'spinning' | 'memPattern' | 'profilePrefix'
    > = {},
  ): Promise<StepRunner> {
    if (o.ep === 'cuda' && (g.lowering.cpu || g.lowering.nchwcBlock))
      throw new Error(`${g.name}: a graph lowered for ORT's CPU kernels cannot run on CUDA`);
    const t0 = performance.now();
    const bytes = serialize(g, { params: 'inputs', valueInfo: false });
    const t1 = performance.now();
    // Training-step graphs are already lean (no fusable patterns to speak of), and ORT's
    // optimizers take minutes on graphs of tens of thousands of nodes (a 30k-node supernet
    // step: 'disabled' ~40 s, 'basic' ~200 s, 'all' ~9 min to create on this 2-core host).
    const s = await Session.create(bytes, {
      ep: o.ep,
      threads: o.threads,
      optimization: o.optimization ?? 'disabled',
      cpuMemArena: o.cpuMemArena,
      spinning: o.spinning,
      // ORT's memory pattern (one block per run, planned from the first run) costs training steps
      // memory and time: DARTS_V2 C=8 step peak RSS 586 -> 387 MiB, 1.3x faster; with the arena off
      // it fragments the heap beside the first run's tensors (search C=8: 2362 -> 1495 MiB)
      memPattern: o.memPattern ?? false,
      profilePrefix: o.profilePrefix,
    });
    const created = { serializeS: (t1 - t0) / 1000, sessionS: (performance.now() - t1) / 1000 };
    return new StepRunner(s, g, info, optimizer, o.group ?? 'default', created);
  }

  get nodeCount(): number {
    return this.graph.nodes.length;
  }

  /**
   * One step. `batch` holds the graph's data inputs (x, labels, masks...).
   * Parameters and state are read from `st` and replaced by their updates.
   */
  async run(st: TrainState, batch: Record<string, ort.Tensor>, lr = 0): Promise<StepResult> {
    const g = this.graph;
    const feeds: Record<string, ort.Tensor> = { ...batch };
    for (const p of g.params.values()) {
      if (g.flatMember.has(p.name)) continue;
      const v = st.params.get(p.name);
      if (!v) throw new Error(`no value for parameter '${p.name}'`);
      feeds[p.name] = f32(v, p.shape);
    }
    const flat = this.info.flat;
    if (flat) {
      feeds[flat.name] = f32(
        packFlat(flat, (m) => st.params.get(m), 'parameter'),
        [flat.size],
      );
      for (const slot of this.info.slots) {
        const buf = packFlat(flat, (m) => st.opt.get(`${m}@${slot}`) ?? new Float32Array(0), `${slot} state`, true);
        feeds[`${flat.name}@${slot}`] = f32(buf, [flat.size]);
      }
    }
    if (this.info.updated.length || flat) {
      feeds.lr = scalarF32(lr);
      for (const name of this.info.updated) {
        const shape = g.params.get(name)!.shape;
        for (const slot of this.info.slots) {
          const key = `${name}@${slot}`;
          let v = st.opt.get(key);
          if (!v) st.opt.set(key, (v = new Float32Array(st.params.get(name)!.length)));
          feeds[key] = f32(v, shape);
        }
      }
      if (this.optimizer?.kind === 'adam') {
        const t = (st.steps[this.group] ?? 0) + 1;
        st.steps[this.group] = t;
        feeds.adam_step_size = scalarF32(lr / (1 - this.optimizer.beta1 ** t));
        feeds.adam_bias2 = scalarF32(1 / Math.sqrt(1 - this.optimizer.beta2 ** t));
      } else {
        st.steps[this.group] = (st.steps[this.group] ?? 0) + 1;
      }
    }
    const out = await this.session.run(feeds);
    if (flat) {
      // the members become views into the returned buffers: no copy now, and none when packing next step
      unpackFlat(flat, toF32(out[`${flat.name}@new`]), (m, v) => st.params.set(m, v));
      for (const slot of this.info.slots)
        unpackFlat(flat, toF32(out[`${flat.name}@${slot}@new`]), (m, v) => st.opt.set(`${m}@${slot}`, v));
    }
    for (const name of this.info.updated) {
      st.params.set(name, toF32(out[`${name}@new`], `${name}@new`));
      for (const slot of this.info.slots) st.opt.set(`${name}@${slot}`, toF32(out[`${name}@${slot}@new`]));
    }
    for (const o of this.info.stateOutputs) st.params.set(o.slice(0, -'@new'.length), toF32(out[o]));
    const metrics: Record<string, number> = {};
    for (const m of this.info.metrics) metrics[m] = scalarOf(out[m], m);
    const grads = new Map<string, Float32Array>();
    for (const o of this.info.gradOutputs) grads.set(o.slice(0, -'@grad'.length), toF32(out[o]));
    return {
      loss: scalarOf(out.loss, 'loss'),
      metrics,
      gradNorm: out.grad_norm ? scalarOf(out.grad_norm) : undefined,
      grads,
    };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Runs a forward-only (evaluation) graph whose parameters are inputs. */
export class ForwardRunner {
  private constructor(
    readonly session: Session,
    readonly graph: Graph,
  ) {}

  static async create(g: Graph, o: { ep?: EP; threads?: number; spinning?: boolean } = {}): Promise<ForwardRunner> {
    const s = await Session.create(serialize(g, { params: 'inputs', valueInfo: false }), {
      ep: o.ep,
      threads: o.threads,
      spinning: o.spinning,
    });
    return new ForwardRunner(s, g);
  }

  async run(params: ParamValues, batch: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
    const feeds: Record<string, ort.Tensor> = { ...batch };
    for (const p of this.graph.params.values()) {
      const v = params.get(p.name);
      if (!v) throw new Error(`no value for parameter '${p.name}'`);
      feeds[p.name] = f32(v, p.shape);
    }
    return this.session.run(feeds);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Cosine annealing from lr to lrMin over `total` steps (PyTorch CosineAnnealingLR, per epoch or per step). */
export function cosineLr(lr: number, lrMin: number, t: number, total: number): number {
  return lrMin + ((lr - lrMin) * (1 + Math.cos((Math.PI * t) / total))) / 2;
}

/** Cosine annealing per step over `epochs` epochs of `perEpoch` steps: the lr of batch `index` of `epoch`. */
export function stepCosineLr(
  lr: number,
  lrMin: number,
  epoch: number,
  index: number,
  perEpoch: number,
  epochs: number,
): number {
  return cosineLr(lr, lrMin, epoch * perEpoch + index, epochs * perEpoch);
}

/**
 * `x` (`rows` equal-sized rows) zero-padded to `full` rows, for a graph with a
 * static batch size fed a short last batch. Returns `x` itself when it is full.
 */
export function padRows(x: Float32Array, rows: number, full: number): Float32Array {
  if (rows === full) return x;
  if (rows > full) throw new Error(`padRows: ${rows} rows do not fit a batch of ${full}`);
  const per = rows > 0 ? x.length / rows : 0;
  const out = new Float32Array(per * full);
  out.set(x);
  return out;
}

/**
 * The flat buffer of a group's members: the shared buffer itself when the
 * members already are consecutive views of one (as after unpackFlat), else a
 * packed copy. `zeroMissing` fills absent or empty members with zeros.
 */
export function packFlat(
  flat: FlatGroup,
  get: (name: string) => Float32Array | undefined,
  what: string,
  zeroMissing = false,
): Float32Array {
  const first = get(flat.members[0]!.name);
  if (first && first.length === flat.members[0]!.length) {
    const buf = first.buffer;
    const base = first.byteOffset;
    const shared = flat.members.every((m) => {
      const v = get(m.name);
      return v !== undefined && v.buffer === buf && v.byteOffset === base + m.offset * 4 && v.length === m.length;
    });
    if (shared && base + flat.size * 4 <= buf.byteLength) return new Float32Array(buf, base, flat.size);
  }
  const out = new Float32Array(flat.size);
  for (const m of flat.members) {
    const v = get(m.name);
    if (!v || v.length === 0) {
      if (zeroMissing) continue;
      throw new Error(`no value for ${what} '${m.name}'`);
    }
    if (v.length !== m.length) throw new Error(`${what} '${m.name}' has ${v.length} values, expected ${m.length}`);
    out.set(v, m.offset);
  }
  return out;
}

export function unpackFlat(flat: FlatGroup, buf: Float32Array, set: (name: string, v: Float32Array) => void): void {
  for (const m of flat.members) set(m.name, buf.subarray(m.offset, m.offset + m.length));
}
