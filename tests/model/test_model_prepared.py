"""Weights prepared once per model: cached in inference, recomputed whenever the weights change."""

import pytest
import torch

import eventstereo.model.ops as O
from eventstereo.model.ops import ConvBN, conv_currents, conv_nd_up2, forget_prepared


def _ops(seed=0):
    torch.manual_seed(seed)
    ops = [ConvBN(4, c, 3, dim=3).eval() for c in (3, 5)]
    with torch.no_grad():
        for op in ops:
            op.bn.running_mean.uniform_(-1, 1)
            op.bn.running_var.uniform_(0.5, 2)
    return ops


def _count_folds(monkeypatch):
    calls = []
    real = O._fold_cat
    monkeypatch.setattr(O, "_fold_cat", lambda ops: calls.append(1) or real(ops))
    return calls


def test_folded_weights_are_prepared_once_and_follow_every_change(monkeypatch):
    calls = _count_folds(monkeypatch)
    ops = _ops()
    x = torch.randn(1, 4, 4, 5, 6)
    with torch.inference_mode():
        first = conv_currents(ops, x)
        again = conv_currents(ops, x)
    assert len(calls) == 1
    assert all(torch.equal(a, b) for a, b in zip(first, again))

    def fresh():
        with torch.enable_grad():  # the uncached path: folds on every call
            return [c.detach() for c in conv_currents(ops, x)]

    changes = [
        lambda: ops[0].conv.weight.mul_(2),  # what an optimizer step does (in place, under no_grad)
        lambda: ops[1].bn.running_var.add_(1),
        lambda: ops[1].load_state_dict({k: v * 0.5 for k, v in ops[1].state_dict().items()}),
    ]
    for change in changes:
        with torch.no_grad():
            change()
        n = len(calls)
        with torch.no_grad():
            got = conv_currents(ops, x)
        assert len(calls) == n + 1
        for a, b in zip(got, fresh()):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    # writes through .data are invisible to the version counter: forget_prepared is the way out
    ops[0].conv.weight.data.mul_(3)
    for op in ops:
        forget_prepared(op)
    with torch.no_grad():
        got = conv_currents(ops, x)
    for a, b in zip(got, fresh()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_training_caches_nothing_and_gradients_reach_the_weights(monkeypatch):
    calls = _count_folds(monkeypatch)
    ops = _ops(1)
    x = torch.randn(1, 4, 4, 5, 6)
    for _ in range(2):
        sum(c.sum() for c in conv_currents(ops, x)).backward()
    assert len(calls) == 2
    assert ops[0].conv.weight.grad is not None and ops[1].bn.weight.grad is not None
    assert "_prepared_weights" not in ops[0].__dict__


@pytest.mark.parametrize("planes", [5, 6])
def test_transforms_of_a_weight_follow_its_version(planes):
    torch.manual_seed(2)
    w = torch.randn(3, 4, 3, 3, 3)
    b = torch.randn(3)
    x = torch.randn(1, 3, 4, 5, 6)
    with torch.no_grad():
        y1 = conv_nd_up2(x, w, b, planes)
        w.mul_(-1)
        y2 = conv_nd_up2(x, w, b, planes)
    with torch.enable_grad():
        ref = conv_nd_up2(x, w, b, planes)
    torch.testing.assert_close(y2, ref, rtol=0, atol=0)
    assert not torch.allclose(y1, y2)


@pytest.mark.parametrize("planes", [1, 2, 5, 9])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_pass_volume_assembly_equals_the_torch_loop_bit_for_bit(planes, dtype):
    from eventstereo.model.costvolume import volume_conv3d

    torch.manual_seed(planes)
    left, right = torch.randn(2, 3, 4, 7, dtype=dtype), torch.randn(2, 3, 4, 7, dtype=dtype)
    w, b = torch.randn(5, 6, 3, 3, 3, dtype=dtype), torch.randn(5, dtype=dtype)
    with torch.enable_grad():
        loop = volume_conv3d(left, right, planes, w, b)
    with torch.no_grad():
        fast = volume_conv3d(left, right, planes, w, b)
        fast_nobias = volume_conv3d(left, right, planes, w, None)
    with torch.enable_grad():
        loop_nobias = volume_conv3d(left, right, planes, w, None)
    assert torch.equal(fast, loop) and torch.equal(fast_nobias, loop_nobias)
    assert fast.permute(0, 1, 3, 4, 2).is_contiguous()  # channels innermost, as the neuron reads it


def test_cached_transforms_do_not_keep_a_dropped_model_alive():
    import gc
    import weakref

    from eventstereo.model.ops import conv_nd

    torch.manual_seed(3)
    x = torch.randn(1, 6, 4, 5, 6)
    refs = []
    for k in (1, 3):
        w = torch.randn(3, 4, k, k, k)
        with torch.no_grad():
            conv_nd(x, w, None)
            conv_nd(x, w, None, stride=2)
        refs.append(weakref.ref(w))
        del w
    gc.collect()
    assert all(r() is None for r in refs)
