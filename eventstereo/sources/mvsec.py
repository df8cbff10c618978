"""MVSEC stereo source: lazy hdf5 reading, rectification, GT disparity, and the literature's splits.

REFERENCE §2 is the contract: one example per depth frame, holding the events of the 50 ms before the
depth timestamp, rectified by the x/y maps, rounded, and dropped when they leave the sensor; GT
disparity = fxB / depth with inf where depth is missing. ``gt_convention="ddes"`` reads GT and events
the way the published tables were scored instead (1/7 px steps, see ``gt_convention.py``). The event
arrays are never loaded whole: a window's rows are found by binary search on the time column (reading
single boundary rows, then one block of rows), and blocks are cached so sequential replay reads every
row once.
"""

from __future__ import annotations

import io
import logging
import random
import re
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import h5py
import numba
import numpy as np

from eventstereo.errors import InputError
from eventstereo.events.types import EVENT_DTYPE, report_outside
from eventstereo.events.window import StereoWindow
from eventstereo.sources.base import IndexedSource, WindowRuns
from eventstereo.sources.calib_yaml import parse_yaml
from eventstereo.sources.gt_convention import check_gt_convention, first_event_us, gt_disparity
from eventstereo.sources.h5util import dataset, open_h5, read_item, read_rows

log = logging.getLogger(__name__)

SENSOR_SIZE = (346, 260)
"""DAVIS346 (W, H)."""

WINDOW_US = 50_000
MAX_DISPARITY = 63

FXB = {"indoor_flying": 19.941772, "outdoor_day": 19.635287, "outdoor_night": 19.651191}
"""Rectified focal length x baseline (px*m) per scene, REFERENCE §2."""

FRAME_FILTERS: dict[str, dict[str, tuple[int, int]]] = {
    "indoor_flying1": {"test": (140, 1200), "train": (80, 1259)},
    "indoor_flying2": {"test": (120, 1420), "train": (160, 1579)},
    "indoor_flying3": {"test": (73, 1615), "train": (125, 1814)},
}
"""Inclusive depth-frame ranges (REFERENCE §2): 'test' frames feed validation + test, 'train' training."""

SPLITS = {
    1: {"train": ("indoor_flying2", "indoor_flying3"), "test": "indoor_flying1"},
    3: {"train": ("indoor_flying1", "indoor_flying2"), "test": "indoor_flying3"},
}
N_VALIDATION = 200

EVENTS_KEY = "davis/{side}/events"
DEPTH_KEY = "davis/left/depth_image_rect"
DEPTH_TS_KEY = "davis/left/depth_image_rect_ts"
IMAGE_KEY = "davis/{side}/image_raw"

MAX_SPAN_S = 1e12
"""Largest time (s) between a stream's first and any other event that the int64 microsecond clock of
the windows represents safely; a stray timestamp within it costs nothing (windows are computed), one
beyond it is an InputError."""

LONG_RECORDING_S = 86_400.0
"""A recording whose events span more than this (a day) is reported: probably a stray timestamp."""

BLOCK_ROWS = 1 << 16
"""Rows per cached block of an events dataset (2 MiB of float64 x 4)."""


def scene_of(sequence: str) -> str:
    """'indoor_flying1' -> 'indoor_flying'."""
    m = re.match(r"^(.*?)(\d+)$", sequence)
    if not m:
        raise InputError(f"MVSEC sequence names end in a number (e.g. indoor_flying1), not {sequence!r}")
    return m.group(1)


# ---------------------------------------------------------------------------------------------- splits


def split_frames(split: int, subset: str) -> list[tuple[str, int]]:
    """(sequence, depth-frame index) of one subset of MVSEC split 1 or 3 (REFERENCE §2).

    train: the training frames of the two training sequences, in frame order. val / test: the test frames
    of the held-out sequence shuffled with ``random.seed(0); random.shuffle``; the first 200 are
    validation, the rest test (kept in that shuffled order).
    """
    if split not in SPLITS:
        raise InputError(f"MVSEC split must be one of {sorted(SPLITS)}, not {split!r}")
    if subset not in ("train", "val", "test"):
        raise InputError(f"MVSEC subset must be train, val or test, not {subset!r}")
    spec = SPLITS[split]
    if subset == "train":
        out = []
        for seq in spec["train"]:
            a, b = FRAME_FILTERS[seq]["train"]
            out += [(seq, f) for f in range(a, b + 1)]
        return out
    seq = spec["test"]
    a, b = FRAME_FILTERS[seq]["test"]
    frames = list(range(a, b + 1))
    random.Random(0).shuffle(frames)  # same permutation as random.seed(0); random.shuffle(frames)
    chosen = frames[:N_VALIDATION] if subset == "val" else frames[N_VALIDATION:]
    return [(seq, f) for f in chosen]


