"""
The Python half of bench/torch-ref.ts: loads the dump the TS side wrote
(manifest.json + tensors.bin: parameters, batches, and the loss, gradients,
BN statistics and optimizer steps that onnxruntime computed on nas-onnx's
graphs), loads the parameters positionally into the independent PyTorch
modules of darts_torch.py (checking every shape), recomputes everything with
torch / torch.optim in float64 and in float32, and reports the errors.

    python3 bench/torch_ref/compare.py DUMP_DIR [--all]

Writes DUMP_DIR/results.json and DUMP_DIR/per_tensor.txt, prints a table.
Exit status 0 when every figure is within TOL, 1 otherwise.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from darts_torch import NetworkCIFAR, SearchNetwork  # noqa: E402

TOL = 1e-4

METRIC = """\
Metric, per tensor, ours (float32, onnxruntime) = a against the float64 torch reference = b:
  rel_norm = ||a - b||_2 / ||b||_2                (relative error of the tensor as a vector)
  rel_max  = max|a - b| / max|b|                  (worst element, relative to the tensor's scale)
Both are scale-aware: an element whose true value is ~0 is judged against the tensor's
magnitude, not against itself. The t32 columns are the same figures for torch in float32
(the noise floor of a correct float32 implementation). Target: both <= %g for ours.
Max pooling and ReLU: at near-ties and near-zeros (a few float32 ulps wide) float32 rounding
decides which way the gradient goes; the reference follows our arg-max positions and our signs
there, and checks that its own choices differ from ours nowhere else.""" % TOL


class ShapeMismatch(Exception):
    pass


def rel(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    d = a - b
    nb = float(np.linalg.norm(b))
    mb = float(np.abs(b).max()) if b.size else 0.0
    nd = float(np.linalg.norm(d))
    md = float(np.abs(d).max()) if d.size else 0.0
    rn = nd / nb if nb > 0 else (0.0 if nd == 0 else float('inf'))
    rm = md / mb if mb > 0 else (0.0 if md == 0 else float('inf'))
    return {'rel_norm': rn, 'rel_max': rm, 'norm_ref': nb, 'max_ref': mb}


def worst(e):
    return max(e['rel_norm'], e['rel_max'])


class Dump:
    def __init__(self, d):
        with open(os.path.join(d, 'manifest.json')) as f:
            self.m = json.load(f)
        self.data = np.fromfile(os.path.join(d, 'tensors.bin'), dtype='<f4')

    def t(self, key):
        e = self.m['index'][key]
        return self.data[e['offset']:e['offset'] + e['length']].reshape(e['shape'])


def load_params(model, entries, dump, dtype):
    """Positional load of the weights (role 'weight') into model.parameters(); α by name."""
    ours = [e for e in entries if e['role'] == 'weight']
    theirs = list(model.named_parameters())
    if len(ours) != len(theirs):
        raise ShapeMismatch('nas-onnx has %d weight tensors, torch %d' % (len(ours), len(theirs)))
    pairs = []
    for i, (e, (tname, p)) in enumerate(zip(ours, theirs)):
        if tuple(e['shape']) != tuple(p.shape):
            raise ShapeMismatch('#%d: nas-onnx %s %s vs torch %s %s' % (i, e['name'], e['shape'], tname, list(p.shape)))
        with torch.no_grad():
            p.copy_(torch.from_numpy(dump.t(e['key']).astype(np.float64)).to(dtype))
        pairs.append((e['name'], tname, p))
    arch = [e for e in entries if e['role'] == 'arch']
    if arch:
        by_name = {'alpha_normal': model.alphas_normal, 'alpha_reduce': model.alphas_reduce}
        if sorted(e['name'] for e in arch) != sorted(by_name):
            raise ShapeMismatch('α names %s' % [e['name'] for e in arch])
        for e in arch:
            a = by_name[e['name']]
            if tuple(e['shape']) != tuple(a.shape):
                raise ShapeMismatch('%s %s vs torch %s' % (e['name'], e['shape'], list(a.shape)))
            with torch.no_grad():
                a.data = torch.from_numpy(dump.t(e['key']).astype(np.float64)).to(dtype)
            a.requires_grad_(True)
            pairs.append((e['name'], 'alphas_' + e['name'].split('_')[1], a))
    # BN running statistics (nas-onnx role 'state'), positionally into the BN buffers
    ours_state = [e for e in entries if e['role'] == 'state']
    if ours_state:
        theirs_state = bn_buffers(model)
        if len(ours_state) != len(theirs_state):
            raise ShapeMismatch('%d BN state tensors vs torch %d' % (len(ours_state), len(theirs_state)))
        for e, (tname, b) in zip(ours_state, theirs_state):
            if tuple(e['shape']) != tuple(b.shape):
                raise ShapeMismatch('state %s %s vs torch %s %s' % (e['name'], e['shape'], tname, list(b.shape)))
            b.copy_(torch.from_numpy(dump.t(e['key']).astype(np.float64)).to(dtype))
    return pairs


# ---- max pooling and ReLU with nas-onnx's branch choices ---------------------------------------

NEAR_TIE = 1e-5   # max-pool inputs this close (relative to the input's max-abs) are a near-tie
NEAR_KINK = 1e-5  # ReLU inputs this close to 0 (same scale) are a near-kink (bench/torch-ref.ts NEAR_KINK)


class KinkFeed:
    """
    nas-onnx's MaxPool indices and ReLU near-zero signs for one forward pass, in call order
    (bench/torch-ref.ts KinkProbe), and the record of where torch's own choices differ.
    ReLUs of the auxiliary head come last in nas-onnx's node order (the head is built after
    the trunk) but are called after cell 2L/3 here: they get their own queue.
    """

    def __init__(self):
        self.pools, self.relus, self.aux_relus = [], [], []
        self.n_aux = 0
        self.calls = {'pool': 0, 'relu': 0}
        self.windows = self.pool_differ = 0
        self.pool_gap = 0.0
        self.relu_near = self.relu_flipped = self.relu_unexplained = 0
        self.relu_gap = 0.0

    def start(self, dump, probe):
        if self.pools or self.relus or self.aux_relus:
            raise ShapeMismatch('the previous forward pass left MaxPool/ReLU records unused')
        self.pools = [dump.t(k) for k in probe['keys']]
        relus = list(probe['relus'])
        cut = len(relus) - self.n_aux
        self.relus, self.aux_relus = relus[:cut], relus[cut:]

    def finish(self):
        if self.pools or self.relus or self.aux_relus:
            raise ShapeMismatch('nas-onnx has %d MaxPool and %d ReLU nodes more than the torch network calls'
                                % (len(self.pools), len(self.relus) + len(self.aux_relus)))

    def take(self, kind, queue, shape):
        if not queue:
            raise ShapeMismatch('the torch network calls more %s than nas-onnx has' % kind)
        item = queue.pop(0)
        got = item.shape if kind == 'pool' else item['shape']
        if tuple(got) != tuple(shape):
            raise ShapeMismatch('%s #%d: nas-onnx %s vs torch %s' % (kind, self.calls[kind], list(got), list(shape)))
        self.calls[kind] += 1
        return item

    def summary(self):
        return {'pools': self.calls['pool'], 'windows': self.windows, 'argmax_differs': self.pool_differ, 'max_gap': self.pool_gap,
                'relus': self.calls['relu'], 'relu_near_zero': self.relu_near, 'relu_sign_differs': self.relu_flipped,
                'relu_unexplained': self.relu_unexplained, 'relu_max_gap': self.relu_gap}


class IndexedMaxPool(nn.Module):
    """
    nn.MaxPool2d that takes its arg-max positions from nas-onnx. torch still computes its own:
    where the two differ, the inputs at both positions must be equal to within NEAR_TIE of the
    input's scale (a near-tie that float32 rounding decides either way), or the check fails.
    """

    def __init__(self, pool, feed):
        super().__init__()
        self.k, self.s, self.p = pool.kernel_size, pool.stride, pool.padding
        self.feed = feed

    def forward(self, x):
        y_own, i_own = F.max_pool2d(x, self.k, self.s, self.p, return_indices=True)
        flat = self.feed.take('pool', self.feed.pools, y_own.shape).astype(np.int64)  # ONNX: flat over N·C·H·W
        n, c, h, w = x.shape
        base = ((np.arange(n)[:, None] * c + np.arange(c)[None, :]) * h * w)[:, :, None, None]
        plane = torch.from_numpy(flat - base)  # torch: flat within each H·W plane
        xf = x.flatten(2)
        y = xf.gather(2, plane.flatten(2)).view_as(y_own)
        with torch.no_grad():
            differ = i_own != plane
            self.feed.windows += differ.numel()
            if bool(differ.any()):
                xd = xf.detach()
                gap = (xd.gather(2, i_own.flatten(2)) - xd.gather(2, plane.flatten(2))).abs().view_as(y_own)
                self.feed.pool_differ += int(differ.sum())
                self.feed.pool_gap = max(self.feed.pool_gap, float(gap[differ].max()) / float(xd.abs().max()))
        return y


class _MaskedRelu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, mask):
        ctx.save_for_backward(mask)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, dy):
        (mask,) = ctx.saved_tensors
        return dy * mask, None


class KinkReLU(nn.Module):
    """
    ReLU whose derivative at nas-onnx's near-zero inputs (|x| <= NEAR_KINK of the input's
    max-abs, where float32 rounding decides the sign) follows nas-onnx's sign. Elsewhere
    torch's own sign rules; an input of torch's that is near zero but not one of nas-onnx's
    near-zeros means the two forward passes disagree: counted as unexplained (fails).
    """

    def __init__(self, feed, aux):
        super().__init__()
        self.feed, self.aux = feed, aux

    def forward(self, x):
        item = self.feed.take('relu', self.feed.aux_relus if self.aux else self.feed.relus, x.shape)
        with torch.no_grad():
            xd = x.detach().flatten()
            scale = float(xd.abs().max())
            mask = (xd > 0).to(x.dtype)
            ours = set()
            for idx, pos in item['near']:
                idx = int(idx)
                ours.add(idx)
                self.feed.relu_near += 1
                if float(mask[idx]) != float(pos):
                    self.feed.relu_flipped += 1
                    self.feed.relu_gap = max(self.feed.relu_gap, abs(float(xd[idx])) / scale)
                mask[idx] = float(pos)
            if scale > 0:
                near_ref = torch.nonzero(xd.abs() <= 0.5 * NEAR_KINK * scale).flatten().tolist()
                self.feed.relu_unexplained += sum(1 for i in near_ref if i not in ours)
        return _MaskedRelu.apply(x, mask.view_as(x))


def use_our_kinks(net, feed):
    """Swap every nn.MaxPool2d and nn.ReLU of `net` for the versions that follow nas-onnx's choices."""
    for mname, module in list(net.named_modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.MaxPool2d):
                setattr(module, name, IndexedMaxPool(child, feed))
            elif isinstance(child, nn.ReLU):
                aux = mname.startswith('auxiliary_head')
                feed.n_aux += int(aux)
                setattr(module, name, KinkReLU(feed, aux))
    return net


