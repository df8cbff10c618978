"""Random option values through the parsers of `stream`, tools/train_stereo.py and tools/eval_stereo.py:
each either parses (runtime values then lie in their documented ranges) or is an argparse error, exit
status 2, never a traceback."""

from __future__ import annotations

import contextlib
import io
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstereo.runtime import stream_command

SETTINGS = settings(max_examples=80, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

NASTY = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["0", "-1", "-5", "1", "nan", "-nan", "inf", "-inf", "1e309", "0x10", "", " ", "1.5",
                     "cuda", "cuda:7", "tpu", "auto", "cpu", "1-3", "3-1", "a-b", "0-99999999", "{}", "[1",
                     "\u00e9", "--", "-", "1,2,,3"]),
    st.text(max_size=8),
)


def _options(parser):
    return sorted(a.option_strings[-1] for a in parser._actions
                  if a.option_strings and a.option_strings[-1] not in ("--help", "--version"))


RUNTIME_BOUNDS = {"threads": (0, 1024), "windows": (0, math.inf), "queue_size": (1, 1024),
                  "batch_size": (1, math.inf), "lr": (0, math.inf), "iterations": (0, math.inf),
                  "png_windows": (1, 64), "seq_len": (1, math.inf)}


def _check(parse, argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            args = parse(argv)
        except SystemExit as e:
            assert e.code == 2, (argv, err.getvalue())
            assert "Traceback" not in err.getvalue()
            return
    for key, (lo, hi) in RUNTIME_BOUNDS.items():
        value = getattr(args, key, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            assert lo <= value <= hi and math.isfinite(value), (argv, key, value)
    if getattr(args, "device", None) is not None:
        assert args.device in ("cpu", "auto") or args.device.startswith(("cuda", "mps"))


@pytest.fixture(scope="module")
def parsers(load_tool):
    train, evaluate = load_tool("train_stereo"), load_tool("eval_stereo")
    return {
        "stream": (stream_command.build_parser().parse_args, _options(stream_command.build_parser())),
        "train": (train.parse_args, _options(train.build_parser())),
        "eval": (evaluate.build_parser().parse_args, _options(evaluate.build_parser())),
    }


@SETTINGS
@given(data=st.data(), which=st.sampled_from(["stream", "train", "eval"]))
def test_random_option_values(parsers, data, which):
    parse, options = parsers[which]
    argv = []
    for _ in range(data.draw(st.integers(1, 3))):
        argv += [data.draw(st.sampled_from(options)), data.draw(NASTY)]
    _check(parse, argv)
