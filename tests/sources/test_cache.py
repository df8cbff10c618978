"""SBT training cache: contents equal the encoder's output, runs, atomic writes, bad files, the tool."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest

from eventstereo.errors import InputError
from eventstereo.events.sbt import SBTSettings, encode_sbt
from eventstereo.events.types import make_events
from eventstereo.events.window import StereoWindow
from eventstereo.sources.base import Source
from eventstereo.sources.cache import SBTCache, write_sbt_cache
from eventstereo.sources.mvsec import MVSECSource
from eventstereo.sources.mvsec_synth import make_recording

SIZE = (24, 16)


class ListSource(Source):
    """Windows given up front; can fail after some windows to test atomic writes."""

    name = "list"

    def __init__(self, wins, *, fail_after=None, gt=True):
        self.wins, self.fail_after = wins, fail_after
        self.sensor_size, self.fxb, self.max_disparity, self.window_us = SIZE, 2.5, 31, 50_000
        self.has_gt = gt

    def __len__(self):
        return len(self.wins)

    def __iter__(self):
        for k, w in enumerate(self.wins):
            if self.fail_after is not None and k == self.fail_after:
                raise RuntimeError("source broke")
            yield w


def make_windows(n=8, gt=True, seed=0):
    """Two sequences; a gap inside the first one after window 3."""
    rng = np.random.default_rng(seed)
    wins = []
    for k in range(n):
        a = 50_000 * k
        ev = [
            make_events(
                rng.integers(0, SIZE[0], 400),
                rng.integers(0, SIZE[1], 400),
                np.sort(rng.integers(a, a + 50_000, 400)),
                rng.integers(0, 2, 400),
            )
            for _ in range(2)
        ]
        g = rng.uniform(0, 30, (SIZE[1], SIZE[0])).astype(np.float32) if gt else None
        if g is not None:
            g[0] = np.inf
        seq = "seqA" if k < 5 else "seqB"
        wins.append(
            StereoWindow(
                ev[0],
                ev[1],
                a,
                a + 50_000,
                SIZE,
                gt_disparity=g,
                index=k,
                gap_before=(k == 3),
                meta={"sequence": seq, "frame": 10 + k},
            )
        )
    return wins


def test_cache_holds_the_encoded_windows(tmp_path):
    wins = make_windows()
    settings = SBTSettings()
    path = write_sbt_cache(ListSource(wins), tmp_path / "c.h5", settings, progress=False)
    with h5py.File(path) as f:
        assert f["left"].dtype == np.int8 and f["left"].id.get_create_plist().get_nfilters() == 1
    with SBTCache(path) as cache:
        assert len(cache) == 8 and cache.sensor_size == SIZE and cache.fxb == 2.5
        assert cache.max_disparity == 31 and cache.sbt_settings == settings
        for k, w in enumerate(wins):
            item = cache[k]
            np.testing.assert_array_equal(item.left, encode_sbt(w.left, w.t_end_us, SIZE, settings))
            np.testing.assert_array_equal(item.right, encode_sbt(w.right, w.t_end_us, SIZE, settings))
            assert item.left.dtype == np.float32 and item.gt.dtype == np.float32
            np.testing.assert_array_equal(item.gt, w.gt_disparity)
            assert (item.t_end_us, item.sequence, item.frame) == (w.t_end_us, w.meta["sequence"], 10 + k)
        assert [cache[k].gap_before for k in range(8)] == [
            True,
            False,
            False,
            True,
            False,
            True,
            False,
            False,
        ]
        assert cache.runs() == [(0, 3), (3, 5), (5, 8)]
        assert cache[-1].t_end_us == wins[-1].t_end_us
        with pytest.raises(IndexError):
            cache[8]


def test_sum_mode_is_stored_exactly_and_max_windows(tmp_path):
    wins = make_windows()
    settings = SBTSettings(mode="sum", n_bins=3)
    path = write_sbt_cache(ListSource(wins), tmp_path / "sum.h5", settings, max_windows=4, progress=False)
    with SBTCache(path, expect_settings=settings) as cache:
        assert len(cache) == 4
        with h5py.File(path) as f:
            assert f["right"].dtype == np.int16
        np.testing.assert_array_equal(
            cache[2].right, encode_sbt(wins[2].right, wins[2].t_end_us, SIZE, settings)
        )


def test_source_without_gt_gets_all_inf(tmp_path):
    path = write_sbt_cache(
        ListSource(make_windows(3, gt=False), gt=False), tmp_path / "nogt.h5", SBTSettings(), progress=False
    )
    with SBTCache(path) as cache:
        assert not cache.has_gt and np.isinf(cache[1].gt).all()


def test_write_is_atomic(tmp_path):
    path = tmp_path / "c.h5"
    write_sbt_cache(ListSource(make_windows(2)), path, SBTSettings(), progress=False)
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="source broke"):
        write_sbt_cache(ListSource(make_windows(), fail_after=4), path, SBTSettings(), progress=False)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.h5"]
    with pytest.raises(InputError, match="no windows"):
        write_sbt_cache(ListSource([]), tmp_path / "empty.h5", SBTSettings(), progress=False)
    assert not (tmp_path / "empty.h5").exists()


def test_pickled_cache_reopens_the_file(tmp_path):
    path = write_sbt_cache(ListSource(make_windows(3)), tmp_path / "c.h5", SBTSettings(), progress=False)
    cache = SBTCache(path)
    clone = pickle.loads(pickle.dumps(cache))
    np.testing.assert_array_equal(clone[1].left, cache[1].left)
    cache.close()
    clone.close()


def test_synthetic_source_caches(tmp_path):
    syn = pytest.importorskip("eventstereo.sources.synthetic")
    src = syn.SyntheticStereoSource(syn.SyntheticConfig(width=48, height=32, window_us=50_000), seed=1)
    path = write_sbt_cache(src, tmp_path / "syn.h5", SBTSettings(), max_windows=2, progress=False)
    with SBTCache(path) as cache:
        assert len(cache) == 2 and cache.sensor_size == (48, 32) and cache.fxb == pytest.approx(src.fxb)
        assert cache.runs() == [(0, 2)] and np.isfinite(cache[0].gt).any()


# --------------------------------------------------------------------------------------------- bad files


def test_bad_cache_files(tmp_path):
    with pytest.raises(InputError, match="SBT cache not found"):
        SBTCache(tmp_path / "none.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x00" * 1000)
    with pytest.raises(InputError, match="not a readable HDF5 cache"):
        SBTCache(junk)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(InputError, match="not an SBT cache"):
        SBTCache(other)
    good = write_sbt_cache(ListSource(make_windows(4)), tmp_path / "good.h5", SBTSettings(), progress=False)
    with pytest.raises(InputError, match="was built with .* but .* was asked for"):
        SBTCache(good, expect_settings=SBTSettings(n_bins=3))
    blob = good.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(InputError, match="truncated or corrupt"):
        SBTCache(cut)
    nogt = tmp_path / "nogt.h5"
    nogt.write_bytes(blob)
    with h5py.File(nogt, "a") as f:
        del f["gt"]
    with pytest.raises(InputError, match="missing dataset 'gt'"):
        SBTCache(nogt)
    short = tmp_path / "short.h5"
    short.write_bytes(blob)
    with h5py.File(short, "a") as f:
        f["right"].resize(3, axis=0)
    with pytest.raises(InputError, match=r"'right' has shape \(3, 5, 16, 24\), expected \(4, 5, 16, 24\)"):
        SBTCache(short)


def test_corrupt_window_says_how_far_the_cache_reads(tmp_path):
    wins = make_windows()
    path = write_sbt_cache(ListSource(wins), tmp_path / "c.h5", SBTSettings(), progress=False)
    with h5py.File(path) as f:
        info = f["left"].id.get_chunk_info(5)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset)
        fh.write(b"\xff" * info.size)
    with SBTCache(path) as cache:
        cache[4]
        with pytest.raises(InputError, match="reading window 5 failed.*readable up to about window 5"):
            cache[5]
        cache[6]


# ------------------------------------------------------------------------------------------------- tool


@pytest.fixture(scope="module")
def mvsec_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mvsec_cache")
    make_recording(root, duration_s=0.4, rate=20_000, seed=3)
    return root


def test_prepare_tool_caches_an_mvsec_sequence(mvsec_root, tmp_path, load_tool):
    out = tmp_path / "flying1.h5"
    rc = load_tool("prepare_mvsec").main(
        ["--root", str(mvsec_root), "--sequence", "indoor_flying1", "--out", str(out), "--quiet"]
    )
    assert rc == 0
    with SBTCache(out) as cache, MVSECSource(mvsec_root, sequence="indoor_flying1") as src:
        assert len(cache) == len(src) == 8 and cache.fxb == src.fxb and cache.max_disparity == 63
        w = src.read_window(5)
        np.testing.assert_array_equal(cache[5].left, encode_sbt(w.left, w.t_end_us, src.sensor_size))
        np.testing.assert_array_equal(cache[5].gt, w.gt_disparity)
        assert cache[5].sequence == "indoor_flying1" and cache[5].frame == 5 and cache.runs() == [(0, 8)]


def test_prepare_tool_reports_bad_input(mvsec_root, tmp_path, capsys, load_tool):
    rc = load_tool("prepare_mvsec").main(
        ["--root", str(mvsec_root), "--split", "1", "--out", str(tmp_path / "d"), "--quiet"]
    )
    assert rc == 2
    assert "indoor_flying2_data.hdf5 not found" in capsys.readouterr().err
