"""`nas bench` measures what it says (one iteration of each kind with each neuron backend) and says
that spikingjelly is missing rather than inventing its figures. No timing is asserted."""

import importlib.util

import pytest

from nas import bench


@pytest.mark.parametrize("kind", bench.KINDS)
@pytest.mark.parametrize("backend", bench.BACKENDS)
def test_one_measurement(kind, backend):
    r = bench._child(dict(kind=kind, backend=backend, size=8, timesteps=2, batch_size=2, channels=2, cells=3,
                          nodes=2, repeats=1))
    assert r["seconds"] > 0 and r["peak_extra_mb"] >= 0


def test_report_names_the_comparison_it_cannot_make(monkeypatch):
    def fake(opts):
        return {"seconds": 2.0 if opts["backend"] == "eager" else 1.0, "peak_extra_mb": 10.0}

    monkeypatch.setattr(bench, "_run_child", fake)
    args = type("A", (), dict(size=8, timesteps=2, batch_size=2, channels=2, cells=3, nodes=2, repeats=1))
    result, text = bench.run_bench(args)
    assert result["results"]["search"]["speedup_fused_vs_eager"] == 2.0
    if importlib.util.find_spec("spikingjelly") is None:
        assert "spikingjelly is NOT installed" in text and result["spikingjelly"] == "not installed"