def bn_buffers(model):
    out = []
    for mname, b in model.named_buffers():
        if mname.endswith('running_mean') or mname.endswith('running_var'):
            out.append((mname, b))
    return out


def make_supernet(cfg, dtype):
    torch.manual_seed(0)
    net = SearchNetwork(cfg['C'], cfg['classes'], cfg['layers'], in_channels=cfg['channels']).to(dtype)
    net.alphas_normal = net.alphas_normal.detach().to(dtype).requires_grad_(True)
    net.alphas_reduce = net.alphas_reduce.detach().to(dtype).requires_grad_(True)
    return net


def make_evalnet(cfg, genotype, dtype):
    torch.manual_seed(0)
    return NetworkCIFAR(cfg['C'], cfg['classes'], cfg['layers'], True, genotype, in_channels=cfg['channels']).to(dtype)


# ---- gradient cases ---------------------------------------------------------------------

def grad_rows(dump, ort_grads, g64, g32):
    rows = []
    for name, key in ort_grads.items():
        tname, b = g64[name]
        rows.append({
            'name': name, 'torch': tname, 'shape': list(b.shape),
            'kind': 'arch' if name.startswith('alpha_') else 'weight',
            'ours': rel(dump.t(key), b), 't32': rel(g32[name][1], b),
        })
    return rows


