"""blend_models.py: weight-space interpolation of two model files of one architecture."""

import torch

from eventstereo.events.sbt import SBTSettings
from eventstereo.model import build_stereo_model
from eventstereo.model.io import load_model, save_model


def _model(path, seed, **kw):
    torch.manual_seed(seed)
    model = build_stereo_model(**{"filter_multiplier": 1, "max_disparity": 8, **kw})
    for m in model.modules():  # BN statistics too: they are interpolated like the weights
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_()
            m.num_batches_tracked.fill_(seed)
    return save_model(path, model, sbt_settings=SBTSettings(), provenance={"seed": seed})


def test_blend_interpolates_floats_and_records_both_inputs(tmp_path, capsys, load_tool):
    a, b = _model(tmp_path / "a.safetensors", 1), _model(tmp_path / "b.safetensors", 2)
    out = tmp_path / "c.st"
    assert load_tool("blend_models").main([str(a), str(b), "--weight", "0.25", "--out", str(out)]) == 0
    sa, sb = load_model(a).model.state_dict(), load_model(b).model.state_dict()
    blended = load_model(out)
    sc = blended.model.state_dict()
    for name, value in sc.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, 0.75 * sa[name] + 0.25 * sb[name])
        else:
            assert torch.equal(value, sb[name])
    assert any(not torch.equal(sa[n], sb[n]) for n in sa)
    assert blended.provenance["blend"]["weight"] == 0.25
    assert blended.provenance["blend"]["a_provenance"] == {"seed": 1}


def test_blend_refuses_models_of_two_architectures(tmp_path, capsys, load_tool):
    a = _model(tmp_path / "a.safetensors", 1)
    b = _model(tmp_path / "b.safetensors", 2, max_disparity=11)
    assert load_tool("blend_models").main([str(a), str(b), "--out", str(tmp_path / "c.st")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "b.safetensors" in err[0] and "architecture" in err[0]
