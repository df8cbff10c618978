"""The fast network (fused edges, 2-D formulation of 3-D convs, cost-volume stem, x2 phase convs,
strided stems) against the plain reference written from the architecture description
(eventstereo.model.reference)."""

import pytest
import torch

from eventstereo.errors import InputError
from eventstereo.model import GENOTYPES, NetGenotype, StereoGenotype, build_stereo_model, neuron_layer_names
from eventstereo.model.reference import reference_stereo_step
from eventstereo.snn import FiringRateProbe, count_ops, fold_batchnorms
from eventstereo.snn.neurons import BaseNeuron, neurons
from eventstereo.stereo import subpixel_cross_entropy

H, W = 24, 36


def _small(**kw):
    torch.manual_seed(0)
    return build_stereo_model(filter_multiplier=2, max_disparity=11, **kw)


def _frames(t=None, b=1, h=H, w=W, seed=0, shift=3):
    g = torch.Generator().manual_seed(seed)
    shape = (b, 5, h, w) if t is None else (t, b, 5, h, w)
    left = (torch.rand(shape, generator=g) < 0.3).float() * torch.randn(shape, generator=g).sign()
    right = torch.roll(left, -shift, dims=-1)
    return left, right


def _calibrate(model, left, right):
    """Set BN running statistics to one batch's (a trained net's layers fire; a fresh one's barely do)."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = 1.0
    model.train()
    with torch.no_grad():
        model.step(left, right)
    model.reset()
    return model.eval()


# --------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize(
    "size, feature_path, matching_path",
    [
        ((H, W), (1, 0), (1, 2, 2, 1)),  # the published paths
        ((25, 37), (1, 0), (1, 2, 2, 1)),  # padding and cropping
        ((H, W), (1, 2), (1, 2, 1, 0)),  # strided 2-D stem1, a two-level jump, no reduce layer
        ((H, W), (0, 1), (1, 2, 3, 2)),  # upsampled feature output, level 3 (H, W padded to 24)
    ],
)
def test_fast_network_equals_reference(size, feature_path, matching_path):
    published = GENOTYPES["spikedhs_stereo"]
    # skip_connect both from outside (a 1x1 conv) and between nodes (the identity)
    cell = ((0, "snn_b3"), (1, "skip_connect"), (4, "skip_connect"), (3, "snn_b5"), (8, "snn_b3"),
            (6, "snn_b3"))
    g = published.with_changes(
        filter_multiplier=2, max_disparity=11,
        feature=NetGenotype(path=feature_path, cell=published.feature.cell),
        matching=NetGenotype(path=matching_path, cell=cell),
    )
    torch.manual_seed(0)
    left, right = (x.double() for x in _frames(b=2, h=size[0], w=size[1]))
    model = _calibrate(build_stereo_model(g).double(), left, right)
    with FiringRateProbe(model) as probe:
        fast = model.step(left, right)
    rates = probe.rates()
    assert 0.02 < probe.mean_rate() < 0.98, rates  # the comparison is not between silent networks
    assert all(r > 0 for r in rates.values()), rates
    ref = reference_stereo_step(model, left, right)
    assert fast.shape == (2, 12, *size)
    torch.testing.assert_close(fast, ref, rtol=1e-9, atol=1e-9)


def test_step_sequence_equals_forward_and_reset():
    left, right = _frames(t=4, b=2)
    model = _calibrate(_small(), left[0], right[0])
    with torch.no_grad():
        seq = model(left, right)
        assert seq.shape == (4, 2, 12, H, W)
        model.reset()
        steps = torch.stack([model.step(left[t], right[t]) for t in range(4)])
        torch.testing.assert_close(steps, seq, rtol=1e-5, atol=1e-5)
        # the state matters: the same window again gives another cost; reset restores the first one
        again = model.step(left[0], right[0])
        assert not torch.allclose(again, steps[0])
        model.reset()
        torch.testing.assert_close(model.step(left[0], right[0]), steps[0], rtol=1e-5, atol=1e-5)


def test_training_gradients_and_detach():
    model = _small().train()
    left, right = _frames(t=2, b=2)
    gt = torch.full((2, 2, H, W), float("inf"))
    gt[..., 4:20, 6:30] = 3.0
    loss = subpixel_cross_entropy(model(left, right), gt)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert all(p.grad.abs().sum() > 0 for n, p in model.named_parameters() if n.endswith("conv.weight"))
    states = [v for _, m in neurons(model) for v in m.state.values() if v is not None]
    assert states and any(v.grad_fn is not None for v in states)
    model.detach()
    assert all(v.grad_fn is None for _, m in neurons(model) for v in m.state.values() if v is not None)
    model.reset()
    assert all(v is None for _, m in neurons(model) for v in m.state.values())


def test_layer_names_temperatures_and_overrides():
    model = _small()
    names = [n for n, m in model.named_modules() if isinstance(m, BaseNeuron)]
    assert names == neuron_layer_names(model.genotype)
    assert model.feature.cell0.node1.surrogate.temperature == 5.0  # first listed op of node 1: snn_b5
    assert model.matching.cell2.node0.surrogate.temperature == 3.0
    assert model.feature.stem1.neuron.surrogate.temperature == 3.0
    g = model.genotype
    override = {"matching.cell2.node0": {"kind": "alif", "tau": 0.5, "temperature": 2.0}}
    neurons_d = {"default": {"tau": 0.3}, "overrides": override}
    g2 = StereoGenotype.from_dict({**g.to_dict(), "neurons": neurons_d})
    m2 = build_stereo_model(g2)
    specs = m2.neuron_specs()
    assert specs["matching.cell2.node0"].kind == "alif" and specs["matching.cell2.node0"].temperature == 2.0
    assert specs["feature.stem0.neuron"].tau == 0.3
    assert specs["feature.cell0.node1"].temperature == 5.0 and specs["feature.cell0.node1"].tau == 0.3


def test_probe_and_energy_see_every_layer():
    left, right = _frames(t=1)
    model = _calibrate(_small(), left[0], right[0])
    with FiringRateProbe(model) as probe:
        model(left, right)
    assert set(probe.rates()) == set(neuron_layer_names(model.genotype))
    model.reset()
    ops = {o.name: o for o in count_ops(model, (left, right))}
    assert not ops["feature.stem0.conv"].spike_fed  # SBT frames are real-valued: MACs
    assert ops["matching.cell2.edges.4.conv"].spike_fed
    # the volume stem is counted as the dense Conv3d over the 4-plane volume at 1/3 resolution
    assert ops["matching.stem0.conv"].dense_ops == 4 * (H // 3) * (W // 3) * 6 * (12 * 27)
    assert "matching.head" in ops and "matching.cell3.edges.6.conv" in ops


def test_folded_batchnorm_gives_the_same_costs():
    model = _small().double()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 1.5)
    model.eval()
    left, right = (x.double() for x in _frames(t=2))
    with torch.no_grad():
        before = model(left, right)
        model.reset()
        fold_batchnorms(model)
        assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
        after = model(left, right)
    torch.testing.assert_close(after, before, rtol=1e-9, atol=1e-9)


def test_paper_setting_parameter_count():
    model = build_stereo_model()
    n = sum(p.numel() for p in model.parameters())
    assert 0.85e6 < n < 0.89e6  # the paper's 0.87M
    assert model.genotype.filter_multiplier == 8 and model.max_disparity == 63


def test_builder_overrides_and_input_errors():
    model = _small(in_channels=2)
    assert model.genotype.in_channels == 2 and model.genotype.filter_multiplier == 2
    assert model.max_disparity == 11 and model.num_disparities == 12
    with pytest.raises(ValueError, match="C=2"):
        model.step(*_frames())
    with pytest.raises(ValueError, match="differ"):
        model.step(torch.zeros(1, 2, H, W), torch.zeros(1, 2, H, W + 3))
    with pytest.raises(ValueError, match=r"\(T, B, C, H, W\)"):
        model(torch.zeros(1, 2, H, W), torch.zeros(1, 2, H, W))
    with pytest.raises(InputError, match="filter_multiplier"):
        build_stereo_model(filter_multiplier=0)


def test_the_builder_warns_when_the_matching_path_leaves_too_few_disparity_planes():
    import warnings

    from eventstereo.model.genotype import level_planes

    assert level_planes(63) == [21, 11, 6, 3] and level_planes(23) == [8, 4, 2, 1]
    with pytest.warns(UserWarning, match="level 2 keeps only 2 disparity plane"):
        build_stereo_model(filter_multiplier=1, max_disparity=23)  # published path [1, 2, 2, 1]
    shallow = GENOTYPES["spikedhs_stereo"].with_changes(
        matching=NetGenotype((1, 0), GENOTYPES["spikedhs_stereo"].matching.cell))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_stereo_model(filter_multiplier=1, max_disparity=63)
        build_stereo_model(shallow, filter_multiplier=1, max_disparity=23)
