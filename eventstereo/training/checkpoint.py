"""Training checkpoints: written atomically, read without unpickling code.

A run killed mid-write must leave the previous checkpoint intact, so every write goes to a temporary
file in the same directory, is fsynced, and replaces the target with ``os.replace`` (atomic on POSIX
and Windows). Checkpoints hold only tensors, numbers, strings and containers of them, so they load with
``torch.load(weights_only=True)``.

A process killed during the write leaves its temporary file behind; it is named
``.checkpoint.pt.<pid>.<random>.tmp``, and the next save or load of that checkpoint deletes the temporary
files whose writer is no longer running.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from eventstereo.errors import InputError

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's process (or we cannot tell): leave its file alone
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files an interrupted write of ``path`` left behind (their writer is gone);
    returns what was removed."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid_text = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        if pid_text.isdigit() and _pid_alive(int(pid_text)):
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            continue
    if removed:
        log.info("removed %d temporary file(s) of an interrupted checkpoint write: %s", len(removed),
                 ", ".join(p.name for p in removed))
    return removed


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """torch.save ``obj`` to ``path`` so that readers see either the old file or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    step: int = 0,
    config: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Save everything needed to resume: weights, optimizer and scheduler state, the step, the config."""
    state = {
        "format": "eventstereo.train.v1",
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "step": int(step),
        "config": dict(config or {}),
        "extra": dict(extra or {}),
    }
    out = atomic_torch_save(state, path)
    log.debug("checkpoint saved at step %d: %s", step, out)
    return out


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by save_checkpoint; bad files raise InputError naming the file."""
    path = Path(path)
    remove_stale_temporaries(path)
    if not path.is_file():
        raise InputError("checkpoint not found", source=str(path))
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated, not a torch file, or holds code objects
        raise InputError(f"cannot read checkpoint ({type(e).__name__}: {e})", source=str(path)) from e
    if not isinstance(state, dict) or state.get("format") != "eventstereo.train.v1" or "model" not in state:
        raise InputError("not an eventstereo training checkpoint", source=str(path))
    return state


def restore_checkpoint(
    state: dict,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
) -> int:
    """Load a checkpoint's states into live objects (strictly); returns the step to continue from."""
    try:
        model.load_state_dict(state["model"], strict=True)
    except RuntimeError as e:
        raise InputError(f"checkpoint weights do not fit this model: {e}") from e
    if optimizer is not None and state.get("optimizer") is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    return int(state.get("step", 0))
