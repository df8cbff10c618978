"""Operation counts and energy estimates per layer (REFERENCE §10).

A weight layer (Conv2d, Conv3d, Linear) fed by spikes only accumulates: its cost is
``additions = input firing rate x T x dense ops``. A layer fed by real values (the first layer on SBT
frames, layers after ReLU neurons) multiplies: ``MACs = T x dense ops``. Energy uses 45 nm CMOS figures,
0.9 pJ per accumulate and 4.6 pJ per multiply-accumulate.

``count_ops`` measures what one forward pass of the model on example inputs actually does: forward
hooks read each layer's output shape (dense ops) and its input values (spike-fed when every value is
0 or 1; firing rate = fraction of ones). ``spike_fed`` overrides the detection per layer name.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["E_AC_PJ", "E_MAC_PJ", "LayerOps", "EnergyReport", "count_ops", "dense_ops", "energy_mj"]

E_AC_PJ = 0.9  # one accumulate (addition), 45 nm
E_MAC_PJ = 4.6  # one multiply-accumulate, 45 nm

_KINDS: tuple[tuple[type[nn.Module], str], ...] = (
    (nn.Conv3d, "conv3d"),
    (nn.Conv2d, "conv2d"),
    (nn.Linear, "linear"),
)


def _kind(m: nn.Module) -> str | None:
    for cls, name in _KINDS:
        if isinstance(m, cls):
            return name
    return None


def dense_ops(module: nn.Module, output: Tensor) -> int:
    """Multiply-accumulates a dense evaluation of `module` performs to produce `output` (bias ignored)."""
    if isinstance(module, (nn.Conv2d, nn.Conv3d)):
        per_output = (module.in_channels // module.groups) * math.prod(module.kernel_size)
        return output.numel() * per_output
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    raise TypeError(f"no operation count for {type(module).__name__}")


@dataclass(frozen=True)
class LayerOps:
    """One weight layer's work per sample for one inference of `timesteps` steps.

    dense_ops: MACs of one forward pass of the example (per sample), as if all inputs were real values.
    input_rate: fraction of nonzero inputs (the firing rate when spike-fed).
    adds / macs: the operations counted for energy (one of them is zero).
    """

    name: str
    kind: str
    dense_ops: float
    input_rate: float
    spike_fed: bool
    timesteps: int
    adds: float
    macs: float

    @property
    def energy_pj(self) -> float:
        return E_AC_PJ * self.adds + E_MAC_PJ * self.macs

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "energy_pj": self.energy_pj}


def energy_mj(ops: Iterable[LayerOps]) -> float:
    """Total energy in millijoules: 0.9 pJ x additions + 4.6 pJ x MACs."""
    return sum(o.energy_pj for o in ops) * 1e-9


@dataclass
class _Acc:
    kind: str
    ops: float = 0.0
    weighted_rate: float = 0.0  # sum over calls of rate x ops
    binary: bool = True
    calls: int = 0


def count_ops(model: nn.Module, example_inputs: Tensor | Sequence[Any], *, timesteps: int = 1,
              batch_size: int = 1, spike_fed: Mapping[str, bool] | None = None) -> list[LayerOps]:
    """Count per-layer operations of ``model(*example_inputs)``.

    timesteps: how many times the example pass is repeated per inference (e.g. T when the example is a
    single step of a single-step model; 1 when the model already ran all steps on [T, B, ...] input).
    batch_size: samples in the example, so that counts are per sample.
    spike_fed: layer name -> True/False to override the detection from input values.
    Runs under no_grad; neuron states are left as the pass leaves them (call reset_net before/after).
    """
    if timesteps < 1 or batch_size < 1:
        raise ValueError("timesteps and batch_size must be >= 1")
    overrides = dict(spike_fed or {})
    names = {m: name or type(m).__name__ for name, m in model.named_modules() if _kind(m) is not None}
    unknown = sorted(set(overrides) - set(names.values()))
    if unknown:
        raise ValueError(f"spike_fed names no weight layer: {unknown}")
    accs: dict[str, _Acc] = {}

    def hook(module: nn.Module, inputs: tuple[Any, ...], out: Tensor) -> None:
        name = names[module]
        acc = accs.setdefault(name, _Acc(_kind(module) or ""))
        x = inputs[0]
        ops = dense_ops(module, out)
        rate = float(torch.count_nonzero(x)) / max(1, x.numel())
        acc.ops += ops
        acc.weighted_rate += rate * ops
        acc.binary = acc.binary and bool(((x == 0) | (x == 1)).all())
        acc.calls += 1

    handles = [m.register_forward_hook(hook) for m in names]
    try:
        args = (example_inputs,) if isinstance(example_inputs, Tensor) else tuple(example_inputs)
        with torch.no_grad():
            model(*args)
    finally:
        for h in handles:
            h.remove()

    result = []
    for name in (n for n in names.values() if n in accs):  # network order
        acc = accs[name]
        ops = acc.ops / batch_size
        rate = acc.weighted_rate / acc.ops if acc.ops else 0.0
        fed = overrides.get(name, acc.binary)
        result.append(LayerOps(name=name, kind=acc.kind, dense_ops=ops, input_rate=rate, spike_fed=fed,
                               timesteps=timesteps, adds=rate * timesteps * ops if fed else 0.0,
                               macs=0.0 if fed else timesteps * ops))
    return result


@dataclass
class EnergyReport:
    """Per-layer operations and energy of one inference, with a text table for logs and the CLI."""

    layers: list[LayerOps] = field(default_factory=list)

    @classmethod
    def measure(cls, model: nn.Module, example_inputs: Tensor | Sequence[Any], **kwargs: Any) -> EnergyReport:
        """count_ops(model, example_inputs, **kwargs) as a report."""
        return cls(count_ops(model, example_inputs, **kwargs))

    @property
    def adds(self) -> float:
        return sum(o.adds for o in self.layers)

    @property
    def macs(self) -> float:
        return sum(o.macs for o in self.layers)

    @property
    def energy_mj(self) -> float:
        return energy_mj(self.layers)

    def to_dict(self) -> dict[str, Any]:
        return {"layers": [o.to_dict() for o in self.layers], "adds": self.adds, "macs": self.macs,
                "energy_mj": self.energy_mj}

    def table(self) -> str:
        """Fixed-width table: one row per layer, then the totals."""
        head = (f"{'layer':<32} {'kind':<7} {'dense ops':>11} {'in rate':>7} {'adds':>11} {'MACs':>11} "
                f"{'uJ':>9}")
        rows = [head, "-" * len(head)]
        for o in self.layers:
            rate = f"{o.input_rate:.3f}" if o.spike_fed else "real"
            rows.append(f"{o.name[-32:]:<32} {o.kind:<7} {_si(o.dense_ops):>11} {rate:>7} {_si(o.adds):>11} "
                        f"{_si(o.macs):>11} {o.energy_pj * 1e-6:>9.3f}")
        rows.append("-" * len(head))
        rows.append(f"{'total':<32} {'':<7} {_si(sum(o.dense_ops for o in self.layers)):>11} {'':>7} "
                    f"{_si(self.adds):>11} {_si(self.macs):>11} {self.energy_mj * 1e3:>9.3f}")
        rows.append(f"energy {self.energy_mj:.4g} mJ ({E_AC_PJ} pJ/AC, {E_MAC_PJ} pJ/MAC)")
        return "\n".join(rows)


def _si(v: float) -> str:
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3f}{suffix}"
    return f"{v:.0f}"
