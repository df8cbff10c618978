"""The main window: controls on the left, image views in the middle, firing rates and neurons on the
right, the status line below. It owns the current source, model and session; the session runs in a
SessionWorker and this (GUI) thread only draws, from a timer, the newest Frame the worker left."""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from app.controls import ModelBox, PlaybackBox, RecordBox, SourceBox, ViewBox
from app.recorder import Recorder
from app.render import ERROR_RANGE_PX, Frame, FrameMaker, ViewSettings, fmt
from app.views import (
    DISPARITY_CMAP,
    ERROR_CMAP,
    EVENT_CMAP,
    EventRatePlot,
    ImagePanel,
    NeuronTable,
    RatesPanel,
    disparity_lut,
)
from app.worker import LatestBox, SessionWorker, describe_error
from eventstereo.errors import InputError
from eventstereo.runtime.session import SessionOptions, StreamSession
from eventstereo.snn.neurons import neurons
from eventstereo.sources.registry import open_config

log = logging.getLogger(__name__)

DRAW_HZ = 60


def load_model(path: str | None, device: str = "cpu"):
    """The LoadedModel at ``path`` (or the bundled one), BatchNorm folded for inference."""
    from eventstereo.model.io import load_bundled_model
    from eventstereo.model.io import load_model as load_file

    if path is None:
        return load_bundled_model(device=device, fold_bn=True)
    return load_file(path, device=device, fold_bn=True)


