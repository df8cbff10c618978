"""Plain reference evaluations of the networks, written from the architecture description.

No fused convolutions, no 2-D formulation of 3-D convolutions, no cost-volume stem, no x2 phase convs,
no strided stems: ``F.conv2d`` / ``F.conv3d`` on (N, C, H, W) / (N, C, D, H, W) tensors, BN in eval mode,
each neuron taking one step from rest. The fast paths are tested equal to these; the NAS code and
users can check a network of their own against them. One step from rest: spiking neurons fire where
the current exceeds the threshold, a ReLU neuron passes ReLU(current).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from eventstereo.model.genotype import NetGenotype, edge_endpoints
from eventstereo.model.ops import ConvBN


def step_from_rest(neuron: nn.Module, current: Tensor) -> Tensor:
    """The output of a neuron's first step on ``current``, computed from its spec."""
    spec = neuron.spec
    if spec.kind == "relu":
        return current.clamp(min=0)
    return (current > spec.theta).to(current.dtype)


def convbn(layer: ConvBN, x: Tensor) -> Tensor:
    """Eval-mode BN(conv(x)) with torch's own convolution (Conv3d on (N, C, D, H, W))."""
    conv, bn = layer.conv, layer.bn
    fn = F.conv2d if x.dim() == 4 else F.conv3d
    y = fn(x, conv.weight, conv.bias, stride=conv.stride, padding=conv.padding)
    if isinstance(bn, nn.Identity):
        return y
    return F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


def resample(x: Tensor, src: int, dst: int, planes: list[int] | None = None) -> Tensor:
    """Nearest resampling between levels of (N, C, H, W) or (N, C, D, H, W); ``planes[l]``: planes at l."""
    f = 2 ** abs(dst - src)
    if dst > src:
        return x[..., ::f, ::f] if x.dim() == 4 else x[:, :, ::f, ::f, ::f]
    if dst < src:
        x = x.repeat_interleave(f, -1).repeat_interleave(f, -2)
        if x.dim() == 5:
            x = x.repeat_interleave(f, 2)[:, :, : planes[dst]]
    return x


def reference_cell(cell: nn.Module, net: NetGenotype, s0: Tensor, s1: Tensor,
                   stride: tuple[int, int] = (1, 1)) -> Tensor:
    """Spikes of a Cell (eval mode, from rest) on inputs at the cell's level, op by op.

    ``stride[i]``: input i is read with that stride (a reduction cell's inputs)."""
    states = [s0, s1]
    for j in range(cell.nodes):
        current: Tensor | float = 0
        for edge, _ in net.cell:
            src, tgt = edge_endpoints(edge)
            if tgt != j:
                continue
            module = cell.edges[str(edge)]
            x = states[src]
            y = convbn(module, x) if isinstance(module, ConvBN) else module(x)
            s = stride[src] if src < 2 else 1
            current = current + (y[..., ::s, ::s] if s > 1 else y)
        states.append(step_from_rest(getattr(cell, f"node{j}"), current))
    return torch.cat(states[2:], dim=1)


def _trunk(net: nn.Module, net_g: NetGenotype, a: Tensor, planes: list[int] | None = None):
    b = step_from_rest(net.stem1.neuron, convbn(net.stem1, a))
    prev_prev, prev = (a, 0), (b, 0)
    for i, level in enumerate(net_g.path):
        s0 = resample(*prev_prev, level, planes)
        s1 = resample(*prev, level, planes)
        out = reference_cell(getattr(net, f"cell{i}"), net_g, s0, s1)
        prev_prev, prev = prev, (out, level)
    return prev


def reference_stereo_step(model: nn.Module, left: Tensor, right: Tensor) -> Tensor:
    """Cost (B, D, H, W) of one step of a SpikeDHSStereo from rest, eval-mode BN."""
    g = model.genotype
    h, w = left.shape[-2:]
    m = g.resolution_multiple
    pad = (0, (-w) % m, 0, (-h) % m)
    fnet, mnet = model.feature, model.matching
    feats = []
    for x in (F.pad(left, pad), F.pad(right, pad)):
        a = step_from_rest(fnet.stem0.neuron, convbn(fnet.stem0, x))
        y, level = _trunk(fnet, g.feature, a)
        feats.append(resample(step_from_rest(fnet.last.neuron, convbn(fnet.last, y)), level, 0))
    fl, fr = feats
    planes = [g.disparity_planes]
    for _ in range(3):
        planes.append(math.ceil(planes[-1] / 2))
    n, c, h3, w3 = fl.shape
    vol = fl.new_zeros(n, 2 * c, planes[0], h3, w3)
    for d in range(planes[0]):
        vol[:, :c, d] = fl
        vol[:, c:, d, :, d:] = fr[..., : w3 - d]
    a = step_from_rest(mnet.stem0.neuron, convbn(mnet.stem0, vol))
    # 3-D cells: the fast path keeps (N, D, C, H, W); the reference works on (N, C, D, H, W)
    y, level = _trunk(mnet, g.matching, a, planes)
    if level:
        y = resample(step_from_rest(mnet.reduce.neuron, convbn(mnet.reduce, y)), level, 0, planes)
    cost = F.conv3d(y, mnet.head.weight, mnet.head.bias, padding=1)[:, 0]  # (B, D0, h3, w3)
    full = []
    for d in range(g.max_disparity + 1):
        p = min(d / 3, planes[0] - 1)
        lo = int(p)
        hi = min(lo + 1, planes[0] - 1)
        full.append((1 - (p - lo)) * cost[:, lo] + (p - lo) * cost[:, hi])
    cost = torch.stack(full, 1)
    cost = F.interpolate(cost, size=(3 * h3, 3 * w3), mode="bilinear", align_corners=False)
    return cost[..., :h, :w]


def reference_classifier_step(model: nn.Module, x: Tensor) -> Tensor:
    """Logits (B, classes) of ONE step of a SpikeDHSClassifier on images x (B, C, H, W), from rest."""
    g = model.genotype
    a = step_from_rest(model.stem.neuron, convbn(model.stem, x))
    prev_prev, prev = (a, 0), (a, 0)
    for i, level in enumerate(g.net.path):
        stride = (2 ** (level - prev_prev[1]), 2 ** (level - prev[1]))
        out = reference_cell(getattr(model, f"cell{i}"), g.net, prev_prev[0], prev[0], stride)
        prev_prev, prev = prev, (out, level)
    return F.linear(prev[0].mean((-2, -1)), model.classifier.weight, model.classifier.bias)
