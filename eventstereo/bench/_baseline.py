"""Today's streaming forward, frozen as the same-run speed baseline of ``eventstereo bench stream``.

A verbatim copy of the inference path of eventstereo.model (ops.py, costvolume.py, network.py) as it was
before the speed work of issue 15, run over the live model's modules and weights: ``BaselineStereo(model)``
has the ``step`` / ``reset`` of the model it wraps, and the benchmark times both in the same run, rounds
interleaved. Its neurons run the training path's out-of-place forward (a clone of the state per call)
and its estimator the torch implementation, as then. Nothing else uses this module; tests check that it
still computes what the model computes, so the ratio compares the same work.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from eventstereo.model.genotype import STEM_STRIDE
from eventstereo.model.network import (
    cell_input2d,
    cell_input3d,
    disparity_interpolation,
    resample2d,
    resample3d,
)
from eventstereo.model.ops import ConvBN, _bn_trains, _run_bn, call_forward_hooks
from eventstereo.snn import fused
from eventstereo.snn.neurons import ALIFNode, LIFNode


def _empty_nhwc(n: int, d: int, c: int, h: int, w: int, like: Tensor) -> Tensor:
    """An uninitialised (N, D, C, H, W) tensor with channels innermost in memory, so that its
    (N*D, C, H, W) view is channels-last: the layout in which CPU convolutions run fastest here
    (1.1-3x over NCHW on every 3-D-cell shape measured)."""
    return like.new_empty(n, d, h, w, c).permute(0, 1, 4, 2, 3)


def stack_planes(x: Tensor, stride: int = 1) -> Tensor:
    """(N, D, C, H, W) -> (N, D', 3C, H, W): planes d-1, d, d+1 side by side for d = 0, s, 2s, ...
    (zeros beyond the ends); only the planes a stride-s conv reads are built. Channels-last memory."""
    n, d, c, h, w = x.shape
    centres = range(0, d, stride)
    out = _empty_nhwc(n, len(centres), 3 * c, h, w, x)
    out[:, :, c : 2 * c] = x[:, ::stride]
    out[:, 0, :c] = 0
    prev = x[:, stride - 1 :: stride][:, : len(centres) - 1]
    out[:, 1:, :c] = prev
    nxt = x[:, 1::stride]
    out[:, : nxt.shape[1], 2 * c :] = nxt
    out[:, nxt.shape[1] :, 2 * c :] = 0
    return out


def _plane_pairs(x: Tensor, first: int, count: int) -> Tensor:
    """(N, count, 2C, H+2, W+2): planes q + first | q + first + 1 for q = 0 .. count-1, zeros outside
    the volume and a one-pixel zero border (the padding of the phase convs). Channels-last memory."""
    n, d, c, h, w = x.shape
    out = _empty_nhwc(n, count, 2 * c, h + 2, w + 2, x)
    out[..., 0, :] = 0
    out[..., -1, :] = 0
    out[..., 1:-1, 0] = 0
    out[..., 1:-1, -1] = 0
    inner = out[..., 1:-1, 1:-1]
    for half, offset in ((slice(0, c), first), (slice(c, 2 * c), first + 1)):
        lo, hi = max(0, -offset), min(count, d - offset)  # q range whose plane q + offset exists
        inner[:, :lo, half] = 0
        inner[:, hi:, half] = 0
        if hi > lo:
            inner[:, lo:hi, half] = x[:, lo + offset : hi + offset]
    return out


def weight_3d_as_2d(weight: Tensor) -> Tensor:
    """Conv3d weight (C', C, 3, k, k) -> Conv2d weight (C', 3C, k, k) matching :func:`stack_planes`."""
    co, ci, kd, kh, kw = weight.shape
    return weight.permute(0, 2, 1, 3, 4).reshape(co, kd * ci, kh, kw)


def conv_nd(x: Tensor, weight: Tensor, bias: Tensor | None, *, stride: int = 1,
            padding: int | None = None) -> Tensor:
    """The convolution of a ConvBN's conv in this module's layouts; returns a flat (M, C', H', W').

    2-D: ordinary conv2d, M = N. 3-D (x (N, D, C, H, W), weight 5-D): 'same' Conv3d over (D, H, W)
    evaluated as a Conv2d over stacked disparity planes, M = N * D'. A 3-D ``stride`` s evaluates the
    same conv only at every s-th plane, row and column (what nearest downsampling of its output keeps).
    """
    if weight.dim() == 4:
        pad = weight.shape[-1] // 2 if padding is None else padding
        return F.conv2d(x, weight, bias, stride=stride, padding=pad)
    if x.dim() != 5:
        raise ValueError(f"3-D ops take (N, D, C, H, W) feature maps, got shape {tuple(x.shape)}")
    k = weight.shape[-1]
    if k == 1:
        if stride > 1:
            x = x[:, ::stride, :, ::stride, ::stride]
        return F.conv2d(x.flatten(0, 1), weight[:, :, 0], bias)
    if stride > 1:
        return _conv3d_strided(x, weight, bias, stride)
    stacked = stack_planes(x, stride)
    return F.conv2d(stacked.flatten(0, 1), weight_3d_as_2d(weight), bias, stride=stride, padding=k // 2)



def _conv3d_strided(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int) -> Tensor:
    """Flat 'same' conv3x3x3 at every ``stride``-th plane, row and column, one 2-D conv per plane tap on
    the planes that tap reads (no stacked copy of a large input: this serves layers at 1/3 resolution)."""
    n, d = x.shape[:2]
    centres = len(range(0, d, stride))
    w0, w1, w2 = weight.unbind(2)

    def conv(planes: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        return F.conv2d(planes.reshape(-1, *planes.shape[2:]), w, b, stride=stride, padding=1).unflatten(
            0, (n, planes.shape[1]))

    out = conv(x[:, ::stride], w1, bias)  # tap 1 reads the centre plane
    before, after = x[:, stride - 1 :: stride][:, : centres - 1], x[:, 1::stride]  # planes d - 1, d + 1
    if stride == 2 and after.shape[1]:  # planes 1, 3, 5, ... feed both outer taps
        both = conv(after, torch.cat([w0, w2]), None)
        y0, y2 = both.split(w0.shape[0], dim=2)
    else:
        y0 = conv(before, w0, None) if before.shape[1] else None
        y2 = conv(after, w2, None) if after.shape[1] else None
    if y0 is not None and centres > 1:
        out[:, 1:] += y0[:, : centres - 1]
    if y2 is not None:
        out[:, : y2.shape[1]] += y2
    return out.flatten(0, 1)


# Nearest x2 upsampling followed by a 'same' 3x3 conv only ever combines, per output phase (even or odd
# row), two input rows with summed kernel taps: even rows see rows q-1 | q with taps k0 | k1+k2, odd
# rows q | q+1 with k0+k1 | k2. So the conv runs at the coarse resolution with 2x2 kernels, one per
# phase, and the phases are interleaved: the same numbers, 27/8 (3-D) or 9/4 (2-D) times less work.
_PHASE_TAPS = ((1.0, 0.0, 0.0), (0.0, 1.0, 1.0)), ((1.0, 1.0, 0.0), (0.0, 0.0, 1.0))  # [phase][tap][k]


def _phase_weights(w: Tensor) -> Tensor:
    """(C', C, 3, 3) -> (4C', C, 2, 2): the 2x2 kernel of each (row phase, column phase)."""
    p = torch.tensor(_PHASE_TAPS, dtype=w.dtype, device=w.device)
    co, ci = w.shape[:2]
    return torch.einsum("rak,oikl,sbl->rsoiab", p, w, p).reshape(4 * co, ci, 2, 2)


def _conv2d_up2(x: Tensor, w: Tensor, bias: Tensor | None, *, padded: bool = False) -> Tensor:
    """conv2d(nearest_up2(x), w (C', C, 3, 3), bias, padding=1) computed at x's resolution
    (``padded``: x already carries a one-pixel zero border). The result is channels-last in memory."""
    if not padded:
        x = F.pad(x, (1, 1, 1, 1))
    m, _, h, wd = x.shape
    h, wd = h - 2, wd - 2
    co = w.shape[0]
    y = F.conv2d(x, _phase_weights(w), None if bias is None else bias.repeat(4))
    y = y.permute(0, 2, 3, 1).unflatten(3, (2, 2, co))  # (M, h+1, w+1, row phase, column phase, C')
    rows = [torch.stack([y[:, rh : rh + h, rw : rw + wd, rh, rw] for rw in (0, 1)], dim=3) for rh in (0, 1)]
    return torch.stack(rows, dim=2).reshape(m, 2 * h, 2 * wd, co).permute(0, 3, 1, 2)


def _conv3d_up2(x: Tensor, weight: Tensor, bias: Tensor | None, planes: int) -> Tensor:
    """Flat 'same' conv3x3x3 of the nearest x2 upsampling of x (N, Dl, C, h, w), cropped to ``planes``."""
    n, dl, c, h, w = x.shape
    if planes not in (2 * dl - 1, 2 * dl):
        raise ValueError(f"x2 upsampling of {dl} planes cannot give {planes}")
    w0, w1, w2 = weight.unbind(2)
    even_in = _plane_pairs(x, -1, dl)  # planes q-1 | q
    even = _conv2d_up2(even_in.flatten(0, 1), torch.cat([w0, w1 + w2], 1), bias, padded=True)
    even = even.unflatten(0, (n, dl))
    n_odd = planes // 2
    if planes % 2:  # the last (even) plane has no plane after it: take its k2 tap back out
        even[:, -1] -= _conv2d_up2(x[:, -1], w2, None)
    if n_odd == 0:
        return even.flatten(0, 1)
    odd_in = _plane_pairs(x, 0, n_odd)  # planes q | q+1
    odd = _conv2d_up2(odd_in.flatten(0, 1), torch.cat([w0 + w1, w2], 1), bias, padded=True)
    odd = odd.unflatten(0, (n, n_odd))
    out = torch.stack([even[:, :n_odd], odd], 2).flatten(1, 2)
    if planes % 2:
        out = torch.cat([out, even[:, -1:]], 1)
    return out.flatten(0, 1)


def upsample2(x: Tensor, planes: int | None = None) -> Tensor:
    """Nearest x2 upsampling: (N, C, h, w) -> (N, C, 2h, 2w), or (N, D, C, h, w) -> (N, planes, C, 2h, 2w)."""
    if x.dim() == 4:
        return F.interpolate(x, scale_factor=2, mode="nearest")
    n = x.shape[0]
    x = x.repeat_interleave(2, dim=1)[:, :planes]
    return F.interpolate(x.flatten(0, 1), scale_factor=2, mode="nearest").unflatten(0, (n, -1))


def conv_nd_up2(x: Tensor, weight: Tensor, bias: Tensor | None, planes: int | None = None) -> Tensor:
    """``conv_nd(upsample2(x, planes), weight, bias)`` (stride 1, 'same') without upsampling the input."""
    k = weight.shape[-1]
    if weight.dim() == 4:
        if k == 1:
            return upsample2(F.conv2d(x, weight, bias))
        return _conv2d_up2(x, weight, bias)
    if k == 1:
        y = F.conv2d(x.flatten(0, 1), weight[:, :, 0], bias).unflatten(0, x.shape[:2])
        return upsample2(y, planes).flatten(0, 1)
    return _conv3d_up2(x, weight, bias, planes)



def conv_currents(ops: Sequence[ConvBN], x: Tensor, *, stride: int | None = None, up2: bool = False,
                  planes: int | None = None) -> list[Tensor]:
    """The current of each op in `ops` on the common input `x`, computed by one convolution.

    All ops share dim, kernel, stride and padding; ``stride`` overrides the ops' stride (a stem whose
    output is only read at a coarser level computes just those positions). ``up2``: the ops read the
    nearest x2 upsampling of `x` (to ``planes`` disparity planes in 3-D), computed without building it.
    Returns tensors in the input's layout family:
    (N, C', H', W') for 2-D, (N, D, C', H, W) for 3-D. BN in training mode is applied per op on its
    slice (each op keeps its own running statistics); in eval mode it is folded into the fused conv.
    """
    first = ops[0]
    for op in ops[1:]:
        if (op.dim, op.kernel, op.stride, op.padding) != (first.dim, first.kernel, first.stride,
                                                          first.padding):
            raise ValueError("conv_currents needs ops of one dim, kernel, stride and padding")
    sizes = [op.out_channels for op in ops]
    train_bn = any(_bn_trains(op.bn) for op in ops)
    if train_bn:
        weights = [op.conv.weight for op in ops]
        biases = [op.conv.bias for op in ops]
        bias = None if all(b is None for b in biases) else torch.cat(
            [b if b is not None else w.new_zeros(w.shape[0]) for w, b in zip(weights, biases)]
        )
    else:
        weights, biases = zip(*(op.folded() for op in ops))
        bias = torch.cat(biases) if len(biases) > 1 else biases[0]
    weight = torch.cat(weights) if len(weights) > 1 else weights[0]
    if up2:
        if first.stride != 1 or first.padding != first.kernel // 2 or (stride or 1) != 1:
            raise ValueError("up2 needs stride 1 'same' convolutions")
        y = conv_nd_up2(x, weight, bias, planes)
    else:
        y = conv_nd(x, weight, bias, stride=first.stride if stride is None else stride, padding=first.padding)
    chunks = list(y.split(sizes, dim=1)) if len(ops) > 1 else [y]
    if any(op.conv._forward_hooks for op in ops):
        seen = upsample2(x, planes) if up2 else x
        for op, chunk in zip(ops, chunks):
            call_forward_hooks(op.conv, (seen,), chunk)
    if train_bn:
        chunks = [_run_bn(op.bn, c) for op, c in zip(ops, chunks)]
    if first.dim == 3:
        chunks = [c.unflatten(0, (x.shape[0], -1)) for c in chunks]
    return chunks



def volume_conv3d(left: Tensor, right: Tensor, planes: int, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``conv3d(concat_volume(left, right, planes), weight, bias, padding=1)`` in (N, D, C', H, W) layout,
    computed with 2-D convolutions only (see the module docstring)."""
    n, c, h, w = left.shape
    if weight.shape[1] != 2 * c or weight.shape[2:] != (3, 3, 3):
        raise ValueError(f"weight {tuple(weight.shape)} does not fit features with {c} channels")
    co = weight.shape[0]
    wl, wr = weight[:, :c], weight[:, c:]
    # channels-last throughout: faster 2-D convs, and a volume the neuron and the next layer read as is
    left = left.contiguous(memory_format=torch.channels_last)
    right = right.contiguous(memory_format=torch.channels_last)
    # left half: one conv for the summed kernel and the two taps missing on the end planes
    a = F.conv2d(left, torch.cat([wl.sum(2), wl[:, :, 0], wl[:, :, 2]]), padding=1)
    a_all, a_first_missing, a_last_missing = a.split(co, dim=1)
    # right half: each plane tap kd, evaluated at x0 = -1 .. w-1 (one extra column on the left)
    b = F.conv2d(F.pad(right, (2, 1, 1, 1)), torch.cat([wr[:, :, k] for k in range(3)]))
    b = b.split(co, dim=1)
    # the right-most kernel column alone: what the border cut removes from the last output column
    edge = F.conv2d(right, torch.cat([wr[:, :, k, :, 2:3] for k in range(3)]), padding=(1, 0))
    edge = edge.split(co, dim=1)
    if bias is not None:
        a_all = a_all + bias.view(1, -1, 1, 1)
    vol = a_all.new_empty(n, planes, h, w, co).permute(0, 1, 4, 2, 3)
    vol.copy_(a_all.unsqueeze(1).expand(n, planes, co, h, w))
    vol[:, 0] -= a_first_missing
    vol[:, planes - 1] -= a_last_missing
    for d in range(planes):
        plane = vol[:, d]
        for k in range(3):
            src = d + k - 1  # the volume plane this kernel tap reads, = its disparity shift
            if src < 0 or src >= planes or src > w:
                continue
            if src == 0:
                plane += b[k][..., 1:]
            else:
                plane[..., src - 1 :] += b[k][..., : w - src + 1]
                plane[..., w - 1] -= edge[k][..., w - src]
    return vol




# ------------------------------------------------------------------------- neurons and the network walk
def _neuron(neuron: nn.Module, x: Tensor) -> Tensor:
    """The neuron call as it was: the autograd-node forward, which clones the state every call."""
    if not isinstance(neuron, LIFNode) or not neuron._fused_ok(x):
        return neuron(x)
    single = neuron.step_mode == "s"
    seq = x.unsqueeze(0) if single else x
    h = neuron._memory("v", seq[0])
    if isinstance(neuron, ALIFNode):
        a, sp = neuron._memory("a", seq[0]), neuron._memory("s", seq[0])
        s, h, a = fused.alif_sequence(seq, h, a, sp, neuron.tau, neuron.theta, neuron.beta, neuron.rho,
                                      neuron.surrogate)
        neuron._set_memories(v=h, a=a, s=s[-1])
    else:
        s, h = fused.lif_sequence(seq, h, neuron.tau, neuron.theta, neuron.surrogate)
        neuron._set_memories(v=h)
    for hook in neuron._forward_hooks.values():  # the rate meter's hooks
        hook(neuron, (x,), s.squeeze(0) if single else s)
    return s.squeeze(0) if single else s


def fire(neuron: nn.Module, current: Tensor, steps: int) -> Tensor:
    volume = current.dim() == 5
    if volume:
        current = current.permute(0, 1, 3, 4, 2)
    if getattr(neuron, "step_mode", "s") == "m":
        out = _neuron(neuron, current.unflatten(0, (steps, -1))).flatten(0, 1)
    else:
        out = _neuron(neuron, current)
    return out.permute(0, 1, 4, 2, 3) if volume else out


def _spiking_layer(layer: nn.Module, x: Tensor, steps: int, stride: int | None = None) -> Tensor:
    return fire(layer.neuron, conv_currents([layer], x, stride=stride)[0], steps)


def _cell(cell: nn.Module, s0: Tensor, s1: Tensor, steps: int, up2=(False, False), planes=None) -> Tensor:
    acc: list[Tensor | None] = [None] * cell.nodes

    def feed(src, x, up2_=False, planes_=None):
        for kind, members in cell._plan[src]:
            if kind == "conv":
                currents = conv_currents([cell.edges[key] for key, _ in members], x, up2=up2_, planes=planes_)
            else:
                (key, _), = members
                op = cell.edges[key]
                currents = [op(upsample2(x, planes_) if up2_ else x)]
            for (_, tgt), cur in zip(members, currents):
                acc[tgt] = cur if acc[tgt] is None else acc[tgt] + cur

    feed(0, s0, up2[0], planes)
    feed(1, s1, up2[1], planes)
    outs = []
    for j in range(cell.nodes):
        spikes = fire(getattr(cell, f"node{j}"), acc[j], steps)
        outs.append(spikes)
        feed(2 + j, spikes)
    return torch.cat(outs, dim=1 if cell.dim == 2 else 2)


def _stem1_level(path: Sequence[int]) -> int:
    return min(path[:2])


def _feature(net: nn.Module, x: Tensor, steps: int) -> Tensor:
    a = _spiking_layer(net.stem0, x, steps)
    stem1_level = _stem1_level(net.path)
    b = _spiking_layer(net.stem1, a, steps, stride=2**stem1_level)
    prev_prev, prev = (a, 0), (b, stem1_level)
    for i, level in enumerate(net.path):
        (s0, up0), (s1, up1) = cell_input2d(*prev_prev, level), cell_input2d(*prev, level)
        out = _cell(getattr(net, f"cell{i}"), s0, s1, steps, up2=(up0, up1))
        prev_prev, prev = prev, (out, level)
    y = _spiking_layer(net.last, prev[0], steps)
    return resample2d(y, prev[1], 0)


def _volume_stem(stem: nn.Module, left: Tensor, right: Tensor, planes: int) -> Tensor:
    train_bn = _bn_trains(stem.bn)
    weight, bias = (stem.conv.weight, stem.conv.bias) if train_bn else stem.folded()
    y = volume_conv3d(left, right, planes, weight, bias)
    if train_bn:
        y = _run_bn(stem.bn, y.flatten(0, 1)).unflatten(0, y.shape[:2])
    return y


def _matching(net: nn.Module, left: Tensor, right: Tensor, steps: int) -> Tensor:
    planes = net.level_planes
    a = fire(net.stem0.neuron, _volume_stem(net.stem0, left, right, planes[0]), steps)
    stem1_level = _stem1_level(net.path)
    b = _spiking_layer(net.stem1, a, steps, stride=2**stem1_level)
    prev_prev, prev = (a, 0), (b, stem1_level)
    for i, level in enumerate(net.path):
        s0, up0 = cell_input3d(*prev_prev, level, planes)
        s1, up1 = cell_input3d(*prev, level, planes)
        out = _cell(getattr(net, f"cell{i}"), s0, s1, steps, up2=(up0, up1), planes=planes[level])
        prev_prev, prev = prev, (out, level)
    y, level = prev
    if level == 0:
        cost = conv_nd(y, net.head.weight, net.head.bias)
    else:
        y = resample3d(_spiking_layer(net.reduce, y, steps), level, 1, planes)
        cost = conv_nd_up2(y, net.head.weight, net.head.bias, planes[0])
    n = y.shape[0]
    return cost.view(n, planes[0], cost.shape[-2], cost.shape[-1])


class BaselineStereo(nn.Module):
    """``step`` / ``reset`` of a SpikeDHSStereo computed by the frozen code above (eval mode only)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.max_disparity = model.max_disparity
        self._interp: dict = {}

    def reset(self) -> None:
        self.model.reset()

    def step(self, left: Tensor, right: Tensor) -> Tensor:
        m = self.model
        m._check(left, right, 4, "step")
        m._set_mode("s")
        h, w = left.shape[-2:]
        mult = m.genotype.resolution_multiple
        ph, pw = (-h) % mult, (-w) % mult
        both = torch.stack([left, right]).unflatten(1, (1, -1)).transpose(0, 1).flatten(0, 2)
        if ph or pw:
            both = F.pad(both, (0, pw, 0, ph))
        feats = _feature(m.feature, both, 1).unflatten(0, (1, 2, -1))
        fl, fr = feats[:, 0].flatten(0, 1), feats[:, 1].flatten(0, 1)
        cost = _matching(m.matching, fl, fr, 1)
        key = (cost.dtype, cost.device)
        if key not in self._interp:
            self._interp[key] = disparity_interpolation(m.max_disparity, m.genotype.disparity_planes,
                                                        dtype=cost.dtype, device=cost.device)
        cost = torch.matmul(cost.permute(0, 2, 3, 1), self._interp[key].t()).permute(0, 3, 1, 2)
        cost = F.interpolate(cost, scale_factor=STEM_STRIDE, mode="bilinear", align_corners=False)
        return cost[..., :h, :w]

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        return self.step(left, right)

