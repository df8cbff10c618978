"""Model files are refused before allocation when their size fields are absurd, and pickles never load."""

import json
import pickle

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from eventstereo.errors import InputError
from eventstereo.events.sbt import SBTSettings
from eventstereo.model import build_stereo_model
from eventstereo.model.io import KEY_GENOTYPE, load_model, save_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("limits") / "tiny.safetensors"
    save_model(path, build_stereo_model(filter_multiplier=1, max_disparity=8), sbt_settings=SBTSettings(),
               provenance={})
    return path


def _tampered(src, dst, **changes):
    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    genotype = json.loads(meta[KEY_GENOTYPE])
    genotype.update(changes)
    meta[KEY_GENOTYPE] = json.dumps(genotype)
    save_file(tensors, str(dst), metadata=meta)
    return dst


@pytest.mark.parametrize("changes, field", [
    ({"max_disparity": 10_000_000}, "max_disparity"), ({"filter_multiplier": 1_000_000}, "filter_multiplier"),
    ({"in_channels": 2**40}, "in_channels"), ({"max_disparity": "63"}, "max_disparity"),
    ({"filter_multiplier": True}, "filter_multiplier"),
])
def test_absurd_sizes_are_refused_before_building(tiny, tmp_path, monkeypatch, changes, field):
    path = _tampered(tiny, tmp_path / "big.safetensors", **changes)

    def never(*a, **k):
        raise AssertionError("the network was built")

    monkeypatch.setattr("eventstereo.model.io.SpikeDHSStereo", never)
    with pytest.raises(InputError, match=f"genotype {field} = .* outside the sane range"):
        load_model(path)


def test_torch_pickles_are_named_as_such(tiny, tmp_path):
    zipped = tmp_path / "model.pth"
    torch.save(build_stereo_model(filter_multiplier=1, max_disparity=8).state_dict(), zipped)
    bare = tmp_path / "legacy.pt"
    bare.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    for path in (zipped, bare):
        with pytest.raises(InputError, match="this is a torch pickle.*save_model") as e:
            load_model(path)
        assert path.name in str(e.value)
    assert load_model(tiny).genotype.max_disparity == 8  # a real model file still loads
