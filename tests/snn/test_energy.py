"""Operation counts and energy on worked examples (REFERENCE §10)."""

import pytest
import torch
from torch import nn

from eventstereo.snn import E_AC_PJ, E_MAC_PJ, EnergyReport, LIFNode, ReLUNode, count_ops, energy_mj
from eventstereo.snn.energy import dense_ops


def test_constants():
    assert (E_AC_PJ, E_MAC_PJ) == (0.9, 4.6)


def test_dense_ann_counts_macs_only():
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, stride=2, padding=1),
                        nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 5, 10))
    x = torch.randn(2, 3, 10, 10)
    ops = count_ops(ann, x, batch_size=2)
    assert [o.name for o in ops] == ["0", "2", "5"]
    assert [o.kind for o in ops] == ["conv2d", "conv2d", "linear"]
    expected = [8 * 10 * 10 * 3 * 9, 4 * 5 * 5 * 8 * 9, 10 * 100]
    assert [o.dense_ops for o in ops] == expected
    assert all(not o.spike_fed and o.adds == 0 for o in ops)
    assert [o.macs for o in ops] == expected
    assert energy_mj(ops) == pytest.approx(sum(expected) * 4.6e-9)


def test_spike_fed_layer_counts_rate_times_T_times_ops_additions():
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=False)
    x = torch.zeros(1, 4, 8, 8)
    x.view(-1)[::4] = 1.0  # the LIF fires exactly there: firing rate 0.25
    _, o = count_ops(nn.Sequential(nn.Conv2d(4, 4, 1), LIFNode(theta=0.5), conv), x, timesteps=5)
    (only,) = count_ops(nn.Sequential(LIFNode(theta=0.5), conv), x, timesteps=5)
    dense = 6 * 8 * 8 * 4 * 9
    assert only.name == "1" and only.spike_fed and only.input_rate == 0.25
    assert only.dense_ops == dense and only.macs == 0
    assert only.adds == 0.25 * 5 * dense
    assert only.energy_pj == pytest.approx(0.9 * 0.25 * 5 * dense)
    assert o.spike_fed and o.dense_ops == dense


def _first_layer_net():
    torch.manual_seed(2)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), LIFNode(theta=0.1), nn.Conv2d(4, 4, 3, padding=1),
                         ReLUNode(), nn.Conv2d(4, 3, 1), LIFNode(theta=0.1), nn.Flatten(),
                         nn.Linear(3 * 6 * 6, 2))


@pytest.mark.parametrize("window", ["empty", "on_only", "signed"])
def test_spike_fed_follows_position_and_input_type_never_the_values(window):
    """An all-zero or ON-only SBT frame holds only 0 and 1, yet it is the real-valued input of the first
    layer: its MACs must not vanish. A layer after a ReLU multiplies even when the ReLU outputs only
    zeros; a layer after a spiking neuron adds."""
    x = {"empty": torch.zeros(1, 2, 6, 6), "on_only": (torch.rand(1, 2, 6, 6) < 0.3).float(),
         "signed": torch.randint(-1, 2, (1, 2, 6, 6)).float()}[window]
    ops = count_ops(_first_layer_net(), x, timesteps=3)
    assert [(o.name, o.spike_fed) for o in ops] == [("0", False), ("2", True), ("4", False), ("7", True)]
    first = ops[0]
    assert first.macs == 3 * first.dense_ops == 3 * 4 * 36 * 2 * 9 and first.adds == 0
    assert ops[2].macs == 3 * ops[2].dense_ops  # after the ReLU
    assert ops[1].adds == pytest.approx(ops[1].input_rate * 3 * ops[1].dense_ops) and ops[1].macs == 0


def test_spikes_stay_spikes_through_moves_and_become_real_through_arithmetic():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lif = LIFNode(theta=0.1)
            self.moved = nn.Conv2d(8, 2, 3)
            self.scaled = nn.Conv2d(4, 2, 3)

        def forward(self, x):
            s = self.lif(x)
            volume = s.new_zeros(1, 8, 6, 6)
            volume[:, :4] = s
            volume[:, 4:, :, 1:] = s[..., :-1]  # a shifted copy, as a cost volume builds
            moved = torch.nn.functional.pad(torch.cat([volume[:, :4], volume[:, 4:]], 1), (1, 1, 1, 1))
            return self.moved(moved).sum() + self.scaled(s * 0.5).sum()

    moved, scaled = count_ops(Net(), torch.randn(1, 4, 6, 6))
    assert moved.spike_fed and moved.macs == 0
    assert not scaled.spike_fed and scaled.adds == 0


