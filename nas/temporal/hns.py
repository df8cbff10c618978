"""HNS, hybrid neuron search (REFERENCE §9): per layer the candidates LIF, ALIF and ReLU, fed the same
current and mixed by softmax(c); the layer decodes to the argmax.

ReLU passes real values on, so the layers it feeds multiply instead of accumulating: the energy-aware
loss ``L = (1 - lambda) L_task + lambda E_pred / E_relu`` prices each layer's expected neuron with the
paper's factors (LIF 1, ALIF 1, ReLU 4.26), where ``E_pred = sum_l n_l sum_k softmax(c_l)_k e_k`` and
``E_relu`` is the same with every layer ReLU. ``n_l`` is the layer's size (the elements of the current
it last saw), the part of its operation count that does not depend on the choice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import torch
from torch import Tensor, nn

from eventstereo.errors import InputError
from eventstereo.snn.neurons import BaseNeuron, NeuronSpec, make_neuron
from nas.temporal.mixture import NeuronMixture, spec_of
from nas.temporal.tps import TPS_DELTAS, TimeConstantMixture

__all__ = ["HNS_KINDS", "ENERGY_FACTORS", "HybridMixture", "energy_ratio", "energy_aware_loss"]

HNS_KINDS = ("lif", "alif", "relu")
ENERGY_FACTORS = {"lif": 1.0, "alif": 1.0, "relu": 4.26}  # the paper's constants, not 4.6 / 0.9


class HybridMixture(NeuronMixture):
    """One layer's HNS candidates, in the order of ``kinds``; with ``tps`` the spiking ones are TPS
    mixtures themselves, so the time constants are searched while the kind is."""

    def __init__(self, base: NeuronSpec, *, kinds: Iterable[str] = HNS_KINDS, tps: bool = False,
                 tps_deltas=TPS_DELTAS, step_mode: str = "s", backend: str = "fused"):
        self.kinds = tuple(kinds)
        unknown = sorted(set(self.kinds) - set(ENERGY_FACTORS))
        if unknown:
            raise InputError(f"HNS candidate kind(s) {unknown} unknown; known: {', '.join(HNS_KINDS)}")
        template = replace(base, kind="lif") if base.kind not in ("lif", "alif") else base
        candidates: list[nn.Module] = []
        for kind in self.kinds:
            spec = NeuronSpec(kind="relu") if kind == "relu" else replace(template, kind=kind)
            if tps and kind != "relu":
                candidates.append(TimeConstantMixture(spec, tps_deltas, step_mode=step_mode, backend=backend))
            else:
                candidates.append(make_neuron(spec, step_mode=step_mode, backend=backend))
        super().__init__(candidates, step_mode=step_mode)
        self.register_buffer("factors", torch.tensor([ENERGY_FACTORS[k] for k in self.kinds]),
                             persistent=False)

    @classmethod
    def around(cls, neuron: BaseNeuron, *, tps: bool = False, tps_deltas=TPS_DELTAS) -> HybridMixture:
        return cls(neuron.spec, tps=tps, tps_deltas=tps_deltas, step_mode=neuron.step_mode,
                   backend=getattr(neuron, "backend", "fused"))

    def decided_spec(self) -> NeuronSpec:
        return spec_of(self.candidates[self.best()])

    def expected_energy(self) -> Tensor:
        """n_l * sum_k softmax(c)_k e_k (differentiable in c)."""
        return self.elements * (self.probabilities() * self.factors).sum()


def energy_ratio(layers: Iterable[HybridMixture]) -> Tensor:
    """E_pred / E_relu over `layers` (1 when all are ReLU, 1/4.26 when all are spiking)."""
    layers = list(layers)
    if not layers:
        raise InputError("the energy-aware loss needs at least one HNS layer")
    relu = ENERGY_FACTORS["relu"]
    pred = sum(m.expected_energy() for m in layers)
    total = sum(m.elements for m in layers) * relu
    if total == 0:
        raise RuntimeError("the HNS layers have not seen an input yet: run a forward pass first")
    return pred / total


def energy_aware_loss(task_loss: Tensor, layers: Iterable[HybridMixture], energy_lambda: float) -> Tensor:
    """(1 - lambda) L_task + lambda E_pred / E_relu."""
    if not 0.0 <= energy_lambda <= 1.0:
        raise InputError(f"--energy-lambda must lie in [0, 1], not {energy_lambda}")
    if energy_lambda == 0.0:
        return task_loss
    return (1.0 - energy_lambda) * task_loss + energy_lambda * energy_ratio(layers)
