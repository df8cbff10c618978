"""argparse types: bad values are one-line argparse errors; good ones pass through unchanged."""

import argparse
from unittest import mock

import pytest

from eventstereo import argtypes


def _parser(kind):
    p = argparse.ArgumentParser(prog="t", exit_on_error=False)
    p.add_argument("--v", type=kind)
    return p


@pytest.mark.parametrize("text", ["-1", "x", "1.5", "", "nan"])
def test_non_negative_int_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError):
        argtypes.non_negative_int(text)


def test_int_in_range_bounds():
    parse = argtypes.int_in_range(1, 3)
    assert [parse("1"), parse("3")] == [1, 3]
    for bad in ("0", "4"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"in \[1, 3\]"):
            parse(bad)


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "0", "-10", "abc"])
def test_positive_float_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError, match="finite"):
        argtypes.positive_float(text)


def test_floats_accept():
    assert argtypes.positive_float("2.5") == 2.5
    assert argtypes.non_negative_float("0") == 0.0
    assert argtypes.float_in_range(0, 1)("1") == 1.0


def test_device_rejects_unknown_and_missing_cuda(capsys):
    with pytest.raises(argparse.ArgumentTypeError, match="cpu, cuda"):
        argtypes.device("tpu")
    with mock.patch("torch.cuda.is_available", return_value=False), \
            pytest.raises(argparse.ArgumentTypeError, match="no usable CUDA"):
        argtypes.device("cuda")
    with mock.patch("torch.cuda.is_available", return_value=True), \
            mock.patch("torch.cuda.device_count", return_value=1), \
            pytest.raises(argparse.ArgumentTypeError, match="1 CUDA device"):
        argtypes.device("cuda:3")
    assert argtypes.device("CPU") == "cpu"
    assert argtypes.device("auto") == "auto"


def test_argparse_reports_option_name(capsys):
    p = argparse.ArgumentParser(prog="t")
    p.add_argument("--threads", type=argtypes.non_negative_int)
    with pytest.raises(SystemExit) as e:
        p.parse_args(["--threads", "-1"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --threads: must be an integer >= 0, got '-1'" in err
