"""SpikeDHS-Stereo: the streaming spiking stereo network built from a genotype (REFERENCE §6).

Structure (F = filter multiplier, n = nodes per cell, level l = 1/(3 * 2**l) of the input resolution):

- feature net (shared by left and right, run once on both as one batch): ``stem0`` conv3x3 stride 3 on
  the SBT frames (non-overlapping 3x3 patches, a learned space-to-depth) -> nF, ``stem1`` conv3x3 nF ->
  nF, then one cell per path entry, then ``last`` conv1x1 -> nF spikes at level 0;
- concatenation cost volume at level 0 with ``(max_disparity + 1) // 3`` planes (disparities 0, 3, ...);
- matching net: ``stem0`` conv3x3x3 2nF -> nF on the volume (computed without building it, see
  costvolume.py), ``stem1`` conv3x3x3 nF -> nF, one 3-D cell per path entry, ``reduce`` conv1x1x1 ->
  nF when the path ends below level 0, and ``head`` conv3x3x3 -> 1: a real-valued cost at level 0
  (no BN, no neuron: it is the read-out);
- the cost is interpolated to all ``max_disparity + 1`` planes (linearly along disparity, plane k of
  level 0 being disparity 3k, clamped beyond the last) and to full resolution (bilinear x3, pixel centres
  aligned with the stride-3 patches). A fixed interpolation of the final cost costs nothing to learn and
  keeps all learned layers at 1/3 resolution; a transposed conv would add parameters and 9x the work at
  full resolution for no benefit the sub-pixel loss cannot already get from the smooth interpolation.

Each conv feeds a BN and a neuron; cells mix at the membrane (ops.py). Resolution changes inside the
nets are nearest (keep maps binary): downsampling keeps every second plane/row/column, upsampling repeats.
A layer whose output is only read at coarser levels is computed only there (same values, less work).

Streaming: ``step(left, right)`` takes one window (B, C, H, W) per view and keeps all neuron state for
the next call; ``forward(left_seq, right_seq)`` takes (T, B, C, H, W) and runs each layer over all T
steps at once (the neurons' multi-step path), which gives the same output as T calls of ``step``.
H and W are padded (zeros, right/bottom) to ``genotype.resolution_multiple`` and cropped back.

Paper channel setting: F = 8 (n = 3) gives 868,033 parameters here (866,305 without BN), the paper's
0.87M, so the published genotype ships with F = 8. The bundled demo model is narrower and shallower
(its genotype: tools/configs/demo_genotype.json).

Speed: ``eventstereo bench stream`` (bench/stream.py) times the demo and the paper-size network through
the streaming loop, against the forward as it was before issue 15 (bench/_baseline.py) in the same run.
The work is in the 3-D cells at 1/6 and 1/12 resolution; the layers at 1/3 resolution are 2-D or
computed only where they are read. In inference the weights are folded and transformed once per model
(ops.prepared / ops.derived, recomputed when they change), the neurons update their state in place,
3-D maps keep channels innermost in memory from layer to layer, and the x2 phase convs and the cost
volume write their outputs in one pass. A level-0 read-out (``head``) convolves each plane once with
its three plane taps as output channels instead of stacking planes (ops.conv3d_few_outputs), and a
level-1 read-out each coarse plane once with its five x2 plane-tap sums as output channels instead of
phase convs of stacked plane pairs with 4 outputs (ops.conv3d_up2_few_outputs, 1.4-1.6x on that layer):
both within float rounding; every layer a neuron thresholds keeps the stacked conv, so spikes stay bit
for bit. The
convolutions themselves are about 55-60 % of a paper-size window on one CPU thread (about 95 GMAC/s,
near what oneDNN reaches here); most of the rest is memory-bound: plane stacks, neuron state, the MAP
estimator. Measured and not kept (issue 15): a pool of reused buffers removed all ~12k page faults
per window but ran 4 % slower (reused buffers are cold in cache, fresh pages come zeroed and hot);
prepacked oneDNN weights (torch.ops.mkldnn) saved 15-170 us per call but did not give the same sums on
every shape; the taps-as-outputs conv for layers that feed neurons changes rounding and is only
faster below 5 output channels; assembling the cost volume and firing its neuron in one pass saved
1-2 %; viewing runs of 4-8 channels as complex128 / float64 elements for the copies (plane stacks,
cell concatenation, phase-conv interleave) was faster alone at 4 channels and 1-3 % slower in the
window. A matching path whose deepest level keeps fewer than MIN_USEFUL_PLANES disparity planes gets a
warning from the builder.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from eventstereo.model.costvolume import CostVolumeStem
from eventstereo.model.genotype import (
    DEFAULT_GENOTYPE,
    STEM_STRIDE,
    ClassifierGenotype,
    NetGenotype,
    NeuronSettings,
    StereoGenotype,
    edge_endpoints,
    layer_temperature,
    level_planes,
    load_genotype,
    neuron_layer_names,
)
from eventstereo.model.ops import (
    OPS,
    ConvBN,
    call_forward_hooks,
    conv3d_few_outputs,
    conv3d_up2_few_outputs,
    conv_currents,
    conv_nd,
    conv_nd_up2,
    upsample2,
)
from eventstereo.snn.neurons import BaseNeuron, NeuronSpec, detach_net, make_neuron, reset_net, set_step_mode

MIN_USEFUL_PLANES = 3
"""Fewer disparity planes than this at the matching net's deepest level carry too little to match on:
the published path [1, 2, 2, 1] at max disparity 23 keeps 2 at level 2, and training learned to ignore it."""


def fire(neuron: nn.Module, current: Tensor, steps: int) -> Tensor:
    """Run a neuron on a current whose batch dimension holds ``steps`` time steps (step-major).

    3-D currents (N, D, C, H, W) are handed to the neuron as (N, D, H, W, C): the 3-D convolutions
    produce channels-innermost memory, so that is a free view, and the spikes come back in the layout
    the next convolution reads fastest. (The neuron state is kept in that order too.)
    """
    volume = current.dim() == 5
    if volume:
        current = current.permute(0, 1, 3, 4, 2)
    if getattr(neuron, "step_mode", "s") == "m":
        out = neuron(current.unflatten(0, (steps, -1))).flatten(0, 1)
    else:
        out = neuron(current)
    return out.permute(0, 1, 4, 2, 3) if volume else out


class ConvBNSpike(ConvBN):
    """A plain spiking layer: conv -> BN -> ``neuron`` (named ``<layer>.neuron``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dim: int, spec: NeuronSpec, *, stride: int = 1,
                 padding: int | None = None):
        super().__init__(c_in, c_out, kernel, dim, stride=stride, padding=padding)
        self.neuron = make_neuron(spec)

    def forward(self, x: Tensor, steps: int = 1, *, stride: int | None = None) -> Tensor:  # type: ignore[override]
        return fire(self.neuron, conv_currents([self], x, stride=stride)[0], steps)


