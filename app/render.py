"""What the views show, computed from a WindowResult with numpy only (no Qt), in the worker thread.

The GUI thread then only hands ready arrays to ImageItems with fixed levels, so drawing costs the same
whatever the scene does. Event images are signed: ON counts minus OFF counts (``onoff``), or the sum of
the SBT bins the model sees (``sbt``), accumulated over the last ``accumulate`` windows.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from eventstereo.events.sbt import SBTSettings, encode_sbt
from eventstereo.runtime.session import WindowResult

EVENT_MODES = ("onoff", "sbt")
ERROR_RANGE_PX = 5.0
"""The error map's colour range: 0 to 5 px (beyond 1 px a pixel is wrong for 1PA)."""


@dataclass(frozen=True)
class ViewSettings:
    """How event views are drawn: ``mode`` onoff | sbt, ``accumulate`` windows summed, SBT ``bins``."""

    mode: str = "onoff"
    accumulate: int = 1
    bins: int = 5

    def __post_init__(self) -> None:
        if self.mode not in EVENT_MODES:
            raise ValueError(f"event view mode must be one of {EVENT_MODES}, not {self.mode!r}")
        if self.accumulate < 1 or self.bins < 1:
            raise ValueError("accumulate and bins must be >= 1")

    def level(self) -> float:
        """The fixed colour range +-level of an event image."""
        return float(3 * self.accumulate if self.mode == "onoff" else max(1, self.bins) * self.accumulate)


def signed_counts(events: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) float32: ON events minus OFF events per pixel."""
    w, h = size
    idx = events["y"].astype(np.int64) * w + events["x"].astype(np.int64)
    sign = np.where(events["p"] > 0, 1.0, -1.0)
    return np.bincount(idx, weights=sign, minlength=w * h)[: w * h].reshape(h, w).astype(np.float32)


def sbt_sum(events: np.ndarray, t_end_us: int, size: tuple[int, int], window_us: int,
            bins: int) -> np.ndarray:
    """(H, W) float32: the sign-SBT bins of the window summed (each in -1..1)."""
    settings = SBTSettings(window_us=window_us, n_bins=bins, mode="sign")
    return encode_sbt(events, t_end_us, size, settings).sum(0)


@dataclass
class Frame:
    """Everything one redraw needs; ``t_ready`` is the perf_counter when it was made."""

    result: WindowResult
    left: np.ndarray
    right: np.ndarray
    disparity: np.ndarray
    gt: np.ndarray | None
    error: np.ndarray | None
    events_per_s: float
    level: float
    t_ready: float = 0.0


class FrameMaker:
    """Turns WindowResults into Frames, keeping the last windows' event images for accumulation."""

    def __init__(self, view: ViewSettings = ViewSettings()):
        self.view = view
        self._left: deque = deque()
        self._right: deque = deque()

    def __call__(self, r: WindowResult) -> Frame:
        import time

        view, win = self.view, r.window
        if r.reset:
            self._left.clear()
            self._right.clear()
        for side, events in ((self._left, win.left), (self._right, win.right)):
            if view.mode == "onoff":
                img = signed_counts(events, win.sensor_size)
            else:
                img = sbt_sum(events, win.t_end_us, win.sensor_size, win.duration_us, view.bins)
            side.append(img)
            while len(side) > view.accumulate:
                side.popleft()
        gt = error = None
        if r.gt is not None:
            valid = np.isfinite(r.gt)
            gt = np.where(valid, r.gt, np.nan).astype(np.float32)
            error = np.where(valid, np.abs(r.disparity - r.gt), np.nan).astype(np.float32)
        seconds = max(win.duration_us, 1) / 1e6
        return Frame(r, _total(self._left), _total(self._right), r.disparity, gt, error,
                     win.n_events / seconds, view.level(), time.perf_counter())


def _total(images: deque) -> np.ndarray:
    out = images[0].copy()
    for img in list(images)[1:]:
        if img.shape == out.shape:
            out += img
    return out


def colorize(values: np.ndarray, lut: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(H, W, 3) uint8 BGR through ``lut`` (N, 3 RGB) over [lo, hi]; NaN/inf pixels black (for video)."""
    finite = np.isfinite(values)
    scale = (len(lut) - 1) / max(hi - lo, 1e-9)
    idx = np.clip((np.where(finite, values, lo) - lo) * scale, 0, len(lut) - 1).astype(np.int64)
    rgb = lut[idx]
    rgb[~finite] = 0
    return np.ascontiguousarray(rgb[..., ::-1])


def fmt(v: float | None, spec: str, unit: str = "") -> str:
    """A status-line number: '-' when there is none."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, spec) + unit
