"""
PyTorch reference of nas-onnx's segmentation pieces (test/seg-torch.test.ts):
the ignore-label cross entropy (F.cross_entropy, ignore_index=255), bilinear
upsampling with align_corners=True (F.interpolate), and the ASPP head of
UnNAS's release (written here after pycls/models/common.py: 1x1 branch,
dilated 3x3 branches, image-pool branch, classifier) in training form with
its loss. Reads DUMP_DIR/case.json (inputs, parameters and what onnxruntime
computed), recomputes everything in float64 and writes DUMP_DIR/result.json:
per tensor rel_norm = |a - b| / |b| and rel_max = max|a - b| / max|b|.

    python3 bench/torch_ref/seg_reference.py DUMP_DIR
"""
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.dont_write_bytecode = True
torch.set_default_dtype(torch.float64)


def rel(a, b):
    a = torch.as_tensor(a, dtype=torch.float64).reshape(-1)
    b = torch.as_tensor(b, dtype=torch.float64).reshape(-1)
    d = a - b
    nb, mb = float(b.norm()), float(b.abs().max()) if b.numel() else 0.0
    nd, md = float(d.norm()), float(d.abs().max()) if d.numel() else 0.0
    return {
        'rel_norm': nd / nb if nb > 0 else (0.0 if nd == 0 else float('inf')),
        'rel_max': md / mb if mb > 0 else (0.0 if md == 0 else float('inf')),
        'norm_ref': nb,
    }


def T(entry):
    return torch.tensor(entry['data'], dtype=torch.float64).reshape(entry['shape'])


def L(entry):
    return torch.tensor(entry['data'], dtype=torch.int64).reshape(entry['shape'])


def branch(cin, cout, k, rate=1):
    pad = 0 if k == 1 else rate
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, dilation=rate, padding=pad, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


class ASPP(nn.Module):
    def __init__(self, cin, ca, classes, rates):
        super().__init__()
        self.rates = rates
        self.aspp1 = branch(cin, ca, 1)
        self.aspp2 = branch(cin, ca, 3, rates[0])
        if len(rates) == 3:
            self.aspp3 = branch(cin, ca, 3, rates[1])
            self.aspp4 = branch(cin, ca, 3, rates[2])
        self.aspp5 = branch(cin, ca, 1)
        self.classifier = nn.Sequential(
            nn.Conv2d(ca * (len(rates) + 2), ca, 1, bias=False),
            nn.BatchNorm2d(ca),
            nn.ReLU(),
            nn.Conv2d(ca, classes, 1),
        )

    def forward(self, x):
        xs = [self.aspp1(x), self.aspp2(x)]
        if len(self.rates) == 3:
            xs += [self.aspp3(x), self.aspp4(x)]
        pool = self.aspp5(F.adaptive_avg_pool2d(x, 1))
        xs.append(F.interpolate(pool, size=x.shape[2:], mode='bilinear', align_corners=True))
        return self.classifier(torch.cat(xs, 1))


def case_loss(c):
    logits = T(c['logits']).requires_grad_(True)
    loss = F.cross_entropy(logits, L(c['labels']), ignore_index=255)
    loss.backward()
    return {'loss': rel(c['ours']['loss'], loss.item()), 'dlogits': rel(T(c['ours']['dlogits']), logits.grad)}


def case_upsample(c):
    out = {}
    for k, u in enumerate(c['cases']):
        x = T(u['x']).requires_grad_(True)
        y = F.interpolate(x, size=tuple(u['size']), mode='bilinear', align_corners=True)
        (y * T(u['r'])).sum().backward()
        out['y%d' % k] = rel(T(u['ours']['y']), y)
        out['dx%d' % k] = rel(T(u['ours']['dx']), x.grad)
    return out


def case_aspp(c):
    m = ASPP(c['in'], c['channels'], c['classes'], c['rates'])
    state = m.state_dict()
    loaded = set()
    for name, e in c['params'].items():
        key = name[len('aspp/'):].replace('/', '.')
        if key not in state or list(state[key].shape) != e['shape']:
            raise SystemExit('parameter %s has no torch counterpart of shape %s' % (name, e['shape']))
        state[key] = T(e)
        loaded.add(key)
    missing = [k for k in state if k not in loaded and not k.endswith('num_batches_tracked')]
    if missing:
        raise SystemExit('torch parameters not in the dump: %s' % missing)
    m.load_state_dict(state)
    m.train()
    x = T(c['x']).requires_grad_(True)
    logits = F.interpolate(m(x), size=tuple(c['size']), mode='bilinear', align_corners=True)
    loss = F.cross_entropy(logits, L(c['labels']), ignore_index=255)
    loss.backward()
    ours = c['ours']
    out = {'loss': rel(ours['loss'], loss.item()), 'dx': rel(T(ours['dx']), x.grad)}
    named = dict(m.named_parameters())
    buffers = dict(m.named_buffers())
    for name in c['params']:
        key = name[len('aspp/'):].replace('/', '.')
        if key in named:
            out['grad ' + name] = rel(T(ours['grads'][name]), named[key].grad)
        elif not key.endswith('num_batches_tracked'):
            out['state ' + name] = rel(T(ours['state'][name]), buffers[key])
    return out


def main():
    d = sys.argv[1]
    with open(os.path.join(d, 'case.json')) as f:
        cases = json.load(f)
    result = {
        'torch': torch.__version__,
        'loss': case_loss(cases['loss']),
        'upsample': case_upsample(cases['upsample']),
    }
    for name, c in cases['aspp'].items():
        result['aspp ' + name] = case_aspp(c)
    with open(os.path.join(d, 'result.json'), 'w') as f:
        json.dump(result, f)


if __name__ == '__main__':
    main()
