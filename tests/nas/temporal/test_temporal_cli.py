import argparse

import pytest
import torch
from temporal_toys import Deep, fit, no_memory_task

from eventstereo.errors import InputError
from nas.temporal.cli import add_arguments, attach_from_args, report


def _args(argv):
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(argv)


def test_no_flag_attaches_nothing_and_the_report_lists_every_layer():
    net = Deep(depth=2)
    assert attach_from_args(_args([]), net) is None
    entries = report(None, net)
    assert list(entries) == ["neurons"]
    assert list(entries["neurons"]) == ["layers.0.neuron", "layers.1.neuron"]
    assert entries["neurons"]["layers.0.neuron"]["kind"] == "lif"


def test_flags_attach_the_search_and_the_report_carries_what_it_decided(tmp_path):
    torch.manual_seed(0)
    net = Deep(depth=2)
    search = attach_from_args(_args(["--tps", "--hns", "--energy-lambda", "1", "--dgs", "layers.1.neuron",
                                     "--tps-period", "2", "--dgs-every", "2", "--dgs-batches", "1"]), net)
    assert search.config.tps and search.config.hns and search.config.dgs_layers == ("layers.1.neuron",)
    fit(net, search, no_memory_task, 4)
    entries = report(search, net, out_dir=tmp_path)
    assert set(entries["searched"]) == set(entries["neurons"]) == {"layers.0.neuron", "layers.1.neuron"}
    assert all(spec["kind"] in ("lif", "alif") for spec in entries["neurons"].values())  # lambda 1
    assert (tmp_path / "temporal_history.json").is_file()


def test_bad_flag_values_are_one_line_errors():
    with pytest.raises(InputError, match="needs --hns"):
        attach_from_args(_args(["--energy-lambda", "0.5"]), Deep(depth=1))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        attach_from_args(_args(["--hns", "--energy-lambda", "2"]), Deep(depth=1))
    with pytest.raises(InputError, match="no neuron layer"):
        attach_from_args(_args(["--dgs", "layers.7.neuron"]), Deep(depth=1))
