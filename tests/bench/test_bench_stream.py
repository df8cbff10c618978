"""`bench stream --compare-model`: another model file timed beside the bundled one, same run."""

import json

import pytest
import torch

from eventstereo.bench import stream
from eventstereo.errors import InputError
from eventstereo.events.sbt import SBTSettings
from eventstereo.model import build_stereo_model
from eventstereo.model.io import BUNDLED_MODEL, save_model

FAST = ["--skip-paper", "--windows", "1", "--rounds", "1", "--threads", "1", "--device", "cpu"]


def test_a_compared_model_gets_its_row_and_its_time_against_the_bundled_one(capsys):
    assert stream.main([*FAST, "--compare-model", str(BUNDLED_MODEL), "--json"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    row = result["demo_cpu"]["compare-1"]
    assert row["file"] == str(BUNDLED_MODEL) and row["windows_per_s"] > 0 and row["time_vs_bundled"] > 0
    assert f"compare-1 ({BUNDLED_MODEL})" in out


def test_a_model_of_other_sbt_settings_is_refused_by_name(tmp_path):
    torch.manual_seed(0)
    model = build_stereo_model(filter_multiplier=1, max_disparity=11, in_channels=3)
    path = save_model(tmp_path / "three_bins.safetensors", model, sbt_settings=SBTSettings(n_bins=3),
                      provenance={})
    with pytest.raises(InputError, match="three_bins.safetensors.*SBT settings"):
        stream.main([*FAST, "--compare-model", str(path)])