def test_stereo_model_on_an_empty_window_keeps_the_stems_macs():
    from eventstereo.model import build_stereo_model
    from eventstereo.snn import reset_net

    class Step(nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, left, right):
            return self.model.step(left, right)

    torch.manual_seed(0)
    net = Step(build_stereo_model(filter_multiplier=1, max_disparity=12).eval())
    shape = (1, net.model.in_channels, 36, 48)
    rich = (torch.randint(-1, 2, shape).float(), torch.randint(-1, 2, shape).float())
    binary: dict[str, bool] = {}

    def by_value(module, inputs, out):  # what the old, value-based rule decided
        x = inputs[0]
        binary[names[module]] = binary.get(names[module], True) and bool(((x == 0) | (x == 1)).all())

    names = {m: n for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.Linear))}
    handles = [m.register_forward_hook(by_value) for m in names]
    reset_net(net)
    with torch.no_grad():
        net(*rich)
    for h in handles:
        h.remove()
    reset_net(net)
    ops = count_ops(net, rich)
    # on an ordinary window, provenance agrees with the values everywhere: spikes are what feeds the layers
    assert {o.name: o.spike_fed for o in ops} == binary
    reset_net(net)
    empty = count_ops(net, (torch.zeros(shape), torch.zeros(shape)))
    stems = [o for o in empty if o.name.startswith("model.feature.stem0")]
    assert stems and all(not o.spike_fed and o.macs == o.dense_ops > 0 for o in stems)
    assert [o.spike_fed for o in empty] == [o.spike_fed for o in ops]


def test_mixed_network_detection_override_and_report():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv3d(2, 4, 3, padding=1), LIFNode(theta=0.1), nn.Conv3d(4, 4, 3, padding=1,
                        groups=2), LIFNode(theta=0.1), nn.Flatten(), nn.Linear(4 * 3 * 4 * 4, 5))
    sbt = torch.randint(-1, 2, (1, 2, 3, 4, 4)).float()  # SBT sign frames: real-valued input
    ops = count_ops(net, sbt, timesteps=4)
    first, mid, last = ops
    assert first.kind == "conv3d" and not first.spike_fed and first.macs == 4 * first.dense_ops
    assert mid.dense_ops == 4 * 3 * 4 * 4 * (4 // 2) * 27
    assert mid.spike_fed and mid.macs == 0 and 0 < mid.input_rate < 1
    assert mid.adds == pytest.approx(mid.input_rate * 4 * mid.dense_ops)
    assert last.spike_fed
    forced = count_ops(net, sbt, timesteps=4, spike_fed={"0": True, "5": False})
    assert forced[0].spike_fed and forced[0].macs == 0
    assert not forced[2].spike_fed and forced[2].macs == 4 * forced[2].dense_ops
    with pytest.raises(ValueError, match="no weight layer"):
        count_ops(net, sbt, spike_fed={"1": True})
    report = EnergyReport(ops)
    assert report.adds == sum(o.adds for o in ops) and report.macs == first.macs
    assert report.energy_mj == pytest.approx((0.9 * report.adds + 4.6 * report.macs) * 1e-9)
    table = report.table()
    assert all(name in table for name in ("0", "2", "5")) and "total" in table and "mJ" in table
    d = report.to_dict()
    assert d["energy_mj"] == report.energy_mj and len(d["layers"]) == 3
    assert EnergyReport.measure(net, (sbt,), timesteps=4).macs == report.macs


def test_multiple_calls_and_errors():
    lin = nn.Linear(4, 3)
    x = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lin

        def forward(self, a, b):
            return self.lin(a) + self.lin(b)

    (o,) = count_ops(Twice(), (x[:1], x[1:]))  # the model's inputs are real values, even all-0/1 ones
    assert o.dense_ops == 2 * 12 and o.input_rate == pytest.approx(0.625) and o.macs == 24 and o.adds == 0
    (o,) = count_ops(Twice(), (x[:1], x[1:]), spike_fed={"lin": True})
    assert o.adds == pytest.approx(15) and o.macs == 0
    with pytest.raises(TypeError):
        dense_ops(nn.ReLU(), torch.zeros(1))
    with pytest.raises(ValueError):
        count_ops(lin, x, timesteps=0)
