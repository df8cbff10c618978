"""`eventstereo bench probes`: cost of keeping FiringRateProbe attached while streaming.

A small spiking network of the stereo feature net's kind (SBT input, conv-BN-LIF layers at about the
1/3 resolution of a DAVIS346) runs single-step windows under no_grad; the probe is attached on every
other window, so that load drift on a shared machine hits both sets alike. The overhead is the
relative difference of the median per-window wall times (and of the mean process CPU times); as these
differences are noisy on a loaded machine, the time spent inside the hooks is also measured directly
(``hook_overhead``, a fraction of the plain window time). The target is below 5 %.
With --json the last line is one JSON object with ``overhead`` (a fraction) and the raw figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
from torch import nn

from eventstereo import argtypes
from eventstereo.snn import FiringRateProbe, LIFNode, reset_net


def _net(in_ch: int, ch: int, layers: int) -> nn.Module:
    mods: list[nn.Module] = []
    c = in_ch
    for _ in range(layers):
        mods += [nn.Conv2d(c, ch, 3, padding=1, bias=False), nn.BatchNorm2d(ch), LIFNode()]
        c = ch
    return nn.Sequential(*mods).eval()


def _time_in_hooks(net: nn.Module, frames: list[torch.Tensor]) -> float:
    """Seconds per window spent inside the probe's hooks, timed around each hook call: a direct
    measure, far less noisy on a shared machine than the difference of two window times."""
    probe = FiringRateProbe(net).attach()
    spent = [0.0]
    for _, m in probe._layers:
        for key, fn in list(m._forward_hooks.items()):
            def timed(mod, inp, out, fn=fn):
                t0 = time.perf_counter()
                fn(mod, inp, out)
                spent[0] += time.perf_counter() - t0

            m._forward_hooks[key] = timed
    with torch.no_grad():
        reset_net(net)
        for f in frames:
            net(f)
    probe.detach()
    return spent[0] / len(frames)


def measure(height: int, width: int, channels: int, layers: int, windows: int, repeats: int) -> dict:
    torch.manual_seed(0)
    net = _net(5, channels, layers)
    frames = [torch.randint(-1, 2, (1, 5, height, width)).float() for _ in range(windows)]
    probe = FiringRateProbe(net)
    with torch.no_grad():
        for f in frames[:3]:  # warm-up (and compile the fused kernels)
            net(f)
    plain: list[float] = []
    probed: list[float] = []
    plain_cpu: list[float] = []
    probed_cpu: list[float] = []
    with torch.no_grad():
        for r in range(repeats):
            reset_net(net)
            for i, f in enumerate(frames):
                on = (i + r) % 2 == 1  # alternate window by window: both see the same load
                if on:
                    probe.attach()
                t0, c0 = time.perf_counter(), time.process_time()
                net(f)
                dt, dc = time.perf_counter() - t0, time.process_time() - c0
                if on:
                    probe.detach()
                (probed if on else plain).append(dt)
                (probed_cpu if on else plain_cpu).append(dc)
    rates = probe.rates()
    t_plain, t_probe = statistics.median(plain), statistics.median(probed)
    hook_s = _time_in_hooks(net, frames)
    return {
        "window_ms": t_plain * 1e3,
        "window_ms_with_probe": t_probe * 1e3,
        "overhead": (t_probe - t_plain) / t_plain,
        "cpu_overhead": statistics.mean(probed_cpu) / statistics.mean(plain_cpu) - 1,
        "hook_ms_per_window": hook_s * 1e3,
        "hook_overhead": hook_s / t_plain,
        "layers": len(probe.names),
        "mean_rate": probe.mean_rate(),
        "rates": rates,
    }


def main(argv: list[str]) -> int:
    p = argtypes.OneLineErrorParser(prog="eventstereo bench probes", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--height", type=argtypes.positive_int, default=88)
    p.add_argument("--width", type=argtypes.positive_int, default=116)
    p.add_argument("--channels", type=argtypes.positive_int, default=32)
    p.add_argument("--layers", type=argtypes.positive_int, default=4)
    p.add_argument("--windows", type=argtypes.positive_int, default=40, help="windows per sequence")
    p.add_argument("--repeats", type=argtypes.positive_int, default=5,
                   help="sequences (the probe alternates per window)")
    p.add_argument("--threads", type=argtypes.int_in_range(1, 1024), default=None,
                   help="torch CPU threads (default: torch's setting)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    r = measure(a.height, a.width, a.channels, a.layers, a.windows, a.repeats)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    r["loadavg_1min"] = load
    print(f"{a.layers} conv-BN-LIF layers, {a.channels} ch, {a.height}x{a.width}, single-step, no_grad, "
          f"{torch.get_num_threads()} threads, load average {load:.2f}")
    print(f"per window: {r['window_ms']:.3f} ms plain, {r['window_ms_with_probe']:.3f} ms with probe: "
          f"overhead {100 * r['overhead']:+.2f} % (target < 5 %); CPU time {100 * r['cpu_overhead']:+.2f} %")
    print(f"time inside the probe hooks: {r['hook_ms_per_window']:.3f} ms per window = "
          f"{100 * r['hook_overhead']:.2f} % of a plain window")
    print(f"mean firing rate {r['mean_rate']:.4f} over {r['layers']} layers")
    if a.json:
        print(json.dumps(r))
    return 0
