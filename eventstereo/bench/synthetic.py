"""`eventstereo bench synthetic`: how fast the synthetic source makes its scene, against real time.

The baseline is the scene clock itself: ``realtime_factor`` = seconds of scene made per second of
compute (>= 1 means the generator keeps up with a live camera). Compute is this process's CPU time:
the generator is single-threaded, so that is its cost on one core even on a shared, busy machine
(any helper threads numpy starts are counted too, so it errs low); ``realtime_factor_wall`` uses the
wall clock. Numba kernels are compiled (or loaded from cache) and a first window made before timing,
and scene construction is timed separately from streaming.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from eventstereo import argtypes
from eventstereo.sources.synthetic import SyntheticConfig, SyntheticStereoSource, load_config_file


def build_parser() -> argparse.ArgumentParser:
    p = argtypes.OneLineErrorParser(prog="eventstereo bench synthetic", description=__doc__)
    p.add_argument("--width", type=argtypes.int_in_range(1, 8192), default=346)
    p.add_argument("--height", type=argtypes.int_in_range(1, 8192), default=260)
    p.add_argument("--seconds", type=argtypes.positive_float, default=5.0,
                   help="seconds of scene to generate (timed)")
    p.add_argument("--seed", type=argtypes.non_negative_int, default=0)
    p.add_argument("--window-ms", type=argtypes.positive_float, default=50.0)
    p.add_argument("--max-px-per-render", type=float, default=None,
                   help="override the adaptive render step (image motion per render, px)")
    p.add_argument("--config", help="JSON file of SyntheticConfig settings (e.g. tools/configs/"
                   "synthetic/synthetic_varied.json); the options above set its size and window")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    return p


def run(args: argparse.Namespace) -> dict:
    """Generate ``args.seconds`` of scene and return the measurements."""
    extra = {} if args.max_px_per_render is None else {"max_px_per_render": args.max_px_per_render}
    base = load_config_file(args.config) if args.config else {}
    config = SyntheticConfig.from_dict({**base, "width": args.width, "height": args.height,
                                        "window_us": int(round(args.window_ms * 1000)), **extra})
    warm = SyntheticStereoSource(config, seed=args.seed + 1)  # compile / load the numba cache
    next(iter(warm))

    t0 = time.perf_counter()
    source = SyntheticStereoSource(config, seed=args.seed)
    t_build = time.perf_counter() - t0
    n_windows = max(1, int(round(args.seconds * 1e6 / config.window_us)))
    events = np.zeros((n_windows, 2), np.int64)
    substeps = np.zeros(n_windows, np.int64)
    d_lo, d_hi, valid = [], [], []
    t0 = time.perf_counter()
    c0 = time.process_time()
    for i, win in enumerate(source):
        events[i] = len(win.left), len(win.right)
        substeps[i] = win.meta["substeps"]
        gt = win.gt_disparity
        ok = np.isfinite(gt)
        valid.append(ok.mean())
        if ok.any():
            d_lo.append(float(gt[ok].min()))
            d_hi.append(float(gt[ok].max()))
        if i + 1 >= n_windows:
            break
    wall_s = time.perf_counter() - t0
    compute_s = max(time.process_time() - c0, 1e-9)
    scene_s = n_windows * config.window_us * 1e-6
    total = int(events.sum())
    return {
        "sensor": f"{config.width}x{config.height}",
        "scene_seconds": scene_s,
        "compute_seconds": compute_s,
        "wall_seconds": wall_s,
        "build_seconds": t_build,
        "realtime_factor": scene_s / compute_s,
        "realtime_factor_wall": scene_s / wall_s,
        "windows_per_s": n_windows / compute_s,
        "events_per_s": total / compute_s,
        "scene_events_per_s": total / scene_s,
        "events_per_window_per_view": float(events.mean()),
        "events_per_window_per_view_min": int(events.min()),
        "events_per_window_per_view_max": int(events.max()),
        "renders_per_s_of_scene": float(substeps.sum() / scene_s),
        "gt_valid_fraction": float(np.mean(valid)),
        "disparity_min": min(d_lo) if d_lo else None,
        "disparity_max": max(d_hi) if d_hi else None,
        "fxb": config.fxb,
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    r = run(args)
    if args.json:
        print(json.dumps(r))
    else:
        print(f"synthetic {r['sensor']}: {r['scene_seconds']:.2f} s of scene in {r['compute_seconds']:.2f} s "
              f"of CPU -> {r['realtime_factor']:.2f}x real time ({r['windows_per_s']:.1f} windows/s, "
              f"{r['events_per_s'] / 1e6:.2f} M events/s of compute; wall clock "
              f"{r['realtime_factor_wall']:.2f}x)")
        print(f"  {r['events_per_window_per_view']:.0f} events per window per view "
              f"(min {r['events_per_window_per_view_min']}, max {r['events_per_window_per_view_max']}), "
              f"{r['renders_per_s_of_scene']:.0f} renders per second of scene, scene built in "
              f"{r['build_seconds']:.2f} s")
        print(f"  GT valid {100 * r['gt_valid_fraction']:.1f} % of pixels, disparity "
              f"{r['disparity_min']:.2f}..{r['disparity_max']:.2f} px (fxB {r['fxb']:.3f})")
    return 0
