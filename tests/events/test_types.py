import numpy as np
import pytest

from eventstereo.errors import InputError
from eventstereo.events import (
    EVENT_DTYPE,
    StereoWindow,
    from_tonic,
    from_xytp_array,
    make_events,
    polarity_sign,
    validate_events,
)


def test_make_events_dtype_and_polarity():
    ev = make_events([1, 2], [3, 4], [10, 20], [-1, 1])
    assert ev.dtype == EVENT_DTYPE
    assert ev["p"].tolist() == [0, 1]
    assert polarity_sign(ev).tolist() == [-1, 1]


def test_make_events_length_mismatch():
    with pytest.raises(InputError, match="lengths differ"):
        make_events([1, 2], [3], [10, 20], [1, 1])


def test_from_tonic_any_field_order():
    tonic_dtype = np.dtype([("t", np.int64), ("x", np.int16), ("y", np.int16), ("p", bool)])
    arr = np.array([(5, 1, 2, True), (7, 3, 4, False)], dtype=tonic_dtype)
    ev = from_tonic(arr)
    assert ev["x"].tolist() == [1, 3] and ev["y"].tolist() == [2, 4]
    assert ev["t"].tolist() == [5, 7] and ev["p"].tolist() == [1, 0]


def test_from_tonic_missing_field():
    arr = np.zeros(3, dtype=[("x", np.int16), ("y", np.int16), ("t", np.int64)])
    with pytest.raises(InputError, match="lack field"):
        from_tonic(arr)


def test_from_xytp_array_mvsec_style():
    arr = np.array([[10.0, 20.0, 1000.000001, -1.0], [11.0, 21.0, 1000.05, 1.0]])
    ev = from_xytp_array(arr, t0=1000.0)
    assert ev["t"].tolist() == [1, 50_000]
    assert ev["p"].tolist() == [0, 1]
    with pytest.raises(InputError, match=r"\(N, 4\)"):
        from_xytp_array(np.zeros((3, 3)))


def test_validate_raise_names_source_and_event():
    ev = make_events([1, 2, 3], [0, 0, 0], [10, 5, 20], [1, 1, 1])
    with pytest.raises(InputError, match=r"left\.h5: events are not sorted.*t\[0\] = 10 > t\[1\] = 5"):
        validate_events(ev, (4, 4), source="left.h5")
    ev = make_events([1, 9], [0, 0], [1, 2], [1, 1])
    with pytest.raises(InputError, match=r"event 1 at \(x=9, y=0\) is outside the 4x4 sensor"):
        validate_events(ev, (4, 4))


def test_validate_repair_sorts_and_drops():
    ev = make_events([1, 9, 2, -1], [0, 0, 1, 0], [30, 5, 10, 1], [1, 1, 0, 1])
    out = validate_events(ev, (4, 4), policy="repair")
    assert out["t"].tolist() == [10, 30]
    assert out["x"].tolist() == [2, 1]


def test_stereo_window_checks():
    ev = make_events([], [], [], [])
    w = StereoWindow(ev, ev, 0, 50_000, (4, 3), gt_disparity=np.zeros((3, 4), np.float32))
    assert w.duration_us == 50_000 and w.n_events == 0
    with pytest.raises(ValueError, match="GT disparity shape"):
        StereoWindow(ev, ev, 0, 10, (4, 3), gt_disparity=np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="must be after"):
        StereoWindow(ev, ev, 10, 10, (4, 3))
