"""`eventstereo bench lif`: the fused LIF recurrence against the plain eager loop, in one run.

Measures forward + backward time (median of interleaved repeats) and peak memory (bytes allocated
above what exists before the call: inputs, parameters and the incoming gradient are allocated
beforehand) of
  (a) the neuron recurrence alone on given input currents [T, B, C, H, W] (backward from a given
      gradient of the spikes, as a following layer would supply it), and
  (b) a conv3x3-BN-LIF stack of the same shape on binary input spikes (backward to the weights),
for the fused path, the eager loop and, when installed, spikingjelly's LIFNode (optional dependency).
Peak memory on CPU comes from the profiler's allocator trace; on CUDA from the allocator statistics.
With --json the last line is one JSON object: speedup_vs_eager (wall time), cpu_speedup_vs_eager
(process CPU time) and memory_ratio_vs_eager for (a), the same keys prefixed with stack_ for (b), and
the raw figures. On a shared machine prefer --threads 1 and the CPU-time ratio: wall times of many small
OpenMP regions (the eager loop) swing by several times with the load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import torch
from torch import nn

from eventstereo import argtypes
from eventstereo.snn import LIFNode, SeqToANN, reset_net

Step = Callable[[], None]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def _without_profiler_chatter():
    """Kineto writes "USDT: ... profiler_start/stop" lines straight to file descriptor 2 on every CPU
    profile; catch fd 2 meanwhile and pass on every other line it received."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [ln for ln in caught.read().decode(errors="replace").splitlines(keepends=True)
                    if not ln.startswith("USDT:")]
            if kept:
                sys.stderr.write("".join(kept))


def peak_bytes(fn: Step, device: torch.device) -> int:
    """Peak bytes allocated by torch while `fn` runs, above the level at its start."""
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        _sync(device)
        return torch.cuda.max_memory_allocated(device) - base
    from torch.profiler import ProfilerActivity, profile

    with _without_profiler_chatter(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "trace.json")
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f)["traceEvents"]
    totals = [e["args"]["Total Allocated"] for e in events if e.get("name") == "[memory]"]
    return max([0, *totals])


