"""StreamSession: source -> SBT -> model.step -> disparity, one window at a time, with live statistics.

Reading and encoding run in a background thread that feeds a bounded queue, so they overlap with
inference: the numba SBT kernel and torch's kernels both release the GIL, and the bound keeps a fast
source from running ahead of a slow model. The queue has two modes: recorded files block the reader
(lossless: every window is inferred), live cameras drop the oldest queued window instead (counted; the
window after a drop is marked ``gap_before``), so behind a slow model a camera stays at the present
rather than falling further behind it. Spiking state is reset before the first window, after a seek,
and before every window whose ``gap_before`` is set, because state carried across a time gap describes
a scene that is gone.

The GUI, ``eventstereo stream`` and evaluation all iterate ``StreamSession.run()``, which yields a
``WindowResult`` per window. Control from any thread: ``stop()`` ends the iteration at the next window
(a later ``run()`` starts afresh: new queue, reset state and metrics); ``pause()`` / ``resume()`` hold
the iteration and keep the queue, the spiking state and the running metrics; ``step()`` lets one window
through while paused; ``seek()`` jumps and resets state on purpose; ``set_speed()`` paces windows at
the source clock (1.0 = real time) or runs as fast as possible (None).

The model must fit the source (``check_model_fits``): same window length as it was trained on and a
sensor wider than its disparity range, else the session refuses with an InputError the CLI and the GUI
both show as one line.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from eventstereo.errors import InputError
from eventstereo.events.lookback import LookbackSettings, WindowHistory
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
    queue_size: windows encoded ahead of inference; drop_oldest: when the queue is full, drop its oldest
    window instead of blocking the reader (None = drop for live sources, block for recordings);
    speed: pace windows at this multiple of the source clock (1.0 = real time, None = as fast as
    possible); measure_rates: per-layer firing rates and energy (costs a forward hook per spiking
    layer); energy_recount: windows between exact operation counts (see _RateMeter); subpixel_impl: the
    MAP estimator's implementation (eventstereo.stereo.estimator: "auto" takes the fused CPU kernel,
    "torch" the reference the speed benchmark's baseline uses); lookback: let a window with fewer events
    than ``lookback.min_events`` borrow the preceding windows' events (eventstereo.events.lookback; off
    by default)."""

    device: str = "cpu"
    channels_last: bool = False
    cuda_graph: bool = False
    overlap: bool = True
    queue_size: int = 4
    drop_oldest: bool | None = None
    speed: float | None = None
    measure_rates: bool = True
    energy_recount: int = 50
    subpixel_radius: int = 2
    subpixel_impl: str = "auto"
    lookback: LookbackSettings = LookbackSettings()

    def resolved_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


@dataclass
class WindowResult:
    """What the session knows after one window. ``metrics`` are running means over the windows with GT
    so far (REFERENCE §2 keys: one_pa, mde_cm, ...); times are milliseconds; ``reset`` tells whether
    spiking state was cleared before this window; ``dropped`` counts the windows the queue dropped so
    far in this run; ``t_read`` is the ``time.perf_counter()`` at which the window was read complete,
    so a display can measure latency from the window's end to its pixels; ``t_infer`` the one at which
    inference began (``t_infer - t_read`` is the time the window waited in the queue); ``lookback`` the
    number of windows whose events its SBT frame spans (1 unless SessionOptions.lookback lengthened it)."""

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
    dropped: int = 0
    t_read: float = 0.0
    t_infer: float = 0.0
    lookback: int = 1


@dataclass
class _Encoded:
    generation: int
    window: StereoWindow
    left: np.ndarray
    right: np.ndarray
    read_ms: float
    encode_ms: float
    t_read: float = 0.0
    lookback: int = 1


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
    lookback: int = 0
    firing_rate: float = 0.0
    energy_mj: float = 0.0
    dropped: int = 0
    started: float = 0.0
    elapsed: float = 0.0


