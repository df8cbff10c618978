"""Sub-pixel cross-entropy (Practical Deep Stereo, REFERENCE §7).

The target is a Laplace distribution around the ground truth sampled at the disparity planes, so the
network is rewarded for putting mass on the two planes that bracket a fractional GT disparity, which is
what lets the MAP estimator recover sub-pixel values.
"""

from __future__ import annotations

import torch


def subpixel_cross_entropy(
    cost: torch.Tensor, gt: torch.Tensor, b: float = 1.0, disparities: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean over pixels with finite GT of ``-sum_k P_k log softmax(cost)_k``.

    ``cost`` is (..., D, H, W) (higher = more likely), ``gt`` (..., H, W) in pixels with inf/NaN where
    unknown; ``P_k ∝ exp(-|d_k - gt| / b)`` with ``d_k = disparities[k]`` (default ``0..D-1``).
    With no valid pixel the loss is a zero that still has a graph, so a training step never breaks.
    """
    if b <= 0:
        raise ValueError(f"Laplace width b must be > 0, got {b}")
    if cost.dim() < 3 or cost.shape[:-3] + cost.shape[-2:] != gt.shape:
        raise ValueError(
            f"cost (..., D, H, W) and gt (..., H, W) disagree: {tuple(cost.shape)} vs {tuple(gt.shape)}"
        )
    n_planes = cost.shape[-3]
    if disparities is None:
        disparities = torch.arange(n_planes, device=cost.device, dtype=cost.dtype)
    else:
        disparities = torch.as_tensor(disparities, device=cost.device, dtype=cost.dtype)
    valid = torch.isfinite(gt)
    if not bool(valid.any()):
        return cost.sum() * 0.0
    scores = cost.movedim(-3, -1)[valid]  # (N, D): only the pixels that are scored
    target_d = gt[valid].to(cost.dtype).unsqueeze(-1)
    # log P_k up to a constant, normalised with logsumexp (stable even for far-out GT values).
    log_target = -(disparities - target_d).abs() / b
    target = torch.softmax(log_target, dim=-1)
    log_p = torch.log_softmax(scores, dim=-1)
    return -(target * log_p).sum(dim=-1).mean()