def time_interleaved(fns: dict[str, Step], repeats: int, warmup: int,
                     device: torch.device) -> dict[str, tuple[float, float]]:
    """Median (wall, process CPU) seconds per call; variants alternate within each repeat so that load
    drift on a shared machine hits all alike. CPU time is the steadier figure under load (it excludes
    waiting for a core) but counts every thread, spinning OpenMP workers included."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            _sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            _sync(device)
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in fns}


def _spikingjelly_lif(step_mode: str = "m") -> nn.Module | None:
    try:
        from spikingjelly.activation_based import neuron, surrogate
    except ImportError:
        return None
    # The same dynamics in spikingjelly's form: with decay_input=False, v <- v (1 - 1/tau) + x, so
    # tau = 1.25 is our leak factor 0.2; hard reset to 0, threshold 0.5 (its surrogate differs).
    return neuron.LIFNode(tau=1.25, decay_input=False, v_threshold=0.5, v_reset=0.0,
                          surrogate_function=surrogate.Sigmoid(), step_mode=step_mode)


def _neuron_variants(sj: nn.Module | None) -> dict[str, nn.Module]:
    variants: dict[str, nn.Module] = {
        "fused": LIFNode(step_mode="m", backend="fused"),
        "eager": LIFNode(step_mode="m", backend="eager"),
    }
    if sj is not None:
        variants["spikingjelly"] = sj
    return variants


def _reset(m: nn.Module) -> None:
    reset_net(m)
    for sub in m.modules():  # spikingjelly's stateful modules have their own reset()
        if type(sub).__module__.startswith("spikingjelly") and hasattr(sub, "reset"):
            sub.reset()


def bench_neuron(shape: tuple[int, ...], device: torch.device, repeats: int, warmup: int) -> dict[str, dict]:
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(shape, generator=gen) * 0.5 + 0.3).to(device).requires_grad_()
    grad = torch.randn(shape, generator=gen).to(device)
    fns: dict[str, Step] = {}
    for name, node in _neuron_variants(_spikingjelly_lif()).items():
        node.to(device)

        def step(node: nn.Module = node) -> None:
            _reset(node)
            s = node(x)
            s.backward(grad)
            x.grad = None

        fns[name] = step
    out = {k: {"peak_bytes": peak_bytes(fn, device)} for k, fn in fns.items()}
    for k, (t, c) in time_interleaved(fns, repeats, warmup, device).items():
        out[k]["seconds"], out[k]["cpu_seconds"] = t, c
    return out


def _stack(channels: int, neuron: nn.Module) -> nn.Module:
    conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
    return nn.Sequential(SeqToANN(conv, nn.BatchNorm2d(channels), step_mode="m"), neuron)


def bench_stack(shape: tuple[int, ...], device: torch.device, repeats: int, warmup: int) -> dict[str, dict]:
    gen = torch.Generator().manual_seed(1)
    x = (torch.rand(shape, generator=gen) < 0.2).float().to(device)
    grad = torch.randn(shape, generator=gen).to(device)
    fns: dict[str, Step] = {}
    nets = {}
    for name, node in _neuron_variants(_spikingjelly_lif()).items():
        torch.manual_seed(2)
        net = _stack(shape[2], node).to(device)
        nets[name] = net

        def step(net: nn.Module = net) -> None:
            _reset(net)
            s = net(x)
            s.backward(grad)
            for p in net.parameters():
                p.grad = None

        fns[name] = step
    out = {k: {"peak_bytes": peak_bytes(fn, device)} for k, fn in fns.items()}
    for k, (t, c) in time_interleaved(fns, repeats, warmup, device).items():
        out[k]["seconds"], out[k]["cpu_seconds"] = t, c
    return out


def _summary(res: dict[str, dict], prefix: str) -> dict[str, float | None]:
    f, e = res["fused"], res["eager"]
    d: dict[str, float | None] = {
        f"{prefix}fused_ms": f["seconds"] * 1e3,
        f"{prefix}eager_ms": e["seconds"] * 1e3,
        f"{prefix}fused_peak_mb": f["peak_bytes"] / 2**20,
        f"{prefix}eager_peak_mb": e["peak_bytes"] / 2**20,
        f"{prefix}speedup_vs_eager": e["seconds"] / f["seconds"],
        f"{prefix}cpu_speedup_vs_eager": e["cpu_seconds"] / f["cpu_seconds"],
        f"{prefix}memory_ratio_vs_eager": f["peak_bytes"] / max(1, e["peak_bytes"]),
    }
    sj = res.get("spikingjelly")
    d[f"{prefix}spikingjelly_ms"] = sj["seconds"] * 1e3 if sj else None
    d[f"{prefix}speedup_vs_spikingjelly"] = sj["seconds"] / f["seconds"] if sj else None
    d[f"{prefix}memory_ratio_vs_spikingjelly"] = f["peak_bytes"] / max(1, sj["peak_bytes"]) if sj else None
    return d


def main(argv: list[str]) -> int:
    p = argtypes.OneLineErrorParser(prog="eventstereo bench lif", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--T", type=argtypes.positive_int, default=8, help="time steps")
    p.add_argument("--batch", type=argtypes.positive_int, default=4)
    p.add_argument("--channels", type=argtypes.positive_int, default=64)
    p.add_argument("--size", type=argtypes.positive_int, default=64, help="height = width")
    p.add_argument("--repeats", type=argtypes.positive_int, default=5)
    p.add_argument("--warmup", type=argtypes.non_negative_int, default=2)
    p.add_argument("--device", type=argtypes.device, default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=argtypes.int_in_range(1, 1024), default=None,
                   help="torch CPU threads (default: torch's setting)")
    p.add_argument("--no-stack", action="store_true", help="skip (b), the conv-BN-LIF stack")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    shape = (a.T, a.batch, a.channels, a.size, a.size)

    neuron = bench_neuron(shape, device, a.repeats, a.warmup)
    result: dict[str, object] = {
        "shape": list(shape), "device": str(device), "threads": torch.get_num_threads(),
        "loadavg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "spikingjelly": "spikingjelly" in neuron, **_summary(neuron, ""),
    }
    if not a.no_stack:
        result.update(_summary(bench_stack(shape, device, max(1, a.repeats // 2), 1), "stack_"))

    print(f"LIF fwd+bwd, input {'x'.join(map(str, shape))} on {device} ({torch.get_num_threads()} threads, "
          f"load average {result['loadavg_1min']})")
    for label, prefix in (("(a) neuron alone", ""), ("(b) conv-BN-LIF", "stack_")):
        r = {k[len(prefix):]: v for k, v in result.items() if k.startswith(prefix)}
        if "fused_ms" not in r:
            continue
        print(f"{label}: fused {r['fused_ms']:.1f} ms, {r['fused_peak_mb']:.1f} MB | "
              f"eager {r['eager_ms']:.1f} ms, {r['eager_peak_mb']:.1f} MB | "
              f"speedup {r['speedup_vs_eager']:.2f}x (CPU time {r['cpu_speedup_vs_eager']:.2f}x), "
              f"memory {r['memory_ratio_vs_eager']:.2f}x of eager")
        if r.get("spikingjelly_ms") is not None:
            print(f"    spikingjelly LIFNode {r['spikingjelly_ms']:.1f} ms "
                  f"(fused speedup {r['speedup_vs_spikingjelly']:.2f}x, "
                  f"memory {r['memory_ratio_vs_spikingjelly']:.2f}x)")
    if not result["spikingjelly"]:
        print("spikingjelly not installed: its column is skipped (pip install spikingjelly to add it)")
    if a.json:
        print(json.dumps(result))
    return 0
