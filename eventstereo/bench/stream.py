"""`eventstereo bench stream`: windows/s and latency of the streaming loop, demo and paper-size models.

Both models run through StreamSession on the same synthetic windows (346x260, rendered once and
replayed from memory, so the scene renderer's cost is not counted): the bundled demo model, and the
paper-size network (published genotype, F = 8, 63 disparities; random weights unless ``--paper-model``
names a trained model file: random weights barely spike, which does not change dense-kernel speed but
does change what the spike-dependent parts cost). Every configuration is compared with ``today`` of
the same model measured in the same run, rounds interleaved so that load drift on a shared machine hits
all alike:

- today: the streaming forward as it was before the speed work of issue 15, frozen in
  eventstereo/bench/_baseline.py (state cloned per neuron call, weights prepared per call, the x2 phase
  convs interleaved by stacking, torch MAP estimator) over the same modules and weights;
- eager: what `eventstereo stream` runs now (background reader, firing rates and energy measured);
- no-meter: without the firing-rate / energy hooks (their cost);
- inline-read: reading and encoding in the inference thread (what the overlap buys);
- channels-last: channels-last weights and inputs;
- eager-neurons: the un-fused, op-by-op neuron backend instead of the fused recurrence;
- cuda-graph (CUDA only): the step replayed as one CUDA graph (eventstereo/runtime/cuda_graph.py).

``--compare-model FILE`` (repeatable) adds another model of the demo's SBT settings (a candidate for the
bundled model, say) to the demo table, run as ``eager`` is and interleaved with it, with its time per
window against the bundled model's in the same run.

(torch.compile is gone: under inference_mode it crashed in a dynamo guard, and with the neuron calls
excluded it compiled for 4-6 minutes and ran 1.7-6x slower than the eager step.)

``--device cuda`` measures on the GPU (``all``: CPU, then CUDA when present). With --json the last line
is one JSON object.
"""

from __future__ import annotations

import argparse
import logging
import statistics
from collections.abc import Callable, Iterator

import torch

from eventstereo import argtypes
from eventstereo.bench._common import bench_parser, gc_paused, report
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


def _eager_neurons(model: torch.nn.Module) -> torch.nn.Module:
    from eventstereo.snn import neurons

    for _, m in neurons(model):
        if hasattr(m, "backend"):
            m.backend = "eager"
    return model


def _today(model: torch.nn.Module) -> torch.nn.Module:
    from eventstereo.bench._baseline import BaselineStereo

    return BaselineStereo(model)


def _same(model: torch.nn.Module) -> torch.nn.Module:
    return model


def _variants(device: str) -> dict[str, tuple[dict, Callable]]:
    """name -> (SessionOptions fields, model transform)"""
    v: dict[str, tuple[dict, Callable]] = {
        "today": ({"subpixel_impl": "torch"}, _today),
        "eager": ({}, _same),
        "no-meter": ({"measure_rates": False}, _same),
        "inline-read": ({"overlap": False}, _same),
        "channels-last": ({"channels_last": True}, _same),
        "eager-neurons": ({}, _eager_neurons),
    }
    if device.startswith("cuda"):
        v["cuda-graph"] = ({"cuda_graph": True}, _same)
    return v


def _compare_variants(files: list[str], settings) -> dict[str, tuple[dict, Callable]]:
    """``--compare-model`` files as configurations of the demo table: the bundled model swapped out."""
    from eventstereo.errors import InputError
    from eventstereo.model.io import load_model

    out: dict[str, tuple[dict, Callable]] = {}
    for i, f in enumerate(files, 1):
        loaded = load_model(f, fold_bn=True)
        if loaded.sbt_settings != settings:
            raise InputError(f"SBT settings {loaded.sbt_settings} differ from the bundled model's {settings}",
                             source=f)
        out[f"compare-{i}"] = ({}, lambda _bundled, f=f: load_model(f, fold_bn=True).model)
    return out


