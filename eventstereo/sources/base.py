"""The one Source interface that synthetic, MVSEC, DSEC, AEDAT4 and live DAVIS input all follow."""

from __future__ import annotations

from abc import ABC, abstractmethod
from bisect import bisect_right
from collections.abc import Hashable, Iterable, Iterator, Sequence

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

    @property
    def at_end(self) -> bool:
        """No window is left from the current position (a seek past the end of a recording)."""
        return False

    def close(self) -> None:  # noqa: B027 - optional hook: sources without resources need no close
        """Release files or devices; safe to call twice."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> str:
        w, h = self.sensor_size
        return f"{self.name} ({w}x{h}, fxB {self.fxb:.4g} px*m, max disparity {self.max_disparity})"


class WindowRuns(Sequence):
    """The (sequence key, frame) items of an IndexedSource, stored as runs of consecutive frames and
    computed on access: run j holds frames ``start_j .. stop_j - 1`` of ``key_j``.

    Memory grows with the number of runs, never with the number of windows, so a recording whose time
    span implies 1e10 back-to-back windows (one stray timestamp is enough) costs one run; ``len()``,
    indexing and seeking stay O(log runs).
    """

    def __init__(self, runs: Iterable[tuple[Hashable, int, int]] = ()):
        self._keys: list[Hashable] = []
        self._starts: list[int] = []
        self._offsets: list[int] = [0]  # index of each run's first item; the last entry is the length
        for key, start, stop in runs:
            start, stop = int(start), int(stop)
            if stop < start:
                raise ValueError(f"run of {key!r} stops ({stop}) before it starts ({start})")
            if stop == start:
                continue
            if self._keys and self._keys[-1] == key and self._last_frame() + 1 == start:
                self._offsets[-1] += stop - start  # extends the previous run
                continue
            self._keys.append(key)
            self._starts.append(start)
            self._offsets.append(self._offsets[-1] + stop - start)

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[Hashable, int]]) -> WindowRuns:
        """Runs of an explicit (key, frame) list, in its order."""
        return cls((key, int(frame), int(frame) + 1) for key, frame in pairs)

    def _last_frame(self) -> int:
        return self._starts[-1] + self._offsets[-1] - self._offsets[-2] - 1

    def __len__(self) -> int:
        return self._offsets[-1]

    @property
    def n_runs(self) -> int:
        return len(self._keys)

    def run_of(self, i: int) -> int:
        """The run holding item i (0 <= i < len)."""
        return bisect_right(self._offsets, i) - 1

    def run(self, j: int) -> tuple[Hashable, int, int]:
        """(key, first item index, stop item index) of run j."""
        return self._keys[j], self._offsets[j], self._offsets[j + 1]

    def run_frames(self, j: int) -> tuple[Hashable, int, int]:
        """(key, first frame, stop frame) of run j."""
        return self._keys[j], self._starts[j], self._starts[j] + self._offsets[j + 1] - self._offsets[j]

    def run_keys(self) -> list[Hashable]:
        """The distinct keys, in order of first appearance."""
        return list(dict.fromkeys(self._keys))

    def __getitem__(self, i):
        if isinstance(i, slice):
            raise TypeError("WindowRuns does not slice; index single windows")
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"window {i} out of range (0..{n - 1})")
        i = int(i) % n
        j = self.run_of(i)
        return self._keys[j], self._starts[j] + i - self._offsets[j]

    def __iter__(self) -> Iterator[tuple[Hashable, int]]:
        for j, key in enumerate(self._keys):
            start = self._starts[j]
            for f in range(start, start + self._offsets[j + 1] - self._offsets[j]):
                yield key, f

    def __repr__(self) -> str:
        return f"WindowRuns({len(self)} windows in {self.n_runs} runs)"


class IndexedSource(Source):
    """A recorded source whose windows form a sequence ``items`` of (sequence key, frame) pairs.

    Subclasses set ``items`` (a list, converted to :class:`WindowRuns`, or WindowRuns directly for
    windows that follow from arithmetic, so no time span can make the list large) and implement
    ``_window(i, gap_before)`` and ``_window_end_us(i)``, which must increase with the frame within a
    sequence. This class gives random access, iteration from the current position (back to the start
    after a full pass), and seeking. A window is marked ``gap_before`` when its frame does not directly
    follow the previous item's frame of the same sequence, or after a seek.
    """

    _items: WindowRuns = WindowRuns()
    _pos: int = 0
    _gap_next: bool = False

    @property
    def items(self) -> WindowRuns:
        return self._items

    @items.setter
    def items(self, value: Iterable[tuple[Hashable, int]]) -> None:
        self._items = value if isinstance(value, WindowRuns) else WindowRuns.from_pairs(value)

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

    @property
    def at_end(self) -> bool:
        return self._pos >= len(self.items)

    def seek_window(self, i: int) -> None:
        """Continue from window i; the next window is marked as following a gap."""
        if not 0 <= i <= len(self.items):
            raise IndexError(f"window {i} out of range (0..{len(self.items)})")
        self._pos, self._gap_next = i, True

    def seek(self, t_us: int) -> None:
        """Continue from the first window of the current sequence that ends at or after ``t_us`` (past
        the sequence's last window when none does). Binary search within each run of frames."""
        runs = self.items
        cur = runs[min(self._pos, len(runs) - 1)][0]
        after = None
        for j in range(runs.n_runs):
            key, a, b = runs.run(j)
            if key != cur:
                continue
            after = b
            if self._window_end_us(b - 1) < t_us:
                continue
            while a < b - 1:  # first i in [a, b) whose window ends at or after t_us
                mid = (a + b - 1) // 2
                if self._window_end_us(mid) >= t_us:
                    b = mid + 1
                else:
                    a = mid + 1
            self.seek_window(a)
            return
        self.seek_window(after)