# ---------------------------------------------------------------------------------------- calibration


@dataclass
class RectifyMaps:
    """Rectified (x, y) per raw pixel for both cameras, float32 (H, W); plus fxB when the calibration
    gives it. ``origin`` says which files they came from."""

    left_x: np.ndarray
    left_y: np.ndarray
    right_x: np.ndarray
    right_y: np.ndarray
    fxb: float | None = None
    origin: str = ""

    @property
    def shape(self) -> tuple[int, int]:
        return self.left_x.shape

    def rounded(self, side: str, sensor_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Integer target pixel per raw pixel, -1 where the rectified point leaves the sensor."""
        mx, my = (self.left_x, self.left_y) if side == "left" else (self.right_x, self.right_y)
        return round_maps(mx, my, sensor_size)


def round_maps(mx: np.ndarray, my: np.ndarray, sensor_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Round float maps to pixels; -1 marks raw pixels whose rectified point falls outside the sensor."""
    w, h = sensor_size
    with np.errstate(invalid="ignore"):
        rx, ry = np.rint(mx), np.rint(my)
        ok = np.isfinite(rx) & np.isfinite(ry) & (rx >= 0) & (rx < w) & (ry >= 0) & (ry < h)
    return (np.where(ok, rx, -1).astype(np.int32), np.where(ok, ry, -1).astype(np.int32))


def read_map_txt(data: bytes | str | Path, source: str, shape: tuple[int, int]) -> np.ndarray:
    """Parse one MVSEC map table (whitespace-separated floats, rows = raw y, columns = raw x)."""
    try:
        if isinstance(data, (str, Path)):
            arr = np.loadtxt(data, dtype=np.float64, ndmin=2)
        else:
            arr = np.loadtxt(io.BytesIO(data), dtype=np.float64, ndmin=2)
    except (ValueError, OSError) as e:
        raise InputError(f"not a numeric map table: {str(e).splitlines()[0][:150]}", source=source) from None
    if arr.shape != shape:
        raise InputError(
            f"map table is {arr.shape[0]}x{arr.shape[1]} (rows x cols), expected {shape[0]}x{shape[1]}",
            source=source,
        )
    return arr.astype(np.float32)


def _camera_matrices(
    cam: dict, source: str, name: str
) -> tuple[np.ndarray, np.ndarray, str, tuple[int, int]]:
    try:
        fx, fy, cx, cy = (float(v) for v in cam["intrinsics"])
        dist = np.asarray(cam.get("distortion_coeffs", [0, 0, 0, 0]), np.float64)
        res = tuple(int(v) for v in cam["resolution"])
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"camera '{name}' lacks intrinsics/resolution ({e})", source=source) from None
    model = str(cam.get("distortion_model", "equidistant"))
    if model == "equidistant" and dist.size != 4:
        raise InputError(
            f"camera '{name}': equidistant distortion needs 4 coefficients, got {dist.size}", source=source
        )
    k = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], np.float64)
    return k, dist, model, res


def maps_from_camchain(calib: dict, source: str) -> RectifyMaps:
    """Rectification maps from a kalibr camchain (MVSEC's ``camchain-imucam-*.yaml``).

    Uses the file's ``rectification_matrix`` / ``projection_matrix`` when present (MVSEC's own
    rectification), else computes them with OpenCV's fisheye stereoRectify from ``T_cn_cnm1``.
    Equidistant cameras use ``cv2.fisheye.undistortPoints``; radtan ones ``cv2.undistortPoints``.
    """
    if not isinstance(calib, dict) or "cam0" not in calib or "cam1" not in calib:
        raise InputError("camchain needs 'cam0' and 'cam1' entries", source=source)
    c0, c1 = calib["cam0"], calib["cam1"]
    k0, d0, m0, res0 = _camera_matrices(c0, source, "cam0")
    k1, d1, m1, res1 = _camera_matrices(c1, source, "cam1")
    if res0 != res1:
        raise InputError(f"left/right resolutions differ: {res0} vs {res1}", source=source)
    w, h = res0
    if all(key in c for c in (c0, c1) for key in ("rectification_matrix", "projection_matrix")):
        r0, r1 = (np.asarray(c["rectification_matrix"], np.float64).reshape(3, 3) for c in (c0, c1))
        p0, p1 = (np.asarray(c["projection_matrix"], np.float64).reshape(3, 4) for c in (c0, c1))
    else:
        if "T_cn_cnm1" not in c1:
            raise InputError(
                "cam1 needs 'T_cn_cnm1' (or both cameras a rectification_matrix and "
                "projection_matrix) to rectify",
                source=source,
            )
        t = np.asarray(c1["T_cn_cnm1"], np.float64).reshape(4, 4)
        if m0 == "equidistant":
            r0, r1, p0, p1, _ = cv2.fisheye.stereoRectify(
                k0, d0, k1, d1, (w, h), t[:3, :3], t[:3, 3], cv2.CALIB_ZERO_DISPARITY
            )
        else:
            r0, r1, p0, p1, *_ = cv2.stereoRectify(
                k0, d0, k1, d1, (w, h), t[:3, :3], t[:3, 3], flags=cv2.CALIB_ZERO_DISPARITY, alpha=0
            )
    grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)), -1)
    pts = grid.reshape(-1, 1, 2)
    out = []
    for k, d, model, r, p in ((k0, d0, m0, r0, p0), (k1, d1, m1, r1, p1)):
        if model == "equidistant":
            und = cv2.fisheye.undistortPoints(pts, k, d.reshape(4, 1), R=r, P=p)
        elif model in ("radtan", "plumb_bob"):
            und = cv2.undistortPoints(pts, k, d, R=r, P=p)
        else:
            raise InputError(f"unsupported distortion model {model!r}", source=source)
        und = und.reshape(h, w, 2).astype(np.float32)
        out += [und[..., 0], und[..., 1]]
    fxb = abs(float(p1[0, 3])) if abs(float(p1[0, 3])) > 0 else None
    return RectifyMaps(*out, fxb=fxb, origin=source)


