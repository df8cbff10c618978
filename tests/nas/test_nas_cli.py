"""The `nas` command end to end on a CIFAR-layout folder made here: search -> decode -> retrain -> eval
-> energy, each --json object the last stdout line with the keys the issue lists; missing data and
bad options give one-line errors."""

import json

import pytest
from test_nas_data import make_cifar10

from nas.cli import build_parser, main


def _json(capsys, argv):
    assert main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1]), out


def test_search_decode_retrain_eval_energy(tmp_path, capsys):
    root = make_cifar10(tmp_path / "data")
    data = ["--dataset", "cifar10", "--root", str(root)]
    size = ["--channels", "2", "--cells", "3", "--nodes", "2", "--timesteps", "1", "--batch-size", "4"]
    s, _ = _json(capsys, ["search", *data, *size, "--epochs", "2", "--warmup-epochs", "1", "--out",
                          str(tmp_path / "s"), "--json", "--quiet", "--device", "auto"])
    assert s["epochs"] == 2 and s["genotype"].endswith("genotype.json") and len(s["cell"]) == 4
    d, lines = _json(capsys, ["decode", str(tmp_path / "s" / "checkpoint.pt"), "--json"])
    assert any("node 1:" in line for line in lines)
    assert [list(p) for p in d["genotype"]["net"]["cell"]] == s["cell"]
    r, _ = _json(capsys, ["retrain", *data, "--genotype", s["genotype"], "--epochs", "1", "--channels", "2",
                          "--batch-size", "8", "--out", str(tmp_path / "r"), "--json", "--quiet"])
    assert 0 <= r["test_accuracy"] <= 100 and r["model"].endswith(".safetensors") and r["energy_mj"] > 0
    assert set(r["neurons"]) >= {"stem.neuron", "cell2.node1"}
    e, _ = _json(capsys, ["eval", "--model", r["model"], *data, "--json"])
    assert set(e) >= {"accuracy", "firing_rate", "firing_rates", "energy_mj"}
    assert e["accuracy"] == r["test_accuracy"]
    n, lines = _json(capsys, ["energy", "--model", r["model"], "--json"])  # dataset from the model file
    assert set(n) >= {"adds", "macs", "energy_mj"} and n["macs"] > 0 and n["adds"] > 0
    assert any(line.startswith("total") for line in lines)
    assert n["energy_mj"] == pytest.approx(0.9e-9 * n["adds"] + 4.6e-9 * n["macs"])


def test_missing_data_and_bad_options(tmp_path, capsys):
    argv = ["search", "--dataset", "cifar10", "--root", str(tmp_path), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "cifar-10-batches-py" in err and err.count("\n") == 1
    with pytest.raises(SystemExit):
        build_parser().parse_args(["search", "--epochs", "0", "--out", "x"])
    assert "--epochs must be >= 1" in capsys.readouterr().err
    for verb in ("search", "decode", "retrain", "eval", "energy", "bench"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([verb, "--help"])
        assert "usage: nas " + verb in capsys.readouterr().out
