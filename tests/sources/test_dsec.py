"""DSEC source on files written in DSEC's layout (Blosc events.h5, rectify_map.h5, 16-bit PNG GT)."""

from __future__ import annotations

import shutil

import cv2
import h5py
import numpy as np
import pytest

from eventstereo.errors import InputError
from eventstereo.sources.dsec import DSECSource, load_fxb
from eventstereo.sources.dsec_synth import (
    identity_map,
    write_calibration,
    write_disparity,
    write_events_h5,
    write_rectify_map,
)

W, H = 640, 480
SEQ = "zurich_city_00_a"
T_LEFT = 1_000_000_000
T_RIGHT = T_LEFT + 537  # offsets differ and are not millisecond-aligned


def make_events(rng, n, t_a, t_b):
    t = np.sort(rng.integers(t_a, t_b, n))
    return rng.integers(0, W, n), rng.integers(0, H, n), t, rng.integers(0, 2, n)


def build_sequence(seq_dir, rng, *, n_frames=5, with_disparity=True):
    ev = {}
    for side, off, dx, dy in (("left", T_LEFT, 0.6, 0.0), ("right", T_RIGHT, 0.0, -0.6)):
        x, y, t, p = make_events(rng, 6000, off, off + 500_000)
        write_events_h5(seq_dir / "events" / side / "events.h5", x, y, t, p, t_offset=off)
        write_rectify_map(seq_dir / "events" / side / "rectify_map.h5", identity_map(W, H, dx, dy))
        ev[side] = (x, y, t, p, dx, dy)
    stamps = [T_LEFT + 100_000 * k + 437 for k in range(n_frames)]
    disp = []
    for _ in range(n_frames):
        d = rng.uniform(1, 60, (H, W))
        d[rng.random((H, W)) < 0.3] = np.inf
        disp.append(d)
    if with_disparity:
        write_disparity(seq_dir, disp, stamps)
    write_calibration(seq_dir)
    return {"events": ev, "stamps": stamps, "disp": disp}


@pytest.fixture(scope="module")
def dsec(tmp_path_factory):
    root = tmp_path_factory.mktemp("dsec")
    info = build_sequence(root / "train" / SEQ, np.random.default_rng(0))
    info["root"] = root
    return info


def expected(side_events, a, b, t0):
    x, y, t, p, dx, dy = side_events
    sel = (t >= a) & (t < b)
    xr, yr = np.rint(x[sel] + dx), np.rint(y[sel] + dy)
    keep = (xr >= 0) & (xr < W) & (yr >= 0) & (yr < H)
    return xr[keep], yr[keep], t[sel][keep] - t0, p[sel][keep]


def test_windows_end_at_disparity_stamps(dsec):
    with DSECSource(dsec["root"], SEQ) as src:
        assert src.sensor_size == (W, H) and src.has_gt and src.max_disparity == 191
        wins = list(src)
    # frame 0 is at the start of the recording: its window would begin before the events, so it is skipped
    assert [w.meta["frame"] for w in wins] == [1, 2, 3, 4]
    assert [w.meta["file_index"] for w in wins] == [2, 4, 6, 8]
    for w in wins:
        b = dsec["stamps"][w.meta["frame"]]
        assert (w.t_start_us, w.t_end_us) == (b - 50_000 - T_LEFT, b - T_LEFT)
        for side in ("left", "right"):
            x, y, t, p = expected(dsec["events"][side], b - 50_000, b, T_LEFT)
            ev = getattr(w, side)
            assert len(ev) > 100
            np.testing.assert_array_equal(ev["x"], x)
            np.testing.assert_array_equal(ev["y"], y)
            np.testing.assert_array_equal(ev["t"], t)
            np.testing.assert_array_equal(ev["p"], p)


def test_gt_is_png_over_256_with_inf_where_zero(dsec):
    with DSECSource(dsec["root"], SEQ) as src:
        w = src.read_window(2)
    ref = dsec["disp"][w.meta["frame"]]
    gt = w.gt_disparity
    assert gt.dtype == np.float32 and gt.shape == (H, W)
    np.testing.assert_array_equal(np.isinf(gt), np.isinf(ref))
    ok = np.isfinite(ref)
    np.testing.assert_allclose(gt[ok], np.round(ref[ok] * 256) / 256, atol=1e-6)