def _calib_locations(root: Path, scene: str) -> list[Path]:
    dirs = [root, root / f"{scene}_calib", root / scene, root / scene / f"{scene}_calib"]
    return [d for d in dirs if d.is_dir()]


def load_calibration(root: str | Path, scene: str, shape: tuple[int, int] = (260, 346)) -> RectifyMaps:
    """Find the scene's maps as MVSEC distributes them: ``{scene}_{left,right}_{x,y}_map.txt`` (loose, in
    ``{scene}_calib/`` or inside ``{scene}_calib.zip``); else build them from
    ``camchain-imucam-{scene}.yaml``. InputError listing where it looked when neither is there."""
    root = Path(root)
    names = [f"{scene}_{side}_{ax}_map.txt" for side in ("left", "right") for ax in ("x", "y")]
    yaml_name = f"camchain-imucam-{scene}.yaml"
    looked: list[str] = []
    for d in _calib_locations(root, scene):
        looked.append(str(d))
        if all((d / n).is_file() for n in names):
            maps = [read_map_txt(d / n, str(d / n), shape) for n in names]
            fxb = None
            if (d / yaml_name).is_file():
                fxb = _fxb_from_yaml_text((d / yaml_name).read_text(), str(d / yaml_name))
            return RectifyMaps(*maps, fxb=fxb, origin=str(d))
        partial = [n for n in names if (d / n).is_file()]
        if partial and len(partial) < 4:
            raise InputError(
                f"incomplete map files: have {partial}, missing {[n for n in names if n not in partial]}",
                source=str(d),
            )
    for d in _calib_locations(root, scene):
        z = d / f"{scene}_calib.zip"
        if z.is_file():
            looked.append(str(z))
            return _calibration_from_zip(z, names, yaml_name, shape)
    for d in _calib_locations(root, scene):
        if (d / yaml_name).is_file():
            log.info(
                "no MVSEC map tables for %s; building maps from %s (OpenCV fisheye)", scene, d / yaml_name
            )
            text = (d / yaml_name).read_text()
            return maps_from_camchain(parse_yaml(text, str(d / yaml_name)), str(d / yaml_name))
    raise InputError(
        f"no calibration for scene '{scene}': expected {names[0]} (and the other 3 maps) or "
        f"{yaml_name} or {scene}_calib.zip in one of {looked or [str(root)]}",
        source=str(root),
    )


def _fxb_from_yaml_text(text: str, source: str) -> float | None:
    try:
        calib = parse_yaml(text, source)
        p1 = np.asarray(calib["cam1"]["projection_matrix"], np.float64).reshape(3, 4)
        return abs(float(p1[0, 3])) or None
    except (InputError, KeyError, TypeError, ValueError):
        return None


def _calibration_from_zip(z: Path, names: list[str], yaml_name: str, shape: tuple[int, int]) -> RectifyMaps:
    try:
        with zipfile.ZipFile(z) as zf:
            members = {Path(m).name: m for m in zf.namelist()}
            if all(n in members for n in names):
                maps = [read_map_txt(zf.read(members[n]), f"{z}:{n}", shape) for n in names]
                fxb = None
                if yaml_name in members:
                    fxb = _fxb_from_yaml_text(zf.read(members[yaml_name]).decode(), f"{z}:{yaml_name}")
                return RectifyMaps(*maps, fxb=fxb, origin=str(z))
            if yaml_name in members:
                src = f"{z}:{yaml_name}"
                return maps_from_camchain(parse_yaml(zf.read(members[yaml_name]).decode(), src), src)
            raise InputError(f"zip holds neither the map tables {names} nor {yaml_name}", source=str(z))
    except zipfile.BadZipFile as e:
        raise InputError(f"corrupt zip ({e})", source=str(z)) from None


