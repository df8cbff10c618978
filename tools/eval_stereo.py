"""Evaluate a stereo model on a source or split: a metrics table and a PNG of disparity maps.

The model runs through StreamSession exactly as `eventstereo stream` does, so what is measured here is
what a user sees. Any registry source works (``--source synthetic --seeds 1000-1009``; ``--source
mvsec --root DIR --split 1 --subset test`` once that source is installed). Metrics (REFERENCE §2) are
per window, averaged over windows; with several seeds there is a row per seed and one over all.

    python tools/eval_stereo.py --seeds 1000-1009 --windows 25 --png eval.png
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import sys

import numpy as np

from eventstereo import argtypes
from eventstereo.cli import report_error
from eventstereo.runtime.session import StreamSession, WindowResult
from eventstereo.runtime.stream_command import (
    add_runtime_arguments,
    json_line,
    load_model_arg,
    session_options,
    window_limit,
)
from eventstereo.sources.registry import add_source_arguments, open_source
from eventstereo.training.stereo import parse_seeds

log = logging.getLogger("eval_stereo")

COLUMNS = (
    ("one_pa", "1PA %", ".2f"), ("mean_disp_err", "disp err px", ".3f"), ("mde_cm", "MDE cm", ".2f"),
    ("median_depth_err_cm", "median cm", ".2f"), ("two_pe", "2PE %", ".2f"), ("rmse", "RMSE px", ".3f"),
    ("windows_per_s", "win/s", ".1f"), ("firing_rate", "rate", ".4f"), ("energy_mj", "mJ", ".3f"),
)


MAX_SEEDS = 10_000


def seed_list(text: str) -> list[int]:
    """``--seeds 1000-1009`` or ``1,5,7`` as a list, checked when parsed (at most MAX_SEEDS of them)."""
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        if sep and lo.strip().isdigit() and hi.strip().isdigit() and int(hi) - int(lo) >= MAX_SEEDS:
            raise argparse.ArgumentTypeError(f"{part.strip()!r} names more than {MAX_SEEDS} seeds")
    try:
        return parse_seeds(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argtypes.OneLineErrorParser(prog="eval_stereo", description=__doc__,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="show the traceback of an error")
    add_source_arguments(p)
    add_runtime_arguments(p)
    p.add_argument("--seeds", type=seed_list,
                   help="evaluate one source per seed, e.g. 1000-1009 (default: --seed)")
    p.add_argument("--windows", type=argtypes.non_negative_int, default=0,
                   help="windows per source (0 = all; on an endless source: until Ctrl-C)")
    p.add_argument("--png", help="write disparity | GT | error panels of a few windows to this PNG")
    p.add_argument("--png-windows", type=argtypes.int_in_range(1, 64), default=4,
                   help="windows shown in the PNG")
    p.add_argument("--json", action="store_true", help="print the overall row as JSON on the last line")
    return p


def combine(rows: list[dict]) -> dict:
    """Overall metrics from per-source summaries: means over all windows with GT (weighted by count)."""
    n = sum(r["gt_windows"] for r in rows)
    out = {"windows": sum(r["windows"] for r in rows), "gt_windows": n,
           "nonfinite_examples": sum(r.get("nonfinite_examples", 0) for r in rows)}
    for key in {k for r in rows for k, v in r.items() if isinstance(v, float)}:
        if key in ("windows_per_s", "latency_ms", "firing_rate", "energy_mj", "seconds"):
            weights = [r["windows"] for r in rows]
        else:
            weights = [r["gt_windows"] for r in rows]
        pairs = [(r[key], w) for r, w in zip(rows, weights) if w and not math.isnan(r[key])]
        out[key] = sum(v * w for v, w in pairs) / sum(w for _, w in pairs) if pairs else math.nan
    return out


def format_table(rows: list[tuple[str, dict]]) -> str:
    head = f"{'source':<14}{'windows':>8}" + "".join(f"{title:>13}" for _, title, _ in COLUMNS)
    lines = [head, "-" * len(head)]
    for name, r in rows:
        cells = "".join(f"{'-' if math.isnan(r.get(k, math.nan)) else format(r[k], f):>13}"
                        for k, _, f in COLUMNS)
        lines.append(f"{name:<14}{r['windows']:>8}{cells}")
    return "\n".join(lines)


def _colour(values: np.ndarray, vmax: float, cmap: int) -> np.ndarray:
    import cv2

    finite = np.isfinite(values)
    scaled = np.clip(np.where(finite, values, 0) / max(vmax, 1e-6) * 255, 0, 255).astype(np.uint8)
    img = cv2.applyColorMap(scaled, cmap)
    img[~finite] = 0
    return img


def render_panels(results: list[WindowResult], max_disparity: float) -> np.ndarray:
    """One row per window: predicted disparity, GT (black = none), |error| (0-4 px, black = no GT)."""
    import cv2

    rows = []
    for r in results:
        gt = r.gt if r.gt is not None else np.full_like(r.disparity, np.inf)
        err = np.where(np.isfinite(gt), np.abs(r.disparity - gt), np.inf)
        tiles = [_colour(r.disparity, max_disparity, cv2.COLORMAP_TURBO),
                 _colour(gt, max_disparity, cv2.COLORMAP_TURBO), _colour(err, 4.0, cv2.COLORMAP_INFERNO)]
        where = f"seed {r.window.meta['seed']}, " if "seed" in r.window.meta else ""
        labels = (f"prediction ({where}window {r.window.index})", "GT", "|error| 0-4 px")
        for tile, label in zip(tiles, labels):
            cv2.putText(tile, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


def evaluate(args: argparse.Namespace) -> tuple[list[tuple[str, dict]], list[WindowResult], int]:
    """Run the model over each source; returns (name, summary) rows (overall last), the windows to draw
    and the model's max disparity."""
    options = session_options(args)
    loaded = load_model_arg(args.model, device=str(options.resolved_device()))
    seeds = (parse_seeds(args.seeds) if isinstance(args.seeds, str) else list(args.seeds)) if args.seeds \
        else [None]
    rows: list[tuple[str, dict]] = []
    shown: list[WindowResult] = []
    per_source = max(1, math.ceil(args.png_windows / len(seeds)))
    for seed in seeds:
        a = copy.copy(args)
        if seed is not None:
            a.seed = seed
        with open_source(a) as source, \
                StreamSession(source, loaded.model, loaded.sbt_settings, options) as session:
            picked = []
            max_windows, _ = window_limit(args.windows, source)
            for r in session.run(max_windows=max_windows):
                # a window from the middle of each source, once the state has warmed up
                if r.gt is not None and len(picked) < per_source and r.index >= 5 and r.index % 10 == 5:
                    picked.append(r)
            shown.extend(picked)
            name = source.name if seed is None else f"seed {seed}"
            rows.append((name, session.summary()))
            log.info("%s: %s", name, json.dumps(rows[-1][1]))
    if len(rows) > 1:
        rows.append(("all", combine([r for _, r in rows])))
    return rows, shown[: args.png_windows], loaded.model.max_disparity


def main(argv: list[str] | None = None) -> int:
    """Evaluate; a user's mistake (a bad model file, unreadable data) is one line and status 2."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the edge: one line, the traceback only with -v
        return report_error(e, args.verbose, "eval_stereo")


def run(args: argparse.Namespace) -> int:
    rows, shown, max_disparity = evaluate(args)
    print(format_table(rows))
    if args.png:
        import cv2

        if not shown:
            log.warning("no window with GT to draw; %s not written", args.png)
        elif not cv2.imwrite(args.png, render_panels(shown, max_disparity)):
            raise OSError(f"could not write {args.png}")
        else:
            print(f"wrote {args.png}")
    if args.json:
        print(json_line(rows[-1][1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
