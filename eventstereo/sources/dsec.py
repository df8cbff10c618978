"""DSEC stereo source: Blosc-compressed ``events.h5`` sliced by ``ms_to_idx``, ``rectify_map.h5``, and
disparity PNGs (value / 256, 0 = invalid) at the times in ``disparity/timestamps.txt``.

Layout (DSEC's own; the downloads ``train_events.zip`` etc. unpack to ``train_events/<seq>/...``, which
is also accepted)::

    <root>/<train|test>/<seq>/events/{left,right}/events.h5, rectify_map.h5
    <root>/<train|test>/<seq>/disparity/event/000000.png ..., disparity/timestamps.txt
    <root>/<train|test>/<seq>/calibration/cam_to_cam.yaml   (fxB from disparity_to_depth.cams_03)

Event times in a file are microseconds relative to its ``t_offset``; adding it gives the clock shared by
both cameras and the disparity stamps. Windows report times relative to the left file's ``t_offset``.
Disparity frames whose window starts before both cameras record or after the last event are skipped
with a warning naming how many (they would be scored on empty windows).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
import numpy as np

from eventstereo.errors import InputError
from eventstereo.events.types import EVENT_DTYPE, inside_sensor
from eventstereo.events.window import StereoWindow
from eventstereo.sources.base import IndexedSource, WindowRuns
from eventstereo.sources.calib_yaml import load_yaml
from eventstereo.sources.h5util import dataset, open_h5, read_item, read_rows
from eventstereo.sources.mvsec import round_maps

log = logging.getLogger(__name__)

SENSOR_SIZE = (640, 480)
WINDOW_US = 50_000
MAX_DISPARITY = 191


class DSECEventFile:
    """One camera's ``events.h5``: time slicing through ``ms_to_idx`` without loading the arrays."""

    def __init__(self, path: Path):
        self.path = path
        self.f = open_h5(path, "DSEC events file")
        try:
            # integer columns as DSEC writes them (a float column could hold NaN times or pixels)
            self.x, self.y, self.p, self.t = (
                dataset(self.f, f"events/{k}", ndim=1, kind="iu") for k in "xypt"
            )
            lengths = {k: d.shape[0] for k, d in zip("xypt", (self.x, self.y, self.p, self.t))}
            if len(set(lengths.values())) != 1:
                raise InputError(f"events/x, y, p, t lengths differ: {lengths}", source=str(path))
            self.n = lengths["t"]
            if self.n == 0:
                raise InputError("events/t holds no events (empty stream)", source=str(path))
            ms = dataset(self.f, "ms_to_idx", ndim=1, kind="iu")
            self.ms_to_idx = np.asarray(read_rows(ms, 0, ms.shape[0], what="ms_to_idx"), np.int64)
            if len(self.ms_to_idx) == 0 or np.any(np.diff(self.ms_to_idx) < 0) or self.ms_to_idx[-1] > self.n:
                raise InputError(
                    f"ms_to_idx is not a non-decreasing index into the {self.n} events", source=str(path)
                )
            self.t_offset = int(read_item(dataset(self.f, "t_offset"), ())) if "t_offset" in self.f else 0
            self.t_first = int(read_item(self.t, 0, what="events/t")) + self.t_offset
            self.t_last = int(read_item(self.t, self.n - 1, what="events/t")) + self.t_offset
        except BaseException:
            self.f.close()
            raise

    def _ms_index(self, ms: int) -> int:
        if ms <= 0:
            return 0
        if ms >= len(self.ms_to_idx):
            return self.n
        return int(self.ms_to_idx[ms])

    def slice(self, t_start: int, t_end: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """x, y, p, t (absolute us) of the events with absolute time in [t_start, t_end)."""
        a_rel, b_rel = t_start - self.t_offset, t_end - self.t_offset
        lo = self._ms_index(math.floor(a_rel / 1000))
        hi = self._ms_index(math.ceil(b_rel / 1000))
        if hi <= lo:
            z = np.empty(0, np.int64)
            return z, z, z, z
        t = np.asarray(read_rows(self.t, lo, hi, what="events/t"), np.int64)
        if len(t) > 1 and np.any(np.diff(t) < 0):
            raise InputError(f"events/t is not sorted near rows {lo}..{hi}", source=str(self.path))
        i0 = lo + int(np.searchsorted(t, a_rel, side="left"))
        i1 = lo + int(np.searchsorted(t, b_rel, side="left"))
        tt = t[i0 - lo : i1 - lo] + self.t_offset
        x, y, p = (
            np.asarray(read_rows(d, i0, i1, what=f"events/{k}"))
            for d, k in ((self.x, "x"), (self.y, "y"), (self.p, "p"))
        )
        return x, y, p, tt

    def close(self) -> None:
        try:
            self.f.close()
        except Exception:  # noqa: BLE001
            pass


def _first_dir(candidates: list[Path]) -> Path | None:
    return next((c for c in candidates if c.is_dir()), None)


def load_fxb(path: Path) -> float:
    """fxB (px*m) from DSEC's ``cam_to_cam.yaml``: Q = disparity_to_depth.cams_03, fxB = Q[2][3] / Q[3][2]."""
    calib = load_yaml(path)
    try:
        q = np.asarray(calib["disparity_to_depth"]["cams_03"], np.float64).reshape(4, 4)
    except (KeyError, TypeError, ValueError):
        raise InputError(
            "missing or malformed 'disparity_to_depth: cams_03' (a 4x4 matrix)", source=str(path)
        ) from None
    if q[3, 2] == 0:
        raise InputError("cams_03[3][2] (1 / baseline) is zero", source=str(path))
    return abs(float(q[2, 3] / q[3, 2]))


class DSECSequence:
    """One DSEC sequence: both cameras' event files and rectify maps, disparity frames, fxB."""

    def __init__(self, root: Path, name: str, subset: str = "train", window_us: int = WINDOW_US):
        self.root, self.name, self.window_us = Path(root), name, int(window_us)
        base = [self.root / subset / name, self.root / name]
        ev_dir = _first_dir([b / "events" for b in base] + [self.root / f"{subset}_events" / name / "events"])
        if ev_dir is None:
            raise InputError(
                f"no events folder for sequence '{name}' (looked for {subset}/{name}/events, "
                f"{name}/events, {subset}_events/{name}/events)",
                source=str(self.root),
            )
        self.files: dict[str, DSECEventFile] = {}
        try:
            self._open(ev_dir, base, subset)
        except BaseException:
            self.close()
            raise

    def _open(self, ev_dir: Path, base: list[Path], subset: str) -> None:
        self.luts = {}
        shapes = {}
        for side in ("left", "right"):
            self.files[side] = DSECEventFile(ev_dir / side / "events.h5")
            rect_path = ev_dir / side / "rectify_map.h5"
            with open_h5(rect_path, "DSEC rectify map") as rf:
                ds = dataset(rf, "rectify_map", ndim=3, shape_tail=(2,), kind="f")
                m = np.asarray(read_rows(ds, 0, ds.shape[0], what="rectify_map"), np.float32)
            shapes[side] = m.shape[:2]
            self.luts[side] = round_maps(m[..., 0], m[..., 1], (m.shape[1], m.shape[0]))
        if shapes["left"] != shapes["right"]:
            raise InputError(
                f"left/right size mismatch: rectify maps {shapes['left']} vs {shapes['right']} (H, W)",
                source=str(ev_dir),
            )
        h, w = shapes["left"]
        self.sensor_size = (w, h)
        self.t0 = self.files["left"].t_offset
        self.t_begin = max(f.t_first for f in self.files.values())
        self.t_stop = max(f.t_last for f in self.files.values()) + 1
        calib = _first_dir(
            [b / "calibration" for b in base]
            + [self.root / f"{subset}_calibration" / self.name / "calibration"]
        )
        if calib is None or not (calib / "cam_to_cam.yaml").is_file():
            raise InputError(
                f"calibration/cam_to_cam.yaml not found for '{self.name}' (needed for fxB)",
                source=str(calib or base[0]),
            )
        self.fxb = load_fxb(calib / "cam_to_cam.yaml")
        disp = _first_dir(
            [b / "disparity" for b in base] + [self.root / f"{subset}_disparity" / self.name / "disparity"]
        )
        self.disp_paths: list[Path] = []
        self.disp_t: np.ndarray | None = None
        if disp is not None:
            self._load_disparity_index(disp)

    def _load_disparity_index(self, disp: Path) -> None:
        ts_path = disp / "timestamps.txt"
        if not ts_path.is_file():
            raise InputError("disparity/timestamps.txt missing", source=str(disp))
        try:
            stamps = np.loadtxt(ts_path, dtype=np.int64, ndmin=1, comments="#")
        except ValueError as e:
            raise InputError(
                f"timestamps are not integers ({str(e).splitlines()[0][:120]})", source=str(ts_path)
            ) from None
        pngs = sorted((disp / "event").glob("*.png"))
        if len(pngs) != len(stamps):
            raise InputError(
                f"{len(stamps)} timestamps but {len(pngs)} PNGs in disparity/event", source=str(disp)
            )
        if len(stamps) == 0:
            raise InputError("no disparity frames (empty timestamps.txt)", source=str(ts_path))
        if np.any(np.diff(stamps) <= 0):
            raise InputError("timestamps are not increasing", source=str(ts_path))
        # a window must start once both cameras record and before either stops: GT stamped outside the
        # event stream would otherwise be scored on empty windows as if they were data
        early = stamps - self.window_us < self.t_begin
        late = stamps - self.window_us > min(f.t_last for f in self.files.values())
        keep = ~(early | late)
        if not keep.all():
            log.warning(
                "%s: skipping %d of %d disparity frame(s) whose window lies outside the recorded events "
                "(%d start before both cameras record, %d after the last event)",
                self.name,
                int((~keep).sum()),
                len(stamps),
                int(early.sum()),
                int((late & ~early).sum()),
            )
        self.disp_frames = np.flatnonzero(keep)
        self.disp_paths, self.disp_t = pngs, stamps

    @property
    def has_gt(self) -> bool:
        return self.disp_t is not None

    def n_windows(self) -> int:
        if self.has_gt:
            return len(self.disp_frames)
        return -(-(self.t_stop - self.t_begin) // self.window_us)

    def window_end(self, k: int) -> int:
        """Absolute end time of window k."""
        if self.has_gt:
            return int(self.disp_t[self.disp_frames[k]])
        return self.t_begin + (k + 1) * self.window_us

    def disparity(self, frame: int) -> np.ndarray:
        path = self.disp_paths[frame]
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise InputError("cannot read disparity PNG (missing or corrupt)", source=str(path))
        if img.dtype != np.uint16 or img.ndim != 2:
            raise InputError(
                f"disparity PNG must be 16-bit single channel, got {img.dtype} {img.shape}", source=str(path)
            )
        w, h = self.sensor_size
        if img.shape != (h, w):
            raise InputError(
                f"disparity is {img.shape[1]}x{img.shape[0]}, the event sensor {w}x{h}", source=str(path)
            )
        d = img.astype(np.float32) / np.float32(256.0)
        d[img == 0] = np.inf
        return d

    def events(self, side: str, t_start: int, t_end: int, where: str = "the window") -> np.ndarray:
        """Rectified events of one camera in [t_start, t_end) (absolute us). Raw events outside the
        sensor are dropped, with a warning naming ``where`` when that is all of them; the few that
        rectification maps out of the image are dropped silently."""
        x, y, p, t = self.files[side].slice(t_start, t_end)
        x = x.astype(np.int64)
        y = y.astype(np.int64)
        inside = inside_sensor(x, y, self.sensor_size, where=f"{where} ({side} camera)",
                               source=str(self.files[side].path))
        if not inside.all():
            x, y, p, t = x[inside], y[inside], p[inside], t[inside]
        rx, ry = self.luts[side]
        xr, yr = rx[y, x], ry[y, x]
        ok = xr >= 0
        out = np.empty(int(ok.sum()), EVENT_DTYPE)
        out["x"], out["y"], out["t"] = xr[ok], yr[ok], t[ok] - self.t0
        out["p"] = (p[ok] > 0).astype(np.int8)
        return out

    def window(self, k: int, **kw) -> StereoWindow:
        t_end = self.window_end(k)
        t_start = t_end - self.window_us
        gt = None
        meta = {"sequence": self.name, "t_end_abs_us": t_end, "t0_us": self.t0}
        if self.has_gt:
            frame = int(self.disp_frames[k])
            gt = self.disparity(frame)
            meta["frame"] = frame
            meta["file_index"] = (
                int(self.disp_paths[frame].stem) if self.disp_paths[frame].stem.isdigit() else None
            )
        return StereoWindow(
            left=self.events("left", t_start, t_end, f"window {k}"),
            right=self.events("right", t_start, t_end, f"window {k}"),
            t_start_us=t_start - self.t0,
            t_end_us=t_end - self.t0,
            sensor_size=self.sensor_size,
            gt_disparity=gt,
            meta=meta,
            **kw,
        )

    def close(self) -> None:
        for f in self.files.values():
            f.close()
        self.files = {}


def list_sequences(root: str | Path, subset: str = "train") -> list[str]:
    """Sequence names under ``root/<subset>/`` (or ``root/<subset>_events/``)."""
    root = Path(root)
    for d in (root / subset, root / f"{subset}_events"):
        if d.is_dir():
            names = sorted(p.name for p in d.iterdir() if p.is_dir())
            if names:
                return names
    raise InputError(
        f"no DSEC sequences under {root / subset} or {root / (subset + '_events')}", source=str(root)
    )


class DSECSource(IndexedSource):
    """DSEC windows ending at the disparity timestamps (with GT), or back-to-back windows where a sequence
    has no disparity folder (the test set). Several sequences play one after another; the first window
    of each is marked ``gap_before``."""

    name = "dsec"

    def __init__(
        self,
        root: str | Path,
        sequences: str | list[str],
        *,
        subset: str = "train",
        window_us: int = WINDOW_US,
        max_disparity: int = MAX_DISPARITY,
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError("DSEC root directory not found", source=str(self.root))
        if isinstance(sequences, str):
            sequences = (
                list_sequences(self.root, subset)
                if sequences == "all"
                else [s.strip() for s in sequences.split(",") if s.strip()]
            )
        if not sequences:
            raise InputError("no DSEC sequence given", source=str(self.root))
        self.window_us = int(window_us)
        self.max_disparity = max_disparity
        self.seqs: list[DSECSequence] = []
        try:
            for s in sequences:
                self.seqs.append(DSECSequence(self.root, s, subset, self.window_us))
            sizes = {q.sensor_size for q in self.seqs}
            if len(sizes) != 1:
                raise InputError(
                    f"sequences have different sensor sizes {sorted(sizes)}", source=str(self.root)
                )
            # computed runs, never a list: back-to-back windows over a long time span can number 1e10
            self.items = WindowRuns((qi, 0, q.n_windows()) for qi, q in enumerate(self.seqs))
            if not self.items:
                raise InputError(
                    f"no windows in {sequences} (no disparity frame has a window inside the recorded "
                    "events)",
                    source=str(self.root),
                )
        except BaseException:
            self.close()
            raise
        self.sensor_size = self.seqs[0].sensor_size
        self.fxb = self.seqs[0].fxb
        self.has_gt = all(q.has_gt for q in self.seqs)

    def _window(self, i: int, gap_before: bool) -> StereoWindow:
        qi, k = self.items[i]
        return self.seqs[qi].window(k, index=i, gap_before=gap_before)

    def _window_end_us(self, i: int) -> int:
        """Window end in us from the sequence's left ``t_offset``."""
        qi, k = self.items[i]
        q = self.seqs[qi]
        return q.window_end(k) - q.t0

    def describe(self) -> str:
        names = ",".join(q.name for q in self.seqs)
        return f"DSEC {names}: {len(self)} windows, " + super().describe()

    def close(self) -> None:
        for q in getattr(self, "seqs", []):
            q.close()
        self.seqs = []
