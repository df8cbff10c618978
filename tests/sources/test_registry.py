"""The registry: every source kind opens from command-line arguments; bad arguments say what is missing."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from eventstereo.errors import EventStereoError, InputError
from eventstereo.sources.dsec_synth import (
    identity_map,
    write_calibration,
    write_disparity,
    write_events_h5,
    write_rectify_map,
)
from eventstereo.sources.mvsec_synth import make_recording
from eventstereo.sources.registry import SOURCE_KINDS, add_source_arguments, open_source


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_source_arguments(p)
    return p.parse_args(list(argv))


@pytest.fixture(scope="module")
def mvsec_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("reg_mvsec")
    make_recording(root, duration_s=0.5, rate=10_000, seed=1)
    return root


def test_parser_offers_every_kind_and_option():
    a = parse()
    assert a.source == "synthetic" and set(SOURCE_KINDS) == {"synthetic", "mvsec", "dsec", "aedat4", "live"}
    a = parse("--source", "mvsec", "--root", "R", "--split", "1", "--subset", "test", "--start-s", "2.5")
    assert (a.root, a.split, a.subset, a.start_s) == ("R", 1, "test", 2.5)
    a = parse(
        "--source",
        "live",
        "--left-camera",
        "A",
        "--right-camera",
        "B",
        "--record",
        "x.aedat4",
        "--calib",
        "c.yaml",
        "--fxb",
        "19.9",
    )
    assert (a.left_camera, a.right_camera, a.record, a.calib, a.fxb) == ("A", "B", "x.aedat4", "c.yaml", 19.9)


def test_synthetic_still_opens():
    pytest.importorskip("eventstereo.sources.synthetic")
    with open_source(parse("--width", "48", "--height", "32", "--window-ms", "20")) as src:
        assert src.sensor_size == (48, 32) and src.window_us == 20_000
        w = next(iter(src))
        assert w.duration_us == 20_000


def test_mvsec_sequence_and_start_time(mvsec_root):
    with open_source(
        parse("--source", "mvsec", "--root", str(mvsec_root), "--sequence", "indoor_flying1")
    ) as s:
        assert len(s) == 10 and s.has_gt
    args = parse(
        "--source", "mvsec", "--root", str(mvsec_root), "--sequence", "indoor_flying1", "--start-s", "0.19"
    )
    with open_source(args) as src:
        wins = list(src)
    assert wins[0].gap_before and wins[0].t_end_us >= 190_000 and wins[0].meta["frame"] == 3
    assert len(wins) == 7


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--source", "mvsec", "--sequence", "indoor_flying1"], "needs --root"),
        (["--source", "mvsec", "--root", "R"], "needs --sequence NAME or --split"),
        (["--source", "mvsec", "--root", "R", "--sequence", "s", "--split", "1"], "not both"),
        (["--source", "mvsec", "--root", "R", "--split", "1"], "needs --subset"),
        (["--source", "dsec", "--root", "R"], "needs --sequence"),
        (["--source", "dsec", "--root", "R", "--sequence", "s", "--subset", "val"], "train or test"),
        (["--source", "aedat4"], "needs --file"),
        (["--source", "mvsec", "--root", "R", "--sequence", "s", "--record", "o.aedat4"], "--record"),
    ],
)
def test_bad_arguments_say_what_is_missing(argv, message):
    with pytest.raises(InputError, match=message):
        open_source(parse(*argv))


def test_mvsec_missing_files_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="indoor_flying1_data.hdf5 not found"):
        open_source(parse("--source", "mvsec", "--root", str(tmp_path), "--sequence", "indoor_flying1"))


def test_dsec_opens(tmp_path):
    rng = np.random.default_rng(0)
    seq = tmp_path / "train" / "interlaken_00_c"
    off = 5_000_000
    for side in ("left", "right"):
        t = np.sort(rng.integers(off, off + 300_000, 2000))
        write_events_h5(
            seq / "events" / side / "events.h5",
            rng.integers(0, 640, 2000),
            rng.integers(0, 480, 2000),
            t,
            rng.integers(0, 2, 2000),
            t_offset=off,
        )
        write_rectify_map(seq / "events" / side / "rectify_map.h5", identity_map())
    write_disparity(seq, [np.full((480, 640), 10.0)] * 3, [off + 100_000 * k for k in range(1, 4)])
    write_calibration(seq)
    with open_source(parse("--source", "dsec", "--root", str(tmp_path), "--sequence", "all")) as src:
        assert len(src) == 3 and src.sensor_size == (640, 480)
        assert np.allclose(next(iter(src)).gt_disparity, 10.0)


def test_aedat4_and_live_open(tmp_path, monkeypatch):
    dv = pytest.importorskip("dv_processing")
    from eventstereo.events.types import make_events
    from eventstereo.sources.dv import StereoAedatRecorder

    path = tmp_path / "r.aedat4"
    with StereoAedatRecorder(path, (20, 10)) as rec:
        rec.write_events("left", make_events([1, 2], [1, 2], [10, 60_000], [1, 0]), 1_000_000)
        rec.write_events("right", make_events([3], [3], [20], [1]), 1_000_000)
    with open_source(parse("--source", "aedat4", "--file", str(path), "--fxb", "7.5")) as src:
        assert src.sensor_size == (20, 10) and src.fxb == 7.5 and len(src) == 2
    monkeypatch.setattr(dv.io.camera, "discover", lambda: [])
    with pytest.raises(EventStereoError, match="no camera found"):
        open_source(parse("--source", "live"))


# ---- the declarative table: validation, generated flags, form facts --------------------------------
@pytest.mark.parametrize(
    "argv,message",
    [
        (["--window-ms", "0"], "--window-ms must be a positive finite number \\(at most 10000\\), got 0$"),
        (["--window-ms", "-10"], "--window-ms must be a positive finite number"),
        (["--window-ms", "nan"], "--window-ms must be a positive finite number .*got nan"),
        (["--window-ms", "inf"], "--window-ms must be a positive finite number"),
        (["--window-ms", "1e9"], r"at most 10000"),
        (["--seed", "-1"], "--seed must be an integer >= 0, got -1"),
        (["--width", "0"], "--width must be an integer >= 1 \\(at most 8192\\), got 0"),
        (["--height", "100000"], "--height must be an integer >= 1 \\(at most 8192\\), got 100000"),
        (["--start-s", "-1"], "--start-s must be a finite number >= 0, got -1$"),
        (["--source", "aedat4", "--file", "f", "--fxb", "0"], "--fxb must be a positive finite number"),
        (["--source", "synthetic", "--root", "R"], "--root does not apply to --source synthetic"),
    ],
)
def test_every_source_option_is_validated_and_names_its_flag(argv, message):
    with pytest.raises(InputError, match=message):
        open_source(parse(*argv))


def test_configs_validate_from_python_too():
    from eventstereo.sources.registry import SyntheticSourceConfig

    assert SyntheticSourceConfig(seed=3, width=40).window_us == 50_000
    with pytest.raises(InputError, match="--seed must be an integer"):
        SyntheticSourceConfig(seed=1.5)
    with pytest.raises(InputError, match="--width must be an integer"):
        SyntheticSourceConfig(width=True)


def test_flags_and_form_come_from_one_table():
    from eventstereo.sources.registry import SOURCES, field_specs

    p = argparse.ArgumentParser()
    add_source_arguments(p)
    flags = {a.option_strings[0]: a for a in p._actions if a.option_strings and a.dest != "help"}
    for entry in SOURCES.values():
        assert entry.config.__doc__ and entry.title
        for spec in field_specs(entry.config):
            assert spec.help, spec  # every field documented
            assert spec.flag in flags and flags[spec.flag].type is spec.type
    # a flag shared by kinds appears once, with each kind's meaning and every kind's choices
    assert "mvsec:" in flags["--root"].help and "dsec:" in flags["--root"].help
    assert flags["--subset"].choices == ("train", "val", "test")
    assert flags["--width"].default == 346 and flags["--window-ms"].default == 50.0
    live = {s.name: s for s in field_specs(SOURCES["live"].config)}
    assert live["record"].path == "new" and live["calib"].path == "file"
    assert live["fxb"].optional and SOURCES["live"].live
