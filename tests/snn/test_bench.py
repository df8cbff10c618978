"""The benchmarks run end to end on tiny shapes and print the documented JSON keys (no timing checks)."""

import json

from eventstereo.bench import lif, probes
from eventstereo.cli import _bench_names


def test_lif_bench_json(capsys):
    assert lif.main(["--T", "2", "--batch", "1", "--channels", "2", "--size", "8", "--repeats", "1",
                     "--warmup", "0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for prefix in ("", "stack_"):
        for key in ("speedup_vs_eager", "memory_ratio_vs_eager", "fused_ms", "eager_ms", "fused_peak_mb",
                    "eager_peak_mb"):
            assert out[prefix + key] > 0, prefix + key
    assert out["shape"] == [2, 1, 2, 8, 8] and isinstance(out["spikingjelly"], bool)
    # the fused node keeps less for backward than the eager loop even at this size
    assert out["fused_peak_mb"] < out["eager_peak_mb"]


def test_probe_bench_json(capsys):
    assert probes.main(["--height", "8", "--width", "8", "--channels", "2", "--layers", "2", "--windows", "4",
                        "--repeats", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["layers"] == 2 and out["window_ms"] > 0 and "overhead" in out and out["hook_ms_per_window"] > 0
    assert set(out["rates"]) == {"2", "5"}


def test_benches_are_discovered():
    assert {"lif", "probes"} <= set(_bench_names())
