"""
PyTorch side of the side-by-side speed bench (bench/speed.ts): the same
training steps as nas-onnx, on the DARTS modules of darts_torch.py, timed one
step at a time on request so that the bench can interleave them with nas-onnx
steps (machine load then hits both alike).

Steps (hyper-parameters of the DARTS reference code, train_search.py / train.py):
  first   first-order DARTS search step: ∇α of the loss on a validation batch,
          Adam on α (lr 3e-4, β 0.5/0.999, wd 1e-3), then a weight step on a
          training batch (SGD momentum 0.9, wd 3e-4, gradient-norm clipping 5)
  second  second-order step (architect.py _backward_step_unrolled): unrolled
          weights w' = w − ξ(∇w L_train + μ·buf + wd·w), ∇ L_val(w', α), the
          finite-difference Hessian-vector product (R = 0.01/‖∇w' L_val‖) from
          ∇α L_train(w ± R·∇w' L_val), Adam on α, then the weight step
  eval    DARTS_V2 evaluation-network training step (auxiliary head 0.4,
          drop path 0.2, SGD momentum 0.9, wd 3e-4, clipping 5)
Each backward pass asks autograd only for what the step uses (∇α alone in
the α passes, ∇w alone in the weight step), as nas-onnx's graphs do.

Protocol: one JSON line `{"ready": ...}` after set-up; then per line read
from stdin: `step` runs one step and answers `{"wall": s, "cpu": s, "loss": x}`;
`profile` runs one step under torch.profiler and answers the top ops by self
CPU time; `quit` answers `{"peak_rss_mib": ...}` and exits.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from darts_torch import NetworkCIFAR, SearchNetwork  # noqa: E402

W_LR, MOMENTUM, W_WD, CLIP = 0.025, 0.9, 3e-4, 5.0
A_LR, A_BETAS, A_WD = 3e-4, (0.5, 0.999), 1e-3
AUX_WEIGHT, DROP_PATH = 0.4, 0.2


def peak_rss_mib():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    return float('nan')


def load_genotype(path):
    with open(path) as f:
        g = json.load(f)
    return {k: g[k] for k in ('normal', 'normal_concat', 'reduce', 'reduce_concat')}


class Batches:
    def __init__(self, batch, size, seed):
        self.gen = torch.Generator().manual_seed(seed)
        self.batch, self.size = batch, size

    def next(self):
        x = torch.randn(self.batch, 3, self.size, self.size, generator=self.gen)
        y = torch.randint(0, 10, (self.batch,), generator=self.gen)
        return x, y


class SearchStep:
    def __init__(self, a, order):
        self.order = order
        self.model = SearchNetwork(a.C, 10, a.layers)
        self.weights = list(self.model.parameters())
        self.alphas = self.model.arch_parameters()
        self.w_opt = torch.optim.SGD(self.weights, W_LR, momentum=MOMENTUM, weight_decay=W_WD)
        self.a_opt = torch.optim.Adam(self.alphas, A_LR, betas=A_BETAS, weight_decay=A_WD)

    def loss(self, x, y):
        return F.cross_entropy(self.model(x), y)

    def alpha_grads_unrolled(self, xt, yt, xv, yv):
        ws = self.weights
        g = torch.autograd.grad(self.loss(xt, yt), ws)
        w0 = [w.detach().clone() for w in ws]
        with torch.no_grad():
            for w, d in zip(ws, g):
                buf = self.w_opt.state.get(w, {}).get('momentum_buffer')
                step = d + W_WD * w
                if buf is not None:
                    step = step + MOMENTUM * buf
                w.sub_(W_LR * step)
        grads = torch.autograd.grad(self.loss(xv, yv), self.alphas + ws)
        da, dw = grads[:len(self.alphas)], grads[len(self.alphas):]
        r = 0.01 / torch.cat([d.reshape(-1) for d in dw]).norm()
        implicit = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for w, w_0, d in zip(ws, w0, dw):
                    w.copy_(w_0 + sign * r * d)
            implicit.append(torch.autograd.grad(self.loss(xt, yt), self.alphas))
        with torch.no_grad():
            for w, w_0 in zip(ws, w0):
                w.copy_(w_0)
        return [a - W_LR * (p - m) / (2 * r) for a, p, m in zip(da, implicit[0], implicit[1])]

    def __call__(self, train, val):
        (xt, yt), (xv, yv) = train, val
        if self.order == 1:
            ga = torch.autograd.grad(self.loss(xv, yv), self.alphas)
        else:
            ga = self.alpha_grads_unrolled(xt, yt, xv, yv)
        for a, g in zip(self.alphas, ga):
            a.grad = g
        self.a_opt.step()
        self.w_opt.zero_grad(set_to_none=True)
        loss = self.loss(xt, yt)
        torch.autograd.backward(loss, inputs=self.weights)
        nn.utils.clip_grad_norm_(self.weights, CLIP)
        self.w_opt.step()
        return loss.item()


class EvalStep:
    def __init__(self, a):
        genotype = load_genotype(a.genotype)
        self.model = NetworkCIFAR(a.C, 10, a.layers, True, genotype)
        self.model.train()
        self.model.drop_path_prob = DROP_PATH
        self.opt = torch.optim.SGD(self.model.parameters(), W_LR, momentum=MOMENTUM, weight_decay=W_WD)

    def __call__(self, train, _val):
        x, y = train
        self.opt.zero_grad(set_to_none=True)
        logits, aux = self.model(x)
        loss = F.cross_entropy(logits, y) + AUX_WEIGHT * F.cross_entropy(aux, y)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), CLIP)
        self.opt.step()
        return loss.item()


def profile_step(step, data):
    from torch.profiler import ProfilerActivity, profile
    train, val = data.next(), data.next()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step(train, val)
    rows = []
    total = 0.0
    for e in prof.key_averages():
        total += e.self_cpu_time_total
        rows.append((e.key, e.self_cpu_time_total, e.count))
    rows.sort(key=lambda r: -r[1])
    return {'profile': [{'op': k, 'share': t / total, 'ms': t / 1000, 'calls': c} for k, t, c in rows[:15]]}


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--kind', choices=['first', 'second', 'eval'], required=True)
    p.add_argument('--C', type=int, default=8)
    p.add_argument('--layers', type=int, default=5)
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--size', type=int, default=32)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--genotype', default='')
    p.add_argument('--seed', type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    t0 = time.perf_counter()
    step = EvalStep(a) if a.kind == 'eval' else SearchStep(a, 2 if a.kind == 'second' else 1)
    data = Batches(a.batch, a.size, a.seed)
    print(json.dumps({'ready': True, 'setup_s': time.perf_counter() - t0, 'torch': torch.__version__,
                      'threads': torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == 'step':
            train, val = data.next(), data.next()
            w0, c0 = time.perf_counter(), time.process_time()
            loss = step(train, val)
            print(json.dumps({'wall': time.perf_counter() - w0, 'cpu': time.process_time() - c0, 'loss': loss}),
                  flush=True)
        elif cmd == 'profile':
            print(json.dumps(profile_step(step, data)), flush=True)
        elif cmd == 'quit':
            print(json.dumps({'peak_rss_mib': peak_rss_mib()}), flush=True)
            return
        else:
            print(json.dumps({'error': f'unknown command {cmd!r}'}), flush=True)


if __name__ == '__main__':
    main()
