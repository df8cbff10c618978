"""AEDAT4 stereo recordings (replayed with `aedat`) and a live stereo DAVIS pair (dv-processing).

Replay reads through eventstereo.sources.aedat_reader, not dv-processing: dv-processing hangs, deaf to
Ctrl-C, on a damaged file, while `aedat` checks the whole file in bounded time on open. dv-processing
(imported lazily) stays for the live cameras and for writing recordings.

Both cut windows on the clock the two cameras share (microseconds; a synchronised pair stamps events
with one clock), report times relative to the first window's start and keep the absolute time in
``meta``. Raw DAVIS events are not rectified; pass a kalibr camchain (``calib``) to rectify them and
to get fxB, or give ``fxb`` directly (otherwise it is NaN: disparity works, depth does not).
A live run can record what it saw to AEDAT4 (``record_to``), which AedatStereoSource replays.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from eventstereo.errors import EventStereoError, InputError
from eventstereo.events.types import EVENT_DTYPE, inside_sensor
from eventstereo.events.window import StereoWindow
from eventstereo.sources.base import Source
from eventstereo.sources.calib_yaml import load_yaml

log = logging.getLogger(__name__)

AEDAT4_MAGIC = b"#!AER-DAT4.0"
WINDOW_US = 50_000


class CameraNotFoundError(EventStereoError):
    """The live cameras asked for are not connected (or fewer than two are)."""


def _dv():
    try:
        import dv_processing
    except ImportError:
        raise InputError(
            "dv-processing is not installed; AEDAT4 files and DAVIS cameras need it "
            "(pip install 'eventstereo[dv]')"
        ) from None
    return dv_processing


def _dv_message(e: BaseException) -> str:
    """dv-processing errors carry a C++ stack trace; keep the sentence that says what went wrong."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    for ln in lines:
        m = re.search(r"\b\w*Error: (.*)", ln)
        if m:
            return m.group(1).split(" - Error info:")[0].strip()
    return lines[0][:200] if lines else type(e).__name__


# ------------------------------------------------------------------------------------ file inspection


def aedat4_event_streams(path: str | Path) -> list[dict[str, Any]]:
    """Event streams listed in an AEDAT4 header: [{'id', 'source', 'size': (W, H)}], in file order."""
    path = Path(path)
    if not path.is_file():
        raise InputError("AEDAT4 recording not found", source=str(path))
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    if not head.startswith(AEDAT4_MAGIC):
        raise InputError("not an AEDAT4 file (no '#!AER-DAT4.0' header)", source=str(path))
    a, b = head.find(b"<dv"), head.find(b"</dv>")
    if a < 0 or b < 0:
        raise InputError("AEDAT4 header is truncated (no stream description)", source=str(path))
    try:
        root = ET.fromstring(head[a : b + 5].decode("utf-8", "replace"))
    except ET.ParseError as e:
        raise InputError(f"corrupt AEDAT4 header ({e})", source=str(path)) from None
    streams = []
    for node in root.iter("node"):
        attrs = {a.get("key"): a.text for a in node.findall("attr")}
        if attrs.get("typeIdentifier") != "EVTS":
            continue
        info = node.find("node[@name='info']")
        iattrs = {a.get("key"): a.text for a in info.findall("attr")} if info is not None else {}
        try:
            size = (int(iattrs.get("sizeX", 0)), int(iattrs.get("sizeY", 0)))
        except ValueError:
            size = (0, 0)
        streams.append(
            {
                "id": node.get("name"),
                "source": iattrs.get("source", ""),
                "name": attrs.get("originalOutputName", "events"),
                "size": size,
            }
        )
    return streams


def store_to_events(store, t0_us: int = 0) -> np.ndarray:
    """A dv EventStore -> EVENT_DTYPE with times relative to ``t0_us``."""
    if store is None or store.size() == 0:
        return np.empty(0, EVENT_DTYPE)
    a = store.numpy()
    out = np.empty(len(a), EVENT_DTYPE)
    out["x"], out["y"] = a["x"], a["y"]
    out["t"] = a["timestamp"] - np.int64(t0_us)
    out["p"] = a["polarity"].astype(np.int8)
    return out


