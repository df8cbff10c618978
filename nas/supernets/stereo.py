"""The stereo supernet (REFERENCE §6, the paper's §5.2): SpikeDHS-Stereo with searchable nets.

It IS a :class:`eventstereo.model.network.SpikeDHSStereo` (same stepping, padding, cost interpolation to
all disparities and full resolution, so the same sub-pixel loss and estimator apply and
``eventstereo.training.loop.train_sequence`` trains it), whose feature and matching nets are layer
trellises (:class:`nas.space.Trellis`, 4 levels, up / stay / down) of searchable 3-node cells
(:class:`nas.space.SearchCell`, 2-D and 3-D) around eventstereo's concatenation cost volume:

- feature net: ``stem0`` conv3x3 stride 3 and ``stem1`` conv3x3 (as deployed), a 2-D trellis of
  ``feature_layers`` layers, and per level a 1x1 ``last`` to nF spikes brought back to level 0; the
  levels the last layer reaches are averaged (the search does not know yet where the path ends);
- matching net: :class:`eventstereo.model.costvolume.CostVolumeStem` on the left/right features, a 3-D
  conv ``stem1``, a 3-D trellis of ``matching_layers`` layers, per level below 0 a 1x1x1 ``reduce`` to
  nF, resampled to level 0 and averaged with level 0's output, and the deployed real-valued ``head``.

One set of alphas per net (``feature.alphas`` 2-D, ``matching.alphas`` 3-D) is shared by all its cells,
as in the published genotype (one cell per net); each trellis has its own betas. :meth:`decode` turns
them into an eventstereo :class:`StereoGenotype` with nas.decode's functions, which
``build_stereo_model`` builds and ``tools/train_stereo.py --genotype`` retrains as is.

``self.genotype`` is the supernet's *frame*: a genotype with its widths and disparity range whose paths
reach the trellises' deepest levels, which is all the shared streaming code reads from it (padding
multiple, disparity planes). The searched architecture is :meth:`decode`, never the frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from eventstereo.model.costvolume import CostVolumeStem
from eventstereo.model.genotype import STEM_STRIDE, NetGenotype, NeuronSettings, StereoGenotype, level_planes
from eventstereo.model.network import ConvBNSpike, SpikeDHSStereo, fire, resample2d, resample3d
from eventstereo.model.ops import PRIMITIVES
from eventstereo.snn.neurons import NeuronSpec, make_neuron, set_step_mode
from nas.decode import decode_cell, stereo_genotype
from nas.space import ArchMixin, SearchCell, Trellis, init_alphas

PAPER_LAYERS = {"feature_layers": 2, "matching_layers": 4}
"""The paper's trellis depths (§5.2)."""


def _cell_factory(nodes: int, f: int, dim: int, mixing: str, spec: NeuronSpec):
    def make(level: int, c_s0: int, c_s1: int) -> SearchCell:
        return SearchCell(nodes, c_s0, c_s1, f * 2**level, dim, mixing=mixing, spec=spec)
    return make


def _reached_levels(trellis: Trellis) -> list[int]:
    return [s for s in range(trellis.levels) if bool(trellis.transition_mask()[-1, s].any())]


class SearchFeatureNet(nn.Module):
    """2-D feature trellis; ``forward(x, steps)`` -> (N, nF, H/3, W/3) at level 0, as FeatureNet."""

    def __init__(self, *, in_channels: int, f: int, nodes: int, layers: int, mixing: str, spec: NeuronSpec):
        super().__init__()
        c = nodes * f
        self.stem0 = ConvBNSpike(in_channels, c, STEM_STRIDE, 2, spec, stride=STEM_STRIDE, padding=0)
        self.stem1 = ConvBNSpike(c, c, 3, 2, spec)
        self.trellis = Trellis(layers, c, lambda s: nodes * f * 2**s,
                               _cell_factory(nodes, f, 2, mixing, spec), dim=2, allow_up=True)
        self.alphas = init_alphas(nodes)
        self.levels = _reached_levels(self.trellis)
        self.last = nn.ModuleDict({str(s): ConvBNSpike(nodes * f * 2**s, c, 1, 2, spec) for s in self.levels})
        self.out_channels = c

    def forward(self, x: Tensor, steps: int) -> Tensor:
        b = self.stem1(self.stem0(x, steps), steps)
        outs = self.trellis(b, F.softmax(self.alphas, dim=-1), steps)
        ys = [resample2d(self.last[str(s)](outs[s], steps), s, 0) for s in self.levels]
        return torch.stack(ys).mean(0)


class SearchMatchingNet(nn.Module):
    """3-D matching trellis on the cost volume; ``forward(left, right, steps)`` -> level-0 cost
    (N, D0, H/3, W/3), as MatchingNet."""

    def __init__(self, *, c_feat: int, f: int, nodes: int, layers: int, max_disparity: int, mixing: str,
                 spec: NeuronSpec):
        super().__init__()
        c = nodes * f
        self.level_planes = level_planes(max_disparity)
        self.stem0 = CostVolumeStem(c_feat, c, make_neuron(spec))
        self.stem1 = ConvBNSpike(c, c, 3, 3, spec)
        self.trellis = Trellis(layers, c, lambda s: nodes * f * 2**s,
                               _cell_factory(nodes, f, 3, mixing, spec), dim=3, allow_up=True)
        self.alphas = init_alphas(nodes)
        self.levels = _reached_levels(self.trellis)
        self.reduce = nn.ModuleDict({str(s): ConvBNSpike(nodes * f * 2**s, c, 1, 3, spec)
                                     for s in self.levels if s > 0})
        self.head = nn.Conv3d(c, 1, 3, padding=1, bias=True)

    def forward(self, left: Tensor, right: Tensor, steps: int) -> Tensor:
        planes = self.level_planes
        a = fire(self.stem0.neuron, self.stem0(left, right, planes[0]), steps)
        b = self.stem1(a, steps)
        outs = self.trellis(b, F.softmax(self.alphas, dim=-1), steps, planes)
        ys = [outs[s] if s == 0 else resample3d(self.reduce[str(s)](outs[s], steps), s, 0, planes)
              for s in self.levels]
        y = torch.stack(ys).mean(0)  # (N, D0, C, h, w)
        n, d = y.shape[:2]
        cost = self.head(y.transpose(1, 2))  # Conv3d reads (N, C, D, h, w)
        return cost.view(n, d, cost.shape[-2], cost.shape[-1])


