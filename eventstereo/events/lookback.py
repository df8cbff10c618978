"""Look-back windows: a window with too few events borrows the preceding windows' events.

A model trained on fixed 50 ms windows of a fast-moving camera sees few events per window when the rig
moves slowly, and it then fills in most of the image from little evidence (issue 13: a slow third-party
scene, far backdrops). An event stream of a camera moving k times slower over k windows looks much like
one window of the fast camera, so a frame whose SBT bins span the last k windows (still ending at the
window's end, where its GT is) gives the model the input it was trained on. ``min_density`` sets the
events per pixel a frame must reach (the mean of the two eyes, so both eyes always span the same time;
per pixel, so one setting serves every sensor size); the frame grows by whole windows, at most
``max_windows`` in all, and never across a gap in time (a seek, a dropped window, the start of a run).
Off by default (``min_density=0``).

Measured on the bundled model (tools/README.md, "Look-back windows"): a slow, clean camera gains several
points of 1PA; a noisy sensor (shot noise above about 1 Hz per pixel) does not, since the longer frame
gathers the noise as well.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from eventstereo.events.sbt import SBTSettings
from eventstereo.events.window import StereoWindow


@dataclass(frozen=True)
class LookbackSettings:
    """min_density: events per pixel (mean of the two eyes) a frame must hold before it stops borrowing
    earlier windows (0 = off: every frame is its own window); max_windows: most windows one frame may
    span."""

    min_density: float = 0.0
    max_windows: int = 10

    def __post_init__(self) -> None:
        if not self.min_density >= 0:  # also refuses NaN
            raise ValueError(f"min_density must be >= 0, not {self.min_density}")
        if self.max_windows < 1:
            raise ValueError(f"max_windows must be >= 1, not {self.max_windows}")

    @property
    def enabled(self) -> bool:
        return self.min_density > 0 and self.max_windows > 1


@dataclass(frozen=True)
class Span:
    """The events of one frame: both eyes from ``t_start_us`` to the window's end, over ``windows``."""

    left: np.ndarray
    right: np.ndarray
    t_start_us: int
    windows: int

    def sbt_settings(self, settings: SBTSettings, t_end_us: int) -> SBTSettings:
        """``settings`` with the window stretched over the span (the same bins, each longer)."""
        return settings if self.windows == 1 else replace(settings, window_us=t_end_us - self.t_start_us)


class WindowHistory:
    """The recent contiguous windows of one stream, and the span each new window's frame covers."""

    def __init__(self, settings: LookbackSettings = LookbackSettings()):
        self.settings = settings
        self._recent: deque[StereoWindow] = deque(maxlen=settings.max_windows)

    def reset(self) -> None:
        """Forget the past (a seek or a new run): the next frame is its own window."""
        self._recent.clear()

    def span(self, window: StereoWindow) -> Span:
        """Add ``window`` and return the events of its frame (see the module docstring)."""
        recent = self._recent
        if window.gap_before or (recent and recent[-1].t_end_us != window.t_start_us):
            recent.clear()
        recent.append(window)
        width, height = window.sensor_size
        needed = self.settings.min_density * width * height
        k, count = 0, 0.0
        for w in reversed(recent):
            k += 1
            count += (len(w.left) + len(w.right)) / 2
            if count >= needed:
                break
        if k == 1:
            return Span(window.left, window.right, window.t_start_us, 1)
        used = list(recent)[-k:]
        return Span(np.concatenate([w.left for w in used]), np.concatenate([w.right for w in used]),
                    used[0].t_start_us, k)
