"""Per-layer firing rates, cheap enough to stay attached while streaming (REFERENCE §10).

A forward hook on every spiking neuron adds the number of its output spikes to an accumulator: the
count the fused CPU inference kernel took as it fired (``BaseNeuron.spike_count``: free), else one
reduction per call (on CPU a serial numba loop, elsewhere a device tensor added in place; never a host
synchronisation); the neuron-step count comes from the output's shape. Only ``rates()`` and
``mean_rate()`` copy device sums to the host, once for all layers. Layers are keyed by their qualified
module name (``model.named_modules()``), i.e. by the network's structure, so the GUI and reports can
label them.
"""

from __future__ import annotations

from typing import Any

import numba
import torch
from torch import Tensor, nn

from eventstereo.snn.neurons import neurons

__all__ = ["FiringRateProbe"]


@numba.njit(nogil=True, cache=True, fastmath=True)
def _sum_serial(a):  # pragma: no cover - compiled
    """Sum on the calling thread: torch's CPU sum opens an OpenMP region, which on a loaded machine can
    cost more than the sum. Reordering is harmless: spike counts are exact integers in float64."""
    acc = 0.0
    for i in range(a.shape[0]):
        acc += a[i]
    return acc


def _spike_sum(out: Tensor) -> Tensor | float:
    """Sum of a layer's output without a host synchronisation: a float on CPU, a device tensor else."""
    if out.device.type == "cpu" and out.dtype in (torch.float32, torch.float64) and out.is_contiguous():
        return _sum_serial(out.detach().reshape(-1).numpy())
    return out.detach().sum().to(torch.float64)


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
        self._sums: dict[str, Tensor | float] = {}
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
            s = module.spike_count(out)  # counted by the neuron kernel as it fired: nothing to sum
            if s is None:
                s = _spike_sum(out)
            else:
                s = float(s)
            acc = sums.get(name, 0.0)
            if isinstance(acc, Tensor):
                acc.add_(s)
            else:
                sums[name] = s + acc  # float + float, or a device tensor + float (a new tensor)
            counts[name] = counts.get(name, 0) + out.numel()

        return hook

    def rates(self) -> dict[str, float]:
        """Mean spikes per neuron per step for each layer that has run (one host sync)."""
        names = [n for n, _ in self._layers if self._counts.get(n)]
        if not names:
            return {}
        return {n: s / self._counts[n] for n, s in zip(names, self._host_sums(names))}

    def _host_sums(self, names: list[str]) -> list[float]:
        tensors = [self._sums[n] for n in names if isinstance(self._sums[n], Tensor)]
        host = iter(torch.stack([t.to(tensors[0].device) for t in tensors]).tolist() if tensors else [])
        return [next(host) if isinstance(self._sums[n], Tensor) else float(self._sums[n]) for n in names]

    def mean_rate(self) -> float:
        """Spikes per neuron per step over all monitored layers together (weighted by neuron count)."""
        names = [n for n, _ in self._layers if self._counts.get(n)]
        if not names:
            return float("nan")
        total = sum(self._host_sums(names))
        return total / sum(self._counts[n] for n in names)
