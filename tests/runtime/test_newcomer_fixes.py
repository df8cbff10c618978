"""Small things a newcomer met: profiler noise, silent progress with --json, the synthetic-only model."""

import os
import subprocess
import sys
from pathlib import Path

from eventstereo.runtime import stream_command

ROOT = Path(__file__).resolve().parents[2]


def test_bench_lif_prints_no_profiler_lines():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("KINETO_LOG_LEVEL", None)
    out = subprocess.run([sys.executable, "-m", "eventstereo.cli", "bench", "lif", "--T", "2", "--batch", "1",
                          "--channels", "2", "--size", "4", "--repeats", "1", "--warmup", "0", "--no-stack",
                          "--threads", "1"], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "speedup" in out.stdout
    assert "USDT" not in out.stderr + out.stdout


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
