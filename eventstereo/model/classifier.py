"""SpikeDHS-CLA: the spiking image / event classifier built from a ClassifierGenotype (REFERENCE §6).

Structure (C = filter multiplier, n = nodes, level l = 1/2**l of the input resolution): ``stem``
conv3x3 -> stem_multiplier * C spikes; one :class:`~eventstereo.model.network.Cell` per path entry (the
cells of the stereo network, 2-D), each reading the two previous layers (both the stem for the first
cell, as in DARTS); a cell one level below its inputs is a reduction cell and reads them with stride
2 (4 for an input two levels up); the spikes of the last cell are averaged over space and a linear
layer gives the logits of each step, averaged over the T steps. With ``auxiliary`` an auxiliary head
(average pool to 2x2, conv1x1 -> 128 spikes, linear) reads cell ``2 * cells // 3``; training adds its
loss (weight 0.4 in the paper), inference ignores it.

Input: a static image (B, C, H, W), repeated ``genotype.timesteps`` times, or T frames (T, B, C, H, W)
(SBT frames of an event sample). All neurons start from rest for every sample.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from eventstereo.model.genotype import ClassifierGenotype, layer_temperature, neuron_layer_names
from eventstereo.model.network import Cell, ConvBNSpike, current_neuron_settings
from eventstereo.snn.neurons import BaseNeuron, NeuronSpec, detach_net, reset_net, set_step_mode

AUX_CHANNELS = 128


class AuxiliaryHead(nn.Module):
    """Average pool to 2x2 -> conv1x1 + BN + neuron (``aux.conv.neuron``) -> linear logits."""

    def __init__(self, c_in: int, num_classes: int, spec: NeuronSpec):
        super().__init__()
        self.conv = ConvBNSpike(c_in, AUX_CHANNELS, 1, 2, spec)
        self.fc = nn.Linear(AUX_CHANNELS * 4, num_classes)

    def forward(self, x: Tensor, steps: int) -> Tensor:
        y = self.conv(F.adaptive_avg_pool2d(x, 2), steps)
        return self.fc(y.flatten(1))


class SpikeDHSClassifier(nn.Module):
    """The classifier of one genotype; see the module docstring."""

    def __init__(self, genotype: ClassifierGenotype):
        super().__init__()
        self.genotype = g = genotype
        specs = {name: g.neurons.spec_for(name, layer_temperature(g, name)) for name in neuron_layer_names(g)}
        c_stem = g.stem_multiplier * g.filter_multiplier
        self.stem = ConvBNSpike(g.in_channels, c_stem, 3, 2, specs["stem.neuron"])
        widths = [(c_stem, 0), (c_stem, 0)]  # (channels, level) of the two previous layers
        self.aux: AuxiliaryHead | None = None
        for i, level in enumerate(g.net.path):
            c_node = g.filter_multiplier * 2**level
            node_specs = [specs[f"cell{i}.node{j}"] for j in range(g.nodes)]
            cell = Cell(g.net, g.nodes, widths[-2][0], widths[-1][0], c_node, 2, node_specs)
            self.add_module(f"cell{i}", cell)
            widths.append((g.nodes * c_node, level))
            if i == g.auxiliary_after:
                self.aux = AuxiliaryHead(g.nodes * c_node, g.num_classes, specs["aux.conv.neuron"])
        self.classifier = nn.Linear(widths[-1][0], g.num_classes)
        set_step_mode(self, "m")

    @property
    def num_classes(self) -> int:
        return self.genotype.num_classes

    def neuron_specs(self) -> dict[str, NeuronSpec]:
        """The spec each spiking layer runs with now (TPS/DGS/HNS may have changed them)."""
        return {name: m.spec for name, m in self.named_modules() if isinstance(m, BaseNeuron)}

    def current_genotype(self) -> ClassifierGenotype:
        """The genotype with the neurons as they are now (saving and rebuilding gives the same net)."""
        return self.genotype.with_changes(neurons=current_neuron_settings(self, self.genotype))

    def reset(self) -> None:
        reset_net(self)

    def detach(self) -> None:
        detach_net(self)

    def _steps(self, x: Tensor) -> tuple[Tensor, int]:
        g = self.genotype
        if x.dim() == 4:
            steps = g.timesteps
            x = x.unsqueeze(0).expand(steps, *x.shape)
        elif x.dim() == 5:
            steps = x.shape[0]
        else:
            raise ValueError(f"SpikeDHS-CLA takes (B, C, H, W) images or (T, B, C, H, W) frames, "
                             f"got shape {tuple(x.shape)}")
        if x.shape[2] != g.in_channels:
            raise ValueError(f"SpikeDHS-CLA expects C={g.in_channels} input channels, got {tuple(x.shape)}")
        return x.reshape(-1, *x.shape[2:]), steps

    def forward_with_aux(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """(logits, auxiliary logits or None), each (B, classes) averaged over the steps.

        The auxiliary head runs only in training mode."""
        self.reset()
        flat, steps = self._steps(x)
        a = self.stem(flat, steps)
        prev_prev, prev = (a, 0), (a, 0)
        aux = None
        for i, level in enumerate(self.genotype.net.path):
            stride = (2 ** (level - prev_prev[1]), 2 ** (level - prev[1]))
            out = getattr(self, f"cell{i}")(prev_prev[0], prev[0], steps, stride=stride)
            prev_prev, prev = prev, (out, level)
            if self.aux is not None and i == self.genotype.auxiliary_after and self.training:
                aux = self.aux(out, steps).unflatten(0, (steps, -1)).mean(0)
        logits = self.classifier(prev[0].mean((-2, -1)))
        return logits.unflatten(0, (steps, -1)).mean(0), aux

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, classes), averaged over the steps."""
        return self.forward_with_aux(x)[0]


def build_classifier(genotype: ClassifierGenotype) -> SpikeDHSClassifier:
    """SpikeDHS-CLA from a genotype (seed torch first for reproducible initial weights)."""
    if not isinstance(genotype, ClassifierGenotype):
        raise TypeError(f"build_classifier needs a ClassifierGenotype, not {type(genotype).__name__}")
    return SpikeDHSClassifier(genotype)


