import threading

import numpy as np
import pytest
import torch
from toys import DISP, H, ToyMatcher, ToySource, W

from eventstereo.events.sbt import SBTSettings, encode_sbt
from eventstereo.runtime.session import SessionOptions, StreamSession
from eventstereo.sources.base import Source

SETTINGS = SBTSettings(window_us=10_000, n_bins=2)
NO_RATES = SessionOptions(measure_rates=False)


def _readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "eventstereo-reader"]


def test_every_window_is_inferred_and_scored():
    model = ToyMatcher()
    session = StreamSession(ToySource(8), model, SETTINGS, NO_RATES)
    results = list(session.run())
    assert [r.index for r in results] == list(range(8))
    assert [r.window.index for r in results] == list(range(8))
    assert all(r.disparity.shape == (H, W) and r.disparity.dtype == np.float32 for r in results)
    s = session.summary()
    assert s["windows"] == s["gt_windows"] == 8
    assert s["one_pa"] > 95.0 and s["mean_disp_err"] < 0.2
    assert s["latency_ms"] > 0 and s["windows_per_s"] > 0
    # MDE uses the source's fxB: a 0.1 px error at 3 px and fxB 0.5 is ~0.5 cm, not metres
    assert s["mde_cm"] < 5.0
    assert results[-1].metrics["one_pa"] == pytest.approx(s["one_pa"])
    assert not _readers()


def test_state_resets_at_start_and_on_gaps_only():
    model = ToyMatcher()
    results = list(StreamSession(ToySource(7, gap_at=(3,)), model, SETTINGS, NO_RATES).run())
    assert [r.reset for r in results] == [True, False, False, True, False, False, False]
    assert model.seen == [1, 2, 3, 1, 2, 3, 4]


def test_threaded_and_inline_reading_give_the_same_maps():
    a = [r.disparity for r in StreamSession(ToySource(5), ToyMatcher(), SETTINGS, NO_RATES).run()]
    inline = SessionOptions(measure_rates=False, overlap=False)
    b = [r.disparity for r in StreamSession(ToySource(5), ToyMatcher(), SETTINGS, inline).run()]
    assert len(a) == len(b) == 5
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("overlap", [True, False])
def test_stop_ends_the_run_and_the_reader(overlap):
    session = StreamSession(ToySource(50), ToyMatcher(), SETTINGS,
                            SessionOptions(measure_rates=False, overlap=overlap, queue_size=2))
    seen = []
    for r in session.run():
        seen.append(r.index)
        if r.index == 2:
            threading.Thread(target=session.stop).start()
            threading.Event().wait(0.2)
    assert seen[:3] == [0, 1, 2] and len(seen) <= 4
    assert session.stopped
    assert not _readers()


def test_max_windows_and_a_second_run_continue_the_source():
    source = ToySource(10)
    session = StreamSession(source, ToyMatcher(), SETTINGS, NO_RATES)
    first = [r.window.index for r in session.run(max_windows=4)]
    second = [r.window.index for r in session.run(max_windows=3)]
    assert first == [0, 1, 2, 3]
    assert second[0] >= 4 and len(second) == 3
    assert session.summary()["windows"] == 3


def test_a_reader_error_reaches_the_caller():
    session = StreamSession(ToySource(10, fail_at=3), ToyMatcher(), SETTINGS, NO_RATES)
    got = []
    with pytest.raises(RuntimeError, match="broke at window 3"):
        for r in session.run():
            got.append(r.index)
    assert got == [0, 1, 2]
    assert not _readers()


def test_seek_drops_stale_windows_and_resets_state():
    model = ToyMatcher()
    session = StreamSession(ToySource(30), model, SETTINGS, SessionOptions(measure_rates=False, queue_size=3))
    out = []
    for r in session.run(max_windows=12):
        out.append((r.window.index, r.reset))
        if r.index == 1:
            session.seek(20 * 10_000)
    idx = [i for i, _ in out]
    assert idx[:2] == [0, 1]
    after = idx.index(20)
    assert all(i < 20 for i in idx[:after]) and out[after][1] is True
    assert idx[after:] == list(range(20, 20 + len(idx) - after))
    assert len(idx) - after >= 3


def test_seek_on_a_source_that_cannot_raises():
    class Fixed(ToySource):
        seek = Source.seek  # the base class's: not implemented

    session = StreamSession(Fixed(3), ToyMatcher(), SETTINGS, NO_RATES)
    with pytest.raises(NotImplementedError):
        session.seek(0)