# ------------------------------------------------------------------------------------- event reading


@numba.njit(cache=True, nogil=True)
def _times_us(rows, t0):
    out = np.empty(rows.shape[0], np.int64)
    for i in range(rows.shape[0]):
        out[i] = np.int64(np.rint((rows[i, 2] - t0) * 1e6))
    return out


@numba.njit(cache=True, nogil=True)
def _convert_rows(rows, lo, hi, t0, rx, ry, rectify, out, k):
    """Rows [lo, hi) of an MVSEC (N, 4) block -> EVENT_DTYPE records from out[k]; returns the new k and
    how many rows lay outside the sensor or had a NaN x, y or p (compared as floats before the cast, so
    NaN is outside). Rows that rectification maps out of the image are dropped but not counted."""
    h, w = rx.shape
    outside = 0
    for i in range(lo, hi):
        xf = np.rint(rows[i, 0])
        yf = np.rint(rows[i, 1])
        if not (xf >= 0 and xf < w and yf >= 0 and yf < h and rows[i, 3] == rows[i, 3]):
            outside += 1
            continue
        xi = np.int64(xf)
        yi = np.int64(yf)
        if rectify:
            xo = rx[yi, xi]
            yo = ry[yi, xi]
            if xo < 0:
                continue
        else:
            xo = xi
            yo = yi
        out[k]["x"] = xo
        out[k]["y"] = yo
        out[k]["t"] = np.int64(np.rint((rows[i, 2] - t0) * 1e6))
        out[k]["p"] = 1 if rows[i, 3] > 0 else 0
        k += 1
    return k, outside


