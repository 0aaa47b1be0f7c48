/**
 * Whole-model builders: a Graph with an image input `x`, a trunk and a head.
 * `training` selects the training form (batch-statistics BN, argmax-keeping
 * pools, drop path); inference form is what ships.
 */
import { Graph, type Value } from '../ir.js';
import type { Genotype, OpName } from '../genotype.js';
import { Layers } from './layers.js';
import { evalTrunk, searchTrunk, type SearchTrunk } from './darts.js';
import { auxiliaryHead, classifierHead } from './heads.js';

export interface InputSpec {
  batch: number;
  channels: number;
  size: number;
}

export interface SupernetOptions extends InputSpec {
  C: number;
  layers: number;
  classes: number;
  training: boolean;
  /** Emit BN running-stat updates in training form (not needed for search). */
  trackRunningStats?: boolean;
  primitives?: readonly OpName[];
  alphaPerCell?: boolean;
}

export interface BuiltSupernet {
  g: Graph;
  x: Value;
  logits: Value;
  trunk: SearchTrunk;
}

export function buildSupernet(o: SupernetOptions): BuiltSupernet {
  const g = new Graph('darts_supernet');
  g.training = o.training;
  const L = new Layers(g, { trackRunningStats: o.trackRunningStats ?? false });
  const x = g.input('x', 'float32', [o.batch, o.channels, o.size, o.size]);
  const trunk = searchTrunk(L, x, { C: o.C, layers: o.layers, primitives: o.primitives, alphaPerCell: o.alphaPerCell });
  const logits = classifierHead(L, trunk.features, o.classes);
  g.meta.set('nas_onnx.kind', 'supernet');
  g.meta.set(
    'nas_onnx.config',
    JSON.stringify({ C: o.C, layers: o.layers, classes: o.classes, input: [o.channels, o.size, o.size] }),
  );
  return { g, x, logits, trunk };
}

export interface EvalNetBuildOptions extends InputSpec {
  genotype: Genotype;
  net: 'cifar' | 'imagenet';
  C: number;
  layers: number;
  classes: number;
  training: boolean;
  auxiliary?: boolean;
  dropPath?: boolean;
}

export interface BuiltEvalNet {
  g: Graph;
  x: Value;
  logits: Value;
  auxLogits: Value | null;
  dropPathInputs: string[];
}

export function buildEvalNet(o: EvalNetBuildOptions): BuiltEvalNet {
  const g = new Graph(`${o.genotype.name ?? 'genotype'}_${o.net}`);
  g.training = o.training;
  const L = new Layers(g, { trackRunningStats: true });
  const x = g.input('x', 'float32', [o.batch, o.channels, o.size, o.size]);
  const trunk = evalTrunk(L, x, o.genotype, {
    C: o.C,
    layers: o.layers,
    net: o.net,
    auxiliary: o.auxiliary,
    dropPath: o.dropPath,
  });
  const auxLogits = trunk.aux ? auxiliaryHead(L, trunk.aux, o.classes, o.net) : null;
  const logits = classifierHead(L, trunk.features, o.classes);
  g.meta.set('nas_onnx.kind', 'network');
  g.meta.set('nas_onnx.genotype', JSON.stringify(o.genotype));
  g.meta.set(
    'nas_onnx.config',
    JSON.stringify({ net: o.net, C: o.C, layers: o.layers, classes: o.classes, input: [o.channels, o.size, o.size] }),
  );
  return { g, x, logits, auxLogits, dropPathInputs: trunk.dropPathInputs };
}
