"""StereoWindow: what every source yields and every consumer takes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class StereoWindow:
    """Left and right events of the time window [t_start_us, t_end_us), with GT when the source has it.

    ``gt_disparity`` is (H, W) float32 in the rectified left view, ``inf`` where invalid, or None.
    ``meta`` carries source-specific facts (sequence name, frame index, ...); ``index`` counts windows
    from the start of the source, and ``gap_before`` tells a consumer that time is not contiguous with
    the previous window (a seek or a dropped stretch), so spiking state must be reset.
    """

    left: np.ndarray
    right: np.ndarray
    t_start_us: int
    t_end_us: int
    sensor_size: tuple[int, int]
    gt_disparity: np.ndarray | None = None
    index: int = 0
    gap_before: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_us(self) -> int:
        return self.t_end_us - self.t_start_us

    @property
    def n_events(self) -> int:
        return len(self.left) + len(self.right)

    def __post_init__(self) -> None:
        if self.t_end_us <= self.t_start_us:
            raise ValueError(f"window end {self.t_end_us} must be after its start {self.t_start_us}")
        if self.gt_disparity is not None:
            w, h = self.sensor_size
            if self.gt_disparity.shape != (h, w):
                raise ValueError(
                    f"GT disparity shape {self.gt_disparity.shape} does not match sensor (H, W) = {(h, w)}"
                )
