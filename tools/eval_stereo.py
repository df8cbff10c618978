"""Evaluate a stereo model on a source or split: a metrics table and a PNG of disparity maps.

The model runs through StreamSession exactly as `eventstereo stream` does, so what is measured here is
what a user sees. Any registry source works (``--source synthetic --seeds 1000-1009``; ``--source
mvsec --root DIR --split 1 --subset test`` once that source is installed). Metrics (REFERENCE §2) are
per window, averaged over windows; with several seeds there is a row per seed and one over all.

    python tools/eval_stereo.py --seeds 1000-1009 --windows 25 --png eval.png

For numbers comparable with the published MVSEC table, score on the GT the papers used (DDES's
converter: 1/7 px steps, >= 255/7 px invalid, events strictly after the window start; README "MVSEC
ground truth"); the paper's four metrics are then printed beside the published rows::

    python tools/eval_stereo.py --source mvsec --root MVSEC --split 1 --subset test \
        --gt-convention ddes --model M.safetensors --json

``--synthetic-config FILE`` (repeatable) also runs the same seeds through other synthetic generator
configurations (SyntheticConfig settings in JSON, e.g. the held-out
tools/configs/synthetic/synthetic_heldout.json that no model trains on) and prints their tables
beside the default generator's, so a model that only memorised one generator shows it. Each table
ends with 1PA of the first window after a state reset against the later (warm) windows, and 1PA at
the GT pixels where the left camera fired in the window against the others.
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
from eventstereo.cli import run_at_edge
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

PAPER_METRICS = (("mde_cm", "MDE cm", ".1f"), ("median_depth_err_cm", "median cm", ".1f"),
                 ("mean_disp_err", "mean disp px", ".2f"), ("one_pa", "1PA %", ".1f"))
"""The four metrics of the published MVSEC split-1 table (REFERENCE §2), in its column order."""

PUBLISHED = {
    "SpikeDHS-Stereo+HNS": {"mde_cm": 14.6, "median_depth_err_cm": 5.9, "mean_disp_err": 0.53,
                            "one_pa": 92.4},
    "DDES": {"mde_cm": 16.7, "median_depth_err_cm": 6.8, "mean_disp_err": 0.59, "one_pa": 89.4},
}
"""Published rows on MVSEC split 1 test, scored on DDES-converter GT (REFERENCE §2)."""


def seed_list(text: str) -> list[int]:
    """``--seeds 1000-1009`` or ``1,5,7`` as a list, checked when parsed (see parse_seeds)."""
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
    p.add_argument("--synthetic-config", action="append", default=[], metavar="FILE",
                   help="also evaluate the synthetic generator with these settings (JSON), same seeds")
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


def published_table(ours: dict, label: str = "this model") -> str:
    """The paper's four metrics of ``ours`` above the published rows, one row each."""
    head = f"{'method':<22}" + "".join(f"{title:>14}" for _, title, _ in PAPER_METRICS)
    lines = [head, "-" * len(head)]
    for name, r in ((label, ours), *((n, p) for n, p in PUBLISHED.items())):
        cells = "".join(f"{'-' if math.isnan(r.get(k, math.nan)) else format(r[k], f):>14}"
                        for k, _, f in PAPER_METRICS)
        lines.append(f"{name:<22}{cells}")
    return "\n".join(lines)


def comparable_with_published(args: argparse.Namespace) -> bool:
    """Whether the run is the published protocol: MVSEC split 1 test on DDES-convention GT."""
    return (args.source == "mvsec" and args.split == 1 and args.subset == "test"
            and args.gt_convention == "ddes" and not args.windows)


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


def open_generator(args: argparse.Namespace, config_path: str | None):
    """The registry source of ``args`` (MVSEC reads under its ``--gt-convention``), or with ``config_path``
    the synthetic source with those settings (sensor size and window from ``args``)."""
    if config_path is None:
        return open_source(args)
    from eventstereo.errors import InputError
    from eventstereo.sources.synthetic import SyntheticConfig, SyntheticStereoSource, load_config_file

    if args.source != "synthetic":
        raise InputError(f"--synthetic-config applies to --source synthetic, not {args.source}")
    config = SyntheticConfig.from_dict({**load_config_file(config_path), "width": args.width,
                                        "height": args.height,
                                        "window_us": int(round(args.window_ms * 1000))})
    return SyntheticStereoSource(config, seed=args.seed)


def reset_split(results: list[tuple[bool, float]]) -> dict:
    """Mean 1PA of the windows right after a state reset and of the others, from (reset, 1PA) pairs."""
    first = [v for r, v in results if r]
    later = [v for r, v in results if not r]
    return {"one_pa_first_window": float(np.mean(first)) if first else math.nan, "first_windows": len(first),
            "one_pa_later_windows": float(np.mean(later)) if later else math.nan, "later_windows": len(later)}