class _WindowQueue:
    """The bounded hand-off from the reader thread: blocks the reader when full (lossless), or drops
    the oldest window (``drop_oldest``), counts it and marks the window after it ``gap_before``."""

    def __init__(self, size: int, drop_oldest: bool):
        self.size, self.drop_oldest = max(1, size), drop_oldest
        self.dropped = 0
        self._items: deque = deque()
        self._cv = threading.Condition()

    def put(self, item, stopped: Callable[[], bool], stale: Callable[[], bool] = lambda: False) -> bool:
        """Queue ``item``; False if ``stopped()`` came first. A blocked item that goes ``stale()`` (a seek
        made it obsolete) is discarded, so the reader can apply the seek."""
        with self._cv:
            while len(self._items) >= self.size:
                if self.drop_oldest and isinstance(item, _Encoded):  # end markers never push data out
                    self._items.popleft()
                    self.dropped += 1
                    after = self._items[0] if self._items else item
                    if isinstance(after, _Encoded):
                        after.window = replace(after.window, gap_before=True)
                    break
                if stopped():
                    return False
                if stale():
                    return True
                self._cv.wait(0.05)
            self._items.append(item)
            self._cv.notify_all()
            return True

    def get(self, timeout: float):
        """The oldest item; queue.Empty after ``timeout`` seconds without one."""
        with self._cv:
            if not self._items and not self._cv.wait_for(lambda: bool(self._items), timeout):
                raise queue.Empty
            item = self._items.popleft()
            self._cv.notify_all()
            return item


