import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from eventstereo.model.costvolume import concat_volume, volume_conv3d
from eventstereo.model.ops import (
    OPS,
    PRIMITIVES,
    ConvBN,
    conv3d_few_outputs,
    conv3d_up2_few_outputs,
    conv_currents,
    conv_nd,
    conv_nd_up2,
    stack_planes,
    upsample2,
)


def _to_ncdhw(x):
    return x.permute(0, 2, 1, 3, 4)


def _randomise_bn(op, seed=0):
    g = torch.Generator().manual_seed(seed)
    bn = op.bn
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=g))
        bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
        bn.weight.copy_(torch.randn(bn.num_features, generator=g))
        bn.bias.copy_(torch.randn(bn.num_features, generator=g))
    return op


def test_registry_and_op_kinds():
    assert tuple(OPS) == PRIMITIVES
    assert isinstance(OPS["skip_connect"](4, 4, dim=2, external=False), nn.Identity)
    ext = OPS["skip_connect"](6, 4, dim=3, external=True)
    assert isinstance(ext, ConvBN) and ext.kernel == 1 and isinstance(ext.conv, nn.Conv3d)
    for name in ("snn_b3", "snn_b5"):
        op = OPS[name](4, 8, dim=3, external=False)
        assert op.conv.weight.shape == (8, 4, 3, 3, 3) and isinstance(op.bn, nn.BatchNorm3d)
    with pytest.raises(ValueError, match="equal widths"):
        OPS["skip_connect"](4, 8, dim=2, external=False)


