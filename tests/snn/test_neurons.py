"""Neurons: the equations of REFERENCE §4 on worked examples, step modes, state handling, specs."""

import copy

import pytest
import torch
from torch import nn

from eventstereo.errors import InputError
from eventstereo.snn import (
    ALIFNode,
    BinaryNode,
    Dspike,
    IFNode,
    LIFNode,
    NeuronSpec,
    ReLUNode,
    SeqToANN,
    detach_net,
    make_neuron,
    neurons,
    reset_net,
    set_step_mode,
)

BACKENDS = ["eager", "fused"]
KIND_CLASSES = {"if": IFNode, "lif": LIFNode, "alif": ALIFNode, "binary": BinaryNode, "relu": ReLUNode}


def _seq(*values):
    return torch.tensor(values, dtype=torch.float64).view(-1, 1)  # [T, B=1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_lif_worked_example(backend):
    n = LIFNode(step_mode="m", backend=backend)  # tau 0.2, theta 0.5
    x = _seq(0.3, 0.3, 0.6, 0.1, 0.5, 0.45)
    s = n(x).flatten().tolist()
    # u: 0.3 | 0.06+0.3=0.36 | 0.072+0.6=0.672 fire, reset | 0+0.1 | 0.02+0.5=0.52 fire | 0+0.45
    assert s == [0, 0, 1, 0, 1, 0]
    assert n.v.item() == pytest.approx(0.45)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fires_strictly_above_threshold(backend):
    n = LIFNode(tau=0.0, theta=0.5, step_mode="m", backend=backend)
    assert n(_seq(0.5, 0.5000001, 0.4999999)).flatten().tolist() == [0, 1, 0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_if_binary_and_tau_semantics(backend):
    x = _seq(0.2, 0.2, 0.2, 0.2)
    # IF integrates without leak: 0.2, 0.4, 0.6 fire, 0.2
    assert IFNode(step_mode="m", backend=backend)(x).flatten().tolist() == [0, 0, 1, 0]
    # binary (tau 0) has no memory: never reaches 0.5
    assert BinaryNode(step_mode="m", backend=backend)(x).flatten().tolist() == [0, 0, 0, 0]
    assert BinaryNode().tau == 0.0 and IFNode().tau == 1.0
    with pytest.raises(ValueError, match="fixed"):
        IFNode().tau = 0.5


@pytest.mark.parametrize("backend", BACKENDS)
def test_alif_worked_example(backend):
    n = ALIFNode(tau=1.0, theta=0.5, beta=0.2, rho=0.5, step_mode="m", backend=backend)
    x = _seq(0.6, 0.6, 0.6, 0.55, 0.0)
    # t1: a=0, thr .5, u .6 fire | t2: a=1, thr .7, u .6 no | t3: a=.5, thr .6, u 1.2 fire
    # t4: a=.25+1=1.25, thr .75, u .55 no | t5: a=.625, thr .625, u .55 no
    assert n(x).flatten().tolist() == [1, 0, 1, 0, 0]
    assert n.state["a"].item() == pytest.approx(0.625)
    assert n.state["s"].item() == 0.0
    assert n.v.item() == pytest.approx(0.55)


def test_alif_threshold_stays_in_documented_range():
    n = ALIFNode(step_mode="m", rho=0.5, beta=0.1)
    n(torch.full((40, 3), 10.0))  # fires every step: a -> 1 / (1 - rho) = 2
    a = n.state["a"]
    assert torch.all(a <= 2.0 + 1e-6) and torch.all(a >= 1.99)


def test_relu_node():
    n = ReLUNode(step_mode="m")
    x = torch.randn(3, 2, 4)
    assert torch.equal(n(x), torch.relu(x))
    assert not n.is_spiking and LIFNode.is_spiking and n.state == {}
    n.reset()
    n.detach()
    assert torch.equal(ReLUNode()(x[0]), torch.relu(x[0]))


@pytest.mark.parametrize("kind", ["if", "lif", "alif", "binary"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_single_step_equals_multi_step(kind, backend):
    torch.manual_seed(0)
    x = torch.randn(7, 2, 3, 5) * 0.6 + 0.25
    m = make_neuron(NeuronSpec(kind=kind), step_mode="m", backend=backend)
    s = make_neuron(NeuronSpec(kind=kind), step_mode="s", backend=backend)
    out_m = m(x)
    out_s = torch.stack([s(xt) for xt in x])
    assert torch.equal(out_m, out_s)
    assert 0 < out_m.mean() < 1
    for k in m.state:
        assert torch.equal(m.state[k], s.state[k])
    # streaming in chunks of a multi-step neuron continues the same sequence
    c = make_neuron(NeuronSpec(kind=kind), step_mode="m", backend=backend)
    assert torch.equal(torch.cat([c(x[:3]), c(x[3:])]), out_m)


@pytest.mark.parametrize("kind", ["lif", "alif", "if"])
def test_fused_and_eager_neurons_agree_in_outputs_and_gradients(kind):
    torch.manual_seed(1)
    x = (torch.randn(6, 2, 4, 3) * 0.7 + 0.3).requires_grad_()
    g = torch.randn(6, 2, 4, 3)
    grads = []
    outs = []
    for backend in BACKENDS:
        n = make_neuron(NeuronSpec(kind=kind), step_mode="m", backend=backend)
        out = torch.cat([n(x[:2]), n(x[2:])])  # state carries the graph across calls
        (out * g).sum().backward()
        outs.append(out.detach())
        grads.append(x.grad.clone())
        x.grad = None
    assert torch.equal(outs[0], outs[1])
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)
    assert grads[0].abs().sum() > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_detach_cuts_graph_and_reset_restarts(backend):
    n = LIFNode(step_mode="m", backend=backend)
    x1 = torch.full((3, 4), 0.3, requires_grad=True)
    x2 = torch.full((3, 4), 0.3, requires_grad=True)
    n(x1)
    n.detach()
    assert not n.v.requires_grad
    n(x2).sum().backward()
    assert x1.grad is None and x2.grad is not None
    # without detach the gradient reaches the first chunk
    n.reset()
    assert n.v is None
    x1.grad = x2.grad = None
    n(x1)
    (n(x2) * 1.0).sum().backward()
    assert x1.grad is not None and x1.grad.abs().sum() > 0
    # after reset the output equals a fresh neuron's
    n.reset()
    x = torch.rand(5, 4)
    assert torch.equal(n(x), LIFNode(step_mode="m", backend=backend)(x))


def test_state_is_lazy_not_in_state_dict_and_follows_dtype():
    n = ALIFNode()
    assert all(v is None for v in n.state.values())
    assert dict(n.state_dict()) == {} and list(n.buffers()) == []
    n(torch.rand(2, 3))
    assert n.v.dtype == torch.float32 and n.v.shape == (2, 3)
    assert dict(n.state_dict()) == {}
    n.double()
    assert all(v.dtype == torch.float64 for v in n.state.values())
    out = n(torch.rand(2, 3, dtype=torch.float64))
    assert out.dtype == torch.float64
    with pytest.raises(ValueError, match="reset"):
        n(torch.rand(4, 3, dtype=torch.float64))
    n.reset()
    assert n(torch.rand(4, 3)).shape == (4, 3)


def _reference_lif(x, taus, thetas):
    """Plain python per-element LIF with per-step tau/theta (REFERENCE §4)."""
    h = torch.zeros_like(x[0])
    out = []
    for xt, tau, theta in zip(x, taus, thetas):
        u = tau * h + xt
        s = (u > theta).to(x.dtype)
        h = torch.where(s > 0, torch.zeros_like(u), u)
        out.append(s)
    return torch.stack(out)


@pytest.mark.parametrize("backend", BACKENDS)
def test_parameters_change_between_calls(backend):
    torch.manual_seed(2)
    x = torch.rand(8, 50, dtype=torch.float64) * 0.5
    taus = [0.2] * 3 + [0.9] * 5
    thetas = [0.5] * 3 + [0.3] * 5
    n = LIFNode(step_mode="s", backend=backend)
    outs = []
    for t, xt in enumerate(x):
        if t == 3:  # TPS sets a new tau / theta mid-sequence; DGS a new temperature
            n.tau, n.theta = 0.9, 0.3
            n.surrogate.temperature = 5.0
        outs.append(n(xt))
    expected = _reference_lif(x, taus, thetas)
    assert torch.equal(torch.stack(outs), expected)
    assert not torch.equal(expected, _reference_lif(x, [0.2] * 8, [0.5] * 8))  # the change mattered
    assert n.spec == NeuronSpec(tau=0.9, theta=0.3, temperature=5.0)
    with pytest.raises(InputError):
        n.tau = 1.5
    with pytest.raises(InputError):
        n.theta = 0.0


def test_spiking_false_surrogate_runs_the_smooth_primitive():
    n = LIFNode(step_mode="m", surrogate=Dspike(spiking=False))
    out = n(torch.full((2, 3), 0.4))
    assert torch.all((out > 0) & (out < 1))


def test_spec_roundtrip_normalisation_and_validation():
    for kind, cls in KIND_CLASSES.items():
        spec = NeuronSpec(kind=kind, tau=0.3, theta=0.7, beta=0.2, rho=0.25, surrogate="ArcTan",
                          temperature=1.5)
        n = make_neuron(spec)
        assert type(n) is cls
        assert n.spec == spec
        assert NeuronSpec.from_dict(spec.to_dict()) == spec
    assert NeuronSpec(kind="if", tau=0.3).tau == 1.0
    assert NeuronSpec(kind="binary").tau == 0.0
    assert NeuronSpec(kind="lif", beta=0.4) == NeuronSpec(kind="lif")
    assert NeuronSpec(kind="relu", tau=0.7, surrogate="sigmoid") == NeuronSpec(kind="relu")
    assert NeuronSpec(kind="alif", beta=0.4).beta == 0.4
    assert NeuronSpec.from_dict({"kind": "alif", "rho": 0}).rho == 0.0
    with pytest.raises(ValueError, match="unknown neuron spec field"):
        NeuronSpec.from_dict({"kind": "lif", "tua": 0.2})
    with pytest.raises(ValueError, match="unknown neuron kind"):
        NeuronSpec(kind="izhikevich")
    with pytest.raises(ValueError, match="unknown surrogate"):
        NeuronSpec(surrogate="box")
    for bad in ({"tau": 1.2}, {"tau": True}, {"theta": -1}, {"rho": 1.0}, {"beta": -0.1},
                {"temperature": 0}, {"tau": "0.2"}, {"theta": float("nan")}):
        with pytest.raises(ValueError):
            NeuronSpec(**bad)
    with pytest.raises(ValueError, match="mapping"):
        NeuronSpec.from_dict([("kind", "lif")])
    assert make_neuron({"kind": "alif", "beta": 0.3}).beta == 0.3


def test_each_neuron_owns_a_fresh_surrogate():
    a, b = LIFNode(), LIFNode()
    assert a.surrogate is not b.surrogate
    c, d = make_neuron(NeuronSpec()), make_neuron(NeuronSpec())
    c.surrogate.temperature = 5.0
    assert d.surrogate.temperature == 3.0
    e = copy.deepcopy(c)
    assert e.surrogate is not c.surrogate and e.surrogate.temperature == 5.0
    # a neuron whose state still carries a graph can be copied (values kept, graph not)
    c(torch.rand(3, 4, requires_grad=True) * 2)
    f = copy.deepcopy(c)
    assert torch.equal(f.v, c.v) and f.v is not c.v and not f.v.requires_grad and c.v.requires_grad


def test_step_mode_and_backend_validation():
    with pytest.raises(ValueError, match="step_mode"):
        LIFNode(step_mode="x")
    with pytest.raises(ValueError, match="backend"):
        LIFNode(backend="cuda")
    with pytest.raises(ValueError, match="multi-step"):
        LIFNode(step_mode="m")(torch.rand(4))


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = SeqToANN(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3))
        self.lif = LIFNode()
        self.cells = nn.ModuleList([ALIFNode(), ReLUNode()])

    def forward(self, x):
        return self.cells[1](self.cells[0](self.lif(self.conv(x))))


def test_net_helpers():
    net = _Block().double().eval()  # eval: BN statistics must not depend on how T and B are batched
    assert [name for name, _ in neurons(net)] == ["lif", "cells.0", "cells.1"]
    x = torch.rand(4, 2, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    set_step_mode(net, "m")
    assert net.conv.step_mode == "m" and all(n.step_mode == "m" for _, n in neurons(net))
    out_m = net(x)
    assert out_m.shape == (4, 2, 3, 5, 5)
    detach_net(net)
    assert not net.lif.v.requires_grad
    reset_net(net)
    assert net.lif.v is None and net.cells[0].state["a"] is None
    set_step_mode(net, "s")
    out_s = torch.stack([net(xt) for xt in x])
    torch.testing.assert_close(out_m, out_s)
    assert net.lif.v.requires_grad
    with pytest.raises(ValueError):
        set_step_mode(net, "multi")
