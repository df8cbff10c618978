import numpy as np
import pytest

from eventstereo.events.lookback import LookbackSettings, WindowHistory
from eventstereo.events.types import make_events
from eventstereo.events.window import StereoWindow

W, H, US = 10, 10, 1000  # 100 pixels: density 0.3 needs 30 events per eye


def _window(k: int, n: int, *, gap: bool = False, start: int | None = None) -> StereoWindow:
    t0 = k * US if start is None else start
    rng = np.random.default_rng(k)
    ev = make_events(rng.integers(0, W, n), rng.integers(0, H, n), np.sort(rng.integers(t0, t0 + US, n)),
                     rng.integers(0, 2, n))
    return StereoWindow(ev, ev.copy(), t0, t0 + US, (W, H), gap_before=gap)


def test_off_by_default_every_frame_is_its_own_window():
    history = WindowHistory()
    for k in range(4):
        w = _window(k, 3)
        span = history.span(w)
        assert span.windows == 1 and span.left is w.left and span.t_start_us == w.t_start_us


def test_sparse_windows_borrow_the_preceding_ones_until_the_density_is_reached():
    history = WindowHistory(LookbackSettings(min_density=0.3, max_windows=10))
    spans = [history.span(_window(k, 12)) for k in range(5)]
    # 12 events per window: 30 events need 3 windows, fewer while the history is short
    assert [s.windows for s in spans] == [1, 2, 3, 3, 3]
    last = spans[-1]
    assert last.t_start_us == 2 * US and len(last.left) == len(last.right) == 36
    expected = np.concatenate([_window(k, 12).left for k in (2, 3, 4)])
    np.testing.assert_array_equal(last.left, expected)


def test_a_dense_window_stands_alone_and_max_windows_bounds_a_sparse_one():
    history = WindowHistory(LookbackSettings(min_density=0.3, max_windows=3))
    for k in range(6):
        span = history.span(_window(k, 1))
    assert span.windows == 3  # 3 events in all, far short of 30: bounded
    assert history.span(_window(6, 40)).windows == 1


@pytest.mark.parametrize("gap", ["flag", "time"])
def test_a_gap_in_time_is_never_bridged(gap):
    history = WindowHistory(LookbackSettings(min_density=0.3))
    for k in range(3):
        history.span(_window(k, 5))
    after = _window(3, 5, gap=True) if gap == "flag" else _window(3, 5, start=7 * US)
    assert history.span(after).windows == 1
    assert history.span(_window(8, 5) if gap == "time" else _window(4, 5)).windows == 2


def test_reset_forgets_the_past():
    history = WindowHistory(LookbackSettings(min_density=0.3))
    history.span(_window(0, 5))
    history.reset()
    assert history.span(_window(1, 5)).windows == 1


@pytest.mark.parametrize("bad", [{"min_density": -0.1}, {"min_density": float("nan")}, {"max_windows": 0}])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        LookbackSettings(**bad)
