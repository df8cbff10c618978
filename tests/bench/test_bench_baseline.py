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
