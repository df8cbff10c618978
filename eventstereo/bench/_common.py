"""Shared benchmark plumbing: best-of-N timing and the --json last-line convention."""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import time
from collections.abc import Callable, Iterator

from eventstereo import argtypes


def best_time(fn: Callable[[], object], *, repeat: int = 5, warmup: int = 1) -> float:
    """Best wall time of ``repeat`` calls (seconds), after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Collect once, then keep Python's cyclic garbage collector off while timing (as ``timeit`` does).

    A full collection walks the ~270k objects torch and numba keep alive: 150-190 ms of CPU, landing in
    whichever configuration happens to run. In ``bench parts`` it read as 'neurons 15 ms' for the demo
    model whose neurons take 4-5 (one window in 18 held a 150 ms collection). The forward makes no
    cyclic garbage, so nothing piles up while it is off."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def bench_parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    p = argtypes.OneLineErrorParser(prog=f"eventstereo bench {prog}", description=description)
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    return p


def report(results: dict, lines: list[str], as_json: bool) -> None:
    """Print the human table, then (with --json) the results as the last line."""
    print("\n".join(lines))
    if as_json:
        print(json.dumps(results))
