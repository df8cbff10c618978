"""What the views show, without Qt: event images, colours, the latest-wins hand-off."""

import numpy as np
import pytest

pytest.importorskip("PySide6")

from app.render import ViewSettings, colorize, signed_counts  # noqa: E402
from app.worker import LatestBox  # noqa: E402
from eventstereo.events.types import make_events  # noqa: E402


def test_signed_counts_are_on_minus_off_per_pixel():
    ev = make_events([1, 1, 1, 3], [0, 0, 0, 2], [0, 1, 2, 3], [1, 1, 0, 0])
    img = signed_counts(ev, (4, 3))
    assert img.shape == (3, 4) and img[0, 1] == 1.0 and img[2, 3] == -1.0 and img.sum() == 0.0


def test_colorize_maps_the_range_and_blacks_out_invalid():
    lut = np.stack([np.arange(256)] * 3, 1).astype(np.uint8)
    out = colorize(np.array([[0.0, 10.0, np.inf, 5.0]]), lut, 0.0, 10.0)
    assert out.shape == (1, 4, 3) and out.dtype == np.uint8
    assert list(out[0, :, 0]) == [0, 255, 0, 127]


def test_latest_box_keeps_only_the_newest():
    box = LatestBox()
    box.put("a")
    box.put("b")
    assert box.take() == "b" and box.take() is None and box.skipped == 1


def test_view_settings_reject_bad_values():
    with pytest.raises(ValueError):
        ViewSettings(mode="rgb")
    assert ViewSettings(accumulate=3).level() == 9.0
