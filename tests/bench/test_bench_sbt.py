import json

from eventstereo.bench import sbt
from eventstereo.cli import main


def test_bench_sbt_json_last_line(capsys):
    assert main(["bench", "sbt", "--events", "20000", "--repeat", "1", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["outputs_equal"] is True
    for key in ("numba_mev_s", "tonic_mev_s", "ratio_vs_tonic", "bincount_mev_s"):
        assert res[key] > 0


def test_stream_layout_matches_tonic_binning():
    ev = sbt.make_stream(1000, window_us=50_000)
    assert ev["t"][0] == 0 and ev["t"][-1] == 50_000


def test_unknown_benchmark(capsys):
    assert main(["bench", "nope"]) == 2
    assert "available" in capsys.readouterr().err
