"""Importing eventstereo sets OMP_WAIT_POLICY=PASSIVE before torch loads; a user's own value wins."""

import os
import subprocess
import sys

import pytest

PROBE = ("import sys, os, eventstereo; "
         "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)")


@pytest.mark.parametrize("user_value,expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_import_sets_passive_wait_unless_the_user_chose(user_value, expected):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if user_value is not None:
        env["OMP_WAIT_POLICY"] = user_value
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    value, torch_loaded = out.stdout.split()
    assert value == expected
    assert torch_loaded == "False"  # set before torch could have read it


def test_the_library_never_loads_the_gui_or_the_search():
    probe = ("import sys, eventstereo.cli, eventstereo.runtime.stream_command, eventstereo.sources.registry, "
             "eventstereo.bench.app; print(sorted(m for m in ('app', 'PySide6', 'pyqtgraph', 'nas') "
             "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