def loss_figures(ours, t64, t32):
    return {'ours': ours, 't64': t64, 't32': t32, 'rel': abs(ours - t64) / abs(t64), 'rel_t32': abs(t32 - t64) / abs(t64)}


def evalnet_case(dump, case):
    cfg = case['config']
    x_np = dump.t(case['x']).astype(np.float64)
    y = torch.tensor(case['labels'], dtype=torch.long)
    ref = {}
    for dtype in (torch.float64, torch.float32):
        net = make_evalnet(cfg, case['genotype'], dtype)
        net.train()
        pairs = load_params(net, case['params'], dump, dtype)
        feed = KinkFeed()
        use_our_kinks(net, feed)
        feed.start(dump, case['pools'][0])
        logits, aux = net(torch.from_numpy(x_np).to(dtype))
        feed.finish()
        pool_stats = feed.summary()
        main = F.cross_entropy(logits, y)
        la = F.cross_entropy(aux, y)
        loss = main + cfg['auxWeight'] * la
        loss.backward()
        grads = {ours: (tname, p.grad.detach().double().numpy().copy()) for ours, tname, p in pairs}
        # BN running statistics after one training-form forward pass, matched positionally too
        ours_state = [e for e in case['params'] if e['role'] == 'state']
        theirs_state = bn_buffers(net)
        if len(ours_state) != len(theirs_state):
            raise ShapeMismatch('%d BN state tensors vs torch %d' % (len(ours_state), len(theirs_state)))
        state = {}
        for e, (tname, b) in zip(ours_state, theirs_state):
            if tuple(e['shape']) != tuple(b.shape):
                raise ShapeMismatch('state %s %s vs torch %s %s' % (e['name'], e['shape'], tname, list(b.shape)))
            state[e['name']] = (tname, b.detach().double().numpy().copy())
        ref[dtype] = {'loss': loss.item(), 'metrics': {'loss_main': main.item(), 'loss_aux': la.item()}, 'grads': grads, 'state': state, 'pools': pool_stats}
    r64, r32 = ref[torch.float64], ref[torch.float32]
    ort = case['ort']
    srows = []
    for name, key in ort['state'].items():
        tname, s64 = r64['state'][name]
        srows.append({'name': name, 'torch': tname, 'shape': list(s64.shape), 'ours': rel(dump.t(key), s64), 't32': rel(r32['state'][name][1], s64)})
    return {
        'loss': loss_figures(ort['loss'], r64['loss'], r32['loss']),
        'metrics': {k: {'ours': ort['metrics'][k], 't64': v, 'rel': abs(ort['metrics'][k] - v) / abs(v)} for k, v in r64['metrics'].items()},
        'grads': grad_rows(dump, ort['grads'], r64['grads'], r32['grads']),
        'state': srows,
        'missing_grads': sorted(set(r64['grads']) - set(ort['grads'])),
        'graph': case.get('graph'),
        'pools': r64['pools'],
    }


