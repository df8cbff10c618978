"""Stereo search: the supernet's architecture parameters get gradients and move; decoding maps alphas
and betas to the genotype the deployed network builds, saves, loads (as `eventstereo stream --model`
does) and streams; tools/search_stereo.py resumed after a kill equals an unbroken run, and runs as two
gloo processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from eventstereo.events.sbt import SBTSettings
from eventstereo.model import build_stereo_model
from eventstereo.model.io import save_model
from eventstereo.model.ops import PRIMITIVES
from eventstereo.runtime.stream_command import load_model_arg
from nas.supernets.stereo import StereoSupernet, stereo_search_loss

TOOL = Path(__file__).resolve().parents[2] / "tools" / "search_stereo.py"
H = W = 24  # one level-3 cell of the trellis: 24 = 3 * 2**3


def _net():
    torch.manual_seed(0)
    return StereoSupernet(filter_multiplier=1, max_disparity=11, in_channels=2, matching_layers=3)


def _batch(t=1):
    g = torch.Generator().manual_seed(1)
    left = torch.randint(-1, 2, (1, t, 2, H, W), generator=g).float()
    right = torch.zeros_like(left)
    right[..., :-3] = left[..., 3:]
    return {"left": left, "right": right, "gt": torch.full((1, t, H, W), 3.0)}


def test_architecture_parameters_get_gradients_and_move():
    net = _net()
    arch = {id(p) for p in net.arch_parameters()}
    names = [n for n, p in net.named_parameters() if id(p) in arch]
    assert sorted(names) == ["feature.alphas", "feature.trellis.betas", "matching.alphas",
                             "matching.trellis.betas"]
    before = [p.detach().clone() for p in net.arch_parameters()]
    opt = torch.optim.Adam(net.arch_parameters(), lr=0.1)
    loss, scalars = stereo_search_loss(net, _batch(2))
    loss.backward()
    assert torch.isfinite(loss) and scalars["disparity_error_px"] >= 0
    for n, p in zip(names, net.arch_parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0, n
    opt.step()
    moved = [float((p.detach() - b).abs().max()) for p, b in zip(net.arch_parameters(), before)]
    assert min(moved) > 0.05


def test_decoding_follows_the_strongest_ops_and_paths_and_the_result_streams(tmp_path):
    net = _net()
    b5, b3 = PRIMITIVES.index("snn_b5"), PRIMITIVES.index("snn_b3")
    with torch.no_grad():
        net.feature.alphas.zero_()[:, b5] = 5.0   # every feature edge prefers snn_b5 ...
        net.matching.alphas.zero_()[:, b3] = 5.0  # ... every matching edge snn_b3
        net.matching.alphas[[0, 2, 5], b3] = 9.0  # node edges 0, 2 and 5 (from s0) are the strongest
        net.feature.trellis.betas.zero_()[0, 1, 0] = 5.0  # layer 0: down to level 1; layer 1: stay
        net.feature.trellis.betas[1, 1, 1] = 5.0
        net.matching.trellis.betas.zero_()[:, 0, 1] = 5.0  # matching stays at level 0
    g = net.decode("unit")
    assert g.feature.path == (1, 1) and g.matching.path == (0, 0, 0)
    assert {op for _, op in g.feature.cell} == {"snn_b5"} and {op for _, op in g.matching.cell} == {"snn_b3"}
    assert [e for e, _ in g.matching.cell][::2] == [0, 2, 5]  # strongest edge of each node listed first
    assert g == net.decode("unit") and net.current_genotype().name == "searched"
    model = build_stereo_model(g)
    path = save_model(tmp_path / "searched.safetensors", model, sbt_settings=SBTSettings(n_bins=2),
                      provenance={"tool": "test"})
    loaded = load_model_arg(str(path))  # what `eventstereo stream --model` loads
    assert loaded.genotype == g
    b = _batch()
    cost = loaded.model.step(b["left"][:, 0], b["right"][:, 0])
    assert cost.shape == (1, 12, H, W) and torch.isfinite(cost).all()


def test_search_tool_resumed_after_a_kill_equals_an_unbroken_run(tmp_path, load_tool):
    tool = load_tool("search_stereo")
    common = ["--width", "48", "--height", "24", "--train-seeds", "0", "--windows-per-seed", "4",
              "--seq-len", "1", "--crop", "0", "0", "--filter-multiplier", "1", "--max-disparity", "11",
              "--matching-layers", "2", "--bins", "2", "--epochs", "2", "--warmup-epochs", "1",
              "--checkpoint-every", "1", "--no-progress", "--arch-lr", "0.05"]
    assert tool.main([*common, "--out", str(tmp_path / "a")]) == 0
    assert tool.main([*common, "--out", str(tmp_path / "b"), "--stop-after-steps", "3"]) == 0
    assert tool.main([*common, "--out", str(tmp_path / "b")]) == 0
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 4
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert a["extra"]["history"] == b["extra"]["history"]
    ga = json.loads((tmp_path / "a" / "genotype.json").read_text())
    assert ga == json.loads((tmp_path / "b" / "genotype.json").read_text())
    first, last = a["extra"]["history"][0]["alphas"], a["extra"]["history"][-1]["alphas"]
    moved = max(float((torch.tensor(x) - torch.tensor(y)).abs().max()) for x, y in zip(first, last))
    assert moved > 1e-3  # epoch 1 is the warm-up; epoch 2 moves the architecture
    assert build_stereo_model(str(tmp_path / "a" / "genotype.json")).genotype.name == "searched_stereo"


def test_measure_times_an_iteration_and_reports_memory(capsys, load_tool):
    tool = load_tool("search_stereo")
    assert tool.main(["--measure", "1", "--crop", "24", "24", "--filter-multiplier", "1", "--max-disparity",
                      "11", "--matching-layers", "2", "--bins", "2", "--seq-len", "1"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["seconds_per_iteration"] > 0 and out["peak_memory_mb"] >= out["baseline_memory_mb"] > 0
    assert out["crop"] == [24, 24] and out["arch_parameters"] == sum(
        p.numel() for p in StereoSupernet(filter_multiplier=1, max_disparity=11, in_channels=2,
                                          matching_layers=2).arch_parameters())


def test_trellis_betas_are_normalised_over_the_transitions_leaving_each_node():
    net = _net()
    trellis = net.matching.trellis
    with torch.no_grad():
        trellis.betas.normal_(generator=torch.Generator().manual_seed(0))
    w, mask = trellis.beta_weights(), trellis.transition_mask()
    for layer in range(w.shape[0]):
        for src in range(w.shape[1]):
            leaving = [w[layer, s, t] for t, s in ((0, src + 1), (1, src), (2, src - 1))
                       if 0 <= s < w.shape[1] and mask[layer, s, t]]
            if leaving:
                torch.testing.assert_close(sum(leaving), torch.tensor(1.0))
    assert (w[~mask] == 0).all()


@pytest.mark.timeout(180)
def test_search_tool_under_torchrun_with_two_gloo_processes(tmp_path):
    """The same small search as two data-parallel processes: both ranks step together, rank 0 writes a
    checkpoint whose architecture moved and a genotype the deployed network builds."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(TOOL),
           "--width", "48", "--height", "24", "--train-seeds", "0-1", "--windows-per-seed", "4",
           "--seq-len", "1", "--crop", "0", "0", "--filter-multiplier", "1", "--max-disparity", "11",
           "--matching-layers", "2", "--bins", "2", "--epochs", "2", "--warmup-epochs", "1",
           "--checkpoint-every", "1", "--no-progress", "--arch-lr", "0.05", "--threads", "1",
           "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    history = state["extra"]["history"]
    assert state["step"] > 0 and len(history) >= 2
    first, last = history[0]["alphas"], history[-1]["alphas"]
    assert max(float((torch.tensor(x) - torch.tensor(y)).abs().max()) for x, y in zip(first, last)) > 1e-3
    assert build_stereo_model(str(out / "genotype.json")).genotype.name == "searched_stereo"
    result = json.loads(proc.stdout.strip().splitlines()[-1])  # rank 0's summary, printed once
    assert result["world_size"] == 2 and result["steps"] == state["step"]
