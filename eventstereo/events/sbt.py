"""SBT (stacking based on time) encoder, REFERENCE §1.

The window [t_end - window_us, t_end) is cut into ``n_bins`` equal bins; each bin sums the signed
polarities per pixel; bins are stacked as channels, newest first by default. Events outside the window
or the sensor are ignored, and input order does not matter (the kernel scatters), so unsorted input
gives the same frame as sorted input. Bin of an event: ``(t - t_start) * n_bins // window_us`` in exact
integer arithmetic, so an event on a bin edge belongs to the later bin, one at ``t_start`` to the
oldest bin, and one at ``t_end`` to no bin (the next window).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numba
import numpy as np

from eventstereo.events.types import EVENT_DTYPE, SensorSize

MODES = ("sign", "sum", "polarity")


@dataclass(frozen=True)
class SBTSettings:
    """window_us: window length; n_bins: time bins; mode: sign | sum | polarity (2 channels per bin,
    ON then OFF counts); newest_first: channel 0 is the newest bin (the stereo literature's order)."""

    window_us: int = 50_000
    n_bins: int = 5
    mode: str = "sign"
    newest_first: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"SBT mode must be one of {MODES}, not {self.mode!r}")
        if self.n_bins < 1:
            raise ValueError(f"SBT n_bins must be >= 1, not {self.n_bins}")
        if self.window_us < self.n_bins:
            raise ValueError(f"SBT window_us ({self.window_us}) must be at least n_bins ({self.n_bins})")

    @property
    def channels(self) -> int:
        return 2 * self.n_bins if self.mode == "polarity" else self.n_bins

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SBTSettings:
        return cls(**d)


