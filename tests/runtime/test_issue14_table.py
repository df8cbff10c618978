"""Issue 14's table, end to end through the `eventstereo` command line as a careless user types it: every
case is one line ``error: ...`` with exit status 2, or a documented behaviour (with its warning), never a
traceback. The sources' own tests check the details; these drive the whole command. (A model with NaN
weights through `stream`: tests/runtime/test_nan_model.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from eventstereo import cli
from eventstereo.events.sbt import SBTSettings
from eventstereo.model import build_stereo_model
from eventstereo.model.io import save_model
from eventstereo.sources.mvsec_synth import T_ROS0, write_calibration, write_gt, write_sequence

ROOT = Path(__file__).resolve().parents[2]
HANG_GUARD_S = 120  # a hang guard for a subprocess on a loaded machine, not a speed bound
W, H = 346, 260
SEQ = "indoor_flying1"
TINY = ["--width", "48", "--height", "36"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("issue14_model") / "tiny.safetensors"
    return save_model(path, build_stereo_model(filter_multiplier=1, max_disparity=8),
                      sbt_settings=SBTSettings(), provenance={})


def run_cli(argv: list[str]) -> int:
    """``eventstereo ARGV`` in this process; the exit status (argparse's SystemExit included)."""
    try:
        return cli.main(argv)
    except SystemExit as e:
        return e.code


def assert_one_line_error(rc: int, err: str, *needles: str) -> None:
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and lines[0].startswith(("error: ", "eventstereo stream: error: ")), err
    for needle in needles:
        assert needle in lines[0], err


def _subprocess(argv, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "eventstereo.cli", *argv], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


# --- options ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, needle", [
    (["--window-ms", "0"], "--window-ms must be a positive finite number"),
    (["--window-ms", "-10"], "--window-ms must be a positive finite number"),
    (["--window-ms", "nan"], "--window-ms must be a positive finite number"),
    (["--seed", "-1"], "--seed must be an integer >= 0, got -1"),
    (["--device", "tpu"], "argument --device: must be cpu, cuda, cuda:N, mps or auto, got 'tpu'"),
    (["--device", "cuda"], "argument --device: 'cuda' was asked for, but this machine has no usable CUDA"),
    (["--threads", "-1"], "argument --threads: must be an integer in [0, 1024], got '-1'"),
    (["--width", "0"], "--width must be an integer >= 1"),
    (["--start-s", "-1"], "--start-s must be a finite number >= 0, got -1"),
    (["--windows", "-5"], "argument --windows: must be an integer >= 0, got '-5'"),
    (["--gt-convention", "ddes"], "--gt-convention does not apply to --source synthetic"),
    (["--source", "dsec", "--root", ".", "--sequence", "all", "--seed", "3"],
     "--seed does not apply to --source dsec (only to synthetic)"),
])
def test_stream_options_at_their_edges(argv, needle, tiny_model, monkeypatch, capsys):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)  # the same answer on a GPU machine
    rest = ([] if "--windows" in argv else ["--windows", "1"]) + \
        ([] if "--width" in argv or "--source" in argv else TINY)
    rc = run_cli(["stream", *argv, "--model", str(tiny_model), *rest])
    assert_one_line_error(rc, capsys.readouterr().err, needle)


def test_windows_0_on_the_endless_synthetic_source_says_so_and_ctrl_c_stops_it(tiny_model):
    proc = _subprocess(["stream", "--windows", "0", "--model", str(tiny_model), "--no-rates", *TINY],
                       # a shell started in the background makes its children ignore SIGINT; undo that
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        seen = ""
        while "until Ctrl-C" not in seen:
            line = proc.stderr.readline()
            assert line, f"the command ended without the warning: {seen}"
            seen += line
        time.sleep(1.0)  # into the loop
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=HANG_GUARD_S)
    finally:
        proc.kill()
    assert "synthetic is endless: --windows 0 runs until Ctrl-C" in seen
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err


