"""Search space: fused candidate convs equal separate op calls, both mixing positions train, alphas and
betas get gradients and move, the trellis reaches the right levels in 2-D and 3-D."""

import pytest
import torch
from torch import nn

from eventstereo.model.genotype import edge_endpoints
from eventstereo.model.network import fire
from eventstereo.model.ops import PRIMITIVES
from eventstereo.snn.neurons import reset_net
from nas.space import ClassifierSupernet, SearchCell, Trellis, fixed_path


def _spikes(*shape, seed=0):
    return (torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) < 0.4).float()


def _calibrate_bn(module):
    g = torch.Generator().manual_seed(5)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.1)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def _separate(cell, s0, s1, weights, stride):
    """Every candidate op called on its own: the plain evaluation of a membrane-mixing cell."""
    states = [s0, s1]
    for j in range(cell.nodes):
        current = 0
        for e in range(len(cell.edges)):
            src, tgt = edge_endpoints(e)
            if tgt != j:
                continue
            s = stride[src] if src < 2 else 1
            for k in range(len(PRIMITIVES)):
                y = cell.edges[e][k](states[src])
                current = current + weights[e, k] * (y[..., ::s, ::s] if s > 1 else y)
        states.append(fire(getattr(cell, f"node{j}"), current, 1))
    return torch.cat(states[2:], 1)


@pytest.mark.parametrize("stride", [(1, 1), (2, 2), (4, 2)])
def test_fused_candidates_equal_separate_ops(stride):
    torch.manual_seed(0)
    cell = SearchCell(3, 4, 6, 5, 2).double().eval()
    _calibrate_bn(cell)
    weights = torch.softmax(torch.randn(9, 3, dtype=torch.float64), -1)
    s0 = _spikes(2, 4, 8 * stride[0], 8 * stride[0]).double()
    s1 = _spikes(2, 6, 8 * stride[1], 8 * stride[1], seed=1).double()
    with torch.no_grad():
        fast = cell(s0, s1, weights, stride=stride)
        reset_net(cell)  # both from rest
        ref = _separate(cell, s0, s1, weights, stride)
    assert fast.shape == (2, 15, 8, 8) and 0.02 < fast.mean() < 0.98
    torch.testing.assert_close(fast, ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("mixing", ["membrane", "spike"])
def test_both_mixing_positions_train_and_alphas_move(mixing):
    torch.manual_seed(0)
    net = ClassifierSupernet(num_classes=3, in_channels=1, channels=2, cells=3, nodes=2, timesteps=2,
                             stem_multiplier=2, mixing=mixing)
    assert "alphas" in net.state_dict() and net.arch_parameters() == [net.alphas]
    assert all(p is not net.alphas for p in net.weight_parameters())
    x = torch.randn(12, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.arange(12) % 3
    x = x + y.view(-1, 1, 1, 1).float()  # learnable: the class shifts the image
    opt_w = torch.optim.SGD(net.weight_parameters(), lr=0.05, momentum=0.9)
    opt_a = torch.optim.Adam(net.arch_parameters(), lr=0.05)
    before = net.alphas.detach().clone()
    losses = []
    for _ in range(8):
        for opt in (opt_w, opt_a):
            opt_w.zero_grad(), opt_a.zero_grad()
            loss = nn.functional.cross_entropy(net(x), y)
            loss.backward()
            assert net.alphas.grad is not None and net.alphas.grad.abs().sum() > 0
            opt.step()
        losses.append(float(loss.detach()))
    assert (net.alphas - before).abs().max() > 0.05  # the architecture moved
    assert min(losses[-3:]) < losses[0]  # and the weights learn


def test_spike_mixing_gives_each_candidate_its_own_neuron_with_the_op_temperature():
    cell = SearchCell(2, 3, 3, 4, 2, mixing="spike")
    # edge 0 (from s0): skip (a conv1x1 from outside), snn_b3, snn_b5 each spike;
    # edge 4 (node0 -> node1): the skip passes the spikes it gets
    temps = [n.surrogate.temperature for n in cell.edge_neurons[0]]
    assert temps == [3.0, 3.0, 5.0]  # skip has no temperature of its own: the default 3
    assert isinstance(cell.edge_neurons[4][0], nn.Identity)
    assert not hasattr(cell, "node0")
    m = SearchCell(2, 3, 3, 4, 2)
    assert all(isinstance(n, nn.Identity) for row in m.edge_neurons for n in row) and hasattr(m, "node0")


def test_fixed_path_is_darts_downsampling():
    assert fixed_path(8) == (0, 0, 1, 1, 1, 2, 2, 2)  # the published classification path
    assert fixed_path(3) == (0, 1, 2)


@pytest.mark.parametrize("dim", [2, 3])
def test_trellis_levels_and_betas(dim):
    torch.manual_seed(0)
    f, n = 2, 2

    def make_cell(level, c0, c1):
        return SearchCell(n, c0, c1, f * 2**level, dim)

    tr = Trellis(3, 4, lambda s: n * f * 2**s, make_cell, dim=dim)
    mask = tr.transition_mask()
    assert mask[0, :, 1].tolist() == [True, False, False, False] and mask[0, 1, 0]  # stay at 0 or go down
    assert not mask[:, :, 2].any()  # no up transitions by default
    assert Trellis(3, 4, lambda s: n * f * 2**s, make_cell, dim=dim, allow_up=True).transition_mask()[1, 0, 2]
    stem = _spikes(2, 4, 16, 16) if dim == 2 else _spikes(2, 8, 4, 16, 16)
    planes = [8, 4, 2, 1]
    weights = torch.softmax(torch.zeros(5, 3), -1)
    outs = tr(stem, weights, planes=planes)
    for s, out in enumerate(outs):
        if dim == 2:
            assert out.shape == (2, n * f * 2**s, 16 >> s, 16 >> s)
        else:
            assert out.shape == (2, planes[s], n * f * 2**s, 16 >> s, 16 >> s)
    sum(o.sum() for o in outs).backward()
    assert tr.betas.grad is not None and tr.betas.grad[mask].abs().sum() > 0
    assert tr.betas.grad[~mask].abs().sum() == 0
    assert "betas" in tr.state_dict() and tr.arch_parameters() == [tr.betas]
