"""The classification genotype and SpikeDHS-CLA: format, validation, fast == reference, model files."""

import json
import re

import pytest
import torch

from eventstereo.errors import InputError
from eventstereo.model import (
    GENOTYPES,
    ClassifierGenotype,
    NetGenotype,
    StereoGenotype,
    build_classifier,
    genotype_from_dict,
    load_genotype,
    neuron_layer_names,
    read_genotype,
)
from eventstereo.model.io import load_model, save_model
from eventstereo.model.reference import reference_classifier_step
from eventstereo.snn.neurons import BaseNeuron, NeuronSpec

CELL = GENOTYPES["spikedhs_stereo"].feature.cell  # the published cell (the paper reuses it)


def _genotype(**kw):
    base = dict(name="tiny", net=NetGenotype(path=(0, 0, 1, 1, 1, 2, 2, 2), cell=CELL), filter_multiplier=2,
                num_classes=4, in_channels=1, stem_multiplier=2, timesteps=2)
    return ClassifierGenotype(**{**base, **kw})


def _calibrated(g, x, seed=0):
    torch.manual_seed(seed)
    model = build_classifier(g).double()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


def test_json_round_trip_layer_names_and_temperatures():
    g = _genotype(neurons=_genotype().neurons.__class__(default=NeuronSpec(tau=0.3),
                                                        overrides={"cell5.node0": NeuronSpec(kind="alif")}))
    back = ClassifierGenotype.from_json(g.to_json())
    assert back == g and genotype_from_dict(json.loads(g.to_json())) == g
    names = neuron_layer_names(g)
    assert names[0] == "stem.neuron" and names[-1] == "cell7.node2"
    assert names.index("aux.conv.neuron") == names.index("cell5.node2") + 1  # after cell 5 of 8
    model = build_classifier(g)
    assert [n for n, m in model.named_modules() if isinstance(m, BaseNeuron)] == names
    specs = model.neuron_specs()
    assert specs["cell5.node0"].kind == "alif"
    assert specs["cell0.node1"].temperature == 5.0 and specs["cell0.node0"].temperature == 3.0  # op table
    assert specs["stem.neuron"].tau == 0.3
    assert model.current_genotype() == g
    d = json.loads(g.to_json())
    d["net"]["cell"] = [[e, ["skip_connect", "snn_b3", "snn_b5"].index(op)] for e, op in CELL]
    assert ClassifierGenotype.from_dict(d).net == g.net  # the logs' integer op form


@pytest.mark.parametrize(
    "change, field",
    [
        ({"path": [0, 1, 0]}, "net.path"),  # a classifier only goes down
        ({"path": [0, 2]}, "net.path"),
        ({"num_classes": 1}, "num_classes"),
        ({"timesteps": 0}, "timesteps"),
        ({"auxiliary": "yes"}, "auxiliary"),
        ({"bogus": 1}, "bogus"),
        ({"cell": [[0, "conv7"]]}, "net.cell[0] op"),
    ],
)
def test_validation_names_the_field(change, field):
    d = json.loads(_genotype().to_json())
    for key, value in change.items():
        if key in ("path", "cell"):
            d["net"][key] = value
        else:
            d[key] = value
    with pytest.raises(InputError, match=re.escape(f"'{field}")):
        ClassifierGenotype.from_dict(d, source="g.json")


def test_read_genotype_by_format_and_stereo_loader_refuses_a_classifier(tmp_path):
    p = tmp_path / "cla.json"
    p.write_text(_genotype().to_json())
    assert read_genotype(p) == _genotype()
    s = tmp_path / "stereo.json"
    s.write_text(GENOTYPES["spikedhs_stereo"].to_json())
    assert isinstance(read_genotype(s), StereoGenotype)
    with pytest.raises(InputError, match="expected 'eventstereo.genotype'"):
        load_genotype(p)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something.else", "version": 1}))
    with pytest.raises(InputError, match="bad.json.*unknown 'something.else'"):
        read_genotype(bad)


def test_fast_classifier_equals_reference():
    g = _genotype(timesteps=1, num_classes=5)
    x = torch.rand(3, 1, 12, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    model = _calibrated(g, x)
    with torch.no_grad():
        fast = model(x)
        ref = reference_classifier_step(model, x)
    assert fast.shape == (3, 5)
    torch.testing.assert_close(fast, ref, rtol=1e-9, atol=1e-9)
    assert ref.abs().sum() > 0


def test_steps_frames_aux_and_training():
    g = _genotype()
    model = build_classifier(g)
    x = torch.rand(4, 1, 8, 8)
    model.train()
    logits, aux = model.forward_with_aux(x)
    assert logits.shape == aux.shape == (4, 4)
    (torch.nn.functional.cross_entropy(logits, torch.arange(4)) + 0.4 * aux.sum()).backward()
    assert all(p.grad is not None for n, p in model.named_parameters()), "every parameter learns"
    model.eval()
    assert model.forward_with_aux(x)[1] is None  # the auxiliary head only trains
    frames = torch.rand(3, 2, 1, 8, 8)
    assert model(frames).shape == (2, 4)
    with pytest.raises(ValueError, match="C=1"):
        model(torch.rand(2, 3, 8, 8))
    # every sample starts from rest: the same input twice gives the same logits
    torch.testing.assert_close(model(x), model(x))


def test_classifier_model_file_round_trip(tmp_path):
    g = _genotype(neurons=_genotype().neurons.__class__(default=NeuronSpec(tau=0.4)))
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    model = build_classifier(g)
    model.train()
    model(x)  # running statistics that differ from a fresh model's
    model.eval()
    model.cell2.node1.tau = 0.7  # a TPS-like change is kept as an override
    path = save_model(tmp_path / "cla.safetensors", model, provenance={"data": "test"})
    loaded = load_model(path, task="classification")
    assert loaded.sbt_settings is None and loaded.genotype.neurons.overrides["cell2.node1"].tau == 0.7
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model(x))
    assert load_model(path, task=None).genotype == loaded.genotype
    with pytest.raises(InputError, match="classification model; a stereo model is needed"):
        load_model(path)  # the stereo callers' default
