import json

from eventstereo.bench import sbt
from eventstereo.cli import main


def test_bench_sbt_json_last_line(capsys):
    assert main(["bench", "sbt", "--events", "20000", "--repeat", "1", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["outputs_equal"] is True
    for key in ("numba_mev_s", "tonic_mev_s", "ratio_vs_tonic", "bincount_mev_s", "floor_mev_s_cpu",
                "of_floor"):
        assert res[key] > 0


def test_stream_layout_matches_tonic_binning():
    ev = sbt.make_stream(1000, window_us=50_000)
    assert ev["t"][0] == 0 and ev["t"][-1] == 50_000


def test_unknown_benchmark(capsys):
    assert main(["bench", "nope"]) == 2
    assert "available" in capsys.readouterr().err


def test_floor_pass_scatters_signed_events_before_the_end():
    import numpy as np

    ev = sbt.make_stream(500, sensor=(7, 5), window_us=1000)
    plane = np.zeros((5, 7), np.float32)
    sbt.sbt_floor(ev, 1000, plane)
    want = np.zeros((5, 7), np.float32)
    for e in ev[ev["t"] < 1000]:
        want[e["y"], e["x"]] += 1.0 if e["p"] > 0 else -1.0
    np.testing.assert_array_equal(plane, want)
