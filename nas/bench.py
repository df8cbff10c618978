"""`nas bench`: one search iteration and one retrain iteration, fused vs eager neurons, same run.

Times: ONE process per iteration kind builds the model once and alternates the neuron backend between
iterations (fused, eager, fused, eager, ...), so that both see the same machine load; the median of
``--repeats`` each, after a warm-up of each. Memory: one process per (kind, backend) runs a single
iteration; its peak resident memory (``ru_maxrss``) minus that before the iteration is the memory the
iteration needs beyond the model and its inputs. Only the ratios mean something on a shared machine.
The report adds where the time of a fused search iteration goes (torch profiler, by op), because the
neurons are a small part of it. spikingjelly is a measurement-only comparison: where it is not
installed the output says so.
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


def _build(opts: dict[str, Any]):
    """(model, iteration) for opts["kind"] at the bench size, inputs seeded."""
    import torch

    from eventstereo.model.classifier import build_classifier
    from nas.decode import classifier_genotype
    from nas.search import classification_loss
    from nas.space import ClassifierSupernet

    torch.manual_seed(0)
    size = {k: opts[k] for k in ("channels", "cells", "nodes", "timesteps")}
    supernet = ClassifierSupernet(num_classes=10, in_channels=3, **size)
    model = supernet if opts["kind"] == "search" else build_classifier(
        classifier_genotype(supernet.alphas, supernet.config))
    b, s = opts["batch_size"], opts["size"]
    g = torch.Generator().manual_seed(1)
    xa, xb = torch.randn(b, 3, s, s, generator=g), torch.randn(b, 3, s, s, generator=g)
    ya, yb = torch.randint(0, 10, (b,), generator=g), torch.randint(0, 10, (b,), generator=g)
    if opts["kind"] == "search":
        opt_w = torch.optim.SGD(model.weight_parameters(), lr=0.025, momentum=0.9)
        opt_a = torch.optim.Adam(model.arch_parameters(), lr=1e-3)

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
    return model, iteration


def _set_backend(model, backend: str) -> None:
    from eventstereo.snn.neurons import BaseNeuron

    for m in model.modules():
        if isinstance(m, BaseNeuron):
            m.backend = backend


def _child(opts: dict[str, Any]) -> dict[str, Any]:
    """One measurement process: "memory" (one backend, one iteration) or "time" (both, alternating)."""
    model, iteration = _build(opts)
    if opts["mode"] == "memory":
        _set_backend(model, opts["backend"])
        base = _rss_mb()
        iteration()
        return {"peak_extra_mb": _rss_mb() - base}
    times: dict[str, list[float]] = {b: [] for b in BACKENDS}
    for backend in BACKENDS:  # warm-up: numba compilation, allocator
        _set_backend(model, backend)
        iteration()
    for _ in range(opts["repeats"]):
        for backend in BACKENDS:
            _set_backend(model, backend)
            t = time.perf_counter()
            iteration()
            times[backend].append(time.perf_counter() - t)
    out: dict[str, Any] = {b: statistics.median(v) for b, v in times.items()}
    if opts.get("profile"):
        from torch.profiler import profile

        _set_backend(model, "fused")
        with profile() as prof:
            iteration()
        rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
        total = sum(e.self_cpu_time_total for e in rows) or 1
        out["profile"] = [(e.key, round(100 * e.self_cpu_time_total / total, 1)) for e in rows[:8]]
        out["neuron_share"] = round(100 * sum(e.self_cpu_time_total for e in rows
                                              if "LIF" in e.key or "ALIF" in e.key) / total, 1)
    return out


def _run_child(opts: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "nas.bench", json.dumps(opts)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"bench child {opts}: failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_bench(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    base = dict(size=args.size, timesteps=args.timesteps, batch_size=args.batch_size, channels=args.channels,
                cells=args.cells, nodes=args.nodes, repeats=args.repeats)
    results: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        timed = _run_child({**base, "kind": kind, "mode": "time", "profile": kind == "search"})
        r: dict[str, Any] = {}
        for backend in BACKENDS:
            mem = _run_child({**base, "kind": kind, "mode": "memory", "backend": backend})
            r[backend] = {"seconds": timed[backend], "peak_extra_mb": mem["peak_extra_mb"]}
        r["speedup_fused_vs_eager"] = r["eager"]["seconds"] / r["fused"]["seconds"]
        r["memory_fused_vs_eager"] = r["fused"]["peak_extra_mb"] / max(1e-9, r["eager"]["peak_extra_mb"])
        if "profile" in timed:
            r["profile_top_ops_percent"] = timed["profile"]
            r["neuron_percent"] = timed["neuron_share"]
        results[kind] = r
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
        if "profile_top_ops_percent" in r:
            top = ", ".join(f"{k} {v:.0f} %" for k, v in r["profile_top_ops_percent"][:5])
            lines.append(f"{'':<10} fused {kind} time by op: {top}; the neurons: {r['neuron_percent']:.1f} %")
    lines.append(sj_note)
    return {"config": base, "results": results, "spikingjelly": "installed" if has_sj else "not installed",
            "note": sj_note}, "\n".join(lines)


if __name__ == "__main__":  # the child process of one measurement
    print(json.dumps(_child(json.loads(sys.argv[1]))))
