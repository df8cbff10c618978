"""Stereo maths: sub-pixel estimator, loss and metrics (REFERENCE §2, §3, §7)."""

from eventstereo.stereo.estimator import subpixel_map
from eventstereo.stereo.loss import subpixel_cross_entropy
from eventstereo.stereo.metrics import METRIC_KEYS, StereoMetrics, stereo_errors

__all__ = ["METRIC_KEYS", "StereoMetrics", "stereo_errors", "subpixel_cross_entropy", "subpixel_map"]
