"""TPS, temporal parameter search (REFERENCE §9): per layer, K candidate time constants around the
current one, each candidate a neuron of the layer's kind fed the same current, mixed by softmax(c).

Every search step (``move``) the layer takes the candidate with the largest weight as its new centre,
the candidates are re-spread around it and c is reset to equal weights, so the time constant walks
towards what the loss favours a little per step while the weights keep training. LIF searches tau;
ALIF searches tau and rho, one coordinate per candidate (tau moves with rho fixed, and rho with tau
fixed), which keeps K + K - 1 candidates instead of a K x K grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from eventstereo.errors import InputError
from eventstereo.snn.neurons import ALIFNode, BaseNeuron, LIFNode, NeuronSpec, make_neuron
from nas.temporal.mixture import NeuronMixture

__all__ = ["TPS_KINDS", "TPS_DELTAS", "RHO_MAX", "TimeConstantMixture", "candidate_specs"]

TPS_KINDS = ("lif", "alif")  # IF (tau 1), binary (tau 0) and ReLU have no time constant to search
TPS_DELTAS = (-0.2, -0.1, 0.0, 0.1, 0.2)
RHO_MAX = 0.99  # rho must stay below 1 (the adaptation would not decay)


def _clip(v: float, lo: float, hi: float) -> float:
    return round(min(hi, max(lo, v)), 6)


def candidate_specs(center: NeuronSpec, deltas: Sequence[float] = TPS_DELTAS) -> list[NeuronSpec]:
    """The candidates around `center`: tau + each delta (clipped to [0, 1]); ALIF also rho + delta."""
    if center.kind not in TPS_KINDS:
        raise InputError(f"TPS searches the time constants of {'/'.join(TPS_KINDS)} neurons, "
                         f"not {center.kind!r}")
    specs = [replace(center, tau=_clip(center.tau + d, 0.0, 1.0)) for d in deltas]
    if center.kind == "alif":
        specs += [replace(center, rho=_clip(center.rho + d, 0.0, RHO_MAX)) for d in deltas if d != 0.0]
    return specs


class TimeConstantMixture(NeuronMixture):
    """One layer's TPS candidates; ``center`` is the layer's current spec (what it decides)."""

    def __init__(self, center: NeuronSpec, deltas: Sequence[float] = TPS_DELTAS, *, step_mode: str = "s",
                 backend: str = "fused"):
        self.deltas = tuple(float(d) for d in deltas)
        if 0.0 not in self.deltas:
            raise InputError(f"TPS deltas must include 0 (the current value), got {list(self.deltas)}")
        super().__init__([make_neuron(s, step_mode=step_mode, backend=backend)
                          for s in candidate_specs(center, self.deltas)], step_mode=step_mode)
        self.center = center

    @classmethod
    def around(cls, neuron: BaseNeuron, deltas: Sequence[float] = TPS_DELTAS) -> TimeConstantMixture:
        return cls(neuron.spec, deltas, step_mode=neuron.step_mode,
                   backend=getattr(neuron, "backend", "fused"))

    def decided_spec(self) -> NeuronSpec:
        """The centre: the best candidate of the last search step (moves happen only in ``move``)."""
        return self.center

    def set_center(self, center: NeuronSpec) -> None:
        """Re-spread the candidates (in place: same modules, so optimizers and copies stay valid)."""
        for neuron, spec in zip(self.candidates, candidate_specs(center, self.deltas)):
            assert isinstance(neuron, LIFNode)
            neuron.tau = spec.tau
            if isinstance(neuron, ALIFNode):
                neuron.rho = spec.rho
        self.center = center

    def move(self) -> NeuronSpec:
        """One search step: centre <- the best candidate, c <- equal weights; returns the new centre."""
        best = candidate_specs(self.center, self.deltas)[self.best()]
        self.set_center(best)
        self.reset_logits()
        return best
