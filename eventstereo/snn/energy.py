"""Operation counts and energy estimates per layer (REFERENCE §10).

A weight layer (Conv2d, Conv3d, Linear) fed by spikes only accumulates: its cost is
``additions = input firing rate x T x dense ops``. A layer fed by real values (the first layer on SBT
frames, layers after ReLU neurons) multiplies: ``MACs = T x dense ops``. Energy uses 45 nm CMOS figures,
0.9 pJ per accumulate and 4.6 pJ per multiply-accumulate.

``count_ops`` measures what one forward pass of the model on example inputs actually does: forward
hooks read each layer's output shape (dense ops) and its input's firing rate (fraction of nonzeros).
Whether a layer is spike-fed is decided by where its input COMES FROM, never by the values it happens
to hold (an all-zero or ON-only SBT frame holds only 0 and 1, yet it is the real-valued input of the
first layer): during the pass every tensor is tagged with its provenance. The model's inputs, parameters
and the outputs of ReLU (non-spiking) neurons are real; the outputs of spiking neurons are spikes; an op
that only moves, copies or selects values (cat, pad, view, indexing, nearest upsampling, max pooling,
...) keeps its inputs' tag, and any other op (a convolution, a sum, a scaling) makes real values. A
layer is spike-fed when its input is tagged spike. ``spike_fed`` overrides the decision per layer name.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from eventstereo.snn.neurons import neurons

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


REAL, SPIKE = "real", "spike"

STRUCTURAL_OPS = frozenset({
    "cat", "concat", "concatenate", "stack", "hstack", "vstack", "reshape", "view", "view_as", "flatten",
    "unflatten", "permute", "transpose", "t", "movedim", "contiguous", "clone", "detach", "expand",
    "expand_as", "squeeze", "unsqueeze", "split", "split_with_sizes", "tensor_split", "chunk", "unbind",
    "narrow", "select", "__getitem__", "__get__", "index_select", "gather", "take", "pad", "constant_pad_nd",
    "roll", "flip", "repeat", "repeat_interleave", "tile", "as_strided", "pixel_shuffle", "pixel_unshuffle",
    "to", "float", "half", "double", "bfloat16", "type", "type_as", "cpu", "cuda", "new_zeros",
    "zeros_like", "new_empty", "empty_like", "__setitem__", "copy_", "fill_", "zero_", "max_pool1d",
    "max_pool2d", "max_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
})
"""Ops that only move, copy, select or zero-fill values: a spike tensor stays a spike tensor through them
(``interpolate`` too in mode 'nearest')."""


def _tensors(obj: Any) -> Iterator[Tensor]:
    """The tensors in an op's arguments or results (nested tuples, lists and dicts)."""
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


class _Provenance(TorchFunctionMode):
    """Tags every tensor an op makes during the counted pass as REAL or SPIKE (see the module docstring).

    Tags live on the tensor objects under a per-pass token, so a tensor kept from an earlier pass (a
    neuron's state) never carries a stale tag.
    """

    def __init__(self) -> None:
        super().__init__()
        self.token = object()

    def tag(self, t: Tensor, kind: str | None) -> None:
        if kind is not None:
            t._energy_provenance = (self.token, kind)  # type: ignore[attr-defined]

    def kind(self, t: Tensor) -> str | None:
        mark = getattr(t, "_energy_provenance", None)
        if mark is not None and mark[0] is self.token:
            return mark[1]
        return REAL if isinstance(t, nn.Parameter) else None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        kinds = {self.kind(a) for a in _tensors((args, kwargs))} - {None}
        if not kinds:
            return out
        name = getattr(func, "__name__", "")
        if name == "interpolate":
            keeps = kwargs.get("mode", args[3] if len(args) > 3 else "nearest") == "nearest"
        else:
            keeps = name in STRUCTURAL_OPS
        kind = SPIKE if keeps and kinds == {SPIKE} else REAL
        for o in _tensors(out):
            self.tag(o, kind)
        if name.endswith("_") or name == "__setitem__":  # in place: the mutated tensor changes too
            if args and isinstance(args[0], Tensor):
                self.tag(args[0], kind)
        return out


def _emits_spikes(neuron: nn.Module) -> bool:
    surrogate = getattr(neuron, "surrogate", None)
    return bool(getattr(neuron, "is_spiking", False)) and bool(getattr(surrogate, "spiking", True))


@dataclass
class _Acc:
    kind: str
    ops: float = 0.0
    weighted_rate: float = 0.0  # sum over calls of rate x ops
    spike_fed: bool = True  # every call's input was tagged spike
    calls: int = 0


def count_ops(model: nn.Module, example_inputs: Tensor | Sequence[Any], *, timesteps: int = 1,
              batch_size: int = 1, spike_fed: Mapping[str, bool] | None = None) -> list[LayerOps]:
    """Count per-layer operations of ``model(*example_inputs)``.

    timesteps: how many times the example pass is repeated per inference (e.g. T when the example is a
    single step of a single-step model; 1 when the model already ran all steps on [T, B, ...] input).
    batch_size: samples in the example, so that counts are per sample.
    spike_fed: layer name -> True/False to override the decision from the input's provenance (the
    example inputs are real-valued: a layer reading them counts MACs unless overridden).
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
    tracer = _Provenance()

    def layer_hook(module: nn.Module, inputs: tuple[Any, ...], out: Tensor) -> None:
        name = names[module]
        acc = accs.setdefault(name, _Acc(_kind(module) or ""))
        x = inputs[0]
        ops = dense_ops(module, out)
        rate = float(torch.count_nonzero(x)) / max(1, x.numel())
        acc.ops += ops
        acc.weighted_rate += rate * ops
        acc.spike_fed = acc.spike_fed and tracer.kind(x) == SPIKE
        acc.calls += 1
        tracer.tag(out, REAL)

    def neuron_hook(module: nn.Module, inputs: tuple[Any, ...], out: Any) -> None:
        kind = SPIKE if _emits_spikes(module) else REAL
        for o in _tensors(out):
            tracer.tag(o, kind)

    handles = [m.register_forward_hook(layer_hook) for m in names]
    handles += [m.register_forward_hook(neuron_hook) for _, m in neurons(model)]
    try:
        args = (example_inputs,) if isinstance(example_inputs, Tensor) else tuple(example_inputs)
        for a in _tensors(args):
            tracer.tag(a, REAL)
        with torch.no_grad(), tracer:
            model(*args)
    finally:
        for h in handles:
            h.remove()

    result = []
    for name in (n for n in names.values() if n in accs):  # network order
        acc = accs[name]
        ops = acc.ops / batch_size
        rate = acc.weighted_rate / acc.ops if acc.ops else 0.0
        fed = overrides.get(name, acc.spike_fed)
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
