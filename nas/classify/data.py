"""The dataset TABLE of the classification pipeline: name -> how to read it from local files.

Nothing is downloaded: a dataset that is not where ``--root`` says gets an InputError saying what to
put where. Every reader returns :class:`Splits` (tensors in memory): images (N, C, H, W) float, or
event samples framed by eventstereo's SBT encoder into (N, T, C, H, W).

- ``digits``: scikit-learn's bundled 8x8 digits (offline), 80/20 stratified split, seed 0;
- ``cifar10`` / ``cifar100``: the python-version folders ``cifar-10-batches-py/`` and
  ``cifar-100-python/`` under ``--root`` (their pickles are read by an unpickler that only rebuilds
  numpy arrays, lists, dicts and strings);
- ``imagefolder``: ``--root/{train,val}/<class>/*.{png,jpg,jpeg,bmp}``, resized to ``image_size``;
- ``nmnist``, ``dvsgesture``, ``cifar10dvs``: tonic's readers on the files tonic's layout expects under
  ``--root``, each sample cut into T equal time windows, SBT-encoded (polarity mode: ON and OFF counts).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from eventstereo.errors import InputError
from eventstereo.events.sbt import SBTSettings, encode_sbt_batch
from eventstereo.events.types import EVENT_DTYPE


@dataclass
class Splits:
    """A dataset in memory: ``x_*`` images (N, C, H, W) or frames (N, T, C, H, W), ``y_*`` labels."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    augment: bool = False  # random crop + flip + cutout make sense for natural images
    sbt: SBTSettings | None = None

    @property
    def in_channels(self) -> int:
        return self.x_train.shape[-3]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.x_train.shape[-2:])

    @property
    def is_events(self) -> bool:
        return self.x_train.dim() == 5


@dataclass(frozen=True)
class DataOptions:
    root: Path | None = None
    timesteps: int = 6  # frames per event sample
    image_size: int | None = None  # imagefolder: resize to this (default 32); events: pool to it
    limit: int | None = None  # keep the first N samples of each split (quick runs)


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    read: Callable[[DataOptions], Splits]
    layout: str  # what to put where, for the error message and --help
    needs_root: bool = True
    extra: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ images
def _normalise(x: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


def _digits(opts: DataOptions) -> Splits:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target, dtype=torch.long)
    tr, te = train_test_split(np.arange(len(y)), test_size=0.2, random_state=0, stratify=d.target)
    x = _normalise(x, (0.3,), (0.4,))
    return Splits(x[tr], y[tr], x[te], y[te], num_classes=10)


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds only numpy arrays and builtin containers: a CIFAR batch cannot run code."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("builtins", "list"), ("builtins", "dict")}

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_batch(path: Path) -> dict:
    try:
        return _ArrayUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as e:
        raise InputError(f"not a readable CIFAR python batch ({e})", source=str(path)) from None


def _cifar_arrays(batches: list[Path], label_key: bytes) -> tuple[Tensor, Tensor]:
    xs, ys = [], []
    for p in batches:
        d = _read_batch(p)
        if b"data" not in d or label_key not in d:
            raise InputError(f"CIFAR batch lacks 'data' or '{label_key.decode()}'", source=str(p))
        xs.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(d[label_key], dtype=np.int64))
    x = torch.from_numpy(np.concatenate(xs)).float() / 255.0
    x = _normalise(x, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    return x, torch.from_numpy(np.concatenate(ys))


def _need(paths: list[Path], entry: str) -> None:
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise InputError(f"dataset {entry!r} is incomplete: {missing[0].name} is missing; "
                         f"{DATASETS[entry].layout}", source=str(missing[0].parent))


def _cifar10(opts: DataOptions) -> Splits:
    folder = _root(opts, "cifar10") / "cifar-10-batches-py"
    train = [folder / f"data_batch_{i}" for i in range(1, 6)]
    _need(train + [folder / "test_batch"], "cifar10")
    xtr, ytr = _cifar_arrays(train, b"labels")
    xte, yte = _cifar_arrays([folder / "test_batch"], b"labels")
    return Splits(xtr, ytr, xte, yte, num_classes=10, augment=True)


def _cifar100(opts: DataOptions) -> Splits:
    folder = _root(opts, "cifar100") / "cifar-100-python"
    _need([folder / "train", folder / "test"], "cifar100")
    xtr, ytr = _cifar_arrays([folder / "train"], b"fine_labels")
    xte, yte = _cifar_arrays([folder / "test"], b"fine_labels")
    return Splits(xtr, ytr, xte, yte, num_classes=100, augment=True)


_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}