# ---- the supernet: gradients and optimizer steps ---------------------------------------------

def f32_storage_bound(p_ref, delta_ref, t):
    """
    How far p_t - p_0 can be off through float32 storage of the parameters alone: each of the
    t updates so far rounds the stored value to nearest (half a float32 spacing of p_t).
    """
    half = t * np.spacing(np.abs(p_ref).astype(np.float32)).astype(np.float64) / 2
    nb = float(np.linalg.norm(delta_ref))
    mb = float(np.abs(delta_ref).max())
    return {'rel_norm': float(np.linalg.norm(half)) / nb if nb > 0 else 0.0, 'rel_max': float(half.max()) / mb if mb > 0 else 0.0}


def supernet_case(dump, case):
    cfg = case['config']
    wo, ao = case['wOpt'], case['aOpt']
    batch = lambda i, dtype: (torch.from_numpy(dump.t(case['batches'][i]).astype(np.float64)).to(dtype), torch.tensor(case['labels'][i], dtype=torch.long))

    # float32 torch: the gradient at the initial parameters only (the float32 noise floor)
    net = make_supernet(cfg, torch.float32)
    net.train()
    pairs = load_params(net, case['params'], dump, torch.float32)
    feed = KinkFeed()
    use_our_kinks(net, feed)
    x, y = batch(0, torch.float32)
    feed.start(dump, case['pools'][0])
    loss = F.cross_entropy(net(x), y)
    feed.finish()
    loss.backward()
    g32 = {ours: (tname, p.grad.detach().double().numpy().copy()) for ours, tname, p in pairs}
    loss32 = loss.item()

    # float64 torch: the gradient, then the same sequence of steps as the TS side
    net = make_supernet(cfg, torch.float64)
    net.train()
    pairs = load_params(net, case['params'], dump, torch.float64)
    feed = KinkFeed()
    use_our_kinks(net, feed)
    by_name = {ours: p for ours, _, p in pairs}
    p0 = {ours: p.detach().numpy().copy() for ours, _, p in pairs}
    w_opt = torch.optim.SGD(net.parameters(), lr=wo['lr'], momentum=wo['momentum'], weight_decay=wo['weightDecay'])
    a_opt = torch.optim.Adam(net.arch_parameters(), lr=ao['lr'], betas=(ao['beta1'], ao['beta2']), eps=ao['eps'], weight_decay=ao['weightDecay'])
    g64, loss64 = None, None
    later = []
    steps = []
    for s in case['ort']['steps']:
        x, y = batch(s['batch'], torch.float64)
        feed.start(dump, case['pools'][s['batch']])
        if s['which'] == 'arch':
            a_opt.zero_grad()
            w_opt.zero_grad()
            loss = F.cross_entropy(net(x), y)
            feed.finish()
            loss.backward()
            if g64 is None:
                g64 = {ours: (tname, p.grad.detach().numpy().copy()) for ours, tname, p in pairs}
                loss64 = loss.item()
            else:
                later.append({ours: (tname, p.grad.detach().numpy().copy()) for ours, tname, p in pairs})
            a_opt.step()
            norm = None
            slots = {}
            for n in s['params']:
                st = a_opt.state[by_name[n]]
                slots[n + '@exp_avg'] = st['exp_avg'].numpy().copy()
                slots[n + '@exp_avg_sq'] = st['exp_avg_sq'].numpy().copy()
        else:
            w_opt.zero_grad()
            loss = F.cross_entropy(net(x), y)
            feed.finish()
            loss.backward()
            norm = float(torch.nn.utils.clip_grad_norm_(net.parameters(), case['clip']))
            w_opt.step()
            slots = {n + '@momentum': w_opt.state[by_name[n]]['momentum_buffer'].numpy().copy() for n in s['params']}
        steps.append({'loss': loss.item(), 'grad_norm': norm, 'slots': slots,
                      'params': {n: by_name[n].detach().numpy().copy() for n in s['params']}})

    out = []
    for s, r in zip(case['ort']['steps'], steps):
        rows = []
        d_ours, d_ref, halves = [], [], []
        for n, key in s['params'].items():
            a = dump.t(key).astype(np.float64)
            b = r['params'][n]
            # the cumulative update from the common starting point: p_t - p_0
            da, db = a - p0[n], b - p0[n]
            d_ours.append(da.ravel())
            d_ref.append(db.ravel())
            halves.append(b.ravel())
            rows.append({'name': n, 'what': 'update', 'ours': rel(da, db), 'floor': f32_storage_bound(b, db, s['t'])})
            rows.append({'name': n, 'what': 'param', 'ours': rel(a, b), 'floor': {'rel_norm': 0.0, 'rel_max': 0.0}})
        for k, key in s['slots'].items():
            rows.append({'name': k, 'what': 'slot', 'ours': rel(dump.t(key), r['slots'][k]), 'floor': {'rel_norm': 0.0, 'rel_max': 0.0}})
        if not d_ref:
            raise ShapeMismatch('the TS side reported no updated parameters for %s step %d' % (s['which'], s['t']))
        dref = np.concatenate(d_ref)
        sub = {
            'which': s['which'], 't': s['t'],
            'loss': {'ours': s['loss'], 't64': r['loss'], 'rel': abs(s['loss'] - r['loss']) / abs(r['loss'])},
            'group_update': {'ours': rel(np.concatenate(d_ours), dref), 'floor': f32_storage_bound(np.concatenate(halves), dref, s['t'])},
            'rows': rows,
        }
        if s['which'] == 'weight':
            gn = s.get('gradNorm')
            sub['grad_norm'] = {'ours': gn, 't64': r['grad_norm'], 'rel': abs(gn - r['grad_norm']) / r['grad_norm'],
                                'clip': case['clip'], 'clipped': r['grad_norm'] > case['clip']}
        out.append(sub)
    return {
        'loss': loss_figures(case['ort']['loss'], loss64, loss32),
        'metrics': {},
        'grads': grad_rows(dump, case['ort']['grads'], g64, g32),
        'state': [],
        'missing_grads': sorted(set(g64) - set(case['ort']['grads'])),
        'graph': case.get('graph'),
        'steps': out,
        'pools': feed.summary(),
        # gradients at the later α steps' points (γ, β, α and weights trained): ours vs float64 torch
        'grads_later': [[{'name': n, 'torch': g[n][0], 'ours': rel(dump.t(k), g[n][1])} for n, k in ours.items()]
                        for ours, g in zip(case['ort']['gradsLater'], later)],
        # the probe session's loss against the step session's: the same forward pass
        'probe_loss_diff': max(abs(p['loss'] - s['loss']) for p, s in zip(case['pools'], case['ort']['steps'])),
    }


