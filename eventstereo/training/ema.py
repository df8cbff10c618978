"""An exponential moving average of a model's weights, the copy that gets validated and exported.

Late in training, Adam's steps make the weights hop around a minimum; their running average sits
closer to it and usually scores better on unseen data than any single iterate. BatchNorm statistics
are averaged with the weights so the copy stays self-consistent; integer buffers (BN step counters)
are copied. The average is kept in a separate module, so training never sees it.
"""

from __future__ import annotations

import copy

import torch


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

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        averaged = self.module.state_dict()
        for name, value in model.state_dict().items():
            target = averaged[name]
            if target.is_floating_point():
                target.lerp_(value.to(target.device), 1.0 - self.decay)
            else:
                target.copy_(value)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "weights": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["weights"], strict=True)
        self.updates = int(state.get("updates", 0))