def events_to_store(events: np.ndarray, t_offset_us: int = 0):
    """EVENT_DTYPE -> a dv EventStore (times + ``t_offset_us``). About 0.5 us per event."""
    dv = _dv()
    store = dv.EventStore()
    t = (events["t"].astype(np.int64) + int(t_offset_us)).tolist()
    for ti, xi, yi, pi in zip(t, events["x"].tolist(), events["y"].tolist(), (events["p"] > 0).tolist()):
        store.push_back(ti, xi, yi, pi)
    return store


# ----------------------------------------------------------------------------------- rectification


class _Rectifier:
    """Optional camchain-based rectification shared by replay and live input."""

    def __init__(self, calib: str | Path | None, sensor_size: tuple[int, int]):
        self.luts = None
        self.fxb: float | None = None
        if calib is None:
            return
        from eventstereo.sources.mvsec import maps_from_camchain

        maps = maps_from_camchain(load_yaml(calib), str(calib))
        w, h = sensor_size
        if maps.shape != (h, w):
            raise InputError(
                f"calibration is for {maps.shape[1]}x{maps.shape[0]} cameras, the recording is {w}x{h}",
                source=str(calib),
            )
        self.luts = {s: maps.rounded(s, sensor_size) for s in ("left", "right")}
        self.fxb = maps.fxb

    def __call__(self, side: str, ev: np.ndarray) -> np.ndarray:
        if self.luts is None or not len(ev):
            return ev
        rx, ry = self.luts[side]
        h, w = rx.shape
        x, y = ev["x"].astype(np.int64), ev["y"].astype(np.int64)
        inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
        ev, x, y = ev[inside], x[inside], y[inside]
        xr, yr = rx[y, x], ry[y, x]
        ok = xr >= 0
        ev = ev[ok]
        ev["x"], ev["y"] = xr[ok], yr[ok]
        return ev


# -------------------------------------------------------------------------------------------- replay


