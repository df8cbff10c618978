import json

import pytest
import torch
from safetensors.torch import save_file

from eventstereo.errors import InputError
from eventstereo.events.sbt import SBTSettings
from eventstereo.model import build_stereo_model, io
from eventstereo.model.io import BUNDLED_MODEL, load_bundled_model, load_model, read_metadata, save_model
from eventstereo.snn import fold_batchnorms

SBT = SBTSettings(window_us=50_000, n_bins=5, mode="sign")
PROV = {"data": "synthetic", "epochs": 3, "metrics": {"one_pa": 91.0}}


def _model():
    torch.manual_seed(0)
    m = build_stereo_model(filter_multiplier=2, max_disparity=11)
    for mod in m.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                mod.running_mean.uniform_(-0.3, 0.3)
                mod.running_var.uniform_(0.5, 1.5)
    return m.eval()


def _frames():
    g = torch.Generator().manual_seed(1)
    left = torch.randn(2, 1, 5, 24, 36, generator=g).sign()
    return left, torch.roll(left, -2, dims=-1)


def _cost(model):
    model.reset()
    with torch.no_grad():
        return model(*_frames())


def test_round_trip_keeps_weights_neurons_and_settings(tmp_path):
    model = _model()
    model.matching.cell2.node0.tau = 0.45  # what TPS would do
    model.feature.stem1.neuron.surrogate.temperature = 2.2  # what DGS would do
    path = save_model(tmp_path / "m.safetensors", model, sbt_settings=SBT, provenance=PROV)
    meta = read_metadata(path)
    assert {"eventstereo.format_version", "eventstereo.genotype", "eventstereo.sbt",
            "eventstereo.provenance"} <= set(meta)
    loaded = load_model(path)
    assert loaded.sbt_settings == SBT and loaded.provenance == PROV
    assert not loaded.model.training
    assert loaded.model.neuron_specs() == model.neuron_specs()
    assert loaded.genotype.neurons.overrides["matching.cell2.node0"].tau == 0.45
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.model.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    torch.testing.assert_close(_cost(loaded.model), _cost(model))
    assert not list(tmp_path.glob(".*tmp"))


def test_folded_models_save_and_load(tmp_path):
    model = _model()
    reference = _cost(model)
    folded = load_model(save_model(tmp_path / "a.safetensors", model, sbt_settings=SBT, provenance={}),
                        fold_bn=True).model
    torch.testing.assert_close(_cost(folded), reference, rtol=1e-4, atol=1e-4)
    fold_batchnorms(model)
    path_b = save_model(tmp_path / "b.safetensors", model, sbt_settings=SBT.to_dict(), provenance={})
    again = load_model(path_b)
    assert json.loads(read_metadata(tmp_path / "b.safetensors")["eventstereo.bn_folded"]) is True
    torch.testing.assert_close(_cost(again.model), reference, rtol=1e-4, atol=1e-4)


def test_corrupt_truncated_and_pickled_files(tmp_path):
    bad = tmp_path / "noise.safetensors"
    bad.write_bytes(b"\x13\x00\x00\x00\x00\x00\x00\x00not json at all")
    with pytest.raises(InputError, match="not a readable safetensors") as info:
        load_model(bad)
    assert str(bad) in str(info.value)
    good = save_model(tmp_path / "good.safetensors", _model(), sbt_settings=SBT, provenance={})
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError):
        load_model(cut)
    pickled = tmp_path / "pickled.safetensors"
    torch.save(_model().state_dict(), pickled)
    with pytest.raises(InputError, match="not a readable safetensors"):
        load_model(pickled)
    with pytest.raises(InputError, match="no such model file"):
        load_model(tmp_path / "absent.safetensors")


def _rewrite(src, dst, **meta_changes):
    from safetensors.torch import load_file

    meta = read_metadata(src)
    meta.update(meta_changes)
    meta = {k: v for k, v in meta.items() if v is not None}
    save_file(load_file(src), dst, metadata=meta)
    return dst


def test_mismatched_or_incomplete_metadata(tmp_path):
    src = save_model(tmp_path / "m.safetensors", _model(), sbt_settings=SBT, provenance={})
    g = json.loads(read_metadata(src)["eventstereo.genotype"])
    g["filter_multiplier"] = 3
    with pytest.raises(InputError, match="do not match the genotype"):
        load_model(_rewrite(src, tmp_path / "wide.safetensors", **{"eventstereo.genotype": json.dumps(g)}))
    with pytest.raises(InputError, match="eventstereo.genotype"):
        load_model(_rewrite(src, tmp_path / "nogeno.safetensors", **{"eventstereo.genotype": None}))
    g["filter_multiplier"] = -1
    with pytest.raises(InputError, match="filter_multiplier"):
        load_model(_rewrite(src, tmp_path / "badgeno.safetensors", **{"eventstereo.genotype": json.dumps(g)}))
    with pytest.raises(InputError, match="newer"):
        load_model(_rewrite(src, tmp_path / "future.safetensors", **{"eventstereo.format_version": "7"}))
    two_channels = json.dumps(SBTSettings(n_bins=2).to_dict())
    with pytest.raises(InputError, match="channels"):
        load_model(_rewrite(src, tmp_path / "sbt.safetensors", **{"eventstereo.sbt": two_channels}))


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = save_model(tmp_path / "m.safetensors", _model(), sbt_settings=SBT, provenance={"v": 1})
    before = path.read_bytes()
    with pytest.raises(ValueError, match="JSON"):
        save_model(path, _model(), sbt_settings=SBT, provenance={"bad": object()})
    with pytest.raises(ValueError, match="channels"):
        save_model(path, _model(), sbt_settings=SBTSettings(n_bins=3), provenance={})

    def boom(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(io, "save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        save_model(path, _model(), sbt_settings=SBT, provenance={})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_bundled_model_path_and_missing_file(tmp_path, monkeypatch):
    assert BUNDLED_MODEL.parts[-3:] == ("model", "weights", "demo.safetensors")
    monkeypatch.setattr(io, "BUNDLED_MODEL", tmp_path / "demo.safetensors")
    with pytest.raises(InputError, match="bundled demo model is missing"):
        load_bundled_model()
    save_model(tmp_path / "demo.safetensors", _model(), sbt_settings=SBT, provenance={"what": "demo"})
    assert load_bundled_model().provenance == {"what": "demo"}
