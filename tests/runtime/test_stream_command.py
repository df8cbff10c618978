import json

import pytest
import torch

from eventstereo.events.sbt import SBTSettings
from eventstereo.model import build_stereo_model
from eventstereo.model.io import save_model
from eventstereo.runtime import stream_command

KEYS = {"windows", "windows_per_s", "latency_ms", "one_pa", "mde_cm", "mean_disp_err", "firing_rate",
        "energy_mj"}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(path, build_stereo_model(filter_multiplier=1, max_disparity=8), sbt_settings=SBTSettings(),
               provenance={"test": True})
    return path


def test_stream_json_summary_is_the_last_line(tiny_model, capsys):
    rc = stream_command.main(["--source", "synthetic", "--seed", "3", "--width", "48", "--height", "36",
                              "--windows", "4", "--model", str(tiny_model), "--json"])
    assert rc == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads(last)
    assert KEYS <= set(summary)
    assert summary["windows"] == summary["gt_windows"] == 4
    assert 0.0 <= summary["one_pa"] <= 100.0 and summary["energy_mj"] > 0
    assert summary["windows_per_s"] > 0 and summary["resets"] == 1


def test_stream_human_summary(tiny_model, capsys):
    rc = stream_command.main(["--width", "48", "--height", "36", "--windows", "2", "--model", str(tiny_model),
                              "--no-overlap", "--no-rates"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "2 windows in" in out and "1PA" in out and "firing rate -" in out


def test_json_line_writes_nan_as_null():
    assert json.loads(stream_command.json_line({"a": float("nan"), "b": 1.5})) == {"a": None, "b": 1.5}


def test_min_density_lengthens_sparse_windows(tiny_model, capsys):
    from eventstereo.events.lookback import LookbackSettings

    args = stream_command.build_parser().parse_args(["--min-density", "0.4", "--max-lookback", "3"])
    assert stream_command.session_options(args).lookback == LookbackSettings(min_density=0.4, max_windows=3)
    # a density no window reaches: every frame after the first spans the most windows allowed
    rc = stream_command.main(["--width", "48", "--height", "36", "--windows", "4", "--model", str(tiny_model),
                              "--min-density", "50", "--max-lookback", "3", "--no-rates", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["lookback_windows"] == pytest.approx((1 + 2 + 3 + 3) / 4)


def test_negative_min_density_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        stream_command.build_parser().parse_args(["--min-density", "-1"])
    assert "--min-density" in capsys.readouterr().err
