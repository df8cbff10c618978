"""`eventstereo stream`: iterate a source's windows, encode them, report rates."""

from __future__ import annotations

import argparse
import json
import time

from tqdm import tqdm

from eventstereo.events.sbt import SBTSettings, encode_sbt
from eventstereo.sources.registry import add_source_arguments, open_source


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eventstereo stream", description=__doc__)
    add_source_arguments(p)
    p.add_argument("--windows", type=int, default=100, help="number of windows to process (0 = all)")
    p.add_argument("--bins", type=int, default=5, help="SBT time bins per window")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    source = open_source(args)
    settings = SBTSettings(window_us=source.window_us, n_bins=args.bins)
    n_windows = n_events = 0
    t0 = time.perf_counter()
    with source, tqdm(total=args.windows or None, unit="win", disable=args.json) as bar:
        for win in source:
            encode_sbt(win.left, win.t_end_us, source.sensor_size, settings)
            encode_sbt(win.right, win.t_end_us, source.sensor_size, settings)
            n_windows += 1
            n_events += win.n_events
            bar.set_postfix_str(f"{win.n_events / (win.duration_us * 1e-6) / 1e6:.2f} Mev/s")
            bar.update()
            if args.windows and n_windows >= args.windows:
                break
    elapsed = max(time.perf_counter() - t0, 1e-9)
    summary = {
        "source": source.describe(),
        "windows": n_windows,
        "windows_per_s": n_windows / elapsed,
        "events": n_events,
        "events_per_window": n_events / max(n_windows, 1),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{n_windows} windows in {elapsed:.2f} s: {summary['windows_per_s']:.1f} windows/s, "
              f"{summary['events_per_window']:.0f} events/window")
    return 0
