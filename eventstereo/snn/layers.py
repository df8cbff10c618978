"""Containers that let stateless layers (conv, BN, pooling) take multi-step input.

Neurons handle [T, B, ...] themselves; a stateless layer only needs T and B merged into one batch
dimension. ``SeqToANN`` does that in 'm' mode and is transparent in 's' mode, so one network definition
serves streaming and training, switched by ``set_step_mode``.
"""

from __future__ import annotations

from torch import Tensor, nn

from eventstereo.snn.neurons import StepModule

__all__ = ["SeqToANN"]


class SeqToANN(StepModule):
    """Apply stateless `modules` (in sequence) to [B, ...] ('s') or [T, B, ...] ('m').

    The wrapped layers sit in ``self.body`` (an nn.Sequential), so BatchNorm folding and parameter names
    see an ordinary Sequential.
    """

    def __init__(self, *modules: nn.Module, step_mode: str = "s"):
        super().__init__(step_mode)
        if not modules:
            raise ValueError("SeqToANN needs at least one module")
        self.body = nn.Sequential(*modules)

    def forward(self, x: Tensor) -> Tensor:
        if self._step_mode == "s":
            return self.body(x)
        if x.dim() < 2:
            raise ValueError(f"multi-step input must be [T, B, ...], got shape {tuple(x.shape)}")
        T, B = x.shape[:2]
        y = self.body(x.flatten(0, 1))
        return y.unflatten(0, (T, B))
