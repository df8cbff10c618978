"""Sensor augmentations of SBT frames: each does what it says, deterministically, and keeps sign frames
in {-1, 0, 1} and the GT untouched."""

import numpy as np
import pytest

from eventstereo.events.sbt import SBTSettings
from eventstereo.sources.cache import CachedWindow
from eventstereo.training import EncodedWindows, WindowSequences
from eventstereo.training.augment import AUGMENTATIONS, SensorAugment, quantise_bins

SIGN = SBTSettings(window_us=50_000, n_bins=5, mode="sign")


def _frames(seed=0, shape=(3, 5, 40, 64), density=0.2):
    rng = np.random.default_rng(seed)
    ev = rng.random(shape) < density
    left = (ev * rng.choice((-1.0, 1.0), shape)).astype(np.float32)
    return left, left.copy()


def _always(name, **kw):
    return SensorAugment([name], {name: AUGMENTATIONS[name].config(p=1.0, **kw)})


def _apply(aug, seed=1, settings=SIGN, **kw):
    left, right = _frames(**kw)
    aug(left, right, settings, np.random.default_rng(seed))
    return left, right


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_each_augmentation_is_deterministic_and_keeps_sign_frames(name):
    a1, b1 = _apply(_always(name))
    a2, b2 = _apply(_always(name))
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(b1, b2)
    for f in (a1, b1):
        assert f.dtype == np.float32
        assert set(np.unique(f)) <= {-1.0, 0.0, 1.0}


def test_dropout_thins_each_eye_by_its_own_rate():
    clean, _ = _frames()
    left, right = _apply(_always("dropout", max_rate=0.6))
    n = np.count_nonzero(clean)
    kept_l, kept_r = np.count_nonzero(left) / n, np.count_nonzero(right) / n
    assert 0.4 - 0.02 < kept_l <= 1.0 and 0.4 - 0.02 < kept_r <= 1.0
    assert kept_l != kept_r
    # dropout never creates an event or flips one
    assert np.all((left == 0) | (left == clean))


def test_polarity_thins_only_one_polarity_alike_in_both_eyes():
    clean, _ = _frames()
    left, right = _apply(_always("polarity", max_rate=0.9), seed=3)
    on_kept = [np.count_nonzero(f > 0) / np.count_nonzero(clean > 0) for f in (left, right)]
    off_kept = [np.count_nonzero(f < 0) / np.count_nonzero(clean < 0) for f in (left, right)]
    thinned = on_kept if min(on_kept) < 1.0 else off_kept
    untouched = off_kept if thinned is on_kept else on_kept
    assert untouched == [1.0, 1.0]
    assert max(thinned) < 1.0


def test_quantise_bins_snap_bin_centres_to_the_clock():
    # 50 ms in 5 bins of 10 ms (centres 5..45 ms); a 40 Hz clock ticks every 25 ms from 0
    chrono = SBTSettings(window_us=50_000, n_bins=5, newest_first=False)
    np.testing.assert_array_equal(quantise_bins(chrono, 25_000, 0.0), [0, 2, 2, 2, 4])
    # ticks at 5, 30, 55 ms: bins (0, 1) snap to 5 ms, (2, 3) to 30 ms, 4 to 55 ms (the last bin)
    np.testing.assert_array_equal(quantise_bins(chrono, 25_000, 5_000.0), [0, 0, 3, 3, 4])
    # the same snapping in the newest-first channel order (channel c holds bin 4 - c)
    np.testing.assert_array_equal(quantise_bins(SIGN, 25_000, 5_000.0), [0, 1, 1, 4, 4])
    # a clock much faster than the bins changes nothing
    np.testing.assert_array_equal(quantise_bins(chrono, 1_000, 300.0), np.arange(5))


def test_quantise_merges_bins_the_same_way_in_both_eyes():
    left, right = _frames(density=0.05)
    aug = SensorAugment(["quantise"], {"quantise": AUGMENTATIONS["quantise"].config(p=1.0, min_hz=40,
                                                                                     max_hz=41)})
    aug(left, right, SIGN, np.random.default_rng(0))
    np.testing.assert_array_equal(left, right)  # the same clock in both cameras
    empty = [c for c in range(5) if not left[:, c].any()]
    assert len(empty) >= 2  # events crowd into fewer bins


def test_noise_adds_independent_events_per_eye():
    clean, _ = _frames(density=0.0)
    left, right = _apply(_always("noise"), seed=5, density=0.0)
    assert np.count_nonzero(left) > 0 and np.count_nonzero(right) > 0
    assert not np.array_equal(left, right)
    assert not clean.any()


def test_burst_fills_one_window_in_a_band_of_both_eyes():
    left, right = _apply(_always("burst", density=(0.3, 0.3)), seed=2, density=0.0)
    busy = [t for t in range(left.shape[0]) if left[t].any()]
    assert len(busy) == 1
    rows = np.nonzero(left[busy[0]].any(axis=(0, 2)))[0]
    assert np.count_nonzero(left) == pytest.approx(0.3 * left[busy[0]][:, rows].size, rel=0.1)
    assert np.array_equal(np.nonzero(right[busy[0]].any(axis=(0, 2)))[0], rows)
    assert not np.array_equal(left, right)  # uncorrelated: nothing in a burst should match


def test_polarity_mode_frames_are_refused_with_a_clear_error():
    left, right = _frames()
    with pytest.raises(ValueError, match="polarity"):
        _always("noise")(left, right, SBTSettings(mode="polarity"), np.random.default_rng(0))
    # the polarity augmentation tells ON from OFF by sign, which ON/OFF count frames do not carry
    with pytest.raises(ValueError, match="polarity augmentation"):
        _always("polarity")(left, right, SBTSettings(mode="polarity"), np.random.default_rng(0))
    _always("dropout")(left, right, SBTSettings(mode="polarity"), np.random.default_rng(0))  # counts thin


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown augmentation"):
        SensorAugment(["blur"])


def _store(n=8, hw=(24, 32)):
    rng = np.random.default_rng(0)
    wins = []
    for k in range(n):
        f = (rng.random((5, *hw)) < 0.2).astype(np.int8)
        wins.append(CachedWindow(f, f.copy(), np.full(hw, 3.0, np.float32), (k + 1) * 50_000, "s", k == 0))
    return EncodedWindows(wins, sensor_size=(hw[1], hw[0]), fxb=1.0, max_disparity=23, sbt_settings=SIGN)


def test_window_sequences_augment_per_item_and_epoch_and_leave_gt_alone():
    store = _store()
    aug = SensorAugment(list(AUGMENTATIONS))
    plain = WindowSequences(store, 4, seed=7)
    ds = WindowSequences(store, 4, seed=7, augment=aug)
    a, b = ds[0], ds[0]
    np.testing.assert_array_equal(a["left"], b["left"])  # reproducible: a resumed run sees the same data
    np.testing.assert_array_equal(a["gt"], plain[0]["gt"])
    assert not np.array_equal(a["left"], plain[0]["left"])
    ds.set_epoch(1)
    assert not np.array_equal(ds[0]["left"], a["left"])
