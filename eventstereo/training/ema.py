"""An exponential moving average of a model's weights, the copy that gets validated and exported.

Late in training, Adam's steps make the weights hop around a minimum; their running average sits
closer to it and usually scores better on unseen data than any single iterate. BatchNorm statistics
are averaged with the weights so the copy stays self-consistent; integer buffers (BN step counters)
are copied. The average is kept in a separate module, so training never sees it.
"""

from __future__ import annotations

import copy

import torch


@torch.no_grad()
def lerp_state_(target: torch.nn.Module, source: torch.nn.Module, weight: float) -> None:
    """``target <- target + weight * (source - target)`` over the whole state dict, in place: weights and
    BatchNorm statistics are interpolated, integer counters (num_batches_tracked) copied from ``source``.
    The weight average of training and tools/blend_models.py both mix models this way."""
    state = target.state_dict()
    for name, value in source.state_dict().items():
        dst = state[name]
        if dst.is_floating_point():
            dst.lerp_(value.to(dst.device), weight)
        else:
            dst.copy_(value)


class WeightAverage:
    """``avg <- decay * avg + (1 - decay) * model`` over the whole state dict, after each optimizer step.

    ``module`` is a deep copy of the model (taken at construction: reset the spiking state first) with
    gradients off; ``updates`` counts the steps averaged, for logs and checkpoints.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}")
        self.decay = float(decay)
        self.module = copy.deepcopy(model)
        self.module.requires_grad_(False)
        self.updates = 0

    def update(self, model: torch.nn.Module) -> None:
        lerp_state_(self.module, model, 1.0 - self.decay)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "weights": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["weights"], strict=True)
        self.updates = int(state.get("updates", 0))
