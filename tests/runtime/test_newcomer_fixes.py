"""Small things a newcomer met: profiler noise, silent progress with --json, the synthetic-only model."""

import os

from eventstereo.runtime import stream_command


def test_bench_lif_prints_no_profiler_lines(capfd):
    import torch

    from eventstereo.bench import lif

    assert lif.peak_bytes(lambda: torch.ones(64) * 2, torch.device("cpu")) >= 0  # a CPU profile
    with lif._without_profiler_chatter():
        os.write(2, b"USDT:2026 x.cpp:52] profiler_start\nanything else stays\n")
    err = capfd.readouterr().err
    assert "USDT" not in err and "anything else stays" in err


def test_bundled_model_warns_on_real_data_only(caplog):
    class Mvsec:
        name = "mvsec"

    class Synthetic:
        name = "synthetic"

    assert stream_command.warn_bundled_on_real_data(None, Mvsec())
    assert "trained on synthetic scenes only and never saw mvsec data" in caplog.text
    caplog.clear()
    assert not stream_command.warn_bundled_on_real_data(None, Synthetic())
    assert not stream_command.warn_bundled_on_real_data("m.safetensors", Mvsec())
    assert caplog.text == ""
