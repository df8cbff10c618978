"""Write small recordings in DSEC's layout (used by the tests; see dsec.py for the layout).

``events.h5`` gets DSEC's datasets and dtypes (``events/x, y`` uint16, ``p`` uint8, ``t`` uint32 us
relative to ``t_offset`` int64, ``ms_to_idx`` uint64), Blosc-compressed through hdf5plugin as DSEC ships
them; ``rectify_map.h5`` a float32 (H, W, 2) ``rectify_map``; disparity 16-bit PNGs (value = 256 d,
0 = invalid) and ``timestamps.txt``; ``calibration/cam_to_cam.yaml`` with ``disparity_to_depth``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import hdf5plugin
import numpy as np

from eventstereo.sources.calib_yaml import dump_yaml


def ms_to_idx(t_rel: np.ndarray, duration_ms: int | None = None) -> np.ndarray:
    """Index of the first event at or after each millisecond (DSEC's definition)."""
    t_rel = np.asarray(t_rel, np.int64)
    n_ms = int(duration_ms if duration_ms is not None else (t_rel[-1] // 1000 + 1 if len(t_rel) else 1))
    return np.searchsorted(t_rel, np.arange(n_ms, dtype=np.int64) * 1000, side="left").astype(np.uint64)


def write_events_h5(path: str | Path, x, y, t_abs, p, t_offset: int) -> Path:
    """One camera's events.h5 from absolute microsecond times (sorted)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t_rel = np.asarray(t_abs, np.int64) - int(t_offset)
    comp = hdf5plugin.Blosc(cname="zstd", clevel=1, shuffle=hdf5plugin.Blosc.SHUFFLE)
    with h5py.File(path, "w") as f:
        g = f.create_group("events")
        g.create_dataset("x", data=np.asarray(x, np.uint16), **comp)
        g.create_dataset("y", data=np.asarray(y, np.uint16), **comp)
        g.create_dataset("p", data=np.asarray(p, np.uint8), **comp)
        g.create_dataset("t", data=t_rel.astype(np.uint32), **comp)
        f.create_dataset("ms_to_idx", data=ms_to_idx(t_rel), **comp)
        f.create_dataset("t_offset", data=np.int64(t_offset))
    return path


def write_rectify_map(path: str | Path, rect: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("rectify_map", data=np.asarray(rect, np.float32))
    return path


def identity_map(width: int = 640, height: int = 480, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    """A rectify map that shifts every pixel by (dx, dy)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([xx + dx, yy + dy], -1)


def write_disparity(seq_dir: str | Path, disparities: list[np.ndarray], timestamps: list[int]) -> Path:
    """disparity/event/%06d.png (every second index, as DSEC's 10 Hz GT) and timestamps.txt."""
    d = Path(seq_dir) / "disparity"
    (d / "event").mkdir(parents=True, exist_ok=True)
    for i, disp in enumerate(disparities):
        v = np.where(np.isfinite(disp), np.round(np.asarray(disp, np.float64) * 256), 0)
        cv2.imwrite(str(d / "event" / f"{2 * i:06d}.png"), np.clip(v, 0, 65535).astype(np.uint16))
    (d / "timestamps.txt").write_text("".join(f"{int(t)}\n" for t in timestamps))
    return d


def write_calibration(
    seq_dir: str | Path,
    fx: float = 569.7632987676102,
    baseline_m: float = 0.59875,
    cx: float = 335.0999870300293,
    cy: float = 221.23667526245117,
) -> Path:
    """calibration/cam_to_cam.yaml with intrinsics of camRect0 and Q = disparity_to_depth.cams_03."""
    d = Path(seq_dir) / "calibration"
    d.mkdir(parents=True, exist_ok=True)
    q = [[1.0, 0.0, 0.0, -cx], [0.0, 1.0, 0.0, -cy], [0.0, 0.0, 0.0, fx], [0.0, 0.0, 1.0 / baseline_m, 0.0]]
    calib = {
        "intrinsics": {"camRect0": {"camera_matrix": [fx, fx, cx, cy], "resolution": [640, 480]}},
        "disparity_to_depth": {"cams_03": q},
    }
    (d / "cam_to_cam.yaml").write_text(dump_yaml(calib))
    return d / "cam_to_cam.yaml"
