import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from eventstereo.events.sbt import SBTSettings
from eventstereo.model import build_stereo_model
from eventstereo.model.io import load_model
from eventstereo.sources.cache import CachedWindow
from eventstereo.training import EncodedWindows, TrainConfig, WindowSequences, load_checkpoint, train
from eventstereo.training.ema import WeightAverage

ROOT = Path(__file__).resolve().parents[2]
H, W = 24, 36


def _store(n=8, seed=0):
    """Random sign frames; the right view is the left shifted by 3 px, so GT = 3 is learnable."""
    rng = np.random.default_rng(seed)
    wins = []
    for i in range(n):
        left = rng.choice(np.array([-1, 0, 0, 0, 1], np.int8), size=(5, H, W))
        right = np.zeros_like(left)
        right[..., :-3] = left[..., 3:]
        gt = np.full((H, W), 3.0, np.float32)
        wins.append(CachedWindow(left, right, gt, 50_000 * (i + 1), "s", False))
    return EncodedWindows(wins, sensor_size=(W, H), fxb=1.0, max_disparity=8,
                          sbt_settings=SBTSettings(n_bins=5))


def _model():
    torch.manual_seed(0)
    return build_stereo_model(filter_multiplier=1, max_disparity=8)


def _cfg(iterations):
    return TrainConfig(iterations=iterations, batch_size=2, lr=1e-2, lr_milestones=[2], checkpoint_every=2,
                       log_every=1, progress=False, tbptt=1)


def test_a_resumed_run_ends_where_an_unbroken_one_does(tmp_path):
    data = WindowSequences(_store(), 2, crop=(12, 24), seed=0)
    whole = _model()
    stats = train(whole, data, _cfg(3), tmp_path / "whole")
    assert stats["step"] == 3 and np.isfinite(stats["loss"])
    assert (tmp_path / "whole" / "tb").is_dir()

    broken = _model()
    train(broken, data, _cfg(1), tmp_path / "split")  # "killed" after step 1, in the middle of epoch 0
    assert load_checkpoint(tmp_path / "split" / "checkpoint.pt")["step"] == 1
    resumed = _model()
    train(resumed, data, _cfg(3), tmp_path / "split")  # finishes epoch 0, then one step of epoch 1
    assert load_checkpoint(tmp_path / "split" / "checkpoint.pt")["step"] == 3
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=f"{name} differs after resuming")
    # and training moved the weights at all
    fresh = _model().state_dict().values()
    assert any(not torch.equal(a, b) for a, b in zip(whole.state_dict().values(), fresh))


def test_a_whole_sequence_step_reduces_the_loss():
    from eventstereo.training import train_sequence

    model = _model().train()
    data = WindowSequences(_store(), 3, crop=(12, 24))
    batch = {k: v.unsqueeze(0) for k, v in data[0].items()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = train_sequence(model, model, batch, opt)
    for _ in range(6):
        last = train_sequence(model, model, batch, opt)
    assert last < first


@pytest.mark.timeout(120)
def test_train_stereo_under_torchrun_with_two_gloo_processes(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tools" / "train_stereo.py"), "--out", str(out), "--source", "synthetic",
           "--width", "48", "--height", "36", "--train-seeds", "0-1", "--windows-per-seed", "4",
           "--filter-multiplier", "1", "--max-disparity", "8", "--iterations", "3", "--batch-size", "1",
           "--seq-len", "2", "--crop", "24", "36", "--checkpoint-every", "2", "--log-every", "1",
           "--threads", "1", "--no-progress", "--ema-decay", "0.9"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["step"] == 3
    assert state["config"]["train"]["batch_size"] == 1
    assert state["extra"]["ema"]["updates"] == 3
    exported = load_model(out / "model.safetensors", fold_bn=False).model.state_dict()
    for name, value in state["extra"]["ema"]["weights"].items():  # rank 0 exported the average
        torch.testing.assert_close(exported[name], value, msg=name)


def test_a_resumed_run_follows_the_new_schedule(tmp_path):
    data = WindowSequences(_store(), 2, crop=(12, 24), seed=0)
    train(_model(), data, _cfg(1), tmp_path)
    cfg = TrainConfig(iterations=2, batch_size=2, lr=1e-2, lr_milestones=[1, 2], lr_gamma=0.1, progress=False,
                      log_every=1)
    stats = train(_model(), data, cfg, tmp_path)  # milestone 1 passed at resume, 2 during the step
    assert stats["step"] == 2
    assert stats["lr"] == pytest.approx(1e-4)


def test_the_weight_average_lerps_floats_and_copies_counters():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    avg = WeightAverage(model, decay=0.75)
    before = avg.module[0].weight.clone()
    with torch.no_grad():
        model[0].weight.add_(4.0)
    model[1].num_batches_tracked.fill_(7)
    avg.update(model)
    torch.testing.assert_close(avg.module[0].weight, before + 1.0)  # a quarter of the way
    assert int(avg.module[1].num_batches_tracked) == 7
    assert not avg.module[0].weight.requires_grad
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(model, decay=1.0)


def test_with_a_weight_average_the_run_exports_it_and_resumes_it(tmp_path):
    data = WindowSequences(_store(), 2, crop=(12, 24), seed=0)

    def cfg(iterations):
        c = _cfg(iterations)
        c.ema_decay = 0.5
        return c

    exported = {}
    whole = _model()
    train(whole, data, cfg(3), tmp_path / "whole", on_finish=lambda m: exported.update(m.state_dict()))
    raw = whole.state_dict()
    assert any(not torch.equal(exported[k], raw[k]) for k in raw)  # the average, not the last iterate

    train(_model(), data, cfg(1), tmp_path / "split")
    resumed = {}
    train(_model(), data, cfg(3), tmp_path / "split", on_finish=lambda m: resumed.update(m.state_dict()))
    for name, value in exported.items():
        torch.testing.assert_close(resumed[name], value, msg=f"averaged {name} differs after resuming")
    assert load_checkpoint(tmp_path / "split" / "checkpoint.pt")["extra"]["ema"]["updates"] == 3 * 2


@pytest.mark.parametrize("config", [p for p in sorted((ROOT / "tools" / "configs").glob("*.json"))
                                    if "genotype" not in p.name and not p.name.startswith("synthetic_")],
                         ids=lambda p: p.name)  # synthetic_*.json: generator settings, not training runs
def test_the_committed_training_configs_parse_and_build_their_model(config, load_tool):
    """The demo recipe's configs must keep matching train_stereo's options and the demo genotype."""
    import json

    tool = load_tool("train_stereo")
    args = tool.parse_args(["--config", str(config)])
    values = json.loads(config.read_text())
    assert args.iterations == values["iterations"]
    assert args.augment == values.get("augment", [])  # augmentation names pass the table's choices
    from eventstereo.model.genotype import load_genotype

    args.genotype = str(ROOT / args.genotype)
    model = tool.build_model(args, max_disparity=23)
    assert model.max_disparity == load_genotype(args.genotype).max_disparity
