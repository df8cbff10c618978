import numpy as np
import pytest
import torch

from eventstereo.errors import InputError
from eventstereo.events.sbt import SBTSettings
from eventstereo.sources.cache import CachedWindow
from eventstereo.training.checkpoint import (
    atomic_torch_save,
    load_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from eventstereo.training.data import EncodedWindows, WindowSequences, contiguous_runs
from eventstereo.training.loop import EpochSampler
from eventstereo.training.stereo import parse_seeds

SETTINGS = SBTSettings(window_us=10_000, n_bins=2)


def _store(n=10, gaps=(4,), seq_change=(7,), size=(12, 8)):
    w, h = size
    wins = []
    for i in range(n):
        frame = np.full((2, h, w), i, np.int8)
        frame[0] = np.arange(w)[None, :]  # column index, to check crops
        gt = np.full((h, w), float(i), np.float32)
        wins.append(CachedWindow(frame, -frame, gt, 10_000 * (i + 1), "b" if i >= seq_change[0] else "a",
                                  i in gaps))
    return EncodedWindows(wins, sensor_size=size, fxb=1.0, max_disparity=7, sbt_settings=SETTINGS)


def test_parse_seeds():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("5, 1,2-3,5") == [5, 1, 2, 3]
    with pytest.raises(ValueError, match="bad seed list"):
        parse_seeds("a-b")
    with pytest.raises(ValueError):
        parse_seeds(" , ")


def test_runs_break_at_gaps_and_sequence_changes():
    assert contiguous_runs(_store()) == [(0, 4), (4, 7), (7, 10)]


def test_sequences_stay_inside_runs_and_crop_alike():
    store = _store()
    ds = WindowSequences(store, 3, crop=(4, 5), stride=1, seed=1)
    assert ds.starts == [0, 1, 4, 7]
    item = ds[1]
    assert item["left"].shape == (3, 2, 4, 5) and item["gt"].shape == (3, 4, 5)
    assert item["gt"][:, 0, 0].tolist() == [1.0, 2.0, 3.0]
    x0 = int(item["left"][0, 0, 0, 0])
    # the same columns in every window and in both views (disparity is preserved)
    assert torch.equal(item["left"][:, 0], -item["right"][:, 0])
    assert item["left"][:, 0, :, :].unique(dim=0).shape[0] == 1
    assert item["left"][0, 0, 0].tolist() == list(range(x0, x0 + 5))
    # reproducible per (seed, epoch, index), different across epochs for some item
    assert torch.equal(ds[1]["left"], item["left"])
    before = [ds[i]["left"] for i in range(len(ds))]
    ds.set_epoch(3)
    assert any(not torch.equal(a, ds[i]["left"]) for i, a in enumerate(before))


def test_a_store_too_short_or_a_crop_too_big_is_refused():
    with pytest.raises(ValueError, match="no run of 5"):
        WindowSequences(_store(), 5)
    with pytest.raises(ValueError, match="larger than"):
        WindowSequences(_store(), 2, crop=(9, 5))


def test_epoch_sampler_shards_evenly_and_resumes():
    a = EpochSampler(11, batch_size=2, seed=0, rank=0, world_size=2)
    b = EpochSampler(11, batch_size=2, seed=0, rank=1, world_size=2)
    assert len(a) == len(b) == 6
    ia, ib = list(a), list(b)
    assert len(ia) == len(ib) == 6 and len(set(ia) | set(ib)) >= 10
    a.set_epoch(0, skip=4)
    assert list(a) == ia[4:]
    a.set_epoch(1)
    assert list(a) != ia
    with pytest.raises(ValueError, match="cannot fill"):
        EpochSampler(3, batch_size=4, seed=0)


def test_checkpoint_round_trip_and_bad_files(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "c.pt", model=model, optimizer=opt, step=7, config={"a": [1, 2]})
    other = torch.nn.Linear(3, 2)
    opt2 = torch.optim.Adam(other.parameters(), lr=0.1)
    state = load_checkpoint(path)
    assert restore_checkpoint(state, model=other, optimizer=opt2) == 7
    assert state["config"] == {"a": [1, 2]}
    assert torch.equal(other.weight, model.weight)
    assert opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    with pytest.raises(InputError, match="do not fit"):
        restore_checkpoint(state, model=torch.nn.Linear(4, 2))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="bad.pt"):
        load_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_a_failed_write_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    atomic_torch_save({"v": 1}, path)

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_torch_save({"v": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_cache_names_follow_the_source_options():
    import argparse

    from eventstereo.sources.registry import add_source_arguments
    from eventstereo.training.stereo import cache_name

    p = argparse.ArgumentParser()
    add_source_arguments(p)

    class Src:
        name = "synthetic"

    a, b = p.parse_args([]), p.parse_args(["--width", "64"])
    seed_only = p.parse_args(["--seed", "5"])
    assert cache_name(a, Src, 1, 8, SETTINGS) != cache_name(b, Src, 1, 8, SETTINGS)
    assert cache_name(a, Src, 1, 8, SETTINGS) == cache_name(seed_only, Src, 1, 8, SETTINGS)
    assert cache_name(a, Src, 1, 8, SETTINGS) != cache_name(a, Src, 2, 8, SETTINGS)
    other = SBTSettings(window_us=10_000, n_bins=3)
    assert cache_name(a, Src, 1, 8, SETTINGS) != cache_name(a, Src, 1, 8, other)


def test_cache_patterns_expand_in_seed_order_and_an_empty_one_is_named(tmp_path):
    from eventstereo.training.stereo import expand_cache_paths

    for seed in (10, 2, 1):
        (tmp_path / f"world-seed{seed}.h5").write_bytes(b"")
    plain = str(tmp_path / "other.h5")
    got = expand_cache_paths([plain, str(tmp_path / "world-seed*.h5")])
    assert got == [plain] + [str(tmp_path / f"world-seed{s}.h5") for s in (1, 2, 10)]
    with pytest.raises(InputError, match=r"nothing-\*\.h5: no cache file matches"):
        expand_cache_paths([str(tmp_path / "nothing-*.h5")])
