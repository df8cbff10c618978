"""widen_model.py: a wider network that starts out computing exactly what the trained one does."""

from pathlib import Path

import pytest
import torch

from eventstereo.events.sbt import SBTSettings
from eventstereo.model import build_stereo_model
from eventstereo.model.io import load_model, save_model

DEMO_GENOTYPE = Path(__file__).resolve().parents[2] / "tools" / "configs" / "demo_genotype.json"


def _trained_like(path, genotype=None, f=2):
    """Random weights and BN statistics strong enough that the neurons fire (a fresh net barely does)."""
    torch.manual_seed(3)
    model = build_stereo_model(genotype, filter_multiplier=f, max_disparity=11, in_channels=5)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.5, 2.0)
                m.bias.normal_(0.3, 0.3)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.2, 1.0)
    return save_model(path, model, sbt_settings=SBTSettings(n_bins=5), provenance={"test": True})


def _spikes(model):
    counts = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: counts.append(float(out.sum())))
             for name, m in model.named_modules() if name.endswith("neuron")]
    return counts, hooks


@pytest.mark.parametrize("genotype", [None, DEMO_GENOTYPE], ids=["published", "demo"])
def test_widened_model_computes_what_the_narrow_one_does(tmp_path, genotype, load_tool):
    narrow_file = _trained_like(tmp_path / "narrow.safetensors", genotype)
    out = tmp_path / "wide.safetensors"
    tool = load_tool("widen_model")
    assert tool.main([str(narrow_file), "--filter-multiplier", "3", "--out", str(out)]) == 0
    narrow, wide = load_model(narrow_file), load_model(out)
    assert wide.genotype.filter_multiplier == 3
    assert wide.genotype.with_changes(filter_multiplier=2) == narrow.genotype
    n_params = [sum(p.numel() for p in m.model.parameters()) for m in (narrow, wide)]
    assert n_params[1] > 1.8 * n_params[0]
    torch.manual_seed(0)
    left, right = (torch.rand(4, 1, 5, 24, 36).lt(0.2).float() for _ in range(2))
    with torch.no_grad():
        a = narrow.model(left, right)
        b = wide.model(left, right)
    assert a.std() > 0
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    assert wide.provenance["widened"]["from_provenance"] == {"test": True}


def test_new_channels_fire_and_old_ones_ignore_them(tmp_path, load_tool):
    narrow_file = _trained_like(tmp_path / "narrow.safetensors", DEMO_GENOTYPE)
    wide = load_tool("widen_model").widen(load_model(narrow_file), 3)
    stem = wide.feature.stem0.conv.weight  # 5 SBT bins in, 3 blocks of 3 out: channel 2 of each block is new
    assert stem.shape[0] == 9 and stem[2::3].abs().sum() > 0
    nxt = wide.feature.stem1.conv.weight
    old_out = [i for i in range(9) if i % 3 != 2]
    assert torch.all(nxt[old_out][:, 2::3] == 0) and nxt[2::3].abs().sum() > 0


def test_widening_to_a_width_not_larger_is_refused(tmp_path, capsys, load_tool):
    narrow_file = _trained_like(tmp_path / "narrow.safetensors", DEMO_GENOTYPE)
    tool = load_tool("widen_model")
    assert tool.main([str(narrow_file), "--filter-multiplier", "2", "--out", str(tmp_path / "w.st")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "narrow.safetensors" in err[0] and "larger" in err[0]
