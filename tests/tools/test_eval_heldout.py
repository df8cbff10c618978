"""eval_stereo.py --synthetic-config: the same seeds through a held-out generator, reported beside the
default one, with the first window after a reset split from the warm windows."""

import json

import torch

from eventstereo.events.sbt import SBTSettings
from eventstereo.model import build_stereo_model
from eventstereo.model.io import save_model


def test_heldout_generator_is_reported_beside_the_default(tmp_path, capsys, load_tool):
    torch.manual_seed(0)
    model = tmp_path / "m.safetensors"
    save_model(model, build_stereo_model(filter_multiplier=1, max_disparity=8), sbt_settings=SBTSettings(),
               provenance={})
    world = tmp_path / "frames.json"
    world.write_text(json.dumps({"event_mode": "frames", "frame_hz": 100.0, "texture_families": ["text"]}))
    rc = load_tool("eval_stereo").main(["--model", str(model), "--width", "48", "--height", "36",
                                        "--seeds", "3", "--windows", "3", "--synthetic-config", str(world),
                                        "--json"])
    assert rc == 0
    out = capsys.readouterr().out.splitlines()
    assert "generator: default" in out and f"generator: {world}" in out
    assert sum(line.startswith("1PA first window after a reset") for line in out) == 2
    assert sum(line.startswith("1PA at GT pixels where the left camera fired") for line in out) == 2
    default = json.loads(out[-1])  # one object last: the default's row, the held-out one inside it
    heldout = default["generators"][str(world)]
    assert list(default["generators"]) == [str(world)]
    for r in (default, heldout):
        assert r["gt_windows"] == 3 and r["first_windows"] == 1 and r["later_windows"] == 2
        assert 0 < r["gt_pixels_with_events_pct"] < 100
    assert default["one_pa"] != heldout["one_pa"]  # a different stream, not the default one again


def test_reset_split_and_bad_config(tmp_path, capsys, load_tool):
    tool = load_tool("eval_stereo")
    split = tool.reset_split([(True, 50.0), (False, 90.0), (False, 80.0), (True, 70.0)])
    assert split == {"one_pa_first_window": 60.0, "first_windows": 2, "one_pa_later_windows": 85.0,
                     "later_windows": 2}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"event_mode": "video"}))
    rc = tool.main(["--width", "48", "--height", "36", "--windows", "1", "--synthetic-config", str(bad)])
    assert rc == 2
    assert "bad.json" in capsys.readouterr().err


def test_event_pixel_split_pools_pixels_with_and_without_left_events(load_tool):
    import numpy as np

    split = load_tool("eval_stereo").EventPixelSplit()
    gt = np.full((2, 3), 5.0, np.float32)
    gt[1, 2] = np.inf  # unknown: counted nowhere
    disparity = np.array([[5.0, 9.0, 5.5], [5.0, 5.0, 0.0]], np.float32)
    events = np.zeros(3, dtype=[("x", "<u2"), ("y", "<u2")])
    events["x"], events["y"] = [0, 1, 1], [0, 0, 0]  # pixel (0, 1) twice; an event on unknown GT is ignored
    split.update(disparity, gt, events)
    # with events: (0,0) right, (0,1) wrong; elsewhere: (0,2), (1,0), (1,1) right
    split.update(disparity, gt, events[:0])  # a window without events: all five known pixels elsewhere
    s = split.summary()
    assert s["gt_pixels_with_events_pct"] == 20.0  # 2 of 10 known pixels over the two windows
    assert s["one_pa_events"] == 50.0
    assert abs(s["one_pa_elsewhere"] - 100.0 * 7 / 8) < 1e-9
