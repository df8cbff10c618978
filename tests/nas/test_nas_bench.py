"""`nas bench` measures what it says (each iteration kind with each neuron backend, memory apart) and
says that spikingjelly is missing rather than inventing its figures. No timing is asserted."""

import importlib.util

import pytest

from nas import bench

TINY = dict(size=8, timesteps=2, batch_size=2, channels=2, cells=3, nodes=2, repeats=1)


@pytest.mark.parametrize("kind", bench.KINDS)
def test_time_and_memory_measurements(kind):
    timed = bench._child({**TINY, "kind": kind, "mode": "time", "profile": kind == "search"})
    assert timed["fused"] > 0 and timed["eager"] > 0
    if kind == "search":
        assert 0 <= timed["neuron_share"] <= 100 and len(timed["profile"]) > 0
    mem = bench._child({**TINY, "kind": kind, "mode": "memory", "backend": "eager"})
    assert mem["peak_extra_mb"] >= 0


def test_report_names_the_comparison_it_cannot_make(monkeypatch):
    def fake(opts):
        if opts["mode"] == "memory":
            return {"peak_extra_mb": 10.0}
        return {"fused": 1.0, "eager": 2.0}

    monkeypatch.setattr(bench, "_run_child", fake)
    args = type("A", (), TINY)
    result, text = bench.run_bench(args)
    assert result["results"]["search"]["speedup_fused_vs_eager"] == 2.0
    assert result["results"]["retrain"]["memory_fused_vs_eager"] == 1.0
    if importlib.util.find_spec("spikingjelly") is None:
        assert "spikingjelly is NOT installed" in text and result["spikingjelly"] == "not installed"
