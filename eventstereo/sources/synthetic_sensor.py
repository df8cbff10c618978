"""The synthetic source's event sensor: its parameters (fixed or drawn per seed) and its noise events.

Why a separate piece: a model trained on one perfect sensor learns that sensor's habits (one contrast
threshold, no hot pixels, exact timestamps) and fails on any real camera. ``SensorParams`` holds what
differs between DVS sensors and settings; ``SensorParams.draw`` picks one sensor per seed from
SENSOR_RANGES (a wide, realistic range: DAVIS346 thresholds are ~0.1-0.5 log units). The noise events
(shot noise, leak, hot pixels) and timestamp jitter are added per window with their own seeded
streams, so a window can still be regenerated exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# name -> (low, high, "log" | "lin"): the per-seed sensor draw of randomize_sensor.
SENSOR_RANGES: dict[str, tuple[float, float, str]] = {
    "contrast_threshold": (0.1, 0.45, "log"),
    "threshold_spread": (0.03, 0.25, "lin"),  # per-pixel std as a fraction of the threshold
    "refractory_us": (30.0, 3000.0, "log"),
    "noise_rate_hz": (0.02, 2.0, "log"),
    "leak_rate_hz": (0.01, 0.5, "log"),
    "hot_pixel_fraction": (0.0, 3e-4, "lin"),
    "hot_pixel_rate_hz": (30.0, 500.0, "log"),
    "timestamp_jitter_us": (0.0, 1000.0, "lin"),
}


@dataclass(frozen=True)
class SensorParams:
    """One sensor: contrast threshold (log units) and its per-pixel std, refractory period,
    background (shot-noise) events of random polarity, leak events (ON, as the reference level of a
    real pixel slowly drifts down), hot pixels (a fixed ``hot_pixel_fraction`` of pixels firing at
    ``hot_pixel_rate_hz``), and Gaussian timestamp jitter (std, us). Rates are per pixel per second."""

    contrast_threshold: float = 0.2
    threshold_sigma: float = 0.03
    refractory_us: int = 1000
    noise_rate_hz: float = 0.1
    leak_rate_hz: float = 0.0
    hot_pixel_fraction: float = 0.0
    hot_pixel_rate_hz: float = 200.0
    timestamp_jitter_us: float = 0.0

    @classmethod
    def draw(cls, rng: np.random.Generator) -> SensorParams:
        """A random sensor from SENSOR_RANGES."""
        v = {}
        for name, (lo, hi, scale) in SENSOR_RANGES.items():
            v[name] = (math.exp(rng.uniform(math.log(lo), math.log(hi))) if scale == "log"
                       else rng.uniform(lo, hi))
        c = v.pop("contrast_threshold")
        return cls(contrast_threshold=c, threshold_sigma=c * v.pop("threshold_spread"),
                   refractory_us=int(round(v.pop("refractory_us"))), **v)


def hot_pixels(rng: np.random.Generator, npix: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the hot pixels and each one's polarity (fixed per sensor)."""
    n = int(round(fraction * npix))
    return rng.choice(npix, n, replace=False) if n else np.zeros(0, np.int64), rng.integers(0, 2, n)


def extra_events(rng: np.random.Generator, sensor: SensorParams, hot: tuple[np.ndarray, np.ndarray],
                 size: tuple[int, int], t0: int, span: int) -> tuple[np.ndarray, ...]:
    """Leak and hot-pixel events of one window [t0, t0 + span): (x, y, t, p) arrays (shot noise is
    drawn by the source itself, as before, so old seeds keep their streams)."""
    w, h = size
    xs, ys, ps = [], [], []
    n_leak = int(rng.poisson(sensor.leak_rate_hz * w * h * span * 1e-6))
    xs.append(rng.integers(0, w, n_leak))
    ys.append(rng.integers(0, h, n_leak))
    ps.append(np.ones(n_leak, np.int64))
    idx, pol = hot
    if len(idx):
        counts = rng.poisson(sensor.hot_pixel_rate_hz * span * 1e-6, len(idx))
        flat = np.repeat(idx, counts)
        xs.append(flat % w)
        ys.append(flat // w)
        ps.append(np.repeat(pol, counts))
    x = np.concatenate(xs)
    return x, np.concatenate(ys), rng.integers(t0, t0 + span, len(x)), np.concatenate(ps)


def jitter_times(rng: np.random.Generator, t: np.ndarray, std_us: float, t0: int, span: int) -> None:
    """Add Gaussian jitter to timestamps in place, kept inside the window [t0, t0 + span)."""
    if std_us > 0 and len(t):
        t += np.rint(rng.normal(0.0, std_us, len(t))).astype(t.dtype)
        np.clip(t, t0, t0 + span - 1, out=t)
