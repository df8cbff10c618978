"""Recording the output: the disparity as a colour video (OpenCV) and the raw arrays as .npz or .h5.

The worker thread writes every window (not only the drawn ones), so a recording is lossless whatever
the display does. ``read_recording`` reads the arrays back (tests, notebooks).
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from app.render import colorize
from eventstereo.errors import InputError

ARRAY_SUFFIXES = (".npz", ".h5")


class Recorder:
    """Writes ``<stem>.avi`` (MJPG colour video of the disparity, 0..max_disparity px through ``lut``)
    and ``<stem>.npz`` or ``<stem>.h5`` (disparity (N, H, W) float32, t_end_us (N,), gt when present).
    An .h5 recording is appended to window by window (long runs stay flat in memory); an .npz one is
    held in memory and written on ``close``.
    """

    def __init__(self, path: str | Path, max_disparity: float, lut: np.ndarray, fps: float = 20.0):
        path = Path(path)
        if path.suffix not in ARRAY_SUFFIXES:
            raise InputError(f"recording {path}: the array file must end in .npz or .h5")
        if not path.parent.is_dir():
            raise InputError(f"recording {path}: folder {path.parent} does not exist")
        self.path, self.video_path = path, path.with_suffix(".avi")
        self.max_disparity, self.lut, self.fps = float(max_disparity), lut, fps
        self._video: cv2.VideoWriter | None = None
        self._disp: list[np.ndarray] = []
        self._gt: list[np.ndarray] = []
        self._t: list[int] = []
        self._lock = threading.Lock()
        self._h5 = None
        self.frames = 0

    def write(self, disparity: np.ndarray, gt: np.ndarray | None, t_end_us: int) -> None:
        with self._lock:
            if self._video is None:
                h, w = disparity.shape
                self._video = cv2.VideoWriter(str(self.video_path), cv2.VideoWriter_fourcc(*"MJPG"),
                                              self.fps, (w, h))
                if not self._video.isOpened():
                    raise InputError(f"recording {self.video_path}: OpenCV cannot write this video")
            self._video.write(colorize(disparity, self.lut, 0.0, self.max_disparity))
            self.frames += 1
            if self.path.suffix == ".h5":
                self._append_h5(disparity, gt, t_end_us)
                return
            self._disp.append(disparity.astype(np.float32, copy=False))
            if gt is not None:
                self._gt.append(gt.astype(np.float32, copy=False))
            self._t.append(int(t_end_us))

    def _append_h5(self, disparity: np.ndarray, gt: np.ndarray | None, t_end_us: int) -> None:
        import h5py

        if self._h5 is None:
            self._h5 = h5py.File(self.path, "w")
            h, w = disparity.shape
            for name in ("disparity",) + (("gt",) if gt is not None else ()):
                self._h5.create_dataset(name, (0, h, w), np.float32, maxshape=(None, h, w),
                                        chunks=(1, h, w), compression="gzip")
            self._h5.create_dataset("t_end_us", (0,), np.int64, maxshape=(None,))
        n = self._h5["t_end_us"].shape[0]
        arrays = {"disparity": disparity, "t_end_us": np.int64(t_end_us)}
        if gt is not None and "gt" in self._h5:
            arrays["gt"] = gt
        for name, v in arrays.items():
            d = self._h5[name]
            d.resize(n + 1, axis=0)
            d[n] = v

    def close(self) -> None:
        """Finish the video and write the arrays (safe to call twice)."""
        with self._lock:
            if self._video is not None:
                self._video.release()
                self._video = None
            if self._h5 is not None:
                self._h5.close()
                self._h5 = None
            if not self._t:
                return
            arrays = {"disparity": np.stack(self._disp), "t_end_us": np.asarray(self._t, np.int64)}
            if len(self._gt) == len(self._t):
                arrays["gt"] = np.stack(self._gt)
            np.savez_compressed(self.path, **arrays)
            self._disp, self._gt, self._t = [], [], []


def read_recording(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a recording written by Recorder."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    import h5py

    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}