class Cell(nn.Module):
    """A fixed cell: each node sums the currents of its edges into one membrane and spikes once.

    Edge ops live in ``edges[str(edge_index)]``, node neurons are ``node0 .. node{n-1}``; the output is
    the concatenation of all node spikes (n x c_node channels). The cell calls whatever op an edge holds;
    only the ConvBN modules of ops the op table marks ``fusable`` are grouped, and the conv edges of one
    group that read the same input (s0, s1 or a node) run as one convolution
    (:func:`eventstereo.model.reference.reference_cell` is the plain evaluation it is tested against).
    """

    def __init__(self, net: NetGenotype, nodes: int, c_s0: int, c_s1: int, c_node: int, dim: int,
                 specs: Sequence[NeuronSpec]):
        super().__init__()
        self.nodes = nodes
        self.dim = dim
        self.c_node = c_node
        self.edges = nn.ModuleDict()
        fusable: set[str] = set()
        for edge, op in sorted(net.cell):
            src, _ = edge_endpoints(edge)
            c_in = (c_s0, c_s1)[src] if src < 2 else c_node
            module = OPS[op](c_in, c_node, dim=dim, external=src < 2)
            self.edges[str(edge)] = module
            if OPS[op].fusable and isinstance(module, ConvBN):
                fusable.add(str(edge))
        for j, spec in enumerate(specs):
            self.add_module(f"node{j}", make_neuron(spec))
        # execution plan: per source, groups of edge keys that run together, and their target nodes
        self._plan: list[list[tuple[str, list[tuple[str, int]]]]] = [[] for _ in range(nodes + 2)]
        groups: dict[tuple[int, Any], list[tuple[str, int]]] = {}
        for edge, _ in sorted(net.cell):
            src, tgt = edge_endpoints(edge)
            key = str(edge)
            op = self.edges[key]
            kind = ("conv", op.kernel) if key in fusable else ("call", key)
            groups.setdefault((src, kind), []).append((key, tgt))
        for (src, kind), members in groups.items():
            self._plan[src].append((kind[0], members))

    def _feed(self, src: int, x: Tensor, acc: list[Tensor | None], up2: bool = False,
              planes: int | None = None, stride: int = 1) -> None:
        for kind, members in self._plan[src]:
            if kind == "conv":
                ops = [self.edges[key] for key, _ in members]
                stride_or_none = None if stride == 1 else stride
                currents = conv_currents(ops, x, up2=up2, planes=planes, stride=stride_or_none)
            else:
                (key, _), = members
                currents = [_call_op(self.edges[key], x, up2, planes, stride)]
            for (_, tgt), cur in zip(members, currents):
                acc[tgt] = cur if acc[tgt] is None else acc[tgt] + cur

    def forward(self, s0: Tensor, s1: Tensor, steps: int = 1, *, up2: tuple[bool, bool] = (False, False),
                planes: int | None = None, stride: tuple[int, int] = (1, 1)) -> Tensor:
        """Spikes of all nodes, concatenated. ``up2[i]``: input i is one level coarser than the cell
        and is read nearest-upsampled x2 (to ``planes`` disparity planes in 3-D) without building it.
        ``stride[i]``: input i is finer than the cell and its edges' currents are taken at every
        stride-th position (a reduction cell; with BN in training mode its statistics are those of the
        positions taken, for fused ops)."""
        acc: list[Tensor | None] = [None] * self.nodes
        self._feed(0, s0, acc, up2[0], planes, stride[0])
        self._feed(1, s1, acc, up2[1], planes, stride[1])
        outs = []
        for j in range(self.nodes):
            spikes = fire(getattr(self, f"node{j}"), acc[j], steps)
            outs.append(spikes)
            self._feed(2 + j, spikes, acc)
        if self.dim == 2:
            return torch.cat(outs, dim=1)
        # concatenated with channels innermost in memory (a plain cat along dim 2 would give channel-major
        # memory, which every following 3-D conv, plane stack and neuron then has to transpose)
        return torch.cat([o.permute(0, 1, 3, 4, 2) for o in outs], dim=-1).permute(0, 1, 4, 2, 3)