def check_model_fits(source: Source, model: torch.nn.Module, settings: SBTSettings) -> list[str]:
    """Raise InputError when ``model`` cannot run on ``source``; return notes on what merely degrades.

    The model must see windows as long as those it was trained on (its SBT bins would mean other
    times) and a sensor wider than its disparity range. A source whose disparities go beyond the
    model's range still runs: those pixels count as errors, and the returned note says so.
    """
    name = source.name
    trained_ms, cut_ms = settings.window_us / 1000, source.window_us / 1000
    if source.window_us != settings.window_us:
        raise InputError(f"the model was trained on {trained_ms:g} ms windows but the {name} source cuts "
                         f"{cut_ms:g} ms windows: use --window-ms {trained_ms:g}")
    w, h = source.sensor_size
    max_d = getattr(model, "max_disparity", None)
    if max_d is not None and w <= max_d:
        raise InputError(f"the {name} sensor is {w}x{h} px, too narrow for the model's disparity range "
                         f"0-{max_d} px (the width must exceed it)")
    notes = []
    if max_d is not None and source.max_disparity > max_d:
        notes.append(f"the {name} source's disparities may reach {source.max_disparity} px; the model "
                     f"covers 0-{max_d} px, larger ones count as errors")
    return notes


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
        self.notes = check_model_fits(source, model, sbt_settings)
        for note in self.notes:
            log.debug("%s", note)
        self.drop_oldest = (bool(getattr(source, "live", False)) if options.drop_oldest is None
                            else options.drop_oldest)
        self._speed = options.speed
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
        self._turn = threading.Condition()
        self._paused = False
        self._steps = 0
        self._clock: tuple[float, int] | None = None  # (perf_counter, source us) pacing is anchored at
        self._queue: _WindowQueue | None = None
        self.metrics = StereoMetrics()
        self._meter = (_RateMeter(self.model, self._step, options.energy_recount)
                       if options.measure_rates and not graphed else None)
        self._totals = _Totals()

    # --- control (safe from any thread) -------------------------------------------------------------
    def stop(self) -> None:
        """End ``run()`` at the next window; the reader thread exits and the source stays open."""
        self._stop.set()
        with self._turn:
            self._turn.notify_all()

    def pause(self) -> None:
        """Hold ``run()`` before its next window, keeping the queue, the spiking state and the metrics."""
        with self._turn:
            self._paused = True
            self._steps = 0

    def resume(self) -> None:
        """Continue a paused ``run()`` where it stopped (pacing restarts from now)."""
        with self._turn:
            self._paused, self._steps, self._clock = False, 0, None
            self._turn.notify_all()

    def step(self, windows: int = 1) -> None:
        """While paused, let ``windows`` more windows through."""
        with self._turn:
            self._steps += max(0, int(windows))
            self._clock = None
            self._turn.notify_all()

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def speed(self) -> float | None:
        return self._speed

    def set_speed(self, speed: float | None) -> None:
        """Pace at ``speed`` x the source clock (1.0 = real time), or None: as fast as possible."""
        if speed is not None and not (math.isfinite(speed) and speed > 0):
            raise InputError(f"playback speed must be a positive finite number or None, got {speed}")
        with self._turn:
            self._speed, self._clock = speed, None
            self._turn.notify_all()

    @property
    def dropped(self) -> int:
        """Windows the drop-oldest queue dropped in the current (or last) run."""
        return self._queue.dropped if self._queue is not None else 0

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
        with self._turn:
            self._clock = None

    # --- the loop -----------------------------------------------------------------------------------
    def run(self, max_windows: int | None = None) -> Iterator[WindowResult]:
        """Yield one WindowResult per window until the source ends, ``max_windows`` or ``stop()``.

        The run starts when ``run()`` is CALLED, not at the first ``next()``: a ``stop()`` that comes after
        the call (from another thread, before the iteration begins) ends the run instead of being lost."""
        self._stop.clear()
        self._totals = _Totals(started=time.perf_counter())
        self.metrics.reset()
        self._queue = None
        with self._turn:
            self._clock = None
        return self._iterate(max_windows)

    def _iterate(self, max_windows: int | None) -> Iterator[WindowResult]:
        produced = self._produce_threaded(max_windows) if self.options.overlap else self._produce(max_windows)
        last_generation = None
        try:
            while self._await_turn():
                item = next(produced, None)
                if item is None or self._stop.is_set():
                    break
                if item.generation != self._generation:
                    continue  # encoded before a seek
                if not self._admit() or not self._pace(item.window):
                    break
                reset = item.window.gap_before or item.generation != last_generation
                last_generation = item.generation
                yield self._infer(item, reset)
        finally:
            self._stop.set()
            produced.close()
            self._totals.elapsed = time.perf_counter() - self._totals.started

    def __iter__(self) -> Iterator[WindowResult]:
        return self.run()

    def _await_turn(self) -> bool:
        """Wait while paused without a step granted; False once stopped."""
        with self._turn:
            self._turn.wait_for(lambda: self._stop.is_set() or not self._paused or self._steps > 0)
        return not self._stop.is_set()

    def _admit(self) -> bool:
        """Let the window in hand through: at once when playing, else for a granted step (which it
        uses up), holding it until one comes; False once stopped. A window taken before a pause (or
        already in inference) never uses a step granted afterwards."""
        with self._turn:
            self._turn.wait_for(lambda: self._stop.is_set() or not self._paused or self._steps > 0)
            if self._stop.is_set():
                return False
            if self._paused:
                self._steps -= 1
        return True

    def _pace(self, window: StereoWindow) -> bool:
        """At a set speed, wait until the window's end is due on the wall clock; False once stopped."""
        with self._turn:
            speed = self._speed
            if speed is None or self._paused:
                return True
            now = time.perf_counter()
            if self._clock is None:
                self._clock = (now, window.t_end_us)
            t0, us0 = self._clock
            due = t0 + (window.t_end_us - us0) / 1e6 / speed
            if due < now - 0.5 or window.t_end_us < us0:  # far behind, or time jumped back: re-anchor
                self._clock = (now, window.t_end_us)
                return True
            self._turn.wait_for(lambda: self._stop.is_set() or self._clock is None or self._paused,
                                timeout=max(0.0, due - now))
        return not self._stop.is_set()

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
        history, last_generation = WindowHistory(self.options.lookback), None
        for generation, win, read_ms in self._read(max_windows):
            t0 = time.perf_counter()
            if generation != last_generation:
                history.reset()
                last_generation = generation
            span = history.span(win)
            settings = span.sbt_settings(self.settings, win.t_end_us)
            left = encode_sbt(span.left, win.t_end_us, size, settings)
            right = encode_sbt(span.right, win.t_end_us, size, settings)
            yield _Encoded(generation, win, left, right, read_ms, (time.perf_counter() - t0) * 1e3,
                           t_read=t0, lookback=span.windows)

    def _produce_threaded(self, max_windows: int | None) -> Iterator[_Encoded]:
        q = self._queue = _WindowQueue(self.options.queue_size, self.drop_oldest)

        def put(item) -> bool:
            stale = ((lambda: item.generation != self._generation) if isinstance(item, _Encoded)
                     else (lambda: False))
            return q.put(item, self._stop.is_set, stale)

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
        tot.lookback += item.lookback
        tot.firing_rate += rate
        tot.energy_mj += energy
        tot.dropped = self.dropped
        elapsed = time.perf_counter() - tot.started
        return WindowResult(
            index=tot.windows - 1, window=item.window, disparity=disparity, gt=gt,
            metrics=self.metrics.summary() if gt is not None or self.metrics.n else {},
            firing_rates=rates, firing_rate=rate, energy_mj=energy, latency_ms=latency,
            read_ms=item.read_ms, encode_ms=item.encode_ms, infer_ms=infer_ms,
            windows_per_s=tot.windows / max(elapsed, 1e-9), reset=reset, dropped=tot.dropped,
            t_read=item.t_read, t_infer=t0, lookback=item.lookback,
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
            "lookback_windows": tot.lookback / n,
            "firing_rate": tot.firing_rate / n,
            "energy_mj": tot.energy_mj / n,
            "resets": tot.resets,
            "dropped": self.dropped,
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
