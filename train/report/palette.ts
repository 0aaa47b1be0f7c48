/**
 * Op families and their colours, shared by the cell diagrams and the charts
 * (one colour per family; the two sizes of a family differ in shade).
 */
import { PRIMITIVES, type OpName } from '../../graph/genotype.js';

export type OpFamily = 'separable conv' | 'dilated conv' | 'pooling' | 'skip' | 'none';

export const OP_FAMILY: Record<OpName, OpFamily> = {
  none: 'none',
  max_pool_3x3: 'pooling',
  avg_pool_3x3: 'pooling',
  skip_connect: 'skip',
  sep_conv_3x3: 'separable conv',
  sep_conv_5x5: 'separable conv',
  dil_conv_3x3: 'dilated conv',
  dil_conv_5x5: 'dilated conv',
};

/** Parameter-free candidates (what DARTS collapses to). */
export const PARAM_FREE: readonly OpName[] = ['none', 'max_pool_3x3', 'avg_pool_3x3', 'skip_connect'];

export const FAMILY_COLOR: Record<OpFamily, string> = {
  'separable conv': '#c0392b',
  'dilated conv': '#7d3c98',
  pooling: '#1f6fb2',
  skip: '#4d4d4d',
  none: '#a6a6a6',
};

export const OP_COLOR: Record<OpName, string> = {
  none: '#a6a6a6',
  max_pool_3x3: '#1f6fb2',
  avg_pool_3x3: '#3fa7d6',
  skip_connect: '#4d4d4d',
  sep_conv_3x3: '#c0392b',
  sep_conv_5x5: '#e67e22',
  dil_conv_3x3: '#7d3c98',
  dil_conv_5x5: '#c39bd3',
};

/** Series colours for charts that are not about ops (train/val, objectives). */
export const SERIES_COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

/** Ops in α column order that a chart's colour scale should list (all known ops by default). */
export function opColors(ops: readonly OpName[] = PRIMITIVES): { domain: string[]; range: string[] } {
  return { domain: [...ops], range: ops.map((o) => OP_COLOR[o]) };
}