def _make_scatter(newest_first: bool, per_polarity: bool):
    """Compile one scatter kernel per (channel order, polarity layout): the flags become constants, so
    the inner loop carries no mode branches."""

    @numba.njit(nogil=True, boundscheck=False)
    def scatter(events, t_start, window_us, n_bins, out):
        # One pass over the structured array, reading each event's fields where they lie (four strided
        # field views cost ~1.5x more), into a flat index. One well-predicted branch per event tests
        # both "still in the current bin" and "on the sensor" (three unsigned compares, OR-ed without
        # short-circuit: two separate branches cost ~20 % of the pass); only an event that fails it takes
        # the slow path, which drops it or moves to its bin (streams are nearly always time-sorted, so
        # the exact integer division runs about once per bin). The polarity is added without a branch
        # (a random ON/OFF branch mispredicts on every other event). ``bench sbt`` compares this with
        # the floor, a pass that only tests the window end and scatters +-1 into one plane.
        _, h, w = out.shape
        plane = h * w
        flat = out.reshape(-1)
        lo = np.empty(n_bins + 1, np.int64)  # lo[k]: first dt of bin k = ceil(k * window / n_bins)
        for k in range(n_bins + 1):
            lo[k] = -((-k * window_us) // n_bins)
        uw, uh = np.uint64(w), np.uint64(h)
        b_lo, b_len = lo[0], np.uint64(lo[1] - lo[0])
        c = n_bins - 1 if newest_first else 0
        base = (2 * c if per_polarity else c) * plane
        for i in range(events.shape[0]):
            e = events[i]
            dt = e.t - t_start
            xi = np.int64(e.x)
            yi = np.int64(e.y)  # negative coordinates wrap to huge unsigned values
            if (np.uint64(dt - b_lo) >= b_len) | (np.uint64(xi) >= uw) | (np.uint64(yi) >= uh):
                if dt < 0 or dt >= window_us or np.uint64(xi) >= uw or np.uint64(yi) >= uh:
                    continue
                b = (dt * n_bins) // window_us
                b_lo, b_len = lo[b], np.uint64(lo[b + 1] - lo[b])
                c = n_bins - 1 - b if newest_first else b
                base = (2 * c if per_polarity else c) * plane
            on = np.int64(e.p > 0)
            if per_polarity:
                flat[base + (1 - on) * plane + yi * w + xi] += np.float32(1.0)
            else:
                flat[base + yi * w + xi] += np.float32(2 * on - 1)

    return scatter


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _sign_inplace(out):
    """Branch-free sign: numpy's np.sign mispredicts on mixed-sign frames and costs a third of the encode."""
    flat = out.reshape(-1)
    for i in range(flat.shape[0]):
        v = flat[i]
        flat[i] = np.float32(v > 0) - np.float32(v < 0)


_KERNELS: dict[tuple[bool, bool], object] = {}


def _scatter(events, t_start, window_us, n_bins, newest_first, per_polarity, out) -> None:
    key = (bool(newest_first), bool(per_polarity))
    if key not in _KERNELS:
        _KERNELS[key] = _make_scatter(*key)
    _KERNELS[key](events, t_start, window_us, n_bins, out)


def _check_events(events: np.ndarray) -> None:
    names = events.dtype.names or ()
    if not all(f in names for f in "xytp"):
        raise ValueError(f"expected a structured event array with x, y, t, p; got fields {list(names)}")


def encode_into(
    out: np.ndarray, events: np.ndarray, t_end_us: int, settings: SBTSettings
) -> np.ndarray:
    """Encode into a preallocated float32 (C, H, W) array (zeroed here); returns it."""
    _check_events(events)
    out[...] = 0.0
    if len(events):
        _scatter(
            events, np.int64(t_end_us - settings.window_us), np.int64(settings.window_us),
            np.int64(settings.n_bins), settings.newest_first, settings.mode == "polarity", out,
        )
    if settings.mode == "sign":
        _sign_inplace(out)
    return out


def encode_sbt(
    events: np.ndarray, t_end_us: int, sensor_size: SensorSize, settings: SBTSettings = SBTSettings()
) -> np.ndarray:
    """One window's SBT frame: float32 (C, H, W) for the window ending at ``t_end_us``."""
    w, h = sensor_size
    return encode_into(np.empty((settings.channels, h, w), np.float32), events, t_end_us, settings)


def encode_sbt_batch(
    events: np.ndarray, t_ends_us, sensor_size: SensorSize, settings: SBTSettings = SBTSettings()
) -> np.ndarray:
    """Frames (N, C, H, W) for many windows of one stream; windows may overlap or leave gaps.

    Each window reads only its own slice of the (time-sorted) stream, found by binary search;
    unsorted input is sorted first.
    """
    _check_events(events)
    t_ends = np.asarray(t_ends_us, dtype=np.int64).reshape(-1)
    t = events["t"]
    if len(t) > 1 and np.any(np.diff(t) < 0):
        events = events[np.argsort(t, kind="stable")]
        t = events["t"]
    lo = np.searchsorted(t, t_ends - settings.window_us, side="left")
    hi = np.searchsorted(t, t_ends, side="left")
    w, h = sensor_size
    out = np.empty((len(t_ends), settings.channels, h, w), np.float32)
    for k in range(len(t_ends)):
        encode_into(out[k], events[lo[k]:hi[k]], int(t_ends[k]), settings)
    return out


class StreamingSBT:
    """Live encoder: feed time-ordered packets, get each window's frame as soon as the clock passes it.

    Windows end at ``t_origin_us + window_us + k * stride_us`` (stride defaults to the window length,
    giving back-to-back windows; a shorter stride gives overlapping ones). A window is
    complete once an event (or ``advance(t)``) at or after its end has been seen. Events older than the
    oldest window still open are counted in ``late_events`` and dropped. Output equals ``encode_sbt`` of
    the whole stream at each window end.
    """

    def __init__(
        self,
        sensor_size: SensorSize,
        settings: SBTSettings = SBTSettings(),
        *,
        t_origin_us: int = 0,
        stride_us: int | None = None,
    ):
        self.sensor_size = sensor_size
        self.settings = settings
        self.stride_us = int(stride_us or settings.window_us)
        if self.stride_us <= 0:
            raise ValueError("stride_us must be positive")
        self.next_end_us = int(t_origin_us) + settings.window_us
        self._buffer = np.empty(0, EVENT_DTYPE)
        self.late_events = 0

    def push(self, packet: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Add a packet of events; return the (t_end_us, frame) of every window it completed."""
        _check_events(packet)
        if len(packet):
            oldest = self.next_end_us - self.settings.window_us
            late = packet["t"] < oldest
            if late.any():
                self.late_events += int(late.sum())
                packet = packet[~late]
            self._buffer = np.concatenate([self._buffer, packet.astype(EVENT_DTYPE, copy=False)])
        if not len(packet):
            return []
        return self.advance(int(packet["t"].max()))

    def advance(self, t_now_us: int) -> list[tuple[int, np.ndarray]]:
        """Every event before ``t_now_us`` has been pushed: emit each window ending at or before it."""
        done = []
        while self.next_end_us <= t_now_us:
            t_end = self.next_end_us
            done.append((t_end, encode_sbt(self._buffer, t_end, self.sensor_size, self.settings)))
            self.next_end_us += self.stride_us
            keep_from = self.next_end_us - self.settings.window_us
            self._buffer = self._buffer[self._buffer["t"] >= keep_from]
        return done
