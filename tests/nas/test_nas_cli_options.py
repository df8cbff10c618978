"""Issue 14 item 4 for `nas`: every option is checked where the user typed it. A bad value is ONE line on
stderr naming the option (exit 2, no traceback, nothing allocated); a failure inside a verb is one line
too, with the traceback only under -v; a valid tiny command still runs."""

import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.cli import main

_OUT = ["--out", "unused"]
BAD = [  # (verb argv, option, bad value)
    *[(["search", *_OUT], o, v) for o in ("--channels", "--cells", "--nodes", "--timesteps", "--batch-size",
                                          "--image-size", "--limit") for v in ("0", "-3", "x", "1.5")],
    (["search", *_OUT], "--cells", "1"),  # both reductions in one cell: refused here, not after loading
    (["search", *_OUT], "--channels", "100000000"),  # refused before any allocation
    (["search", *_OUT], "--batch-size", "10000000"),
    (["search", *_OUT], "--warmup-epochs", "-1"),
    (["search", *_OUT], "--stem-multiplier", "0"),
    (["search", *_OUT], "--seed", "-1"),
    *[(["search", *_OUT], o, v) for o in ("--lr", "--arch-lr") for v in ("nan", "inf", "-0.1", "0", "x")],
    (["search", *_OUT], "--device", "tpu"),
    (["search", *_OUT], "--epochs", "0"),
    (["retrain", *_OUT, "--genotype", "g.json"], "--seed", "-1"),
    (["retrain", *_OUT, "--genotype", "g.json"], "--lr", "nan"),
    (["retrain", *_OUT, "--genotype", "g.json"], "--tps-period", "0"),
    (["retrain", *_OUT, "--genotype", "g.json"], "--dgs-batches", "-2"),
    (["retrain", *_OUT, "--genotype", "g.json"], "--energy-lambda", "nan"),
    (["eval", "--model", "m.safetensors"], "--timesteps", "0"),
    (["energy", "--model", "m.safetensors"], "--timesteps", "-1"),
    (["energy", "--model", "m.safetensors"], "--samples", "0"),
    *[(["bench"], o, "0") for o in ("--size", "--timesteps", "--batch-size", "--channels", "--cells",
                                    "--nodes", "--repeats")],
    (["bench"], "--channels", "99999999"),
    (["bench"], "--device", "gpu0"),
]
if not torch.cuda.is_available():
    BAD.append((["search", *_OUT], "--device", "cuda"))


def _one_line_usage_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert err.count("\n") == 1 and err.startswith(("nas", "error")), err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(("argv", "option", "value"), BAD, ids=[f"{a[0]} {o} {v}" for a, o, v in BAD])
def test_a_bad_value_is_one_line_naming_the_option(capsys, argv, option, value):
    err = _one_line_usage_error(capsys, [*argv, f"{option}={value}"])
    assert option in err and "--help" in err


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(st.integers(max_value=0), st.integers(min_value=1025), st.floats(allow_nan=True),
                       st.text(max_size=6)))
def test_random_bad_channel_counts_never_escape_the_parser(capsys, value):  # capsys: read out per call
    text = str(value)
    try:
        if 1 <= int(text) <= 1024:
            return  # a valid count (a float or text spelling one) is no counterexample
    except ValueError:
        pass
    _one_line_usage_error(capsys, ["bench", f"--channels={text}"])


def test_an_unknown_verb_or_option_is_one_line(capsys):
    _one_line_usage_error(capsys, ["serach"])
    _one_line_usage_error(capsys, ["bench", "--bogus"])


def test_a_failure_inside_a_verb_is_one_line_and_v_shows_the_traceback(tmp_path, capsys):
    argv = ["decode", str(tmp_path / "missing.json")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error") and "Traceback" not in err
    assert main(["-v", *argv]) == 2
    assert "Traceback" in capsys.readouterr().err
    assert main([*argv, "-v"]) == 2  # -v after the verb too
    assert "Traceback" in capsys.readouterr().err


def test_a_valid_tiny_command_still_runs(tmp_path, capsys):
    argv = ["search", "--dataset", "digits", "--limit", "16", "--channels", "2", "--cells", "2",
            "--nodes", "1", "--timesteps", "1", "--batch-size", "8", "--epochs", "1", "--warmup-epochs", "0",
            "--lr", "0.01",
            "--seed", "3", "--device", "cpu", "--out", str(tmp_path / "s"), "--json", "--quiet"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["epochs"] == 1 and result["device"] == "cpu"