class EventColumn:
    """Lazy time-indexed access to one MVSEC ``davis/<side>/events`` dataset (N, 4: x, y, t s, p)."""

    def __init__(self, ds: h5py.Dataset, t0: float, *, block_rows: int = BLOCK_ROWS, cache_blocks: int = 4):
        self.ds = ds
        self.n = int(ds.shape[0])
        self.t0 = float(t0)
        self.block_rows = block_rows
        self._bounds: dict[int, int] = {}
        self._blocks: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._cache_blocks = cache_blocks

    @property
    def where(self) -> str:
        return f"'{self.ds.name.lstrip('/')}'"

    def _block(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows of block k and their times in us from t0 (cached, LRU)."""
        hit = self._blocks.get(k)
        if hit is not None:
            self._blocks.move_to_end(k)
            return hit
        lo = k * self.block_rows
        blk = np.ascontiguousarray(
            read_rows(self.ds, lo, min(lo + self.block_rows, self.n), what=self.where), dtype=np.float64
        )
        t = blk[:, 2]
        if not np.isfinite(t).all():
            i = lo + int(np.flatnonzero(~np.isfinite(t))[0])
            raise InputError(f"{self.where} holds a non-finite time at row {i}", source=self.ds.file.filename)
        times = _times_us(blk, self.t0)
        bad = np.flatnonzero(np.diff(times) < 0)
        if len(bad):
            raise InputError(
                f"{self.where} is not sorted by time at row {lo + int(bad[0]) + 1}",
                source=self.ds.file.filename,
            )
        self._blocks[k] = (blk, times)
        if len(self._blocks) > self._cache_blocks:
            self._blocks.popitem(last=False)
        return blk, times

    def _bound(self, k: int) -> int:
        """Time (us from t0) of the first row of block k."""
        v = self._bounds.get(k)
        if v is None:
            hit = self._blocks.get(k)
            if hit is not None:
                v = int(hit[1][0])
            else:
                raw = float(read_item(self.ds, (k * self.block_rows, 2), what=self.where))
                v = int(_times_us(np.array([[0.0, 0.0, raw, 0.0]]), self.t0)[0])
            self._bounds[k] = v
        return v

    def index_of(self, t_us: int) -> int:
        """First row whose time (us from t0) is >= t_us."""
        if self.n == 0:
            return 0
        nb = (self.n + self.block_rows - 1) // self.block_rows
        if self._bound(0) >= t_us:
            return 0
        lo, hi = 0, nb - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._bound(mid) < t_us:
                lo = mid
            else:
                hi = mid - 1
        times = self._block(lo)[1]
        return lo * self.block_rows + int(np.searchsorted(times, t_us, side="left"))

    def events(
        self, t_start_us: int, t_end_us: int, rx: np.ndarray, ry: np.ndarray, rectify: bool = True, *,
        where: str = "the window",
    ) -> np.ndarray:
        """EVENT_DTYPE events with t in [t_start_us, t_end_us), rectified and rounded. When every event of
        the span lies outside the sensor (or has a NaN x, y or p), a warning names ``where``."""
        lo, hi = self.index_of(t_start_us), self.index_of(t_end_us)
        out = np.empty(max(hi - lo, 0), EVENT_DTYPE)
        k, row, outside = 0, lo, 0
        while row < hi:
            b = row // self.block_rows
            blk = self._block(b)[0]
            a = row - b * self.block_rows
            e = min(hi - b * self.block_rows, blk.shape[0])
            k, n_out = _convert_rows(blk, a, e, self.t0, rx, ry, rectify, out, k)
            outside += n_out
            row = b * self.block_rows + e
        h, w = rx.shape
        report_outside(len(out), len(out) - outside, (w, h), where=where, source=self.ds.file.filename)
        return out[:k]

    def time_us(self, row: int) -> int:
        """Time of one row in us from t0 (InputError when it is not finite or so far from t0 that the
        microsecond clock would overflow: a corrupt timestamp)."""
        raw = float(read_item(self.ds, (row, 2), what=self.where))
        if not np.isfinite(raw):
            raise InputError(
                f"{self.where} holds a non-finite time at row {row}", source=self.ds.file.filename
            )
        if abs(raw - self.t0) > MAX_SPAN_S:
            raise InputError(
                f"{self.where} row {row} is stamped {raw - self.t0:.3g} s from the first event (more than "
                f"{MAX_SPAN_S:.0e} s: a corrupt timestamp?)",
                source=self.ds.file.filename,
            )
        return int(_times_us(np.array([[0.0, 0.0, raw, 0.0]]), self.t0)[0])


# ----------------------------------------------------------------------------------------- sequences


def find_sequence_files(root: Path, sequence: str) -> tuple[Path, Path | None]:
    """Locate ``{sequence}_data.hdf5`` (required) and ``{sequence}_gt.hdf5`` (optional) under root."""
    scene = scene_of(sequence)
    dirs = [root, root / sequence, root / scene]
    data = next((d / f"{sequence}_data.hdf5" for d in dirs if (d / f"{sequence}_data.hdf5").is_file()), None)
    if data is None:
        if not root.is_dir():
            raise InputError("MVSEC root directory not found", source=str(root))
        raise InputError(
            f"{sequence}_data.hdf5 not found in {[str(d) for d in dirs if d.is_dir()]}", source=str(root)
        )
    gt = next((d / f"{sequence}_gt.hdf5" for d in dirs if (d / f"{sequence}_gt.hdf5").is_file()), None)
    return data, gt


class MVSECSequence:
    """One MVSEC sequence: its data and GT files, calibration, per-frame window bounds."""

    def __init__(
        self,
        root: str | Path,
        sequence: str,
        *,
        window_us: int = WINDOW_US,
        rectify: bool = True,
        require_gt: bool = False,
        gt_convention: str = "exact",
    ):
        self.root = Path(root)
        self.name = sequence
        self.scene = scene_of(sequence)
        self.window_us = int(window_us)
        self.rectify = rectify
        self.gt_convention = check_gt_convention(gt_convention)
        self.data_path, self.gt_path = find_sequence_files(self.root, sequence)
        if require_gt and self.gt_path is None:
            raise InputError(
                f"{sequence}_gt.hdf5 not found next to {self.data_path.name}; the split needs GT",
                source=str(self.data_path.parent),
            )
        self._files: list[h5py.File] = []
        self._span: tuple[int, int] | None = None
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        data = open_h5(self.data_path, "MVSEC data file")
        self._files.append(data)
        ev = {
            side: dataset(data, EVENTS_KEY.format(side=side), ndim=2, shape_tail=(4,), kind="fiu")
            for side in ("left", "right")
        }
        shapes = {}
        for side in ("left", "right"):
            key = IMAGE_KEY.format(side=side)
            if key in data and isinstance(data[key], h5py.Dataset) and data[key].ndim == 3:
                shapes[side] = tuple(data[key].shape[1:])
        if len(shapes) == 2 and shapes["left"] != shapes["right"]:
            raise InputError(
                f"left/right size mismatch: image_raw {shapes['left']} vs {shapes['right']}",
                source=str(self.data_path),
            )
        h, w = shapes.get("left", (SENSOR_SIZE[1], SENSOR_SIZE[0]))
        self.sensor_size = (int(w), int(h))
        for side in ("left", "right"):
            if ev[side].shape[0] == 0:
                raise InputError(
                    f"'{EVENTS_KEY.format(side=side)}' holds no events (empty stream)",
                    source=str(self.data_path),
                )
        first = {s: float(read_item(ev[s], (0, 2), what=EVENTS_KEY.format(side=s))) for s in ev}
        for s, t in first.items():
            if not np.isfinite(t):
                raise InputError(
                    f"'{EVENTS_KEY.format(side=s)}' holds a non-finite time at row 0",
                    source=str(self.data_path),
                )
        self.t0 = min(first.values())
        self.columns = {s: EventColumn(ev[s], self.t0) for s in ev}
        if self.rectify:
            self.maps = load_calibration(self.root, self.scene, (h, w))
            self._lut = {s: self.maps.rounded(s, self.sensor_size) for s in ("left", "right")}
        else:
            self.maps = None
            ident = np.zeros((h, w), np.int32)
            self._lut = {s: (ident, ident) for s in ("left", "right")}
        known = FXB.get(self.scene)
        calib = self.maps.fxb if self.maps is not None else None
        if known is not None and calib is not None and abs(calib - known) > 0.01 * known:
            log.warning(
                "%s: calibration gives fxB %.4f, the published value is %.4f; using the published one",
                self.name,
                calib,
                known,
            )
        self.fxb = known if known is not None else calib
        if self.fxb is None:
            raise InputError(
                f"unknown fxB for scene '{self.scene}' (not in {sorted(FXB)} and the calibration "
                "has no projection_matrix)",
                source=str(self.root),
            )
        self.depth = None
        self.depth_t_end_us = None
        if self.gt_path is not None:
            gt = open_h5(self.gt_path, "MVSEC GT file")
            self._files.append(gt)
            depth = dataset(gt, DEPTH_KEY, ndim=3, kind="f")
            ts = dataset(gt, DEPTH_TS_KEY, ndim=1, kind="f")
            if depth.shape[1:] != (h, w):
                raise InputError(
                    f"'{DEPTH_KEY}' frames are {depth.shape[1]}x{depth.shape[2]}, the event "
                    f"sensor is {h}x{w} (H x W)",
                    source=str(self.gt_path),
                )
            if ts.shape[0] != depth.shape[0]:
                raise InputError(
                    f"'{DEPTH_TS_KEY}' has {ts.shape[0]} stamps for {depth.shape[0]} depth frames",
                    source=str(self.gt_path),
                )
            if depth.shape[0] == 0:
                raise InputError(f"'{DEPTH_KEY}' holds no frames", source=str(self.gt_path))
            stamps = np.asarray(read_rows(ts, 0, ts.shape[0], what=DEPTH_TS_KEY), np.float64)
            if np.any(np.diff(stamps) <= 0) or not np.isfinite(stamps).all():
                raise InputError(f"'{DEPTH_TS_KEY}' is not strictly increasing", source=str(self.gt_path))
            self.depth = depth
            self.depth_ts = stamps
            self.depth_t_end_us = np.rint((stamps - self.t0) * 1e6).astype(np.int64)

    @property
    def has_gt(self) -> bool:
        return self.depth is not None

    @property
    def n_frames(self) -> int:
        return 0 if self.depth is None else int(self.depth.shape[0])

    def duration_us(self) -> int:
        """From t0 to just after the last event of either camera."""
        return max(c.time_us(c.n - 1) for c in self.columns.values()) + 1

    def events_span_us(self) -> tuple[int, int]:
        """[start, stop) in us from t0 where both cameras record: from the later first event to just
        after the earlier last event (read once)."""
        if self._span is None:
            self._span = self._read_events_span()
        return self._span

    def _read_events_span(self) -> tuple[int, int]:
        for side, c in self.columns.items():
            if c.time_us(c.n - 1) < c.time_us(0):
                raise InputError(
                    f"'{EVENTS_KEY.format(side=side)}' is not sorted by time (its last event is earlier "
                    "than its first)",
                    source=str(self.data_path),
                )
        cols = self.columns.values()
        return max(c.time_us(0) for c in cols), min(c.time_us(c.n - 1) for c in cols) + 1

    def frames_with_events(self, frames: np.ndarray) -> np.ndarray:
        """Which of these depth frames have a window that overlaps ``events_span_us``: a window wholly
        before the first or after the last event holds no data to score (GT stamps past the end of the
        event stream happen in damaged or cut recordings)."""
        start, stop = self.events_span_us()
        t_end = self.depth_t_end_us[np.asarray(frames, np.int64)]
        return (t_end > start) & (t_end - self.window_us < stop)

    def events(self, side: str, t_start_us: int, t_end_us: int, where: str = "the window") -> np.ndarray:
        rx, ry = self._lut[side]
        return self.columns[side].events(t_start_us, t_end_us, rx, ry, self.rectify,
                                         where=f"{where} ({side} camera)")

    def gt_disparity(self, frame: int) -> np.ndarray:
        """GT disparity float32 (H, W) under the sequence's convention, inf where invalid: fxB / depth
        (exact), or round(7 fxB / depth) / 7 with >= 255/7 px invalid (ddes)."""
        depth = read_item(self.depth, frame, what=DEPTH_KEY)
        return gt_disparity(depth, self.fxb, self.gt_convention)

    def frame_window(self, frame: int, **kw) -> StereoWindow:
        """The example of one depth frame: events of the window ending at its timestamp, and GT."""
        if not 0 <= frame < self.n_frames:
            raise InputError(
                f"depth frame {frame} out of range: {self.name} has {self.n_frames} frames",
                source=str(self.gt_path),
            )
        t_end = int(self.depth_t_end_us[frame])
        meta = {
            "sequence": self.name,
            "frame": frame,
            "t_end_abs_s": float(self.depth_ts[frame]),
            "t0_s": self.t0,
        }
        return self._window(t_end - self.window_us, t_end, self.gt_disparity(frame), meta, **kw)

    def plain_window(self, k: int, **kw) -> StereoWindow:
        """k-th back-to-back window from t0 (for sequences without GT)."""
        t_end = (k + 1) * self.window_us
        meta = {"sequence": self.name, "frame": None, "t_end_abs_s": self.t0 + t_end * 1e-6, "t0_s": self.t0}
        return self._window(t_end - self.window_us, t_end, None, meta, **kw)

    def _window(self, t_start: int, t_end: int, gt, meta, **kw) -> StereoWindow:
        first = first_event_us(t_start, self.gt_convention)
        where = f"depth frame {meta['frame']}" if meta["frame"] is not None else \
            f"window {t_end // self.window_us - 1}"
        return StereoWindow(
            left=self.events("left", first, t_end, where),
            right=self.events("right", first, t_end, where),
            t_start_us=t_start,
            t_end_us=t_end,
            sensor_size=self.sensor_size,
            gt_disparity=gt,
            meta=meta,
            **kw,
        )

    def close(self) -> None:
        for f in self._files:
            try:
                f.close()
            except Exception:  # noqa: BLE001 - closing a broken file must not hide the first error
                pass
        self._files = []


# -------------------------------------------------------------------------------------------- source


class MVSECSource(IndexedSource):
    """MVSEC windows: one sequence replayed in order, or a subset of split 1 / 3.

    Sequence mode yields one window per depth frame (or back-to-back windows when the GT file is absent);
    split mode yields the subset's frames sorted by (sequence, frame) so that consecutive frames stay
    consecutive (``order="listed"`` keeps the split's own order). A window whose frame does not follow
    the previous one has ``gap_before=True``. Iteration continues from the current position; after a
    complete pass the position returns to the start.
    """

    name = "mvsec"
    max_disparity = MAX_DISPARITY

    def __init__(
        self,
        root: str | Path,
        *,
        sequence: str | None = None,
        split: int | None = None,
        subset: str | None = None,
        frames: list[tuple[str, int]] | None = None,
        window_us: int = WINDOW_US,
        order: str = "sorted",
        rectify: bool = True,
        max_disparity: int = MAX_DISPARITY,
        gt_convention: str = "exact",
    ):
        modes = sum(x is not None for x in (sequence, split, frames))
        if modes != 1:
            raise InputError(
                "MVSEC source needs exactly one of: a sequence, a split (with subset), a frame list"
            )
        if order not in ("sorted", "listed"):
            raise InputError(f"order must be 'sorted' or 'listed', not {order!r}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError("MVSEC root directory not found", source=str(self.root))
        self.window_us = int(window_us)
        self.rectify = rectify
        self.max_disparity = max_disparity
        self._seqs: dict[str, MVSECSequence] = {}
        self.gt_convention = gt_convention
        self._plain = False
        self.split, self.subset = split, subset
        try:
            if split is not None:
                if subset is None:
                    raise InputError("an MVSEC split needs a subset: train, val or test")
                frames = split_frames(int(split), subset)
                self.label = f"split {split} {subset}"
            elif sequence is not None:
                seq = self._sequence(sequence, require_gt=False)
                if seq.has_gt:
                    frames = WindowRuns([(sequence, 0, seq.n_frames)])
                else:
                    log.info(
                        "%s: no GT file, replaying back-to-back %d ms windows",
                        sequence,
                        self.window_us // 1000,
                    )
                    self._plain = True
                    n = -(-seq.duration_us() // self.window_us)
                    frames = WindowRuns([(sequence, 0, n)])  # computed, never listed: n can be 1e10
                    if seq.duration_us() > LONG_RECORDING_S * 1e6:
                        log.warning(
                            "%s: the events span %.4g s (%d windows); MVSEC recordings last minutes, so "
                            "a stray timestamp is likely and most windows will be empty",
                            sequence, seq.duration_us() * 1e-6, n,
                        )
                self.label = sequence
            else:
                self.label = f"{len(frames)} frames"
            if order == "sorted" and not isinstance(frames, WindowRuns):
                frames = sorted(frames)
            self.items = frames
            if not self.items:
                raise InputError("no windows to read (empty frame list)", source=str(self.root))
            if not self._plain:
                self._check_frames()
                self._drop_frames_without_events()
            first = self._sequence(self.items[0][0])
        except BaseException:
            self.close()
            raise
        self.sensor_size = first.sensor_size
        self.fxb = first.fxb
        self.has_gt = not self._plain

    def _sequence(self, name: str, require_gt: bool | None = None) -> MVSECSequence:
        seq = self._seqs.get(name)
        if seq is None:
            seq = MVSECSequence(
                self.root,
                name,
                window_us=self.window_us,
                rectify=self.rectify,
                require_gt=bool(require_gt if require_gt is not None else not self._plain),
                gt_convention=self.gt_convention,
            )
            if self._seqs:
                ref = next(iter(self._seqs.values()))
                if seq.sensor_size != ref.sensor_size:
                    seq.close()
                    raise InputError(
                        f"{name} sensor {seq.sensor_size} differs from {ref.name} {ref.sensor_size}",
                        source=str(seq.data_path),
                    )
            self._seqs[name] = seq
        return seq

    def _check_frames(self) -> None:
        need: dict[str, int] = {}
        for j in range(self.items.n_runs):
            s, _, stop = self.items.run(j)
            need[s] = max(need.get(s, -1), self.items[stop - 1][1])
        for s, top in need.items():
            seq = self._sequence(s)
            if top >= seq.n_frames:
                raise InputError(
                    f"{self.label} needs depth frame {top} of {s}, but the GT file has {seq.n_frames} frames",
                    source=str(seq.gt_path),
                )

    def _drop_frames_without_events(self) -> None:
        """Skip, with a warning naming how many, the depth frames whose window lies wholly outside the
        recorded events (they would be scored as if empty windows were data); InputError if none is
        left."""
        runs, dropped = [], {}
        for j in range(self.items.n_runs):
            name, a, b = self.items.run_frames(j)
            seq = self._sequence(name)
            frames = np.arange(a, b)
            keep = seq.frames_with_events(frames)
            dropped[name] = dropped.get(name, 0) + int((~keep).sum())
            if keep.all():
                runs.append((name, a, b))
            else:
                runs += [(name, int(f), int(f) + 1) for f in frames[keep]]
        for name, n in dropped.items():
            if n:
                seq = self._sequence(name)
                start, stop = seq.events_span_us()
                log.warning(
                    "%s: skipping %d depth frame(s) of %s whose %g ms window lies outside the recorded "
                    "events (%.3f s to %.3f s after the first event); they hold no data to score",
                    self.label, n, name, self.window_us / 1000, start * 1e-6, stop * 1e-6,
                )
        items = WindowRuns(runs)
        if not len(items):
            raise InputError(
                f"{self.label}: no depth frame has events in its window (all {len(self.items)} lie outside "
                "the recorded events; GT and events from different recordings?)",
                source=str(self.root),
            )
        self.items = items

    @property
    def gt_convention(self) -> str:
        """How GT and window edges are read: ``exact`` or ``ddes`` (see gt_convention.py)."""
        return self._gt_convention

    @gt_convention.setter
    def gt_convention(self, name: str) -> None:
        self._gt_convention = check_gt_convention(name)
        for seq in self._seqs.values():
            seq.gt_convention = name

    @property
    def sequences(self) -> list[str]:
        return sorted(self.items.run_keys())

    def _window(self, i: int, gap_before: bool) -> StereoWindow:
        name, f = self.items[i]
        seq = self._sequence(name)
        if self._plain:
            return seq.plain_window(f, index=i, gap_before=gap_before)
        return seq.frame_window(f, index=i, gap_before=gap_before)

    def _window_end_us(self, i: int) -> int:
        """Window end in us from the sequence's first event."""
        name, f = self.items[i]
        return (f + 1) * self.window_us if self._plain else int(self._sequence(name).depth_t_end_us[f])

    def describe(self) -> str:
        gt = ", DDES GT convention" if self.gt_convention == "ddes" else ""
        return f"MVSEC {self.label}: {len(self)} windows{gt}, " + super().describe()

    def close(self) -> None:
        for seq in self._seqs.values():
            seq.close()
        self._seqs = {}
