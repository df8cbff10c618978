"""Surrogate gradients for the spike (Heaviside) function, REFERENCE §5.

The forward pass of every surrogate is the strict step H(x) = 1 if x > 0 else 0, where x = u - theta.
The backward pass replaces the step's zero-almost-everywhere derivative by a smooth bump whose width
is set by a *temperature* (Dspike's b, Triangle's half-width, ...). The temperature is a plain mutable
float so that DGS can move it between training steps; the value in effect during a forward pass is the
one its backward uses.

Each surrogate is an ``nn.Module`` (so it shows in ``print(model)`` and moves with ``.to()``), holding
its temperature and a ``spiking`` flag: with ``spiking=False`` the forward returns the smooth primitive
whose exact derivative is the surrogate (useful to check a surrogate, or to anneal towards the step).
Every neuron owns a fresh instance; nothing is shared through default arguments.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn

__all__ = [
    "Surrogate",
    "Dspike",
    "Triangle",
    "SuperSpike",
    "ArcTan",
    "Sigmoid",
    "SURROGATES",
    "make_surrogate",
    "spike",
]


class _Heaviside(torch.autograd.Function):
    """Strict step forward, surrogate derivative backward. Stores only x."""

    @staticmethod
    def forward(ctx, x: Tensor, derivative, temperature: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.derivative = derivative
        ctx.temperature = temperature
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * ctx.derivative(x, ctx.temperature), None, None


class Surrogate(nn.Module):
    """Base class: subclasses define ``derivative`` (the backward) and ``primitive`` (its integral).

    ``numba_code`` identifies the formula to the fused CPU kernels (eventstereo.snn.fused); a subclass
    without one still works everywhere, the fused path then evaluates ``derivative`` with torch ops.
    """

    name: ClassVar[str] = ""
    default_temperature: ClassVar[float] = 1.0
    numba_code: ClassVar[int | None] = None

    def __init__(self, temperature: float | None = None, *, spiking: bool = True):
        super().__init__()
        self.temperature = self.default_temperature if temperature is None else temperature
        self.spiking = bool(spiking)

    @property
    def temperature(self) -> float:
        return self._temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        value = float(value)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{type(self).__name__} temperature must be a finite number > 0, not {value}")
        self._temperature = value

    @staticmethod
    def derivative(x: Tensor, temperature: float) -> Tensor:
        """d spike / d x used in backward; x = u - theta."""
        raise NotImplementedError

    @staticmethod
    def primitive(x: Tensor, temperature: float) -> Tensor:
        """A smooth function whose derivative is ``derivative`` (forward when spiking is False)."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        if self.spiking:
            return _Heaviside.apply(x, type(self).derivative, self._temperature)
        return self.primitive(x, self._temperature)

    def grad(self, x: Tensor) -> Tensor:
        """The surrogate derivative at the current temperature (no autograd involved)."""
        return self.derivative(x, self._temperature)

    def extra_repr(self) -> str:
        return f"temperature={self._temperature:g}" + ("" if self.spiking else ", spiking=False")


class Dspike(Surrogate):
    """Dspike (Li et al. 2021), the project default with b = 3.

    dS/dx = b (1 - tanh^2(b x)) / (2 tanh(b / 2)) for |x| < 0.5, else 0: the derivative of a tanh ramp
    scaled to rise from 0 to 1 across [theta - 0.5, theta + 0.5]. Small b approaches straight-through,
    large b the step.
    """

    name = "dspike"
    default_temperature = 3.0
    numba_code = 0

    @staticmethod
    def derivative(x: Tensor, temperature: float) -> Tensor:
        b = temperature
        th = torch.tanh(b * x)
        val = (b / (2.0 * math.tanh(b / 2.0))) * (1.0 - th * th)
        return torch.where(x.abs() < 0.5, val, torch.zeros_like(val))

    @staticmethod
    def primitive(x: Tensor, temperature: float) -> Tensor:
        b = temperature
        ramp = 0.5 * (torch.tanh(b * x) / math.tanh(b / 2.0) + 1.0)
        return torch.where(x <= -0.5, torch.zeros_like(x), torch.where(x >= 0.5, torch.ones_like(x), ramp))


class Triangle(Surrogate):
    """Triangle with half-width g (the temperature): (1 / g^2) max(0, g - |x|); area 1."""

    name = "triangle"
    default_temperature = 1.0
    numba_code = 1

    @staticmethod
    def derivative(x: Tensor, temperature: float) -> Tensor:
        g = temperature
        return torch.clamp(g - x.abs(), min=0.0) / (g * g)

    @staticmethod
    def primitive(x: Tensor, temperature: float) -> Tensor:
        g = temperature
        xc = torch.clamp(x, -g, g)
        left = (xc + g) ** 2 / (2 * g * g)
        right = 1.0 - (g - xc) ** 2 / (2 * g * g)
        return torch.where(xc < 0, left, right)


class SuperSpike(Surrogate):
    """SuperSpike (Zenke & Ganguli 2018): 1 / (1 + k |x|)^2 with steepness k (the temperature)."""

    name = "superspike"
    default_temperature = 10.0
    numba_code = 2

    @staticmethod
    def derivative(x: Tensor, temperature: float) -> Tensor:
        return 1.0 / (1.0 + temperature * x.abs()) ** 2

    @staticmethod
    def primitive(x: Tensor, temperature: float) -> Tensor:
        return 0.5 + x / (1.0 + temperature * x.abs())


class ArcTan(Surrogate):
    """ArcTan: a / (2 (1 + (pi a x / 2)^2)), the derivative of arctan(pi a x / 2) / pi + 1/2."""

    name = "arctan"
    default_temperature = 2.0
    numba_code = 3

    @staticmethod
    def derivative(x: Tensor, temperature: float) -> Tensor:
        a = temperature
        z = (math.pi * a / 2.0) * x
        return (a / 2.0) / (1.0 + z * z)

    @staticmethod
    def primitive(x: Tensor, temperature: float) -> Tensor:
        return torch.atan((math.pi * temperature / 2.0) * x) / math.pi + 0.5


class Sigmoid(Surrogate):
    """Sigmoid: a sig(a x) (1 - sig(a x)), the derivative of sig(a x)."""

    name = "sigmoid"
    default_temperature = 4.0
    numba_code = 4

    @staticmethod
    def derivative(x: Tensor, temperature: float) -> Tensor:
        sg = torch.sigmoid(temperature * x)
        return temperature * sg * (1.0 - sg)

    @staticmethod
    def primitive(x: Tensor, temperature: float) -> Tensor:
        return torch.sigmoid(temperature * x)


SURROGATES: dict[str, type[Surrogate]] = {
    cls.name: cls for cls in (Dspike, Triangle, SuperSpike, ArcTan, Sigmoid)
}


def make_surrogate(name: str, temperature: float | None = None) -> Surrogate:
    """A fresh surrogate by name (case-insensitive); temperature None means the surrogate's default."""
    key = name.lower() if isinstance(name, str) else name
    if key not in SURROGATES:
        raise ValueError(f"unknown surrogate {name!r}; known: {', '.join(sorted(SURROGATES))}")
    return SURROGATES[key](temperature)


def spike(x: Tensor, surrogate: Surrogate) -> Tensor:
    """Functional form: the step of x = u - theta with ``surrogate``'s backward."""
    return surrogate(x)