# ---- report ----------------------------------------------------------------------------------

def fmt(v):
    return '%.2e' % v


def report_gradients(name, r, c, lines, failures, per_tensor, show_all):
    if name == 'supernet':
        title = ('search supernet C=%d, %d cells (reductions at %d, %d), batch %d, %dx%dx%d, %d classes; α ~ N(0, %.1f^2), stem BN γ, β random'
                 % (c['C'], c['layers'], c['layers'] // 3, 2 * c['layers'] // 3, c['batch'], c['channels'], c['size'], c['size'], c['classes'], c['alphaStd']))
    else:
        title = ('%s CIFAR network C=%d, %d cells, auxiliary head (weight %.1f), batch %d, %dx%dx%d, training form, no drop path; BN γ, β, running stats random'
                 % (c['genotype'].upper(), c['C'], c['layers'], c['auxWeight'], c['batch'], c['channels'], c['size'], c['size']))
    lines.append('== %s: %s' % (name, title))
    if r['graph']:
        lines.append('   graph: %d nodes (%d forward, %d backward)' % (r['graph']['nodes'], r['graph']['forward'], r['graph']['backward']))
    L = r['loss']
    lines.append('   loss       ours %.8f  torch64 %.10f  rel diff %s   (torch32 %s)' % (L['ours'], L['t64'], fmt(L['rel']), fmt(L['rel_t32'])))
    if L['rel'] > TOL:
        failures.append('%s: loss rel diff %s' % (name, fmt(L['rel'])))
    for k, v in r['metrics'].items():
        lines.append('   %-10s ours %.8f  torch64 %.10f  rel diff %s' % (k, v['ours'], v['t64'], fmt(v['rel'])))
        if v['rel'] > TOL:
            failures.append('%s: %s rel diff %s' % (name, k, fmt(v['rel'])))
    if r['missing_grads']:
        failures.append('%s: no ORT gradient for %s' % (name, r['missing_grads']))
    g = r['grads']
    w = [x for x in g if x['kind'] == 'weight']
    nvals = sum(int(np.prod(x['shape'])) for x in w)
    wn = max(w, key=lambda x: x['ours']['rel_norm'])
    wm = max(w, key=lambda x: x['ours']['rel_max'])
    lines.append('   weight gradients: %d tensors, %d values, loaded positionally, every shape matched' % (len(w), nvals))
    lines.append('     worst rel_norm %s  %s  (torch: %s)' % (fmt(wn['ours']['rel_norm']), wn['name'], wn['torch']))
    lines.append('     worst rel_max  %s  %s  (torch: %s)' % (fmt(wm['ours']['rel_max']), wm['name'], wm['torch']))
    lines.append('     median rel_norm %s; torch32 for comparison: worst rel_norm %s, worst rel_max %s'
                 % (fmt(float(np.median([x['ours']['rel_norm'] for x in w]))), fmt(max(x['t32']['rel_norm'] for x in w)), fmt(max(x['t32']['rel_max'] for x in w))))
    for x in [x for x in g if x['kind'] == 'arch']:
        lines.append('   α gradient %-12s rel_norm %s  rel_max %s  (||grad|| %.3e; torch32 %s / %s)'
                     % (x['name'], fmt(x['ours']['rel_norm']), fmt(x['ours']['rel_max']), x['ours']['norm_ref'], fmt(x['t32']['rel_norm']), fmt(x['t32']['rel_max'])))
    ps = r['pools']
    lines.append('   max pooling: %d pool calls, %d windows; torch\'s own arg-max differs from ours in %d (largest input gap there %s of the input scale; a near-tie if <= %g)'
                 % (ps['pools'], ps['windows'], ps['argmax_differs'], fmt(ps['max_gap']), NEAR_TIE))
    lines.append('   ReLU: %d calls; %d inputs near 0 (<= %g of the scale) take our sign, torch\'s differs at %d of them (largest |x| there %s); unexplained near-zeros %d'
                 % (ps['relus'], ps['relu_near_zero'], NEAR_KINK, ps['relu_sign_differs'], fmt(ps['relu_max_gap']), ps['relu_unexplained']))
    if ps['max_gap'] > NEAR_TIE:
        failures.append('%s: MaxPool arg-max differs from torch by an input gap of %s (not a near-tie)' % (name, fmt(ps['max_gap'])))
    if ps['relu_unexplained']:
        failures.append('%s: %d ReLU inputs near zero in torch are not near zero in ours' % (name, ps['relu_unexplained']))
    if r.get('probe_loss_diff', 0) > 1e-6:
        failures.append('%s: the MaxPool-index probe session disagrees with the step session (loss diff %s)' % (name, fmt(r['probe_loss_diff'])))
    if r['state']:
        st = r['state']
        sw = max(st, key=lambda x: worst(x['ours']))
        lines.append('   BN running stats after the forward (momentum 0.1, unbiased var): %d tensors, worst rel_norm %s rel_max %s  %s'
                     % (len(st), fmt(sw['ours']['rel_norm']), fmt(sw['ours']['rel_max']), sw['name']))
    lines.append('   5 worst tensors  (ours rel_norm / rel_max | torch32 rel_norm / rel_max):')
    for x in sorted(g, key=lambda x: -worst(x['ours']))[:5]:
        lines.append('     %s / %s | %s / %s  %s %s' % (fmt(x['ours']['rel_norm']), fmt(x['ours']['rel_max']), fmt(x['t32']['rel_norm']), fmt(x['t32']['rel_max']), x['name'], x['shape']))
    for x in g + r['state']:
        per_tensor.append('%s\t%s\t%s\t%s\t%s\t%s\t%s' % (name, x['name'], x['torch'], fmt(x['ours']['rel_norm']), fmt(x['ours']['rel_max']), fmt(x['t32']['rel_norm']), fmt(x['t32']['rel_max'])))
        if worst(x['ours']) > TOL:
            failures.append('%s: %s rel_norm %s rel_max %s' % (name, x['name'], fmt(x['ours']['rel_norm']), fmt(x['ours']['rel_max'])))
    if show_all:
        for x in g:
            lines.append('     %s %s  %s' % (fmt(x['ours']['rel_norm']), fmt(x['ours']['rel_max']), x['name']))


def report_later_grads(name, r, lines, failures):
    for i, rows in enumerate(r.get('grads_later', [])):
        wn = max(rows, key=lambda x: worst(x['ours']))
        lines.append('   gradients again at α step %d (after %d α and w updates: every BN γ/β, α and weight moved): %d tensors, worst rel_norm %s rel_max %s  %s'
                     % (i + 2, i + 1, len(rows), fmt(wn['ours']['rel_norm']), fmt(wn['ours']['rel_max']), wn['name']))
        for x in rows:
            if worst(x['ours']) > TOL:
                failures.append('%s: gradient at α step %d of %s rel_norm %s rel_max %s' % (name, i + 2, x['name'], fmt(x['ours']['rel_norm']), fmt(x['ours']['rel_max'])))


def report_steps(name, r, c, lines, failures, per_tensor):
    wo, ao = c['wOpt'], c['aOpt']
    lines.append('   optimizer steps vs torch.optim (2 steps, each: α Adam on a val batch, then w SGD on a train batch;')
    lines.append('   each side feeds its own parameters and optimizer state into the next step):')
    lines.append('     w: SGD lr %g, momentum %g, weight decay %g, clip_grad_norm_ %g;  α: Adam lr %g, betas (%g, %g), weight decay %g, eps %g'
                 % (wo['lr'], wo['momentum'], wo['weightDecay'], wo['clip'], ao['lr'], ao['beta1'], ao['beta2'], ao['weightDecay'], ao['eps']))
    lines.append('     "update" = p_t - p_0 (cumulative change); "floor" = what float32 storage of p_1..p_t alone can put in it')
    lines.append('     (t x half a float32 spacing of p_t, relative to the update: large where a tensor barely moves);')
    lines.append('     an update is held to %g + floor, parameters and optimizer state (momentum, exp_avg, exp_avg_sq) to %g' % (TOL, TOL))
    for s in r['steps']:
        tag = '%s step %d' % ('α Adam' if s['which'] == 'arch' else 'w SGD', s['t'])
        extra = ''
        if 'grad_norm' in s:
            gn = s['grad_norm']
            extra = '; grad norm ours %.6f torch %.6f (rel %s, %s)' % (gn['ours'], gn['t64'], fmt(gn['rel']), 'clipped to %g' % gn['clip'] if gn['clipped'] else 'NOT clipped: below %g' % gn['clip'])
            if gn['rel'] > TOL:
                failures.append('%s %s: grad norm rel %s' % (name, tag, fmt(gn['rel'])))
        lines.append('   %s: loss rel %s%s' % (tag, fmt(s['loss']['rel']), extra))
        if s['loss']['rel'] > TOL:
            failures.append('%s %s: loss rel %s' % (name, tag, fmt(s['loss']['rel'])))
        gu = s['group_update']
        lines.append('     update, all %-7s  rel_norm %s  rel_max %s  (floor %s / %s)'
                     % ('α' if s['which'] == 'arch' else 'weights', fmt(gu['ours']['rel_norm']), fmt(gu['ours']['rel_max']), fmt(gu['floor']['rel_norm']), fmt(gu['floor']['rel_max'])))
        if gu['ours']['rel_norm'] > TOL + gu['floor']['rel_norm'] or gu['ours']['rel_max'] > TOL + gu['floor']['rel_max']:
            failures.append('%s %s: update rel_norm %s rel_max %s' % (name, tag, fmt(gu['ours']['rel_norm']), fmt(gu['ours']['rel_max'])))
        for what in ('update', 'param', 'slot'):
            rows = [x for x in s['rows'] if x['what'] == what]
            wr = max(rows, key=lambda x: worst(x['ours']))
            # the largest share of its limit any tensor uses (< 1 passes)
            share = max(max(x['ours']['rel_norm'] / (TOL + x['floor']['rel_norm']), x['ours']['rel_max'] / (TOL + x['floor']['rel_max'])) for x in rows)
            lines.append('     per tensor %-6s worst rel_norm %s rel_max %s%s  %s  [%d tensors; max error/limit %.2f]'
                         % (what, fmt(wr['ours']['rel_norm']), fmt(wr['ours']['rel_max']),
                            ' (floor %s / %s)' % (fmt(wr['floor']['rel_norm']), fmt(wr['floor']['rel_max'])) if what == 'update' else '',
                            wr['name'], len(rows), share))
            for x in rows:
                per_tensor.append('%s/%s%d/%s\t%s\t-\t%s\t%s\t-\t-' % (name, s['which'], s['t'], what, x['name'], fmt(x['ours']['rel_norm']), fmt(x['ours']['rel_max'])))
                if x['ours']['rel_norm'] > TOL + x['floor']['rel_norm'] or x['ours']['rel_max'] > TOL + x['floor']['rel_max']:
                    failures.append('%s %s %s %s: rel_norm %s rel_max %s (floor %s / %s)'
                                    % (name, tag, what, x['name'], fmt(x['ours']['rel_norm']), fmt(x['ours']['rel_max']), fmt(x['floor']['rel_norm']), fmt(x['floor']['rel_max'])))
    if not all(s['grad_norm']['clipped'] for s in r['steps'] if 'grad_norm' in s):
        lines.append('   NOTE: clipping was not active in every weight step')


def main():
    d = sys.argv[1]
    show_all = '--all' in sys.argv
    # one thread: these networks are tiny, and OpenMP worker spin-waits cost far more than they save
    torch.set_num_threads(1)
    dump = Dump(d)
    m = dump.m
    failures = []
    cases = {}
    lines = [METRIC, 'Ours: %s.' % m.get('ort', 'onnxruntime'), 'Reference: torch %s (bench/torch_ref/darts_torch.py).' % torch.__version__, '']
    per_tensor = []
    try:
        r = supernet_case(dump, m['supernet'])
        cases['supernet'] = r
        report_gradients('supernet', r, dict(m['supernet']['config'], alphaStd=m['alphaStd']), lines, failures, per_tensor, show_all)
        report_later_grads('supernet', r, lines, failures)
        report_steps('supernet', r, m['supernet'], lines, failures, per_tensor)
        lines.append('')
        r = evalnet_case(dump, m['evalnet'])
        cases['evalnet'] = r
        report_gradients('evalnet', r, dict(m['evalnet']['config']), lines, failures, per_tensor, show_all)
        lines.append('')
    except ShapeMismatch as e:
        failures.append('parameter order/shape mismatch: %s' % e)
        lines.append('SHAPE MISMATCH: %s' % e)

    with open(os.path.join(d, 'per_tensor.txt'), 'w') as f:
        f.write('case\tnas-onnx name\ttorch name\tours rel_norm\tours rel_max\ttorch32 rel_norm\ttorch32 rel_max\n')
        f.write('\n'.join(per_tensor) + '\n')

    def strip(o):
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items()}
        if isinstance(o, list):
            return [strip(v) for v in o]
        if isinstance(o, float) and not np.isfinite(o):
            return str(o)
        return o

    ok = not failures
    with open(os.path.join(d, 'results.json'), 'w') as f:
        json.dump(strip({'ok': ok, 'tolerance': TOL, 'failures': failures[:50], 'failure_count': len(failures), 'cases': cases}), f)
    if failures:
        lines.append('%d FAILURES%s:' % (len(failures), ' (first 50)' if len(failures) > 50 else ''))
        lines.extend('  ' + x for x in failures[:50])
    lines.append('per-tensor figures: %s' % os.path.join(d, 'per_tensor.txt'))
    print('\n'.join(lines))
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
