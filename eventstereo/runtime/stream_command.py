"""`eventstereo stream`: run a stereo model over a source's windows and report speed and accuracy.

Everything goes through StreamSession, the same loop the GUI runs. A live line shows windows/s,
latency, the mean firing rate and the running 1PA against GT; at the end a summary follows (with
``--json``, one JSON object as the last line).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys

import torch
from tqdm import tqdm

from eventstereo import argtypes
from eventstereo.events.lookback import LookbackSettings
from eventstereo.runtime.memory import keep_freed_memory
from eventstereo.runtime.session import SessionOptions, StreamSession
from eventstereo.sources.registry import add_source_arguments, open_source

log = logging.getLogger(__name__)


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """Model and execution options shared by `stream`, the evaluation tool and the benchmark."""
    g = parser.add_argument_group("model and runtime")
    g.add_argument("--model", default=None, help="model file (.safetensors); default: the bundled demo model")
    g.add_argument("--device", type=argtypes.device, default="cpu",
                   help="cpu, cuda, cuda:N, mps or auto (a GPU must be present)")
    g.add_argument("--channels-last", action="store_true", help="channels-last weights and inputs")
    g.add_argument("--cuda-graph", action="store_true", help="on CUDA, replay the step as one CUDA graph")
    g.add_argument("--no-overlap", action="store_true", help="read and encode in the inference thread")
    g.add_argument("--queue-size", type=argtypes.int_in_range(1, 1024), default=SessionOptions.queue_size,
                   help="windows read and encoded ahead of inference (1-1024)")
    g.add_argument("--no-rates", action="store_true", help="skip firing-rate and energy measurement")
    add_lookback_arguments(g)
    g.add_argument("--threads", type=argtypes.int_in_range(0, 1024), default=0,
                   help="torch CPU threads (0 = torch's default)")
    g.add_argument("--release-memory", action="store_true",
                   help="let the C library hand freed buffers back to the system after every window (its "
                        "default; costs up to ~10k page faults per window, eventstereo.runtime.memory)")


def add_lookback_arguments(group) -> None:
    """``--min-density`` / ``--max-lookback`` (eventstereo.events.lookback), for `stream` and the app."""
    group.add_argument("--min-density", type=argtypes.non_negative_float,
                       default=LookbackSettings.min_density,
                       help="events per pixel a window must hold (mean of the two eyes), else it borrows the "
                            "preceding windows' events and its SBT bins span them: for slow rigs, e.g. 0.4 "
                            "(0 = off; eventstereo.events.lookback)")
    group.add_argument("--max-lookback", type=argtypes.int_in_range(1, 1000),
                       default=LookbackSettings.max_windows,
                       help="most windows one SBT frame may span with --min-density")


def lookback_from_args(args: argparse.Namespace) -> LookbackSettings:
    return LookbackSettings(getattr(args, "min_density", LookbackSettings.min_density),
                            getattr(args, "max_lookback", LookbackSettings.max_windows))


def load_model_arg(path: str | None, device: str = "cpu"):
    """The LoadedModel named by ``--model`` (or the bundled one), BatchNorm folded: inference only."""
    from eventstereo.model.io import load_bundled_model, load_model

    if path is None:
        return load_bundled_model(device=device, fold_bn=True)
    return load_model(path, device=device, fold_bn=True)


SYNTHETIC_SOURCES = ("synthetic",)
"""Sources of the kind the bundled demo model was trained on."""


def warn_bundled_on_real_data(model_path: str | None, source) -> bool:
    """Warn (once per call, so once per run) when the bundled synthetic-only model meets real data."""
    kind = getattr(type(source), "name", None) or getattr(source, "name", "")
    if model_path is not None or kind in SYNTHETIC_SOURCES:
        return False
    log.warning("the bundled model was trained on synthetic scenes only and never saw %s data; its depth "
                "there means little: pass --model FILE.safetensors trained on it", kind)
    return True


def session_options(args: argparse.Namespace) -> SessionOptions:
    """The session options ``args`` name, with the process-wide settings applied: torch's thread count,
    and freed memory kept for the next window unless ``--release-memory``."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if not getattr(args, "release_memory", False):
        keep_freed_memory()
    return SessionOptions(device=args.device, channels_last=args.channels_last, cuda_graph=args.cuda_graph,
                          overlap=not args.no_overlap, measure_rates=not args.no_rates,
                          queue_size=getattr(args, "queue_size", SessionOptions.queue_size),
                          lookback=lookback_from_args(args))


