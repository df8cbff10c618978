import argparse
import json

import pytest
import torch

from eventstereo.errors import InputError
from eventstereo.model.io import load_model
from eventstereo.snn.neurons import BaseNeuron, NeuronSpec
from nas.temporal.cli import attach_from_args

TINY = ["--source", "synthetic", "--width", "48", "--height", "36", "--train-seeds", "0-1",
        "--windows-per-seed", "4", "--filter-multiplier", "1", "--max-disparity", "8", "--batch-size", "1",
        "--seq-len", "2", "--crop", "24", "36", "--log-every", "1", "--threads", "1", "--no-progress"]


def test_a_short_stereo_run_with_every_flag_exports_the_decided_neurons(tmp_path, load_tool):
    train_stereo = load_tool("train_stereo")
    torch.manual_seed(0)
    out = tmp_path / "run"
    rc = train_stereo.main([*TINY, "--out", str(out), "--iterations", "2", "--checkpoint-every", "2",
                            "--tps", "--tps-period", "1", "--hns", "--energy-lambda", "0.3",
                            "--dgs", "stem", "--dgs-every", "2", "--dgs-batches", "1",
                            "--ema-decay", "0.5"])  # the export is the weight average, decided too
    assert rc == 0
    loaded = load_model(out / "model.safetensors")
    decided = {k: NeuronSpec.from_dict(v)
               for k, v in loaded.provenance["temporal_search"]["searched"].items()}
    assert "feature.stem0.neuron" in decided and "matching.cell0.node0" in decided
    running = {n: m.spec for n, m in loaded.model.named_modules() if isinstance(m, BaseNeuron)}
    assert set(running) == set(decided)  # no mixture is left; every layer is a plain neuron
    assert running == decided
    # the genotype carries them: every decided spec that differs from the layer's default is an override
    overrides = loaded.genotype.neurons.overrides
    assert overrides and all(overrides[k] == decided[k] for k in overrides)
    assert {s.kind for s in decided.values()} <= {"lif", "alif", "relu"}
    history = json.loads((out / "temporal_history.json").read_text())
    assert [e["iteration"] for e in history["dgs"]] == [0, 2]
    assert {e["iteration"] for e in history["tps"]} == {0, 1, 2}
    assert (out / "tps_tau.png").is_file() and (out / "dgs_temperature.png").is_file()
    cost = loaded.model(torch.zeros(1, 1, 5, 24, 36), torch.zeros(1, 1, 5, 24, 36))
    assert torch.isfinite(cost).all()


def test_energy_lambda_without_hns_is_refused():
    args = argparse.Namespace(tps=False, hns=False, dgs="", energy_lambda=0.2)
    with pytest.raises(InputError, match="needs --hns"):
        attach_from_args(args, torch.nn.Module())


def _store(n=6, h=24, w=36):
    """Random sign frames; the right view is the left shifted by 3 px (GT 3)."""
    import numpy as np

    from eventstereo.events.sbt import SBTSettings
    from eventstereo.sources.cache import CachedWindow
    from eventstereo.training import EncodedWindows

    rng = np.random.default_rng(0)
    wins = []
    for i in range(n):
        left = rng.choice(np.array([-1, 0, 0, 0, 1], np.int8), size=(5, h, w))
        right = np.zeros_like(left)
        right[..., :-3] = left[..., 3:]
        wins.append(CachedWindow(left, right, np.full((h, w), 3.0, np.float32), 50_000 * (i + 1), "s", False))
    return EncodedWindows(wins, sensor_size=(w, h), fxb=1.0, max_disparity=8,
                          sbt_settings=SBTSettings(n_bins=5))


def test_a_resumed_search_ends_where_an_unbroken_one_does(tmp_path):
    from eventstereo.model import build_stereo_model
    from eventstereo.training import TrainConfig, WindowSequences, train
    from nas.temporal import DGSNeuron, attach

    data = WindowSequences(_store(), 2, crop=(12, 24), seed=0)

    def run(out, iterations):
        torch.manual_seed(0)
        model = build_stereo_model(filter_multiplier=1, max_disparity=8)
        search = attach(model, tps=True, dgs_layers=["feature.stem1.neuron"], tps_period=1, dgs_every=2,
                        dgs_batches=1, decide_at=2)  # the resumed run passes the decision, then trains on
        cfg = TrainConfig(iterations=iterations, batch_size=1, lr=1e-2, checkpoint_every=1, log_every=1,
                          progress=False, ema_decay=0.5)
        train(model, data, cfg, out, hooks=[search])
        return model, search

    whole, whole_search = run(tmp_path / "whole", 4)
    run(tmp_path / "split", 1)  # "killed" after one iteration (searching)
    run(tmp_path / "split", 3)  # and after three (decided at two)
    resumed, resumed_search = run(tmp_path / "split", 4)
    assert resumed_search.decided and not any(isinstance(m, DGSNeuron) for m in resumed.modules())
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=f"{name} differs after resuming")
    assert whole_search.history == resumed_search.history
    assert whole_search.specs() == resumed_search.specs()
