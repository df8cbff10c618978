"""Per-layer firing rates, cheap enough to stay attached while streaming (REFERENCE §10).

A forward hook on every spiking neuron adds the sum of its output spikes to an on-device accumulator
(one reduction and one in-place add per call, no host synchronisation); the neuron-step count comes
from the output's shape. Only ``rates()`` / ``mean_rate()`` copy the sums to the host, once for all
layers. Layers are keyed by their qualified module name (``model.named_modules()``), i.e. by the
network's structure, so the GUI and reports can label them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from eventstereo.snn.neurons import neurons

__all__ = ["FiringRateProbe"]


class FiringRateProbe:
    """Record mean spikes per neuron per step for each spiking layer of `model`.

    Use as a context manager (``with FiringRateProbe(model) as probe: ...``) or ``attach()`` /
    ``detach()``. ``every=k`` records one call in k per layer, for the lowest possible overhead.
    Non-spiking (ReLU) layers are not monitored: their output is not a rate.
    """

    def __init__(self, model: nn.Module, *, every: int = 1):
        if every < 1:
            raise ValueError(f"every must be >= 1, not {every}")
        self.every = every
        self._layers = [(name or type(m).__name__, m) for name, m in neurons(model) if m.is_spiking]
        self._handles: list[Any] = []
        self._sums: dict[str, Tensor] = {}
        self._counts: dict[str, int] = {}
        self._calls: dict[str, int] = {}

    @property
    def names(self) -> list[str]:
        """All monitored layer names in network order (also those not run yet)."""
        return [name for name, _ in self._layers]

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def attach(self) -> FiringRateProbe:
        if not self._handles:
            self._handles = [m.register_forward_hook(self._make_hook(name)) for name, m in self._layers]
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> FiringRateProbe:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def reset(self) -> None:
        """Start a new measurement (e.g. per GUI refresh interval)."""
        self._sums.clear()
        self._counts.clear()
        self._calls.clear()

    def _make_hook(self, name: str):
        sums, counts, calls, every = self._sums, self._counts, self._calls, self.every

        def hook(module: nn.Module, inputs: Any, out: Tensor) -> None:
            n = calls.get(name, 0)
            calls[name] = n + 1
            if n % every:
                return
            s = out.detach().sum()
            acc = sums.get(name)
            if acc is None:
                sums[name] = s.to(torch.float64)
            else:
                acc.add_(s)
            counts[name] = counts.get(name, 0) + out.numel()

        return hook

    def rates(self) -> dict[str, float]:
        """Mean spikes per neuron per step for each layer that has run (one host sync)."""
        names = [n for n, _ in self._layers if self._counts.get(n)]
        if not names:
            return {}
        return {n: s / self._counts[n] for n, s in zip(names, self._host_sums(names))}

    def _host_sums(self, names: list[str]) -> list[float]:
        dev = self._sums[names[0]].device
        return torch.stack([self._sums[n].to(dev) for n in names]).tolist()

    def mean_rate(self) -> float:
        """Spikes per neuron per step over all monitored layers together (weighted by neuron count)."""
        names = [n for n, _ in self._layers if self._counts.get(n)]
        if not names:
            return float("nan")
        total = sum(self._host_sums(names))
        return total / sum(self._counts[n] for n in names)
