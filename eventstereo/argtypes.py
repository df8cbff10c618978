"""Reusable argparse types: an option's value is checked where the user typed it.

Each factory returns a callable for ``add_argument(type=...)``. A bad value raises
``argparse.ArgumentTypeError``, which argparse turns into one line naming the option
(``argument --threads: must be an integer >= 0, got '-1'``) and exit status 2; no traceback, and
nothing downstream (numpy, torch) ever sees a value it would choke on.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

_DEVICE_RE = re.compile(r"^(cpu|auto|cuda(:\d+)?|mps)$")


def _bounds_text(lo: float | None, hi: float | None, lo_open: bool = False) -> str:
    if lo is not None and hi is not None:
        return f"in [{lo}, {hi}]" if not lo_open else f"in ({lo}, {hi}]"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo}"
    if hi is not None:
        return f"<= {hi}"
    return "any value"


def int_in_range(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An integer in [lo, hi] (either bound may be None: unbounded on that side)."""

    def parse(text: str) -> int:
        what = f"must be an integer {_bounds_text(lo, hi)}, got {text!r}"
        try:
            value = int(text, 10)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(what) from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(what)
        return value

    parse.__name__ = "int"
    return parse


def non_negative_int(text: str) -> int:
    return int_in_range(0)(text)


def positive_int(text: str) -> int:
    return int_in_range(1)(text)


def float_in_range(lo: float | None = None, hi: float | None = None, *,
                   lo_open: bool = False) -> Callable[[str], float]:
    """A FINITE float in [lo, hi] (or (lo, hi] with ``lo_open``); NaN and inf are always rejected."""

    def parse(text: str) -> float:
        what = f"must be a finite number {_bounds_text(lo, hi, lo_open)}"
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{what}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{what}, got {text!r}")
        if lo is not None and (value <= lo if lo_open else value < lo):
            raise argparse.ArgumentTypeError(f"{what}, got {text!r}")
        if hi is not None and value > hi:
            raise argparse.ArgumentTypeError(f"{what}, got {text!r}")
        return value

    parse.__name__ = "float"
    return parse


def positive_float(text: str) -> float:
    """A finite float > 0."""
    return float_in_range(0.0, lo_open=True)(text)


def non_negative_float(text: str) -> float:
    """A finite float >= 0."""
    return float_in_range(0.0)(text)


def device(text: str) -> str:
    """cpu, auto, cuda, cuda:N or mps, and only one this machine has (``cuda`` needs a CUDA build and GPU).

    ``auto`` is always accepted (it falls back to the CPU). Torch is imported only when a GPU is named.
    """
    value = text.strip().lower()
    if not _DEVICE_RE.match(value):
        raise argparse.ArgumentTypeError(f"must be cpu, cuda, cuda:N, mps or auto, got {text!r}")
    if value.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text!r} was asked for, but this machine has no usable CUDA "
                                             f"device (torch {torch.__version__}); use --device cpu or auto")
        if ":" in value:
            index = int(value.split(":", 1)[1])
            count = torch.cuda.device_count()
            if index >= count:
                raise argparse.ArgumentTypeError(f"{text!r}: this machine has {count} CUDA device(s) "
                                                 f"(cuda:0 to cuda:{count - 1})")
    elif value == "mps":
        import torch

        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise argparse.ArgumentTypeError("'mps' was asked for, but this machine has no MPS device; "
                                             "use --device cpu or auto")
    return value


device.__name__ = "device"


def seed_spec(text: str) -> str:
    """A seed list such as ``0-63`` or ``1,5,9`` (at most 10,000 seeds), checked here and kept as text."""
    from eventstereo.training.stereo import parse_seeds

    try:
        parse_seeds(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


seed_spec.__name__ = "seeds"


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """``--help`` shows each option's default, except where there is nothing to show (None, a flag's
    False) or the help already mentions it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "%(default)" in text or default is None or default is False or default == argparse.SUPPRESS \
                or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are ONE line (``prog: error: ... (see prog --help)``) and exit
    status 2, instead of the whole usage block before the line that matters."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
