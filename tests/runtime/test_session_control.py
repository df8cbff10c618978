"""Pause, resume and step keep queue, state and metrics; seek resets state; drop-oldest; fit checks."""

import threading
import time

import pytest
from toys import WINDOW_US, ToyMatcher, ToySource

from eventstereo.errors import InputError
from eventstereo.events.sbt import SBTSettings
from eventstereo.runtime.session import SessionOptions, StreamSession, _Encoded, _WindowQueue

SETTINGS = SBTSettings(window_us=WINDOW_US, n_bins=2)
NO_RATES = SessionOptions(measure_rates=False)


def _wait_until(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        time.sleep(0.01)
    return cond()


def test_pause_holds_the_run_and_resume_keeps_state_and_metrics():
    model = ToyMatcher()
    session = StreamSession(ToySource(12), model, SETTINGS, SessionOptions(measure_rates=False, queue_size=2))
    got, paused_at = [], {}

    def consume():
        for r in session.run():
            got.append(r)
            if r.index == 2:
                session.pause()

    t = threading.Thread(target=consume)
    t.start()
    assert _wait_until(lambda: len(got) == 3)
    time.sleep(0.2)
    paused_at["n"] = len(got)
    assert paused_at["n"] == 3 and session.paused  # nothing passes while paused
    session.step()
    assert _wait_until(lambda: len(got) == 4)
    time.sleep(0.1)
    assert len(got) == 4  # exactly one window per step
    session.resume()
    t.join(5.0)
    assert not t.is_alive()
    assert [r.window.index for r in got] == list(range(12))  # the queue kept every window
    assert [r.reset for r in got] == [True] + [False] * 11  # spiking state carried across the pause
    assert model.seen == list(range(1, 13))
    assert got[-1].metrics["n"] == 12  # running metrics not restarted


def test_seek_while_paused_resets_state_on_the_next_step():
    model = ToyMatcher()
    session = StreamSession(ToySource(40), model, SETTINGS, SessionOptions(measure_rates=False, queue_size=2))
    got = []

    def consume():
        for r in session.run(max_windows=30):
            got.append(r)
            if r.index == 1:
                session.pause()

    t = threading.Thread(target=consume)
    t.start()
    assert _wait_until(lambda: len(got) == 2)
    session.seek(25 * WINDOW_US)
    session.step()
    assert _wait_until(lambda: len(got) == 3)
    assert got[2].window.index == 25 and got[2].reset
    session.stop()
    t.join(5.0)
    assert not t.is_alive()


def test_drop_oldest_counts_drops_and_marks_the_next_window():
    q = _WindowQueue(2, drop_oldest=True)
    win = ToySource(5).window
    items = [_Encoded(0, win(k, False), None, None, 0.0, 0.0) for k in range(4)]
    for item in items:
        assert q.put(item, lambda: False)
    assert q.dropped == 2
    first, second = q.get(0.1), q.get(0.1)
    assert [first.window.index, second.window.index] == [2, 3]
    assert first.window.gap_before and not second.window.gap_before


def test_blocking_queue_waits_and_gives_up_when_stopped():
    q = _WindowQueue(1, drop_oldest=False)
    win = ToySource(2).window
    assert q.put(_Encoded(0, win(0, False), None, None, 0.0, 0.0), lambda: False)
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    assert not q.put(_Encoded(0, win(1, False), None, None, 0.0, 0.0), stop.is_set)
    assert q.dropped == 0 and q.get(0.1).window.index == 0


def test_live_sources_drop_behind_a_slow_model_and_reset_after_drops():
    class Live(ToySource):
        live = True

        def window(self, k, gap):
            time.sleep(0.004)  # a camera: windows keep coming, 5x faster than the model takes them
            return super().window(k, gap)

    class Slow(ToyMatcher):
        def step(self, left, right):
            time.sleep(0.02)
            return super().step(left, right)

    session = StreamSession(Live(40), Slow(), SETTINGS, SessionOptions(measure_rates=False, queue_size=2))
    assert session.drop_oldest
    results = list(session.run())
    assert session.dropped > 0 and session.summary()["dropped"] == session.dropped
    assert len(results) == 40 - session.dropped
    jumps = [b for a, b in zip(results, results[1:]) if b.window.index != a.window.index + 1]
    assert jumps and all(r.reset for r in jumps)  # state is reset after every drop
    assert results[-1].window.index == 39  # the newest window is never the one dropped
    assert StreamSession(ToySource(2), ToyMatcher(), SETTINGS, NO_RATES).drop_oldest is False


def test_real_time_speed_paces_windows_at_the_source_clock():
    paced = SessionOptions(measure_rates=False, speed=1.0)
    session = StreamSession(ToySource(6), ToyMatcher(), SETTINGS, paced)
    t0 = time.perf_counter()
    assert len(list(session.run())) == 6
    assert time.perf_counter() - t0 >= 5 * WINDOW_US / 1e6 * 0.9
    with pytest.raises(InputError, match="playback speed"):
        session.set_speed(0)


def test_a_model_that_does_not_fit_is_refused_with_a_clear_error():
    with pytest.raises(InputError, match="trained on 20 ms windows .* --window-ms 20"):
        StreamSession(ToySource(2), ToyMatcher(), SBTSettings(window_us=20_000, n_bins=2), NO_RATES)
    with pytest.raises(InputError, match="too narrow for the model's disparity range 0-30"):
        StreamSession(ToySource(2), ToyMatcher(max_disparity=30), SETTINGS, NO_RATES)
    s = StreamSession(ToySource(2), ToyMatcher(max_disparity=5), SETTINGS, NO_RATES)
    assert s.notes and "reach 7 px" in s.notes[0]
