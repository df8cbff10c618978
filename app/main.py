"""`eventstereo app`: the window on a source (options as in `stream`), or a headless run of it.

Headless (``--frames N``): runs offscreen for N model windows, saves a screenshot of the whole window
(``--screenshot``) and with ``--json`` prints one JSON object as the last line: frames, model_fps,
display_fps, latency_ms, dropped, one_pa and more.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time

from eventstereo import argtypes
from eventstereo.errors import EventStereoError, InputError
from eventstereo.runtime.stream_command import add_lookback_arguments, lookback_from_args
from eventstereo.sources.registry import add_source_arguments, config_from_args


def build_parser() -> argparse.ArgumentParser:
    p = argtypes.OneLineErrorParser(prog="eventstereo app", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_arguments(p)
    g = p.add_argument_group("model and window")
    g.add_argument("--model", default=None, help="model file (.safetensors); default: the bundled demo model")
    g.add_argument("--device", type=argtypes.device, default="cpu",
                   help="cpu, cuda, cuda:N, mps or auto (a GPU must be present)")
    g.add_argument("--speed", default="max", help="'max' (as fast as possible), 'realtime' or a factor")
    add_lookback_arguments(g)
    g.add_argument("--size", default="1280x800", help="window size WxH (px)")
    g.add_argument("--frames", type=argtypes.non_negative_int, default=0,
                   help="headless: run offscreen for this many windows")
    g.add_argument("--screenshot", default=None, help="headless: save the window as this PNG at the end")
    g.add_argument("--json", action="store_true", help="headless: print a JSON summary as the last line")
    g.add_argument("--timeout", type=argtypes.positive_float, default=300.0,
                   help="headless: give up after this many seconds")
    return p


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--size must be WIDTHxHEIGHT, got {text!r}") from None
    if not (320 <= w <= 8192 and 240 <= h <= 8192):
        raise InputError(f"--size must be between 320x240 and 8192x8192, got {text!r}")
    return w, h


def parse_speed(text: str) -> float | None:
    if text == "max":
        return None
    if text == "realtime":
        return 1.0
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise InputError(f"--speed must be 'max', 'realtime' or a positive factor, got {text!r}")
    return v


def has_display() -> bool:
    """A window can appear: a display server, a platform that needs none, or an explicit Qt platform."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                or os.environ.get("QT_QPA_PLATFORM") or sys.platform in ("darwin", "win32"))


def json_line(stats: dict) -> str:
    return json.dumps({k: None if isinstance(v, float) and not math.isfinite(v) else v
                       for k, v in stats.items()})


def run_headless(win, app, timeout_s: float) -> bool:
    """Let the worker run its windows and the window draw the last one; False on timeout."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        app.processEvents()
        if win.worker is None or win.worker.isFinished():
            app.processEvents()  # the worker's last signals
            win.draw_latest()
            app.processEvents()
            return True
        time.sleep(0.002)
    return False


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        size = parse_size(args.size)
        speed = parse_speed(args.speed)
    except EventStereoError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    headless = args.frames > 0
    if headless:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    elif not has_display():
        print("error: no display to open the window on; run headless with --frames N [--screenshot "
              "out.png] [--json], or set QT_QPA_PLATFORM=offscreen", file=sys.stderr)
        return 2
    from PySide6 import QtWidgets

    from app.window import MainWindow
    from eventstereo.runtime.memory import keep_freed_memory
    from eventstereo.runtime.session import SessionOptions

    keep_freed_memory()  # a long-running stream: keep each window's buffers for the next (no page faults)

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["eventstereo"])
    options = SessionOptions(device=args.device, speed=speed, lookback=lookback_from_args(args))
    win = MainWindow(options, model_path=args.model)
    win.resize(*size)
    win.show()
    win.run_limit = args.frames or None
    opened = win.loaded is not None and win.open_source(config)
    if not headless:
        # Ctrl-C in the terminal closes the window (the 60 Hz draw timer hands Python the signal)
        signal.signal(signal.SIGINT, lambda *_: app.quit())
        try:
            return app.exec()
        finally:
            win.close()
    try:
        if not opened:
            print(win.message.text(), file=sys.stderr)
            return 2
        ok = run_headless(win, app, args.timeout)
        if win.message.text():
            print(win.message.text(), file=sys.stderr)
        if args.screenshot:
            win.grab().save(args.screenshot)
        stats = win.stats()
        if args.json:
            print(json_line(stats))
        else:
            print(f"{stats['frames']} frames drawn, model {stats['model_fps']:.1f} windows/s, display "
                  f"{stats['display_fps']:.1f} fps, latency {stats['latency_ms']:.0f} ms")
        return 0 if ok and not win.message.text() else 1
    finally:
        win.close()
