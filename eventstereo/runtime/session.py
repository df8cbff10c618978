"""StreamSession: source -> SBT -> model.step -> disparity, one window at a time, with live statistics.

Reading and encoding run in a background thread that feeds a bounded queue, so they overlap with
inference: the numba SBT kernel and torch's kernels both release the GIL, and the bound keeps a fast
source from running ahead of a slow model (a live camera then drops nothing silently: the reader
blocks). Spiking state is reset before the first window, after a seek, and before every window whose
``gap_before`` is set, because state carried across a time gap describes a scene that is gone.

The GUI, ``eventstereo stream`` and evaluation all iterate ``StreamSession.run()``, which yields a
``WindowResult`` per window; ``stop()`` (from any thread) ends the iteration at the next window.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from eventstereo.events.sbt import SBTSettings, encode_sbt
from eventstereo.events.window import StereoWindow
from eventstereo.sources.base import Source
from eventstereo.stereo import StereoMetrics, subpixel_map

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionOptions:
    """device: "cpu", "cuda", "cuda:1" or "auto"; channels_last: convert conv weights and inputs to the
    channels-last layouts; cuda_graph: on CUDA, replay model.step as one CUDA graph
    (eventstereo.runtime.cuda_graph; firing rates are then not measured: hooks do not run in a replay).
    There is no torch.compile option: it crashed under inference_mode, compiled for minutes and ran
    1.7-6x slower than the eager step (issue 15); overlap: read and encode in a
    background thread (off = everything in the caller's thread, the baseline the benchmark compares);
    queue_size: windows encoded ahead of inference; measure_rates: per-layer firing rates and energy
    (costs a forward hook per spiking layer); energy_recount: windows between exact operation counts
    (see _RateMeter); subpixel_impl: the MAP estimator's implementation (eventstereo.stereo.estimator:
    "auto" takes the fused CPU kernel, "torch" the reference the speed benchmark's baseline uses)."""

    device: str = "cpu"
    channels_last: bool = False
    cuda_graph: bool = False
    overlap: bool = True
    queue_size: int = 4
    measure_rates: bool = True
    energy_recount: int = 50
    subpixel_radius: int = 2
    subpixel_impl: str = "auto"

    def resolved_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


@dataclass
class WindowResult:
    """What the session knows after one window. ``metrics`` are running means over the windows with GT
    so far (REFERENCE §2 keys: one_pa, mde_cm, ...); times are milliseconds; ``reset`` tells whether
    spiking state was cleared before this window."""

    index: int
    window: StereoWindow
    disparity: np.ndarray
    gt: np.ndarray | None
    metrics: dict[str, float]
    firing_rates: dict[str, float]
    firing_rate: float
    energy_mj: float
    latency_ms: float
    read_ms: float
    encode_ms: float
    infer_ms: float
    windows_per_s: float
    reset: bool


@dataclass
class _Encoded:
    generation: int
    window: StereoWindow
    left: np.ndarray
    right: np.ndarray
    read_ms: float
    encode_ms: float


@dataclass
class _Failed:
    error: BaseException


_END = object()


@dataclass
class _Totals:
    windows: int = 0
    resets: int = 0
    latency_ms: list[float] = field(default_factory=list)
    read_ms: float = 0.0
    encode_ms: float = 0.0
    infer_ms: float = 0.0
    firing_rate: float = 0.0
    energy_mj: float = 0.0
    started: float = 0.0
    elapsed: float = 0.0


def to_channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """Put 4-D weights in channels_last and 5-D ones in channels_last_3d (Module.to cannot do both)."""
    for p in list(model.parameters()) + list(model.buffers()):
        if p.dim() == 4:
            p.data = p.data.contiguous(memory_format=torch.channels_last)
        elif p.dim() == 5:
            p.data = p.data.contiguous(memory_format=torch.channels_last_3d)
    return model


class StreamSession:
    """Runs a stereo model over a source's windows (see the module docstring).

    ``model`` has ``step(left, right)`` taking (B, C, H, W) SBT frames and returning a cost (B, D, H, W),
    plus ``reset()``; ``sbt_settings`` must be the encoding the model was trained with.
    """

    def __init__(self, source: Source, model: torch.nn.Module, sbt_settings: SBTSettings,
                 options: SessionOptions = SessionOptions()):
        self.source = source
        self.settings = sbt_settings
        self.options = options
        self.device = options.resolved_device()
        self.model = model.to(self.device).eval()
        if options.channels_last:
            to_channels_last(self.model)
        graphed = options.cuda_graph and self.device.type == "cuda"
        if graphed:
            from eventstereo.runtime.cuda_graph import GraphedStep

            self.model = GraphedStep(self.model)
        self._step = self.model.step
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._generation = 0
        self._pending_seek: int | None = None
        self.metrics = StereoMetrics()
        self._meter = (_RateMeter(self.model, self._step, options.energy_recount)
                       if options.measure_rates and not graphed else None)
        self._totals = _Totals()

    # --- control (safe from any thread) -------------------------------------------------------------
    def stop(self) -> None:
        """End ``run()`` at the next window; the reader thread exits and the source stays open."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def seek(self, t_us: int) -> None:
        """Continue from time ``t_us``: windows already encoded are dropped and state is reset."""
        if not self.source.can_seek:
            raise NotImplementedError(f"{self.source.name} cannot seek")
        with self._lock:
            self._pending_seek = int(t_us)
            self._generation += 1

    # --- the loop -----------------------------------------------------------------------------------
    def run(self, max_windows: int | None = None) -> Iterator[WindowResult]:
        """Yield one WindowResult per window until the source ends, ``max_windows`` or ``stop()``."""
        self._stop.clear()
        self._totals = _Totals(started=time.perf_counter())
        self.metrics.reset()
        produced = self._produce_threaded(max_windows) if self.options.overlap else self._produce(max_windows)
        last_generation = None
        try:
            for item in produced:
                if self._stop.is_set():
                    break
                if item.generation != self._generation:
                    continue  # encoded before a seek
                reset = item.window.gap_before or item.generation != last_generation
                last_generation = item.generation
                yield self._infer(item, reset)
        finally:
            self._stop.set()
            produced.close()
            self._totals.elapsed = time.perf_counter() - self._totals.started

    def __iter__(self) -> Iterator[WindowResult]:
        return self.run()

    def _read(self, max_windows: int | None) -> Iterator[tuple[int, StereoWindow, float]]:
        """The source's windows with their generation and read time, applying seeks between windows."""
        count = 0
        windows = iter(self.source)
        while not self._stop.is_set() and (max_windows is None or count < max_windows):
            with self._lock:
                seek, self._pending_seek = self._pending_seek, None
                generation = self._generation
            if seek is not None:
                self.source.seek(seek)
                windows = iter(self.source)
            t0 = time.perf_counter()
            win = next(windows, None)
            if win is None:
                return
            count += 1
            yield generation, win, (time.perf_counter() - t0) * 1e3

    def _produce(self, max_windows: int | None) -> Iterator[_Encoded]:
        size = self.source.sensor_size
        for generation, win, read_ms in self._read(max_windows):
            t0 = time.perf_counter()
            left = encode_sbt(win.left, win.t_end_us, size, self.settings)
            right = encode_sbt(win.right, win.t_end_us, size, self.settings)
            yield _Encoded(generation, win, left, right, read_ms, (time.perf_counter() - t0) * 1e3)

    def _produce_threaded(self, max_windows: int | None) -> Iterator[_Encoded]:
        q: queue.Queue = queue.Queue(maxsize=max(1, self.options.queue_size))

        def put(item) -> bool:
            while not self._stop.is_set():
                try:
                    q.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    pass
            return False

        def work() -> None:
            try:
                for item in self._produce(max_windows):
                    if not put(item):
                        return
            except BaseException as e:  # handed to the consumer, which re-raises it in its own thread
                put(_Failed(e))
            finally:
                put(_END)

        reader = threading.Thread(target=work, name="eventstereo-reader", daemon=True)
        reader.start()
        try:
            while True:
                try:
                    item = q.get(timeout=0.05)
                except queue.Empty:
                    if self._stop.is_set() or not reader.is_alive():
                        return
                    continue
                if item is _END:
                    return
                if isinstance(item, _Failed):
                    raise item.error
                yield item
        finally:
            self._stop.set()
            reader.join(timeout=5.0)

    @torch.inference_mode()
    def _infer(self, item: _Encoded, reset: bool) -> WindowResult:
        t0 = time.perf_counter()
        if reset:
            self.model.reset()
            self._totals.resets += 1
        left, right = (torch.from_numpy(f).unsqueeze(0).to(self.device, non_blocking=True)
                       for f in (item.left, item.right))
        if self.options.channels_last:
            left, right = (x.contiguous(memory_format=torch.channels_last) for x in (left, right))
        if self._meter is not None:
            cost, rates, rate, energy = self._meter.run(left, right)
        else:
            cost, rates, rate, energy = self._step(left, right), {}, math.nan, math.nan
        disparity = subpixel_map(cost, radius=self.options.subpixel_radius,
                                 impl=self.options.subpixel_impl)[0].float().cpu().numpy()
        infer_ms = (time.perf_counter() - t0) * 1e3
        gt = item.window.gt_disparity
        if gt is not None:
            self.metrics.update(disparity, gt, self.source.fxb)
        tot = self._totals
        tot.windows += 1
        latency = item.encode_ms + infer_ms
        tot.latency_ms.append(latency)
        tot.read_ms += item.read_ms
        tot.encode_ms += item.encode_ms
        tot.infer_ms += infer_ms
        tot.firing_rate += rate
        tot.energy_mj += energy
        elapsed = time.perf_counter() - tot.started
        return WindowResult(
            index=tot.windows - 1, window=item.window, disparity=disparity, gt=gt,
            metrics=self.metrics.summary() if gt is not None or self.metrics.n else {},
            firing_rates=rates, firing_rate=rate, energy_mj=energy, latency_ms=latency,
            read_ms=item.read_ms, encode_ms=item.encode_ms, infer_ms=infer_ms,
            windows_per_s=tot.windows / max(elapsed, 1e-9), reset=reset,
        )

    def close(self) -> None:
        """Remove the measurement hooks from the model (the source is the caller's to close)."""
        if self._meter is not None:
            self._meter.close()
            self._meter = None

    def __enter__(self) -> StreamSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- results ------------------------------------------------------------------------------------
    def summary(self) -> dict:
        """Totals of the last ``run()``: throughput, latency, accuracy, firing rate, energy."""
        tot = self._totals
        n = max(tot.windows, 1)
        elapsed = tot.elapsed or (time.perf_counter() - tot.started)
        lat = np.asarray(tot.latency_ms or [math.nan])
        out = {
            "windows": tot.windows,
            "seconds": elapsed,
            "windows_per_s": tot.windows / max(elapsed, 1e-9),
            "latency_ms": float(lat.mean()),
            "latency_p95_ms": float(np.percentile(lat, 95)),
            "read_ms": tot.read_ms / n,
            "encode_ms": tot.encode_ms / n,
            "infer_ms": tot.infer_ms / n,
            "firing_rate": tot.firing_rate / n,
            "energy_mj": tot.energy_mj / n,
            "resets": tot.resets,
            "device": str(self.device),
        }
        out.update(self.metrics.summary())
        out["gt_windows"] = out.pop("n")
        return out


class _StepCall(torch.nn.Module):
    """Presents ``step`` as a module call, so the op counter can hook the layers of one window's step."""

    def __init__(self, model: torch.nn.Module, step):
        super().__init__()
        self.model = model
        self._fn = step
        self.output: torch.Tensor | None = None

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        self.output = self._fn(left, right)
        return self.output


class _RateMeter:
    """Per-window firing rates of every spiking layer, and the energy of the window's operations.

    Rates come from a FiringRateProbe (cheap enough to stay attached). Energy (REFERENCE §10:
    accumulates for spike-fed layers at their input firing rate, multiply-accumulates for real-valued
    inputs) needs every weight layer's input rate, which costs an extra pass over all activations; it
    is counted exactly on the first window and every ``recount`` windows, and in between its spike-fed
    part is scaled by the window's mean firing rate relative to the counted window's, so it follows the
    scene's activity at the probe's cost.
    """

    def __init__(self, model: torch.nn.Module, step, recount: int):
        from eventstereo.snn import FiringRateProbe

        self.probe = FiringRateProbe(model).attach()
        self.call = _StepCall(model, step)
        self.recount = max(1, recount)
        self.windows = 0
        self.fixed_mj = self.spiking_mj = self.ref_rate = math.nan

    def run(self, left: torch.Tensor, right: torch.Tensor
            ) -> tuple[torch.Tensor, dict[str, float], float, float]:
        from eventstereo.snn import count_ops, energy_mj

        self.probe.reset()
        exact = self.windows % self.recount == 0
        self.windows += 1
        if exact:
            ops = count_ops(self.call, (left, right))
            cost, self.call.output = self.call.output, None
        else:
            cost = self.call(left, right)
            self.call.output = None
        rate = self.probe.mean_rate()
        if exact:
            self.fixed_mj = energy_mj(o for o in ops if not o.spike_fed)
            self.spiking_mj = energy_mj(o for o in ops if o.spike_fed)
            self.ref_rate = rate
            energy = self.fixed_mj + self.spiking_mj
        else:
            scale = rate / self.ref_rate if self.ref_rate > 0 else 1.0
            energy = self.fixed_mj + self.spiking_mj * scale
        return cost, self.probe.rates(), rate, energy

    def close(self) -> None:
        self.probe.detach()
