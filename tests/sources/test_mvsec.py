"""MVSEC source: window contents, rectification, GT, splits, replay and bad input, on files written in
MVSEC's exact layout."""

from __future__ import annotations

import random
import shutil

import cv2
import h5py
import numpy as np
import pytest

from eventstereo.errors import InputError
from eventstereo.sources.mvsec import (
    FXB,
    EventColumn,
    MVSECSource,
    RectifyMaps,
    load_calibration,
    maps_from_camchain,
    split_frames,
)
from eventstereo.sources.mvsec_synth import T_ROS0, example_camchain, write_calibration, write_sequence

H, W = 260, 346
SEQ = "indoor_flying1"


# ------------------------------------------------------------------------------------------- splits


def test_split_counts_match_reference():
    counts = {(s, sub): len(split_frames(s, sub)) for s in (1, 3) for sub in ("train", "val", "test")}
    assert counts == {
        (1, "train"): 3110,
        (1, "val"): 200,
        (1, "test"): 861,
        (3, "train"): 2600,
        (3, "val"): 200,
        (3, "test"): 1343,
    }


@pytest.mark.parametrize(
    "split,held_out,lo,hi", [(1, "indoor_flying1", 140, 1200), (3, "indoor_flying3", 73, 1615)]
)
def test_split_val_test_are_the_seeded_shuffle_of_the_test_frames(split, held_out, lo, hi):
    frames = list(range(lo, hi + 1))
    random.seed(0)
    random.shuffle(frames)
    val, test = split_frames(split, "val"), split_frames(split, "test")
    assert val == [(held_out, f) for f in frames[:200]]
    assert test == [(held_out, f) for f in frames[200:]]
    assert not set(val) & set(test)


def test_split_train_sequences_and_ranges():
    tr1 = split_frames(1, "train")
    assert {s for s, _ in tr1} == {"indoor_flying2", "indoor_flying3"}
    assert tr1[0] == ("indoor_flying2", 160) and tr1[-1] == ("indoor_flying3", 1814)
    tr3 = split_frames(3, "train")
    assert {s for s, _ in tr3} == {"indoor_flying1", "indoor_flying2"}
    assert tr3[0] == ("indoor_flying1", 80) and tr3[1179] == ("indoor_flying1", 1259)
    with pytest.raises(InputError):
        split_frames(2, "train")
    with pytest.raises(InputError):
        split_frames(1, "everything")


# ------------------------------------------------------------------------------------------ fixtures