class StereoSupernet(ArchMixin, SpikeDHSStereo):
    """The searchable SpikeDHS-Stereo (see the module docstring). ``config`` rebuilds it."""

    def __init__(self, *, filter_multiplier: int = 8, nodes: int = 3, in_channels: int = 5,
                 max_disparity: int = 63, feature_layers: int = 2, matching_layers: int = 4,
                 mixing: str = "membrane", spec: NeuronSpec | None = None):
        # SpikeDHSStereo.__init__ builds fixed nets: set the attributes it sets, around searchable nets
        nn.Module.__init__(self)
        spec = spec or NeuronSpec()
        self.config = dict(filter_multiplier=filter_multiplier, nodes=nodes, in_channels=in_channels,
                           max_disparity=max_disparity, feature_layers=feature_layers,
                           matching_layers=matching_layers, mixing=mixing)
        self.spec = spec
        f = filter_multiplier
        self.feature = SearchFeatureNet(in_channels=in_channels, f=f, nodes=nodes, layers=feature_layers,
                                        mixing=mixing, spec=spec)
        self.matching = SearchMatchingNet(c_feat=self.feature.out_channels, f=f, nodes=nodes,
                                          layers=matching_layers, max_disparity=max_disparity, mixing=mixing,
                                          spec=spec)
        self.genotype = self._frame()
        self.max_disparity = max_disparity
        self.in_channels = in_channels
        self._interp: dict[tuple[torch.dtype, torch.device], Tensor] = {}
        self._step_mode = "s"
        set_step_mode(self, "s")

    def _frame(self) -> StereoGenotype:
        """Widths, disparities and the deepest paths the trellises reach (see the module docstring)."""
        def deepest(layers: int) -> tuple[int, ...]:
            return tuple(min(i + 1, 3) for i in range(layers))
        cell = decode_cell(F.softmax(self.feature.alphas.detach().double(), -1), self.config["nodes"])
        c = self.config
        return StereoGenotype(name="supernet-frame", feature=NetGenotype(deepest(c["feature_layers"]), cell),
                              matching=NetGenotype(deepest(c["matching_layers"]), cell),
                              filter_multiplier=c["filter_multiplier"], nodes=c["nodes"],
                              in_channels=c["in_channels"], max_disparity=c["max_disparity"],
                              neurons=NeuronSettings(default=self.spec))

    def decode(self, name: str = "searched") -> StereoGenotype:
        """The searched architecture as a deployable genotype (nas.decode: per node the two strongest
        non-skip edges and their argmax ops; the Viterbi path of each trellis); deterministic."""
        c = self.config
        return stereo_genotype((self.feature.alphas, self.feature.trellis.beta_weights()),
                               (self.matching.alphas, self.matching.trellis.beta_weights()),
                               nodes=c["nodes"], filter_multiplier=c["filter_multiplier"], name=name,
                               in_channels=c["in_channels"], max_disparity=c["max_disparity"],
                               neurons=NeuronSettings(default=self.spec))

    def current_genotype(self) -> StereoGenotype:  # the frame is not an architecture: never save it
        return self.decode()

    def arch_summary(self) -> dict[str, list]:
        """Softmaxed alphas and betas of both nets, for logs and checkpoints' readers."""
        return {"feature_alphas": F.softmax(self.feature.alphas.detach(), -1).tolist(),
                "matching_alphas": F.softmax(self.matching.alphas.detach(), -1).tolist(),
                "feature_betas": self.feature.trellis.beta_weights().detach().tolist(),
                "matching_betas": self.matching.trellis.beta_weights().detach().tolist(),
                "ops": list(PRIMITIVES)}


def supernet_parameters(net: nn.Module) -> Sequence[int]:
    """(weights, architecture) parameter counts."""
    arch = sum(p.numel() for p in net.arch_parameters())
    return sum(p.numel() for p in net.parameters()) - arch, arch


def stereo_search_loss(net: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
    """The deployed training loss (eventstereo.training.loop.stereo_loss) of one batch of sequences
    (``left``/``right`` (B, T, C, H, W), ``gt`` (B, T, H, W)) from a fresh state, and the mean
    disparity error (px) of the sub-pixel estimate on the scored pixels. ``net`` may be DDP-wrapped."""
    from eventstereo.stereo import subpixel_map
    from eventstereo.training.loop import stereo_loss

    model = getattr(net, "module", net)
    left, right, gt = (batch[k].transpose(0, 1) for k in ("left", "right", "gt"))
    model.reset()
    cost = net(left, right).flatten(0, 1)
    gt = gt.flatten(0, 1)
    loss = stereo_loss(cost, gt, model.max_disparity)
    with torch.no_grad():
        valid = torch.isfinite(gt) & (gt >= 0) & (gt <= model.max_disparity)
        err = (subpixel_map(cost) - gt).abs()[valid]
        px = float(err.mean()) if err.numel() else float("nan")
    return loss, {"loss": float(loss.detach()), "disparity_error_px": px}
