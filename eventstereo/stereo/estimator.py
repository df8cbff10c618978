"""Sub-pixel MAP disparity estimator (Practical Deep Stereo, REFERENCE §7).

Soft-argmin over all planes is biased towards the middle of the range when the distribution is
multi-modal; the MAP estimator first picks the best plane and only averages its neighbourhood, so a
second mode far away cannot pull the estimate.
"""

from __future__ import annotations

import torch


def subpixel_map(
    cost: torch.Tensor, disparities: torch.Tensor | None = None, radius: int = 2
) -> torch.Tensor:
    """Disparity (..., H, W) from a matching cost (..., D, H, W), higher = more likely.

    ``k* = argmax_k cost_k``; a softmax over the planes ``k* - radius .. k* + radius`` that exist
    (planes outside the range are ignored) weights their disparities ``disparities[k]``
    (default ``0..D-1``). Differentiable with respect to ``cost`` inside the window.
    """
    if cost.dim() < 3:
        raise ValueError(f"cost must be (..., D, H, W), got shape {tuple(cost.shape)}")
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    n_planes = cost.shape[-3]
    if disparities is None:
        disparities = torch.arange(n_planes, device=cost.device, dtype=cost.dtype)
    else:
        disparities = torch.as_tensor(disparities, device=cost.device, dtype=cost.dtype)
        if disparities.shape != (n_planes,):
            raise ValueError(f"disparities must have shape ({n_planes},), got {tuple(disparities.shape)}")
    best = cost.argmax(dim=-3, keepdim=True)  # (..., 1, H, W)
    offsets = torch.arange(-radius, radius + 1, device=cost.device).view(-1, 1, 1)
    idx = best + offsets  # (..., 2r+1, H, W)
    valid = (idx >= 0) & (idx < n_planes)
    idx = idx.clamp(0, n_planes - 1)
    window = cost.gather(-3, idx).masked_fill(~valid, float("-inf"))
    weights = torch.softmax(window, dim=-3)
    return (weights * disparities[idx]).sum(dim=-3)
