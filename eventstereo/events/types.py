"""The one event representation: a tonic-compatible structured array (REFERENCE §1).

Fields are read by name everywhere, so arrays from tonic (any field order) are accepted as they are.
"""

from __future__ import annotations

import logging

import numpy as np

from eventstereo.errors import InputError

log = logging.getLogger(__name__)

EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])
"""x, y pixel (int16), t microseconds (int64), p polarity (int8: 1 = ON, 0 or -1 = OFF)."""

SensorSize = tuple[int, int]
"""(W, H), written like tonic."""


def _first_nonfinite(name: str, a: np.ndarray) -> None:
    if a.dtype.kind in "fc" and len(a) and not np.isfinite(a).all():
        i = int(np.flatnonzero(~np.isfinite(a))[0])
        raise InputError(f"event {i} has {name} = {a[i]} ({int((~np.isfinite(a)).sum())} non-finite {name} "
                         f"value(s) in all)")


def make_events(x, y, t, p) -> np.ndarray:
    """Build an EVENT_DTYPE array from four equal-length sequences (polarity: >0 is ON, else OFF).

    A NaN or inf in any of them is an InputError naming the first one (it has no pixel, time or sign).
    """
    x, y, t, p = (np.asarray(a) for a in (x, y, t, p))
    if any(a.ndim != 1 for a in (x, y, t, p)):
        raise InputError(f"x, y, t, p must be 1-D; got shapes {x.shape}, {y.shape}, {t.shape}, {p.shape}")
    n = len(x)
    if not (len(y) == len(t) == len(p) == n):
        raise InputError(f"x, y, t, p lengths differ: {len(x)}, {len(y)}, {len(t)}, {len(p)}")
    for name, a in (("x", x), ("y", y), ("t", t), ("p", p)):
        if a.dtype.kind not in "biuf":
            raise InputError(f"event {name} must be numbers, not {a.dtype}")
        _first_nonfinite(name, a)
    for name, a, lo, hi in (("x", x, -(1 << 15), (1 << 15) - 1), ("y", y, -(1 << 15), (1 << 15) - 1),
                            ("t", t, -(1 << 62), 1 << 62)):
        if n and a.dtype.kind != "b" and (a.min().item() < lo or a.max().item() > hi):
            i = int(np.flatnonzero([not lo <= v <= hi for v in a.tolist()])[0])
            raise InputError(f"event {i} has {name} = {a[i]}, beyond the range of event {name} values")
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
    time, so pass ``t0`` (seconds) to keep the numbers small and exact. Rows whose x, y or p is NaN or inf
    cannot be placed: they are dropped with a warning (counted; the first one named). A non-finite ``t``
    is an InputError (time order, and so every window after it, would be undefined).
    """
    array = np.asarray(array)
    if array.ndim != 2 or array.shape[1] != 4:
        raise InputError(f"expected an (N, 4) array of x, y, t, p; got shape {array.shape}")
    if array.dtype.kind not in "biuf":
        raise InputError(f"expected numbers in the (N, 4) event array, not {array.dtype}")
    if array.dtype.kind == "f":
        bad_t = ~np.isfinite(array[:, 2])
        if bad_t.any():
            i = int(np.flatnonzero(bad_t)[0])
            raise InputError(f"event row {i} has t = {array[i, 2]} "
                             f"({int(bad_t.sum())} non-finite times in all)")
        bad = ~np.isfinite(array[:, [0, 1, 3]]).all(axis=1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            log.warning("dropped %d of %d events whose x, y or p is NaN or inf (the first: row %d = %s)",
                        int(bad.sum()), len(array), i, array[i].tolist())
            array = array[~bad]
    t_us = np.rint((array[:, 2] - t0) * time_scale).astype(np.int64)
    return make_events(np.rint(array[:, 0]), np.rint(array[:, 1]), t_us, array[:, 3])


def report_outside(n_total: int, n_inside: int, sensor_size: SensorSize, *, where: str,
                   source: str | None = None) -> None:
    """Warn when events of one window were dropped for lying outside the (W, H) sensor.

    All of a window's events outside (usually a wrong sensor size or calibration) is a warning naming the
    window ("all 12,345 events of window 7 lie outside the 346x260 sensor"); a part of them is a debug
    line (rectification legitimately maps border pixels out of the image).
    """
    dropped = n_total - n_inside
    if dropped <= 0:
        return
    w, h = sensor_size
    prefix = f"{source}: " if source else ""
    if n_inside == 0:
        log.warning("%sall %s events of %s lie outside the %dx%d sensor", prefix, f"{n_total:,}", where, w, h)
    else:
        log.debug("%s%s of %s events of %s lie outside the %dx%d sensor", prefix, f"{dropped:,}",
                  f"{n_total:,}", where, w, h)


def inside_sensor(x: np.ndarray, y: np.ndarray, sensor_size: SensorSize, *, where: str,
                  source: str | None = None) -> np.ndarray:
    """The mask of events inside the (W, H) sensor (NaN coordinates are outside), reported with
    :func:`report_outside`: the one check a source calls before it drops events."""
    w, h = sensor_size
    with np.errstate(invalid="ignore"):
        inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    report_outside(len(inside), int(inside.sum()), sensor_size, where=where, source=source)
    return inside


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
    policy ``"repair"``: stable-sort by time and drop events outside the sensor (returns a new array;
    when ALL of them are outside, a warning says so).
    Under either policy a non-finite time, or fields that are not numbers, raise InputError; NaN x or y
    count as outside the sensor.
    """
    if policy not in ("raise", "repair"):
        raise ValueError(f"policy must be 'raise' or 'repair', not {policy!r}")
    if not isinstance(events, np.ndarray):
        raise InputError(f"not an event array but a {type(events).__name__}", source=source)
    names = events.dtype.names or ()
    if not all(f in names for f in "xytp"):
        raise InputError(f"not an event array (fields {list(names)}; need x, y, t, p)", source=source)
    if len(events) == 0:
        return events
    w, h = sensor_size
    x, y, t = events["x"], events["y"], events["t"]
    if any(a.dtype.kind not in "biuf" for a in (x, y, t, events["p"])):
        raise InputError(f"event fields must be numbers; got {events.dtype}", source=source)
    if t.dtype.kind == "f" and not np.isfinite(t).all():
        i = int(np.flatnonzero(~np.isfinite(t))[0])
        raise InputError(f"event {i} has t = {t[i]} (not a time)", source=source)
    with np.errstate(invalid="ignore"):
        inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
        unsorted = np.flatnonzero(t[1:] < t[:-1])  # not np.diff: unsigned times would wrap
    if policy == "raise":
        if len(unsorted):
            i = int(unsorted[0])
            raise InputError(
                f"events are not sorted by time: t[{i}] = {t[i]} > t[{i + 1}] = {t[i + 1]} "
                f"({len(unsorted)} decreases in all)",
                source=source,
            )
        if not inside.all():
            i = int(np.flatnonzero(~inside)[0])
            raise InputError(
                f"event {i} at (x={x[i]}, y={y[i]}) is outside the {w}x{h} sensor "
                f"({int((~inside).sum())} events outside in all)",
                source=source,
            )
        return events
    report_outside(len(events), int(inside.sum()), sensor_size, where="the array", source=source)
    out = events[inside]
    if len(unsorted):
        out = out[np.argsort(out["t"], kind="stable")]
    return out
