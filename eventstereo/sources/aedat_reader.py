"""A bounded-time AEDAT4 replay reader on the `aedat` package (an LZ4/zstd + flatbuffers decoder in Rust).

Why not dv-processing for replay: on a file with damaged packets its ``getEventsTimeRange`` spins
forever inside native code, holding the GIL, so not even Ctrl-C stops it. `aedat` decodes one packet
per Python call and raises on the first damaged one (about 50 ns per event), so every read ends in
time proportional to the file, and a KeyboardInterrupt lands between two packets.

On open, one pass over the whole file (the pre-check) indexes every event packet of the two streams
(its ordinal and time span) and proves the file decodes: damage anywhere is an InputError naming the
packet, its byte offset in the file and the last good time, before any window is cut.
Windows are then served from a forward cursor that holds only the packets overlapping the window;
seeking backwards re-opens the decoder (ahead of the window, packets are decoded and dropped).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eventstereo.errors import InputError
from eventstereo.events.types import EVENT_DTYPE


def _aedat():
    try:
        import aedat
    except ImportError:
        raise InputError("the 'aedat' package is not installed; AEDAT4 replay needs it "
                         "(pip install 'eventstereo[dv]')") from None
    return aedat


def _to_events(raw: np.ndarray, t0_us: int) -> np.ndarray:
    out = np.empty(len(raw), EVENT_DTYPE)
    out["x"], out["y"] = raw["x"], raw["y"]
    out["t"] = raw["t"].astype(np.int64) - np.int64(t0_us)
    out["p"] = raw["on"].astype(np.int8)
    return out


def packet_offset(path: Path, ordinal: int) -> int | None:
    """Byte offset of packet ``ordinal`` (0-based), walking the packet headers (int32 stream id, uint32
    size); None if the headers before it are themselves unreadable."""
    magic = len(b"#!AER-DAT4.0\r\n")
    try:
        with open(path, "rb") as f:
            f.seek(magic)
            (header_size,) = struct.unpack("<I", f.read(4))
            offset = magic + 4 + header_size
            end = path.stat().st_size
            if offset > end:
                return None
            for _ in range(ordinal):
                f.seek(offset + 4)
                (size,) = struct.unpack("<I", f.read(4))
                offset += 8 + size
                if offset > end:
                    return None
            return offset
    except (OSError, struct.error):
        return None


@dataclass
class _StreamIndex:
    ordinals: np.ndarray  # packet ordinal in the file (all streams counted)
    t_first: np.ndarray  # running max of each packet's first timestamp (monotone: searchsorted works)
    t_last: np.ndarray
    n_events: int

    @property
    def t_range(self) -> tuple[int, int]:
        return int(self.t_first[0]), int(self.t_last.max())


class AedatStreamReader:
    """Events of two AEDAT4 event streams (ids as in the header) by absolute time range, in bounded time."""

    def __init__(self, path: str | Path, stream_ids: tuple[int, int]):
        self.path = Path(path)
        self.stream_ids = tuple(int(s) for s in stream_ids)
        self.index = self._scan()
        self._open()

    # ------------------------------------------------------------------ pre-check
    def _packets(self) -> Iterator[tuple[int, dict]]:
        """(ordinal, packet) over the file; InputError naming the place of the first damaged packet."""
        aedat = _aedat()
        ordinal, first_t, last_t = -1, None, None
        try:
            decoder = aedat.Decoder(str(self.path))
            for ordinal, packet in enumerate(decoder):
                events = packet.get("events")
                if events is not None and len(events):
                    last_t = int(events["t"][-1])
                    first_t = last_t if first_t is None else first_t
                yield ordinal, packet
        except (RuntimeError, OSError, ValueError) as e:
            bad = ordinal + 1
            offset = packet_offset(self.path, bad)
            where = f"packet {bad}" + (f" at byte {offset:,}" if offset is not None else "")
            if last_t is not None:
                where += f", after a good event {(last_t - first_t) / 1e6:.3f} s into the recording"
            raise InputError(f"damaged or truncated AEDAT4 data in {where} ({e})",
                             source=str(self.path)) from None

    def _scan(self) -> dict[int, _StreamIndex]:
        found: dict[int, list[tuple[int, int, int, int]]] = {s: [] for s in self.stream_ids}
        for ordinal, packet in self._packets():
            sid, events = packet.get("stream_id"), packet.get("events")
            if sid in found and events is not None and len(events):
                found[sid].append((ordinal, int(events["t"][0]), int(events["t"].max()), len(events)))
        index = {}
        for sid, rows in found.items():
            if not rows:
                raise InputError(f"event stream {sid} holds no events", source=str(self.path))
            a = np.array(rows, dtype=np.int64)
            index[sid] = _StreamIndex(a[:, 0], np.maximum.accumulate(a[:, 1]), a[:, 2], int(a[:, 3].sum()))
        return index

    # ------------------------------------------------------------------ cursor
    def _open(self) -> None:
        self._it = self._packets()
        self._pos = -1  # ordinal of the last packet taken from the decoder
        self._low = -(1 << 62)  # events before this time were dropped: an earlier request re-opens
        # per stream, decoded packets in file order as (first t, last t, events, time-sorted?)
        self._buf: dict[int, list[tuple[int, int, np.ndarray, bool]]] = {s: [] for s in self.stream_ids}

    def _needed_ordinal(self, b: int) -> int:
        """The last packet ordinal that may hold an event before ``b`` (in either stream)."""
        need = -1
        for idx in self.index.values():
            k = int(np.searchsorted(idx.t_first, b, side="left"))
            if k:
                need = max(need, int(idx.ordinals[k - 1]))
        return need

    def _take(self, events: np.ndarray) -> tuple[int, int, np.ndarray, bool]:
        t = events["t"]
        ordered = bool(np.all(t[1:] >= t[:-1]))
        return int(t[0] if ordered else t.min()), int(t[-1] if ordered else t.max()), events, ordered

    def events(self, stream_id: int, a: int, b: int, t0_us: int = 0) -> np.ndarray:
        """EVENT_DTYPE events of ``stream_id`` with a <= t < b (absolute us), times relative to ``t0_us``."""
        if a < self._low:
            self._open()
        need = self._needed_ordinal(b)
        while self._pos < need:
            try:
                ordinal, packet = next(self._it)
            except StopIteration:
                break
            self._pos = ordinal
            sid, ev = packet.get("stream_id"), packet.get("events")
            if sid in self._buf and ev is not None and len(ev):
                self._buf[sid].append(self._take(ev))
        for sid, parts in self._buf.items():  # drop what ends before the window
            if parts and parts[0][1] < a:
                self._buf[sid] = [p for p in parts if p[1] >= a]
        self._low = a
        parts = []
        for t_first, t_last, ev, ordered in self._buf[int(stream_id)]:
            if t_first >= b or t_last < a:
                continue
            if ordered:
                t = ev["t"]
                parts.append(ev[np.searchsorted(t, a, "left"):np.searchsorted(t, b, "left")])
            else:
                parts.append(ev[(ev["t"] >= a) & (ev["t"] < b)])
        if not parts:
            return np.empty(0, EVENT_DTYPE)
        return _to_events(np.concatenate(parts), t0_us)