def shift_maps() -> RectifyMaps:
    """Left: x + 0.6, y - 0.4 (so x = 345 leaves the sensor); right: x - 0.6 (x = 0 leaves), y + 0.3."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    return RectifyMaps(xx + 0.6, yy - 0.4, xx - 0.6, yy + 0.3)


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("mvsec_calib")
    write_calibration(d, "indoor_flying", maps=shift_maps(), layout="flat", yaml=False)
    return d


def copy_calib(calib_dir, root):
    root.mkdir(parents=True, exist_ok=True)
    for f in calib_dir.glob("*_map.txt"):
        shutil.copy(f, root / f.name)


def random_events(rng, n, t_a, t_b):
    ev = np.empty((n, 4))
    ev[:, 0] = rng.integers(0, W, n)
    ev[:, 1] = rng.integers(0, H, n)
    ev[:, 2] = T_ROS0 + np.sort(rng.uniform(t_a, t_b, n))
    ev[:, 3] = rng.choice([-1.0, 1.0], n)
    return ev


def tiny_depth(n_frames):
    yy, xx = np.mgrid[0:H, 0:W]
    depth = np.empty((n_frames, H, W), np.float32)
    for k in range(n_frames):
        depth[k] = 1.0 + 0.01 * k + 0.001 * xx
        depth[k, :10] = np.nan
        depth[k, 10:12] = 0.0
    return depth


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, calib_dir):
    """6 depth frames at 20 Hz; left/right random events plus hand-placed ones on edges."""
    root = tmp_path_factory.mktemp("mvsec_tiny")
    copy_calib(calib_dir, root)
    rng = np.random.default_rng(1)
    left = random_events(rng, 3000, 0.0, 0.32)
    right = random_events(rng, 2500, 0.0, 0.32)
    special = np.array(
        [
            [10, 20, T_ROS0 + 0.1, 1.0],  # exactly at frame 1's end: belongs to window 2
            [345, 5, T_ROS0 + 0.12, -1.0],  # rectified x = 345.6 -> 346: leaves the sensor
            [0, 0, T_ROS0 + 0.13, 1.0],  # rectified y = -0.4 -> -0 -> row 0
        ]
    )
    left = np.concatenate([left, special])
    left = left[np.argsort(left[:, 2], kind="stable")]
    n_frames = 6
    depth_ts = T_ROS0 + 0.05 * (np.arange(n_frames) + 1)
    write_sequence(root, SEQ, left, right, depth=tiny_depth(n_frames), depth_ts=depth_ts)
    return {
        "root": root,
        "left": left,
        "right": right,
        "depth_ts": depth_ts,
        "maps": shift_maps(),
        "t0": min(left[0, 2], right[0, 2]),
    }


def expected(raw, t0, t_start, t_end, mx, my):
    """Independent reference: filter by integer-us time, map, round, drop outside."""
    t_us = np.rint((raw[:, 2] - t0) * 1e6).astype(np.int64)
    sel = raw[(t_us >= t_start) & (t_us < t_end)]
    t_sel = t_us[(t_us >= t_start) & (t_us < t_end)]
    xi, yi = sel[:, 0].astype(int), sel[:, 1].astype(int)
    x, y = np.rint(mx[yi, xi]), np.rint(my[yi, xi])
    keep = (x >= 0) & (x < W) & (y >= 0) & (y < H)
    return x[keep].astype(int), y[keep].astype(int), t_sel[keep], (sel[keep, 3] > 0).astype(int)


# ------------------------------------------------------------------------------------------- windows


def test_windows_end_at_depth_stamps_with_rectified_events(tiny):
    src = MVSECSource(tiny["root"], sequence=SEQ)
    assert len(src) == 6 and src.sensor_size == (W, H) and src.fxb == FXB["indoor_flying"]
    assert src.has_gt and src.max_disparity == 63
    wins = list(src)
    assert [w.index for w in wins] == list(range(6))
    assert not any(w.gap_before for w in wins)
    m = tiny["maps"]
    for k, w in enumerate(wins):
        t_end = int(np.rint((tiny["depth_ts"][k] - tiny["t0"]) * 1e6))
        assert (w.t_start_us, w.t_end_us) == (t_end - 50_000, t_end)
        assert w.meta["sequence"] == SEQ and w.meta["frame"] == k
        assert w.meta["t_end_abs_s"] == pytest.approx(tiny["depth_ts"][k])
        for side, raw, mx, my in (
            ("left", tiny["left"], m.left_x, m.left_y),
            ("right", tiny["right"], m.right_x, m.right_y),
        ):
            x, y, t, p = expected(raw, tiny["t0"], t_end - 50_000, t_end, mx, my)
            ev = getattr(w, side)
            assert len(ev) > 0
            np.testing.assert_array_equal(ev["x"], x)
            np.testing.assert_array_equal(ev["y"], y)
            np.testing.assert_array_equal(ev["t"], t)
            np.testing.assert_array_equal(ev["p"], p)
            assert ev["t"].min() >= w.t_start_us and ev["t"].max() < w.t_end_us
    src.close()


def test_edge_events_land_where_rounding_puts_them(tiny):
    with MVSECSource(tiny["root"], sequence=SEQ) as src:
        t_at_edge = int(np.rint((T_ROS0 + 0.1 - tiny["t0"]) * 1e6))
        w1, w2 = src.read_window(1), src.read_window(2)
        assert t_at_edge == w1.t_end_us
        assert not np.any(w1.left["t"] == t_at_edge)
        hit = w2.left[(w2.left["t"] == t_at_edge)]
        assert (11, 20) in {(int(e["x"]), int(e["y"])) for e in hit}  # 10 + 0.6 -> 11, 20 - 0.4 -> 20
        all_left = np.concatenate([src.read_window(k).left for k in range(len(src))])
        assert all_left["x"].max() <= W - 1 and all_left["x"].min() >= 1  # x + 0.6 never rounds to 0
        right = np.concatenate([src.read_window(k).right for k in range(len(src))])
        assert right["x"].min() >= 0 and right["x"].max() <= W - 2


def test_gt_is_fxb_over_depth_with_inf_where_invalid(tiny):
    with MVSECSource(tiny["root"], sequence=SEQ) as src:
        w = src.read_window(3)
        gt = w.gt_disparity
        assert gt.dtype == np.float32 and gt.shape == (H, W)
        assert np.isinf(gt[:12]).all()  # NaN rows and zero-depth rows
        depth = tiny_depth(6)[3]
        np.testing.assert_allclose(gt[12:], FXB["indoor_flying"] / depth[12:], rtol=1e-6)


def test_event_column_search_matches_brute_force_across_blocks(tmp_path):
    rng = np.random.default_rng(5)
    t = T_ROS0 + np.sort(rng.integers(0, 3000, 500)) * 1e-6  # many duplicate stamps
    rows = np.stack([np.zeros(500), np.zeros(500), t, np.ones(500)], 1)
    with h5py.File(tmp_path / "e.h5", "w") as f:
        f["ev"] = rows
    with h5py.File(tmp_path / "e.h5", "r") as f:
        col = EventColumn(f["ev"], T_ROS0, block_rows=7, cache_blocks=2)
        t_us = np.rint((t - T_ROS0) * 1e6).astype(np.int64)
        for q in [-5, 0, 1, 17, 1500, 2999, 3000, 5000] + list(rng.integers(0, 3000, 40)):
            assert col.index_of(int(q)) == int(np.searchsorted(t_us, q, side="left")), q
        lut = np.zeros((H, W), np.int32)
        ev = col.events(100, 2000, lut, lut, rectify=False)
        np.testing.assert_array_equal(ev["t"], t_us[(t_us >= 100) & (t_us < 2000)])


def test_seek_and_repeat_iteration(tiny):
    with MVSECSource(tiny["root"], sequence=SEQ) as src:
        ends = [src.read_window(k).t_end_us for k in range(len(src))]
        src.seek(ends[2] - 10)
        wins = list(src)
        assert [w.index for w in wins] == [2, 3, 4, 5]
        assert [w.gap_before for w in wins] == [True, False, False, False]
        again = list(src)  # a finished pass starts over
        assert [w.index for w in again] == list(range(6)) and not again[0].gap_before


def test_replay_without_gt_gives_back_to_back_windows(tiny, tmp_path, calib_dir):
    root = tmp_path / "nogt"
    copy_calib(calib_dir, root)
    shutil.copy(tiny["root"] / f"{SEQ}_data.hdf5", root)
    with MVSECSource(root, sequence=SEQ) as src:
        assert not src.has_gt
        wins = list(src)
        assert all(w.gt_disparity is None for w in wins)
        assert [w.t_start_us for w in wins] == [50_000 * k for k in range(len(wins))]
        total = sum(len(w.right) for w in wins)
        m = tiny["maps"]
        assert total == len(expected(tiny["right"], tiny["t0"], 0, 10**9, m.right_x, m.right_y)[0])


def test_unrectified_mode_keeps_raw_pixels(tiny):
    with MVSECSource(tiny["root"], sequence=SEQ, rectify=False) as src:
        w = src.read_window(2)
        t_end = w.t_end_us
        t_us = np.rint((tiny["left"][:, 2] - tiny["t0"]) * 1e6)
        sel = tiny["left"][(t_us >= t_end - 50_000) & (t_us < t_end)]
        np.testing.assert_array_equal(w.left["x"], sel[:, 0].astype(int))


# ------------------------------------------------------------------------------------ GT conventions


def test_ddes_convention_quantises_known_depths_and_marks_255_invalid(tmp_path, calib_dir):
    fxb = FXB["indoor_flying"]
    cols = {  # depth (m) -> the disparity DDES's uint8 code reads back as
        0: (2.0, round(7 * fxb / 2.0) / 7),  # 69.79 -> 70 -> 10.0 px
        1: (7 * fxb / 100.4, 100 / 7),  # rounds down to the 1/7 step
        2: (7 * fxb / 254.4, 254 / 7),  # the largest valid code (36.29 px)
        3: (7 * fxb / 255.0, np.inf),  # code 255 is DDES's invalid mark
        4: (0.5, np.inf),  # 39.9 px: beyond 255/7
        5: (np.nan, np.inf),
        6: (0.0, np.inf),
        7: (np.inf, 0.0),  # a point at infinity: disparity 0, a valid code in the converter
    }
    depth = np.full((2, H, W), 3.0, np.float32)
    for c, (d, _) in cols.items():
        depth[:, :, c] = d
    root = tmp_path / "ddes"
    copy_calib(calib_dir, root)
    rng = np.random.default_rng(8)
    write_sequence(root, SEQ, random_events(rng, 200, 0, 0.1), random_events(rng, 200, 0, 0.1),
                   depth=depth, depth_ts=T_ROS0 + 0.05 * np.arange(1, 3))
    with MVSECSource(root, sequence=SEQ, gt_convention="ddes") as src:
        assert "DDES" in src.describe()
        gt = src.read_window(1).gt_disparity
        src.gt_convention = "exact"
        exact = src.read_window(1).gt_disparity
    assert gt.dtype == np.float32
    for c, (_, want) in cols.items():
        np.testing.assert_allclose(gt[:, c], np.float32(want), rtol=1e-6, err_msg=f"column {c}")
    np.testing.assert_allclose(exact[:, 0], fxb / 2.0, rtol=1e-6)  # exact keeps the float
    assert np.isfinite(exact[:, 4]).all()  # 39.9 px is valid GT without the uint8 limit
    assert np.isinf(exact[:, 7]).all()  # exact GT leaves infinite depth out
    steps = gt[np.isfinite(gt)] * 7
    np.testing.assert_allclose(steps, np.rint(steps), atol=1e-4)  # every valid value is k / 7
    with pytest.raises(InputError, match="--gt-convention must be one of exact, ddes"):
        MVSECSource(root, sequence=SEQ, gt_convention="ddse")


def test_gt_convention_is_one_field_of_the_mvsec_registry_entry(tiny):
    import argparse

    from eventstereo.sources.registry import add_source_arguments, open_source

    p = argparse.ArgumentParser()
    add_source_arguments(p)
    base = ["--source", "mvsec", "--root", str(tiny["root"]), "--sequence", SEQ]
    assert p.parse_args(base).gt_convention == "exact"
    with open_source(p.parse_args(base + ["--gt-convention", "ddes"])) as src:
        assert src.gt_convention == "ddes"
    with pytest.raises(SystemExit):
        p.parse_args(base + ["--gt-convention", "ddse"])
    with pytest.raises(InputError, match="--gt-convention does not apply to --source synthetic"):
        open_source(p.parse_args(["--gt-convention", "ddes"]))
    with open_source(p.parse_args(["--gt-convention", "exact", "--width", "32", "--height", "24"])):
        pass  # the default value is no mistake on any source


def test_ddes_convention_drops_the_event_at_the_window_start(tiny):
    t_edge = int(np.rint((T_ROS0 + 0.1 - tiny["t0"]) * 1e6))  # the start of window 2 exactly
    with MVSECSource(tiny["root"], sequence=SEQ) as exact_src, \
            MVSECSource(tiny["root"], sequence=SEQ, gt_convention="ddes") as ddes_src:
        exact, ddes = exact_src.read_window(2), ddes_src.read_window(2)
        assert exact.t_start_us == ddes.t_start_us == t_edge and exact.t_end_us == ddes.t_end_us
        assert np.any(exact.left["t"] == t_edge) and not np.any(ddes.left["t"] == t_edge)
        np.testing.assert_array_equal(ddes.left, exact.left[exact.left["t"] > t_edge])
        assert ddes.left["t"].min() > ddes.t_start_us and ddes.left["t"].max() < ddes.t_end_us
        # the event is in no DDES window (the previous one ends before it)
        assert not np.any(ddes_src.read_window(1).left["t"] == t_edge)


# ------------------------------------------------------------------------------------- window lists


def test_a_stray_timestamp_without_gt_makes_1e10_windows_computed_not_listed(tmp_path, calib_dir, caplog):
    import tracemalloc

    root = tmp_path / "stray"
    copy_calib(calib_dir, root)
    rng = np.random.default_rng(9)
    left = random_events(rng, 300, 0.0, 0.2)
    left[0] = [5, 6, -5.0, 1.0]  # one event at t = -5 s: 1.5e9 s before the rest
    write_sequence(root, SEQ, left, random_events(rng, 300, 0.0, 0.2))
    with MVSECSource(root, sequence=SEQ) as src:
        src.read_window(0)  # loads the compiled readers outside the trace (numba's cache loads are slow)
    tracemalloc.start()
    try:
        with MVSECSource(root, sequence=SEQ) as src:
            n = len(src)
            span_us = int(np.rint((left[-1, 2] - left[0, 2]) * 1e6)) + 1
            assert n == -(-span_us // 50_000) and n > 10**10
            assert src.items.n_runs == 1 and src.items[n - 1] == (SEQ, n - 1)
            assert len(src.read_window(0).left) == 1  # the stray event, alone
            last = src.read_window(n - 1)
            assert len(last.left) > 0 and not src.read_window(n - 2).gap_before
            src.seek(last.t_end_us - 1)
            it = iter(src)  # (not list(src): list() would size itself by len())
            w = next(it)
            assert w.index == n - 1 and w.gap_before
            assert next(it, None) is None
            assert src.sequences == [SEQ] and "windows" in src.describe()
            assert "a stray timestamp is likely" in caplog.text
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 256 * 2**20, f"peak {peak / 2**20:.1f} MiB"  # one byte per window would be 30 GB


@pytest.mark.parametrize("row,value,message", [
    (0, np.nan, "non-finite time at row 0"),
    (-1, np.inf, "non-finite time at row 299"),
    (-1, 1e13, r"row 299 is stamped 1e\+13 s from the first event"),
])
def test_unusable_first_or_last_timestamps_are_named(tmp_path, calib_dir, row, value, message):
    root = tmp_path / "badtime"
    copy_calib(calib_dir, root)
    rng = np.random.default_rng(11)
    left = random_events(rng, 300, 0.0, 0.2)
    left[row, 2] = value
    with np.errstate(invalid="ignore"):  # (the writer's image stamps span the bad time too)
        write_sequence(root, SEQ, left, random_events(rng, 300, 0.0, 0.2))  # no GT: windows from the span
    with pytest.raises(InputError, match=message):
        MVSECSource(root, sequence=SEQ)


def test_window_runs_index_like_the_list_they_stand_for():
    from eventstereo.sources.base import WindowRuns

    pairs = [("a", 3), ("a", 4), ("a", 5), ("b", 0), ("a", 9), ("a", 10), ("b", 1), ("b", 2)]
    runs = WindowRuns.from_pairs(pairs)
    assert len(runs) == 8 and runs.n_runs == 4 and list(runs) == pairs
    assert [runs[i] for i in range(-8, 8)] == pairs + pairs
    assert runs.run(2) == ("a", 4, 6) and runs.run_keys() == ["a", "b"]
    with pytest.raises(IndexError):
        runs[8]
    assert list(WindowRuns([("s", 0, 0), ("s", 2, 4)])) == [("s", 2), ("s", 3)]


def _events_between(rng, n, t_a, t_b):
    ev = random_events(rng, n, t_a, t_b)
    ev[0, 2], ev[-1, 2] = T_ROS0 + t_a, T_ROS0 + t_b  # exact first and last times
    return ev


def test_depth_frames_outside_the_events_are_skipped_with_a_warning(tmp_path, calib_dir, caplog):
    root = tmp_path / "gt_past_events"
    copy_calib(calib_dir, root)
    rng = np.random.default_rng(10)
    # events from 0.12 s to 0.21 s; depth stamped every 50 ms from 0.05 s to 0.5 s
    write_sequence(root, SEQ, _events_between(rng, 300, 0.12, 0.21), _events_between(rng, 300, 0.12, 0.21),
                   depth=tiny_depth(10), depth_ts=T_ROS0 + 0.05 * np.arange(1, 11))
    with caplog.at_level("WARNING", logger="eventstereo.sources.mvsec"), \
            MVSECSource(root, sequence=SEQ) as src:
        # kept: windows ending 0.15, 0.20, 0.25 s (the last starts at 0.20 s, before the 0.21 s event)
        assert [src.read_window(i).meta["frame"] for i in range(len(src))] == [2, 3, 4]
        assert all(len(w.left) and len(w.right) for w in (src.read_window(i) for i in range(3)))
    assert "skipping 7 depth frame(s) of indoor_flying1" in caplog.text
    assert "outside the recorded events" in caplog.text
    late = tmp_path / "gt_all_after"
    copy_calib(calib_dir, late)
    write_sequence(late, SEQ, _events_between(rng, 50, 0.0, 0.1), _events_between(rng, 50, 0.0, 0.1),
                   depth=tiny_depth(3), depth_ts=T_ROS0 + 5.0 + 0.05 * np.arange(3))
    with pytest.raises(InputError, match="no depth frame has events in its window"):
        MVSECSource(late, sequence=SEQ)
    backwards = _events_between(rng, 50, 0.0, 0.3)
    backwards[-1, 2] = T_ROS0 - 1.0  # the last event earlier than the first
    root_b = tmp_path / "backwards"
    copy_calib(calib_dir, root_b)
    write_sequence(root_b, SEQ, backwards, _events_between(rng, 50, 0.0, 0.3), depth=tiny_depth(3),
                   depth_ts=T_ROS0 + 0.05 * np.arange(1, 4))
    with pytest.raises(InputError, match="davis/left/events' is not sorted by time"):
        MVSECSource(root_b, sequence=SEQ)


# ----------------------------------------------------------------------------------------- calibration


def _reproject(maps_xy, k, d, r, p, pts):
    """Raw pixel of each rectified point, through the fisheye model (an independent path)."""
    u = np.array([[maps_xy[0][y, x], maps_xy[1][y, x], 1.0] for x, y in pts])
    norm = (np.linalg.inv(p[:, :3]) @ u.T).T
    ray = (r.T @ norm.T).T
    ray = ray[:, :2] / ray[:, 2:]
    return cv2.fisheye.distortPoints(ray.reshape(-1, 1, 2), k, d).reshape(-1, 2)


def test_maps_from_camchain_invert_the_fisheye_model():
    cc = example_camchain()
    maps = maps_from_camchain(cc, "test")
    assert maps.shape == (H, W) and maps.fxb == pytest.approx(FXB["indoor_flying"])
    pts = [(20, 30), (173, 133), (300, 200), (345, 259)]
    for side, cam in (("left", cc["cam0"]), ("right", cc["cam1"])):
        fx, fy, cx, cy = cam["intrinsics"]
        k = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
        d = np.array(cam["distortion_coeffs"], float).reshape(4, 1)
        back = _reproject(
            (getattr(maps, f"{side}_x"), getattr(maps, f"{side}_y")),
            k,
            d,
            np.array(cam["rectification_matrix"]),
            np.array(cam["projection_matrix"]),
            pts,
        )
        np.testing.assert_allclose(back, np.array(pts, float), atol=0.05)


def test_camchain_without_projection_uses_fisheye_stereo_rectify():
    cc = example_camchain()
    for cam in cc.values():
        del cam["rectification_matrix"], cam["projection_matrix"]
    maps = maps_from_camchain(cc, "test")
    assert np.isfinite(maps.left_x[H // 2, W // 2]) and maps.fxb > 0


def test_yaml_only_and_zip_calibration_layouts(tiny, tmp_path):
    data = tiny["root"] / f"{SEQ}_data.hdf5"
    yroot = tmp_path / "yaml_only"
    yroot.mkdir()
    shutil.copy(data, yroot)
    write_calibration(yroot, "indoor_flying", layout="dir", txt=False)
    maps = load_calibration(yroot, "indoor_flying")
    ref = maps_from_camchain(example_camchain(), "ref")
    np.testing.assert_allclose(maps.left_x, ref.left_x, atol=1e-4)
    with MVSECSource(yroot, sequence=SEQ) as src:
        assert len(src.read_window(0).left) > 0
    zroot = tmp_path / "zipped"
    write_calibration(zroot, "indoor_flying", maps=shift_maps(), layout="zip")
    zmaps = load_calibration(zroot, "indoor_flying")
    np.testing.assert_allclose(zmaps.right_y, shift_maps().right_y, atol=1e-5)
    assert zmaps.fxb == pytest.approx(FXB["indoor_flying"])


# ------------------------------------------------------------------------------------------------ splits


@pytest.fixture(scope="module")
def split_root(tmp_path_factory, calib_dir):
    """indoor_flying1 with 1201 depth frames (enough for split 1 val/test), few events."""
    root = tmp_path_factory.mktemp("mvsec_split")
    copy_calib(calib_dir, root)
    rng = np.random.default_rng(2)
    n_frames = 1201
    left = random_events(rng, 20_000, 0.0, 0.05 * n_frames)
    right = random_events(rng, 20_000, 0.0, 0.05 * n_frames)
    write_sequence(root, SEQ, left, right)
    with h5py.File(root / f"{SEQ}_gt.hdf5", "w") as f:  # constant depth 2 m: unwritten chunks read as fill
        f.create_dataset(
            "davis/left/depth_image_rect",
            shape=(n_frames, H, W),
            dtype=np.float32,
            chunks=(1, H, W),
            fillvalue=2.0,
        )
        f["davis/left/depth_image_rect_ts"] = T_ROS0 + 0.05 * (np.arange(n_frames) + 1)
    return root


def test_split_source_sorted_frames_and_gaps(split_root):
    with MVSECSource(split_root, split=1, subset="val") as src:
        assert len(src) == 200 and src.has_gt
        wins = list(src)
    want = sorted(split_frames(1, "val"))
    assert [(w.meta["sequence"], w.meta["frame"]) for w in wins] == want
    gaps = [w.gap_before for w in wins]
    assert gaps == [False] + [want[i][1] != want[i - 1][1] + 1 for i in range(1, len(want))]
    assert any(gaps) and not all(gaps)
    assert all(np.allclose(w.gt_disparity, FXB["indoor_flying"] / 2.0) for w in wins[:5])


def test_split_listed_order_keeps_the_shuffle(split_root):
    with MVSECSource(split_root, split=1, subset="test", order="listed") as src:
        assert len(src) == 861
        assert [src.read_window(i).meta["frame"] for i in range(3)] == [
            f for _, f in split_frames(1, "test")[:3]
        ]


def test_split_needs_frames_the_gt_file_has(tmp_path, calib_dir):
    root = tmp_path / "short"
    copy_calib(calib_dir, root)
    rng = np.random.default_rng(3)
    write_sequence(
        root,
        SEQ,
        random_events(rng, 100, 0, 1),
        random_events(rng, 100, 0, 1),
        depth=tiny_depth(20),
        depth_ts=T_ROS0 + 0.05 * (np.arange(20) + 1),
    )
    with pytest.raises(InputError, match=r"needs depth frame \d+ of indoor_flying1, but the GT file has 20"):
        MVSECSource(root, split=1, subset="test")
    with pytest.raises(InputError, match="indoor_flying2_data.hdf5 not found"):
        MVSECSource(root, split=1, subset="train")


# ------------------------------------------------------------------------------------------- bad input


def _variant(
    tmp_path,
    calib_dir,
    name,
    *,
    left=None,
    right=None,
    depth=None,
    image_shapes=None,
    drop=None,
    events_shape=None,
):
    root = tmp_path / name
    copy_calib(calib_dir, root)
    rng = np.random.default_rng(4)
    left = random_events(rng, 500, 0, 0.3) if left is None else left
    right = random_events(rng, 500, 0, 0.3) if right is None else right
    n = 5
    depth = tiny_depth(n) if depth is None else depth
    data, _ = write_sequence(
        root, SEQ, left, right, depth=depth, depth_ts=T_ROS0 + 0.05 * (np.arange(len(depth)) + 1)
    )
    with h5py.File(data, "a") as f:
        if drop:
            del f[drop]
        if events_shape:
            del f["davis/left/events"]
            f["davis/left/events"] = np.zeros(events_shape)
        if image_shapes:
            del f["davis/right/image_raw"]
            f["davis/right/image_raw"] = np.zeros((2,) + image_shapes, np.uint8)
    return root


def test_missing_root_and_files(tmp_path, calib_dir):
    with pytest.raises(InputError, match="root directory not found"):
        MVSECSource(tmp_path / "nowhere", sequence=SEQ)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="indoor_flying1_data.hdf5 not found"):
        MVSECSource(tmp_path / "empty", sequence=SEQ)


def test_missing_dataset_is_named(tmp_path, calib_dir):
    root = _variant(tmp_path, calib_dir, "nokey", drop="davis/right/events")
    with pytest.raises(InputError, match="davis/right/events") as e:
        MVSECSource(root, sequence=SEQ)
    assert "indoor_flying1_data.hdf5" in str(e.value)


def test_wrong_event_table_shape(tmp_path, calib_dir):
    root = _variant(tmp_path, calib_dir, "shape", events_shape=(10, 3))
    with pytest.raises(InputError, match=r"davis/left/events.*\(10, 3\).*\(N, 4\)"):
        MVSECSource(root, sequence=SEQ)


def test_empty_event_stream(tmp_path, calib_dir):
    root = _variant(tmp_path, calib_dir, "empty", left=np.zeros((0, 4)))
    with pytest.raises(InputError, match="no events"):
        MVSECSource(root, sequence=SEQ)


def test_left_right_size_mismatch(tmp_path, calib_dir):
    root = _variant(tmp_path, calib_dir, "mismatch", image_shapes=(200, 300))
    with pytest.raises(InputError, match="left/right size mismatch"):
        MVSECSource(root, sequence=SEQ)


def test_depth_size_mismatch(tmp_path, calib_dir):
    root = _variant(tmp_path, calib_dir, "depthsize", depth=np.ones((3, 100, 120), np.float32))
    with pytest.raises(InputError, match="depth_image_rect.*100x120"):
        MVSECSource(root, sequence=SEQ)


def test_unsorted_events(tmp_path, calib_dir):
    rng = np.random.default_rng(6)
    left = random_events(rng, 500, 0, 0.3)
    left[100:110, 2] = left[100:110, 2][::-1]
    root = _variant(tmp_path, calib_dir, "unsorted", left=left)
    with MVSECSource(root, sequence=SEQ) as src, pytest.raises(InputError, match="not sorted by time at row"):
        list(src)


def test_truncated_file(tmp_path, calib_dir):
    root = _variant(tmp_path, calib_dir, "trunc")
    data = root / f"{SEQ}_data.hdf5"
    blob = data.read_bytes()
    data.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(InputError, match="truncated or corrupt") as e:
        MVSECSource(root, sequence=SEQ)
    assert str(data) in str(e.value)


def test_corrupt_chunk_says_where_reading_stopped(tmp_path, calib_dir):
    root = _variant(tmp_path, calib_dir, "corrupt")
    data = root / f"{SEQ}_data.hdf5"
    rng = np.random.default_rng(7)
    left = random_events(rng, 40_000, 0, 0.3)
    with h5py.File(data, "a") as f:
        del f["davis/left/events"]
        f.create_dataset("davis/left/events", data=left, chunks=(4096, 4), compression="gzip")
    with h5py.File(data, "r") as f:
        info = f["davis/left/events"].id.get_chunk_info(5)
    with open(data, "r+b") as fh:
        fh.seek(info.byte_offset + 16)
        fh.write(b"\xff" * 64)
    with MVSECSource(root, sequence=SEQ) as src, pytest.raises(InputError) as e:
        list(src)
    msg = str(e.value)
    assert "davis/left/events" in msg and "reading stopped" in msg and "row 20480" in msg


def test_bad_or_missing_calibration(tmp_path, tiny):
    root = tmp_path / "nocal"
    root.mkdir()
    shutil.copy(tiny["root"] / f"{SEQ}_data.hdf5", root)
    with pytest.raises(InputError, match="no calibration for scene 'indoor_flying'"):
        MVSECSource(root, sequence=SEQ)
    for side in ("left", "right"):
        for ax in ("x", "y"):
            np.savetxt(root / f"indoor_flying_{side}_{ax}_map.txt", np.zeros((10, 10)))
    with pytest.raises(InputError, match="expected 260x346"):
        MVSECSource(root, sequence=SEQ)
    (root / "indoor_flying_right_y_map.txt").unlink()
    with pytest.raises(InputError, match="incomplete map files"):
        MVSECSource(root, sequence=SEQ)


def test_bench_sources_runs_on_a_short_recording(capsys):
    import json

    from eventstereo.bench import sources as bench

    assert bench.main(["--seconds", "0.3", "--rate", "20000", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["windows"] == 6 and res["windows_per_s"] > 0 and res["baseline_windows_per_s"] > 0
    assert res["events_per_window"] > 0 and "meets_target" in res