@pytest.mark.parametrize("kernel", [1, 3])
@pytest.mark.parametrize("train", [True, False])
def test_3d_op_is_conv3d_then_batchnorm3d(kernel, train):
    torch.manual_seed(0)
    op = _randomise_bn(ConvBN(3, 5, kernel, dim=3)).double().train(train)
    ref_bn = copy.deepcopy(op.bn)
    x = torch.randn(2, 4, 3, 5, 6, dtype=torch.float64)  # (N, D, C, H, W)
    out = op(x)
    ref = _to_ncdhw(ref_bn(F.conv3d(_to_ncdhw(x), op.conv.weight, padding=kernel // 2)))
    assert out.shape == (2, 4, 5, 5, 6)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(op.bn.running_mean, ref_bn.running_mean)


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("train", [True, False])
def test_fused_edges_equal_separate_ops(dim, train):
    torch.manual_seed(1)
    ops = [_randomise_bn(ConvBN(4, c, 3, dim=dim), seed=c).double().train(train) for c in (2, 3, 5)]
    copies = copy.deepcopy(ops)
    shape = (2, 4, 6, 7) if dim == 2 else (2, 3, 4, 6, 7)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    fused = conv_currents(ops, x)
    separate = [op(x) for op in copies]
    for a, b in zip(fused, separate):
        torch.testing.assert_close(a, b)
    sum(f.sum() for f in fused).backward()
    g_fused = [op.conv.weight.grad.clone() for op in ops]
    x.grad = None
    sum(s.sum() for s in separate).backward()
    for g, op in zip(g_fused, copies):
        torch.testing.assert_close(g, op.conv.weight.grad)
    for a, b in zip(ops, copies):
        torch.testing.assert_close(a.bn.running_var, b.bn.running_var)


@pytest.mark.parametrize("low_planes, planes", [(3, 5), (3, 6), (1, 1), (1, 2)])
@pytest.mark.parametrize("kernel", [1, 3])
def test_up2_path_equals_conv_of_upsampled_input(low_planes, planes, kernel):
    torch.manual_seed(2)
    x = torch.randn(2, low_planes, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, kernel, kernel, kernel, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64)
    fast = conv_nd_up2(x, w, b, planes)
    ref = _to_ncdhw(F.conv3d(_to_ncdhw(upsample2(x, planes)), w, b, padding=kernel // 2)).flatten(0, 1)
    torch.testing.assert_close(fast, ref)
    gx, gw = torch.autograd.grad((fast * ref.detach().sin()).sum(), (x, w))
    rx, rw = torch.autograd.grad((ref * ref.detach().sin()).sum(), (x, w))
    torch.testing.assert_close(gx, rx)
    torch.testing.assert_close(gw, rw)
    x2 = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    w2 = torch.randn(4, 3, kernel, kernel, dtype=torch.float64)
    torch.testing.assert_close(conv_nd_up2(x2, w2, b), F.conv2d(upsample2(x2), w2, b, padding=kernel // 2))


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_strided_3d_conv_keeps_every_sth_position(stride):
    torch.manual_seed(3)
    x = torch.randn(1, 7, 2, 5, 6, dtype=torch.float64)
    w = torch.randn(4, 2, 3, 3, 3, dtype=torch.float64)
    ref = _to_ncdhw(F.conv3d(_to_ncdhw(x), w, padding=1))[:, ::stride, :, ::stride, ::stride]
    torch.testing.assert_close(conv_nd(x, w, None, stride=stride), ref.flatten(0, 1))


def _stacked_by_definition(x, stride):
    """Planes d-1 | d | d+1 for d = 0, s, 2s, ..., zero planes beyond the ends."""
    padded = F.pad(x, (0, 0, 0, 0, 0, 0, 1, 1))  # one zero plane at each end of D
    return torch.stack([torch.cat([padded[:, d], padded[:, d + 1], padded[:, d + 2]], 1)
                        for d in range(0, x.shape[1], stride)], 1)


@pytest.mark.parametrize("n, planes, stride",
                         [(1, 1, 1), (1, 2, 1), (2, 5, 1), (1, 8, 2), (2, 7, 3), (1, 3, 2)])
def test_stack_planes_is_its_definition_with_and_without_autograd(n, planes, stride):
    torch.manual_seed(5)
    x = torch.randn(n, planes, 4, 3, 5).permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    ref = _stacked_by_definition(x, stride)
    with torch.inference_mode():
        fast = stack_planes(x, stride)
    assert torch.equal(fast, ref)
    assert fast.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)
    xg = x.clone().requires_grad_()
    stacked = stack_planes(xg, stride)
    assert torch.equal(stacked.detach(), ref)
    g = torch.randn_like(ref)
    stacked.backward(g)
    xr = x.clone().requires_grad_()
    _stacked_by_definition(xr, stride).backward(g)
    assert torch.equal(xg.grad, xr.grad)


@pytest.mark.parametrize("planes, c_out, bias", [(1, 1, True), (2, 1, False), (7, 1, True), (5, 4, True)])
def test_few_output_conv_is_the_3d_conv_within_rounding(planes, c_out, bias):
    """The read-out's taps-as-outputs conv (no plane stack) against Conv3d on (N, C, D, H, W)."""
    g = torch.Generator().manual_seed(planes)
    x = torch.randn(2, planes, 6, 5, 7, generator=g, dtype=torch.float64)
    w = torch.randn(c_out, 6, 3, 3, 3, generator=g, dtype=torch.float64)
    b = torch.randn(c_out, generator=g, dtype=torch.float64) if bias else None
    cl = x.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)  # channels innermost, as the net
    ref = F.conv3d(x.transpose(1, 2), w, b, padding=1).transpose(1, 2).flatten(0, 1)
    for inp in (x, cl):
        out = conv3d_few_outputs(inp, w, b)
        assert out.shape == ref.shape
        torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(out, conv_nd(inp, w, b), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError):
        conv3d_few_outputs(x[0], w, b)


@pytest.mark.parametrize("coarse, planes, c_out, bias", [(1, 1, 1, True), (1, 2, 1, False), (3, 5, 1, True),
                                                      (3, 6, 2, True), (6, 11, 1, True), (6, 12, 4, False)])
def test_up2_few_output_conv_is_the_3d_conv_of_the_upsampled_map_within_rounding(coarse, planes, c_out, bias):
    """The level-1 read-out (every plane-tap sum as an output channel) against Conv3d on the nearest x2
    upsampled map cropped to ``planes``, and against the stacked-pairs path it replaces in inference."""
    g = torch.Generator().manual_seed(coarse * 10 + planes)
    x = torch.randn(2, coarse, 6, 5, 7, generator=g, dtype=torch.float64)
    w = torch.randn(c_out, 6, 3, 3, 3, generator=g, dtype=torch.float64)
    b = torch.randn(c_out, generator=g, dtype=torch.float64) if bias else None
    cl = x.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    up = upsample2(x, planes)
    ref = F.conv3d(up.transpose(1, 2), w, b, padding=1).transpose(1, 2).flatten(0, 1)
    for inp in (x, cl):
        out = conv3d_up2_few_outputs(inp, w, b, planes)
        assert out.shape == ref.shape
        torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(out, conv_nd_up2(inp, w, b, planes), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError):
        conv3d_up2_few_outputs(x, w, b, 2 * coarse + 1)


@pytest.mark.parametrize("planes", [1, 3, 4, 9])
def test_cost_volume_conv_without_the_volume(planes):
    torch.manual_seed(4)
    left = torch.randn(2, 3, 4, 6, dtype=torch.float64, requires_grad=True)
    right = torch.randn(2, 3, 4, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 6, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64)
    vol = concat_volume(left, right, planes)
    assert torch.equal(vol[1, min(2, planes - 1), :3], left[1])
    ref = _to_ncdhw(F.conv3d(_to_ncdhw(vol), w, b, padding=1))
    fast = volume_conv3d(left, right, planes, w, b)
    torch.testing.assert_close(fast, ref)
    grads = torch.autograd.grad((fast * ref.detach().cos()).sum(), (left, right, w))
    ref_grads = torch.autograd.grad((ref * ref.detach().cos()).sum(), (left, right, w))
    for a, r in zip(grads, ref_grads):
        torch.testing.assert_close(a, r)


def test_concat_volume_shifts_right_features():
    left = torch.arange(4.0).view(1, 1, 1, 4)
    right = 10 + torch.arange(4.0).view(1, 1, 1, 4)
    vol = concat_volume(left, right, 3)
    assert vol[0, 2, 1, 0].tolist() == [0.0, 0.0, 10.0, 11.0]  # plane 2: R(x - 2), zeros for x < 2
    assert vol[0, 2, 0, 0].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_fused_call_runs_conv_forward_hooks_with_dense_shapes():
    ops = [ConvBN(4, 3, 3, dim=3), ConvBN(4, 5, 3, dim=3)]
    seen = []
    for op in ops:
        op.conv.register_forward_hook(lambda m, i, o: seen.append((m, i[0].shape, o.numel())))
    x = torch.randn(1, 2, 4, 5, 6)
    conv_currents(ops, x, up2=True, planes=3)
    # the hook sees the upsampled input the op reads and an output of the dense conv's size
    assert [(m, s, n) for m, s, n in seen] == [
        (ops[0].conv, (1, 3, 4, 10, 12), 3 * 3 * 10 * 12),
        (ops[1].conv, (1, 3, 4, 10, 12), 5 * 3 * 10 * 12),
    ]


def test_op_table_entries_carry_temperature_and_fusable_flag():
    from eventstereo.model.ops import OpSpec

    assert all(isinstance(spec, OpSpec) and spec.name == name for name, spec in OPS.items())
    assert [OPS[n].temperature for n in PRIMITIVES] == [None, 3.0, 5.0]
    assert all(OPS[n].fusable for n in PRIMITIVES)
    with pytest.raises(TypeError):
        OPS["new"] = OPS["snn_b3"]  # one read-only table


class _Halve(nn.Module):
    """An op the cell cannot know: its current is half its input (plus a conv, so it is not the identity)."""

    def __init__(self, c_in, c_out, *, dim=2, external=False):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x):
        return 0.5 * self.conv(x)


def _cell_with_extra_ops(monkeypatch):
    from eventstereo.model import network
    from eventstereo.model.genotype import NetGenotype
    from eventstereo.model.ops import OpSpec, _snn_conv
    from eventstereo.snn.neurons import NeuronSpec

    table = dict(OPS)
    table["halve"] = OpSpec("halve", _Halve, temperature=2.0, fusable=False)
    table["conv_unfused"] = OpSpec("conv_unfused", _snn_conv, temperature=3.0, fusable=False)
    monkeypatch.setattr(network, "OPS", table)
    net = NetGenotype(path=(0,), cell=((0, "snn_b3"), (1, "halve"), (2, "conv_unfused"), (3, "snn_b5"),
                                       (4, "skip_connect")))
    torch.manual_seed(0)
    cell = network.Cell(net, 2, 4, 6, 5, 2, [NeuronSpec(theta=0.1)] * 2)
    return net, cell


def test_cell_calls_any_op_and_fuses_only_fusable_ones(monkeypatch):
    from eventstereo.model.reference import reference_cell

    net, cell = _cell_with_extra_ops(monkeypatch)
    for m in cell.modules():
        if isinstance(m, nn.BatchNorm2d):
            _randomise_bn_module(m)
    cell.eval()
    calls = []
    for key, op in cell.edges.items():
        op.register_forward_hook(lambda m, i, o, key=key: calls.append(key))
    g = torch.Generator().manual_seed(3)
    s0, s1 = ((torch.rand(2, c, 6, 6, generator=g) < 0.4).float() for c in (4, 6))
    with torch.no_grad():
        fast = cell(s0, s1)
        # the unknown op and the unfusable conv are called as modules; the fusable convs are never called
        assert sorted(calls) == ["1", "2", "4"]  # 4: the identity between nodes is called too
        ref = reference_cell(cell, net, s0, s1)
    torch.testing.assert_close(fast, ref)
    assert 0 < fast.mean() < 1
    cell.edges["1"].conv.weight.data.zero_()  # the unknown op matters: it is not treated as the identity
    with torch.no_grad():
        assert not torch.equal(cell(s0, s1), fast)


def _randomise_bn_module(bn, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=g) * 0.2)
        bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
