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

from eventstereo.runtime.session import SessionOptions, StreamSession
from eventstereo.sources.registry import add_source_arguments, open_source

log = logging.getLogger(__name__)


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """Model and execution options shared by `stream`, the evaluation tool and the benchmark."""
    g = parser.add_argument_group("model and runtime")
    g.add_argument("--model", default=None, help="model file (.safetensors); default: the bundled demo model")
    g.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    g.add_argument("--channels-last", action="store_true", help="channels-last weights and inputs")
    g.add_argument("--cuda-graph", action="store_true", help="on CUDA, replay the step as one CUDA graph")
    g.add_argument("--no-overlap", action="store_true", help="read and encode in the inference thread")
    g.add_argument("--no-rates", action="store_true", help="skip firing-rate and energy measurement")
    g.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")


def load_model_arg(path: str | None, device: str = "cpu"):
    """The LoadedModel named by ``--model`` (or the bundled one), BatchNorm folded: inference only."""
    from eventstereo.model.io import load_bundled_model, load_model

    if path is None:
        return load_bundled_model(device=device, fold_bn=True)
    return load_model(path, device=device, fold_bn=True)


def session_options(args: argparse.Namespace) -> SessionOptions:
    if args.threads:
        torch.set_num_threads(args.threads)
    return SessionOptions(device=args.device, channels_last=args.channels_last, cuda_graph=args.cuda_graph,
                          overlap=not args.no_overlap, measure_rates=not args.no_rates)


def open_session(args: argparse.Namespace) -> StreamSession:
    """Open the source and the model that ``args`` name, checking that they fit together."""
    options = session_options(args)
    loaded = load_model_arg(args.model, device=str(options.resolved_device()))
    source = open_source(args)
    if source.window_us != loaded.sbt_settings.window_us:
        log.warning("source windows are %d us but the model was trained on %d us windows",
                    source.window_us, loaded.sbt_settings.window_us)
    return StreamSession(source, loaded.model, loaded.sbt_settings, options)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eventstereo stream", description=__doc__)
    add_source_arguments(p)
    add_runtime_arguments(p)
    p.add_argument("--windows", type=int, default=200, help="number of windows to process (0 = all)")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    return p


def json_line(summary: dict) -> str:
    """One JSON object with NaN (a metric with nothing to average) written as null, as JSON requires."""
    return json.dumps({k: None if isinstance(v, float) and math.isnan(v) else v for k, v in summary.items()})


def _fmt(v: float, spec: str) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    session = open_session(args)
    with session, session.source as source, tqdm(total=args.windows or None, unit="win", file=sys.stderr,
                                                 disable=args.json, dynamic_ncols=True) as bar:
        for r in session.run(max_windows=args.windows or None):
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
