/**
 * nas-onnx against an independent PyTorch implementation of the DARTS
 * networks (bench/torch_ref): loss and every parameter and α gradient of a
 * search supernet, loss, gradients and BN statistics of a DARTS_V2 network
 * with its auxiliary head, and two DARTS search steps (SGD momentum + weight
 * decay + clipping, Adam on α) against torch.optim, all to 1e-4 relative
 * (metric: bench/torch_ref/compare.py). Needs PyTorch: the test fails, with
 * the install line, when no python can import torch ($TORCH_PYTHON, python3
 * on PATH and /usr/bin/python3 are tried: Debian's python3-torch installs for
 * the system python, which a pyenv python3 on PATH may hide).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findTorchPython, runTorchReference, TORCH_INSTALL_HINT, type TorchRefReport } from '../bench/torch-ref.js';

const TOL = 1e-4;

interface Err {
  rel_norm: number;
  rel_max: number;
}
const worst = (e: Err): number => Math.max(e.rel_norm, e.rel_max);

describe('PyTorch reference (bench/torch-ref.ts)', () => {
  it('finds a python that can import torch', () => {
    let found: { python: string } | null = null;
    let why = '';
    try {
      found = findTorchPython();
    } catch (e) {
      why = (e as Error).message;
    }
    expect(found, why).not.toBeNull();
    expect(TORCH_INSTALL_HINT).toContain('apt-get install python3-torch');
  });

  // the graphs as CPU training runs lower them (NCHWc depthwise convs), and in the portable standard-op form
  it.each(['cpu', 'portable'] as const)(
    '%s lowering matches torch: losses, every gradient, BN statistics and two optimizer steps within 1e-4',
    async (lowering) => {
      const dir = mkdtempSync(join(tmpdir(), 'nas-onnx-torch-ref-'));
      let rep: TorchRefReport;
      try {
        rep = await runTorchReference({ outDir: dir, lowering });
      } catch (e) {
        rmSync(dir, { recursive: true, force: true });
        throw e;
      }
      const msg = `${rep.table}\n${rep.failures.join('\n')}\n(dump kept in ${dir})`;
      expect(rep.failures, msg).toEqual([]);
      expect(rep.ok, msg).toBe(true);
      expect(rep.tolerance).toBe(TOL);
      if (process.arch === 'x64') expect(!!rep.lowering.nchwcBlock).toBe(lowering === 'cpu');

      // the supernet: every weight gradient and both α gradients
      const sn = rep.cases.supernet;
      expect(sn.loss.rel, msg).toBeLessThan(TOL);
      const snW = sn.grads.filter((r: { kind: string }) => r.kind === 'weight');
      const snA = sn.grads.filter((r: { kind: string }) => r.kind === 'arch');
      expect(snW.length).toBeGreaterThan(800);
      expect(snA.map((r: { name: string }) => r.name).sort()).toEqual(['alpha_normal', 'alpha_reduce']);
      expect(sn.missing_grads).toEqual([]);
      for (const r of sn.grads) expect(worst(r.ours), `${r.name}\n${msg}`).toBeLessThan(TOL);

      // max pooling and ReLU: torch's own arg-max and signs depart from ours only at near-ties and
      // near-zeros, where float32 rounding decides (see KinkProbe in bench/torch-ref.ts)
      for (const c of [sn, rep.cases.evalnet]) {
        expect(c.pools.pools).toBeGreaterThan(0);
        expect(c.pools.relus).toBeGreaterThan(0);
        expect(c.pools.max_gap, msg).toBeLessThanOrEqual(1e-5);
        expect(c.pools.relu_max_gap, msg).toBeLessThanOrEqual(1e-5);
        expect(c.pools.relu_unexplained, msg).toBe(0);
      }
      expect(sn.probe_loss_diff, msg).toBeLessThanOrEqual(1e-6);

      // the gradients again after one α and one w step (BN γ/β, α and weights all moved)
      expect(sn.grads_later.length).toBe(1);
      for (const r of sn.grads_later[0]) expect(worst(r.ours), `${r.name}\n${msg}`).toBeLessThan(TOL);

      // two steps each of α (Adam) and w (SGD, clipped: the gradient norm exceeds 5)
      expect(sn.steps.map((s: { which: string; t: number }) => `${s.which}${s.t}`)).toEqual([
        'arch1',
        'weight1',
        'arch2',
        'weight2',
      ]);
      for (const s of sn.steps) {
        expect(s.loss.rel, msg).toBeLessThan(TOL);
        if (s.which === 'weight') {
          expect(s.grad_norm.clipped, 'clipping must be active in the checked steps').toBe(true);
          expect(s.grad_norm.rel, msg).toBeLessThan(TOL);
        }
        expect(s.group_update.ours.rel_norm, msg).toBeLessThan(TOL + s.group_update.floor.rel_norm);
        for (const r of s.rows) {
          if (r.what === 'update') expect(r.ours.rel_norm, `${r.name}\n${msg}`).toBeLessThan(TOL + r.floor.rel_norm);
          else expect(worst(r.ours), `${r.name}\n${msg}`).toBeLessThan(TOL);
        }
      }

      // the discretized network with its auxiliary head
      const ev = rep.cases.evalnet;
      expect(ev.loss.rel, msg).toBeLessThan(TOL);
      expect(ev.metrics.loss_aux.rel, msg).toBeLessThan(TOL);
      expect(ev.missing_grads).toEqual([]);
      expect(ev.grads.some((r: { name: string }) => r.name.startsWith('auxiliary_head/'))).toBe(true);
      for (const r of ev.grads) expect(worst(r.ours), `${r.name}\n${msg}`).toBeLessThan(TOL);
      expect(ev.state.length).toBeGreaterThan(0);
      for (const r of ev.state) expect(worst(r.ours), `${r.name}\n${msg}`).toBeLessThan(TOL);

      rmSync(dir, { recursive: true, force: true });
    },
    300_000,
  );
});
