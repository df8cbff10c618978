"""The frozen baseline of `bench stream` computes what the model computes (same spikes, same cost)."""

import torch

from eventstereo.bench._baseline import BaselineStereo
from eventstereo.model.io import load_bundled_model
from eventstereo.snn.neurons import neurons


def _stream_both(new, old, *, seed: int, windows: int, size: tuple[int, int]):
    """(cost of the model, cost of the baseline) per window, both streaming the same random frames."""
    gen = torch.Generator().manual_seed(seed)
    frames = [(torch.rand(1, 5, *size, generator=gen) < 0.3).float() * 2 - 1 for _ in range(2 * windows)]
    out = []
    with torch.inference_mode():
        for left, right in zip(frames[0::2], frames[1::2]):
            out.append((new.step(left, right), old.step(left, right)))
    return out


def test_baseline_streams_the_same_spikes_and_cost_as_the_model():
    new = load_bundled_model(fold_bn=True).model.eval()
    old = BaselineStereo(load_bundled_model(fold_bn=True).model.eval())
    spikes = {"new": [], "old": []}
    for tag, m in (("new", new), ("old", old.model)):
        for _, n in neurons(m):
            n.register_forward_hook(lambda mod, i, o, tag=tag: spikes[tag].append(o.clone()))
    for c_new, c_old in _stream_both(new, old, seed=0, windows=3, size=(48, 72)):
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
    for c_new, c_old in _stream_both(model, old, seed=1, windows=2, size=(48, 96)):
        assert c_new.abs().max() > 0
        torch.testing.assert_close(c_new, c_old, rtol=1e-5, atol=1e-5)
