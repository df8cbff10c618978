"""AEDAT4 replay and recording (dv-processing), the stereo windower, and live-camera errors."""

from __future__ import annotations

import numpy as np
import pytest

dv = pytest.importorskip("dv_processing")

from eventstereo.errors import EventStereoError, InputError  # noqa: E402
from eventstereo.events.types import EVENT_DTYPE, make_events  # noqa: E402
from eventstereo.events.window import StereoWindow  # noqa: E402
from eventstereo.sources.base import Source  # noqa: E402
from eventstereo.sources.calib_yaml import dump_yaml  # noqa: E402
from eventstereo.sources.dv import (  # noqa: E402
    AedatStereoSource,
    CameraNotFoundError,
    LiveStereoSource,
    StereoAedatRecorder,
    StereoWindower,
    aedat4_event_streams,
    record_source,
)
from eventstereo.sources.mvsec import maps_from_camchain  # noqa: E402
from eventstereo.sources.mvsec_synth import example_camchain  # noqa: E402

T0 = 1_700_000_000_000_000  # an epoch-microsecond clock like a live DAVIS pair's


def random_stream(rng, n, t_a, t_b, size):
    t = np.sort(rng.integers(t_a, t_b, n))
    return make_events(rng.integers(0, size[0], n), rng.integers(0, size[1], n), t, rng.integers(0, 2, n))


def write_with_dv(path, left, right, size, names=("DAVIS346_L", "DAVIS346_R"), sizes=None, packet=700):
    """Write a stereo file with dv-processing's own StereoCameraWriter (absolute times in the arrays)."""
    sl, sr = sizes or (size, size)
    cfg = dv.io.MonoCameraWriter.EventOnlyConfig
    w = dv.io.StereoCameraWriter(str(path), cfg(names[0], sl), cfg(names[1], sr))
    for writer, ev in ((w.left, left), (w.right, right)):
        for a in range(0, len(ev), packet):
            store = dv.EventStore()
            for e in ev[a : a + packet]:
                store.push_back(int(e["t"]), int(e["x"]), int(e["y"]), bool(e["p"]))
            writer.writeEvents(store)
    del w


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    rng = np.random.default_rng(0)
    size = (64, 48)
    left = random_stream(rng, 4000, T0 + 1_000, T0 + 480_000, size)
    right = random_stream(rng, 3500, T0 + 7_000, T0 + 500_000, size)
    path = tmp_path_factory.mktemp("aedat") / "stereo.aedat4"
    write_with_dv(path, left, right, size)
    return {"path": path, "left": left, "right": right, "size": size}


def in_window(ev, a, b):
    return ev[(ev["t"] >= a) & (ev["t"] < b)]


def test_header_lists_both_cameras(recording):
    streams = aedat4_event_streams(recording["path"])
    assert [(s["source"], s["size"]) for s in streams] == [("DAVIS346_L", (64, 48)), ("DAVIS346_R", (64, 48))]


