import pytest
import torch
from temporal_toys import Deep, OneLayer, fit, regression_task

from eventstereo.errors import InputError
from eventstereo.snn.neurons import ALIFNode, LIFNode, NeuronSpec, ReLUNode
from nas.temporal import HybridMixture, TimeConstantMixture, attach, energy_aware_loss
from nas.temporal.hns import energy_ratio


def _hybrid(logits):
    m = HybridMixture(NeuronSpec(kind="lif", tau=0.3), step_mode="m")
    with torch.no_grad():
        m.logits.copy_(torch.tensor(logits))
    m(torch.randn(2, 3, 5))
    return m


def _ratio(m):
    return float(energy_ratio([m]).detach())


def test_the_energy_ratio_prices_relu_at_4_26_and_spiking_neurons_at_1():
    assert _ratio(_hybrid([-50.0, -50.0, 50.0])) == pytest.approx(1.0)
    assert _ratio(_hybrid([50.0, -50.0, -50.0])) == pytest.approx(1 / 4.26)
    half = _hybrid([0.0, -50.0, 0.0])  # half LIF, half ReLU
    assert _ratio(half) == pytest.approx((1 + 4.26) / 2 / 4.26)
    task = torch.tensor(2.0)
    assert energy_aware_loss(task, [half], 0.0) is task
    mixed = float(energy_aware_loss(task, [half], 0.25).detach())
    assert mixed == pytest.approx(0.75 * 2 + 0.25 * (5.26 / 2 / 4.26))
    with pytest.raises(InputError, match="energy-lambda"):
        energy_aware_loss(task, [half], 1.5)


def test_candidates_are_lif_alif_relu_and_with_tps_the_spiking_ones_search_tau():
    m = HybridMixture(NeuronSpec(kind="lif", tau=0.3))
    assert [type(c) for c in m.candidates] == [LIFNode, ALIFNode, ReLUNode]
    m = HybridMixture(NeuronSpec(kind="lif", tau=0.3), tps=True)
    assert [type(c) for c in m.candidates[:2]] == [TimeConstantMixture] * 2
    assert m.candidates[1].center.kind == "alif" and m.candidates[1].center.tau == 0.3


def _search(energy_lambda, net, iterations=30):
    search = attach(net, hns=True, energy_lambda=energy_lambda)
    fit(net, search, regression_task, iterations)
    return search


def test_lambda_1_decodes_every_layer_to_a_spiking_neuron():
    torch.manual_seed(0)
    net = Deep(depth=3)
    decided = _search(1.0, net).decide()
    assert set(decided) == {f"layers.{i}.neuron" for i in range(3)}
    assert all(spec.is_spiking for spec in decided.values()), decided
    assert all(type(net.get_submodule(n)) in (LIFNode, ALIFNode) for n in decided)


def test_lambda_0_lets_relu_appear_where_it_helps_accuracy():
    torch.manual_seed(0)
    net = OneLayer(NeuronSpec(kind="lif", tau=0.5))
    search = _search(0.0, net)
    probs = search._hns_probabilities()["neuron"]
    assert probs["relu"] > 0.6, probs
    assert search.decide()["neuron"].kind == "relu"
    assert isinstance(net.neuron, ReLUNode)


def test_energy_lambda_without_hns_is_an_error():
    with pytest.raises(InputError, match="needs --hns"):
        attach(OneLayer(), tps=True, energy_lambda=0.5)
