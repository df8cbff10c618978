"""SBT encoder against a plain numpy reference written straight from the definition (REFERENCE §1)."""

import numpy as np
import pytest

from eventstereo.events import SBTSettings, StreamingSBT, encode_sbt, encode_sbt_batch, make_events

SENSOR = (13, 7)  # (W, H), deliberately not square


def reference_sbt(events, t_end, sensor_size, s: SBTSettings):
    w, h = sensor_size
    out = np.zeros((s.channels, h, w), np.float64)
    t_start = t_end - s.window_us
    for x, y, t, p in zip(events["x"], events["y"], events["t"], events["p"]):
        if not (t_start <= t < t_end) or not (0 <= x < w and 0 <= y < h):
            continue
        b = int((t - t_start) * s.n_bins // s.window_us)
        if s.newest_first:
            b = s.n_bins - 1 - b
        if s.mode == "polarity":
            out[2 * b + (0 if p > 0 else 1), y, x] += 1
        else:
            out[b, y, x] += 1 if p > 0 else -1
    if s.mode == "sign":
        out = np.sign(out)
    return out.astype(np.float32)


def random_events(rng, n, t_lo, t_hi, sensor=SENSOR, margin=2):
    w, h = sensor
    t = np.sort(rng.integers(t_lo, t_hi, n))
    return make_events(rng.integers(-margin, w + margin, n), rng.integers(-margin, h + margin, n), t,
                       rng.integers(0, 2, n))


@pytest.mark.parametrize("mode", ["sign", "sum", "polarity"])
@pytest.mark.parametrize("newest_first", [True, False])
def test_matches_reference_on_random_streams(mode, newest_first):
    rng = np.random.default_rng(0)
    s = SBTSettings(window_us=1000, n_bins=5, mode=mode, newest_first=newest_first)
    for _ in range(5):
        ev = random_events(rng, 3000, -500, 1700)  # spills out of the window and the sensor on all sides
        out = encode_sbt(ev, 1000, SENSOR, s)
        assert out.dtype == np.float32 and out.shape == (s.channels, SENSOR[1], SENSOR[0])
        np.testing.assert_array_equal(out, reference_sbt(ev, 1000, SENSOR, s))


def test_sign_values_and_channel_order():
    s = SBTSettings(window_us=100, n_bins=5)
    ev = make_events([0, 0, 1], [0, 0, 0], [0, 1, 99], [1, 1, 0])
    out = encode_sbt(ev, 100, SENSOR, s)
    assert out[4, 0, 0] == 1  # two ON events in the oldest bin -> sign 1, last channel (newest first)
    assert out[0, 0, 1] == -1  # newest bin is channel 0
    assert set(np.unique(out)) <= {-1.0, 0.0, 1.0}
    assert np.abs(out).sum() == 2


def test_bin_edges_and_window_bounds():
    s = SBTSettings(window_us=100, n_bins=5, mode="sum", newest_first=False)
    # t_start=1000: t=1000 is in (oldest) bin 0, t=1020 is on the edge and belongs to bin 1,
    # t=1099 to bin 4, t=1100 (window end) and t=999 (before start) to no bin.
    ev = make_events([0, 1, 2, 3, 4], [0, 0, 0, 0, 0], [1000, 1020, 1099, 1100, 999], [1, 1, 1, 1, 1])
    out = encode_sbt(ev, 1100, SENSOR, s)
    assert out[0, 0, 0] == 1 and out[1, 0, 1] == 1 and out[4, 0, 2] == 1
    assert out[:, 0, 3].sum() == 0 and out[:, 0, 4].sum() == 0


def test_empty_window_and_unsorted_input():
    s = SBTSettings()
    empty = make_events([], [], [], [])
    assert not encode_sbt(empty, 50_000, SENSOR, s).any()
    rng = np.random.default_rng(1)
    ev = random_events(rng, 2000, 0, 50_000)
    shuffled = ev[rng.permutation(len(ev))]
    np.testing.assert_array_equal(encode_sbt(shuffled, 50_000, SENSOR, s), encode_sbt(ev, 50_000, SENSOR, s))


def test_tonic_style_bool_polarity_accepted():
    dt = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", bool)])
    ev = np.array([(1, 1, 10, True), (2, 1, 20, False)], dtype=dt)
    out = encode_sbt(ev, 100, SENSOR, SBTSettings(window_us=100, n_bins=1))
    assert out[0, 1, 1] == 1 and out[0, 1, 2] == -1


def test_batch_equals_single_windows_including_overlap_and_unsorted():
    rng = np.random.default_rng(2)
    s = SBTSettings(window_us=1000, n_bins=4, mode="sum")
    ev = random_events(rng, 5000, 0, 6000)
    t_ends = [1000, 1500, 2000, 5999, 9000]
    batch = encode_sbt_batch(ev[rng.permutation(len(ev))], t_ends, SENSOR, s)
    for k, t_end in enumerate(t_ends):
        np.testing.assert_array_equal(batch[k], reference_sbt(ev, t_end, SENSOR, s))


@pytest.mark.parametrize("stride", [None, 250])
def test_streaming_equals_batch(stride):
    rng = np.random.default_rng(3)
    s = SBTSettings(window_us=1000, n_bins=5, mode="sum")
    ev = random_events(rng, 8000, 0, 5000, margin=0)
    enc = StreamingSBT(SENSOR, s, t_origin_us=0, stride_us=stride)
    got = []
    cuts = np.sort(rng.integers(0, len(ev), 30))
    for packet in np.split(ev, cuts):  # packets of random size, some empty
        got += enc.push(packet)
    got += enc.advance(5000)
    step = stride or 1000
    expected_ends = list(range(1000, 5001, step))
    assert [t for t, _ in got] == expected_ends
    ref = encode_sbt_batch(ev, expected_ends, SENSOR, s)
    for k, (_, frame) in enumerate(got):
        np.testing.assert_array_equal(frame, ref[k])
    assert enc.late_events == 0


def test_streaming_counts_late_events():
    s = SBTSettings(window_us=100, n_bins=2)
    enc = StreamingSBT(SENSOR, s)
    assert len(enc.push(make_events([0], [0], [250], [1]))) == 2  # windows ending 100 and 200 complete
    enc.push(make_events([0], [0], [150], [1]))  # older than the open window [200, 300)
    assert enc.late_events == 1


def test_settings_validation_and_roundtrip():
    with pytest.raises(ValueError, match="mode"):
        SBTSettings(mode="avg")
    with pytest.raises(ValueError, match="n_bins"):
        SBTSettings(n_bins=0)
    s = SBTSettings(window_us=20_000, n_bins=3, mode="polarity")
    assert SBTSettings.from_dict(s.to_dict()) == s and s.channels == 6