def _call_op(op: nn.Module, x: Tensor, up2: bool, planes: int | None, stride: int) -> Tensor:
    """An op that is not fused, called as a module on its (resampled) input."""
    if up2:
        x = upsample2(x, planes)
    y = op(x)
    return y[..., ::stride, ::stride] if stride > 1 else y


def resample2d(x: Tensor, src: int, dst: int) -> Tensor:
    """Nearest resampling of (N, C, H, W) from level ``src`` to ``dst`` (keep every 2**k-th row and
    column going down, repeat going up): binary maps stay binary."""
    if dst > src:
        f = 2 ** (dst - src)
        return x[..., ::f, ::f]
    if dst < src:
        return F.interpolate(x, scale_factor=2 ** (src - dst), mode="nearest")
    return x


def resample3d(x: Tensor, src: int, dst: int, planes: Sequence[int]) -> Tensor:
    """Nearest resampling of (N, D, C, H, W) between levels; ``planes[l]`` = disparity planes at l."""
    if dst > src:
        f = 2 ** (dst - src)
        return x[:, ::f, :, ::f, ::f]
    if dst < src:
        f = 2 ** (src - dst)
        x = x.repeat_interleave(f, dim=1)[:, : planes[dst]]
        n, d = x.shape[:2]
        return F.interpolate(x.flatten(0, 1), scale_factor=f, mode="nearest").unflatten(0, (n, d))
    return x


def cell_input2d(x: Tensor, src: int, dst: int) -> tuple[Tensor, bool]:
    """A cell input at level ``dst``: resampled, or left one level coarser for the fused x2 path
    (the bool says which: pass it as the cell's ``up2``)."""
    return (x, True) if src == dst + 1 else (resample2d(x, src, dst), False)


def cell_input3d(x: Tensor, src: int, dst: int, planes: Sequence[int]) -> tuple[Tensor, bool]:
    """:func:`cell_input2d` for (N, D, C, H, W) maps."""
    return (x, True) if src == dst + 1 else (resample3d(x, src, dst, planes), False)


