"""Sensor augmentations of SBT frames: what other cameras and simulators do to the events we train on.

A model trained on one simulator learns that simulator's sensor: its event rate, its balance of ON and
OFF events, its fine timestamps, its silence where nothing moves. Each augmentation here changes one of
these on the encoded frames of a training sequence, so no cache has to be rebuilt:

- ``dropout``: a fraction of the events of each eye is lost (a higher contrast threshold, a slower rig);
- ``polarity``: one polarity is thinned (ON/OFF threshold imbalance);
- ``quantise``: timestamps snapped to a frame clock of 40-250 Hz, as frame-differencing simulators make
  them, the same clock in both eyes, so events crowd into a few bins;
- ``noise``: shot-noise events and hot pixels, independent in each eye;
- ``burst``: one window of the sequence gets a burst of uncorrelated events in a band or the upper part
  of both images.

The table ``AUGMENTATIONS`` maps each name to its typed config and function; the CLI choices come from it.
Sensor properties (rates, hot pixels, the frame clock) are drawn once per sequence, as a camera keeps
them over a recording. Everything is drawn from a generator seeded by (train seed, epoch, item), so a
resumed run sees the same data. The GT is never touched, and sign frames stay in {-1, 0, 1}.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from eventstereo.events.sbt import SBTSettings


@dataclass(frozen=True)
class Frames:
    """One training sequence's frames, (T, C, h, w) float32 per eye, with the SBT settings they have."""

    left: np.ndarray
    right: np.ndarray
    settings: SBTSettings

    def eyes(self) -> tuple[np.ndarray, np.ndarray]:
        return self.left, self.right


def _resign(frames: np.ndarray, settings: SBTSettings) -> None:
    if settings.mode == "sign":
        np.sign(frames, out=frames)


def _thin(frames: np.ndarray, keep: np.ndarray | float, rng: np.random.Generator,
          settings: SBTSettings) -> None:
    """Keep each event with probability ``keep`` (a sign pixel is one event; a count is thinned per event)."""
    if settings.mode == "sign":
        frames *= rng.random(frames.shape, dtype=np.float32) < keep
    else:
        mag = np.abs(frames).astype(np.int64)
        frames[...] = np.sign(frames) * rng.binomial(mag, np.broadcast_to(keep, frames.shape))


@dataclass(frozen=True)
class DropoutConfig:
    p: float = 0.5          # probability that a sequence is augmented
    max_rate: float = 0.6   # each eye loses a fraction U(0, max_rate) of its events


def dropout(f: Frames, cfg: DropoutConfig, rng: np.random.Generator) -> None:
    for eye in f.eyes():
        _thin(eye, 1.0 - rng.uniform(0.0, cfg.max_rate), rng, f.settings)


@dataclass(frozen=True)
class PolarityConfig:
    p: float = 0.4
    max_rate: float = 0.7   # the thinned polarity loses a fraction U(0, max_rate)


def polarity(f: Frames, cfg: PolarityConfig, rng: np.random.Generator) -> None:
    sign = rng.choice((-1.0, 1.0))  # the same sensor model in both cameras: one polarity is weak
    for eye in f.eyes():
        keep = np.where(eye * sign > 0, np.float32(1.0 - rng.uniform(0.0, cfg.max_rate)), np.float32(1.0))
        _thin(eye, keep, rng, f.settings)


@dataclass(frozen=True)
class QuantiseConfig:
    p: float = 0.4
    min_hz: float = 40.0
    max_hz: float = 250.0


def quantise_bins(settings: SBTSettings, period_us: float, phase_us: float) -> np.ndarray:
    """Where each channel's events land when their timestamps snap to the nearest tick of a frame clock
    (ticks at ``phase + k * period``): the channel index of each channel's bin centre, snapped."""
    n, w = settings.n_bins, settings.window_us
    lo = -((-np.arange(n + 1) * w) // n)  # the encoder's bin edges
    centre = (lo[:-1] + lo[1:]) / 2.0
    snapped = phase_us + np.round((centre - phase_us) / period_us) * period_us
    b = np.clip((snapped * n) // w, 0, n - 1).astype(np.int64)
    return (n - 1 - b[::-1]) if settings.newest_first else b


def quantise(f: Frames, cfg: QuantiseConfig, rng: np.random.Generator) -> None:
    period = 1e6 / rng.uniform(cfg.min_hz, cfg.max_hz)
    target = quantise_bins(f.settings, period, rng.uniform(0.0, period))
    if np.array_equal(target, np.arange(len(target))):
        return
    for eye in f.eyes():
        merged = np.zeros_like(eye)
        for c, t in enumerate(target):
            merged[:, t] += eye[:, c]
        eye[...] = merged
        _resign(eye, f.settings)


@dataclass(frozen=True)
class NoiseConfig:
    p: float = 0.5
    shot_rate: tuple[float, float] = (1e-4, 1e-2)     # events per pixel per bin, log-uniform
    hot_fraction: tuple[float, float] = (1e-4, 2e-3)  # share of pixels that are hot, log-uniform


def _log_uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(np.log(lo_hi[0]), np.log(lo_hi[1]))))