class _Rate:
    """Events per second over the last ``seconds`` (display FPS)."""

    def __init__(self, seconds: float = 2.0):
        self.seconds = seconds
        self.times: deque = deque()

    def tick(self, now: float) -> None:
        self.times.append(now)
        while self.times and now - self.times[0] > self.seconds:
            self.times.popleft()

    def per_s(self) -> float:
        if len(self.times) < 2:
            return math.nan
        return (len(self.times) - 1) / max(self.times[-1] - self.times[0], 1e-9)


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self, options: SessionOptions | None = None, model_path: str | None = None):
        super().__init__()
        options = options or SessionOptions()
        self.setWindowTitle("eventstereo - live stereo depth from event cameras")
        self.options = options
        self.source = None
        self.config = None
        self.loaded = None
        self.session: StreamSession | None = None
        self.worker: SessionWorker | None = None
        self.recorder: Recorder | None = None
        self.box = LatestBox()
        self.maker = FrameMaker()
        self.playing = True
        self.source_ended = False  # paused by the end of the source, not by the user
        self.run_limit: int | None = None  # windows per run (headless runs); None: until the source ends
        self.frames_drawn = 0
        self.last_frame: Frame | None = None
        self.display_rate = _Rate()
        self.latencies: deque = deque(maxlen=200)
        self.draw_ms: deque = deque(maxlen=200)
        self.queue_ms: deque = deque(maxlen=200)
        self._unpainted = None  # the result drawn but not yet painted
        self._step_ms: float | None = None  # smoothed model time per window (status line)
        self._build()
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(int(1000 / DRAW_HZ))
        self.timer.timeout.connect(self.draw_latest)
        self.timer.start()
        self.load_model(model_path)

    # --- layout -------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.source_box, self.model_box = SourceBox(), ModelBox()
        self.playback, self.view_box, self.record_box = PlaybackBox(), ViewBox(), RecordBox()
        self.message = QtWidgets.QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #ff7b72;")
        self.note = QtWidgets.QLabel("")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #8b949e;")
        self.message.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        controls = QtWidgets.QWidget()
        col = QtWidgets.QVBoxLayout(controls)
        for w in (self.source_box, self.model_box, self.playback, self.view_box, self.record_box):
            col.addWidget(w)
        col.addWidget(self.message)
        col.addWidget(self.note)
        col.addStretch(1)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidget(controls)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(250)
        scroll.setMaximumWidth(300)

        self.left_view = ImagePanel("left events", EVENT_CMAP, (-3, 3))
        self.right_view = ImagePanel("right events", EVENT_CMAP, (-3, 3))
        self.disp_view = ImagePanel("disparity (model)", DISPARITY_CMAP, (0, 1), "disparity (px)")
        self.gt_view = ImagePanel("ground truth", DISPARITY_CMAP, (0, 1), "disparity (px)")
        self.err_view = ImagePanel("|error| vs GT", ERROR_CMAP, (0, ERROR_RANGE_PX), "error (px)")
        self.event_rate = EventRatePlot()
        self.disp_view.on_painted = self._painted
        grid_w = QtWidgets.QWidget()
        grid = QtWidgets.QGridLayout(grid_w)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(4)
        for i, view in enumerate((self.left_view, self.right_view, self.disp_view,
                                  self.event_rate, self.gt_view, self.err_view)):
            grid.addWidget(view, i // 3, i % 3)
        for i in range(3):
            grid.setColumnStretch(i, 1)

        self.rates = RatesPanel()
        self.neuron_table = NeuronTable()
        bottom = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        bottom.addWidget(self.rates)
        bottom.addWidget(self.neuron_table)
        bottom.setStretchFactor(0, 2)
        bottom.setStretchFactor(1, 1)
        self.neuron_table.setMinimumWidth(290)

        centre = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        centre.addWidget(grid_w)
        centre.addWidget(bottom)
        centre.setStretchFactor(0, 3)
        centre.setStretchFactor(1, 2)

        main = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        main.addWidget(scroll)
        main.addWidget(centre)
        main.setStretchFactor(0, 0)
        main.setStretchFactor(1, 1)
        self.setCentralWidget(main)
        self.status = QtWidgets.QLabel("no source")
        self.status.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.statusBar().addPermanentWidget(self.status, 1)

        self.source_box.open_requested.connect(self.open_source)
        self.source_box.failed.connect(self.show_error)
        self.model_box.load_requested.connect(self.load_model)
        self.playback.play.toggled.connect(lambda on: self.play() if on else self.pause())
        self.playback.step.clicked.connect(self.step)
        self.playback.seek.clicked.connect(lambda: self.seek(self.playback.seek_to.value()))
        self.playback.speed.currentIndexChanged.connect(
            lambda _: self.set_speed(self.playback.speed.currentData()))
        for w in (self.view_box.mode, self.view_box.accumulate, self.view_box.bins):
            (w.currentIndexChanged if isinstance(w, QtWidgets.QComboBox) else w.valueChanged).connect(
                self._view_changed)
        self.record_box.button.toggled.connect(self._record_toggled)

    # --- errors -------------------------------------------------------------------------------------
    def show_error(self, message: str) -> None:
        """Show a one-line problem in the window (message area and status bar); the app carries on."""
        log.warning("%s", message)
        self.message.setText("error: " + message)

    def clear_error(self) -> None:
        self.message.setText("")

    # --- source, model, session ---------------------------------------------------------------------
    def open_source(self, config) -> bool:
        """Open the source ``config`` describes and start a session on it; False (error shown) if not."""
        try:
            source = open_config(config)
        except Exception as e:
            self.show_error(describe_error(e))
            return False
        return self.set_source(source, config)

    def set_source(self, source, config=None) -> bool:
        """Run the session on an open ``source`` (the window closes it when replaced); ``config``, when
        given, is shown in the source form."""
        self._stop_session()
        if self.source is not None and self.source is not source:
            self.source.close()
        if self.source_ended:  # paused only because the last source ran out: a new one plays
            self.playing, self.source_ended = True, False
            self.playback.show_playing(True)
        self.source, self.config = source, config
        if config is not None:
            self.source_box.select(config)
        self.playback.seek.setEnabled(source.can_seek)
        self.playback.seek_to.setEnabled(source.can_seek)
        return self._start_session()

    def load_model(self, path: str | None) -> bool:
        """Load the model at ``path`` (None: bundled) and restart the session on the current source."""
        try:
            loaded = load_model(path, device=str(self.options.resolved_device()))
        except Exception as e:
            self.show_error(describe_error(e))
            return False
        self._stop_session()
        self.loaded = loaded
        g, s = loaded.genotype, loaded.sbt_settings
        name = "bundled demo model" if path is None else Path(path).name
        params = sum(p.numel() for p in loaded.model.parameters())
        self.model_box.info.setText(f"{name}: disparity 0-{g.max_disparity} px, {s.n_bins}-bin {s.mode} SBT "
                                    f"of {s.window_us / 1000:g} ms, {params / 1000:.0f} k parameters")
        self.model_box.path.setText(path or "")
        for view in (self.disp_view, self.gt_view):
            view.set_levels((0, g.max_disparity))
        spiking = [(n, m.spec) for n, m in neurons(loaded.model) if m.is_spiking]
        self.neuron_table.set_layers(spiking)
        self.rates.set_layers([n for n, _ in spiking])
        if self.source is not None:
            return self._start_session()
        return True

    def _start_session(self) -> bool:
        if self.source is None or self.loaded is None:
            return False
        try:
            self.session = StreamSession(self.source, self.loaded.model, self.loaded.sbt_settings,
                                         self.options)
        except Exception as e:  # the model does not fit the source
            self.session = None
            self.show_error(describe_error(e))
            return False
        self.clear_error()
        self.note.setText("\n".join(self.session.notes))
        self.session.set_speed(self.playback.speed.currentData())
        self.maker = FrameMaker(self.maker.view)
        self.event_rate.clear_history()
        has_gt = self.source.has_gt
        for view, title in ((self.gt_view, "ground truth"), (self.err_view, "|error| vs GT")):
            view.plot.setTitle(title if has_gt else f"{title}: none for this source")
            if not has_gt:
                view.image.clear()
        if not self.playing:
            self.session.pause()
        self.start()
        return True

    def start(self) -> None:
        """Run the current session in a worker thread (from the source's current position)."""
        if self.session is None or (self.worker is not None and self.worker.isRunning()):
            return
        self.worker = SessionWorker(self.session, self.maker, self.box, self.run_limit)
        self.worker.recorder = self.recorder
        self.worker.failed.connect(self.show_error)
        self.worker.finished.connect(self._run_ended)
        self.worker.start()

    def _run_ended(self) -> None:
        """The source ran out (or failed): show Play, which starts it again from its current position."""
        worker = self.sender()
        if worker is not self.worker or self.run_limit is not None:
            return
        self.playing = False
        self.source_ended = True
        self.playback.show_playing(False)
        if not self.message.text():
            self.note.setText("end of the source: Play runs it again")

    def _stop_session(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        if self.session is not None:
            self.session.close()
            self.session = None
        self.box.take()

    # --- playback -----------------------------------------------------------------------------------
    def play(self) -> None:
        self.playing = True
        self.source_ended = False
        self.playback.show_playing(True)
        if self.session is not None:
            self.session.resume()
            self.start()

    def pause(self) -> None:
        self.playing = False
        self.source_ended = False
        self.playback.show_playing(False)
        if self.session is not None:
            self.session.pause()

    def step(self) -> None:
        """Pause and let one window through."""
        if self.playing:
            self.pause()
        if self.session is not None:
            self.start()
            self.session.step()

    def seek(self, t_s: float) -> None:
        if self.session is None:
            return
        try:
            if not self.source.can_seek:
                raise InputError(f"the {self.source.name} source cannot seek")
            self.session.seek(int(round(t_s * 1e6)))
        except Exception as e:
            self.show_error(describe_error(e))
            return
        self.event_rate.clear_history()

    def set_speed(self, speed: float | None) -> None:
        if self.session is not None:
            self.session.set_speed(speed)

    def _view_changed(self, *_) -> None:
        self.maker.view = ViewSettings(self.view_box.mode.currentData(), self.view_box.accumulate.value(),
                                       self.view_box.bins.value())

    # --- recording ----------------------------------------------------------------------------------
    def start_recording(self, path: str) -> bool:
        if self.loaded is None:
            return False
        try:
            fps = 1e6 / self.loaded.sbt_settings.window_us  # one video frame per window: plays in real time
            self.recorder = Recorder(path, self.loaded.genotype.max_disparity, disparity_lut(), fps=fps)
        except Exception as e:
            self.show_error(describe_error(e))
            return False
        if self.worker is not None:
            self.worker.recorder = self.recorder
        self.record_box.info.setText(f"recording to {Path(path).name} (+ .avi)")
        return True

    def stop_recording(self) -> Path | None:
        rec, self.recorder = self.recorder, None
        if self.worker is not None:
            self.worker.recorder = None
        if rec is None:
            return None
        rec.close()
        self.record_box.info.setText(f"{rec.frames} windows written to {rec.path.name}")
        return rec.path

    def _record_toggled(self, on: bool) -> None:
        if on:
            if not self.start_recording(self.record_box.path.text().strip()):
                self.record_box.button.blockSignals(True)
                self.record_box.button.setChecked(False)
                self.record_box.button.blockSignals(False)
            else:
                self.record_box.button.setText("Stop recording")
        else:
            self.stop_recording()
            self.record_box.button.setText("Record")

    # --- drawing (GUI thread) -----------------------------------------------------------------------
    def draw_latest(self) -> bool:
        """Draw the newest frame if the worker left one; True if it drew."""
        frame = self.box.take()
        if frame is None:
            return False
        t0 = time.perf_counter()
        self.draw(frame)
        now = time.perf_counter()
        self.draw_ms.append((now - t0) * 1e3)
        self._unpainted = frame.result
        self.display_rate.tick(now)
        self.frames_drawn += 1
        self.last_frame = frame
        self._update_status(frame)
        return True

    def draw(self, frame: Frame) -> None:
        r = frame.result
        level = frame.level
        for view, img in ((self.left_view, frame.left), (self.right_view, frame.right)):
            if view.levels != (-level, level):
                view.set_levels((-level, level))
            view.show_image(img)
        self.disp_view.show_image(frame.disparity)
        if frame.gt is not None:
            self.gt_view.show_image(frame.gt)
            self.err_view.show_image(frame.error)
        self.rates.update_rates(r.firing_rates)
        self.event_rate.add(r.window.t_end_us / 1e6, frame.events_per_s)

    def _painted(self) -> None:
        """The disparity view painted: latency from the window being ready (encoded) to its pixels,
        without the time it waited in the queue (which the queue_ms figures give)."""
        r, self._unpainted = self._unpainted, None
        if r is None:
            return
        now = time.perf_counter()
        self.latencies.append((now - r.t_infer + r.encode_ms / 1e3) * 1e3)
        self.queue_ms.append((r.t_infer - r.t_read) * 1e3)

    def _update_status(self, frame: Frame) -> None:
        r = frame.result
        m = r.metrics
        lat = sum(self.latencies) / len(self.latencies) if self.latencies else math.nan
        # the model's own rate (not counting pauses): the inverse of its recent time per window
        step_ms = r.infer_ms if self._step_ms is None else 0.8 * self._step_ms + 0.2 * r.infer_ms
        self._step_ms = step_ms
        self.status.setText(
            f"t {r.window.t_end_us / 1e6:.2f} s  |  model {fmt(1000 / max(step_ms, 1e-3), '.1f')} win/s  |  "
            f"display {fmt(self.display_rate.per_s(), '.1f')} fps  |  latency {fmt(lat, '.0f', ' ms')}  |  "
            f"dropped {r.dropped}  |  energy {fmt(r.energy_mj, '.3f', ' mJ')}/win  |  "
            f"1PA {fmt(m.get('one_pa'), '.1f', ' %')}  |  MDE {fmt(m.get('mde_cm'), '.1f', ' cm')}  |  "
            f"rate {fmt(r.firing_rate, '.3f')}")

    def stats(self) -> dict:
        """What the headless run and the benchmark report."""
        r = self.last_frame.result if self.last_frame is not None else None
        lat = list(self.latencies)
        draw = list(self.draw_ms)
        summary = self.session.summary() if self.session is not None else {}
        return {
            "frames": self.frames_drawn,
            "model_windows": summary.get("windows", 0),
            "model_fps": summary.get("windows_per_s", math.nan),
            "display_fps": self.display_rate.per_s(),
            "latency_ms": sum(lat) / len(lat) if lat else math.nan,
            "handoff_ms": sum(draw) / len(draw) if draw else math.nan,
            "queue_ms": sum(self.queue_ms) / len(self.queue_ms) if self.queue_ms else math.nan,
            "dropped": summary.get("dropped", 0),
            "skipped_frames": self.box.skipped,
            "one_pa": summary.get("one_pa", math.nan),
            "mde_cm": summary.get("mde_cm", math.nan),
            "energy_mj": summary.get("energy_mj", math.nan),
            "t_end_s": r.window.t_end_us / 1e6 if r is not None else math.nan,
        }

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        self.timer.stop()
        self.stop_recording()
        self._stop_session()
        if self.source is not None:
            self.source.close()
            self.source = None
        super().closeEvent(event)
