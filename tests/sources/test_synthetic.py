"""The synthetic stereo source: determinism, window invariants, random access, and the physics the
network has to learn (disparity = fxB / Z in both GT and events; threshold crossings; refractory)."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest

from eventstereo.events.sbt import SBTSettings, encode_sbt
from eventstereo.events.types import EVENT_DTYPE
from eventstereo.sources.synthetic import (
    MVSEC_CX,
    MVSEC_CY,
    MVSEC_FX,
    TEXTURE_FAMILIES,
    LinearTrajectory,
    SyntheticConfig,
    SyntheticScene,
    SyntheticStereoSource,
    make_texture,
    plane_face,
)

SMALL = dict(width=96, height=72)


def small_source(seed: int = 0, **kw) -> SyntheticStereoSource:
    return SyntheticStereoSource(SyntheticConfig(**{**SMALL, **kw}), seed=seed)


def take(source, n: int) -> list:
    out = []
    for win in source:
        out.append(win)
        if len(out) == n:
            break
    return out


def same_window(a, b) -> bool:
    return (a.t_start_us == b.t_start_us and a.t_end_us == b.t_end_us and a.index == b.index
            and np.array_equal(a.left, b.left) and np.array_equal(a.right, b.right)
            and np.array_equal(a.gt_disparity, b.gt_disparity))


def plane_source(depth: float, *, fx: float = 60.0, velocity=(0.0, 0.3, 0.0), texture=None, texel=None,
                 **cfg) -> SyntheticStereoSource:
    """A camera looking at one textured fronto-parallel plane at ``depth`` m, moving at ``velocity``."""
    if texture is None:
        texel = 0.6 * depth / fx  # finest detail ~3 texels = 1.8 px
        texture = make_texture(np.random.default_rng(0), 256, texel, 3 * texel, 0.5)
    scene = SyntheticScene([plane_face((0, 0, depth), (0, 0, -1), 0, texel)], texture[None])
    settings = dict(SMALL, fx=fx, fy=fx, threshold_sigma=0.0, noise_rate_hz=0.0, depth_min=0.3)
    settings.update(cfg)
    return SyntheticStereoSource(SyntheticConfig(**settings), seed=0, scene=scene,
                                 trajectory=LinearTrajectory(velocity=velocity))


def signed_counts(events: np.ndarray, w: int, h: int) -> np.ndarray:
    return encode_sbt(events, int(events["t"].max()) + 1 if len(events) else 1, (w, h),
                      SBTSettings(window_us=1 << 40, n_bins=1, mode="sum"))[0]


# ---- configuration ---------------------------------------------------------------------------------
def test_config_defaults_are_mvsec_and_scale_with_the_sensor():
    cfg = SyntheticConfig()
    assert (cfg.width, cfg.height) == (346, 260)
    assert cfg.intrinsics() == pytest.approx((MVSEC_FX, MVSEC_FX, MVSEC_CX, MVSEC_CY))
    assert cfg.fxb == pytest.approx(MVSEC_FX * 0.1)
    half = SyntheticConfig(width=173, height=130)
    fx, fy, cx, cy = half.intrinsics()
    assert fx == pytest.approx(MVSEC_FX / 2) and fy == pytest.approx(MVSEC_FX / 2)
    assert cx == pytest.approx((MVSEC_CX + 0.5) / 2 - 0.5) and cy == pytest.approx((MVSEC_CY + 0.5) / 2 - 0.5)
    assert SyntheticConfig(fx=100.0, baseline_m=0.2).fxb == pytest.approx(20.0)
    assert SyntheticConfig.from_dict(json.loads(json.dumps(half.to_dict()))) == half


@pytest.mark.parametrize("bad", [dict(width=1), dict(depth_min=0.1), dict(depth_min=7.0), dict(window_us=0),
                                 dict(contrast_threshold=0.0), dict(texture_size=100), dict(render_hz=0.0)])
def test_config_rejects_bad_settings(bad):
    with pytest.raises(ValueError):
        SyntheticConfig(**bad)
    with pytest.raises(ValueError, match="unknown"):
        SyntheticConfig.from_dict({"widht": 3})


# ---- stream invariants, determinism, random access ------------------------------------------------
def test_windows_are_contiguous_sorted_and_inside_the_sensor():
    src = small_source(seed=3, window_us=20_000)
    assert src.name == "synthetic" and src.has_gt and src.sensor_size == (96, 72)
    assert src.fxb == pytest.approx(SyntheticConfig(**SMALL).fxb) and src.max_disparity == 63
    wins = take(src, 5)
    w, h = src.sensor_size
    for k, win in enumerate(wins):
        assert win.index == k and win.t_start_us == k * 20_000 and win.t_end_us == (k + 1) * 20_000
        assert not win.gap_before and win.meta["seed"] == 3
        for ev in (win.left, win.right):
            assert ev.dtype == EVENT_DTYPE and len(ev) > 0
            assert np.all(np.diff(ev["t"]) >= 0)
            assert ev["t"].min() >= win.t_start_us and ev["t"].max() < win.t_end_us
            assert ev["x"].min() >= 0 and ev["x"].max() < w and ev["y"].min() >= 0 and ev["y"].max() < h
            assert set(np.unique(ev["p"])) <= {0, 1}
        gt = win.gt_disparity
        assert gt.shape == (h, w) and gt.dtype == np.float32
        depth = win.meta["depth"]
        assert np.array_equal(np.isfinite(gt), np.isfinite(depth))
        assert np.allclose(gt[np.isfinite(gt)], src.fxb / depth[np.isfinite(depth)], rtol=1e-5)


def test_same_seed_same_stream_and_different_seeds_differ():
    a, b, c = take(small_source(seed=5), 3), take(small_source(seed=5), 3), take(small_source(seed=6), 3)
    assert all(same_window(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0].gt_disparity, c[0].gt_disparity)
    assert not any(np.array_equal(x.left, y.left) for x, y in zip(a, c))


def test_seek_and_window_at_reproduce_sequential_iteration():
    # Resets every 3 windows: windows 0..7 cross two resets; random access must replay exactly.
    seq = take(small_source(seed=2, state_reset_windows=3), 8)
    src = small_source(seed=2, state_reset_windows=3)
    for k in (5, 2, 3, 4, 7, 0):
        assert same_window(src.window_at(k), seq[k]), k
    src.seek(4 * src.window_us + 123)  # inside window 4
    after = take(src, 3)
    assert [w.index for w in after] == [4, 5, 6] and after[0].gap_before and not after[1].gap_before
    assert all(same_window(x, seq[x.index]) for x in after)
    with pytest.raises(ValueError):
        src.seek(-1)


def test_length_only_when_the_duration_is_set():
    src = small_source(duration_s=0.2)
    assert len(src) == 4 and [w.index for w in src] == [0, 1, 2, 3]
    with pytest.raises(IndexError):
        src.window_at(4)
    with pytest.raises(TypeError):
        len(small_source())


def test_default_stream_is_mvsec_like():
    """Full MVSEC size: every pixel sees a surface, disparities within the network's range, and
    tens of thousands of events per view per window."""
    src = SyntheticStereoSource(seed=0)
    for win in take(src, 2):
        gt = win.gt_disparity
        assert np.isfinite(gt).all()
        assert gt.min() > 2.0 and gt.max() < src.max_disparity
        assert 10_000 < len(win.left) < 1_000_000 and 10_000 < len(win.right) < 1_000_000
        for ev in (win.left, win.right):
            on = float(np.mean(ev["p"] > 0))
            assert 0.2 < on < 0.8


# ---- geometry: disparity = fxB / Z -----------------------------------------------------------------
@pytest.mark.parametrize("disparity", [4.0, 9.5])
def test_plane_at_depth_z_has_disparity_fxb_over_z_in_gt_and_events(disparity):
    fx = 60.0
    z = fx * 0.1 / disparity
    src = plane_source(z, fx=fx)
    wins = take(src, 3)
    for win in wins:
        assert np.allclose(win.gt_disparity, disparity, rtol=1e-5)
    w, h = src.sensor_size
    left = sum(signed_counts(win.left, w, h) for win in wins)
    right = sum(signed_counts(win.right, w, h) for win in wins)
    # Right events are left events shifted left by fxB / Z: correlate along x, find the sub-pixel peak.
    shifts = np.arange(0, 20)
    corr = np.array([np.corrcoef(left[:, s:].ravel(), right[:, :w - s].ravel())[0, 1] for s in shifts])
    i = int(corr.argmax())
    y0, y1, y2 = corr[i - 1], corr[i], corr[i + 1]
    peak = shifts[i] + 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)
    assert abs(peak - disparity) < 0.1
    assert corr[i] > 0.75


def test_random_scene_views_agree_through_the_gt():
    """Brightness constancy through GT: the left image equals the right image sampled at x - d(x, y)
    except at occlusions; a disparity off by 1 px breaks that; the events agree the same way."""
    src = SyntheticStereoSource(SyntheticConfig(width=173, height=130, noise_rate_hz=0.0), seed=1)
    w, h = src.sensor_size
    rows = np.arange(h)[:, None]

    def warp(img, d):
        xs = np.arange(w)[None, :] - d
        x0 = np.floor(xs).astype(int)
        a = xs - x0
        ok = (x0 >= 0) & (x0 + 1 < w)
        x0 = np.clip(x0, 0, w - 2)
        return img[rows, x0] * (1 - a) + img[rows, x0 + 1] * a, ok

    for t in (0, 730_000):
        left, depth = src.render(t, "left")
        right, _ = src.render(t, "right")
        d = src.fxb / depth
        agree = []
        for dd in (d, d + 1.0):
            v, ok = warp(right, dd)
            agree.append(np.mean(np.abs(left[ok] - v[ok]) < 0.05))
        assert agree[0] > 0.9 and agree[1] < 0.7, agree

    for win in take(src, 2):
        gt = win.gt_disparity
        lc, rc = signed_counts(win.left, w, h), signed_counts(win.right, w, h)
        corr = []
        for dd in (gt, 1.3 * gt, np.full_like(gt, np.median(gt))):
            v, ok = warp(rc, dd)
            corr.append(np.corrcoef(lc[ok], v[ok])[0, 1])
        assert corr[0] > 0.4 and corr[0] > corr[1] + 0.05 and corr[0] > corr[2] + 0.03, corr


# ---- event generation -------------------------------------------------------------------------------
def test_static_camera_makes_no_events_and_noise_is_poisson():
    quiet = take(plane_source(1.0, velocity=(0, 0, 0)), 2)
    assert all(len(w.left) == 0 and len(w.right) == 0 for w in quiet)
    rate = 20.0
    noisy = take(plane_source(1.0, velocity=(0, 0, 0), noise_rate_hz=rate), 4)
    n = sum(len(w.left) for w in noisy)
    expected = rate * 96 * 72 * 4 * 0.05
    assert abs(n - expected) < 5 * math.sqrt(expected)
    assert all(np.all(np.diff(w.left["t"]) >= 0) for w in noisy)


def esim_reference_counts(log_i: np.ndarray, c: float, reps: int, rng: np.random.Generator) -> np.ndarray:
    """Mean event count per row of ``log_i`` (signals over time) for a textbook ESIM pixel whose
    reference starts uniformly within a threshold of the first value (the generator's reset)."""
    ref = log_i[:, :1] - rng.uniform(-c, c, (len(log_i), reps))
    n = np.zeros_like(ref)
    for v in log_i[:, 1:].T:  # steps are much smaller than c: at most one crossing per step
        up = v[:, None] - ref >= c
        down = v[:, None] - ref <= -c
        ref += c * up - c * down
        n += up | down
    return n.mean(1)


def test_crossing_count_matches_log_intensity_change_over_threshold():
    """A plane with a sinusoidal log-intensity grating, camera sliding along x. Per pixel, the ON (OFF)
    count is the total rise (fall) of log intensity over the threshold, within one event (the unknown
    starting reference) plus one per turning point; in total it matches a textbook ESIM simulation
    of the analytic signal."""
    fx, z, c = 60.0, 1.0, 0.2
    period_m, amp, size = 0.2, 0.5, 256
    texel = period_m / 64  # 64 texels per period: bilinear lookup is a sinusoid to ~1e-3
    cols = np.arange(size)
    grating = (amp * np.sin(2 * np.pi * cols / 64))[None, :].repeat(size, 0).astype(np.float32)
    vx, n_win = 0.5, 4
    src = plane_source(z, fx=fx, velocity=(vx, 0, 0), texture=grating, texel=texel, refractory_us=0,
                       contrast_threshold=c, render_hz=4000.0, state_reset_windows=100)
    wins = take(src, n_win)
    w, h = src.sensor_size
    ev = np.concatenate([win.left for win in wins])
    on = np.zeros((h, w))
    off = np.zeros((h, w))
    np.add.at(on, (ev["y"][ev["p"] > 0], ev["x"][ev["p"] > 0]), 1)
    np.add.at(off, (ev["y"][ev["p"] == 0], ev["x"][ev["p"] == 0]), 1)

    # Analytic log intensity seen by pixel column x: the plane's texture u axis is world +x.
    _, _, cx, _ = src.config.intrinsics()
    t = np.linspace(0, n_win * 0.05, 4001)
    a = (np.arange(w)[:, None] - cx) * z / fx + vx * t[None, :]
    log_i = amp * np.sin(2 * np.pi * a / period_m)
    step = np.diff(log_i, axis=1)
    rise = np.clip(step, 0, None).sum(1) / c
    fall = np.clip(-step, 0, None).sum(1) / c
    turns = (np.diff(np.sign(step), axis=1) != 0).sum(1)
    assert rise.sum() + fall.sum() > 3 * w  # several events per pixel: the test has teeth
    for x in range(w):
        assert np.all(np.abs(on[:, x] - rise[x]) <= 1 + turns[x]), x
        assert np.all(np.abs(off[:, x] - fall[x]) <= 1 + turns[x]), x
    expected = esim_reference_counts(log_i, c, 64, np.random.default_rng(0))
    counts = (on + off).mean(0)
    assert abs(counts.sum() - expected.sum()) < 0.03 * expected.sum()
    assert np.abs(counts - expected).mean() < 0.3


def test_refractory_period_holds_across_windows_and_resets():
    refr = 4000
    kw = dict(seed=4, refractory_us=refr, noise_rate_hz=0.0, state_reset_windows=2, window_us=20_000)
    wins = take(small_source(**kw), 6)
    for view in ("left", "right"):
        ev = np.concatenate([getattr(win, view) for win in wins])
        pix = ev["y"].astype(np.int64) * 96 + ev["x"]
        order = np.lexsort((ev["t"], pix))
        same = np.diff(pix[order]) == 0
        gaps = np.diff(ev["t"][order])[same]
        assert gaps.min() >= refr
    # ... and it bites: without it there are more events (some closer than refr).
    free = take(small_source(**{**kw, "refractory_us": 0}), 6)
    assert sum(len(w.left) for w in free) > sum(len(w.left) for w in wins)


def test_render_steps_follow_image_motion():
    """Adaptive rendering: image motion per render stays under max_px_per_render (1 px by default)."""
    fx, z, vx = 60.0, 1.0, 0.5
    flow_px = fx * vx / z * 0.05  # px per 50 ms window
    win = take(plane_source(z, fx=fx, velocity=(vx, 0, 0)), 1)[0]
    assert math.ceil(flow_px) <= win.meta["substeps"] <= math.ceil(1.2 * flow_px) + 1
    fine = take(plane_source(z, fx=fx, velocity=(vx, 0, 0), max_px_per_render=0.25), 1)[0]
    assert fine.meta["substeps"] >= 4 * flow_px
    fixed = take(plane_source(z, fx=fx, velocity=(vx, 0, 0), render_hz=1000.0), 1)[0]
    assert fixed.meta["substeps"] == 50


# ---- integration --------------------------------------------------------------------------------
def test_registry_opens_the_synthetic_source():
    from eventstereo.sources.registry import open_source

    args = argparse.Namespace(source="synthetic", seed=7, width=96, height=72, window_ms=25.0)
    src = open_source(args)
    assert isinstance(src, SyntheticStereoSource)
    assert src.sensor_size == (96, 72) and src.window_us == 25_000 and src.seed == 7


def test_bench_reports_realtime_factor(capsys):
    from eventstereo.bench import synthetic as bench

    assert bench.main(["--width", "96", "--height", "72", "--seconds", "0.1", "--json"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("realtime_factor", "events_per_s", "windows_per_s", "events_per_window_per_view"):
        assert r[key] > 0


# ---- the varied world (issue 13) ------------------------------------------------------------------
VARIED = dict(texture_families=("pink", "dead_leaves", "stripes", "text", "gradient", "flat"),
              layout="varied", motion="varied", light_burst_rate_hz=1.0, randomize_sensor=True)


@pytest.mark.parametrize("family", sorted(TEXTURE_FAMILIES))
def test_texture_families_are_tileable_normalised_and_seeded(family):
    a = make_texture(np.random.default_rng(3), 64, 0.01, 0.03, 0.5, family)
    b = make_texture(np.random.default_rng(3), 64, 0.01, 0.03, 0.5, family)
    assert a.shape == (64, 64) and a.dtype == np.float32 and np.array_equal(a, b)
    assert abs(float(a.mean())) < 1e-5
    assert a.std() == pytest.approx(0.5 * TEXTURE_FAMILIES[family][1], rel=1e-4)
    # tileable: the seam (last row/column to first) is no rougher than the inside of the tile
    inside = np.abs(np.diff(a, axis=1)).mean()
    assert np.abs(a[:, 0] - a[:, -1]).mean() < 3 * inside + 1e-6
    others = [make_texture(np.random.default_rng(3), 64, 0.01, 0.03, 0.5, f)
              for f in TEXTURE_FAMILIES if f != family]
    assert not any(np.allclose(a, o) for o in others)
    with pytest.raises(ValueError, match="unknown texture family"):
        make_texture(np.random.default_rng(3), 64, 0.01, 0.03, 0.5, "marble")


def test_varied_world_is_deterministic_random_access_and_stays_valid():
    src = small_source(seed=11, state_reset_windows=3, **VARIED)
    again = small_source(seed=11, state_reset_windows=3, **VARIED)
    seq = take(src, 7)
    assert all(same_window(x, y) for x, y in zip(seq, take(again, 7)))
    for k in (5, 1, 6):
        assert same_window(again.window_at(k), seq[k]), k
    w, h = src.sensor_size
    for win in seq:
        for ev in (win.left, win.right):
            assert np.all(np.diff(ev["t"]) >= 0)
            assert ev["t"].min() >= win.t_start_us and ev["t"].max() < win.t_end_us
            assert ev["x"].max() < w and ev["y"].max() < h
        gt = win.gt_disparity[np.isfinite(win.gt_disparity)]
        assert gt.size and gt.max() < src.max_disparity
    plain = small_source(seed=11)
    assert len(src.scene.faces) > len(plain.scene.faces)  # far backdrops were added
    assert src.sensor != plain.sensor and src.sensor != small_source(seed=12, **VARIED).sensor


def test_randomized_sensors_span_the_ranges():
    from eventstereo.sources.synthetic_sensor import SENSOR_RANGES, SensorParams

    drawn = [SensorParams.draw(np.random.default_rng(s)) for s in range(200)]
    c = np.array([d.contrast_threshold for d in drawn])
    lo, hi, _ = SENSOR_RANGES["contrast_threshold"]
    assert lo <= c.min() < 1.3 * lo and hi / 1.3 < c.max() <= hi
    assert all(d.threshold_sigma <= 0.25 * d.contrast_threshold for d in drawn)
    assert len({d.refractory_us for d in drawn}) > 100


def test_hot_pixels_leak_and_jitter():
    quiet = dict(velocity=(0, 0, 0), noise_rate_hz=0.0)
    hot = take(plane_source(1.0, hot_pixel_fraction=0.002, hot_pixel_rate_hz=400.0, **quiet), 3)
    pix = np.concatenate([w.left["y"].astype(np.int64) * 96 + w.left["x"] for w in hot])
    n_hot = round(0.002 * 96 * 72)
    assert len(np.unique(pix)) == n_hot  # only the hot pixels fire in a static scene ...
    assert abs(len(pix) - n_hot * 400 * 0.15) < 5 * math.sqrt(n_hot * 400 * 0.15)  # ... at their rate
    leak = take(plane_source(1.0, leak_rate_hz=20.0, **quiet), 2)
    assert all(len(w.left) > 0 and np.all(w.left["p"] == 1) for w in leak)  # leak events are ON
    base = take(plane_source(1.0, noise_rate_hz=0.0), 2)
    shaken = take(plane_source(1.0, noise_rate_hz=0.0, timestamp_jitter_us=500.0), 2)
    for a, b in zip(base, shaken):
        assert len(a.left) == len(b.left) and not np.array_equal(a.left["t"], b.left["t"])
        assert np.all(np.diff(b.left["t"]) >= 0) and b.left["t"].min() >= b.t_start_us
        assert b.left["t"].max() < b.t_end_us
        assert abs(np.sort(b.left["t"]).mean() - np.sort(a.left["t"]).mean()) < 100


def test_frame_mode_stamps_events_at_frame_times_with_the_same_counts():
    fx, z = 60.0, 1.0
    frames = take(plane_source(z, fx=fx, velocity=(0.5, 0, 0), event_mode="frames", frame_hz=400.0,
                               refractory_us=0), 2)
    interp = take(plane_source(z, fx=fx, velocity=(0.5, 0, 0), refractory_us=0), 2)
    for win in frames:
        assert win.meta["substeps"] == 20
        frame_times = {win.t_start_us + 2500 * s for s in range(1, 20)} | {win.t_end_us - 1}
        assert set(np.unique(win.left["t"]).tolist()) <= frame_times and len(win.left) > 0
    n_f = sum(len(w.left) for w in frames)
    n_i = sum(len(w.left) for w in interp)
    assert abs(n_f - n_i) < 0.1 * n_i  # same signal, same thresholds: about as many events


def test_light_bursts_make_events_without_motion():
    still = dict(velocity=(0, 0, 0), noise_rate_hz=0.0)
    lit = take(plane_source(1.0, light_burst_rate_hz=1.0, **still), 40)  # 2 s: about two bursts
    counts = np.array([len(w.left) + len(w.right) for w in lit])
    assert counts.sum() > 96 * 72 and (counts == 0).sum() > 20  # a few windows burst, the rest stay dark
    assert max(w.meta["substeps"] for w in lit) >= 25  # renders follow the light (2 ms steps)


def test_varied_flight_is_a_pure_bounded_function_of_time():
    from eventstereo.sources.synthetic_scene import VariedFlight

    a = VariedFlight(np.random.default_rng(5))
    b = VariedFlight(np.random.default_rng(5))
    ts = np.linspace(0, 30, 3001)
    forward = np.array([a.state(t) for t in ts])
    backward = np.array([b.state(t) for t in ts[::-1]])[::-1]
    assert np.array_equal(forward, backward)
    assert np.abs(forward[:, :3]).max() < 0.4 + 0.4 + 0.08  # flight box (x, z) plus a burst
    speed = np.abs(np.diff(forward[:, :3], axis=0)).max(1) / (ts[1] - ts[0])
    assert speed.max() > 3 * np.median(speed)  # bursts: sudden fast stretches


def test_config_files_and_bad_varied_settings(tmp_path):
    from eventstereo.errors import InputError
    from eventstereo.sources.synthetic import load_config_file

    for bad in (dict(event_mode="video"), dict(layout="maze"), dict(texture_families=("wood",)),
                dict(hot_pixel_fraction=2.0), dict(frame_hz=0.0), dict(leak_rate_hz=-1.0)):
        with pytest.raises(ValueError):
            SyntheticConfig(**bad)
    cfg = SyntheticConfig(**VARIED)
    assert SyntheticConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    path = tmp_path / "world.json"
    path.write_text(json.dumps({"layout": "maze"}))
    with pytest.raises(InputError, match="world.json"):
        load_config_file(path)
    from pathlib import Path

    shipped = sorted(Path("tools/configs/synthetic").glob("**/*.json"))
    assert len(shipped) >= 17  # the worlds and the one-factor configs of tools/README.md
    for path in shipped:
        SyntheticConfig.from_dict(load_config_file(path))


def test_training_configs_never_use_held_out_generators():
    """Photographs that packages ship and the frame-differencing mode are for held-out checks only."""
    from pathlib import Path

    from eventstereo.sources.synthetic import load_config_file

    train = SyntheticConfig.from_dict(load_config_file("tools/configs/synthetic/synthetic_varied.json"))
    held = SyntheticConfig.from_dict(load_config_file("tools/configs/synthetic/synthetic_heldout.json"))
    assert "photo" not in train.texture_families and train.event_mode != held.event_mode
    assert not set(train.texture_families) & set(held.texture_families)
    for path in Path("tools/configs").glob("demo*.json"):
        text = path.read_text()
        assert "heldout" not in text and "photos" not in text, path
