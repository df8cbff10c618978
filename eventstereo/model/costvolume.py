"""Concatenation cost volume and the first 3-D layer on it, computed without building the volume.

The volume at 1/3 resolution (REFERENCE §6) stacks, for each disparity plane d, the left features and
the right features shifted by d columns: ``V[d] = [L, R(x - d)]`` with zeros where ``x - d < 0``. Plane
d stands for a full-resolution disparity of 3d. The matching net's first layer is a 3x3x3 convolution
of that volume (2C -> C' channels), by far the largest layer if evaluated as written (D x the work of a
2-D conv). It is linear, so it splits exactly into

- the left half: ``L`` is the same on every plane, so it is a 2-D conv of L with the kernel summed over
  the three plane taps (minus the missing tap on the first and last plane);
- the right half: convolution commutes with the shift, so it is three 2-D convs of R (one per plane
  tap), each added shifted by its plane's disparity, plus a one-column correction where the volume
  cuts R off at the right border.

:class:`CostVolumeStem` does that: a handful of 2-D convs at 1/3 resolution instead of a 3-D conv over
``D`` planes, the same function up to float rounding (tested against :func:`concat_volume` followed by
``F.conv3d``, values and gradients).
"""

from __future__ import annotations

import numba
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from eventstereo.model.ops import (
    ConvBN,
    _bn_trains,
    _run_bn,
    _sources,
    call_forward_hooks,
    conv2d,
    derived,
    prepared,
)
from eventstereo.snn.fused import run_parallel


def concat_volume(left: Tensor, right: Tensor, planes: int) -> Tensor:
    """Reference volume (N, D, 2C, H, W) from (N, C, H, W) features: plane d = [L, R shifted by d]."""
    n, c, h, w = left.shape
    vol = left.new_zeros(n, planes, 2 * c, h, w)
    vol[:, :, :c] = left.unsqueeze(1)
    for d in range(min(planes, w)):
        vol[:, d, c:, :, d:] = right[..., : w - d]
    return vol


def volume_conv3d(left: Tensor, right: Tensor, planes: int, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``conv3d(concat_volume(left, right, planes), weight, bias, padding=1)`` in (N, D, C', H, W) layout,
    computed with 2-D convolutions only (see the module docstring)."""
    n, c, h, w = left.shape
    if weight.shape[1] != 2 * c or weight.shape[2:] != (3, 3, 3):
        raise ValueError(f"weight {tuple(weight.shape)} does not fit features with {c} channels")
    co = weight.shape[0]
    # channels-last throughout: faster 2-D convs, and a volume the neuron and the next layer read as is
    left = left.contiguous(memory_format=torch.channels_last)
    right = right.contiguous(memory_format=torch.channels_last)
    # left half: one conv for the summed kernel and the two taps missing on the end planes
    w_left, w_right, w_edge = derived(weight, "volume", _volume_weights)
    a = conv2d(left, w_left, padding=1)
    # right half: each plane tap kd, evaluated at x0 = -1 .. w-1 (one extra column on the left)
    b = conv2d(F.pad(right, (2, 1, 1, 1)), w_right)
    # the right-most kernel column alone: what the border cut removes from the last output column
    edge = conv2d(right, w_edge, padding=(1, 0))
    if _assemble_in_one_pass(a):
        return _assemble_nb(a, b, edge, bias, planes)
    a_all, a_first_missing, a_last_missing = a.split(co, dim=1)
    b = b.split(co, dim=1)
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


def _volume_weights(weight: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The 2-D weights of :func:`volume_conv3d`: the left half summed over plane taps with the two end
    taps, the right half per tap, and its right-most kernel column per tap."""
    c = weight.shape[1] // 2
    wl, wr = weight[:, :c], weight[:, c:]
    return (torch.cat([wl.sum(2), wl[:, :, 0], wl[:, :, 2]]), torch.cat([wr[:, :, k] for k in range(3)]),
            torch.cat([wr[:, :, k, :, 2:3] for k in range(3)]))


def _assemble_in_one_pass(a: Tensor) -> bool:
    return (not torch.is_grad_enabled() and a.device.type == "cpu"
            and a.dtype in (torch.float32, torch.float64))


@numba.njit(nogil=True, cache=True, boundscheck=False)
def _assemble_rows(A, B, E, bias, out, start, stop):  # pragma: no cover - compiled
    """Rows [start, stop) of the (N * D * H) output rows of ``out`` (N, D, H, W, C'), channels innermost:
    exactly the additions of the torch loop in :func:`volume_conv3d`, in its order, one pass."""
    n_planes, h, w, co = out.shape[1], out.shape[2], out.shape[3], out.shape[4]
    for row in range(start, stop):
        n = row // (n_planes * h)
        d = (row // h) % n_planes
        y = row % h
        for x in range(w):
            o = out[n, d, y, x]
            a = A[n, y, x]
            for c in range(co):
                v = a[c] + bias[c]
                if d == 0:
                    v -= a[co + c]
                if d == n_planes - 1:
                    v -= a[2 * co + c]
                for k in range(3):
                    src = d + k - 1
                    if src < 0 or src >= n_planes or src > w:
                        continue
                    if src == 0:
                        v += B[n, y, x + 1, k * co + c]
                    elif x >= src - 1:
                        v += B[n, y, x - src + 1, k * co + c]
                        if x == w - 1:
                            v -= E[n, y, w - src, k * co + c]
                o[c] = v


def _assemble_nb(a: Tensor, b: Tensor, edge: Tensor, bias: Tensor | None, planes: int) -> Tensor:
    """The volume from the three conv results in one pass (inference on CPU): the torch loop adds 3 x D
    shifted planes one kernel call each."""
    n, co3, h, w = a.shape
    co = co3 // 3
    vol = a.new_empty(n, planes, h, w, co)
    bias = a.new_zeros(co) if bias is None else bias.to(a.dtype)

    def nhwc(t: Tensor) -> np.ndarray:
        return t.detach().permute(0, 2, 3, 1).numpy()  # a view for the channels-last conv outputs

    run_parallel(_assemble_rows, n * planes * h, w * co * 4, nhwc(a), nhwc(b), nhwc(edge),
                 bias.detach().contiguous().numpy(), vol.numpy())
    return vol.permute(0, 1, 4, 2, 3)


class CostVolumeStem(ConvBN):
    """``matching.stem0``: BN(conv3x3x3(concat volume)) -> neuron, the volume never materialised.

    Parameters are those of an ``nn.Conv3d(2C, C', 3)`` on the volume plus a BatchNorm3d, so the layer
    folds and counts like any 3-D conv (forward hooks of ``conv`` see the volume and the output).
    """

    def __init__(self, c_feat: int, c_out: int, neuron: nn.Module):
        super().__init__(2 * c_feat, c_out, 3, dim=3)
        self.neuron = neuron

    def forward(self, left: Tensor, right: Tensor, planes: int) -> Tensor:  # type: ignore[override]
        """The current (N, D, C', H, W); the caller fires ``self.neuron`` (it owns the step layout)."""
        train_bn = _bn_trains(self.bn)
        if train_bn:
            weight, bias = self.conv.weight, self.conv.bias
        else:
            weight, bias = prepared(self, "folded", _sources(self), self.folded)
        y = volume_conv3d(left, right, planes, weight, bias)
        if self.conv._forward_hooks:
            call_forward_hooks(self.conv, (concat_volume(left, right, planes),), y)
        if train_bn:
            y = _run_bn(self.bn, y.flatten(0, 1)).unflatten(0, y.shape[:2])
        return y
