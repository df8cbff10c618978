"""Write small or large recordings in MVSEC's file layout (tests and `eventstereo bench sources`).

One writer for both, so the layout the reader is tested against is the layout the benchmark measures:
``{seq}_data.hdf5`` with ``davis/{left,right}/events`` float64 (N, 4) [x, y, t (ROS seconds), p +-1],
``image_raw`` uint8 (M, 260, 346) with ``image_raw_ts`` / ``image_raw_event_inds`` and ``imu`` /
``imu_ts``; ``{seq}_gt.hdf5`` with ``davis/left/depth_image_rect`` float32 (F, 260, 346), NaN where no
depth, and its ``_ts``, plus ``depth_image_raw`` and ``blended_image_rect``; calibration as the
``{scene}_{left,right}_{x,y}_map.txt`` tables and ``camchain-imucam-{scene}.yaml``, loose, in
``{scene}_calib/`` or zipped as ``{scene}_calib.zip``. (Pose and odometry datasets are not written.)
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from eventstereo.sources.calib_yaml import dump_yaml
from eventstereo.sources.mvsec import FXB, RectifyMaps, maps_from_camchain, scene_of

T_ROS0 = 1_506_117_898.0
"""A ROS-epoch start time (seconds) like MVSEC's, so time arithmetic meets the same float64 precision."""

H, W = 260, 346


