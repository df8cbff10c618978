"""The one Source interface that synthetic, MVSEC, DSEC, AEDAT4 and live DAVIS input all follow."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

from eventstereo.events.window import StereoWindow


class Source(ABC):
    """An iterable of StereoWindows from one stereo event stream (recorded or live).

    Every source knows its sensor size (W, H), its rectified ``fxb`` (focal length x baseline, px*m, so
    depth = fxb / disparity) and the ``max_disparity`` a network should cover. Sources that can jump in
    time implement ``seek``; the first window after a seek has ``gap_before=True``. ``len()`` is the
    number of windows when known (recordings, splits), else TypeError (live).
    """

    name: str = "source"
    sensor_size: tuple[int, int]
    fxb: float
    max_disparity: int = 63
    window_us: int = 50_000
    has_gt: bool = False

    @abstractmethod
    def __iter__(self) -> Iterator[StereoWindow]:
        """Yield windows from the current position onward."""

    def seek(self, t_us: int) -> None:
        """Continue from time ``t_us`` (microseconds, source clock)."""
        raise NotImplementedError(f"{self.name} cannot seek")

    @property
    def can_seek(self) -> bool:
        return type(self).seek is not Source.seek

    def close(self) -> None:  # noqa: B027 - optional hook: sources without resources need no close
        """Release files or devices; safe to call twice."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> str:
        w, h = self.sensor_size
        return f"{self.name} ({w}x{h}, fxB {self.fxb:.4g} px*m, max disparity {self.max_disparity})"
