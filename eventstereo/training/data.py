"""Training data: sequences of consecutive SBT windows with their GT, randomly cropped.

The spiking network keeps state across windows, so it must train on runs of consecutive windows (the
paper's "several consecutive SBT stacks form one input sequence"). Any *window store* works: an
``SBTCache`` file (fast: frames are encoded once) or ``EncodedWindows``, which encodes windows from
registry sources in memory at start-up. A store has ``__len__``, ``__getitem__(i)`` returning a record
with ``left``, ``right`` (C, H, W), ``gt`` (H, W; inf = invalid), ``gap_before``, and ``runs()``:
(start, stop) index pairs of windows that follow each other in time with no gap; and the attributes
``sensor_size``, ``fxb``, ``max_disparity`` and ``sbt_settings``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from eventstereo.events.sbt import SBTSettings, encode_sbt
from eventstereo.sources.base import Source
from eventstereo.sources.cache import CachedWindow

log = logging.getLogger(__name__)


class EncodedWindows:
    """An in-memory window store encoded from sources (for data too small to be worth a cache file).

    Sign-mode frames ({-1, 0, 1}) are kept as int8, four times smaller than float32.
    """

    def __init__(self, windows: Sequence[CachedWindow], *, sensor_size: tuple[int, int], fxb: float,
                 max_disparity: int, sbt_settings: SBTSettings):
        self._windows = list(windows)
        self.sensor_size = sensor_size
        self.fxb = fxb
        self.max_disparity = max_disparity
        self.sbt_settings = sbt_settings

    @classmethod
    def from_sources(cls, sources: Iterable[Source], settings: SBTSettings, *,
                     windows_per_source: int | None = None) -> EncodedWindows:
        """Encode up to ``windows_per_source`` windows (with GT) of each source; sources are closed."""
        store: list[CachedWindow] = []
        first: Source | None = None
        dtype = np.int8 if settings.mode == "sign" else np.float32
        for src in sources:
            with src:
                if first is None:
                    first = src
                elif (src.sensor_size, src.fxb) != (first.sensor_size, first.fxb):
                    raise ValueError(f"{src.describe()} does not match {first.describe()}")
                seq = f"{src.describe()}#{len(store)}"
                for k, win in enumerate(src):
                    if windows_per_source is not None and k >= windows_per_source:
                        break
                    if win.gt_disparity is None:
                        raise ValueError(f"{src.describe()} has no GT disparity: it cannot train a model")
                    left = encode_sbt(win.left, win.t_end_us, src.sensor_size, settings).astype(dtype)
                    right = encode_sbt(win.right, win.t_end_us, src.sensor_size, settings).astype(dtype)
                    store.append(CachedWindow(left, right, win.gt_disparity.astype(np.float32),
                                               win.t_end_us, seq, k == 0 or win.gap_before))
        if first is None:
            raise ValueError("no sources given")
        log.info("encoded %d windows from %s", len(store), first.name)
        return cls(store, sensor_size=first.sensor_size, fxb=first.fxb, max_disparity=first.max_disparity,
                   sbt_settings=settings)

    def __len__(self) -> int:
        return len(self._windows)

    def __getitem__(self, i: int) -> CachedWindow:
        return self._windows[i]

    def runs(self) -> list[tuple[int, int]]:
        return contiguous_runs(self)


def contiguous_runs(store) -> list[tuple[int, int]]:
    """(start, stop) of the runs of consecutive windows: a run ends before a gap or a new sequence."""
    runs, start = [], 0
    for i in range(1, len(store)):
        a, b = store[i - 1], store[i]
        if b.gap_before or b.sequence != a.sequence:
            runs.append((start, i))
            start = i
    if len(store):
        runs.append((start, len(store)))
    return runs


class ConcatStores:
    """Several window stores (e.g. one SBT cache per synthetic seed) read as one; runs never cross from
    one store into the next. All must share sensor size, fxB and SBT settings."""

    def __init__(self, stores: Sequence):
        if not stores:
            raise ValueError("no window stores given")
        first = stores[0]
        for st in stores[1:]:
            key = (st.sensor_size, st.fxb, st.sbt_settings)
            if key != (first.sensor_size, first.fxb, first.sbt_settings):
                raise ValueError(f"window stores disagree: {getattr(st, 'path', st)} has sensor "
                                 f"{st.sensor_size}, fxB {st.fxb}, {st.sbt_settings}; the first has "
                                 f"{first.sensor_size}, {first.fxb}, {first.sbt_settings}")
        self.stores = list(stores)
        self.offsets = np.cumsum([0] + [len(st) for st in self.stores])
        self.sensor_size, self.fxb, self.sbt_settings = first.sensor_size, first.fxb, first.sbt_settings
        self.max_disparity = max(st.max_disparity for st in self.stores)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, i: int):
        k = int(np.searchsorted(self.offsets, i, side="right")) - 1
        return self.stores[k][i - int(self.offsets[k])]

    def runs(self) -> list[tuple[int, int]]:
        return [(int(off) + a, int(off) + b)
                for off, st in zip(self.offsets, self.stores) for a, b in st.runs()]


class WindowSequences(Dataset):
    """Items are ``seq_len`` consecutive windows of a store, cropped alike in space.

    Every window of a run can start a sequence when ``stride`` is 1 (the default is ``seq_len``: no two
    sequences overlap). Crops are random but reproducible: the crop of item ``i`` in epoch ``e`` is drawn
    from a generator seeded by (seed, e, i), so a resumed or distributed run sees the same data. With
    ``crop=None`` the full frame is used. ``augment`` (a ``SensorAugment``, training only) changes the
    cropped frames with a generator seeded the same way. An item is a dict of float32 tensors:
    ``left``/``right`` (T, C, h, w) and ``gt`` (T, h, w) with inf where invalid.
    """

    def __init__(self, store, seq_len: int, *, crop: tuple[int, int] | None = None, stride: int | None = None,
                 seed: int = 0, random_crop: bool = True, augment: Callable | None = None):
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, not {seq_len}")
        self.store = store
        self.seq_len = seq_len
        self.crop = crop
        self.seed = seed
        self.random_crop = random_crop
        self.augment = augment
        self.epoch = 0
        stride = stride or seq_len
        self.starts = [s for a, b in store.runs() for s in range(a, b - seq_len + 1, stride)]
        if not self.starts:
            raise ValueError(f"no run of {seq_len} consecutive windows in a store of {len(store)} windows")
        w, h = store.sensor_size
        if crop is not None and (crop[0] > h or crop[1] > w):
            raise ValueError(f"crop (h, w) = {crop} is larger than the {w}x{h} sensor")

    def set_epoch(self, epoch: int) -> None:
        """Change the crops drawn (call before each epoch, like DistributedSampler.set_epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.starts)

    def _window(self, i: int) -> tuple[int, int]:
        w, h = self.store.sensor_size
        if self.crop is None:
            return 0, 0
        ch, cw = self.crop
        if not self.random_crop:
            return (h - ch) // 2, (w - cw) // 2
        rng = np.random.default_rng((self.seed, self.epoch, i))
        return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        y0, x0 = self._window(i)
        w, h = self.store.sensor_size
        ch, cw = self.crop or (h, w)
        sl = (slice(y0, y0 + ch), slice(x0, x0 + cw))
        recs = [self.store[self.starts[i] + k] for k in range(self.seq_len)]
        left = np.stack([np.asarray(r.left)[(slice(None), *sl)] for r in recs]).astype(np.float32)
        right = np.stack([np.asarray(r.right)[(slice(None), *sl)] for r in recs]).astype(np.float32)
        gt = np.stack([np.asarray(r.gt)[sl] for r in recs]).astype(np.float32)
        if self.augment is not None:
            self.augment(left, right, self.store.sbt_settings,
                         np.random.default_rng((self.seed, self.epoch, i, 1)))
        return {"left": torch.from_numpy(left), "right": torch.from_numpy(right), "gt": torch.from_numpy(gt)}
