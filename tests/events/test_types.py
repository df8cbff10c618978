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


def test_make_events_rejects_nan_and_out_of_range_values():
    with pytest.raises(InputError, match=r"event 1 has x = nan"):
        make_events([1.0, np.nan], [0, 0], [1, 2], [1, 0])
    with pytest.raises(InputError, match="p = inf"):
        make_events([1], [0], [1], [np.inf])
    with pytest.raises(InputError, match="x = 70000"):
        make_events([70000], [0], [1], [1])


def test_from_xytp_drops_nan_rows_with_a_warning_and_rejects_nan_time(caplog):
    a = np.array([[1, 2, 0.1, 1], [np.nan, 2, 0.2, 1], [3, 4, 0.3, np.nan], [5, 6, 0.4, 0]])
    ev = from_xytp_array(a)
    assert ev["x"].tolist() == [1, 5]
    assert "dropped 2 of 4 events" in caplog.text
    a[1, 2] = np.nan
    with pytest.raises(InputError, match="row 1 has t = nan"):
        from_xytp_array(a)


def test_all_events_outside_the_sensor_warn_naming_the_window(caplog):
    from eventstereo.events.types import inside_sensor

    x = np.full(12345, 400)
    y = np.zeros(12345)
    mask = inside_sensor(x, y, (346, 260), where="window 7", source="rec.h5")
    assert not mask.any()
    assert "rec.h5: all 12,345 events of window 7 lie outside the 346x260 sensor" in caplog.text
    caplog.clear()
    assert inside_sensor(np.array([1, 400]), np.array([1, 1]), (346, 260), where="window 8").sum() == 1
    assert "all" not in caplog.text  # a part outside is normal after rectification: no warning


def test_validate_events_nan_coordinates_and_unsigned_times(caplog):
    dt = np.dtype([("x", np.float32), ("y", np.float32), ("t", np.uint64), ("p", np.int8)])
    ev = np.array([(np.nan, 1, 5, 1), (2, 2, 3, 0)], dtype=dt)
    with pytest.raises(InputError, match="not sorted"):  # uint times: a decrease, not a wrapped diff
        validate_events(ev, (4, 4))
    ev["t"] = [3, 5]
    with pytest.raises(InputError, match="x=nan"):
        validate_events(ev, (4, 4))
    ev["x"] = np.nan
    assert len(validate_events(ev, (4, 4), policy="repair")) == 0
    assert "all 2 events of the array lie outside the 4x4 sensor" in caplog.text
    ft = np.array([(1, 1, np.nan, 1)], dtype=[("x", "i2"), ("y", "i2"), ("t", "f8"), ("p", "i1")])
    with pytest.raises(InputError, match="t = nan"):
        validate_events(ft, (4, 4), policy="repair")
