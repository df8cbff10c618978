"""`nas bench`: one search iteration and one retrain iteration, fused vs eager neurons, same run.

Each (iteration kind, neuron backend) runs in its own process so that its peak resident memory is its
own (``ru_maxrss`` after the iterations minus before the first one: the memory the iteration needs
beyond the model and its inputs). Times are the median of ``--repeats`` iterations after a warm-up.
Only the ratios mean something on a shared machine. spikingjelly is a measurement-only comparison:
where it is not installed the output says so.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

KINDS = ("search", "retrain")
BACKENDS = ("fused", "eager")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def _child(opts: dict[str, Any]) -> dict[str, Any]:
    import torch

    from eventstereo.model.classifier import build_classifier
    from eventstereo.snn.neurons import BaseNeuron
    from nas.decode import classifier_genotype
    from nas.search import classification_loss
    from nas.space import ClassifierSupernet

    torch.manual_seed(0)
    size = {k: opts[k] for k in ("channels", "cells", "nodes", "timesteps")}
    supernet = ClassifierSupernet(num_classes=10, in_channels=3, **size)
    if opts["kind"] == "search":
        model = supernet
    else:
        model = build_classifier(classifier_genotype(supernet.alphas, supernet.config))
        del supernet
    for m in model.modules():
        if isinstance(m, BaseNeuron):
            m.backend = opts["backend"]
    b, s = opts["batch_size"], opts["size"]
    g = torch.Generator().manual_seed(1)
    xa, xb = torch.randn(b, 3, s, s, generator=g), torch.randn(b, 3, s, s, generator=g)
    ya, yb = torch.randint(0, 10, (b,), generator=g), torch.randint(0, 10, (b,), generator=g)
    if opts["kind"] == "search":
        arch = model.arch_parameters()
        weights = model.weight_parameters()
        opt_w = torch.optim.SGD(weights, lr=0.025, momentum=0.9)
        opt_a = torch.optim.Adam(arch, lr=1e-3)

        def iteration() -> None:
            for opt, x, y in ((opt_w, xa, ya), (opt_a, xb, yb)):
                opt.zero_grad(set_to_none=True)
                classification_loss(model, (x, y))[0].backward()
                opt.step()
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.025, momentum=0.9)

        def iteration() -> None:
            opt.zero_grad(set_to_none=True)
            logits, aux = model.forward_with_aux(xa)
            loss = torch.nn.functional.cross_entropy(logits, ya)
            if aux is not None:
                loss = loss + 0.4 * torch.nn.functional.cross_entropy(aux, ya)
            loss.backward()
            opt.step()

    model.train()
    base = _rss_mb()
    iteration()  # warm-up (numba compilation, allocator)
    times = []
    for _ in range(opts["repeats"]):
        t = time.perf_counter()
        iteration()
        times.append(time.perf_counter() - t)
    return {"seconds": statistics.median(times), "peak_extra_mb": _rss_mb() - base}


def _run_child(opts: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "nas.bench", json.dumps(opts)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"bench child {opts['kind']}/{opts['backend']} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_bench(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    base = dict(size=args.size, timesteps=args.timesteps, batch_size=args.batch_size, channels=args.channels,
                cells=args.cells, nodes=args.nodes, repeats=args.repeats)
    results: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        results[kind] = {b: _run_child({**base, "kind": kind, "backend": b}) for b in BACKENDS}
        r = results[kind]
        r["speedup_fused_vs_eager"] = r["eager"]["seconds"] / r["fused"]["seconds"]
        r["memory_fused_vs_eager"] = r["fused"]["peak_extra_mb"] / max(1e-9, r["eager"]["peak_extra_mb"])
    has_sj = importlib.util.find_spec("spikingjelly") is not None
    sj_note = ("spikingjelly is installed, but no comparison with its SpikeDHS model is implemented here"
               if has_sj else "spikingjelly is NOT installed: no comparison with its SpikeDHS model "
                                "(measurement only; pip install spikingjelly to provide it)")
    lines = [f"nas bench: {args.size}x{args.size} images, T={args.timesteps}, batch {args.batch_size}, "
             f"C={args.channels}, {args.cells} cells, {args.nodes} nodes; median of {args.repeats}"]
    lines.append(f"{'iteration':<10} {'backend':<7} {'s/iter':>8} {'peak +MB':>9}")
    for kind in KINDS:
        for backend in BACKENDS:
            r = results[kind][backend]
            lines.append(f"{kind:<10} {backend:<7} {r['seconds']:>8.3f} {r['peak_extra_mb']:>9.0f}")
        r = results[kind]
        lines.append(f"{kind:<10} fused is {r['speedup_fused_vs_eager']:.2f}x faster than eager at "
                     f"{r['memory_fused_vs_eager']:.2f}x its extra memory")
    lines.append(sj_note)
    return {"config": base, "results": results, "spikingjelly": "installed" if has_sj else "not installed",
            "note": sj_note}, "\n".join(lines)


if __name__ == "__main__":  # the child process of one measurement
    print(json.dumps(_child(json.loads(sys.argv[1]))))
