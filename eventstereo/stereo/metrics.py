"""Stereo metrics exactly as the MVSEC and DSEC literature computes them (REFERENCE §2, §3).

Every number is computed per example over the pixels with finite GT disparity, and then averaged over
examples (not over all pixels of the data set). The prediction is never masked: the whole image is
scored, so a network gets no credit for staying silent where it is unsure.

A non-finite prediction (NaN or inf, e.g. from a model with broken weights) never scores: its error is
taken as infinite, so it counts as wrong in 1PA / 1PE / 2PE and makes the mean errors (MAE, RMSE, MDE)
infinite; ``StereoMetrics`` also counts such examples (``nonfinite_examples``) and logs a warning once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

DEPTH_EPS = 1e-7  # depth = fxB / (disparity + 1e-7), as the anchors compute it
log = logging.getLogger(__name__)
METRIC_KEYS = ("one_pa", "mean_disp_err", "mde_cm", "median_depth_err_cm", "mae", "one_pe", "two_pe", "rmse")


def _as_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def stereo_errors(
    pred: torch.Tensor | np.ndarray, gt: torch.Tensor | np.ndarray, fxb: float | None
) -> dict[str, float] | None:
    """All metrics of ONE example (pred and gt (H, W) disparities in pixels; gt inf/NaN = unknown).

    Returns None when the example has no valid GT pixel (it is then not counted). Depth metrics are NaN
    when ``fxb`` (focal length x baseline, px*m) is None. Percentages are in %, depth errors in cm.
    """
    p = _as_numpy(pred)
    g = _as_numpy(gt)
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and GT {g.shape} differ in shape")
    valid = np.isfinite(g)
    if not valid.any():
        return None
    pv = p[valid]
    gv = g[valid]
    finite = np.isfinite(pv)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.where(finite, np.abs(pv - gv), np.inf)  # NaN - x is NaN, and NaN > 1 is False: never that
    one_pe = 100.0 * float(np.mean(err > 1.0))
    out = {
        "one_pa": 100.0 - one_pe,
        "mean_disp_err": float(err.mean()),
        "mae": float(err.mean()),
        "one_pe": one_pe,
        "two_pe": 100.0 * float(np.mean(err > 2.0)),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mde_cm": math.nan,
        "median_depth_err_cm": math.nan,
    }
    if fxb is not None:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            depth_err = np.abs(fxb / (pv + DEPTH_EPS) - fxb / (gv + DEPTH_EPS))
            depth_err = np.where(finite & ~np.isnan(depth_err), depth_err, np.inf)
        out["mde_cm"] = 100.0 * float(depth_err.mean())
        out["median_depth_err_cm"] = 100.0 * float(np.median(depth_err))
    return out


@dataclass
class StereoMetrics:
    """Accumulates per-example metrics; ``summary()`` averages them over the examples seen."""

    _rows: list[dict[str, float]] = field(default_factory=list, repr=False)
    nonfinite_examples: int = 0
    """Examples whose prediction held NaN or inf at a pixel with GT (each scored as wrong there)."""

    def reset(self) -> None:
        self._rows.clear()
        self.nonfinite_examples = 0

    def update(
        self,
        pred: torch.Tensor | np.ndarray,
        gt: torch.Tensor | np.ndarray,
        fxb: float | Sequence[float] | None,
    ) -> None:
        """Add one example (H, W) or a batch (B, H, W); ``fxb`` one value or one per example."""
        p = _as_numpy(pred)
        g = _as_numpy(gt)
        if p.ndim == 2:
            p, g = p[None], g[None]
        if p.ndim != 3 or p.shape != g.shape:
            raise ValueError(f"expected pred and gt of equal shape (H, W) or (B, H, W): {p.shape}, {g.shape}")
        if fxb is None or np.isscalar(fxb):
            fxbs = [fxb] * p.shape[0]
        else:
            fxbs = [float(v) for v in fxb]
            if len(fxbs) != p.shape[0]:
                raise ValueError(f"got {len(fxbs)} fxB values for a batch of {p.shape[0]}")
        for pi, gi, fi in zip(p, g, fxbs):
            row = stereo_errors(pi, gi, None if fi is None else float(fi))
            if row is None:
                continue
            self._rows.append(row)
            bad = int((~np.isfinite(pi) & np.isfinite(gi)).sum())
            if bad:
                if not self.nonfinite_examples:
                    log.warning("the model produced %d non-finite (NaN/inf) disparities in example %d; they "
                                "count as wrong, and the mean errors become infinite", bad, self.n - 1)
                self.nonfinite_examples += 1

    @property
    def n(self) -> int:
        return len(self._rows)

    def summary(self) -> dict[str, float]:
        """Mean of each metric over the examples (NaN when none), plus ``n``, the example count, and
        ``nonfinite_examples``."""
        out: dict[str, float] = {}
        for key in METRIC_KEYS:
            vals = [r[key] for r in self._rows]
            out[key] = float(np.mean(vals)) if vals else math.nan
        out["n"] = self.n
        out["nonfinite_examples"] = self.nonfinite_examples
        return out
