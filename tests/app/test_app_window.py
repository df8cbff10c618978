"""pytest-qt drives the window offscreen: open, play, pause (state kept), step, seek, switch model,
bad input (error shown, app goes on), record and read back, and the headless command."""

import json

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

import torch  # noqa: E402

from app.recorder import read_recording  # noqa: E402
from app.window import MainWindow  # noqa: E402
from eventstereo.events.sbt import SBTSettings  # noqa: E402
from eventstereo.model import build_stereo_model  # noqa: E402
from eventstereo.model.io import save_model  # noqa: E402
from eventstereo.sources.registry import Aedat4SourceConfig, SyntheticSourceConfig  # noqa: E402

W, H = 64, 48
TIMEOUT = 60_000


@pytest.fixture(scope="module")
def window(qapp):
    """One window for the module (opening a synthetic scene costs seconds); tests run in file order and
    each starts it playing."""
    w = MainWindow()
    w.resize(1280, 800)
    w.show()
    assert w.open_source(SyntheticSourceConfig(seed=1000, width=W, height=H))
    yield w
    w.close()


@pytest.fixture
def win(window):
    window.play()
    return window


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("app_model") / "tiny.safetensors"
    save_model(path, build_stereo_model(filter_multiplier=1, max_disparity=8), sbt_settings=SBTSettings(),
               provenance={"test": True})
    return path


def _windows(win) -> int:
    return win.worker.windows if win.worker is not None else 0


def _settle(win, qtbot) -> int:
    """Wait, paused, until the window in flight (if any) has finished and nothing more comes."""
    held = -1
    for _ in range(20):
        if _windows(win) == held:
            break
        held = _windows(win)
        qtbot.wait(300)
    qtbot.wait(400)
    assert _windows(win) == held
    return held


def test_play_pause_keeps_state_and_step_runs_one_window(win, qtbot):
    qtbot.waitUntil(lambda: win.frames_drawn >= 3, timeout=TIMEOUT)
    assert win.disp_view.image.image.shape == (H, W)
    assert win.disp_view.levels == (0, 23) and win.gt_view.image.image is not None
    win.pause()
    held = -1
    held = _settle(win, qtbot)
    assert win.session.paused
    win.step()
    qtbot.waitUntil(lambda: _windows(win) == held + 1, timeout=TIMEOUT)
    qtbot.wait(300)
    assert _windows(win) == held + 1
    win.play()
    qtbot.waitUntil(lambda: _windows(win) >= held + 3, timeout=TIMEOUT)
    win.pause()  # the summary and the worker's count are compared at rest: the worker counts a window
    _settle(win, qtbot)  # only after the session has scored it
    s = win.session.summary()
    assert s["resets"] == 1  # spiking state carried across pause and step (one reset: the first window)
    assert s["gt_windows"] == s["windows"] == _windows(win)  # running metrics kept
    assert "1PA" in win.status.text() and "win/s" in win.status.text()


def test_seek_jumps_and_resets_state(win, qtbot):
    qtbot.waitUntil(lambda: win.frames_drawn >= 1, timeout=TIMEOUT)
    win.pause()
    win.playback.seek_to.setValue(5.0)
    win.playback.seek.click()
    drawn = win.frames_drawn
    win.playback.step.click()  # paused: exactly the first window after the seek comes through
    qtbot.waitUntil(lambda: win.frames_drawn > drawn and win.last_frame.result.window.t_end_us > 5_000_000,
                    timeout=TIMEOUT)
    r = win.last_frame.result
    assert r.window.t_end_us == 5_050_000 and r.reset
    assert win.session.summary()["resets"] >= 2


def test_speed_and_event_view_controls_reach_the_session_and_views(win, qtbot):
    pb, vb = win.playback, win.view_box
    pb.speed.setCurrentIndex(pb.speed.findData(1.0))
    assert win.session.speed == 1.0
    pb.speed.setCurrentIndex(0)
    assert win.session.speed is None
    vb.mode.setCurrentIndex(vb.mode.findData("sbt"))
    vb.accumulate.setValue(2)
    vb.bins.setValue(4)
    drawn = win.frames_drawn
    qtbot.waitUntil(lambda: win.frames_drawn >= drawn + 3, timeout=TIMEOUT)
    assert win.left_view.levels == (-8.0, 8.0)  # 4 bins x 2 windows, fixed
    frame = win.last_frame
    assert np.abs(frame.left).max() <= 8.0 and frame.left.shape == (H, W)
    vb.mode.setCurrentIndex(vb.mode.findData("onoff"))
    vb.accumulate.setValue(1)


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_record_and_read_back(win, qtbot, tmp_path, suffix):
    path = tmp_path / f"rec{suffix}"
    win.record_box.path.setText(str(path))
    win.record_box.button.click()
    assert win.recorder is not None
    start = _windows(win)
    qtbot.waitUntil(lambda: _windows(win) >= start + 3, timeout=TIMEOUT)
    win.record_box.button.click()
    assert win.recorder is None
    rec = read_recording(path)
    n = len(rec["t_end_us"])
    assert n >= 3 and rec["disparity"].shape == (n, H, W) and rec["gt"].shape == (n, H, W)
    assert np.all(np.diff(rec["t_end_us"]) == 50_000)  # every window, none skipped
    assert path.with_suffix(".avi").stat().st_size > 0
    assert f"{n} windows" in win.record_box.info.text()