class EventPixelSplit:
    """1PA pooled over the GT pixels where the left camera fired in the window, and over the others.

    A dense-GT score mixes two questions: how well the network matches where it sees events, and how
    well it fills in where it sees none (a slow, far backdrop). Splitting them tells which one a
    generator (or a camera) makes hard. Pixels are pooled over all windows; 1PA is the metrics' own
    definition (error <= 1 px), computed on each part of the GT.
    """

    def __init__(self):
        self.correct = {"events": 0.0, "elsewhere": 0.0}
        self.pixels = {"events": 0, "elsewhere": 0}

    def update(self, disparity: np.ndarray, gt: np.ndarray, left_events: np.ndarray) -> None:
        from eventstereo.stereo.metrics import stereo_errors

        fired = np.zeros(gt.shape, bool)
        x, y = left_events["x"].astype(np.int64), left_events["y"].astype(np.int64)
        inside = (x >= 0) & (x < gt.shape[1]) & (y >= 0) & (y < gt.shape[0])
        fired[y[inside], x[inside]] = True
        for part, mask in (("events", fired), ("elsewhere", ~fired)):
            masked = np.where(mask, gt, np.inf)
            errors = stereo_errors(disparity, masked, None)
            if errors is not None:
                n = int(np.isfinite(masked).sum())
                self.correct[part] += errors["one_pa"] * n
                self.pixels[part] += n

    def summary(self) -> dict:
        total = sum(self.pixels.values())
        out = {"gt_pixels_with_events_pct": 100.0 * self.pixels["events"] / total if total else math.nan}
        for part in self.pixels:
            n = self.pixels[part]
            out[f"one_pa_{part}"] = self.correct[part] / n if n else math.nan
        return out


def evaluate(args: argparse.Namespace, config_path: str | None = None
             ) -> tuple[list[tuple[str, dict]], list[WindowResult], int, dict]:
    """Run the model over each source (of the synthetic generator ``config_path`` if given); returns
    (name, summary) rows (overall last), the windows to draw, the model's max disparity and the
    first-window-after-reset split and the split by pixels with and without events."""
    from eventstereo.stereo.metrics import stereo_errors

    options = session_options(args)
    loaded = load_model_arg(args.model, device=str(options.resolved_device()))
    seeds = (parse_seeds(args.seeds) if isinstance(args.seeds, str) else list(args.seeds)) if args.seeds \
        else [None]
    rows: list[tuple[str, dict]] = []
    shown: list[WindowResult] = []
    per_source = max(1, math.ceil(args.png_windows / len(seeds)))
    per_window: list[tuple[bool, float]] = []
    by_events = EventPixelSplit()
    for seed in seeds:
        a = copy.copy(args)
        if seed is not None:
            a.seed = seed
        with open_generator(a, config_path) as source, \
                StreamSession(source, loaded.model, loaded.sbt_settings, options) as session:
            picked = []
            max_windows, _ = window_limit(args.windows, source)
            for r in session.run(max_windows=max_windows):
                errors = stereo_errors(r.disparity, r.gt, None) if r.gt is not None else None
                if errors is not None:
                    per_window.append((r.reset, errors["one_pa"]))
                    by_events.update(r.disparity, r.gt, r.window.left)
                # a window from the middle of each source, once the state has warmed up
                if r.gt is not None and len(picked) < per_source and r.index >= 5 and r.index % 10 == 5:
                    picked.append(r)
            shown.extend(picked)
            name = source.name if seed is None else f"seed {seed}"
            rows.append((name, session.summary()))
            log.info("%s: %s", name, json.dumps(rows[-1][1]))
    if len(rows) > 1:
        rows.append(("all", combine([r for _, r in rows])))
    split = {**reset_split(per_window), **by_events.summary()}
    return rows, shown[: args.png_windows], loaded.model.max_disparity, split


def main(argv: list[str] | None = None) -> int:
    """Evaluate; a user's mistake (a bad model file, unreadable data) is one line and status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run_at_edge(lambda: run(args), args.verbose, "eval_stereo")


def run(args: argparse.Namespace) -> int:
    """Evaluate the default generator (and each --synthetic-config); one JSON object last with --json:
    the default's overall row, with the other generators' rows under ``generators``."""
    rows, shown, max_disparity, split = evaluate(args)
    generators: dict[str, dict] = {}
    for config_path in [None, *args.synthetic_config]:
        if config_path is not None:
            rows, _, _, split = evaluate(args, config_path)
        print(f"generator: {config_path or 'default'}")
        print(format_table(rows))
        print(f"1PA first window after a reset {split['one_pa_first_window']:.2f} % "
              f"({split['first_windows']} windows), later windows {split['one_pa_later_windows']:.2f} % "
              f"({split['later_windows']} windows)")
        print(f"1PA at GT pixels where the left camera fired {split['one_pa_events']:.2f} % "
              f"({split['gt_pixels_with_events_pct']:.1f} % of GT pixels), elsewhere "
              f"{split['one_pa_elsewhere']:.2f} % (pixels pooled over the windows)")
        generators[config_path or "default"] = {**rows[-1][1], **split}
    if len(generators) > 1:
        print("\n".join(f"overall 1PA {r['one_pa']:.2f} % on {r['gt_windows']} windows: {name}"
                        for name, r in generators.items()))
    overall = dict(generators.pop("default"), gt_convention=args.gt_convention)
    if generators:
        overall["generators"] = generators
    if args.gt_convention == "ddes":
        print()
        print(published_table(overall))
        if not comparable_with_published(args):
            print("note: the published rows are on all of MVSEC split 1 test (--split 1 --subset test, "
                  "--windows 0); this run is not that set")
        overall["published"] = PUBLISHED
    if args.png:
        import cv2

        if not shown:
            log.warning("no window with GT to draw; %s not written", args.png)
        elif not cv2.imwrite(args.png, render_panels(shown, max_disparity)):
            raise OSError(f"could not write {args.png}")
        else:
            print(f"wrote {args.png}")
    if args.json:
        print(json_line(overall))
    return 0


if __name__ == "__main__":
    sys.exit(main())
