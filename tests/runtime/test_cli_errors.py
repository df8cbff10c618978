"""Nothing a user types reaches them as a traceback: one line `error: ...`, exit 2 (-v adds the trace)."""

import pytest

from eventstereo import cli
from eventstereo.errors import InputError
from eventstereo.runtime import stream_command


@pytest.mark.parametrize("argv, option", [
    (["--device", "tpu"], "--device"), (["--threads", "-1"], "--threads"), (["--windows", "-5"], "--windows"),
    (["--queue-size", "0"], "--queue-size"), (["--windows", "x"], "--windows"),
])
def test_stream_runtime_options_fail_in_one_line(argv, option, capsys):
    with pytest.raises(SystemExit) as e:
        stream_command.build_parser().parse_args(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"argument {option}:" in err


def test_device_cuda_without_cuda_is_an_option_error(monkeypatch, capsys):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(SystemExit):
        stream_command.build_parser().parse_args(["--device", "cuda"])
    assert "no usable CUDA device" in capsys.readouterr().err


def test_windows_zero_on_an_endless_source_says_so(caplog):
    class Endless:
        name = "synthetic"

        def __len__(self):
            raise TypeError("endless")

    assert stream_command.window_limit(0, Endless()) == (None, None)
    assert "endless: --windows 0 runs until Ctrl-C" in caplog.text
    assert stream_command.window_limit(0, [1, 2, 3]) == (None, 3)
    assert stream_command.window_limit(5, [1, 2, 3]) == (5, 3)


def test_cli_bad_model_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    rc = cli.main(["stream", "--model", str(bad), "--windows", "1", "--width", "48", "--height", "36"])
    err = capsys.readouterr().err
    assert rc == 2 and "error: " in err and "bad.safetensors" in err and "Traceback" not in err


def test_cli_unexpected_errors_are_one_line_and_verbose_shows_the_traceback(monkeypatch, capsys):
    def boom(args, rest):
        raise TypeError("deep inside")

    monkeypatch.setattr(cli, "_cmd_info", boom)
    assert cli.main(["info"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == ("error: eventstereo failed unexpectedly: TypeError: deep inside "
                           "(rerun with -v for the traceback)")
    assert cli.main(["info", "-v"]) == 1
    assert "Traceback" in capsys.readouterr().err

    def user(args, rest):
        raise InputError("no such thing", source="x.h5")

    monkeypatch.setattr(cli, "_cmd_info", user)
    assert cli.main(["info"]) == 2
    assert capsys.readouterr().err.strip() == "error: x.h5: no such thing"


def test_info_rejects_unknown_options_and_bench_help_is_reachable(capsys):
    assert cli.main(["info", "--bogus"]) == 2
    assert "--bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(["bench", "sbt", "--help"])
    assert e.value.code == 0 and "usage" in capsys.readouterr().out
    assert cli.main(["bench", "--help"]) == 0
    assert "benchmarks: " in capsys.readouterr().out


def test_stream_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        stream_command.build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    assert "(default: 200)" in out and "(default: cpu)" in out and "(default: False)" not in out


@pytest.mark.parametrize("argv, option", [
    (["--lr", "nan"], "--lr"), (["--batch-size", "0"], "--batch-size"), (["--device", "tpu"], "--device"),
    (["--threads", "-1"], "--threads"), (["--ema-decay", "2"], "--ema-decay"),
    (["--model-options", "[1"], "--model-options"),
])
def test_train_stereo_options_fail_in_one_line(argv, option, capsys, load_tool):
    with pytest.raises(SystemExit) as e:
        load_tool("train_stereo").parse_args(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and option in err


def test_train_stereo_config_values_are_checked(tmp_path, capsys, load_tool):
    cfg = tmp_path / "c.json"
    cfg.write_text('{"lr": -1}')
    with pytest.raises(SystemExit):
        load_tool("train_stereo").parse_args(["--config", str(cfg)])
    err = capsys.readouterr().err
    assert "c.json" in err and "--lr" in err
    cfg.write_text("{not json")
    with pytest.raises(SystemExit):
        load_tool("train_stereo").parse_args(["--config", str(cfg)])
    assert "cannot read it as JSON" in capsys.readouterr().err


def test_train_stereo_corrupt_checkpoint_is_its_message_without_traceback(tmp_path, capsys, load_tool):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"not a checkpoint")
    rc = load_tool("train_stereo").main([
        "--out", str(out), "--width", "48", "--height", "36", "--windows-per-seed", "2",
        "--filter-multiplier", "1", "--max-disparity", "8", "--iterations", "1", "--batch-size", "1",
        "--seq-len", "2", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert "checkpoint.pt: cannot read checkpoint" in err


def test_eval_stereo_options_and_bad_model(tmp_path, capsys, load_tool):
    tool = load_tool("eval_stereo")
    for argv in (["--windows", "-1"], ["--seeds", "0-99999999"], ["--seeds", "a-b"], ["--png-windows", "0"]):
        with pytest.raises(SystemExit) as e:
            tool.build_parser().parse_args(argv)
        assert e.value.code == 2
    capsys.readouterr()
    bad = tmp_path / "m.pth"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 60)
    assert tool.main(["--model", str(bad), "--windows", "1"]) == 2
    err = capsys.readouterr().err
    assert "m.pth" in err and "Traceback" not in err