def _stem1_level(path: Sequence[int]) -> int:
    """The coarsest level at which stem1's output is still read in full (by cell0 as s1, cell1 as s0)."""
    return min(path[:2])


class FeatureNet(nn.Module):
    """2-D spiking feature extractor at 1/3 resolution (shared by both views)."""

    def __init__(self, g: StereoGenotype, specs: dict[str, NeuronSpec]):
        super().__init__()
        f, n = g.filter_multiplier, g.nodes
        self.path = tuple(g.feature.path)
        self.stem0 = ConvBNSpike(g.in_channels, n * f, STEM_STRIDE, 2, specs["feature.stem0.neuron"],
                                 stride=STEM_STRIDE, padding=0)
        self.stem1 = ConvBNSpike(n * f, n * f, 3, 2, specs["feature.stem1.neuron"])
        widths = [(n * f, 0), (n * f, 0)]  # (channels, level) of the two previous layers
        for i, level in enumerate(self.path):
            c_node = f * 2**level
            node_specs = [specs[f"feature.cell{i}.node{j}"] for j in range(n)]
            cell = Cell(g.feature, n, widths[-2][0], widths[-1][0], c_node, 2, node_specs)
            self.add_module(f"cell{i}", cell)
            widths.append((n * c_node, level))
        self.last = ConvBNSpike(widths[-1][0], n * f, 1, 2, specs["feature.last.neuron"])
        self.out_channels = n * f

    def forward(self, x: Tensor, steps: int) -> Tensor:
        a = self.stem0(x, steps)
        stem1_level = _stem1_level(self.path)
        b = self.stem1(a, steps, stride=2**stem1_level)
        prev_prev, prev = (a, 0), (b, stem1_level)
        for i, level in enumerate(self.path):
            (s0, up0), (s1, up1) = cell_input2d(*prev_prev, level), cell_input2d(*prev, level)
            out = getattr(self, f"cell{i}")(s0, s1, steps, up2=(up0, up1))
            prev_prev, prev = prev, (out, level)
        y = self.last(prev[0], steps)
        return resample2d(y, prev[1], 0)


class MatchingNet(nn.Module):
    """3-D spiking matching net on the cost volume; returns the level-0 cost (N, D0, H/3, W/3)."""

    def __init__(self, g: StereoGenotype, specs: dict[str, NeuronSpec], c_feat: int):
        super().__init__()
        f, n = g.filter_multiplier, g.nodes
        self.path = tuple(g.matching.path)
        self.level_planes = level_planes(g.max_disparity)  # [0] is the cost volume's plane count
        self.stem0 = CostVolumeStem(c_feat, n * f, make_neuron(specs["matching.stem0.neuron"]))
        self.stem1 = ConvBNSpike(n * f, n * f, 3, 3, specs["matching.stem1.neuron"])
        widths = [n * f, n * f]
        for i, level in enumerate(self.path):
            c_node = f * 2**level
            node_specs = [specs[f"matching.cell{i}.node{j}"] for j in range(n)]
            self.add_module(f"cell{i}", Cell(g.matching, n, widths[-2], widths[-1], c_node, 3, node_specs))
            widths.append(n * c_node)
        if self.path[-1] != 0:
            self.reduce = ConvBNSpike(widths[-1], n * f, 1, 3, specs["matching.reduce.neuron"])
        self.head = nn.Conv3d(n * f, 1, 3, padding=1, bias=True)

    def forward(self, left: Tensor, right: Tensor, steps: int) -> Tensor:
        planes = self.level_planes
        a = fire(self.stem0.neuron, self.stem0(left, right, planes[0]), steps)
        stem1_level = _stem1_level(self.path)
        b = self.stem1(a, steps, stride=2**stem1_level)
        prev_prev, prev = (a, 0), (b, stem1_level)
        for i, level in enumerate(self.path):
            s0, up0 = cell_input3d(*prev_prev, level, planes)
            s1, up1 = cell_input3d(*prev, level, planes)
            out = getattr(self, f"cell{i}")(s0, s1, steps, up2=(up0, up1), planes=planes[level])
            prev_prev, prev = prev, (out, level)
        y, level = prev
        if level == 0:
            if torch.is_grad_enabled():
                cost = conv_nd(y, self.head.weight, self.head.bias)  # (N * D0, 1, h, w)
            else:  # a read-out, thresholded by no neuron: the faster sum within float rounding
                cost = conv3d_few_outputs(y, self.head.weight, self.head.bias)
        else:  # the head reads the reduced map nearest-upsampled to level 0: do that at level 1
            y = resample3d(self.reduce(y, steps), level, 1, planes)
            if torch.is_grad_enabled():
                cost = conv_nd_up2(y, self.head.weight, self.head.bias, planes[0])
            else:  # a read-out again: every plane tap as an output channel, within float rounding
                cost = conv3d_up2_few_outputs(y, self.head.weight, self.head.bias, planes[0])
        if self.head._forward_hooks:
            call_forward_hooks(self.head, (resample3d(y, level and 1, 0, planes),), cost)
        n = y.shape[0]
        return cost.view(n, planes[0], cost.shape[-2], cost.shape[-1])


