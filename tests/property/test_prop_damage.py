"""Random byte damage to small MVSEC, DSEC and AEDAT4 recordings: opening the source and reading every
window either succeeds or raises our error class (EventStereoError), within a time bound, never anything
else. The reads run in one worker process per file kind, so a hang (even one inside native code that
holds the GIL) is caught by the timeout and reported as such."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HANG_GUARD_S = 60  # a hang guard, not a speed bound: a read of these files takes well under a second
ROOT = Path(__file__).resolve().parents[2]
SETTINGS = settings(max_examples=12, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

WORKER = r"""
import json, sys, traceback
from eventstereo.errors import EventStereoError

def open_source(req):
    kind = req["kind"]
    if kind == "mvsec":
        from eventstereo.sources.mvsec import MVSECSource
        return MVSECSource(req["root"], sequence=req["sequence"], rectify=False)
    if kind == "dsec":
        from eventstereo.sources.dsec import DSECSource
        return DSECSource(req["root"], req["sequence"])
    from eventstereo.sources.dv import AedatStereoSource
    return AedatStereoSource(req["path"], window_us=20_000)

for line in sys.stdin:
    req = json.loads(line)
    try:
        with open_source(req) as src:
            n = events = 0
            for w in src:
                n += 1
                events += w.n_events
                if n >= 500:
                    break
        out = {"outcome": "ok", "windows": n, "events": events}
    except EventStereoError as e:
        out = {"outcome": "error", "message": str(e)}
    except BaseException as e:
        out = {"outcome": "other", "type": type(e).__name__, "trace": traceback.format_exc()[-3000:]}
    print(json.dumps(out), flush=True)