def _measure(make_model: Callable[[], tuple[torch.nn.Module, object]], source: _Replay, device: str,
             variants: dict[str, tuple[dict, Callable]], windows: int, rounds: int) -> dict[str, dict]:
    sessions = {}
    for name, (fields, transform) in variants.items():
        model, settings = make_model()
        session = StreamSession(source, transform(model), settings, SessionOptions(device=device, **fields))
        for _ in session.run(max_windows=2):  # warm-up: allocator, kernels, compilation
            pass
        sessions[name] = session
    samples: dict[str, list[dict]] = {name: [] for name in variants}
    with gc_paused():
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
        out[name]["ratio"] = out[name]["windows_per_s"] / out["today"]["windows_per_s"]
        out[name]["ratio_median"] = out[name]["windows_per_s_median"] / out["today"]["windows_per_s_median"]
    for s in sessions.values():
        s.close()
    return out


def build_parser() -> argparse.ArgumentParser:
    p = bench_parser("stream", __doc__.splitlines()[0])
    p.add_argument("--windows", type=argtypes.positive_int, default=20,
                   help="windows per run of the demo model")
    p.add_argument("--paper-windows", type=argtypes.positive_int, default=4,
                   help="windows per run of the paper-size model")
    p.add_argument("--rounds", type=argtypes.positive_int, default=2,
                   help="interleaved rounds (the best is kept)")
    p.add_argument("--seed", type=argtypes.non_negative_int, default=1000,
                   help="synthetic scene of the replayed windows")
    p.add_argument("--device", default="all", help="cpu, cuda, or all (cpu and, when present, cuda)")
    p.add_argument("--skip-paper", action="store_true", help="only the demo model")
    p.add_argument("--paper-model", help="a trained paper-size model file instead of random weights")
    p.add_argument("--compare-model", action="append", default=[], metavar="FILE",
                   help="also time this model file beside the bundled one (repeatable)")
    p.add_argument("--threads", type=argtypes.int_in_range(1, 1024), default=None,
                   help="torch CPU threads (default: torch's setting); on a shared machine 1 gives the "
                        "steadiest ratios")
    p.add_argument("--keep-freed-memory", action="store_true",
                   help="keep freed memory in the process (eventstereo.runtime.memory): no page faults")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from eventstereo.model import build_stereo_model
    from eventstereo.model.io import load_bundled_model
    from eventstereo.snn import fold_batchnorms

    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"eventstereo bench stream: --device {args.device}, but torch sees no CUDA device")
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    if args.keep_freed_memory:
        from eventstereo.runtime.memory import keep_freed_memory

        keep_freed_memory()
    source = _render(max(args.windows, args.paper_windows) + 2, args.seed)
    bundled = load_bundled_model()

    def demo():
        loaded = load_bundled_model(fold_bn=True)  # as `eventstereo stream` loads it
        return loaded.model, loaded.sbt_settings

    compare = _compare_variants(args.compare_model, bundled.sbt_settings)

    def paper():
        if args.paper_model:
            from eventstereo.model.io import load_model

            loaded = load_model(args.paper_model, fold_bn=True)
            return loaded.model, loaded.sbt_settings
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
            variants = {**_variants(device), **(compare if label == "demo" else {})}
            table = _measure(make, source, device, variants, n, args.rounds)
            results[f"{label}_{device}"] = table
            model, _ = make()
            params = sum(p.numel() for p in model.parameters())
            lines.append(f"\n{label} model on {device} ({params / 1e6:.3f} M parameters, max disparity "
                         f"{model.max_disparity}), {n} windows per run")
            lines.append(f"  {'configuration':<15}{'win/s':>8}{'latency ms':>12}{'p95 ms':>9}{'model ms':>10}"
                         f"{'vs today':>10}{'(median)':>10}")
            for name, r in table.items():
                lines.append(f"  {name:<15}{r['windows_per_s']:>8.2f}{r['latency_ms']:>12.1f}"
                             f"{r['latency_p95_ms']:>9.1f}{r['infer_ms']:>10.1f}{r['ratio']:>9.2f}x"
                             f"{r['ratio_median']:>9.2f}x")
            for i, path in enumerate(args.compare_model if label == "demo" else (), 1):
                r = table[f"compare-{i}"]
                r["file"], r["time_vs_bundled"] = path, table["eager"]["windows_per_s"] / r["windows_per_s"]
                lines.append(f"  compare-{i} ({path}): {r['time_vs_bundled']:.2f}x the bundled model's "
                             "time per window (eager, same run)")
    if "cuda" not in devices:
        lines.append("\n(no CUDA device: GPU figures not measured)")
    report(results, lines, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
