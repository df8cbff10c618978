"""`eventstereo bench app`: what the GUI costs the model, how fast it draws, and its latency.

The same synthetic windows (rendered once, replayed from memory, as `bench stream` does) run through
the bundled demo model twice per round: headless (a bare StreamSession, what `eventstereo stream`
runs) and inside the offscreen main window (worker thread, frame preparation, drawing in the GUI
thread at the same time). Rounds interleave so load drift on a shared machine hits both alike; the
medians are compared as a ratio. Also measured: the display rate during the app run (frames drawn
per second, bounded by the model), the GUI thread's drawing capacity (frames always ready), and the
latency from a window being ready (encoded) to its pixels.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

from eventstereo.bench._common import bench_parser, report


def build_parser() -> argparse.ArgumentParser:
    p = bench_parser("app", __doc__.splitlines()[0])
    p.add_argument("--windows", type=int, default=20, help="windows per run")
    p.add_argument("--rounds", type=int, default=3, help="headless/app rounds (interleaved)")
    p.add_argument("--seed", type=int, default=1000, help="synthetic scene seed")
    p.add_argument("--width", type=int, default=346, help="synthetic sensor width (px)")
    p.add_argument("--height", type=int, default=260, help="synthetic sensor height (px)")
    p.add_argument("--draw-seconds", type=float, default=2.0, help="time spent measuring drawing capacity")
    return p


def _headless(source, loaded) -> float:
    from eventstereo.runtime.session import SessionOptions, StreamSession

    with StreamSession(source, loaded.model, loaded.sbt_settings, SessionOptions()) as session:
        for _ in session.run():
            pass
        return session.summary()["windows_per_s"]


def _in_app(win, app, source) -> dict:
    from app.main import run_headless

    win.frames_drawn = 0
    win.latencies.clear()
    win.queue_ms.clear()
    win.draw_ms.clear()
    t0 = time.perf_counter()
    win.set_source(source)
    run_headless(win, app, timeout_s=600)
    seconds = time.perf_counter() - t0
    stats = win.stats()
    stats["display_fps"] = win.frames_drawn / seconds
    lat = sorted(win.latencies)
    stats["latency_p95_ms"] = lat[int(0.95 * (len(lat) - 1))] if lat else math.nan
    return stats


def _draw_capacity(win, app, seconds: float) -> float:
    """Redraws per second of the GUI thread when a new frame is always waiting."""
    frame = win.last_frame
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        win.box.put(frame)
        win.draw_latest()
        app.processEvents()
        n += 1
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtWidgets

    from app.window import MainWindow
    from eventstereo.bench.stream import _Replay
    from eventstereo.model.io import load_bundled_model
    from eventstereo.sources.registry import SyntheticSourceConfig, open_config

    with open_config(SyntheticSourceConfig(seed=args.seed, width=args.width, height=args.height)) as synth:
        source = _Replay([w for _, w in zip(range(args.windows), synth)], synth)
    loaded = load_bundled_model(fold_bn=True)
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["eventstereo-bench"])
    win = MainWindow()
    win.resize(1280, 800)
    win.show()
    _headless(_Replay(source.windows[:3], source), loaded)  # warm-up: first calls, allocator, numba
    headless, in_app = [], []
    for _ in range(args.rounds):
        headless.append(_headless(source, loaded))
        in_app.append(_in_app(win, app, source))
    capacity = _draw_capacity(win, app, args.draw_seconds)
    win.close()

    def med(key: str) -> float:
        return statistics.median(s[key] for s in in_app)

    h, a = statistics.median(headless), med("model_fps")
    results = {
        "windows": args.windows, "rounds": args.rounds,
        "headless_windows_per_s": h, "app_windows_per_s": a, "app_vs_headless": a / h,
        "display_fps": med("display_fps"), "draw_capacity_fps": capacity, "handoff_ms": med("handoff_ms"),
        "latency_ms": med("latency_ms"), "latency_p95_ms": med("latency_p95_ms"), "queue_ms": med("queue_ms"),
        "one_pa": med("one_pa"),
    }
    lines = [
        f"demo model on {args.windows} synthetic windows ({args.width}x{args.height}), "
        f"median of {args.rounds} interleaved rounds",
        f"  headless StreamSession : {h:6.2f} windows/s",
        f"  inside the app         : {a:6.2f} windows/s  ({a / h:.2f} x headless)",
        f"  display                : {results['display_fps']:6.2f} frames drawn/s during the run "
        f"(bounded by the model); drawing capacity {capacity:.1f} fps with painting "
        f"(hand-off to the views {results['handoff_ms']:.1f} ms a frame)",
        f"  latency ready->pixels  : {results['latency_ms']:6.1f} ms mean, "
        f"{results['latency_p95_ms']:.1f} ms p95 (plus {results['queue_ms']:.0f} ms queued behind the "
        "model: replaying as fast as possible, the reader runs ahead)",
    ]
    report(results, lines, args.json)
    return 0
