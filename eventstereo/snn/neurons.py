"""Spiking neurons (REFERENCE §4): IF, LIF, ALIF, binary, and the stateless ReLU of hybrid networks.

Design points (STYLE §2, "what eventstereo should take" 4-5):
- ``step_mode`` 's' takes one step [B, ...] and keeps the state for the next call (streaming: one call
  per window); 'm' takes a sequence [T, B, ...] (training). Both run the same arithmetic, so feeding a
  sequence step by step gives the same spikes as feeding it at once.
- State is created lazily from the first input (shape, device, dtype), lives outside ``state_dict``,
  follows ``.to()`` / ``.half()``, and has an explicit ``reset()`` (new sequence) and ``detach()``
  (truncated BPTT: keep values, cut the graph).
- ``tau``, ``theta`` (ALIF: ``beta``, ``rho``) are plain per-layer floats that may change at any time
  (TPS does); the surrogate is an owned module whose temperature may change at any time (DGS does).
- ``backend="fused"`` (default) runs LIF/ALIF through eventstereo.snn.fused (one autograd node per
  sequence, numba on CPU); ``"eager"`` is the plain per-step autograd loop, kept as the reference.
- ``NeuronSpec`` is the per-layer setting written into genotypes and model files.
- Inference (no gradient wanted: ``torch.no_grad`` / ``inference_mode``, or inputs that need none) runs
  the fused backend IN PLACE: the state tensors are updated where they lie, with no autograd node and no
  copy. A state tensor is only updated in place once the neuron owns it (created by it, or copied once
  after a training call, a ``detach()`` or a ``.to()``), so tensors a pending backward saved are never
  written. ``state`` / ``v`` return the live tensors: clone them to keep a snapshot.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from eventstereo.errors import InputError
from eventstereo.snn import fused
from eventstereo.snn.surrogates import SURROGATES, Surrogate, make_surrogate

__all__ = [
    "KINDS",
    "BACKENDS",
    "NeuronSpec",
    "StepModule",
    "MemoryModule",
    "BaseNeuron",
    "IFNode",
    "LIFNode",
    "BinaryNode",
    "ALIFNode",
    "ReLUNode",
    "make_neuron",
    "neurons",
    "reset_net",
    "detach_net",
    "set_step_mode",
]

KINDS = ("if", "lif", "alif", "relu", "binary")
BACKENDS = ("fused", "eager")
STEP_MODES = ("s", "m")


# ------------------------------------------------------------------------------------------------ spec
def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"neuron {name} must be a number, not {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise InputError(f"neuron {name} must be finite, not {value}")
    return value


def _check_tau(v: float) -> float:
    v = _number("tau", v)
    if not 0.0 <= v <= 1.0:
        raise InputError(f"neuron tau (leak factor) must be in [0, 1], not {v}")
    return v


def _check_theta(v: float) -> float:
    v = _number("theta", v)
    if v <= 0.0:
        raise InputError(f"neuron theta (threshold) must be > 0, not {v}")
    return v


def _check_beta(v: float) -> float:
    v = _number("beta", v)
    if v < 0.0:
        raise InputError(f"ALIF beta must be >= 0, not {v}")
    return v


def _check_rho(v: float) -> float:
    v = _number("rho", v)
    if not 0.0 <= v < 1.0:
        raise InputError(f"ALIF rho must be in [0, 1), not {v}")
    return v


@dataclass(frozen=True)
class NeuronSpec:
    """One layer's neuron settings, as stored in genotypes and model files.

    Fields a kind does not use are normalised to their defaults (IF has tau 1, binary tau 0, only ALIF
    keeps beta and rho, ReLU keeps nothing), so that two specs of the same neuron compare equal and
    ``make_neuron(spec).spec == spec``.
    """

    kind: str = "lif"
    tau: float = 0.2
    theta: float = 0.5
    beta: float = 0.1
    rho: float = 0.5
    surrogate: str = "dspike"
    temperature: float = 3.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"unknown neuron kind {self.kind!r}; known: {', '.join(KINDS)}")
        if not isinstance(self.surrogate, str) or self.surrogate.lower() not in SURROGATES:
            raise InputError(f"unknown surrogate {self.surrogate!r}; known: {', '.join(sorted(SURROGATES))}")
        temperature = _number("temperature", self.temperature)
        if temperature <= 0:
            raise InputError(f"surrogate temperature must be > 0, not {temperature}")
        values = dict(tau=_check_tau(self.tau), theta=_check_theta(self.theta), beta=_check_beta(self.beta),
                      rho=_check_rho(self.rho), surrogate=self.surrogate.lower(), temperature=temperature)
        defaults = {f.name: f.default for f in fields(self)}
        if self.kind == "if":
            values["tau"] = 1.0
        elif self.kind == "binary":
            values["tau"] = 0.0
        if self.kind != "alif":
            values["beta"], values["rho"] = defaults["beta"], defaults["rho"]
        if self.kind == "relu":
            values = {k: defaults[k] for k in values}
        for k, v in values.items():
            object.__setattr__(self, k, v)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NeuronSpec:
        """Validating inverse of to_dict; missing fields take their defaults."""
        if not isinstance(d, Mapping):
            raise InputError(f"neuron spec must be a mapping, not {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"unknown neuron spec field(s) {unknown}; known: {sorted(known)}")
        return cls(**d)

    @property
    def is_spiking(self) -> bool:
        return self.kind != "relu"


# ------------------------------------------------------------------------------------------ base classes
class StepModule(nn.Module):
    """A module with a validated ``step_mode``: 's' one step [B, ...], 'm' a sequence [T, B, ...]."""

    def __init__(self, step_mode: str = "s"):
        super().__init__()
        self.step_mode = step_mode

    @property
    def step_mode(self) -> str:
        return self._step_mode

    @step_mode.setter
    def step_mode(self, mode: str) -> None:
        if mode not in STEP_MODES:
            raise ValueError(f"step_mode must be 's' (single step) or 'm' (multi-step), not {mode!r}")
        self._step_mode = mode


class MemoryModule(StepModule):
    """A StepModule with state tensors kept out of ``state_dict``; see the module docstring."""

    def __init__(self, step_mode: str = "s"):
        super().__init__(step_mode)
        self._memories: dict[str, Tensor | None] = {}
        self._owned: set[str] = set()  # states this module may update in place (see the module docstring)

    def register_memory(self, name: str) -> None:
        self._memories[name] = None

    @property
    def state(self) -> dict[str, Tensor | None]:
        """The current state tensors by name (None before the first input or after reset)."""
        return dict(self._memories)

    def reset(self) -> None:
        """Forget the state: the next input starts a new sequence from zero."""
        for k in self._memories:
            self._memories[k] = None
        self._owned.clear()

    def detach(self) -> None:
        """Keep the state's values but cut its autograd history (truncated BPTT)."""
        for k, v in self._memories.items():
            if v is not None:
                self._memories[k] = v.detach()
        self._owned.clear()  # the detached tensors share storage with the graph's

    def _memory(self, name: str, like: Tensor) -> Tensor:
        """The state tensor `name` for input steps shaped like `like`, created as zeros on first use."""
        v = self._memories[name]
        if v is None:
            return torch.zeros_like(like)
        if v.shape != like.shape:
            raise ValueError(
                f"{type(self).__name__} state has shape {tuple(v.shape)} but the input step has "
                f"{tuple(like.shape)}; call reset() before changing the input size"
            )
        if v.dtype != like.dtype or v.device != like.device:
            v = v.to(device=like.device, dtype=like.dtype)
        return v

    def _memory_inplace(self, name: str, like: Tensor) -> Tensor:
        """The state tensor `name` for inference, owned, contiguous and stored: safe to update in place."""
        v = self._memories[name]
        writable = not v.is_inference() or torch.is_inference_mode_enabled() if v is not None else False
        if not (name in self._owned and writable and v.shape == like.shape and v.dtype == like.dtype
                and v.device == like.device and v.is_contiguous()):
            if v is None:
                v = torch.zeros(like.shape, dtype=like.dtype, device=like.device)
            else:
                v = self._memory(name, like).detach().clone(memory_format=torch.contiguous_format)
            self._memories[name] = v
            self._owned.add(name)
        return v

    def _set_memories(self, **values: Tensor) -> None:
        """Store state computed out of place (training): not owned, a backward may have saved it."""
        self._memories.update(values)
        self._owned.difference_update(values)

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles carry the state's values without its autograd graph (a graph cannot be
        copied; DGS copies layers mid-sequence)."""
        state = super().__getstate__()
        state["_memories"] = {k: None if v is None else v.detach() for k, v in self._memories.items()}
        state["_owned"] = set()
        state.pop("_last_count", None)  # names the last output of this instance, not of a copy
        return state

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        for k, v in self._memories.items():
            if v is not None:
                self._memories[k] = fn(v)
        self._owned.clear()  # fn may return the same tensor (a no-op .to) or a shared one
        return self


class BaseNeuron(MemoryModule):
    """Common interface of all neurons: forward(current) -> spikes (or ReLU output)."""

    kind: ClassVar[str] = ""
    is_spiking: ClassVar[bool] = True

    @property
    def spec(self) -> NeuronSpec:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        self._fired: int | None = None  # set by _sequence where the kernel counted the spikes
        if self._step_mode == "s":
            out = self._sequence(x.unsqueeze(0)).squeeze(0)
        else:
            if x.dim() < 2:
                raise ValueError(f"multi-step input must be [T, B, ...], got shape {tuple(x.shape)}")
            out = self._sequence(x)
        self._last_count = None if self._fired is None else (out.data_ptr(), out.numel(), self._fired)
        return out

    def spike_count(self, out: Tensor) -> int | None:
        """The number of spikes in ``out`` if ``out`` is this neuron's last output and the fused inference
        kernel counted them as it fired (a firing-rate probe then need not sum the spikes again)."""
        last = self.__dict__.get("_last_count")
        if last is None or last[0] != out.data_ptr() or last[1] != out.numel():
            return None
        return last[2]

    def _sequence(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"step_mode={self._step_mode!r}"


def _own_surrogate(surrogate: str | Surrogate, temperature: float | None) -> Surrogate:
    if isinstance(surrogate, Surrogate):
        if temperature is not None:
            surrogate.temperature = temperature
        return surrogate
    return make_surrogate(surrogate, temperature)


# -------------------------------------------------------------------------------------------- neurons
class LIFNode(BaseNeuron):
    """Leaky integrate-and-fire with hard reset through the (1 - s) gate (the paper's form):
    u_t = tau u_{t-1} (1 - s_{t-1}) + I_t ; s_t = H(u_t - theta), firing when u > theta strictly.

    State ``v``: the potential after reset, u_t (1 - s_t).
    """

    kind = "lif"
    _fixed_tau: ClassVar[float | None] = None

    def __init__(self, tau: float = 0.2, theta: float = 0.5, surrogate: str | Surrogate = "dspike",
                 temperature: float | None = None, *, step_mode: str = "s", backend: str = "fused"):
        super().__init__(step_mode)
        self.tau = tau if self._fixed_tau is None else self._fixed_tau
        self.theta = theta
        self.surrogate = _own_surrogate(surrogate, temperature)
        self.backend = backend
        self.register_memory("v")

    @property
    def tau(self) -> float:
        return self._tau

    @tau.setter
    def tau(self, value: float) -> None:
        value = _check_tau(value)
        if self._fixed_tau is not None and value != self._fixed_tau:
            raise ValueError(f"{type(self).__name__} has tau fixed at {self._fixed_tau}")
        self._tau = value

    @property
    def theta(self) -> float:
        return self._theta

    @theta.setter
    def theta(self, value: float) -> None:
        self._theta = _check_theta(value)

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        if value not in BACKENDS:
            raise ValueError(f"neuron backend must be one of {BACKENDS}, not {value!r}")
        self._backend = value

    @property
    def v(self) -> Tensor | None:
        """Membrane potential after the last step's reset (None before the first input)."""
        return self._memories["v"]

    @property
    def spec(self) -> NeuronSpec:
        return NeuronSpec(kind=self.kind, tau=self._tau, theta=self._theta, surrogate=self.surrogate.name,
                          temperature=self.surrogate.temperature)

    def _fused_ok(self, x: Tensor) -> bool:
        return self._backend == "fused" and self.surrogate.spiking and x.is_floating_point()

    def _inference(self, x: Tensor) -> bool:
        """True if no gradient can flow through this call (then the fused path runs in place)."""
        if not torch.is_grad_enabled():
            return True
        return not x.requires_grad and not any(v is not None and v.requires_grad
                                               for v in self._memories.values())

    def _sequence(self, x: Tensor) -> Tensor:
        if self._fused_ok(x) and self._inference(x):
            s, self._fired = fused.lif_sequence_(x, self._memory_inplace("v", x[0]), self._tau, self._theta,
                                                 counted=True)
            return s
        h = self._memory("v", x[0])
        if self._fused_ok(x):
            s, h = fused.lif_sequence(x, h, self._tau, self._theta, self.surrogate)
        else:
            out = []
            for xt in x.unbind(0):
                u = self._tau * h + xt
                st = self.surrogate(u - self._theta)
                h = u * (1.0 - st)
                out.append(st)
            s = torch.stack(out)
        self._set_memories(v=h)
        return s

    def extra_repr(self) -> str:
        return f"tau={self._tau:g}, theta={self._theta:g}, backend={self._backend!r}, " + super().extra_repr()


class IFNode(LIFNode):
    """Integrate-and-fire: LIF without leak (tau fixed at 1)."""

    kind = "if"
    _fixed_tau = 1.0

    def __init__(self, theta: float = 0.5, surrogate: str | Surrogate = "dspike",
                 temperature: float | None = None, *, step_mode: str = "s", backend: str = "fused"):
        super().__init__(1.0, theta, surrogate, temperature, step_mode=step_mode, backend=backend)


class BinaryNode(LIFNode):
    """The binary neuron of the paper's ablation: LIF with tau fixed at 0 (no memory)."""

    kind = "binary"
    _fixed_tau = 0.0

    def __init__(self, theta: float = 0.5, surrogate: str | Surrogate = "dspike",
                 temperature: float | None = None, *, step_mode: str = "s", backend: str = "fused"):
        super().__init__(0.0, theta, surrogate, temperature, step_mode=step_mode, backend=backend)


class ALIFNode(LIFNode):
    """LIF with an adaptive threshold (REFERENCE §4):
    a_t = rho a_{t-1} + s_{t-1} ; theta_t = theta + beta a_t ; s_t = H(u_t - theta_t).

    State: ``v`` (potential after reset), ``a`` (adaptation a_t), ``s`` (last spikes).
    """

    kind = "alif"

    def __init__(self, tau: float = 0.2, theta: float = 0.5, beta: float = 0.1, rho: float = 0.5,
                 surrogate: str | Surrogate = "dspike", temperature: float | None = None, *,
                 step_mode: str = "s", backend: str = "fused"):
        super().__init__(tau, theta, surrogate, temperature, step_mode=step_mode, backend=backend)
        self.beta = beta
        self.rho = rho
        self.register_memory("a")
        self.register_memory("s")

    @property
    def beta(self) -> float:
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        self._beta = _check_beta(value)

    @property
    def rho(self) -> float:
        return self._rho

    @rho.setter
    def rho(self, value: float) -> None:
        self._rho = _check_rho(value)

    @property
    def spec(self) -> NeuronSpec:
        return NeuronSpec(kind="alif", tau=self._tau, theta=self._theta, beta=self._beta, rho=self._rho,
                          surrogate=self.surrogate.name, temperature=self.surrogate.temperature)

    def _sequence(self, x: Tensor) -> Tensor:
        if self._fused_ok(x) and self._inference(x):
            h, a, sp = (self._memory_inplace(k, x[0]) for k in ("v", "a", "s"))
            s, self._fired = fused.alif_sequence_(x, h, a, sp, self._tau, self._theta, self._beta, self._rho,
                                                  counted=True)
            return s
        h = self._memory("v", x[0])
        a = self._memory("a", x[0])
        sp = self._memory("s", x[0])
        if self._fused_ok(x):
            s, h, a = fused.alif_sequence(x, h, a, sp, self._tau, self._theta, self._beta, self._rho,
                                          self.surrogate)
            sp = s[-1]
        else:
            out = []
            for xt in x.unbind(0):
                a = self._rho * a + sp
                u = self._tau * h + xt
                sp = self.surrogate(u - (self._theta + self._beta * a))
                h = u * (1.0 - sp)
                out.append(sp)
            s = torch.stack(out)
        self._set_memories(v=h, a=a, s=sp)
        return s

    def extra_repr(self) -> str:
        return f"beta={self._beta:g}, rho={self._rho:g}, " + super().extra_repr()


class ReLUNode(BaseNeuron):
    """The ReLU "neuron" of hybrid networks: o_t = ReLU(I_t), no state, real-valued output.

    It has the neuron interface (step_mode, reset, detach, spec) so that HNS can swap it for a spiking
    neuron; both step modes are the same elementwise function.
    """

    kind = "relu"
    is_spiking = False

    def __init__(self, *, step_mode: str = "s"):
        super().__init__(step_mode)

    @property
    def spec(self) -> NeuronSpec:
        return NeuronSpec(kind="relu")

    def forward(self, x: Tensor) -> Tensor:
        if self._step_mode == "m" and x.dim() < 2:
            raise ValueError(f"multi-step input must be [T, B, ...], got shape {tuple(x.shape)}")
        return torch.relu(x)


# -------------------------------------------------------------------------------------------- factory
def make_neuron(spec: NeuronSpec | Mapping[str, Any], *, step_mode: str = "s",
                backend: str = "fused") -> BaseNeuron:
    """Build the neuron a spec describes (a fresh surrogate instance each time)."""
    if not isinstance(spec, NeuronSpec):
        spec = NeuronSpec.from_dict(spec)
    common = dict(surrogate=spec.surrogate, temperature=spec.temperature, step_mode=step_mode,
                  backend=backend)
    if spec.kind == "relu":
        return ReLUNode(step_mode=step_mode)
    if spec.kind == "if":
        return IFNode(spec.theta, **common)
    if spec.kind == "binary":
        return BinaryNode(spec.theta, **common)
    if spec.kind == "alif":
        return ALIFNode(spec.tau, spec.theta, spec.beta, spec.rho, **common)
    return LIFNode(spec.tau, spec.theta, **common)


# -------------------------------------------------------------------------------------- net helpers
def neurons(module: nn.Module) -> Iterator[tuple[str, BaseNeuron]]:
    """(qualified name, neuron) for every neuron in `module`, in registration order."""
    for name, m in module.named_modules():
        if isinstance(m, BaseNeuron):
            yield name, m


def reset_net(module: nn.Module) -> None:
    """Reset the state of every stateful submodule (start of a new sequence, a seek, a gap)."""
    for m in module.modules():
        if isinstance(m, MemoryModule):
            m.reset()


def detach_net(module: nn.Module) -> None:
    """Cut the autograd history of every state (truncated BPTT between chunks)."""
    for m in module.modules():
        if isinstance(m, MemoryModule):
            m.detach()


def set_step_mode(module: nn.Module, mode: str) -> None:
    """Set ``step_mode`` on every StepModule (neurons and time-folding containers)."""
    if mode not in STEP_MODES:
        raise ValueError(f"step_mode must be 's' or 'm', not {mode!r}")
    for m in module.modules():
        if isinstance(m, StepModule):
            m.step_mode = mode