def disparity_interpolation(max_disparity: int, planes: int, *, dtype: torch.dtype = torch.float32,
                            device: torch.device | str | None = None) -> Tensor:
    """(max_disparity + 1, planes) matrix: full plane d reads level-0 plane d / 3 linearly (clamped)."""
    pos = (torch.arange(max_disparity + 1, dtype=torch.float64) / STEM_STRIDE).clamp(max=planes - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=planes - 1)
    frac = pos - lo
    m = torch.zeros(max_disparity + 1, planes, dtype=torch.float64)
    m.scatter_add_(1, lo[:, None], (1 - frac)[:, None])
    m.scatter_add_(1, hi[:, None], frac[:, None])
    return m.to(dtype=dtype, device=device)


def current_neuron_settings(model: nn.Module, g: StereoGenotype | ClassifierGenotype) -> NeuronSettings:
    """The neuron settings of ``model`` (built from ``g``) as they are now: every layer whose spec
    differs from the genotype default (with its op's temperature) becomes an override."""
    default = g.neurons.default
    base = NeuronSettings(default=default)
    overrides = {}
    for name, m in model.named_modules():
        if isinstance(m, BaseNeuron) and m.spec != base.spec_for(name, layer_temperature(g, name)):
            overrides[name] = m.spec
    return NeuronSettings(default=default, overrides=overrides)