def test_switch_model_updates_views_and_neuron_panel(win, qtbot, tiny_model):
    qtbot.waitUntil(lambda: win.frames_drawn >= 1, timeout=TIMEOUT)
    win.model_box.path.setText(str(tiny_model))
    win.model_box.load_button.click()
    assert win.message.text() == ""
    assert win.disp_view.levels == (0, 8) and "0-8 px" in win.model_box.info.text()
    assert win.neuron_table.rowCount() == len(win.rates.names) > 0
    assert win.neuron_table.item(0, 1).text() == "lif"
    drawn = win.frames_drawn
    qtbot.waitUntil(lambda: win.frames_drawn >= drawn + 2, timeout=TIMEOUT)
    assert win.session.model is win.loaded.model


def test_bad_input_is_shown_and_the_app_goes_on(win, qtbot, tmp_path):
    qtbot.waitUntil(lambda: win.frames_drawn >= 1, timeout=TIMEOUT)
    assert not win.open_source(Aedat4SourceConfig(file=str(tmp_path / "missing.aedat4")))
    assert "missing.aedat4" in win.message.text()
    bad_model = tmp_path / "broken.safetensors"
    bad_model.write_bytes(b"not a model")
    assert not win.load_model(str(bad_model))
    assert "broken.safetensors: not a readable safetensors model file" in win.message.text()
    # the form reports a missing option of the picked kind without opening anything
    box = win.source_box
    box.kind.setCurrentIndex(box.kind.findData("aedat4"))
    box.open_button.click()
    assert "needs --file" in win.message.text()
    # a model that does not fit the source: 20 ms windows for a 50 ms model
    assert not win.open_source(SyntheticSourceConfig(window_ms=20.0, width=W, height=H))
    assert "--window-ms 50" in win.message.text()
    # ... and a good source opens again
    assert win.open_source(SyntheticSourceConfig(seed=3, width=W, height=H))
    drawn = win.frames_drawn
    qtbot.waitUntil(lambda: win.frames_drawn > drawn, timeout=TIMEOUT)
    assert win.message.text() == ""


def test_headless_run_prints_json_and_saves_a_screenshot(qtbot, tmp_path, capsys):
    from app.main import main

    shot = tmp_path / "shot.png"
    rc = main(["--width", str(W), "--height", str(H), "--frames", "3", "--json", "--screenshot", str(shot),
               "--size", "960x600"])
    assert rc == 0
    stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"frames", "model_fps", "display_fps", "latency_ms", "dropped", "one_pa"} <= set(stats)
    assert stats["model_windows"] == 3 and stats["frames"] >= 1 and stats["dropped"] == 0
    assert 0 <= stats["one_pa"] <= 100 and stats["latency_ms"] > 0
    assert shot.stat().st_size > 10_000


def test_headless_bad_option_is_one_line(capsys):
    from app.main import main

    assert main(["--width", "0", "--frames", "2"]) == 2
    assert "--width must be" in capsys.readouterr().err


def test_bench_app_reports_the_ratio_and_display_rates(capsys):
    from app.bench import main

    assert main(["--windows", "3", "--rounds", "2", "--draw-seconds", "0.2", "--width", str(W),
                 "--height", str(H), "--json"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["headless_windows_per_s"] > 0 and r["app_windows_per_s"] > 0
    assert r["app_vs_headless"] == pytest.approx(r["app_windows_per_s"] / r["headless_windows_per_s"])
    assert r["draw_capacity_fps"] > 0 and r["latency_ms"] > 0


def test_without_a_display_the_window_command_says_how_to_run_headless(monkeypatch, capsys):
    from app.main import main

    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert main(["--width", str(W), "--height", str(H)]) == 2
    assert "--frames N" in capsys.readouterr().err


def test_a_source_that_ran_out_leaves_the_next_one_playing(qapp, qtbot):
    """The end of a source pauses (Play runs it again), but a newly opened source plays: the pause was
    the old source's, not the user's (the bench's second round waited forever on it)."""
    from eventstereo.bench.stream import _Replay
    from eventstereo.sources.registry import open_config

    with open_config(SyntheticSourceConfig(seed=3, width=W, height=H)) as synth:
        windows = [w for _, w in zip(range(2), synth)]
    w = MainWindow()
    w.show()  # close() then stops the session (closeEvent)
    try:
        w.set_source(_Replay(windows, synth))
        qtbot.waitUntil(lambda: w.source_ended, timeout=TIMEOUT)
        assert not w.playing
        w.set_source(_Replay(windows, synth))
        assert w.playing
        qtbot.waitUntil(lambda: w.source_ended, timeout=TIMEOUT)
        assert w.worker.windows == 2
        w.set_source(_Replay(windows, synth))
        w.pause()  # a pause the user asked for survives opening another source
        w.set_source(_Replay(windows, synth))
        assert not w.playing
    finally:
        w.close()
