"""How many windows per second SpikeDHS-Stereo streams at a given size (a measurement, not a test).

``python -m eventstereo.model.bench`` times ``step()`` of the demo-width and the paper-width network
on one 346x260 stereo pair of random sparse SBT frames (dense convolutions do not get faster with
sparsity, so the input content hardly matters). On a CPU shared with other jobs, OpenMP threads that
spin while waiting lose their time slices; ``OMP_WAIT_POLICY=PASSIVE`` (set before starting Python)
or one thread gives stabler numbers there.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from eventstereo.model.network import DEMO_FILTER_MULTIPLIER, build_stereo_model


def measure_speed(filter_multiplier: int = DEMO_FILTER_MULTIPLIER, *, height: int = 260, width: int = 346,
                  max_disparity: int = 63, windows: int = 10, warmup: int = 2, device: str = "cpu",
                  density: float = 0.05, seed: int = 0) -> dict[str, float]:
    """Time ``windows`` calls of ``step`` (after ``warmup``) in inference mode; returns milliseconds and
    windows/s (from the fastest call, the least disturbed by other processes) and the median."""
    torch.manual_seed(seed)
    model = build_stereo_model(filter_multiplier=filter_multiplier, max_disparity=max_disparity)
    model = model.eval().to(device)
    shape = (1, model.in_channels, height, width)
    left = ((torch.rand(shape) < density).float() * torch.randn(shape).sign()).to(device)
    right = torch.roll(left, -10, dims=-1)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    times = []
    with torch.inference_mode():
        for i in range(warmup + windows):
            sync()
            t0 = time.perf_counter()
            model.step(left, right)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    best, median = min(times), statistics.median(times)
    return {"filter_multiplier": filter_multiplier, "params": sum(p.numel() for p in model.parameters()),
            "threads": torch.get_num_threads(), "best_ms": 1e3 * best, "median_ms": 1e3 * median,
            "windows_per_s": 1.0 / best, "median_windows_per_s": 1.0 / median}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", type=int, nargs="+", default=[DEMO_FILTER_MULTIPLIER, 8],
                   help="filter multipliers to time (default: demo and paper width)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--windows", type=int, default=10)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    for f in args.widths:
        r = measure_speed(f, windows=args.windows, device=args.device)
        print(f"filter multiplier {f:2d} ({r['params'] / 1e6:.3f}M params, {r['threads']} threads, "
              f"{args.device}): "
              f"best {r['best_ms']:.1f} ms = {r['windows_per_s']:.2f} windows/s, "
              f"median {r['median_ms']:.1f} ms = {r['median_windows_per_s']:.2f} windows/s")


if __name__ == "__main__":
    main()