class SpikeDHSStereo(nn.Module):
    """The stereo network of one genotype; see the module docstring for structure and streaming."""

    def __init__(self, genotype: StereoGenotype):
        super().__init__()
        self.genotype = genotype
        self.max_disparity = genotype.max_disparity
        self.in_channels = genotype.in_channels
        names = neuron_layer_names(genotype)
        specs = {name: genotype.neurons.spec_for(name, layer_temperature(genotype, name)) for name in names}
        self.feature = FeatureNet(genotype, specs)
        self.matching = MatchingNet(genotype, specs, self.feature.out_channels)
        self._interp: dict[tuple[torch.dtype, torch.device], Tensor] = {}
        self._step_mode = "s"
        set_step_mode(self, "s")

    @property
    def num_disparities(self) -> int:
        return self.max_disparity + 1

    def neuron_specs(self) -> dict[str, NeuronSpec]:
        """The spec each spiking layer runs with now (TPS/DGS/HNS may have changed them)."""
        return {name: m.spec for name, m in self.named_modules() if isinstance(m, BaseNeuron)}

    def current_genotype(self) -> StereoGenotype:
        """The genotype with the neurons as they are now: every layer whose spec differs from the default
        (with its op's temperature) becomes an override, so saving and rebuilding gives the same net."""
        return self.genotype.with_changes(neurons=current_neuron_settings(self, self.genotype))

    def reset(self) -> None:
        """Forget all neuron state (new sequence, seek, gap, or a change of input size)."""
        reset_net(self)

    def detach(self) -> None:
        """Keep the neuron state but cut its autograd history (truncated BPTT between chunks)."""
        detach_net(self)

    def _set_mode(self, mode: str) -> None:
        if self._step_mode != mode:
            set_step_mode(self, mode)
            self._step_mode = mode

    def _check(self, left: Tensor, right: Tensor, ndim: int, what: str) -> None:
        if left.shape != right.shape:
            raise ValueError(f"{what}: left {tuple(left.shape)} and right {tuple(right.shape)} differ")
        if left.dim() != ndim or left.shape[-3] != self.in_channels:
            dims = "(T, B, C, H, W)" if ndim == 5 else "(B, C, H, W)"
            raise ValueError(f"{what} expects {dims} SBT frames with C={self.in_channels}, "
                             f"got {tuple(left.shape)}")

    def _run(self, left: Tensor, right: Tensor, steps: int) -> Tensor:
        """Inputs (steps * B, C, H, W) step-major; returns the cost (steps * B, D, H, W)."""
        h, w = left.shape[-2:]
        m = self.genotype.resolution_multiple
        ph, pw = (-h) % m, (-w) % m
        both = torch.stack([left, right]).unflatten(1, (steps, -1)).transpose(0, 1)  # (steps, 2, B, ...)
        both = both.flatten(0, 2)
        if ph or pw:
            both = F.pad(both, (0, pw, 0, ph))
        feats = self.feature(both, steps).unflatten(0, (steps, 2, -1))
        fl, fr = feats[:, 0].flatten(0, 1), feats[:, 1].flatten(0, 1)
        cost = self.matching(fl, fr, steps)  # (N, D0, h3, w3)
        key = (cost.dtype, cost.device)
        if key not in self._interp:
            self._interp[key] = disparity_interpolation(self.max_disparity, self.genotype.disparity_planes,
                                                        dtype=cost.dtype, device=cost.device)
        # (N, h, w, D0) @ (D0, D) gives the planes innermost: a channels-last (N, D, h, w) tensor, the
        # layout in which CPU bilinear upsampling is fastest (several x) and per-pixel reductions too
        cost = torch.matmul(cost.permute(0, 2, 3, 1), self._interp[key].t()).permute(0, 3, 1, 2)
        cost = F.interpolate(cost, scale_factor=STEM_STRIDE, mode="bilinear", align_corners=False)
        return cost[..., :h, :w]

    def step(self, left: Tensor, right: Tensor) -> Tensor:
        """One window: SBT frames (B, C, H, W) per view -> cost (B, D, H, W), higher = more likely.

        The neuron state carries over to the next call; call ``reset()`` to start a new sequence.
        The cost's memory layout is channels-last (planes innermost; ``.contiguous()`` if you need NCHW).
        """
        self._check(left, right, 4, "step")
        self._set_mode("s")
        return self._run(left, right, 1)

    def forward(self, left_seq: Tensor, right_seq: Tensor) -> Tensor:
        """T windows at once: (T, B, C, H, W) per view -> cost (T, B, D, H, W); continues the state.

        In eval mode this equals T calls of ``step``. In training mode BatchNorm takes its statistics
        over all T x B windows of the call (the usual multi-step SNN training).
        """
        self._check(left_seq, right_seq, 5, "forward")
        t, b = left_seq.shape[:2]
        self._set_mode("m")
        cost = self._run(left_seq.flatten(0, 1), right_seq.flatten(0, 1), t)
        return cost.unflatten(0, (t, b))


def build_stereo_model(
    genotype: StereoGenotype | str | None = None,
    *,
    filter_multiplier: int | None = None,
    max_disparity: int | None = None,
    in_channels: int | None = None,
    neuron: NeuronSpec | dict | None = None,
) -> SpikeDHSStereo:
    """Build SpikeDHS-Stereo from a genotype (default: the published one, or a name / JSON path).

    Keyword overrides replace the genotype's width, disparity range, input channels or default neuron;
    the model's ``genotype`` records the result, so a saved model rebuilds exactly.
    """
    g = load_genotype(DEFAULT_GENOTYPE if genotype is None else genotype)
    changes: dict[str, Any] = {}
    if filter_multiplier is not None:
        changes["filter_multiplier"] = filter_multiplier
    if max_disparity is not None:
        changes["max_disparity"] = max_disparity
    if in_channels is not None:
        changes["in_channels"] = in_channels
    if neuron is not None:
        spec = neuron if isinstance(neuron, NeuronSpec) else NeuronSpec.from_dict(neuron)
        changes["neurons"] = NeuronSettings(default=spec, overrides=g.neurons.overrides)
    if changes:
        g = g.with_changes(**changes)
    deepest = max(g.matching.path)
    coarsest = level_planes(g.max_disparity)[deepest]
    if coarsest < MIN_USEFUL_PLANES:
        warnings.warn(
            f"genotype {g.name!r}: at max disparity {g.max_disparity} the matching path's level {deepest} "
            f"keeps only {coarsest} disparity plane(s); training tends to learn to ignore such a level. "
            f"Raise max_disparity or use a shallower matching path.", UserWarning, stacklevel=2)
    return SpikeDHSStereo(g)