def test_left_and_right_reach_the_model_in_order():
    r = next(iter(StreamSession(ToySource(2), ToyMatcher(), SETTINGS, NO_RATES)))
    valid = np.isfinite(r.gt)
    # swapped views would match at no positive disparity; two dots may share a row and blur a pixel
    assert np.mean(np.abs(r.disparity[valid] - DISP) < 0.1) > 0.8


def test_a_spiking_model_reports_rates_and_energy_per_window():
    from eventstereo.model import build_stereo_model
    from eventstereo.snn import count_ops, energy_mj

    torch.manual_seed(0)
    model = build_stereo_model(filter_multiplier=1, max_disparity=7, in_channels=2)
    session = StreamSession(ToySource(4), model, SETTINGS, SessionOptions(energy_recount=3))
    results = list(session.run())
    layers = {n for n, _ in model.named_modules()}
    assert all(r.firing_rates and set(r.firing_rates) <= layers for r in results)
    assert all(0.0 <= v <= 1.0 for r in results for v in r.firing_rates.values())
    assert all(r.energy_mj > 0 for r in results)
    s = session.summary()
    assert s["energy_mj"] == pytest.approx(np.mean([r.energy_mj for r in results]))
    assert s["firing_rate"] == pytest.approx(np.mean([r.firing_rate for r in results]))
    session.close()
    assert not any(m._forward_hooks for m in model.modules())
    # window 0 is counted exactly: the number count_ops gives for that window's step
    model.reset()
    first = ToySource(4).window(0, True)
    frames = [torch.from_numpy(encode_sbt(ev, first.t_end_us, (W, H), SETTINGS))[None]
              for ev in (first.left, first.right)]

    class Step(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, a, b):
            return model.step(a, b)

    model.eval()
    expected = energy_mj(count_ops(Step(), frames))
    assert results[0].energy_mj == pytest.approx(expected, rel=1e-6)


class _Recorder(ToyMatcher):
    def __init__(self):
        super().__init__()
        self.lefts: list[np.ndarray] = []

    def step(self, left, right):
        self.lefts.append(left[0].numpy().copy())
        return super().step(left, right)


@pytest.mark.parametrize("overlap", [True, False])
def test_lookback_frames_span_the_preceding_windows_and_stop_at_gaps(overlap):
    from eventstereo.events.lookback import LookbackSettings

    # 12 events per eye and window on 24 x 16 px: a density of 0.07 (27 events) needs 3 windows
    options = SessionOptions(measure_rates=False, overlap=overlap,
                             lookback=LookbackSettings(min_density=0.07, max_windows=10))
    model = _Recorder()
    session = StreamSession(ToySource(7, gap_at=(4,)), model, SETTINGS, options)
    results = list(session.run())
    assert [r.lookback for r in results] == [1, 2, 3, 3, 1, 2, 3]
    assert session.summary()["lookback_windows"] == pytest.approx(15 / 7)
    src = ToySource()
    for r, frame in zip(results, model.lefts):
        k = r.lookback
        events = np.concatenate([src.window(i, False).left for i in range(r.index - k + 1, r.index + 1)])
        span = SBTSettings(window_us=k * SETTINGS.window_us, n_bins=SETTINGS.n_bins)
        np.testing.assert_array_equal(frame, encode_sbt(events, r.window.t_end_us, (W, H), span))
    assert [r.reset for r in results] == [True, False, False, False, True, False, False]


def test_lookback_off_leaves_every_frame_its_own_window():
    model = _Recorder()
    results = list(StreamSession(ToySource(4), model, SETTINGS, NO_RATES).run())
    assert [r.lookback for r in results] == [1, 1, 1, 1]
    for r, frame in zip(results, model.lefts):
        np.testing.assert_array_equal(frame, encode_sbt(r.window.left, r.window.t_end_us, (W, H), SETTINGS))


def test_a_lookback_cache_holds_the_frames_the_session_infers(tmp_path):
    """Training on look-back frames (tools/cache_synthetic.py --min-density) sees what streaming sees."""
    from eventstereo.events.lookback import LookbackSettings
    from eventstereo.sources.cache import SBTCache, write_sbt_cache

    lookback = LookbackSettings(min_density=0.07, max_windows=4)
    model = _Recorder()
    list(StreamSession(ToySource(6), model, SETTINGS,
                       SessionOptions(measure_rates=False, lookback=lookback)).run())
    cache = SBTCache(write_sbt_cache(ToySource(6), tmp_path / "toy.h5", SETTINGS, progress=False,
                                     lookback=lookback))
    assert len(cache) == len(model.lefts) == 6
    for i, frame in enumerate(model.lefts):
        np.testing.assert_array_equal(cache[i].left, frame)
