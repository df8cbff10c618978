"""`eventstereo bench stream`: windows/s and latency of the streaming loop, demo and paper-size models.

Both models run through StreamSession on the same synthetic windows (346x260, rendered once and
replayed from memory, so the scene renderer's cost is not counted): the bundled demo model, and the
paper-size network (published genotype, F = 8, 63 disparities; random weights, which do not change
dense-kernel speed). Each configuration is compared with the eager baseline of the same model measured
in the same run, rounds interleaved so that load drift on a shared machine hits all alike:

- eager: what `eventstereo stream` runs (background reader, firing rates and energy measured);
- no-meter: without the firing-rate / energy hooks (their cost);
- inline-read: reading and encoding in the inference thread (what the overlap buys);
- channels-last: channels-last weights and inputs;
- eager-neurons: the un-fused, op-by-op neuron backend instead of the fused recurrence;
- compiled: torch.compile of the step (only with --compile: compiling takes minutes on 2 cores).

On CUDA (when present) the same table is measured again. With --json the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import logging
import statistics
from collections.abc import Callable, Iterator

import torch

from eventstereo.bench._common import bench_parser, report
from eventstereo.events.window import StereoWindow
from eventstereo.runtime.session import SessionOptions, StreamSession
from eventstereo.sources.base import Source

log = logging.getLogger(__name__)


class _Replay(Source):
    """Windows held in memory, replayed in order (each run starts over)."""

    name = "replay"
    has_gt = True

    def __init__(self, windows: list[StereoWindow], like: Source):
        self.windows = windows
        self.sensor_size, self.fxb = like.sensor_size, like.fxb
        self.max_disparity, self.window_us = like.max_disparity, like.window_us

    def __iter__(self) -> Iterator[StereoWindow]:
        return iter(self.windows)


def _render(n: int, seed: int) -> _Replay:
    from eventstereo.sources.synthetic import SyntheticConfig, SyntheticStereoSource

    src = SyntheticStereoSource(SyntheticConfig(width=346, height=260), seed=seed)
    windows = [w for _, w in zip(range(n), src)]
    return _Replay(windows, src)


def _variants(compile_too: bool) -> dict[str, tuple[dict, bool]]:
    """name -> (SessionOptions fields, eager neuron backend?)"""
    v = {
        "eager": ({}, False),
        "no-meter": ({"measure_rates": False}, False),
        "inline-read": ({"overlap": False}, False),
        "channels-last": ({"channels_last": True}, False),
        "eager-neurons": ({}, True),
    }
    if compile_too:
        v["compiled"] = ({"compile": True}, False)
    return v


def _measure(make_model: Callable[[], tuple[torch.nn.Module, object]], source: _Replay, device: str,
             variants: dict[str, tuple[dict, bool]], windows: int, rounds: int) -> dict[str, dict]:
    from eventstereo.snn import neurons

    sessions = {}
    for name, (fields, eager_neurons) in variants.items():
        model, settings = make_model()
        if eager_neurons:
            for _, m in neurons(model):
                if hasattr(m, "backend"):
                    m.backend = "eager"
        session = StreamSession(source, model, settings, SessionOptions(device=device, **fields))
        for _ in session.run(max_windows=2):  # warm-up: allocator, kernels, compilation
            pass
        sessions[name] = session
    samples: dict[str, list[dict]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, session in sessions.items():
            for _ in session.run(max_windows=windows):
                pass
            samples[name].append(session.summary())
    out = {}
    for name, runs in samples.items():
        best = max(runs, key=lambda s: s["windows_per_s"])
        out[name] = {
            "windows_per_s": best["windows_per_s"],
            "windows_per_s_median": statistics.median(s["windows_per_s"] for s in runs),
            "latency_ms": best["latency_ms"],
            "latency_p95_ms": best["latency_p95_ms"],
            "infer_ms": best["infer_ms"],
        }
    for name in out:
        out[name]["ratio"] = out[name]["windows_per_s"] / out["eager"]["windows_per_s"]
    for s in sessions.values():
        s.close()
    return out


def build_parser() -> argparse.ArgumentParser:
    p = bench_parser("stream", __doc__.splitlines()[0])
    p.add_argument("--windows", type=int, default=20, help="windows per run of the demo model")
    p.add_argument("--paper-windows", type=int, default=4, help="windows per run of the paper-size model")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds (the best is kept)")
    p.add_argument("--seed", type=int, default=1000, help="synthetic scene of the replayed windows")
    p.add_argument("--device", default="all", help="cpu, cuda, or all (cpu and, when present, cuda)")
    p.add_argument("--compile", action="store_true", help="also measure torch.compile (slow to compile)")
    p.add_argument("--skip-paper", action="store_true", help="only the demo model")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from eventstereo.model import build_stereo_model
    from eventstereo.model.io import load_bundled_model
    from eventstereo.snn import fold_batchnorms

    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    source = _render(max(args.windows, args.paper_windows) + 2, args.seed)
    bundled = load_bundled_model()

    def demo():
        loaded = load_bundled_model(fold_bn=True)  # as `eventstereo stream` loads it
        return loaded.model, loaded.sbt_settings

    def paper():
        torch.manual_seed(0)
        return fold_batchnorms(build_stereo_model(max_disparity=63).eval()), bundled.sbt_settings

    results: dict = {"threads": torch.get_num_threads(), "sensor": list(source.sensor_size)}
    lines = [f"stream benchmark: 346x260 synthetic windows replayed from memory, torch threads "
             f"{torch.get_num_threads()}; best of {args.rounds} interleaved rounds"]
    models = [("demo", demo, args.windows)]
    if not args.skip_paper:
        models.append(("paper", paper, args.paper_windows))
    for device in devices:
        for label, make, n in models:
            table = _measure(make, source, device, _variants(args.compile), n, args.rounds)
            results[f"{label}_{device}"] = table
            model, _ = make()
            params = sum(p.numel() for p in model.parameters())
            lines.append(f"\n{label} model on {device} ({params / 1e6:.3f} M parameters, max disparity "
                         f"{model.max_disparity}), {n} windows per run")
            lines.append(f"  {'configuration':<15}{'win/s':>8}{'latency ms':>12}{'p95 ms':>9}{'model ms':>10}"
                         f"{'vs eager':>10}")
            for name, r in table.items():
                lines.append(f"  {name:<15}{r['windows_per_s']:>8.2f}{r['latency_ms']:>12.1f}"
                             f"{r['latency_p95_ms']:>9.1f}{r['infer_ms']:>10.1f}{r['ratio']:>9.2f}x")
    if "cuda" not in devices:
        lines.append("\n(no CUDA device: GPU figures not measured)")
    report(results, lines, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