def _read_image_tree(folder: Path, classes: list[str], size: int) -> tuple[Tensor, Tensor]:
    import cv2

    xs, ys = [], []
    for label, name in enumerate(classes):
        if not (folder / name).is_dir():
            continue
        for p in sorted((folder / name).iterdir()):
            if p.suffix.lower() not in _IMAGE_SUFFIXES:
                continue
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is None:
                raise InputError("cannot decode this image", source=str(p))
            img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)[:, :, ::-1]
            xs.append(torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1))
            ys.append(label)
    if not xs:
        raise InputError(f"no images; {DATASETS['imagefolder'].layout}", source=str(folder))
    x = torch.stack(xs).float() / 255.0
    return _normalise(x, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), torch.tensor(ys)


def _imagefolder(opts: DataOptions) -> Splits:
    root = _root(opts, "imagefolder")
    train, val = root / "train", root / "val"
    for d in (train, val):
        if not d.is_dir():
            raise InputError(f"dataset 'imagefolder': {d} is missing; {DATASETS['imagefolder'].layout}",
                             source=str(root))
    classes = sorted(p.name for p in train.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise InputError("imagefolder needs at least 2 class folders under train/", source=str(train))
    unknown = sorted(p.name for p in val.iterdir() if p.is_dir() and p.name not in classes)
    if unknown:
        raise InputError(f"val/ has classes train/ lacks: {unknown[:3]}", source=str(val))
    size = opts.image_size or 32
    xtr, ytr = _read_image_tree(train, classes, size)
    xte, yte = _read_image_tree(val, classes, size)
    return Splits(xtr, ytr, xte, yte, num_classes=len(classes), augment=True)


# ------------------------------------------------------------------------------------------ events
def frame_events(events: np.ndarray, sensor_size: tuple[int, int], timesteps: int) -> tuple[np.ndarray,
                                                                                            SBTSettings]:
    """T SBT frames (T, 2, H, W) of one event sample: its time span cut into T equal windows, each
    one polarity-mode bin (ON and OFF counts)."""
    ev = np.empty(len(events), EVENT_DTYPE)
    for f in "xytp":
        ev[f] = events[f]
    ev["p"] = np.where(np.asarray(events["p"]).astype(np.int64) > 0, 1, -1)
    t0 = int(ev["t"].min()) if len(ev) else 0
    t1 = int(ev["t"].max()) + 1 if len(ev) else timesteps
    window = max(1, -(-(t1 - t0) // timesteps))
    settings = SBTSettings(window_us=window, n_bins=1, mode="polarity")
    ends = [t0 + window * (k + 1) for k in range(timesteps)]
    return encode_sbt_batch(ev, ends, sensor_size[:2], settings), settings


def _tonic_reader(cls_name: str, entry: str, *, split: bool):
    def read(opts: DataOptions) -> Splits:
        import tonic.datasets

        root = _root(opts, entry)
        base = getattr(tonic.datasets, cls_name)

        def refuse(self):  # tonic downloads what is missing: here that is an error instead
            raise InputError(f"dataset {entry!r} not found; {DATASETS[entry].layout}", source=str(root))

        local = type(base.__name__, (base,), {"download": refuse})  # same name: tonic's folder ROOT/<name>

        def frames(ds) -> tuple[Tensor, Tensor, SBTSettings | None]:
            xs, ys, settings = [], [], None
            n = len(ds) if opts.limit is None else min(len(ds), opts.limit)
            for i in range(n):
                events, label = ds[i]
                f, settings = frame_events(events, base.sensor_size, opts.timesteps)
                x = torch.from_numpy(f)
                if opts.image_size:
                    x = F.adaptive_avg_pool2d(x, opts.image_size)
                xs.append(x)
                ys.append(int(label))
            return torch.stack(xs), torch.tensor(ys), settings

        if split:
            xtr, ytr, sbt = frames(local(str(root), train=True))
            xte, yte, _ = frames(local(str(root), train=False))
        else:  # one set: a fixed 90/10 split
            x, y, sbt = frames(local(str(root)))
            order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
            cut = int(0.9 * len(y))
            xtr, ytr, xte, yte = x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]
        return Splits(xtr, ytr, xte, yte, num_classes=int(max(ytr.max(), yte.max())) + 1, sbt=sbt)

    return read


def _root(opts: DataOptions, entry: str) -> Path:
    if opts.root is None:
        raise InputError(f"dataset {entry!r} needs --root; {DATASETS[entry].layout}")
    root = Path(opts.root)
    if not root.is_dir():
        raise InputError(f"no such folder; {DATASETS[entry].layout}", source=str(root))
    return root


def _table(*entries: DatasetEntry) -> dict[str, DatasetEntry]:
    return {e.name: e for e in entries}


DATASETS: dict[str, DatasetEntry] = _table(
    DatasetEntry("digits", _digits, "built in (scikit-learn's 8x8 digits): nothing to put anywhere",
                 needs_root=False),
    DatasetEntry("cifar10", _cifar10, "extract the python version of CIFAR-10 (cifar-10-python.tar.gz) "
                 "so that ROOT/cifar-10-batches-py/data_batch_1..5 and test_batch exist"),
    DatasetEntry("cifar100", _cifar100, "extract the python version of CIFAR-100 (cifar-100-python.tar.gz) "
                 "so that ROOT/cifar-100-python/train and test exist"),
    DatasetEntry("imagefolder", _imagefolder, "arrange images as ROOT/train/<class>/*.png|jpg and "
                 "ROOT/val/<class>/*.png|jpg (ImageNet style)"),
    DatasetEntry("nmnist", _tonic_reader("NMNIST", "nmnist", split=True), "put tonic's NMNIST files "
                 "under ROOT/NMNIST/ (Train/ and Test/ folders of .bin files, as tonic extracts them)"),
    DatasetEntry("dvsgesture", _tonic_reader("DVSGesture", "dvsgesture", split=True), "put tonic's "
                 "DVSGesture files under ROOT/DVSGesture/ (ibmGestureTrain/ and ibmGestureTest/ of .npy)"),
    DatasetEntry("cifar10dvs", _tonic_reader("CIFAR10DVS", "cifar10dvs", split=False), "put tonic's "
                 "CIFAR10DVS files under ROOT/CIFAR10DVS/ (one folder of .aedat4 files per class)"),
)
"""Dataset name -> reader; the one list the CLI's --dataset choices come from."""


def load_dataset(name: str, opts: DataOptions | None = None) -> Splits:
    """Read a dataset of the table (InputError naming what is missing and where it goes)."""
    if name not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
    opts = opts or DataOptions()
    splits = DATASETS[name].read(opts)
    if opts.limit is not None:
        n = opts.limit
        splits.x_train, splits.y_train = splits.x_train[:n], splits.y_train[:n]
        splits.x_test, splits.y_test = splits.x_test[:n], splits.y_test[:n]
    return splits


def augment_images(x: Tensor, generator: torch.Generator, *, pad: int = 4,
                   cutout: int | None = None) -> Tensor:
    """Random crop (zero padding ``pad``), horizontal flip and cutout (a zeroed square of side
    ``cutout``, default H // 2) per image, seeded by ``generator``: the CIFAR recipe of DARTS."""
    n, _, h, w = x.shape
    cutout = h // 2 if cutout is None else cutout
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    cy = torch.randint(0, h, (n,), generator=generator)
    cx = torch.randint(0, w, (n,), generator=generator)
    out = torch.empty_like(x)
    for i in range(n):
        img = padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
        img = img.flip(-1) if flip[i] else img
        if cutout > 0:
            img = img.clone()
            y0, y1 = max(0, cy[i] - cutout // 2), min(h, cy[i] + cutout // 2)
            x0, x1 = max(0, cx[i] - cutout // 2), min(w, cx[i] + cutout // 2)
            img[:, y0:y1, x0:x1] = 0
        out[i] = img
    return out