def test_replay_cuts_windows_on_the_shared_clock(recording):
    with AedatStereoSource(recording["path"], window_us=40_000) as src:
        assert src.sensor_size == (64, 48) and src.cameras == ("DAVIS346_L", "DAVIS346_R")
        origin = int(min(recording["left"]["t"][0], recording["right"]["t"][0]))
        assert src.t_origin == origin
        wins = list(src)
    assert len(wins) == len(src) == -(-(int(recording["right"]["t"][-1]) + 1 - origin) // 40_000)
    for k, w in enumerate(wins):
        a = origin + 40_000 * k
        assert (w.t_start_us, w.t_end_us) == (a - origin, a + 40_000 - origin) and w.gt_disparity is None
        for side in ("left", "right"):
            exp = in_window(recording[side], a, a + 40_000)
            got = getattr(w, side)
            np.testing.assert_array_equal(got["t"], exp["t"] - origin)
            np.testing.assert_array_equal(got["x"], exp["x"])
            np.testing.assert_array_equal(got["p"], exp["p"])
    assert sum(len(w.left) for w in wins) == len(recording["left"])
    assert sum(len(w.right) for w in wins) == len(recording["right"])


def test_seek_marks_a_gap(recording):
    with AedatStereoSource(recording["path"]) as src:
        src.seek(210_000)
        wins = list(src)
        assert wins[0].index == 4 and wins[0].gap_before and not wins[1].gap_before


def test_rectification_and_fxb_from_camchain(tmp_path):
    rng = np.random.default_rng(1)
    size = (346, 260)
    left = random_stream(rng, 3000, T0, T0 + 100_000, size)
    right = random_stream(rng, 3000, T0, T0 + 100_000, size)
    path = tmp_path / "rect.aedat4"
    write_with_dv(path, left, right, size)
    calib = tmp_path / "camchain.yaml"
    calib.write_text(dump_yaml(example_camchain()))
    with AedatStereoSource(path, calib=calib, window_us=100_000) as src:
        assert src.fxb == pytest.approx(19.941772)
        w = src.read_window(0)
    rx, ry = maps_from_camchain(example_camchain(), "ref").rounded("right", size)
    exp = in_window(right, T0, T0 + 100_000)
    tx, ty = rx[exp["y"], exp["x"]], ry[exp["y"], exp["x"]]
    ok = tx >= 0
    np.testing.assert_array_equal(w.right["x"], tx[ok])
    np.testing.assert_array_equal(w.right["y"], ty[ok])
    assert 0 < len(w.right) < len(exp)


class ListSource(Source):
    name = "list"

    def __init__(self, wins, size):
        self.wins, self.sensor_size, self.fxb = wins, size, 1.0

    def __iter__(self):
        yield from self.wins


def test_record_source_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    size = (32, 24)
    wins = []
    for k in range(6):
        a = 50_000 * k
        wins.append(
            StereoWindow(
                random_stream(rng, 300, a, a + 50_000, size),
                random_stream(rng, 250, a, a + 50_000, size),
                a,
                a + 50_000,
                size,
                index=k,
                meta={"t0_us": T0},
            )
        )
    path = tmp_path / "rec.aedat4"
    assert record_source(ListSource(wins, size), path) == 6
    with AedatStereoSource(path, t_origin_us=T0) as src:
        back = list(src)
    assert len(back) == 6
    for w, b in zip(wins, back):
        for side in ("left", "right"):
            np.testing.assert_array_equal(getattr(b, side), getattr(w, side))


def test_recorder_writes_nothing_under_the_name_on_error(tmp_path):
    path = tmp_path / "never.aedat4"
    with pytest.raises(RuntimeError, match="boom"), StereoAedatRecorder(path, (8, 8)) as rec:
        rec.write_events("left", make_events([1], [1], [T0], [1]))
        raise RuntimeError("boom")
    assert not path.exists() and not list(tmp_path.iterdir())
    with pytest.raises(InputError, match="must end in .aedat4"):
        StereoAedatRecorder(tmp_path / "x.dat", (8, 8))


# ---------------------------------------------------------------------------------------------- windower


def test_windower_cuts_both_streams_and_waits_for_the_slower_one():
    w = StereoWindower(1000)
    left = make_events([1, 2, 3], [0, 0, 0], [100, 900, 1500], [1, 1, 1])
    w.push("left", left)
    assert w.ready() == []  # right has not reached t = 1100 yet
    w.push("right", make_events([5], [5], [2200], [0]))
    out = w.ready()
    assert [(a, b) for a, b, _, _ in out] == [(100, 1100)]
    np.testing.assert_array_equal(out[0][2]["t"], [100, 900])
    assert len(out[0][3]) == 0
    w.push("left", make_events([4], [0], [50], [1]))  # too late for any open window
    assert w.late_events == 1
    w.advance("left", 5000)  # a silent camera must not stall the pair
    out = w.ready()
    assert [(a, b) for a, b, _, _ in out] == [(1100, 2100)]
    np.testing.assert_array_equal(out[0][2]["t"], [1500])


def test_windower_output_covers_every_event_once():
    rng = np.random.default_rng(3)
    w = StereoWindower(700, t_origin_us=0)
    streams = {s: random_stream(rng, 2000, 0, 20_000, (10, 10)) for s in ("left", "right")}
    got = {"left": [], "right": []}
    for a in range(0, 2000, 137):
        for s in ("left", "right"):
            w.push(s, streams[s][a : a + 137])
        for _, _, left, right in w.ready():
            got["left"].append(left)
            got["right"].append(right)
    for s in ("left", "right"):
        w.advance(s, 21_000)
    for _, _, left, right in w.ready():
        got["left"].append(left)
        got["right"].append(right)
    for s in ("left", "right"):
        np.testing.assert_array_equal(np.concatenate(got[s]), streams[s])
    assert w.late_events == 0


# --------------------------------------------------------------------------------------------- bad input


def test_missing_garbage_and_truncated_files(recording, tmp_path):
    with pytest.raises(InputError, match="recording not found"):
        AedatStereoSource(tmp_path / "none.aedat4")
    junk = tmp_path / "junk.aedat4"
    junk.write_bytes(b"hello" * 100)
    with pytest.raises(InputError, match="not an AEDAT4 file"):
        AedatStereoSource(junk)
    cut = tmp_path / "cut.aedat4"
    blob = recording["path"].read_bytes()
    cut.write_bytes(blob[: len(blob) * 2 // 3])
    with pytest.raises(InputError, match="damaged or truncated") as e:
        AedatStereoSource(cut)
    assert "cut.aedat4" in str(e.value) and "Stacktrace" not in str(e.value)


def test_one_camera_size_mismatch_and_wrong_names(tmp_path):
    rng = np.random.default_rng(4)
    ev = random_stream(rng, 100, T0, T0 + 10_000, (16, 16))
    mono = tmp_path / "mono.aedat4"
    w = dv.io.MonoCameraWriter(str(mono), dv.io.MonoCameraWriter.EventOnlyConfig("only", (16, 16)))
    store = dv.EventStore()
    for e in ev:
        store.push_back(int(e["t"]), int(e["x"]), int(e["y"]), bool(e["p"]))
    w.writeEvents(store)
    del w
    with pytest.raises(InputError, match="needs two event streams"):
        AedatStereoSource(mono)
    odd = tmp_path / "odd.aedat4"
    write_with_dv(odd, ev, ev, (16, 16), sizes=((16, 16), (32, 16)))
    with pytest.raises(InputError, match="left/right size mismatch"):
        AedatStereoSource(odd)
    with pytest.raises(InputError, match="no event stream from camera 'nope'"):
        AedatStereoSource(odd, left_camera="nope", right_camera="DAVIS346_R")


def test_live_without_cameras_says_so(monkeypatch):
    monkeypatch.setattr(dv.io.camera, "discover", lambda: [])
    with pytest.raises(CameraNotFoundError, match="no camera found") as e:
        LiveStereoSource()
    assert isinstance(e.value, EventStereoError)
    with pytest.raises(CameraNotFoundError, match=r"camera\(s\) \['A1', 'B2'\] not found; connected: none"):
        LiveStereoSource(left_serial="A1", right_serial="B2")


def test_live_with_one_camera_says_so(monkeypatch):
    class Desc:
        serialNumber = "00000499"

    monkeypatch.setattr(dv.io.camera, "discover", lambda: [Desc()])
    with pytest.raises(CameraNotFoundError, match=r"found only one camera \(00000499\)"):
        LiveStereoSource()


def test_event_dtype_of_replayed_windows(recording):
    with AedatStereoSource(recording["path"]) as src:
        assert src.read_window(0).left.dtype == EVENT_DTYPE


class FakeCamera:
    """Stands in for a synchronised DAVIS: hands out prepared event packets, then nothing."""

    def __init__(self, events, size, packet=250):
        self.size = size
        self.packets = []
        for a in range(0, len(events), packet):
            store = dv.EventStore()
            for e in events[a : a + packet]:
                store.push_back(int(e["t"]), int(e["x"]), int(e["y"]), bool(e["p"]))
            self.packets.append(store)

    def isRunning(self):  # noqa: N802 - dv-processing's name
        return True

    def getEventResolution(self):  # noqa: N802
        return self.size

    def getNextEventBatch(self):  # noqa: N802
        return self.packets.pop(0) if self.packets else None


def test_live_loop_windows_and_recording_with_fake_cameras(monkeypatch, tmp_path):
    rng = np.random.default_rng(5)
    size = (40, 30)
    streams = {s: random_stream(rng, 3000, T0, T0 + 100_000, size) for s in ("left", "right")}
    cams = {"L1": FakeCamera(streams["left"], size), "R2": FakeCamera(streams["right"], size)}

    class Desc:
        def __init__(self, s):
            self.serialNumber = s

    monkeypatch.setattr(dv.io.camera, "discover", lambda: [Desc("R2"), Desc("L1")])
    monkeypatch.setattr(dv.io.camera, "openSync", lambda serial: cams[serial])
    monkeypatch.setattr(dv.io.camera, "synchronizeAnyTwo", lambda a, b: None)
    out = tmp_path / "live.aedat4"
    src = LiveStereoSource(window_us=10_000, record_to=out)
    assert src.serials == ("L1", "R2") and src.sensor_size == size
    with pytest.raises(TypeError):
        len(src)
    origin = int(min(streams["left"]["t"][0], streams["right"]["t"][0]))
    wins = []
    for w in src:
        wins.append(w)
        if w.t_end_us > 100_000:
            break
    src.close()
    for k, w in enumerate(wins):
        assert (w.index, w.t_start_us) == (k, 10_000 * k)
        a = origin + 10_000 * k
        for side in ("left", "right"):
            exp = in_window(streams[side], a, a + 10_000)
            np.testing.assert_array_equal(getattr(w, side)["t"], exp["t"] - origin)
    with AedatStereoSource(out, t_origin_us=origin, window_us=10_000) as replay:
        assert replay.cameras == ("L1", "R2")
        for w, r in zip(wins, replay):
            np.testing.assert_array_equal(r.left, w.left)
            np.testing.assert_array_equal(r.right, w.right)


# ------------------------------------------------------------------------------- no read can hang

HANG_GUARD_S = 60  # a hang guard, not a speed bound: the read takes well under a second


def _run_python(code: str, timeout: float = HANG_GUARD_S):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """A recording with 200 KB overwritten in its middle (dv-processing spins forever on this one)."""
    rng = np.random.default_rng(7)
    size = (346, 260)
    left = random_stream(rng, 40_000, T0, T0 + 2_000_000, size)
    right = random_stream(rng, 40_000, T0, T0 + 2_000_000, size)
    folder = tmp_path_factory.mktemp("damaged")
    good = folder / "good.aedat4"
    write_with_dv(good, left, right, size, packet=2000)
    blob = bytearray(good.read_bytes())
    assert len(blob) > 500_000
    mid = len(blob) // 2
    blob[mid : mid + 200_000] = np.random.default_rng(1).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    bad = folder / "bad.aedat4"
    bad.write_bytes(bytes(blob))
    return {"good": good, "bad": bad, "mid": mid, "left": left, "right": right}


def test_damaged_recording_fails_in_bounded_time_saying_where(damaged):
    code = (
        "from eventstereo.sources.dv import AedatStereoSource\n"
        "from eventstereo.errors import InputError\n"
        "try:\n"
        f"    src = AedatStereoSource({str(damaged['bad'])!r})\n"
        "    print('OPENED', sum(w.n_events for w in src))\n"
        "except InputError as e:\n"
        "    print('ERROR', e)\n"
    )
    out = _run_python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ERROR") and "damaged or truncated AEDAT4 data in packet" in out.stdout
    import re

    byte = int(re.search(r"at byte ([\d,]+)", out.stdout).group(1).replace(",", ""))
    assert 0 < byte <= damaged["mid"] < byte + 50_000  # the packet the damage starts in


def test_undamaged_twin_replays_event_for_event(damaged):
    with AedatStereoSource(damaged["good"], window_us=100_000) as src:
        wins = list(src)
    for side in ("left", "right"):
        got = np.concatenate([getattr(w, side) for w in wins])
        exp = damaged[side]
        assert len(got) == len(exp)
        assert np.array_equal(got["t"] + src.t_origin, exp["t"]) and np.array_equal(got["x"], exp["x"])
        assert np.array_equal(got["p"] > 0, exp["p"] > 0)


def test_ctrl_c_stops_a_replay(damaged):
    import signal
    import subprocess
    import sys
    import time

    code = (  # a shell started in the background makes children ignore SIGINT: restore a terminal's
        "import signal\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from eventstereo.sources.dv import AedatStereoSource\n"
        f"src = AedatStereoSource({str(damaged['good'])!r}, window_us=10_000)\n"
        "print('READY', flush=True)\n"
        "try:\n"
        "    while True:\n"
        "        for w in src: pass\n"
        "        src.seek(0)\n"
        "except KeyboardInterrupt:\n"
        "    print('STOPPED', flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "READY"
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=HANG_GUARD_S)
    finally:
        proc.kill()
    assert "STOPPED" in out


def test_events_outside_the_declared_sensor_are_dropped_with_a_warning(tmp_path, caplog):
    rng = np.random.default_rng(5)
    left = random_stream(rng, 300, T0, T0 + 100_000, (64, 48))
    left["x"] += 40  # all at x >= 40 on a 32-pixel-wide sensor
    right = random_stream(rng, 300, T0, T0 + 100_000, (32, 24))
    path = tmp_path / "outside.aedat4"
    write_with_dv(path, left, right, (32, 24))
    with AedatStereoSource(path, window_us=50_000) as src:
        w = src.read_window(0)
    assert len(w.left) == 0 and len(w.right) > 0
    assert "outside.aedat4: all" in caplog.text and "events of left window 0 lie outside the 32x24 sensor" \
        in caplog.text


@pytest.mark.parametrize("compression", ["NONE", "LZ4", "LZ4_HIGH", "ZSTD", "ZSTD_HIGH"])
def test_replay_reads_every_compression_dv_writes(tmp_path, compression):
    path = tmp_path / f"{compression}.aedat4"
    rng = np.random.default_rng(9)
    left, right = (random_stream(rng, 500, T0, T0 + 90_000, (32, 24)) for _ in range(2))

    def write():  # the writer finishes the file when it (and its sub-writers) are released
        cfgs = [dv.io.MonoCameraWriter.EventOnlyConfig(n, (32, 24)) for n in ("L", "R")]
        for c in cfgs:
            c.compression = getattr(dv.CompressionType, compression)
        w = dv.io.StereoCameraWriter(str(path), *cfgs)
        for side, ev in ((w.left, left), (w.right, right)):
            store = dv.EventStore()
            for e in ev:
                store.push_back(int(e["t"]), int(e["x"]), int(e["y"]), bool(e["p"]))
            side.writeEvents(store)

    write()
    import gc

    gc.collect()
    with AedatStereoSource(path, window_us=30_000) as src:
        wins = list(src)
    for side, exp in (("left", left), ("right", right)):
        got = np.concatenate([getattr(w, side) for w in wins])
        assert np.array_equal(got["t"] + src.t_origin, exp["t"]) and np.array_equal(got["y"], exp["y"])


def test_damaged_size_fields_name_no_impossible_offset(recording, tmp_path):
    import struct

    blob = bytearray(recording["path"].read_bytes())
    struct.pack_into("<I", blob, 14, 0xFFFFFFF0)  # the header's own size field
    bad = tmp_path / "hdr.aedat4"
    bad.write_bytes(bytes(blob))
    with pytest.raises(InputError, match=r"damaged or truncated AEDAT4 data in packet 0 \(") as e:
        AedatStereoSource(bad)
    assert "at byte" not in str(e.value)
