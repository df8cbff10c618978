import math

import pytest
import torch

from eventstereo.stereo import subpixel_cross_entropy, subpixel_map


def _col(values):
    return torch.tensor(values, dtype=torch.float64).view(1, -1, 1, 1)


def test_map_window_softmax_by_hand():
    cost = _col([0.0, 0.0, 2.0, 2.0, 0.0, 0.0, 0.0])
    e2 = math.exp(2.0)
    expected = (0 * 1 + 1 * 1 + 2 * e2 + 3 * e2 + 4 * 1) / (3 + 2 * e2)
    assert subpixel_map(cost).item() == pytest.approx(expected, rel=1e-12)


def test_map_ignores_far_mode_and_planes_outside_range():
    # the best plane is 0: the window is planes 0..2 only, the second mode at plane 6 does not pull it
    cost = _col([3.0, 1.0, 0.0, -9.0, -9.0, -9.0, 2.9])
    w = [math.exp(3.0), math.exp(1.0), 1.0]
    expected = (0 * w[0] + 1 * w[1] + 2 * w[2]) / sum(w)
    assert subpixel_map(cost).item() == pytest.approx(expected, rel=1e-12)


def test_map_radius_zero_is_argmax_and_custom_disparities():
    cost = _col([0.0, 5.0, 1.0])
    assert subpixel_map(cost, radius=0).item() == 1.0
    assert subpixel_map(cost, disparities=torch.tensor([0.0, 10.0, 20.0]), radius=0).item() == 10.0


def test_map_batched_shapes_and_grad():
    cost = torch.randn(2, 3, 8, 4, 5, requires_grad=True)
    d = subpixel_map(cost)
    assert d.shape == (2, 3, 4, 5)
    assert (d >= 0).all() and (d <= 7).all()
    d.sum().backward()
    assert cost.grad is not None and torch.isfinite(cost.grad).all()


def test_cross_entropy_uniform_cost_is_log_d():
    cost = torch.zeros(1, 3, 1, 1)
    gt = torch.tensor([[[1.3]]])
    assert subpixel_cross_entropy(cost, gt).item() == pytest.approx(math.log(3), rel=1e-6)


def test_cross_entropy_laplace_target_by_hand():
    c = 2.0
    cost = _col([0.0, c, 0.0]).float()
    gt = torch.tensor([[[1.0, math.inf]]])
    # second pixel has no GT: make its cost different so a wrong mask would change the result
    cost = torch.cat([cost, _col([9.0, -9.0, 0.0]).float()], dim=-1)
    p = [math.exp(-1), 1.0, math.exp(-1)]
    z = sum(p)
    log_norm = math.log(2 + math.exp(c))
    log_softmax = [0 - log_norm, c - log_norm, 0 - log_norm]
    expected = -sum(pi / z * li for pi, li in zip(p, log_softmax))
    assert subpixel_cross_entropy(cost, gt).item() == pytest.approx(expected, rel=1e-6)
    # a wider Laplace (b=2) spreads the target and changes the loss
    p2 = [math.exp(-0.5), 1.0, math.exp(-0.5)]
    expected2 = -sum(pi / sum(p2) * li for pi, li in zip(p2, log_softmax))
    assert subpixel_cross_entropy(cost, gt, b=2.0).item() == pytest.approx(expected2, rel=1e-6)


def test_cross_entropy_all_invalid_is_zero_with_grad():
    cost = torch.randn(2, 4, 3, 3, requires_grad=True)
    gt = torch.full((2, 3, 3), float("nan"))
    gt[1] = float("inf")
    loss = subpixel_cross_entropy(cost, gt)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(cost.grad, torch.zeros_like(cost))


def test_cross_entropy_sequence_shape_and_mismatch_error():
    cost = torch.randn(3, 2, 5, 4, 4, requires_grad=True)
    gt = torch.rand(3, 2, 4, 4) * 4
    subpixel_cross_entropy(cost, gt).backward()
    assert torch.isfinite(cost.grad).all()
    with pytest.raises(ValueError, match="disagree"):
        subpixel_cross_entropy(cost, gt[..., :3])


