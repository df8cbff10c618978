"""A tiny seekable stereo source and a parameter-free stateful matcher, for testing the session loop."""

from __future__ import annotations

import numpy as np
import torch

from eventstereo.events.types import make_events
from eventstereo.events.window import StereoWindow
from eventstereo.sources.base import Source

W, H, DISP, WINDOW_US = 24, 16, 3, 10_000


class ToySource(Source):
    """Sparse random dots; the right view is the left shifted by DISP px, GT = DISP where the left fires."""

    name = "toy"
    sensor_size = (W, H)
    fxb = 0.5
    max_disparity = 7
    window_us = WINDOW_US
    has_gt = True

    def __init__(self, n: int = 10, *, gap_at: tuple[int, ...] = (), fail_at: int | None = None):
        self.n, self.gap_at, self.fail_at = n, gap_at, fail_at
        self.pos, self._seeked = 0, False

    def window(self, k: int, gap: bool) -> StereoWindow:
        rng = np.random.default_rng(k)
        n = 12
        x = rng.integers(DISP + 1, W - 1, n)
        y = rng.integers(0, H, n)
        t = np.sort(rng.integers(k * WINDOW_US, (k + 1) * WINDOW_US, n))
        p = rng.integers(0, 2, n)
        gt = np.full((H, W), np.inf, np.float32)
        gt[y, x] = DISP
        return StereoWindow(make_events(x, y, t, p), make_events(x - DISP, y, t, p), k * WINDOW_US,
                            (k + 1) * WINDOW_US, (W, H), gt, index=k, gap_before=gap)

    def __iter__(self):
        while self.pos < self.n:
            k = self.pos
            self.pos += 1
            if k == self.fail_at:
                raise RuntimeError(f"toy source broke at window {k}")
            gap, self._seeked = self._seeked or k in self.gap_at, False
            yield self.window(k, gap)

    def seek(self, t_us: int) -> None:
        self.pos, self._seeked = t_us // WINDOW_US, True


class ToyMatcher(torch.nn.Module):
    """cost[d] = 10 * correlation of left with right shifted by d; counts steps since the last reset."""

    def __init__(self, max_disparity: int = 7):
        super().__init__()
        self.max_disparity = max_disparity
        self.steps_since_reset = 0
        self.seen: list[int] = []  # steps_since_reset at each step

    def reset(self) -> None:
        self.steps_since_reset = 0

    def step(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        self.steps_since_reset += 1
        self.seen.append(self.steps_since_reset)
        planes = []
        for d in range(self.max_disparity + 1):
            shifted = torch.zeros_like(right)
            shifted[..., d:] = right[..., : right.shape[-1] - d]
            planes.append((left * shifted).abs().sum(1))
        return 10.0 * torch.stack(planes, 1)
