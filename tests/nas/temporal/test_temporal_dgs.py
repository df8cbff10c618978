import pytest
import torch
from temporal_toys import D, Deep, OneLayer, fit, no_memory_task, parity_task, place_first_membranes

from eventstereo.errors import InputError
from eventstereo.snn.neurons import LIFNode, neurons
from nas.temporal import DGSNeuron, attach
from nas.temporal.dgs import layer_weights

FIRST = "layers.0.neuron"


def _dgs_run(offset, iterations=10):
    torch.manual_seed(0)
    net = Deep(depth=4, temperature=3.0)
    place_first_membranes(net, offset)
    search = attach(net, dgs_layers=[FIRST], dgs_every=5, dgs_batches=5, dgs_weight_lr=0.05)
    fit(net, search, parity_task, iterations)
    return [e[FIRST] for e in search.history["dgs"]], search, net


def test_b_falls_when_the_membranes_sit_in_the_tails_where_a_flatter_surrogate_trains_better():
    bs, search, net = _dgs_run(0.4)
    assert bs == [3.0, 2.6, 2.2], bs
    assert search.decide()[FIRST].temperature == 2.2
    assert isinstance(net.layers[0].neuron, LIFNode) and net.layers[0].neuron.surrogate.temperature == 2.2


def test_b_rises_when_the_membranes_sit_at_the_threshold_where_a_sharper_one_does():
    bs, _, net = _dgs_run(0.0)
    assert bs[-1] > bs[0] == 3.0, bs
    # layers that were not chosen keep their temperature
    others = [n.surrogate.temperature for name, n in neurons(net) if not name.startswith("layers.0")]
    assert others == [3.0] * 3


def test_b_never_moves_when_dgs_is_off():
    torch.manual_seed(0)
    net = Deep(depth=3, temperature=3.0)
    search = attach(net, tps=True, tps_period=2)
    fit(net, search, no_memory_task, 12)
    temps = {name: n.surrogate.temperature for name, n in neurons(net)}
    assert set(temps.values()) == {3.0}, temps
    assert all(s.temperature == 3.0 for s in search.decide().values())


class FlatBatchNorm(torch.nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.bn = torch.nn.BatchNorm1d(channels)

    def forward(self, x):
        return self.bn(x.flatten(0, -2)).view_as(x)


def test_a_dgs_batch_changes_no_weight_and_no_batchnorm_statistic():
    torch.manual_seed(0)
    net = Deep(depth=2)
    net.layers[0].fc = torch.nn.Sequential(torch.nn.Linear(D, 32), FlatBatchNorm(32))  # statistics too
    search = attach(net, dgs_layers=[FIRST], dgs_every=3, dgs_batches=3)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    x, y = parity_task(g)

    def loss():
        net.reset()
        return torch.nn.functional.softplus(-net(x)[..., 0] * y).mean()

    loss()
    assert not torch.equal(net.layers[0].fc[1].bn.running_mean, before["layers.0.fc.1.bn.running_mean"])
    net.load_state_dict(before)
    search.dgs.step(loss)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert search.dgs.batches == 1 and not torch.equal(search.dgs.alpha[FIRST].detach(), torch.zeros(5))
    assert isinstance(net.layers[0].neuron, DGSNeuron) and net.layers[0].neuron.mode == "pass"


def test_layer_weights_and_bad_layer_names():
    net = OneLayer()
    assert set(layer_weights(net, "neuron")) == {"fc.weight", "fc.bias", "out.weight", "out.bias"}
    deep = Deep(depth=2)
    assert set(layer_weights(deep, "layers.1.neuron")) == {"layers.1.fc.weight", "layers.1.fc.bias"}
    with pytest.raises(InputError, match="no neuron layer 'nope'"):
        attach(deep, dgs_layers=["nope"])
    with pytest.raises(InputError, match="no stem"):
        attach(deep, dgs_layers=["stem"])