@pytest.mark.parametrize("radius", [0, 1, 2, 4])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_map_kernel_equals_torch(radius, channels_last, dtype):
    gen = torch.Generator().manual_seed(radius)
    cost = torch.randn(2, 9, 6, 7, generator=gen, dtype=dtype)
    cost[0, :, 0, 0] = 1.0  # a tie everywhere: both pick plane 0
    cost[1, 8, 1, 1] = 9.0  # the best plane at the top end: the window is cut off
    if channels_last:
        cost = cost.contiguous(memory_format=torch.channels_last)
        cost = torch.cat([cost, cost], -1)[..., :7]  # a cropped view, as the model returns: read in place
    disparities = torch.linspace(0.5, 20.0, 9, dtype=dtype)
    for disp in (None, disparities):
        fused = subpixel_map(cost, disp, radius, impl="numba")
        ref = subpixel_map(cost, disp, radius, impl="torch")
        assert fused.shape == ref.shape == (2, 6, 7) and fused.dtype == dtype
        tol = 1e-5 if dtype == torch.float32 else 1e-9
        torch.testing.assert_close(fused, ref, rtol=tol, atol=tol)


def test_fused_map_kernel_over_several_pixel_blocks_and_a_partial_one():
    gen = torch.Generator().manual_seed(7)
    cost = torch.randn(1, 24, 23, 17, generator=gen)  # 391 pixels: three blocks of 128 and 7 more
    cost[0, :, 5, :] = 0.5  # ties along a row
    cost[0, 23, 9, :] = 9.0  # best at the top end
    cost = cost.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(subpixel_map(cost, impl="numba"), subpixel_map(cost, impl="torch"),
                               rtol=1e-5, atol=1e-5)


def test_map_auto_picks_torch_when_a_gradient_is_wanted():
    cost = torch.randn(1, 5, 3, 3, requires_grad=True)
    subpixel_map(cost).sum().backward()  # the numba kernel would return a tensor without a graph
    assert cost.grad is not None
    with torch.no_grad():
        assert not subpixel_map(cost).requires_grad
    with pytest.raises(ValueError, match="numba"):
        subpixel_map(cost, impl="numba")
    with pytest.raises(ValueError, match="impl"):
        subpixel_map(cost, impl="fast")


def test_fused_map_reads_a_padded_cropped_cost_in_place():
    """The model's cost is a row and column crop of a padded channels-last tensor: the kernel reads it as
    the C-contiguous padded rows (no copy), batched or not, and equals the torch estimator."""
    from eventstereo.stereo.estimator import _uncropped

    gen = torch.Generator().manual_seed(3)
    padded = torch.randn(2, 11, 9, 13, generator=gen).contiguous(memory_format=torch.channels_last)
    cost = padded[..., :7, :10]
    for c in (cost, cost[1]):
        torch.testing.assert_close(subpixel_map(c, impl="numba"), subpixel_map(c, impl="torch"),
                                   rtol=1e-5, atol=1e-5)
    image = cost[1].movedim(0, -1)  # (H, W, D)
    full = _uncropped(image)
    assert full.data_ptr() == image.data_ptr() and full.is_contiguous() and full.shape == (7, 13, 11)
    assert torch.equal(full[:, :10], image)
    other = torch.randn(7, 10, 11).transpose(0, 1)  # not a column crop: copied
    assert torch.equal(_uncropped(other), other) and _uncropped(other).is_contiguous()
    shifted = padded[1, :, 6:, 3:].movedim(0, -1)  # full rows from column 3 would run past the storage
    assert torch.equal(_uncropped(shifted), shifted) and _uncropped(shifted).data_ptr() != shifted.data_ptr()


def test_fused_map_kernel_pieces_that_start_mid_row_equal_the_whole():
    """The kernel steps row and column from its first pixel: a thread's piece may start anywhere."""
    import numpy as np

    from eventstereo.stereo.estimator import _map_kernel

    gen = torch.Generator().manual_seed(11)
    cost = torch.randn(13, 19, 24, generator=gen).numpy()  # (H, W, D)
    disp = np.arange(24, dtype=np.float64)
    whole, pieces = np.zeros((13, 19), np.float32), np.zeros((13, 19), np.float32)
    _map_kernel(cost, 19, disp, 2, whole, 0, 13 * 19)
    for lo, hi in ((0, 5), (5, 140), (140, 141), (141, 13 * 19)):
        _map_kernel(cost, 19, disp, 2, pieces, lo, hi)
    np.testing.assert_array_equal(pieces, whole)
    ref = subpixel_map(torch.from_numpy(cost).permute(2, 0, 1), impl="torch").numpy()
    np.testing.assert_allclose(whole, ref, rtol=1e-5, atol=1e-5)