def _add_events(eye: np.ndarray, mask: np.ndarray, rng: np.random.Generator, settings: SBTSettings) -> None:
    eye += mask * rng.choice(np.array((-1.0, 1.0), np.float32), size=eye.shape)
    _resign(eye, settings)


def noise(f: Frames, cfg: NoiseConfig, rng: np.random.Generator) -> None:
    for eye in f.eyes():  # two cameras: independent noise and hot pixels
        shot = rng.random(eye.shape, dtype=np.float32) < _log_uniform(rng, cfg.shot_rate)
        _add_events(eye, shot, rng, f.settings)
        h, w = eye.shape[-2:]
        hot = rng.random((h, w)) < _log_uniform(rng, cfg.hot_fraction)
        ys, xs = np.nonzero(hot)
        fires = rng.random((eye.shape[0], eye.shape[1], len(ys))) < rng.uniform(0.5, 1.0)
        eye[:, :, ys, xs] += fires * rng.choice(np.array((-1.0, 1.0), np.float32), size=len(ys))
        _resign(eye, f.settings)


@dataclass(frozen=True)
class BurstConfig:
    p: float = 0.3
    density: tuple[float, float] = (0.05, 0.4)  # share of the region's pixels firing per bin
    upper_share: float = 0.5                     # how often the region is the upper part, not a band


def burst(f: Frames, cfg: BurstConfig, rng: np.random.Generator) -> None:
    t = int(rng.integers(0, f.left.shape[0]))
    h = f.left.shape[-2]
    if rng.random() < cfg.upper_share:
        y0, y1 = 0, int(rng.integers(h // 4, h + 1))
    else:
        y0 = int(rng.integers(0, h))
        y1 = min(h, y0 + int(rng.integers(max(1, h // 8), h // 2 + 1)))
    density = rng.uniform(*cfg.density)
    for eye in f.eyes():  # uncorrelated in the two eyes: nothing in a burst should match
        region = eye[t, :, y0:y1]
        _add_events(region, rng.random(region.shape, dtype=np.float32) < density, rng, f.settings)


@dataclass(frozen=True)
class Augmentation:
    """config: its typed settings; apply: the function; signed: it reads or writes events as signed
    values in one plane per bin, so it needs sign or sum frames (not polarity mode's ON/OFF counts)."""

    config: type
    apply: Callable[[Frames, object, np.random.Generator], None]
    help: str
    signed: bool = False


AUGMENTATIONS: dict[str, Augmentation] = {
    "dropout": Augmentation(DropoutConfig, dropout, "lose a random share of each eye's events"),
    "polarity": Augmentation(PolarityConfig, polarity, "thin one polarity (ON/OFF imbalance)", signed=True),
    "quantise": Augmentation(QuantiseConfig, quantise, "snap timestamps to a 40-250 Hz frame clock",
                             signed=True),
    "noise": Augmentation(NoiseConfig, noise, "shot noise and hot pixels, independent per eye", signed=True),
    "burst": Augmentation(BurstConfig, burst, "a burst of uncorrelated events in part of both eyes",
                          signed=True),
}


@dataclass
class SensorAugment:
    """The chosen augmentations, applied in table order to a sequence with their probabilities."""

    names: Sequence[str]
    configs: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.names) - set(AUGMENTATIONS))
        if unknown:
            raise ValueError(f"unknown augmentation(s) {unknown}; choose from {sorted(AUGMENTATIONS)}")
        self.names = [n for n in AUGMENTATIONS if n in set(self.names)]
        self.configs = {n: self.configs.get(n) or AUGMENTATIONS[n].config() for n in self.names}

    def __call__(self, left: np.ndarray, right: np.ndarray, settings: SBTSettings,
                 rng: np.random.Generator) -> None:
        """Augment (T, C, h, w) float32 frames of both eyes in place."""
        if settings.mode == "polarity":
            signed = [n for n in self.names if AUGMENTATIONS[n].signed]
            if signed:
                raise ValueError(f"the {', '.join(signed)} augmentation(s) need sign or sum SBT frames, "
                                 f"not polarity")
        f = Frames(left, right, settings)
        for name in self.names:
            cfg = self.configs[name]
            if rng.random() < cfg.p:
                AUGMENTATIONS[name].apply(f, cfg, rng)
