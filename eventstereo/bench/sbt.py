"""SBT encoding speed: the Numba encoder against its floor, tonic's ToFrame and a numpy bincount, same run.

2M events in one 50 ms window at 346x260, 5 bins, sign mode. tonic's ToFrame(n_time_bins) splits the
span from the first to the last event into equal bins, so the stream is laid out to start exactly at the
window start and end exactly at the window end (that last event falls outside both); ON minus OFF, then
sign, newest bin first, gives the SBT frame, and all three outputs are checked equal before timing.

The floor is the least any encoder of this array can do: one numba pass over the same structured
events that reads each field, tests the window end and scatters +-1 into a single plane (no bins, no
sensor bounds, no sign). ``of_floor`` = floor time / encoder time, from interleaved encoder / floor
pairs (the best of each) timed in thread CPU time: both run in this thread, so the ratio holds on a
shared machine where wall time is mostly other processes' turns.
"""

from __future__ import annotations

import time

import numba
import numpy as np

from eventstereo import argtypes
from eventstereo.bench._common import bench_parser, best_time, report
from eventstereo.events import SBTSettings, encode_sbt, make_events


def make_stream(n: int, sensor=(346, 260), window_us: int = 50_000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w, h = sensor
    t = np.sort(rng.integers(0, window_us, n))
    t[0], t[-1] = 0, window_us
    return make_events(rng.integers(0, w, n), rng.integers(0, h, n), t, rng.integers(0, 2, n))


@numba.njit(nogil=True, boundscheck=False)
def sbt_floor(events, t_end, plane):
    """The floor pass (see the module docstring): +-1 per event before ``t_end`` into one (H, W) plane."""
    for i in range(events.shape[0]):
        e = events[i]
        if e.t >= t_end:
            continue
        plane[e.y, e.x] += np.float32(1.0) if e.p > 0 else np.float32(-1.0)


def _cpu_time(fn) -> float:
    t0 = time.thread_time()
    fn()
    return time.thread_time() - t0


def interleaved_ratio(fn, floor, *, repeat: int) -> tuple[float, float]:
    """(best thread CPU time of fn, of floor) over ``repeat`` interleaved pairs, after a warm-up each."""
    t_fn = t_floor = float("inf")
    fn()
    floor()
    for _ in range(repeat):
        t_fn = min(t_fn, _cpu_time(fn))
        t_floor = min(t_floor, _cpu_time(floor))
    return t_fn, t_floor


def sbt_tonic(events: np.ndarray, sensor, n_bins: int) -> np.ndarray:
    import tonic.transforms as T

    frames = T.ToFrame(sensor_size=(*sensor, 2), n_time_bins=n_bins)(events)  # (T, P, H, W) int16
    signed = frames[:, 1].astype(np.float32) - frames[:, 0]
    return np.sign(signed[::-1])


def sbt_bincount(events: np.ndarray, sensor, s: SBTSettings, t_end: int) -> np.ndarray:
    w, h = sensor
    dt = events["t"] - (t_end - s.window_us)
    keep = (dt >= 0) & (dt < s.window_us)
    b = s.n_bins - 1 - (dt[keep] * s.n_bins) // s.window_us
    ev = events[keep]
    idx = (b * h + ev["y"].astype(np.int64)) * w + ev["x"]
    weights = np.where(ev["p"] > 0, 1.0, -1.0)
    return np.sign(np.bincount(idx, weights, minlength=s.n_bins * h * w)).astype(np.float32).reshape(
        s.n_bins, h, w
    )


def main(argv: list[str] | None = None) -> int:
    p = bench_parser("sbt", __doc__)
    p.add_argument("--events", type=argtypes.positive_int, default=2_000_000)
    p.add_argument("--repeat", type=argtypes.positive_int, default=5)
    args = p.parse_args(argv)
    numba.set_num_threads(1)
    sensor, s = (346, 260), SBTSettings(window_us=50_000, n_bins=5, mode="sign")
    ev = make_stream(args.events, sensor, s.window_us)
    out_numba = encode_sbt(ev, s.window_us, sensor, s)  # also compiles
    out_tonic = sbt_tonic(ev.copy(), sensor, s.n_bins)
    out_bincount = sbt_bincount(ev, sensor, s, s.window_us)
    same = bool(np.array_equal(out_numba, out_tonic) and np.array_equal(out_numba, out_bincount))
    if not same:
        raise RuntimeError("encoders disagree: the benchmark would compare different work")
    frame = np.empty_like(out_numba)
    from eventstereo.events.sbt import encode_into

    plane = np.zeros(frame.shape[1:], np.float32)
    t_numba_cpu, t_floor = interleaved_ratio(lambda: encode_into(frame, ev, s.window_us, s),
                                             lambda: sbt_floor(ev, s.window_us, plane),
                                             repeat=2 * args.repeat)
    t_numba = best_time(lambda: encode_into(frame, ev, s.window_us, s), repeat=args.repeat)
    t_tonic = best_time(lambda: sbt_tonic(ev, sensor, s.n_bins), repeat=max(1, args.repeat // 2), warmup=0)
    t_bincount = best_time(lambda: sbt_bincount(ev, sensor, s, s.window_us), repeat=args.repeat)
    n = len(ev) / 1e6
    res = {
        "events": len(ev),
        "sensor": list(sensor),
        "bins": s.n_bins,
        "numba_mev_s": n / t_numba,
        "floor_mev_s_cpu": n / t_floor,
        "numba_mev_s_cpu": n / t_numba_cpu,
        "of_floor": t_floor / t_numba_cpu,
        "tonic_mev_s": n / t_tonic,
        "bincount_mev_s": n / t_bincount,
        "ratio_vs_tonic": t_tonic / t_numba,
        "ratio_vs_bincount": t_bincount / t_numba,
        "outputs_equal": same,
    }
    lines = [
        f"SBT encode, {len(ev):,} events, {sensor[0]}x{sensor[1]}, {s.n_bins} bins, sign (one thread)",
        f"  numba     {res['numba_mev_s']:8.1f} M events/s   ({res['numba_mev_s_cpu']:.1f} per CPU second: "
        f"{res['of_floor']:.2f} of the floor)",
        f"  floor     {res['floor_mev_s_cpu']:8.1f} M events/s per CPU second "
        "(read, test the end, +-1 into one plane)",
        f"  bincount  {res['bincount_mev_s']:8.1f} M events/s   numba {res['ratio_vs_bincount']:.1f}x faster",
        f"  tonic     {res['tonic_mev_s']:8.1f} M events/s   numba {res['ratio_vs_tonic']:.1f}x faster",
    ]
    report(res, lines, args.json)
    return 0
