"""Searchable neuron layers: candidates driven by the SAME input current, outputs mixed by softmax(c).

TPS mixes neurons of one kind with different time constants, HNS mixes neuron kinds (LIF, ALIF,
ReLU); both are a :class:`NeuronMixture` standing where the network's neuron stood, so any network
built from eventstereo's neurons becomes searchable without knowing its structure. The mixture is a
``MemoryModule``: ``set_step_mode``, ``reset_net`` and ``detach_net`` reach its candidates as they
reach any neuron, and the forward takes whatever shape the network hands its neuron.

``logits`` (c) are an ``nn.Parameter`` so they travel with ``state_dict`` (checkpoints, weight
averages, DistributedDataParallel's gradient exchange); the search trains them with its own optimizer,
and the training loop leaves them out of the weight optimizer (``TrainHook.parameters``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from eventstereo.errors import InputError
from eventstereo.snn.neurons import BaseNeuron, MemoryModule, NeuronSpec

__all__ = ["NeuronMixture", "spec_of", "mixtures", "replace_layer"]


def spec_of(module: nn.Module) -> NeuronSpec:
    """The neuron spec a layer stands for: a neuron's own, or what a mixture would decide now."""
    if isinstance(module, NeuronMixture):
        return module.decided_spec()
    if isinstance(module, BaseNeuron):
        return module.spec
    inner = getattr(module, "neuron", None)  # a DGS wrapper
    if isinstance(inner, nn.Module):
        return spec_of(inner)
    raise TypeError(f"{type(module).__name__} is not a neuron layer")


class NeuronMixture(MemoryModule):
    """o = sum_i softmax(c)_i candidate_i(I): every candidate sees the same current I.

    ``elements`` is the size of the last current seen (neurons x steps x batch), the layer's weight
    in the energy estimate of HNS.
    """

    def __init__(self, candidates: Sequence[nn.Module], *, step_mode: str = "s"):
        if len(candidates) < 2:
            raise InputError(f"a neuron mixture needs at least 2 candidates, got {len(candidates)}")
        super().__init__(step_mode)
        self.candidates = nn.ModuleList(candidates)
        self.logits = nn.Parameter(torch.zeros(len(candidates)))
        self.elements = 0

    def probabilities(self) -> Tensor:
        return torch.softmax(self.logits, 0)

    def best(self) -> int:
        """Index of the candidate with the largest weight (the first among equals)."""
        return int(torch.argmax(self.logits.detach()))

    def reset_logits(self) -> None:
        """Equal weights again (TPS, after moving to the best candidate)."""
        with torch.no_grad():
            self.logits.zero_()

    def decided_spec(self) -> NeuronSpec:
        return spec_of(self.candidates[self.best()])

    def forward(self, x: Tensor) -> Tensor:
        self.elements = x.numel()
        weights = self.probabilities().to(x.dtype)
        out = None
        for w, candidate in zip(weights, self.candidates):
            y = w * candidate(x)
            out = y if out is None else out + y
        return out

    def extra_repr(self) -> str:
        return f"candidates={len(self.candidates)}, step_mode={self.step_mode!r}"


def mixtures(module: nn.Module) -> Iterator[tuple[str, NeuronMixture]]:
    """(name, mixture) for every mixture in `module`, outer ones before the ones nested in them."""
    for name, m in module.named_modules():
        if isinstance(m, NeuronMixture):
            yield name, m


def replace_layer(model: nn.Module, name: str, layer: nn.Module) -> nn.Module:
    """Put `layer` at the qualified name `name` in `model`; returns what was there."""
    old = model.get_submodule(name)
    model.set_submodule(name, layer)
    return old
