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


class IndexedSource(Source):
    """A recorded source whose windows form a list ``items`` of (sequence key, frame) pairs.

    Subclasses set ``items`` and implement ``_window(i, gap_before)`` and ``_window_end_us(i)``; this class
    gives random access, iteration from the current position (back to the start after a full pass), and
    seeking. A window is marked ``gap_before`` when its frame does not directly follow the previous item's
    frame of the same sequence, or after a seek.
    """

    items: list[tuple]
    _pos: int = 0
    _gap_next: bool = False

    @abstractmethod
    def _window(self, i: int, gap_before: bool) -> StereoWindow:
        """Read window i of ``items``."""

    @abstractmethod
    def _window_end_us(self, i: int) -> int:
        """End of window i in microseconds on its sequence's clock (what ``seek`` compares against)."""

    def __len__(self) -> int:
        return len(self.items)

    def _consecutive(self, i: int) -> bool:
        if i == 0:
            return True
        (s0, f0), (s1, f1) = self.items[i - 1], self.items[i]
        return s0 == s1 and f1 == f0 + 1

    def read_window(self, i: int, *, gap_before: bool | None = None) -> StereoWindow:
        """Window i (random access); gap_before defaults to 'frame does not follow item i-1'."""
        if not -len(self.items) <= i < len(self.items):
            raise IndexError(f"window {i} out of range (0..{len(self.items) - 1})")
        i %= len(self.items)
        return self._window(i, (not self._consecutive(i)) if gap_before is None else gap_before)

    def __iter__(self) -> Iterator[StereoWindow]:
        while self._pos < len(self.items):
            i = self._pos
            gap = self._gap_next or not self._consecutive(i)
            self._gap_next = False
            win = self.read_window(i, gap_before=gap)
            self._pos = i + 1
            yield win
        self._pos = 0

    def seek_window(self, i: int) -> None:
        """Continue from window i; the next window is marked as following a gap."""
        if not 0 <= i <= len(self.items):
            raise IndexError(f"window {i} out of range (0..{len(self.items)})")
        self._pos, self._gap_next = i, True

    def seek(self, t_us: int) -> None:
        """Continue from the first window of the current sequence that ends at or after ``t_us``."""
        cur = self.items[min(self._pos, len(self.items) - 1)][0]
        idx = [i for i, (s, _) in enumerate(self.items) if s == cur]
        for i in idx:
            if self._window_end_us(i) >= t_us:
                self.seek_window(i)
                return
        self.seek_window(idx[-1] + 1)
