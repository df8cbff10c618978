import json
import math

import cv2
import pytest
import torch

from eventstereo.events.sbt import SBTSettings
from eventstereo.model import build_stereo_model
from eventstereo.model.io import save_model


def test_table_png_and_overall_row(tmp_path, capsys, load_tool):
    torch.manual_seed(0)
    model = tmp_path / "m.safetensors"
    save_model(model, build_stereo_model(filter_multiplier=1, max_disparity=8), sbt_settings=SBTSettings(),
               provenance={})
    png = tmp_path / "maps.png"
    rc = load_tool("eval_stereo").main(["--model", str(model), "--width", "48", "--height", "36",
                                        "--seeds", "3-4", "--windows", "7", "--png", str(png),
                                        "--png-windows", "2", "--json"])
    assert rc == 0
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith("seed 3") for line in out) and any(line.startswith("all") for line in out)
    overall = json.loads(out[-1])
    assert overall["windows"] == overall["gt_windows"] == 14
    image = cv2.imread(str(png))
    assert image.shape == (2 * 36, 3 * 48, 3)


def test_combine_weights_by_window_count(load_tool):
    rows = [{"windows": 1, "gt_windows": 1, "one_pa": 50.0, "windows_per_s": 2.0},
            {"windows": 3, "gt_windows": 3, "one_pa": 90.0, "windows_per_s": 4.0},
            {"windows": 2, "gt_windows": 0, "one_pa": math.nan, "windows_per_s": 1.0}]
    out = load_tool("eval_stereo").combine(rows)
    assert out["windows"] == 6 and out["gt_windows"] == 4
    assert out["one_pa"] == pytest.approx(80.0)
    assert out["windows_per_s"] == pytest.approx((2 + 12 + 2) / 6)


@pytest.fixture(scope="module")
def tiny_mvsec_split1(tmp_path_factory):
    from eventstereo.sources.mvsec_synth import make_split_recordings

    return make_split_recordings(tmp_path_factory.mktemp("mvsec_split1"), ("indoor_flying1",))


def test_ddes_convention_prints_the_papers_metrics_beside_the_published_rows(tiny_mvsec_split1, tmp_path,
                                                                            capsys, load_tool):
    from eventstereo.sources.mvsec import FXB

    torch.manual_seed(0)
    model = tmp_path / "m.safetensors"
    save_model(model, build_stereo_model(filter_multiplier=1, max_disparity=8), sbt_settings=SBTSettings(),
               provenance={})
    base = ["--source", "mvsec", "--root", str(tiny_mvsec_split1), "--split", "1", "--subset", "test",
            "--model", str(model), "--windows", "2", "--json", "--no-rates"]
    results = {}
    for convention in ("exact", "ddes"):
        assert load_tool("eval_stereo").main(base + ["--gt-convention", convention]) == 0
        out = capsys.readouterr().out.splitlines()
        results[convention] = json.loads(out[-1])
        assert results[convention]["gt_convention"] == convention
        if convention == "ddes":
            rows = {line.split()[0]: line.split()[1:] for line in out if line[:1].isalpha()}
            assert rows["SpikeDHS-Stereo+HNS"] == ["14.6", "5.9", "0.53", "92.4"]
            assert rows["DDES"] == ["16.7", "6.8", "0.59", "89.4"]
            assert len(rows["this"]) == 5  # "this model": "model" + the four metrics
            assert any(line.startswith("note: the published rows") for line in out)  # 2 windows only
    ddes, exact = results["ddes"], results["exact"]
    assert ddes["published"]["DDES"]["one_pa"] == 89.4 and "published" not in exact
    for key in ("mde_cm", "median_depth_err_cm", "mean_disp_err", "one_pa"):
        assert math.isfinite(ddes[key])
    # constant 2 m depth: exact GT is fxB / 2, DDES's is round(7 fxB / 2) / 7 = 10 px; the untrained
    # model predicts below both everywhere, so its mean error moves by exactly the difference
    assert ddes["mean_disp_err"] - exact["mean_disp_err"] == pytest.approx(10.0 - FXB["indoor_flying"] / 2,
                                                                           abs=1e-4)


def test_ddes_convention_needs_the_mvsec_source(capsys, load_tool):
    assert load_tool("eval_stereo").main(["--gt-convention", "ddes"]) == 2
    err = capsys.readouterr().err
    assert "error: --gt-convention does not apply to --source synthetic (only to mvsec)" in err
    assert "Traceback" not in err
