"""FiringRateProbe: per-layer mean spikes per neuron per step, keyed by module name, no host syncs."""

import pytest
import torch
from torch import nn

from eventstereo.snn import ALIFNode, FiringRateProbe, LIFNode, ReLUNode, SeqToANN, reset_net, set_step_mode


def _net():
    torch.manual_seed(0)
    return nn.Sequential(
        SeqToANN(nn.Conv2d(2, 4, 3, padding=1)),
        LIFNode(theta=0.2),
        nn.Sequential(SeqToANN(nn.Conv2d(4, 4, 1)), ALIFNode(theta=0.05)),
        ReLUNode(),
    )


def _record_outputs(net):
    outs = {}
    for name, m in net.named_modules():
        if isinstance(m, (LIFNode, ALIFNode)):
            m.register_forward_hook(lambda mod, i, o, name=name: outs.setdefault(name, []).append(o.detach()))
    return outs


def test_rates_match_spike_means_per_layer_in_both_step_modes():
    x = torch.rand(3, 2, 2, 6, 6)
    for mode in ("s", "m"):
        net = _net()
        set_step_mode(net, mode)
        outs = _record_outputs(net)
        with FiringRateProbe(net) as probe:
            assert probe.names == ["1", "2.1"]  # qualified module names; the ReLU is not a spiking layer
            if mode == "m":
                net(x)
            else:
                for xt in x:
                    net(xt)
        rates = probe.rates()
        assert set(rates) == {"1", "2.1"}
        for name, seq in outs.items():
            expected = torch.cat([o.flatten() for o in seq]).double().mean().item()
            assert rates[name] == pytest.approx(expected, rel=1e-9)
            assert 0 < rates[name] < 1
        total = sum(torch.cat([o.flatten() for o in seq]).sum().item() for seq in outs.values())
        count = sum(sum(o.numel() for o in seq) for seq in outs.values())
        assert probe.mean_rate() == pytest.approx(total / count)


def test_detach_reset_every_and_unrun_layers():
    net = _net()
    probe = FiringRateProbe(net)
    assert probe.rates() == {} and probe.mean_rate() != probe.mean_rate()  # nan before any input
    x = torch.rand(1, 2, 6, 6)
    net(x)
    assert probe.rates() == {}  # not attached
    probe.attach()
    probe.attach()  # idempotent
    net(x)
    first = probe.rates()
    probe.detach()
    net(x * 3)
    assert probe.rates() == first
    probe.reset()
    assert probe.rates() == {}
    reset_net(net)
    sparse = FiringRateProbe(net, every=2).attach()
    dense = FiringRateProbe(net).attach()
    for k in range(4):
        net(x * (k + 1))
    sparse_counts, dense_counts = sparse._counts["1"], dense._counts["1"]
    assert sparse_counts * 2 == dense_counts
    with pytest.raises(ValueError):
        FiringRateProbe(net, every=0)


def test_hook_does_not_synchronise(monkeypatch):
    net = _net()
    probe = FiringRateProbe(net).attach()

    def forbidden(*a, **k):
        raise AssertionError("host sync inside the probe hook")

    with monkeypatch.context() as m:
        for attr in ("item", "tolist", "cpu", "__float__", "__bool__"):  # (the fused kernels use .numpy())
            m.setattr(torch.Tensor, attr, forbidden)
        for _ in range(3):
            net(torch.rand(1, 2, 6, 6))
    assert set(probe.rates()) == {"1", "2.1"}


def test_tensor_accumulator_path_for_other_dtypes():
    """Outputs the CPU fast path does not take (bfloat16 here, CUDA in deployment) sum on the device."""
    n = LIFNode(theta=0.3, step_mode="m")
    x = torch.rand(4, 3, 10).to(torch.bfloat16)
    with FiringRateProbe(nn.Sequential(n)) as probe:
        out = n(x)
        out2 = n(x)
    assert isinstance(probe._sums["0"], torch.Tensor)
    expected = torch.cat([out, out2]).double().mean().item()
    assert probe.rates() == {"0": pytest.approx(expected)} and 0 < expected < 1
    assert probe.mean_rate() == pytest.approx(expected)


def test_inference_rates_come_from_the_kernel_counts(monkeypatch):
    """In CPU inference the fused kernels count the spikes as they fire; the probe sums nothing and gets
    the same rates (a count is only taken for the output it belongs to)."""
    x = torch.rand(3, 2, 2, 6, 6)
    net = _net()
    outs = _record_outputs(net)
    import eventstereo.snn.probes as probes

    def forbidden(out):
        raise AssertionError("the probe summed an output the kernel had counted")

    with torch.inference_mode(), FiringRateProbe(net) as probe:
        monkeypatch.setattr(probes, "_spike_sum", forbidden)
        for xt in x:
            net(xt)
        monkeypatch.undo()
        lif = net[1]
        assert lif.spike_count(outs["1"][-1]) == int(outs["1"][-1].sum())
        assert lif.spike_count(outs["1"][-1].clone()) is None  # not the output the count belongs to
    rates = probe.rates()
    for name, seq in outs.items():
        expected = torch.cat([o.flatten() for o in seq]).double().mean().item()
        assert rates[name] == pytest.approx(expected, rel=1e-12) and 0 < rates[name] < 1
    net[1].backend = "eager"  # no kernel, no count: the probe sums
    with torch.inference_mode():
        out = net[1](torch.rand(2, 4, 6, 6))
    assert net[1].spike_count(out) is None
