import json

import pytest
import torch
from temporal_toys import OneLayer, fit, memory_task, no_memory_task

from eventstereo.errors import InputError
from eventstereo.snn.neurons import ALIFNode, LIFNode, NeuronSpec
from nas.temporal import TimeConstantMixture, attach
from nas.temporal.tps import candidate_specs


def test_candidates_share_the_current_and_the_output_is_their_softmax_mix():
    torch.manual_seed(0)
    mix = TimeConstantMixture(NeuronSpec(kind="lif", tau=0.5), step_mode="m")
    with torch.no_grad():
        mix.logits.copy_(torch.tensor([0.0, 1.0, -1.0, 2.0, 0.5]))
    x = torch.randn(4, 3, 7)
    expected = sum(w * LIFNode(tau=t, step_mode="m")(x)
                   for w, t in zip(torch.softmax(mix.logits, 0), (0.3, 0.4, 0.5, 0.6, 0.7)))
    torch.testing.assert_close(mix(x), expected)
    assert [round(c.tau, 6) for c in mix.candidates] == [0.3, 0.4, 0.5, 0.6, 0.7]


def test_a_move_takes_the_best_candidate_and_resets_the_weights():
    mix = TimeConstantMixture(NeuronSpec(kind="alif", tau=0.9, rho=0.5))
    assert len(mix.candidates) == 9  # 5 tau values at rho 0.5, 4 rho values at tau 0.9
    assert [c.tau for c in mix.candidates[:5]] == [0.7, 0.8, 0.9, 1.0, 1.0]  # clipped to [0, 1]
    with torch.no_grad():
        mix.logits[7] = 3.0  # rho + 0.1
    new = mix.move()
    assert (new.tau, new.rho) == (0.9, 0.6) and mix.decided_spec() == new
    assert torch.equal(mix.logits.detach(), torch.zeros(9))
    assert isinstance(mix.candidates[0], ALIFNode) and mix.candidates[5].rho == pytest.approx(0.4)
    with pytest.raises(InputError, match="time constants"):
        candidate_specs(NeuronSpec(kind="relu"))


def _tau_trajectory(task, iterations=40):
    torch.manual_seed(0)
    net = OneLayer(NeuronSpec(kind="lif", tau=0.5))
    search = attach(net, tps=True, tps_period=5)
    fit(net, search, task, iterations)
    return [e["tau"] for e in search.history["tps"]], search


def test_a_task_that_needs_memory_drives_tau_up():
    taus, search = _tau_trajectory(memory_task)
    assert taus[0] == 0.5 and len(taus) == 9
    assert sum(taus[3:]) / len(taus[3:]) >= 0.8, taus  # then it wanders near the top
    assert search.decide()["neuron"].tau >= 0.7


def test_a_task_hurt_by_leftover_state_drives_tau_down():
    taus, search = _tau_trajectory(no_memory_task)
    assert max(taus[-4:]) <= 0.2 and taus[-1] < taus[0], taus
    spec = search.decide()["neuron"]
    assert spec.kind == "lif" and spec.tau <= 0.2


def test_history_is_saved_as_json_and_plotted(tmp_path):
    _, search = _tau_trajectory(no_memory_task, iterations=10)
    search.decide()
    files = search.save_history(tmp_path)
    data = json.loads(files["history"].read_text())
    assert [e["iteration"] for e in data["tps"]] == [0, 5, 10] and data["tps"][0]["layer"] == "neuron"
    assert data["config"]["tps"] and data["config"]["tps_period"] == 5
    assert files["tps_tau"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