def test_fxb_from_cam_to_cam_yaml(dsec):
    path = dsec["root"] / "train" / SEQ / "calibration" / "cam_to_cam.yaml"
    assert load_fxb(path) == pytest.approx(569.7632987676102 * 0.59875)
    with DSECSource(dsec["root"], SEQ) as src:
        assert src.fxb == pytest.approx(569.7632987676102 * 0.59875)


def test_unaligned_windows_slice_exactly(dsec):
    with DSECSource(dsec["root"], SEQ, window_us=33_333) as src:
        seq = src.seqs[0]
        for a in (T_LEFT + 12_345, T_LEFT + 250_999, T_LEFT + 499_000):
            ev = seq.events("right", a, a + 33_333)
            x, y, t, p = expected(dsec["events"]["right"], a, a + 33_333, T_LEFT)
            np.testing.assert_array_equal(ev["t"], t)
            np.testing.assert_array_equal(ev["y"], y)
        assert len(seq.events("left", T_LEFT - 10_000, T_LEFT)) == 0
        assert len(seq.events("left", T_LEFT + 10**7, T_LEFT + 10**7 + 5)) == 0


def test_download_layout_and_all_sequences(dsec, tmp_path):
    base = dsec["root"] / "train" / SEQ
    root = tmp_path / "dl"
    shutil.copytree(base / "events", root / "train_events" / SEQ / "events")
    shutil.copytree(base / "disparity", root / "train_disparity" / SEQ / "disparity")
    shutil.copytree(base / "calibration", root / "train_calibration" / SEQ / "calibration")
    with DSECSource(root, "all") as src:
        assert [q.name for q in src.seqs] == [SEQ] and len(src) == 4


def test_two_sequences_mark_a_gap_and_seek(dsec, tmp_path):
    root = tmp_path / "two"
    shutil.copytree(dsec["root"] / "train" / SEQ, root / "train" / SEQ)
    shutil.copytree(dsec["root"] / "train" / SEQ, root / "train" / "zurich_city_01_a")
    with DSECSource(root, "all") as src:
        wins = list(src)
        assert len(wins) == 8
        assert [w.gap_before for w in wins] == [False] * 4 + [True] + [False] * 3
        src.seek(dsec["stamps"][3] - T_LEFT - 1)
        rest = list(src)
        assert rest[0].meta["frame"] == 3 and rest[0].gap_before and len(rest) == 6


