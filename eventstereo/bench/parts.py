"""`eventstereo bench parts`: where a streaming window's time goes, today's forward against now, same run.

Per part of one 346x260 window (feature net, cost-volume stem, 3-D matching, neurons, MAP estimator,
the rest of ``step``), for the frozen pre-issue-15 forward (eventstereo/bench/_baseline.py, torch MAP
estimator) and the current one, rounds interleaved. Timed in thread CPU time on one torch thread: the
work of this thread, which holds on a shared machine where wall time is mostly other processes' turns.
Neurons are also counted inside the part that fires them, and so are the convolutions (every
``F.conv*`` call), whose row gives the ceiling: a forward that kept these dense convolutions and made
everything else free would still take their time, so today's window over now's convolutions bounds
the ratio any rewrite of the rest can reach. The paper-size network has random weights unless
``--paper-model`` names a trained model file (random weights barely spike).
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from collections.abc import Callable

import torch

from eventstereo.bench._common import bench_parser, gc_paused, report

PARTS = ("window", "matching 3-D", "neurons", "feature net", "cost-volume stem", "estimator", "other",
         "convolutions")
_CONVS = ("conv2d", "conv3d", "conv_transpose2d", "conv_transpose3d")


class _Clock:
    """Thread CPU seconds per label, attributed to the configuration that is running."""

    def __init__(self):
        self.tag = ""
        self.seconds: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def wrap(self, label: str, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            t0 = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[self.tag][label] += time.thread_time() - t0

        return timed


def _instrument(clock: _Clock, new: torch.nn.Module) -> list[Callable[[], None]]:
    """Patch the timed functions; returns the undo callbacks."""
    import torch.nn.functional as F

    import eventstereo.bench._baseline as baseline
    from eventstereo.snn import fused

    undo = []

    def patch(obj, name, label):
        original = getattr(obj, name)
        setattr(obj, name, clock.wrap(label, original))
        undo.append(lambda: setattr(obj, name, original))

    for name in ("lif_sequence", "alif_sequence", "lif_sequence_", "alif_sequence_"):
        patch(fused, name, "neurons")
    for name in _CONVS:  # looked up on the module at call time by ops, the baseline and nn.Conv*
        patch(F, name, "convolutions")
    patch(baseline, "_feature", "feature net")
    patch(baseline, "_volume_stem", "cost-volume stem")
    patch(baseline, "_matching", "matching")
    for module, label in ((new.feature, "feature net"), (new.matching.stem0, "cost-volume stem"),
                          (new.matching, "matching")):
        module.forward = clock.wrap(label, module.forward)
        undo.append(lambda m=module: m.__dict__.pop("forward", None))
    return undo


def measure(make_model: Callable[[], torch.nn.Module], frames: list, rounds: int) -> dict[str, dict]:
    """{"today": {part: ms}, "now": {part: ms}} per window."""
    from eventstereo.bench._baseline import BaselineStereo
    from eventstereo.stereo import subpixel_map

    new, old = make_model(), BaselineStereo(make_model())
    clock = _Clock()
    configs = (("today", old, "torch"), ("now", new, "auto"))
    undo = _instrument(clock, new)
    try:
        with torch.inference_mode(), gc_paused():
            clock.tag = "warm-up"
            for _, model, impl in configs:  # kernels compiled, weights prepared
                for left, right in frames[:2]:
                    subpixel_map(model.step(left, right), impl=impl)
            for _ in range(rounds):
                for tag, model, impl in configs:
                    clock.tag = tag
                    for left, right in frames:
                        t0 = time.thread_time()
                        cost = model.step(left, right)
                        t1 = time.thread_time()
                        subpixel_map(cost, impl=impl)
                        t2 = time.thread_time()
                        clock.seconds[tag]["window"] += t2 - t0
                        clock.seconds[tag]["estimator"] += t2 - t1
    finally:
        for u in undo:
            u()
    n = rounds * len(frames)
    out = {}
    for tag, _, _ in configs:
        s = {k: 1e3 * v / n for k, v in clock.seconds[tag].items()}
        out[tag] = {
            "window": s["window"], "matching 3-D": s["matching"] - s["cost-volume stem"],
            "neurons": s["neurons"], "feature net": s["feature net"],
            "cost-volume stem": s["cost-volume stem"],
            "estimator": s["estimator"],
            "other": s["window"] - s["feature net"] - s["matching"] - s["estimator"],
            "convolutions": s.get("convolutions", 0.0),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = bench_parser("parts", __doc__.splitlines()[0])
    p.add_argument("--windows", type=int, default=4, help="windows per configuration and round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--paper-model", help="a trained paper-size model file instead of random weights")
    p.add_argument("--skip-paper", action="store_true", help="only the demo model")
    args = p.parse_args(argv)
    from eventstereo.bench.stream import _render
    from eventstereo.events.sbt import encode_sbt
    from eventstereo.model import build_stereo_model
    from eventstereo.model.io import load_bundled_model, load_model
    from eventstereo.snn import fold_batchnorms

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        bundled = load_bundled_model()
        source = _render(args.windows, args.seed)
        size, sbt = source.sensor_size, bundled.sbt_settings
        frames = [tuple(torch.from_numpy(encode_sbt(ev, w.t_end_us, size, sbt))[None]
                        for ev in (w.left, w.right)) for w in source.windows]

        def demo():
            return load_bundled_model(fold_bn=True).model.eval()

        def paper():
            if args.paper_model:
                return load_model(args.paper_model, fold_bn=True).model.eval()
            torch.manual_seed(0)
            return fold_batchnorms(build_stereo_model(max_disparity=63).eval())

        models = [("demo", demo)] + ([] if args.skip_paper else [("paper", paper)])
        results, lines = {}, []
        for label, make in models:
            table = measure(make, frames, args.rounds)
            results[label] = table
            lines.append(f"{label} model, thread CPU ms per window (1 torch thread), {args.rounds} x "
                         f"{len(frames)} windows each, interleaved")
            lines.append(f"  {'part':<18}{'today':>9}{'now':>9}{'today/now':>11}")
            for part in PARTS:
                old, new = table["today"][part], table["now"][part]
                ratio = f"{old / new:.2f}x" if new > 0 else "-"
                lines.append(f"  {part:<18}{old:>9.1f}{new:>9.1f}{ratio:>11}")
            ceiling = table["today"]["window"] / max(table["now"]["convolutions"], 1e-9)
            table["ceiling"] = ceiling
            lines.append(f"  ceiling with these convolutions: today's window / now's convolutions = "
                         f"{ceiling:.2f}x")
        report(results, lines, args.json)
    finally:
        torch.set_num_threads(threads)
    return 0