def example_camchain(fxb: float = FXB["indoor_flying"]) -> dict:
    """A kalibr camchain shaped like MVSEC's indoor_flying one (equidistant DAVIS346 pair, rectified to
    fx = 199.653 px, fxB from REFERENCE §2); the distortion values are illustrative."""
    f, cx, cy = 199.6530123165822, 177.43276376280926, 126.81215684365904

    def cam(intr, dist, r, tx):
        return {
            "camera_model": "pinhole",
            "distortion_coeffs": dist,
            "distortion_model": "equidistant",
            "intrinsics": intr,
            "resolution": [W, H],
            "rectification_matrix": r,
            "projection_matrix": [[f, 0.0, cx, tx], [0.0, f, cy, 0.0], [0.0, 0.0, 1.0, 0.0]],
        }

    c = np.cos(0.01)
    s = np.sin(0.01)
    c0 = cam(
        [226.38, 226.15, 173.65, 133.73],
        [-0.048, 0.0113, -0.0554, 0.0215],
        [[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]],
        0.0,
    )
    c1 = cam(
        [226.02, 225.76, 174.51, 124.42],
        [-0.0462, 0.0101, -0.0539, 0.0203],
        [[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]],
        -fxb,
    )
    c1["T_cn_cnm1"] = [
        [1.0, 0.0, 0.0, -0.09988],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
    c0["rostopic"], c1["rostopic"] = "/davis/left/image_raw", "/davis/right/image_raw"
    return {"cam0": c0, "cam1": c1}


def write_calibration(
    root: str | Path,
    scene: str,
    *,
    camchain: dict | None = None,
    maps: RectifyMaps | None = None,
    layout: str = "dir",
    txt: bool = True,
    yaml: bool = True,
) -> Path:
    """Write a scene's calibration files. layout: 'flat' (into root), 'dir' ({scene}_calib/), 'zip'.

    ``maps`` defaults to the maps computed from ``camchain`` (which defaults to example_camchain()).
    Returns the directory or zip written.
    """
    root = Path(root)
    camchain = camchain if camchain is not None else example_camchain()
    files: dict[str, bytes] = {}
    if txt:
        maps = maps if maps is not None else maps_from_camchain(camchain, "example camchain")
        for side in ("left", "right"):
            for ax in ("x", "y"):
                arr = getattr(maps, f"{side}_{ax}")
                lines = "\n".join(" ".join(f"{v:.6f}" for v in row) for row in np.asarray(arr, np.float64))
                files[f"{scene}_{side}_{ax}_map.txt"] = (lines + "\n").encode()
    if yaml:
        files[f"camchain-imucam-{scene}.yaml"] = dump_yaml(camchain).encode()
    if layout == "zip":
        root.mkdir(parents=True, exist_ok=True)
        out = root / f"{scene}_calib.zip"
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in files.items():
                zf.writestr(f"{scene}_calib/{name}", data)
        return out
    out = root if layout == "flat" else root / f"{scene}_calib"
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (out / name).write_bytes(data)
    return out


def write_sequence(
    root: str | Path,
    sequence: str,
    left: np.ndarray,
    right: np.ndarray,
    *,
    depth: np.ndarray | None = None,
    depth_ts: np.ndarray | None = None,
    n_images: int = 2,
    n_imu: int = 4,
) -> tuple[Path, Path | None]:
    """Write ``{sequence}_data.hdf5`` (and ``_gt.hdf5`` when depth is given) from (N, 4) event tables.

    Events are [x, y, t seconds, p in {-1, +1}] as MVSEC stores them.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    data_path = root / f"{sequence}_data.hdf5"
    with h5py.File(data_path, "w") as f:
        for side, ev in (("left", left), ("right", right)):
            g = f.create_group(f"davis/{side}")
            g.create_dataset("events", data=np.asarray(ev, np.float64).reshape(-1, 4))
            _write_aux(g, np.asarray(ev, np.float64).reshape(-1, 4), n_images, n_imu)
    gt_path = None
    if depth is not None:
        gt_path = root / f"{sequence}_gt.hdf5"
        write_gt(gt_path, depth, depth_ts)
    return data_path, gt_path


def _write_aux(g: h5py.Group, ev: np.ndarray, n_images: int, n_imu: int) -> None:
    t_a = ev[0, 2] if len(ev) else T_ROS0
    t_b = ev[-1, 2] if len(ev) else T_ROS0 + 1
    img_ts = np.linspace(t_a, t_b, n_images)
    g.create_dataset("image_raw", data=np.zeros((n_images, H, W), np.uint8), chunks=(1, H, W))
    g.create_dataset("image_raw_ts", data=img_ts)
    inds = np.searchsorted(ev[:, 2], img_ts).astype(np.int64) if len(ev) else np.zeros(n_images, np.int64)
    g.create_dataset("image_raw_event_inds", data=inds)
    g.create_dataset("imu", data=np.zeros((n_imu, 6), np.float64))
    g.create_dataset("imu_ts", data=np.linspace(t_a, t_b, n_imu))


def write_gt(path: str | Path, depth: np.ndarray, depth_ts: np.ndarray, *, compress: bool = True) -> Path:
    """The GT file; ``compress`` gzips the depth frames (small test files), else they are stored plain."""
    depth = np.asarray(depth, np.float32)
    with h5py.File(path, "w") as f:
        g = f.create_group("davis/left")
        kw = dict(chunks=(1,) + depth.shape[1:])
        if compress:
            kw.update(compression="gzip", compression_opts=1)
        g.create_dataset("depth_image_rect", data=depth, **kw)
        g.create_dataset("depth_image_rect_ts", data=np.asarray(depth_ts, np.float64))
        g.create_dataset("depth_image_raw", data=depth, **kw)
        g.create_dataset("depth_image_raw_ts", data=np.asarray(depth_ts, np.float64))
        g.create_dataset("blended_image_rect", data=np.zeros(depth.shape, np.uint8), chunks=kw["chunks"])
        g.create_dataset("blended_image_rect_ts", data=np.asarray(depth_ts, np.float64))
    return Path(path)


@dataclass
class Recording:
    root: Path
    sequence: str
    data_path: Path
    gt_path: Path | None
    n_events: tuple[int, int]
    n_frames: int


def make_recording(
    root: str | Path,
    sequence: str = "indoor_flying1",
    *,
    duration_s: float = 10.0,
    rate: float = 500_000.0,
    depth_hz: float = 20.0,
    seed: int = 0,
    calib: str | None = "dir",
    write_rows: int = 1 << 20,
) -> Recording:
    """A random recording at ``rate`` events/s per camera, depth at ``depth_hz`` (planes with NaN holes),
    written in chunks so long recordings never sit in memory whole. ``calib`` is a write_calibration
    layout, or None to write no calibration."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = int(rate * duration_s)
    data_path = root / f"{sequence}_data.hdf5"
    with h5py.File(data_path, "w") as f:
        for side in ("left", "right"):
            g = f.create_group(f"davis/{side}")
            ds = g.create_dataset("events", shape=(n, 4), dtype=np.float64)
            # times: sorted uniform draws over the duration, generated in order chunk by chunk
            edges = np.linspace(0.0, duration_s, max(1, n // write_rows) + 1)
            counts = np.diff(np.round(np.linspace(0, n, len(edges))).astype(np.int64))
            row = 0
            for (a, b), c in zip(zip(edges[:-1], edges[1:]), counts):
                block = np.empty((c, 4), np.float64)
                block[:, 0] = rng.integers(0, W, c)
                block[:, 1] = rng.integers(0, H, c)
                block[:, 2] = T_ROS0 + np.sort(rng.uniform(a, b, c))
                block[:, 3] = rng.choice([-1.0, 1.0], c)
                ds[row : row + c] = block
                row += c
            _write_aux(g, np.array([[0, 0, T_ROS0, 1], [0, 0, T_ROS0 + duration_s, 1]]), 2, 4)
    n_frames = int(duration_s * depth_hz)
    ts = T_ROS0 + (np.arange(n_frames) + 1) / depth_hz
    yy, xx = np.mgrid[0:H, 0:W]
    depth = np.empty((n_frames, H, W), np.float32)
    for k in range(n_frames):
        d = 1.0 + 0.5 * np.sin(0.02 * xx + 0.1 * k) + 0.004 * yy
        d[(xx + yy + k) % 7 == 0] = np.nan
        depth[k] = d
    gt_path = write_gt(root / f"{sequence}_gt.hdf5", depth, ts, compress=False)
    if calib is not None:
        write_calibration(root, scene_of(sequence), layout=calib)
    return Recording(root, sequence, data_path, gt_path, (n, n), n_frames)


def make_split_recordings(
    root: str | Path,
    sequences: tuple[str, ...] = ("indoor_flying1", "indoor_flying2", "indoor_flying3"),
    *,
    rate: float = 300.0,
    depth_m: float = 2.0,
    seed: int = 0,
) -> Path:
    """Tiny stand-ins for the MVSEC sequences of splits 1 and 3, in MVSEC's layout, cheap to write.

    Each sequence gets the depth frames its split ranges need (at 20 Hz), a constant depth plane (one
    fill value: the file stays small), ``rate`` random events per second per camera and the example
    calibration. Used by the tests that run the tools' MVSEC recipe end to end. Returns root.
    """
    from eventstereo.sources.mvsec import FRAME_FILTERS

    root = Path(root)
    rng = np.random.default_rng(seed)
    scenes = set()
    for seq in sequences:
        n_frames = max(b for _, b in FRAME_FILTERS[seq].values()) + 1
        seconds = n_frames / 20.0
        sides = []
        for _ in ("left", "right"):
            n = int(rate * seconds)
            ev = np.empty((n, 4))
            ev[:, 0] = rng.integers(0, W, n)
            ev[:, 1] = rng.integers(0, H, n)
            ev[:, 2] = T_ROS0 + np.sort(rng.uniform(0.0, seconds, n))
            ev[:, 3] = rng.choice([-1.0, 1.0], n)
            sides.append(ev)
        write_sequence(root, seq, *sides)
        with h5py.File(root / f"{seq}_gt.hdf5", "w") as f:  # unwritten chunks read as the fill value
            f.create_dataset("davis/left/depth_image_rect", shape=(n_frames, H, W), dtype=np.float32,
                             chunks=(1, H, W), fillvalue=depth_m)
            f["davis/left/depth_image_rect_ts"] = T_ROS0 + 0.05 * (np.arange(n_frames) + 1)
        scenes.add(scene_of(seq))
    for scene in sorted(scenes):
        write_calibration(root, scene, layout="dir")
    return root
