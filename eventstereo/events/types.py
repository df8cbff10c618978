"""The one event representation: a tonic-compatible structured array (REFERENCE §1).

Fields are read by name everywhere, so arrays from tonic (any field order) are accepted as they are.
"""

from __future__ import annotations

import numpy as np

from eventstereo.errors import InputError

EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])
"""x, y pixel (int16), t microseconds (int64), p polarity (int8: 1 = ON, 0 or -1 = OFF)."""

SensorSize = tuple[int, int]
"""(W, H), written like tonic."""


def make_events(x, y, t, p) -> np.ndarray:
    """Build an EVENT_DTYPE array from four equal-length sequences (polarity: >0 is ON, else OFF)."""
    x, y, t, p = (np.asarray(a) for a in (x, y, t, p))
    n = len(x)
    if not (len(y) == len(t) == len(p) == n):
        raise InputError(f"x, y, t, p lengths differ: {len(x)}, {len(y)}, {len(t)}, {len(p)}")
    ev = np.empty(n, dtype=EVENT_DTYPE)
    ev["x"], ev["y"], ev["t"] = x, y, t
    ev["p"] = np.where(p > 0, 1, 0)
    return ev


def empty_events() -> np.ndarray:
    return np.empty(0, dtype=EVENT_DTYPE)


def from_tonic(events: np.ndarray) -> np.ndarray:
    """Convert a tonic structured array (fields x, y, t, p in any order and width) to EVENT_DTYPE."""
    names = events.dtype.names or ()
    missing = [f for f in "xytp" if f not in names]
    if missing:
        raise InputError(f"tonic events lack field(s) {missing}; have {list(names)}")
    return make_events(events["x"], events["y"], events["t"], events["p"])


def from_xytp_array(array: np.ndarray, *, time_scale: float = 1e6, t0: float = 0.0) -> np.ndarray:
    """Convert an MVSEC-style (N, 4) float array [x, y, t, p] to EVENT_DTYPE.

    ``t`` is converted to integer microseconds as round((t - t0) * time_scale); MVSEC stores seconds of ROS
    time, so pass ``t0`` (seconds) to keep the numbers small and exact.
    """
    array = np.asarray(array)
    if array.ndim != 2 or array.shape[1] != 4:
        raise InputError(f"expected an (N, 4) array of x, y, t, p; got shape {array.shape}")
    t_us = np.rint((array[:, 2] - t0) * time_scale).astype(np.int64)
    return make_events(np.rint(array[:, 0]), np.rint(array[:, 1]), t_us, array[:, 3])


def polarity_sign(events: np.ndarray) -> np.ndarray:
    """+1 for ON, -1 for OFF, whatever convention (0/1 or -1/1, bool) the array uses."""
    return np.where(events["p"] > 0, 1, -1).astype(np.int8)


def validate_events(
    events: np.ndarray,
    sensor_size: SensorSize,
    *,
    source: str = "events",
    policy: str = "raise",
) -> np.ndarray:
    """Check that events are time-sorted and inside the (W, H) sensor.

    policy ``"raise"``: raise InputError naming the source and the first bad event.
    policy ``"repair"``: stable-sort by time and drop events outside the sensor (returns a new array).
    """
    if policy not in ("raise", "repair"):
        raise ValueError(f"policy must be 'raise' or 'repair', not {policy!r}")
    names = events.dtype.names or ()
    if not all(f in names for f in "xytp"):
        raise InputError(f"not an event array (fields {list(names)}; need x, y, t, p)", source=source)
    if len(events) == 0:
        return events
    w, h = sensor_size
    x, y, t = events["x"], events["y"], events["t"]
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    unsorted = np.flatnonzero(np.diff(t) < 0)
    if policy == "raise":
        if len(unsorted):
            i = int(unsorted[0])
            raise InputError(
                f"events are not sorted by time: t[{i}] = {int(t[i])} > t[{i + 1}] = {int(t[i + 1])} "
                f"({len(unsorted)} decreases in all)",
                source=source,
            )
        if not inside.all():
            i = int(np.flatnonzero(~inside)[0])
            raise InputError(
                f"event {i} at (x={int(x[i])}, y={int(y[i])}) is outside the {w}x{h} sensor "
                f"({int((~inside).sum())} events outside in all)",
                source=source,
            )
        return events
    out = events[inside]
    if len(unsorted):
        out = out[np.argsort(out["t"], kind="stable")]
    return out
