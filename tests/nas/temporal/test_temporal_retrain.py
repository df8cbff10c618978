"""`nas retrain` with the temporal flags on digits: the JSON reports every layer's decided neuron, the
model file carries them, and the flags' errors are one line."""

import json

import torch

from eventstereo.model.io import load_model
from eventstereo.snn.neurons import BaseNeuron, NeuronSpec
from nas.cli import main
from nas.temporal.digits_table import small_genotype


def test_retrain_with_every_flag_reports_and_exports_the_decided_neurons(tmp_path, capsys):
    genotype = tmp_path / "g.json"
    genotype.write_text(small_genotype().to_json())
    argv = ["retrain", "--dataset", "digits", "--limit", "128", "--genotype", str(genotype), "--epochs", "1",
            "--channels", "2", "--timesteps", "2", "--batch-size", "32", "--out", str(tmp_path / "r"),
            "--tps", "--tps-period", "1", "--hns", "--energy-lambda", "0.1", "--dgs", "stem",
            "--dgs-every", "2", "--dgs-batches", "1", "--search-iterations", "3", "--json", "--quiet"]
    torch.manual_seed(0)
    assert main(argv) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0 <= r["test_accuracy"] <= 100 and r["energy_mj"] > 0
    cells = {f"cell{i}.node{j}" for i in range(3) for j in range(3)}
    assert set(r["neurons"]) == {"stem.neuron", "aux.conv.neuron"} | cells
    assert set(r["temporal_search"]["searched"]) == set(r["neurons"])
    assert r["neurons"] == r["temporal_search"]["searched"]
    assert all(spec["kind"] in ("lif", "alif", "relu") for spec in r["neurons"].values())
    loaded = load_model(r["model"], task="classification")
    running = {n: m.spec for n, m in loaded.model.named_modules() if isinstance(m, BaseNeuron)}
    assert running == {k: NeuronSpec.from_dict(v) for k, v in r["neurons"].items()}
    history = json.loads((tmp_path / "r" / "temporal_history.json").read_text())
    assert [e["iteration"] for e in history["dgs"]] == [0, 2]  # decided at 3, before the next round


def test_retrain_refuses_energy_lambda_without_hns(tmp_path, capsys):
    genotype = tmp_path / "g.json"
    genotype.write_text(small_genotype().to_json())
    argv = ["retrain", "--dataset", "digits", "--limit", "64", "--genotype", str(genotype), "--epochs", "1",
            "--out", str(tmp_path / "r"), "--energy-lambda", "0.3"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "needs --hns" in err and err.count("\n") == 1
