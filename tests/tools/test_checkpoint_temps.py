"""A checkpoint write killed midway leaves a temporary file; the next save or load removes it."""

import os
import subprocess
import sys

import torch

from eventstereo.training.checkpoint import load_checkpoint, save_checkpoint


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_are_removed_on_the_next_save_and_load(tmp_path):
    target = tmp_path / "checkpoint.pt"
    dead = tmp_path / f".checkpoint.pt.{_dead_pid()}.abc123.tmp"
    legacy = tmp_path / ".checkpoint.pt.k2j4h5.tmp"  # the name an older version used: no pid
    alive = tmp_path / f".checkpoint.pt.{os.getpid()}.xyz.tmp"  # a write in progress: kept
    other = tmp_path / ".model.pt.1.x.tmp"  # another file's temporary: not ours to touch
    for p in (dead, legacy, alive, other):
        p.write_bytes(b"half a checkpoint")
    save_checkpoint(target, model=torch.nn.Linear(2, 2), step=3)
    assert not dead.exists() and not legacy.exists()
    assert alive.exists() and other.exists()
    leftover = tmp_path / f".checkpoint.pt.{_dead_pid()}.q.tmp"
    leftover.write_bytes(b"")
    assert load_checkpoint(target)["step"] == 3
    assert not leftover.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, alive.name, other.name])