def open_session(args: argparse.Namespace) -> StreamSession:
    """Open the source and the model that ``args`` name, checking that they fit together."""
    options = session_options(args)
    loaded = load_model_arg(args.model, device=str(options.resolved_device()))
    source = open_source(args)
    warn_bundled_on_real_data(args.model, source)
    try:  # the session checks that the model fits the source (InputError if not)
        return StreamSession(source, loaded.model, loaded.sbt_settings, options)
    except BaseException:
        source.close()
        raise


def build_parser() -> argparse.ArgumentParser:
    p = argtypes.OneLineErrorParser(prog="eventstereo stream", description=__doc__,
                                formatter_class=argtypes.DefaultsHelpFormatter)
    add_source_arguments(p)
    add_runtime_arguments(p)
    p.add_argument("--windows", type=argtypes.non_negative_int, default=200,
                   help="number of windows to process (0 = all; on an endless source: until Ctrl-C)")
    p.add_argument("--json", action="store_true",
                   help="print a JSON summary as the last line of stdout (the progress bar stays on stderr)")
    return p


def window_limit(requested: int, source) -> tuple[int | None, int | None]:
    """(max_windows for the session, total for the progress bar): 0 means every window of a recording,
    and on an endless source (no ``len``) a run until Ctrl-C, which is said rather than left to surprise."""
    try:
        n = len(source)
    except TypeError:
        n = None
    if requested:
        return requested, requested if n is None else min(requested, n)
    if n is None:
        log.warning("%s is endless: --windows 0 runs until Ctrl-C", source.name)
    return None, n


def json_line(summary: dict) -> str:
    """One JSON object with non-finite numbers written as null, as JSON requires: NaN (a metric with
    nothing to average) and inf (the mean error of a model that produced NaN; ``nonfinite_examples``
    then says how many windows did)."""
    return json.dumps({k: None if isinstance(v, float) and not math.isfinite(v) else v
                       for k, v in summary.items()}, allow_nan=False)


def _fmt(v: float, spec: str) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    session = open_session(args)
    max_windows, total = window_limit(args.windows, session.source)
    with session, session.source as source, tqdm(total=total, unit="win", file=sys.stderr,
                                                 dynamic_ncols=True) as bar:
        for r in session.run(max_windows=max_windows):
            bar.set_postfix_str(
                f"{r.windows_per_s:.1f} win/s, {r.latency_ms:.0f} ms, rate {_fmt(r.firing_rate, '.3f')}, "
                f"1PA {_fmt(r.metrics.get('one_pa'), '.1f')} %")
            bar.update()
        summary = {"source": source.describe(), **session.summary()}
    if args.json:
        print(json_line(summary))
    else:
        print(f"{summary['windows']} windows in {summary['seconds']:.2f} s: "
              f"{summary['windows_per_s']:.1f} windows/s, latency {summary['latency_ms']:.1f} ms "
              f"(p95 {summary['latency_p95_ms']:.1f}; encode {summary['encode_ms']:.1f}, "
              f"model {summary['infer_ms']:.1f}), {summary['resets']} state reset(s)")
        print(f"accuracy over {summary['gt_windows']} windows with GT: "
              f"1PA {_fmt(summary['one_pa'], '.2f')} %, "
              f"mean disparity error {_fmt(summary['mean_disp_err'], '.3f')} px, "
              f"MDE {_fmt(summary['mde_cm'], '.2f')} cm, median depth error "
              f"{_fmt(summary['median_depth_err_cm'], '.2f')} cm")
        print(f"firing rate {_fmt(summary['firing_rate'], '.4f')}, "
              f"energy {_fmt(summary['energy_mj'], '.3f')} mJ per window")
    return 0
