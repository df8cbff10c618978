"""End to end: a model whose weights are all NaN streams to 1PA 0 %, never 100 %."""

import json

import torch

from eventstereo.events.sbt import SBTSettings
from eventstereo.model import build_stereo_model
from eventstereo.model.io import save_model
from eventstereo.runtime import stream_command


def test_nan_weights_score_zero_through_stream(tmp_path, capsys, recwarn):
    torch.manual_seed(0)
    model = build_stereo_model(filter_multiplier=1, max_disparity=8)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    path = save_model(tmp_path / "nan.safetensors", model, sbt_settings=SBTSettings(), provenance={})
    rc = stream_command.main(["--width", "48", "--height", "36", "--windows", "2", "--model", str(path),
                              "--json", "--no-rates", "--no-overlap"])
    assert rc == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert "2/2" in captured.err  # --json keeps the progress bar, on stderr
    assert summary["gt_windows"] == 2
    assert summary["one_pa"] == 0.0 and summary["one_pe"] == 100.0 and summary["two_pe"] == 100.0
    assert summary["mae"] is None and summary["rmse"] is None  # infinite: JSON has no inf
    assert summary["nonfinite_examples"] == 2


def test_eval_overall_row_counts_nonfinite_windows_and_keeps_inf(load_tool):
    import math

    tool = load_tool("eval_stereo")
    rows = [{"windows": 2, "gt_windows": 2, "one_pa": 0.0, "mae": math.inf, "nonfinite_examples": 2},
            {"windows": 2, "gt_windows": 2, "one_pa": 80.0, "mae": 0.5, "nonfinite_examples": 0}]
    out = tool.combine(rows)
    assert out["nonfinite_examples"] == 2 and out["one_pa"] == 40.0 and out["mae"] == math.inf