class AedatStereoSource(Source):
    """Replay a stereo AEDAT4 recording as back-to-back windows on the shared clock (seekable)."""

    name = "aedat4"

    def __init__(
        self,
        path: str | Path,
        *,
        left_camera: str | None = None,
        right_camera: str | None = None,
        window_us: int = WINDOW_US,
        calib: str | Path | None = None,
        fxb: float = math.nan,
        max_disparity: int = 63,
        t_origin_us: int | None = None,
    ):
        from eventstereo.sources.aedat_reader import AedatStreamReader

        self.path = Path(path)
        streams = aedat4_event_streams(self.path)
        names = [s["source"] for s in streams]
        if left_camera is None or right_camera is None:
            if len(streams) < 2:
                raise InputError(
                    f"a stereo recording needs two event streams (left, right); found {len(streams)}"
                    f" ({names})",
                    source=str(self.path),
                )
            if len(streams) > 2:
                log.warning(
                    "%s has %d event streams %s; using the first two as left and right",
                    self.path,
                    len(streams),
                    names,
                )
            left_camera = left_camera or streams[0]["source"]
            right_camera = right_camera or next(n for n in names if n != left_camera)
        for cam in (left_camera, right_camera):
            if cam not in names:
                raise InputError(
                    f"no event stream from camera '{cam}'; the recording has {names}", source=str(self.path)
                )
        sizes = {s["source"]: s["size"] for s in streams}
        if sizes[left_camera] != sizes[right_camera]:
            raise InputError(
                f"left/right size mismatch: {left_camera} {sizes[left_camera]} vs {right_camera} "
                f"{sizes[right_camera]}",
                source=str(self.path),
            )
        ids = {s["source"]: s["id"] for s in streams}
        try:
            self._ids = {"left": int(ids[left_camera]), "right": int(ids[right_camera])}
        except (TypeError, ValueError):
            raise InputError(f"AEDAT4 header: stream ids {ids} are not integers",
                             source=str(self.path)) from None
        self._reader = AedatStreamReader(self.path, (self._ids["left"], self._ids["right"]))
        self.cameras = (left_camera, right_camera)
        self.sensor_size = sizes[left_camera]
        self.window_us = int(window_us)
        self.max_disparity = max_disparity
        self._rectify = _Rectifier(calib, self.sensor_size)
        self.fxb = float(fxb) if not math.isnan(fxb) else (self._rectify.fxb or math.nan)
        if math.isnan(self.fxb):
            log.info("%s: no calibration or fxB given; windows have no depth scale", self.path.name)
        ranges = [self._reader.index[i].t_range for i in self._ids.values()]
        t_a, t_b = min(r[0] for r in ranges), max(r[1] for r in ranges)
        self.t_origin = int(t_origin_us) if t_origin_us is not None else int(t_a)
        self.t_stop = int(t_b) + 1
        n = -(-(self.t_stop - self.t_origin) // self.window_us)
        if n <= 0:
            raise InputError("the recording holds no events after the window origin", source=str(self.path))
        self._n = n
        self._pos = 0
        self._gap_next = False

    def __len__(self) -> int:
        return self._n

    def _events(self, side: str, a: int, b: int, k: int) -> np.ndarray:
        """Events of one side in [a, b); those outside the sensor the header declares are dropped (a
        warning when that is all of them: a damaged file or the wrong stream)."""
        ev = self._reader.events(self._ids[side], a, b, self.t_origin)
        inside = inside_sensor(ev["x"], ev["y"], self.sensor_size, where=f"{side} window {k}",
                               source=self.path.name)
        return self._rectify(side, ev if inside.all() else ev[inside])

    def read_window(self, k: int, *, gap_before: bool = False) -> StereoWindow:
        if not 0 <= k < self._n:
            raise IndexError(f"window {k} out of range (0..{self._n - 1})")
        a = self.t_origin + k * self.window_us
        b = a + self.window_us
        return StereoWindow(
            left=self._events("left", a, b, k),
            right=self._events("right", a, b, k),
            t_start_us=a - self.t_origin,
            t_end_us=b - self.t_origin,
            sensor_size=self.sensor_size,
            index=k,
            gap_before=gap_before,
            meta={"file": str(self.path), "t_end_abs_us": b, "t0_us": self.t_origin},
        )

    def __iter__(self) -> Iterator[StereoWindow]:
        while self._pos < self._n:
            k = self._pos
            win = self.read_window(k, gap_before=self._gap_next)
            self._gap_next = False
            self._pos = k + 1
            yield win
        self._pos = 0

    def seek(self, t_us: int) -> None:
        """Continue from the window that contains ``t_us`` (us from the window origin)."""
        self._pos = min(max(int(t_us) // self.window_us, 0), self._n)
        self._gap_next = True

    @property
    def at_end(self) -> bool:
        return self._pos >= self._n

    def describe(self) -> str:
        return (
            f"AEDAT4 {self.path.name} ({self.cameras[0]} | {self.cameras[1]}): {self._n} windows, "
            + super().describe()
        )

    def close(self) -> None:
        self._reader = None


# --------------------------------------------------------------------------------------------- record


class StereoAedatRecorder:
    """Write left and right event streams to one AEDAT4 file (via a temporary file renamed on close, so
    an interrupted recording never replaces a good file with a broken one)."""

    def __init__(
        self,
        path: str | Path,
        sensor_size: tuple[int, int],
        *,
        left_name: str = "left",
        right_name: str = "right",
    ):
        dv = _dv()
        self.path = Path(path)
        if self.path.suffix.lower() != ".aedat4":
            # dv-processing aborts the whole process (std::terminate) on any other extension
            raise InputError("an AEDAT4 recording's name must end in .aedat4", source=str(self.path))
        self._tmp = self.path.with_name(f".{self.path.stem}.{os.getpid()}.part.aedat4")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        w, h = sensor_size
        cfg = dv.io.MonoCameraWriter.EventOnlyConfig
        try:
            self._writer = dv.io.StereoCameraWriter(
                str(self._tmp), cfg(left_name, (w, h)), cfg(right_name, (w, h))
            )
        except RuntimeError as e:
            raise InputError(
                f"cannot create the recording: {_dv_message(e)}", source=str(self.path)
            ) from None
        self._sides = {"left": self._writer.left, "right": self._writer.right}
        self.names = (left_name, right_name)
        self.n_events = {"left": 0, "right": 0}

    def write_store(self, side: str, store) -> None:
        """Write a dv EventStore as received (deep-copied: dv 2.0.4 writes a slice's whole parent packet)."""
        if store is None or store.size() == 0:
            return
        self._sides[side].writeEventPacket(store.toPacket())
        self.n_events[side] += store.size()

    def write_events(self, side: str, events: np.ndarray, t_offset_us: int = 0) -> None:
        """Write EVENT_DTYPE events (times + ``t_offset_us`` must be non-decreasing across calls)."""
        if len(events):
            self.write_store(side, events_to_store(events, t_offset_us))

    def close(self) -> None:
        """Finish the file and move it into place; safe to call twice."""
        if self._writer is None:
            return
        self._sides = {}
        self._writer = None  # the dv writer flushes and writes its index when released
        import gc

        gc.collect()
        os.replace(self._tmp, self.path)
        log.info("recorded %d + %d events to %s", self.n_events["left"], self.n_events["right"], self.path)

    def abort(self) -> None:
        self._sides, self._writer = {}, None
        try:
            self._tmp.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> StereoAedatRecorder:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def record_source(
    source: Source, path: str | Path, *, max_windows: int | None = None, t_offset_us: int | None = None
) -> int:
    """Write the events of a source's windows (in order) to a stereo AEDAT4 file; returns windows written.

    Times are written as window time + ``t_offset_us`` (default: the window's ``meta['t0_us']``, else 0),
    so a replay with the same origin cuts the same windows.
    """
    n = 0
    with StereoAedatRecorder(path, source.sensor_size) as rec:
        for win in source:
            off = t_offset_us if t_offset_us is not None else int(win.meta.get("t0_us", 0))
            for side, ev in (("left", win.left), ("right", win.right)):
                rec.write_events(side, ev[np.argsort(ev["t"], kind="stable")], off)
            n += 1
            if max_windows is not None and n >= max_windows:
                break
    return n


# ----------------------------------------------------------------------------------------------- live


class StereoWindower:
    """Cut two time-ordered event streams into back-to-back windows on their shared clock.

    A window [a, b) is complete once both streams have reached b: an event at or after b has arrived,
    or ``advance`` said no earlier event will come (a silent camera must not stall the pair). Events
    older than the oldest open window are dropped and counted in ``late_events``.
    """

    def __init__(self, window_us: int = WINDOW_US, t_origin_us: int | None = None):
        self.window_us = int(window_us)
        self.t_origin = t_origin_us
        self.next_end = None if t_origin_us is None else int(t_origin_us) + self.window_us
        self._buf: dict[str, list[np.ndarray]] = {"left": [], "right": []}
        self._clock = {"left": -(1 << 62), "right": -(1 << 62)}
        self.late_events = 0

    def push(self, side: str, events: np.ndarray) -> None:
        """Add time-sorted events (absolute us) of one camera."""
        if not len(events):
            return
        if self.next_end is None:
            self.t_origin = int(events["t"][0])
            self.next_end = self.t_origin + self.window_us
        start = self.next_end - self.window_us
        if events["t"][0] < start:
            late = events["t"] < start
            self.late_events += int(late.sum())
            events = events[~late]
            if not len(events):
                return
        self._buf[side].append(events)
        self._clock[side] = max(self._clock[side], int(events["t"][-1]))

    def advance(self, side: str, t_us: int) -> None:
        """No event of ``side`` earlier than ``t_us`` will come any more."""
        self._clock[side] = max(self._clock[side], int(t_us))

    def ready(self) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
        """(t_start, t_end, left, right) of every window both streams have passed."""
        out = []
        while self.next_end is not None and min(self._clock.values()) >= self.next_end:
            b = self.next_end
            parts = {}
            for side in ("left", "right"):
                ev = np.concatenate(self._buf[side]) if self._buf[side] else np.empty(0, EVENT_DTYPE)
                cut = int(np.searchsorted(ev["t"], b, side="left"))
                parts[side] = ev[:cut]
                self._buf[side] = [ev[cut:]] if cut < len(ev) else []
            out.append((b - self.window_us, b, parts["left"], parts["right"]))
            self.next_end = b + self.window_us
        return out


class LiveStereoSource(Source):
    """A live stereo DAVIS pair: two clock-synchronised cameras, windows cut on their shared clock.

    ``left_serial`` / ``right_serial`` pick the cameras (default: the first two found, sorted by serial).
    CameraNotFoundError when fewer than two cameras (or the named ones) are connected.
    """

    name = "live"

    def __init__(
        self,
        *,
        left_serial: str | None = None,
        right_serial: str | None = None,
        window_us: int = WINDOW_US,
        calib: str | Path | None = None,
        fxb: float = math.nan,
        max_disparity: int = 63,
        record_to: str | Path | None = None,
        poll_sleep_s: float = 0.001,
    ):
        dv = _dv()
        found = sorted(str(d.serialNumber) for d in dv.io.camera.discover())
        if left_serial is None or right_serial is None:
            if len(found) < 2:
                what = "no camera found" if not found else f"found only one camera ({found[0]})"
                raise CameraNotFoundError(
                    f"live stereo input: {what}; connect two synchronised DAVIS cameras "
                    "(and check USB permissions)"
                )
            left_serial = left_serial or found[0]
            right_serial = right_serial or next(s for s in found if s != left_serial)
            log.warning(
                "using camera %s as left and %s as right (pass serials to choose)", left_serial, right_serial
            )
        missing = [s for s in (left_serial, right_serial) if s not in found]
        if missing:
            raise CameraNotFoundError(
                f"live stereo input: camera(s) {missing} not found; connected: {found or 'none'}"
            )
        try:
            self._cams = {
                "left": dv.io.camera.openSync(left_serial),
                "right": dv.io.camera.openSync(right_serial),
            }
            dv.io.camera.synchronizeAnyTwo(self._cams["left"], self._cams["right"])
        except RuntimeError as e:
            raise CameraNotFoundError(
                f"cannot open or synchronise cameras {left_serial}, {right_serial}: {_dv_message(e)}"
            ) from None
        sizes = {s: tuple(c.getEventResolution()) for s, c in self._cams.items()}
        if sizes["left"] != sizes["right"]:
            raise InputError(f"left/right size mismatch: {sizes['left']} vs {sizes['right']}")
        self.sensor_size = sizes["left"]
        self.serials = (left_serial, right_serial)
        self.window_us = int(window_us)
        self.max_disparity = max_disparity
        self._rectify = _Rectifier(calib, self.sensor_size)
        self.fxb = float(fxb) if not math.isnan(fxb) else (self._rectify.fxb or math.nan)
        self._recorder = (
            StereoAedatRecorder(record_to, self.sensor_size, left_name=left_serial, right_name=right_serial)
            if record_to
            else None
        )
        self._windower = StereoWindower(self.window_us)
        self._sleep = poll_sleep_s
        self._index = 0

    def __len__(self) -> int:
        raise TypeError("a live source has no length")

    def __iter__(self) -> Iterator[StereoWindow]:
        # When a poll brings nothing, each camera's clock is extrapolated from its last event with the host
        # clock (no assumption that camera time is epoch time), less a slack for events still in transit.
        slack_us = 2 * self.window_us
        last: dict[str, tuple[int, int]] = {}  # side -> (camera time of the last event, host time then)
        while self._cams:
            got = False
            now = time.monotonic_ns() // 1000
            for side, cam in self._cams.items():
                if not cam.isRunning():
                    raise InputError(f"{side} camera {self.serials[side == 'right']} stopped (disconnected?)")
                store = cam.getNextEventBatch()
                if store is not None and store.size():
                    got = True
                    if self._recorder is not None:
                        self._recorder.write_store(side, store)
                    ev = store_to_events(store)
                    self._windower.push(side, ev)
                    last[side] = (int(ev["t"][-1]), now)
            if not got and last:
                ref = max(last.values())
                for side in self._cams:
                    cam_t, host_t = last.get(side, ref)
                    self._windower.advance(side, cam_t + (now - host_t) - slack_us)
                time.sleep(self._sleep)
            for a, b, left, right in self._windower.ready():
                t0 = self._windower.t_origin
                left, right = self._rectify("left", left.copy()), self._rectify("right", right.copy())
                left["t"] -= t0
                right["t"] -= t0
                yield StereoWindow(
                    left=left,
                    right=right,
                    t_start_us=a - t0,
                    t_end_us=b - t0,
                    sensor_size=self.sensor_size,
                    index=self._index,
                    meta={"t_end_abs_us": b, "t0_us": t0, "late_events": self._windower.late_events},
                )
                self._index += 1

    def close(self) -> None:
        self._cams = {}
        if self._recorder is not None:
            self._recorder.close()
            self._recorder = None