def test_sequence_without_disparity_replays_back_to_back(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "test_set"
    info = build_sequence(root / "test" / SEQ, rng, with_disparity=False)
    with DSECSource(root, SEQ, subset="test") as src:
        assert not src.has_gt
        wins = list(src)
    assert all(w.gt_disparity is None for w in wins)
    begin = max(int(info["events"][s][2][0]) for s in ("left", "right"))  # both cameras have started
    assert wins[0].t_start_us == begin - T_LEFT
    assert all(b.t_start_us == a.t_end_us for a, b in zip(wins, wins[1:]))
    n_right = sum(len(w.right) for w in wins)
    assert n_right == len(expected(info["events"]["right"], begin, 10**12, T_LEFT)[0])


def test_back_to_back_windows_are_computed_not_listed(tmp_path):
    rng = np.random.default_rng(2)
    root = tmp_path / "stray"
    seq = root / "test" / SEQ
    build_sequence(seq, rng, with_disparity=False)
    x, y, t, p = make_events(rng, 50, T_LEFT, T_LEFT + 400_000)
    t[-1] = T_LEFT + 300_000_000  # one stray event 300 s later: 6000 windows, almost all empty
    write_events_h5(seq / "events" / "left" / "events.h5", x, y, t, p, t_offset=T_LEFT)
    with DSECSource(root, SEQ, subset="test") as src:
        assert src.items.n_runs == 1 and len(src) >= 5999
        last = src.read_window(len(src) - 1)
        assert last.t_end_us > 300_000_000 and len(last.left) == 1 and len(last.right) == 0
        src.seek(last.t_start_us + 1)  # window n - 2 ends at last.t_start_us
        assert next(iter(src)).index == len(src) - 1
        assert src.read_window(0).t_start_us >= int(t[0]) - T_LEFT


def test_disparity_frames_outside_the_events_are_skipped_with_a_warning(tmp_path, caplog):
    root = tmp_path / "late_gt"
    info = build_sequence(root / "train" / SEQ, np.random.default_rng(3), n_frames=8)  # events end at 0.5 s
    with caplog.at_level("WARNING", logger="eventstereo.sources.dsec"), DSECSource(root, SEQ) as src:
        frames = [src.read_window(i).meta["frame"] for i in range(len(src))]
    assert frames == [1, 2, 3, 4, 5]  # frame 5's window starts at 0.45 s, frame 6's at 0.55 s
    assert info["stamps"][6] - 50_000 > max(info["events"][s][2][-1] for s in ("left", "right"))
    assert "skipping 3 of 8 disparity frame(s)" in caplog.text
    assert "1 start before both cameras record, 2 after the last event" in caplog.text


# --------------------------------------------------------------------------------------------- bad input


@pytest.fixture()
def broken(dsec, tmp_path):
    root = tmp_path / "broken"
    shutil.copytree(dsec["root"] / "train" / SEQ, root / "train" / SEQ)
    return root, root / "train" / SEQ


def test_missing_root_sequence_and_files(dsec, broken, tmp_path):
    with pytest.raises(InputError, match="root directory not found"):
        DSECSource(tmp_path / "nowhere", SEQ)
    with pytest.raises(InputError, match="no events folder for sequence 'nope'"):
        DSECSource(dsec["root"], "nope")
    root, seq = broken
    (seq / "events" / "right" / "events.h5").unlink()
    with pytest.raises(InputError, match=r"right/events.h5: DSEC events file not found"):
        DSECSource(root, SEQ)


def test_missing_dataset_named(broken):
    root, seq = broken
    with h5py.File(seq / "events" / "left" / "events.h5", "a") as f:
        del f["events/t"]
    with pytest.raises(InputError, match="missing dataset 'events/t'"):
        DSECSource(root, SEQ)


def test_float_event_times_are_refused(broken):
    root, seq = broken
    with h5py.File(seq / "events" / "left" / "events.h5", "a") as f:
        t = f["events/t"][()].astype(np.float64)
        t[0] = np.nan
        del f["events/t"]
        f["events/t"] = t
    with pytest.raises(InputError, match="events/t"):
        DSECSource(root, SEQ)


def test_inconsistent_lengths_and_empty(broken):
    root, seq = broken
    path = seq / "events" / "left" / "events.h5"
    with h5py.File(path, "a") as f:
        del f["events/p"]
        f["events/p"] = np.zeros(10, np.uint8)
    with pytest.raises(InputError, match="lengths differ"):
        DSECSource(root, SEQ)
    write_events_h5(path, [], [], np.array([], np.int64), [], t_offset=T_LEFT)
    with pytest.raises(InputError, match="no events"):
        DSECSource(root, SEQ)


def test_rectify_map_size_mismatch(broken):
    root, seq = broken
    write_rectify_map(seq / "events" / "right" / "rectify_map.h5", identity_map(320, 240))
    with pytest.raises(InputError, match="left/right size mismatch"):
        DSECSource(root, SEQ)


def test_missing_calibration(broken):
    root, seq = broken
    shutil.rmtree(seq / "calibration")
    with pytest.raises(InputError, match="cam_to_cam.yaml not found"):
        DSECSource(root, SEQ)


def test_disparity_problems(broken):
    root, seq = broken
    (seq / "disparity" / "event" / "000004.png").unlink()
    with pytest.raises(InputError, match="5 timestamps but 4 PNGs"):
        DSECSource(root, SEQ)
    cv2.imwrite(str(seq / "disparity" / "event" / "000004.png"), np.zeros((H, W), np.uint8))
    with (
        DSECSource(root, SEQ) as src,
        pytest.raises(InputError, match="000004.png: disparity PNG must be 16-bit"),
    ):
        list(src)


def test_truncated_events_file(broken):
    root, seq = broken
    path = seq / "events" / "left" / "events.h5"
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 3])
    with pytest.raises(InputError, match="truncated or corrupt") as e:
        DSECSource(root, SEQ)
    assert "left/events.h5" in str(e.value)