"""


class Worker:
    """One python process answering read requests; restarted after a hang (which then fails the test)."""

    def __init__(self):
        self.proc = None

    def ask(self, request: dict) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
            self.proc = subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True, env=env)
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], HANG_GUARD_S)
        if not ready:
            self.close()
            pytest.fail(f"reading {request} did not finish within {HANG_GUARD_S} s (a hang)")
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            self.proc = None
            pytest.fail(f"the reader process died (exit status {code}) on {request}")
        return json.loads(line)

    def close(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture(scope="module")
def worker():
    w = Worker()
    yield w
    w.close()


# ---------------------------------------------------------------------------------- pristine files


@pytest.fixture(scope="module")
def mvsec_files(tmp_path_factory):
    from eventstereo.sources.mvsec_synth import T_ROS0, write_sequence

    root = tmp_path_factory.mktemp("mvsec_pristine")
    rng = np.random.default_rng(0)

    def events(n):
        ev = np.empty((n, 4))
        ev[:, 0], ev[:, 1] = rng.integers(0, 346, n), rng.integers(0, 260, n)
        ev[:, 2] = T_ROS0 + np.sort(rng.uniform(0, 0.3, n))
        ev[:, 3] = rng.choice([-1.0, 1.0], n)
        return ev

    depth = np.full((5, 260, 346), 2.0, np.float32)
    write_sequence(root, "indoor_flying1", events(3000), events(3000), depth=depth,
                   depth_ts=T_ROS0 + 0.05 * np.arange(1, 6))
    return root, ["indoor_flying1_data.hdf5", "indoor_flying1_gt.hdf5"]


@pytest.fixture(scope="module")
def dsec_files(tmp_path_factory):
    from eventstereo.sources.dsec_synth import (
        identity_map,
        write_calibration,
        write_disparity,
        write_events_h5,
        write_rectify_map,
    )

    root = tmp_path_factory.mktemp("dsec_pristine")
    seq = root / "train" / "zurich_city_00_a"
    rng = np.random.default_rng(1)
    for side in ("left", "right"):
        n = 4000
        t = np.sort(rng.integers(1_000_000, 1_300_000, n))
        write_events_h5(seq / "events" / side / "events.h5", rng.integers(0, 640, n), rng.integers(0, 480, n),
                        t, rng.integers(0, 2, n), t_offset=1_000_000)
        write_rectify_map(seq / "events" / side / "rectify_map.h5", identity_map(640, 480))
    write_disparity(seq, [np.full((480, 640), 10.0)] * 2, [1_100_000, 1_200_000])
    write_calibration(seq)
    return root, ["events/left/events.h5", "events/right/rectify_map.h5", "disparity/event/000000.png",
                  "disparity/timestamps.txt", "calibration/cam_to_cam.yaml"]


@pytest.fixture(scope="module")
def aedat_file(tmp_path_factory):
    dv = pytest.importorskip("dv_processing")
    path = tmp_path_factory.mktemp("aedat_pristine") / "rec.aedat4"
    rng = np.random.default_rng(2)
    cfg = dv.io.MonoCameraWriter.EventOnlyConfig
    writer = dv.io.StereoCameraWriter(str(path), cfg("L", (64, 48)), cfg("R", (64, 48)))
    for side in (writer.left, writer.right):
        t = np.sort(rng.integers(1_000_000, 1_400_000, 6000))
        for a in range(0, 6000, 500):
            store = dv.EventStore()
            for i in range(a, a + 500):
                store.push_back(int(t[i]), int(rng.integers(0, 64)), int(rng.integers(0, 48)), bool(i % 2))
            side.writeEvents(store)
    del writer
    return path


# --------------------------------------------------------------------------------------- damage

DAMAGE = st.tuples(st.sampled_from(["random", "zeros", "truncate", "flip"]), st.floats(0.0, 1.0),
                   st.integers(1, 4096), st.integers(0, 2**32 - 1))


def damaged_copy(src: Path, dst: Path, damage) -> None:
    mode, where, length, seed = damage
    blob = bytearray(src.read_bytes())
    at = int(where * max(len(blob) - 1, 0))
    if mode == "truncate":
        blob = blob[:at]
    elif mode == "flip":
        blob[at] ^= 1 << (seed % 8)
    else:
        end = min(len(blob), at + length)
        fill = np.random.default_rng(seed).integers(0, 256, end - at, dtype=np.uint8).tobytes() \
            if mode == "random" else bytes(end - at)
        blob[at:end] = fill
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(bytes(blob))


def mirror(pristine: Path, out: Path, damaged: str) -> None:
    """``out`` as links to the pristine tree, except the one file that gets damaged."""
    for f in pristine.rglob("*"):
        if f.is_file() and f.relative_to(pristine).as_posix() != damaged:
            target = out / f.relative_to(pristine)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(f, target)


def _assert_ours(result: dict, what: str) -> None:
    assert result["outcome"] in ("ok", "error"), f"{what}: {result.get('type')}\n{result.get('trace')}"
    if result["outcome"] == "error":
        assert result["message"].strip() and "Traceback" not in result["message"]


@SETTINGS
@given(damage=DAMAGE, which=st.integers(0, 1))
def test_mvsec_byte_damage(worker, mvsec_files, tmp_path_factory, damage, which):
    pristine, names = mvsec_files
    out = tmp_path_factory.mktemp("mvsec_damaged")
    mirror(pristine, out, names[which])
    damaged_copy(pristine / names[which], out / names[which], damage)
    _assert_ours(worker.ask({"kind": "mvsec", "root": str(out), "sequence": "indoor_flying1"}),
                 f"{names[which]} {damage}")


@SETTINGS
@given(damage=DAMAGE, which=st.integers(0, 4))
def test_dsec_byte_damage(worker, dsec_files, tmp_path_factory, damage, which):
    pristine, names = dsec_files
    out = tmp_path_factory.mktemp("dsec_damaged")
    seq = "train/zurich_city_00_a/"
    mirror(pristine, out, seq + names[which])
    damaged_copy(pristine / seq / names[which], out / seq / names[which], damage)
    _assert_ours(worker.ask({"kind": "dsec", "root": str(out / "train"), "sequence": "zurich_city_00_a"}),
                 f"{names[which]} {damage}")


@SETTINGS
@given(damage=DAMAGE)
def test_aedat4_byte_damage(worker, aedat_file, tmp_path_factory, damage):
    out = tmp_path_factory.mktemp("aedat_damaged") / "rec.aedat4"
    damaged_copy(aedat_file, out, damage)
    _assert_ours(worker.ask({"kind": "aedat4", "path": str(out)}), str(damage))


def test_pristine_files_read_fully(worker, mvsec_files, dsec_files, aedat_file):
    """The undamaged twins read without error (so an error above is the damage's doing)."""
    results = [worker.ask({"kind": "mvsec", "root": str(mvsec_files[0]), "sequence": "indoor_flying1"}),
               worker.ask({"kind": "dsec", "root": str(dsec_files[0] / "train"),
                           "sequence": "zurich_city_00_a"}),
               worker.ask({"kind": "aedat4", "path": str(aedat_file)})]
    assert [r["outcome"] for r in results] == ["ok"] * 3, results
    assert results[2]["events"] == 12000
