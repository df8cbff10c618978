"""HDF5 access with errors that name the file, the dataset and where reading stopped.

h5py reports a missing key as a bare KeyError and a damaged chunk as an OSError deep inside a slice;
sources call these helpers instead so that a user sees which file, which dataset and which rows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from eventstereo.errors import InputError

log = logging.getLogger(__name__)


def open_h5(path: str | Path, what: str = "HDF5 file", *, cache_mb: int = 32) -> h5py.File:
    """Open an HDF5 file read-only, with a chunk cache large enough for sequential window reads."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} not found", source=str(path))
    if path.is_dir():
        raise InputError(f"expected a {what}, found a directory", source=str(path))
    try:
        import hdf5plugin  # noqa: F401  (registers Blosc & co. so compressed datasets can be read)
    except ImportError:  # pragma: no cover - hdf5plugin is a dependency; plain files still work
        log.debug("hdf5plugin not installed; Blosc-compressed files will not be readable")
    try:
        return h5py.File(path, "r", rdcc_nbytes=cache_mb << 20)
    except OSError as e:
        raise InputError(
            f"not a readable HDF5 file ({_short(e)}); truncated or corrupt?", source=str(path)
        ) from None


def dataset(
    f: h5py.File,
    key: str,
    *,
    ndim: int | None = None,
    shape_tail: Sequence[int] | None = None,
    kind: str | None = None,
) -> h5py.Dataset:
    """Return ``f[key]`` as a dataset, checking its rank, trailing shape and dtype kind ('f', 'i', 'u')."""
    src = f.filename
    try:
        obj = f[key]
    except KeyError:
        parent = key.rsplit("/", 1)[0] if "/" in key else "/"
        try:
            have = sorted(f[parent].keys()) if parent in f else sorted(f.keys())
        except Exception:  # noqa: BLE001 - listing is only a hint
            have = []
        raise InputError(
            f"missing dataset '{key}' (wrong layout?); found {have[:12]} under "
            f"'{parent if parent in f else '/'}'",
            source=src,
        ) from None
    except OSError as e:
        raise InputError(f"cannot open dataset '{key}': {_short(e)} (corrupt file?)", source=src) from None
    if not isinstance(obj, h5py.Dataset):
        raise InputError(f"'{key}' is a group, expected a dataset (wrong layout?)", source=src)
    if ndim is not None and obj.ndim != ndim:
        raise InputError(f"dataset '{key}' has shape {obj.shape}, expected {ndim} dimensions", source=src)
    if shape_tail is not None and tuple(obj.shape[obj.ndim - len(shape_tail) :]) != tuple(shape_tail):
        dims = ["N"] * (obj.ndim - len(shape_tail)) + [str(v) for v in shape_tail]
        raise InputError(f"dataset '{key}' has shape {obj.shape}, expected ({', '.join(dims)})", source=src)
    if kind is not None and obj.dtype.kind not in kind:
        raise InputError(f"dataset '{key}' has dtype {obj.dtype}, expected kind {kind!r}", source=src)
    return obj


def read_rows(ds: h5py.Dataset, lo: int, hi: int, *, what: str | None = None) -> np.ndarray:
    """``ds[lo:hi]``; if the read fails, find the first unreadable block and say where reading stopped."""
    try:
        return ds[lo:hi]
    except (OSError, ValueError, RuntimeError) as e:
        # scan in chunk-sized steps (at most ~1024 reads) for the first piece that cannot be read
        step = max(ds.chunks[0] if ds.chunks else 4096, (hi - lo) // 1024, 1)
        first_bad = lo
        for a in range(lo, hi, step):
            try:
                ds[a : min(a + step, hi)]
            except (OSError, ValueError, RuntimeError):
                first_bad = a
                break
        raise InputError(
            f"reading {what or repr(ds.name)} rows {lo}..{hi} failed ({_short(e)}): the dataset is "
            f"readable up to about row {first_bad} of {ds.shape[0]}; reading stopped there "
            "(truncated or corrupt file?)",
            source=ds.file.filename,
        ) from None


def read_item(ds: h5py.Dataset, index, *, what: str | None = None) -> np.ndarray:
    """``ds[index]`` with a clear error on a damaged chunk."""
    try:
        return ds[index]
    except (OSError, ValueError, RuntimeError) as e:
        raise InputError(
            f"reading {what or repr(ds.name)}[{index}] failed ({_short(e)}); truncated or corrupt file?",
            source=ds.file.filename,
        ) from None


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__