# --- model files ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("field, value", [("max_disparity", 10_000_000), ("filter_multiplier", 1_000_000)])
def test_absurd_model_metadata_is_refused_before_allocation(field, value, tiny_model, tmp_path, capsys):
    from safetensors import safe_open
    from safetensors.torch import save_file

    from eventstereo.model.io import KEY_GENOTYPE

    with safe_open(str(tiny_model), framework="pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta[KEY_GENOTYPE] = json.dumps({**json.loads(meta[KEY_GENOTYPE]), field: value})
    big = tmp_path / "big.safetensors"
    save_file(tensors, str(big), metadata=meta)
    rc = run_cli(["stream", "--model", str(big), "--windows", "1", *TINY])
    assert_one_line_error(rc, capsys.readouterr().err, "big.safetensors", field, "outside the sane range")


def test_a_torch_pth_as_model_says_what_it_is_and_how_to_convert(tmp_path, capsys):
    pth = tmp_path / "model.pth"
    torch.save(build_stereo_model(filter_multiplier=1, max_disparity=8).state_dict(), pth)
    rc = run_cli(["stream", "--model", str(pth), "--windows", "1", *TINY])
    assert_one_line_error(rc, capsys.readouterr().err, "model.pth", "torch pickle", "save_model")


# --- recordings -------------------------------------------------------------------------------------------
def _events(rng, n, t_a, t_b, x=None):
    ev = np.empty((n, 4))
    ev[:, 0] = rng.integers(0, W, n) if x is None else x
    ev[:, 1] = rng.integers(0, H, n)
    ev[:, 2] = T_ROS0 + np.sort(rng.uniform(t_a, t_b, n))
    ev[:, 3] = rng.choice([-1.0, 1.0], n)
    return ev


def _mvsec(root: Path, left, right, depth_ts=None) -> list[str]:
    write_calibration(root, "indoor_flying", layout="flat")
    write_sequence(root, SEQ, left, right)
    if depth_ts is not None:
        depth = np.full((len(depth_ts), H, W), 2.0, np.float32)
        write_gt(root / f"{SEQ}_gt.hdf5", depth, T_ROS0 + np.asarray(depth_ts))
    return ["--source", "mvsec", "--root", str(root), "--sequence", SEQ]


@pytest.mark.parametrize("x", [400.0, np.nan])
def test_mvsec_window_whose_events_all_lie_outside_the_sensor_is_named(x, tiny_model, tmp_path, capsys,
                                                                       caplog):
    rng = np.random.default_rng(0)
    left = np.concatenate([_events(rng, 200, 0.0, 0.05), _events(rng, 300, 0.05, 0.1, x=x)])
    source = _mvsec(tmp_path, left, _events(rng, 300, 0.0, 0.1), depth_ts=[0.05, 0.1])
    rc = run_cli(["stream", *source, "--model", str(tiny_model), "--windows", "0", "--json", "--no-rates"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["gt_windows"] == 2  # the empty window is scored, and said to be empty
    warned = [r.getMessage() for r in caplog.records if "outside" in r.getMessage()]
    assert warned == [f"{tmp_path / (SEQ + '_data.hdf5')}: all 300 events of depth frame 1 (left camera) lie "
                      f"outside the 346x260 sensor"]


def test_mvsec_gt_after_the_last_event_is_skipped_or_refused(tiny_model, tmp_path, capsys, caplog):
    rng = np.random.default_rng(1)
    source = _mvsec(tmp_path / "late", _events(rng, 300, 0.0, 0.1), _events(rng, 300, 0.0, 0.1),
                    depth_ts=[0.05, 0.1, 5.0, 6.0])
    rc = run_cli(["stream", *source, "--model", str(tiny_model), "--windows", "0", "--json", "--no-rates"])
    assert rc == 0 and json.loads(capsys.readouterr().out.splitlines()[-1])["gt_windows"] == 2
    assert "skipping 2 depth frame(s) of indoor_flying1" in caplog.text
    source = _mvsec(tmp_path / "after", _events(rng, 300, 0.0, 0.1), _events(rng, 300, 0.0, 0.1),
                    depth_ts=[5.0, 6.0])
    rc = run_cli(["stream", *source, "--model", str(tiny_model), "--windows", "1"])
    assert_one_line_error(rc, capsys.readouterr().err, "no depth frame has events in its window")


def test_mvsec_stray_event_at_minus_5_s_streams_lazily(tiny_model, tmp_path, capsys):
    rng = np.random.default_rng(2)
    left = _events(rng, 300, 0.0, 0.1)
    left[0, 2] = -5.0  # 1.5e9 s before the rest (ROS time): about 3e10 windows of 50 ms, none listed
    source = _mvsec(tmp_path, left, _events(rng, 300, 0.0, 0.1))
    rc = run_cli(["stream", *source, "--model", str(tiny_model), "--windows", "2", "--json", "--no-rates"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["windows"] == 2


def test_mvsec_start_past_the_end_is_refused(tiny_model, tmp_path, capsys):
    rng = np.random.default_rng(4)
    source = _mvsec(tmp_path, _events(rng, 300, 0.0, 0.1), _events(rng, 300, 0.0, 0.1), depth_ts=[0.05, 0.1])
    rc = run_cli(["stream", *source, "--start-s", "100", "--model", str(tiny_model), "--windows", "0"])
    assert_one_line_error(rc, capsys.readouterr().err,
                          "--start-s 100 is past the end of the mvsec recording (2 windows of 50 ms)")
    rc = run_cli(["stream", *source, "--start-s", "0.06", "--model", str(tiny_model), "--windows", "0",
                  "--json", "--no-rates"])
    assert rc == 0 and json.loads(capsys.readouterr().out.splitlines()[-1])["windows"] == 1


def test_dsec_window_whose_events_all_lie_outside_the_sensor_is_named(tiny_model, tmp_path, capsys, caplog):
    from eventstereo.sources import dsec_synth as synth

    dw, dh, t0 = 640, 480, 1_000_000_000
    rng = np.random.default_rng(3)
    seq = tmp_path / "train" / "zurich_city_00_a"
    for side in ("left", "right"):
        n = 2000
        t = np.sort(rng.integers(t0, t0 + 120_000, n))
        x = rng.integers(0, dw, n)
        if side == "right":
            x[t >= t0 + 60_000] = dw + 5  # the second window's right events: all outside
        synth.write_events_h5(seq / "events" / side / "events.h5", x, rng.integers(0, dh, n), t,
                              rng.integers(0, 2, n), t_offset=t0)
        synth.write_rectify_map(seq / "events" / side / "rectify_map.h5", synth.identity_map(dw, dh))
    synth.write_disparity(seq, [np.full((dh, dw), 10.0)] * 2, [t0 + 60_000, t0 + 110_000])
    synth.write_calibration(seq)
    rc = run_cli(["stream", "--source", "dsec", "--root", str(tmp_path), "--sequence", "all",
                  "--model", str(tiny_model), "--windows", "0", "--json", "--no-rates"])
    assert rc == 0 and json.loads(capsys.readouterr().out.splitlines()[-1])["gt_windows"] == 2
    warned = [r.getMessage() for r in caplog.records if "outside the 640x480 sensor" in r.getMessage()]
    assert len(warned) == 1 and "events of window 1 (right camera) lie outside" in warned[0]


def test_damaged_aedat4_fails_in_bounded_time_saying_where(tiny_model, tmp_path):
    dv = pytest.importorskip("dv_processing")
    rng = np.random.default_rng(7)
    cfg = dv.io.MonoCameraWriter.EventOnlyConfig
    good = tmp_path / "good.aedat4"
    writer = dv.io.StereoCameraWriter(str(good), cfg("DAVIS346_L", (W, H)), cfg("DAVIS346_R", (W, H)))
    for side in (writer.left, writer.right):
        t = np.sort(rng.integers(0, 1_000_000, 20_000)) + 1_700_000_000_000_000
        for a in range(0, len(t), 2000):
            store = dv.EventStore()
            for k in range(a, a + 2000):
                store.push_back(int(t[k]), int(rng.integers(0, W)), int(rng.integers(0, H)), bool(k % 2))
            side.writeEvents(store)
    del writer
    blob = bytearray(good.read_bytes())
    mid, size = len(blob) // 2, len(blob) // 5
    blob[mid : mid + size] = np.random.default_rng(1).integers(0, 256, size, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.aedat4"
    bad.write_bytes(bytes(blob))
    proc = _subprocess(["stream", "--source", "aedat4", "--file", str(bad), "--model", str(tiny_model),
                        "--windows", "0", "--no-rates"])
    try:
        _, err = proc.communicate(timeout=HANG_GUARD_S)
    finally:
        proc.kill()
    assert_one_line_error(proc.returncode, err, "bad.aedat4", "damaged or truncated AEDAT4 data", "at byte")


# --- the tools --------------------------------------------------------------------------------------------
def _tool_status(tool, argv) -> int:
    try:
        return tool.main(argv)
    except SystemExit as e:
        return e.code


@pytest.mark.parametrize("argv, needle", [
    (["--bins", "0"], "argument --bins: must be an integer in [1, 64], got '0'"),
    (["--max-windows", "-5"], "argument --max-windows: must be an integer >= 1, got '-5'"),
    (["--max-windows", "0"], "argument --max-windows: must be an integer >= 1, got '0'"),
    (["--window-ms", "nan"], "--window-ms must be a positive finite number"),
    ([], "--source synthetic is endless: give --max-windows N"),
    (["--source", "mvsec"], "--source mvsec needs --root"),
])
def test_prepare_mvsec_options(argv, needle, tmp_path, capsys, load_tool):
    out = tmp_path / "c.h5"
    argv = (["--source", "synthetic", *TINY] if "--source" not in argv else []) + argv
    rc = _tool_status(load_tool("prepare_mvsec"), [*argv, "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert_one_line_error(rc, err.replace("prepare_mvsec: error:", "error:"), needle)
    assert not out.exists()


@pytest.mark.parametrize("argv, needle", [
    (["--window-ms", "nan"], "--window-ms must be a positive finite number"),
    (["--cache", "c.h5", "--window-ms", "0"], "--window-ms must be a positive finite number"),
    (["--train-seeds", "0-99999999999"], "names more than 10000 seeds"),
    (["--val-seeds", "x"], "argument --val-seeds: bad seed list 'x'"),
])
def test_train_stereo_source_and_seed_options_fail_before_any_data_is_read(argv, needle, capsys, load_tool):
    with pytest.raises(SystemExit) as e:
        load_tool("train_stereo").parse_args(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and needle in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv, needle", [
    (["bench", "stream", "--windows", "-3"], "argument --windows: must be an integer >= 1, got '-3'"),
    (["bench", "sbt", "--events", "0"], "argument --events: must be an integer >= 1, got '0'"),
    (["bench", "lif", "--device", "tpu"], "argument --device: must be cpu, cuda, cuda:N, mps or auto"),
    (["bench", "synthetic", "--window-ms", "nan"], "argument --window-ms: must be a finite number > 0"),
    (["bench", "sources", "--rate", "-1"], "argument --rate: must be a finite number > 0"),
    (["app", "--device", "tpu"], "argument --device: must be cpu, cuda, cuda:N, mps or auto"),
    (["app", "--frames", "-1"], "argument --frames: must be an integer >= 0, got '-1'"),
])
def test_bench_and_app_options(argv, needle, capsys):
    rc = run_cli(argv)
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and needle in err, err


@pytest.mark.parametrize("argv, needle", [
    (["--config", "missing.json", "--seeds", "0"], "missing.json"),
    (["--seeds", "0-999999999"], "names more than 10000 seeds"),
    (["--seeds", "0", "--windows", "0"], "argument --windows: must be an integer >= 1, got '0'"),
    (["--seeds", "0", "--window-ms", "nan"], "argument --window-ms: must be a finite number"),
])
def test_cache_synthetic_options(argv, needle, tmp_path, capsys, load_tool):
    config = [] if "--config" in argv else ["--config", str(ROOT / "tools/configs/synthetic_varied.json")]
    rc = _tool_status(load_tool("cache_synthetic"), [*config, *argv, "--out", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err, err
    assert not (tmp_path / "c").exists()
