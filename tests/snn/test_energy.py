"""Operation counts and energy on worked examples (REFERENCE §10)."""

import pytest
import torch
from torch import nn

from eventstereo.snn import E_AC_PJ, E_MAC_PJ, EnergyReport, LIFNode, count_ops, energy_mj
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
    x.view(-1)[::4] = 1.0  # firing rate exactly 0.25
    (o,) = count_ops(conv, x, timesteps=5)
    dense = 6 * 8 * 8 * 4 * 9
    assert o.name == "Conv2d" and o.spike_fed and o.input_rate == 0.25
    assert o.dense_ops == dense and o.macs == 0
    assert o.adds == 0.25 * 5 * dense
    assert o.energy_pj == pytest.approx(0.9 * 0.25 * 5 * dense)


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

    (o,) = count_ops(Twice(), (x[:1], x[1:]))
    assert o.dense_ops == 2 * 12 and o.input_rate == pytest.approx(0.625) and o.adds == pytest.approx(15)
    with pytest.raises(TypeError):
        dense_ops(nn.ReLU(), torch.zeros(1))
    with pytest.raises(ValueError):
        count_ops(lin, x, timesteps=0)
