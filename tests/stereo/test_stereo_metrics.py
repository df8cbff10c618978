import math

import numpy as np
import pytest
import torch

from eventstereo.stereo import StereoMetrics, stereo_errors

INF = math.inf


def _example():
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    gt = np.array([[1.5, INF], [1.0, 4.0]])
    return pred, gt


def test_single_example_by_hand():
    pred, gt = _example()
    m = stereo_errors(pred, gt, fxb=2.0)
    # valid pixels: errors 0.5, 2.0, 0.0
    assert m["one_pe"] == pytest.approx(100 / 3)
    assert m["one_pa"] == pytest.approx(200 / 3)
    assert m["mean_disp_err"] == pytest.approx(2.5 / 3)
    assert m["mae"] == pytest.approx(2.5 / 3)
    assert m["two_pe"] == 0.0  # an error of exactly 2 is not > 2
    assert m["rmse"] == pytest.approx(math.sqrt((0.25 + 4.0) / 3))
    # depth errors (m): |2/1 - 2/1.5| = 2/3, |2/3 - 2/1| = 4/3, 0 -> mean 2/3, median 2/3
    assert m["mde_cm"] == pytest.approx(100 * 2 / 3, rel=1e-6)
    assert m["median_depth_err_cm"] == pytest.approx(100 * 2 / 3, rel=1e-6)


def test_prediction_is_not_masked_and_depth_uses_epsilon():
    pred = np.zeros((1, 2))
    gt = np.array([[1.0, 2.0]])
    m = stereo_errors(pred, gt, fxb=1.0)
    # a zero prediction is scored: depth 1 / 1e-7
    assert m["mde_cm"] == pytest.approx(100 * np.mean([1e7 - 1, 1e7 - 0.5]), rel=1e-6)
    assert m["median_depth_err_cm"] == pytest.approx(100 * (1e7 - 0.75), rel=1e-6)  # mean of the two middles


def test_accumulator_averages_per_example_not_per_pixel():
    pred, gt = _example()
    acc = StereoMetrics()
    acc.update(torch.tensor(pred), torch.tensor(gt), 2.0)
    acc.update(np.array([[4.0, 0.0]]), np.array([[1.0, INF]]), 2.0)  # one pixel, error 3
    acc.update(np.ones((2, 2)), np.full((2, 2), np.nan), 2.0)  # no GT: not counted
    s = acc.summary()
    assert s["n"] == 2
    assert s["mean_disp_err"] == pytest.approx((2.5 / 3 + 3.0) / 2)
    assert s["one_pa"] == pytest.approx((200 / 3 + 0.0) / 2)
    assert s["two_pe"] == pytest.approx((0.0 + 100.0) / 2)
    assert set(s) == {"one_pa", "mean_disp_err", "mde_cm", "median_depth_err_cm", "mae", "one_pe", "two_pe",
                      "rmse", "n", "nonfinite_examples"}


def test_accumulator_batch_and_per_example_fxb():
    pred = np.stack([np.full((2, 2), 2.0), np.full((2, 2), 2.0)])
    gt = np.stack([np.full((2, 2), 1.0), np.full((2, 2), 1.0)])
    acc = StereoMetrics()
    acc.update(pred, gt, [1.0, 3.0])
    # depth error |f/2 - f/1| = f/2 -> 50 cm and 150 cm
    assert acc.summary()["mde_cm"] == pytest.approx(100.0, rel=1e-6)
    with pytest.raises(ValueError):
        acc.update(pred, gt, [1.0])


def test_empty_summary_and_no_fxb():
    s = StereoMetrics().summary()
    assert s["n"] == 0 and math.isnan(s["one_pa"])
    acc = StereoMetrics()
    acc.update(np.ones((2, 2)), np.ones((2, 2)), None)
    s = acc.summary()
    assert s["one_pa"] == 100.0 and math.isnan(s["mde_cm"])


def test_nan_and_inf_predictions_never_score():
    gt = np.array([[1.0, 2.0, 3.0, INF]])
    pred = np.array([[math.nan, 2.0, INF, math.nan]])  # the last pixel has no GT: not counted
    m = stereo_errors(pred, gt, fxb=1.0)
    assert m["one_pa"] == pytest.approx(100 / 3)
    assert m["one_pe"] == pytest.approx(200 / 3) and m["two_pe"] == pytest.approx(200 / 3)
    for key in ("mae", "mean_disp_err", "rmse", "mde_cm"):
        assert m[key] == INF


def test_all_nan_prediction_scores_zero_and_is_counted(caplog):
    acc = StereoMetrics()
    gt = np.full((2, 3), 4.0)
    acc.update(np.full((2, 3), math.nan), gt, fxb=None)
    acc.update(gt.copy(), gt, fxb=None)
    s = acc.summary()
    assert s["one_pa"] == pytest.approx(50.0) and s["mae"] == INF
    assert s["nonfinite_examples"] == 1
    assert "non-finite" in caplog.text
    acc.reset()
    assert acc.summary()["nonfinite_examples"] == 0
