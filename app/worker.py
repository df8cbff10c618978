"""The session's worker thread: iterates ``StreamSession.run()`` off the GUI thread (a napari-style
generator worker) and hands each prepared Frame over latest-wins, so a slow model never builds a
backlog and the GUI thread, polling from a timer, always draws the newest window."""

from __future__ import annotations

import logging
import threading

from PySide6 import QtCore

from app.render import Frame, FrameMaker
from eventstereo.errors import EventStereoError
from eventstereo.runtime.session import StreamSession

log = logging.getLogger(__name__)


class LatestBox:
    """A one-slot hand-off: ``put`` replaces what was not taken yet (counted as skipped)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._frame: Frame | None = None
        self.skipped = 0

    def put(self, frame: Frame) -> None:
        with self._lock:
            if self._frame is not None:
                self.skipped += 1
            self._frame = frame

    def take(self) -> Frame | None:
        with self._lock:
            frame, self._frame = self._frame, None
            return frame


def describe_error(e: BaseException) -> str:
    """One line for the window's message area: our errors as they are, others with their type."""
    if isinstance(e, EventStereoError):
        return str(e)
    return f"{type(e).__name__}: {e}"


class SessionWorker(QtCore.QThread):
    """Runs one session until its source ends, ``max_windows``, or ``stop()``.

    Each result becomes a Frame (``maker``), goes to ``recorder`` when one is set (every window, so a
    recording is lossless) and into ``box``. ``failed`` carries a one-line message to the GUI thread.
    """

    failed = QtCore.Signal(str)

    def __init__(self, session: StreamSession, maker: FrameMaker, box: LatestBox,
                 max_windows: int | None = None):
        super().__init__()
        self.session, self.maker, self.box, self.max_windows = session, maker, box, max_windows
        self.recorder = None
        self.windows = 0
        self._results = None

    def start(self) -> None:  # noqa: D102 - QThread.start, with the run begun in the caller's thread
        # begun here, in the GUI thread, so a stop() right after start() cannot be undone by the run
        self._results = self.session.run(max_windows=self.max_windows)
        super().start()

    def run(self) -> None:
        try:
            for r in self._results:
                frame = self.maker(r)
                recorder = self.recorder
                if recorder is not None:
                    recorder.write(r.disparity, r.gt, r.window.t_end_us)
                self.windows += 1
                self.box.put(frame)
        except Exception as e:  # shown in the window; the app stays up and can open something else
            log.debug("session failed", exc_info=True)
            self.failed.emit(describe_error(e))

    def stop(self) -> None:
        """End the run and wait for the thread (the session's stop wakes a paused run)."""
        self.session.stop()
        self.wait(10_000)
