/** The cosine learning-rate schedules of train/runtime/engine.ts (per epoch for search, per step for training). */
import { describe, expect, it } from 'vitest';
import { cosineLr, stepCosineLr } from '../train/runtime/engine.js';

describe('cosine learning rate', () => {
  it('per epoch: lr at t = 0, the midpoint half-way, lrMin at t = total', () => {
    expect(cosineLr(0.1, 0.001, 0, 10)).toBeCloseTo(0.1, 12);
    expect(cosineLr(0.1, 0.001, 5, 10)).toBeCloseTo((0.1 + 0.001) / 2, 12);
    expect(cosineLr(0.1, 0.001, 10, 10)).toBeCloseTo(0.001, 12);
  });

  it('per step: anneals within a single epoch, monotonically, continuing across epochs', () => {
    const perEpoch = 100;
    const one = Array.from({ length: perEpoch }, (_, i) => stepCosineLr(0.05, 0, 0, i, perEpoch, 1));
    expect(one[0]).toBeCloseTo(0.05, 12);
    expect(one[50]).toBeCloseTo(0.025, 12);
    expect(one[perEpoch - 1]!).toBeLessThan(0.05 * 1e-3);
    for (let i = 1; i < perEpoch; i++) expect(one[i]!).toBeLessThan(one[i - 1]!);
    // epoch 1, batch 0 of a 2-epoch run is the schedule's midpoint
    expect(stepCosineLr(0.05, 0, 1, 0, perEpoch, 2)).toBeCloseTo(0.025, 12);
    expect(stepCosineLr(0.05, 0, 1, 0, perEpoch, 2)).toBe(cosineLr(0.05, 0, perEpoch, 2 * perEpoch));
  });
});
