"""The frozen baseline of `bench stream` computes what the model computes (same spikes, same cost)."""

import torch

from eventstereo.bench._baseline import BaselineStereo
from eventstereo.model.io import load_bundled_model
from eventstereo.snn.neurons import neurons


def test_baseline_streams_the_same_spikes_and_cost_as_the_model():
    new = load_bundled_model(fold_bn=True).model.eval()
    old = BaselineStereo(load_bundled_model(fold_bn=True).model.eval())
    spikes = {"new": [], "old": []}
    for tag, m in (("new", new), ("old", old.model)):
        for _, n in neurons(m):
            n.register_forward_hook(lambda mod, i, o, tag=tag: spikes[tag].append(o.clone()))
    gen = torch.Generator().manual_seed(0)
    frames = [(torch.rand(1, 5, 48, 72, generator=gen) < 0.3).float() * 2 - 1 for _ in range(6)]
    with torch.inference_mode():
        for k in range(3):
            c_new = new.step(frames[2 * k], frames[2 * k + 1])
            c_old = old.step(frames[2 * k], frames[2 * k + 1])
            torch.testing.assert_close(c_new, c_old, rtol=1e-5, atol=1e-5)
    assert len(spikes["new"]) == len(spikes["old"]) > 0
    assert all(torch.equal(a, b) for a, b in zip(spikes["new"], spikes["old"]))
    assert 0.01 < torch.cat([s.flatten() for s in spikes["new"]]).mean() < 0.9  # a spiking, trained net


def test_baseline_and_model_agree_on_a_path_that_ends_at_level_1():
    """The published path ends at level 1, so its read-out runs the x2 taps-as-outputs conv in the model
    and the stacked phase convs in the baseline: the same cost within float rounding."""
    from eventstereo.model import build_stereo_model
    from eventstereo.snn.bnfold import fold_batchnorms

    torch.manual_seed(0)
    model = fold_batchnorms(build_stereo_model(filter_multiplier=2, max_disparity=47).eval())
    assert model.matching.path[-1] == 1
    old = BaselineStereo(fold_batchnorms(build_stereo_model(filter_multiplier=2, max_disparity=47).eval()))
    old.model.load_state_dict(model.state_dict())
    gen = torch.Generator().manual_seed(1)
    frames = [(torch.rand(1, 5, 48, 96, generator=gen) < 0.3).float() * 2 - 1 for _ in range(4)]
    with torch.inference_mode():
        for k in range(2):
            c_new = model.step(frames[2 * k], frames[2 * k + 1])
            c_old = old.step(frames[2 * k], frames[2 * k + 1])
            assert c_new.abs().max() > 0
            torch.testing.assert_close(c_new, c_old, rtol=1e-5, atol=1e-5)
