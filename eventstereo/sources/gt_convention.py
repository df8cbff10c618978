"""Ground-truth conventions for MVSEC: our exact float GT, or the one the published tables were scored on.

The stereo papers (DDES and those that compare with it) evaluate on GT made by DDES's MVSEC converter
(REFERENCE §2 "DDES converter convention"). It differs from ours in two ways:

- GT disparity is stored as uint8 ``round(7 fxB / depth)``, so it is quantised to 1/7 px, and 255 marks
  invalid: disparities of 255/7 px (about 36.4 px) and above, and missing (NaN) or zero depth, are not
  scored. Read back: value / 7, 255 -> inf.
- A window's events are those strictly inside (start, end), so an event exactly at the window start is
  not in it (ours: [start, end), on the integer-microsecond clock either way).

``exact`` (fxB / depth as float32, events in [start, end)) stays the default; ``ddes`` is for comparing
with published numbers. The option is ``--gt-convention``, a field of the mvsec entry of the source
registry (eventstereo/sources/registry.py), so every tool that takes the source options has it.
"""

from __future__ import annotations

import numpy as np

from eventstereo.errors import InputError

GT_CONVENTIONS = ("exact", "ddes")
DDES_STEPS_PER_PX = 7
DDES_INVALID = 255


def check_gt_convention(name: str) -> str:
    """The name, or InputError naming the choices."""
    if name not in GT_CONVENTIONS:
        raise InputError(f"--gt-convention must be one of {', '.join(GT_CONVENTIONS)}, not {name!r}")
    return name


def exact_disparity(depth: np.ndarray, fxb: float) -> np.ndarray:
    """fxB / depth as float32 (H, W), inf where depth is NaN, inf or not positive."""
    depth = np.asarray(depth, np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        disp = np.float32(fxb) / depth
    disp[~(np.isfinite(depth) & (depth > 0))] = np.inf
    return disp.astype(np.float32, copy=False)


def ddes_disparity(depth: np.ndarray, fxb: float) -> np.ndarray:
    """DDES's stored GT read back: round(7 fxB / depth) / 7 as float32, inf where the uint8 code is 255.

    Computed as the converter does (``tools/convert_mvsec.py`` of DDES: float32 arithmetic on the depth
    image, ``round(7 |fxB| / (depth + 1e-15))``, code 255 for NaN, inf and codes >= 255), so ties round
    the same way; a depth of 0 gives an infinite code (invalid) and an infinite depth a disparity of 0
    (valid), as there. Negative depths, which the converter would wrap around in uint8, are invalid.
    """
    depth = np.asarray(depth, np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        code = np.rint(np.float32(DDES_STEPS_PER_PX * abs(fxb)) / (depth + np.float32(1e-15)))
        valid = np.isfinite(code) & (code < DDES_INVALID) & (depth >= 0)
    return np.where(valid, code / np.float32(DDES_STEPS_PER_PX), np.float32(np.inf)).astype(np.float32)


def gt_disparity(depth: np.ndarray, fxb: float, convention: str) -> np.ndarray:
    """GT disparity of one depth frame under ``convention``."""
    return ddes_disparity(depth, fxb) if convention == "ddes" else exact_disparity(depth, fxb)


def first_event_us(t_start_us: int, convention: str) -> int:
    """The earliest event time (integer us) a window starting at ``t_start_us`` takes: the start itself
    (exact, [start, end)) or the microsecond after it (ddes, strictly after the start)."""
    return t_start_us + 1 if convention == "ddes" else t_start_us
