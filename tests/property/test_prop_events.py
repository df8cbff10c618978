"""Random event arrays (any numeric dtype, order, range, NaN, empty) through validation, SBT and the
stereo windower: each either succeeds with the documented result or raises InputError, nothing else."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from eventstereo.errors import InputError
from eventstereo.events import SBTSettings, encode_sbt, from_tonic, validate_events
from eventstereo.events.types import EVENT_DTYPE
from eventstereo.sources.dv import StereoWindower

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SENSOR = (16, 12)

NUMERIC = st.sampled_from([np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
                           np.float16, np.float32, np.float64, np.bool_])


@st.composite
def event_arrays(draw):
    """A structured array with fields x, y, t, p in a random order, each of a random numeric dtype, with
    values anywhere (NaN, inf, huge, negative) and any length including 0."""
    n = draw(st.integers(0, 40))
    fields = draw(st.permutations(["x", "y", "t", "p"]))
    dtypes = {f: np.dtype(draw(NUMERIC)) for f in fields}
    arr = np.zeros(n, dtype=[(f, dtypes[f]) for f in fields])
    for f in fields:
        small = hnp.from_dtype(dtypes[f], allow_nan=True, allow_infinity=True)
        if dtypes[f].kind in "iu" and f != "p":  # mostly plausible values, some extreme ones
            small = st.one_of(st.integers(-3, 60).filter(lambda v, d=dtypes[f]: np.can_cast(
                np.min_scalar_type(v), d) or (d.kind == "u" and v >= 0) or d.kind == "i"), small)
        values = draw(st.lists(small, min_size=n, max_size=n))
        with np.errstate(over="ignore", invalid="ignore"):
            arr[f] = np.array(values, dtype=object).astype(dtypes[f]) if n else arr[f]
    return arr


@SETTINGS
@given(event_arrays(), st.sampled_from(["raise", "repair"]))
def test_validate_events_result_or_input_error(arr, policy):
    try:
        out = validate_events(arr, SENSOR, policy=policy)
    except InputError:
        return
    x, y, t = out["x"], out["y"], out["t"]
    assert np.all((x >= 0) & (x < SENSOR[0]) & (y >= 0) & (y < SENSOR[1]))
    assert np.all(t[1:] >= t[:-1])
    if policy == "raise":
        assert out is arr  # accepted as it is


@SETTINGS
@given(event_arrays(), st.sampled_from(["sign", "sum", "polarity"]), st.integers(1, 6))
def test_convert_validate_encode(arr, mode, n_bins):
    """from_tonic -> validate (repair) -> SBT: a frame of the right shape whose counts match the events."""
    try:
        ev = validate_events(from_tonic(arr), SENSOR, policy="repair")
    except InputError:
        return
    assert ev.dtype == EVENT_DTYPE
    s = SBTSettings(window_us=1000, n_bins=n_bins, mode=mode)
    t_end = int(ev["t"].max()) + 1 if len(ev) else 1000
    frame = encode_sbt(ev, t_end, SENSOR, s)
    assert frame.shape == (s.channels, SENSOR[1], SENSOR[0]) and np.isfinite(frame).all()
    inside = ev[(ev["t"] >= t_end - 1000) & (ev["t"] < t_end)]
    if mode == "sum":
        assert frame.sum() == np.sum(np.where(inside["p"] > 0, 1, -1))
    elif mode == "polarity":
        assert frame.sum() == len(inside)
    else:
        assert set(np.unique(frame)) <= {-1.0, 0.0, 1.0}
    shuffled = ev[np.random.default_rng(0).permutation(len(ev))]
    assert np.array_equal(encode_sbt(shuffled, t_end, SENSOR, s), frame)  # order does not matter


@st.composite
def stereo_packets(draw):
    """Two time-sorted event streams cut into packets of random sizes, interleaved at random."""
    out = []
    for side in ("left", "right"):
        n = draw(st.integers(0, 60))
        t = np.sort(np.array(draw(st.lists(st.integers(0, 5000), min_size=n, max_size=n)), np.int64))
        ev = np.zeros(n, EVENT_DTYPE)
        ev["t"] = t
        ev["x"] = np.arange(n) % SENSOR[0]
        cuts = sorted(draw(st.lists(st.integers(0, n), max_size=5)))
        bounds = [0, *cuts, n]
        out += [(side, ev[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    order = draw(st.permutations(range(len(out))))
    by_side = {"left": [p for p in out if p[0] == "left"], "right": [p for p in out if p[0] == "right"]}
    # keep each side's packets in time order while interleaving the sides at random
    merged, idx = [], {"left": 0, "right": 0}
    for k in order:
        side = out[k][0]
        merged.append(by_side[side][idx[side]])
        idx[side] += 1
    return merged


@SETTINGS
@given(stereo_packets(), st.integers(1, 2000))
def test_windower_places_every_event_once_or_counts_it_late(packets, window_us):
    w = StereoWindower(window_us)
    got = {"left": 0, "right": 0}
    for side, ev in packets:
        w.push(side, ev)
        for a, b, left, right in w.ready():
            assert b - a == window_us
            for s, part in (("left", left), ("right", right)):
                assert np.all((part["t"] >= a) & (part["t"] < b))
                got[s] += len(part)
    t_max = max([int(e["t"][-1]) for _, e in packets if len(e)], default=0)
    for side in ("left", "right"):
        w.advance(side, t_max + window_us)  # no more events: flush every window up to the last event
    for _, _, left, right in w.ready():
        got["left"] += len(left)
        got["right"] += len(right)
    assert sum(got.values()) + w.late_events == sum(len(e) for _, e in packets)
