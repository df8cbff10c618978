"""The `eventstereo` command: run, stream, app, bench, info.

Subcommands stay thin: each hands its arguments to the module that does the work, so the command line
reads as a table of contents of the package.

Errors: bad input (an EventStereoError, a file that cannot be read, a value torch or numpy rejects) is
one line ``error: ...`` and exit status 2; anything else is one line naming the exception and exit 1;
``-v`` (before or after the subcommand) adds the traceback. Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import pkgutil
import sys
import traceback
from collections.abc import Callable

import eventstereo  # sets OMP_WAIT_POLICY=PASSIVE before torch loads (see eventstereo/__init__.py)
from eventstereo.errors import EventStereoError


def _bench_names() -> list[str]:
    import eventstereo.bench as bench_pkg

    return sorted(m.name for m in pkgutil.iter_modules(bench_pkg.__path__) if not m.name.startswith("_"))


def _cmd_bench(args: argparse.Namespace, rest: list[str]) -> int:
    """Each benchmark is a module eventstereo.bench.<name> with main(argv) -> exit code; ``bench NAME
    --help`` is the benchmark's own help."""
    names = _bench_names()
    if args.name is None:
        print("usage: eventstereo bench NAME [options]   (eventstereo bench NAME --help for its options)\n"
              f"benchmarks: {', '.join(names)}")
        return 0 if any(a in ("-h", "--help") for a in rest) else 2
    if args.name not in names:
        print(f"unknown benchmark {args.name!r}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    return importlib.import_module(f"eventstereo.bench.{args.name}").main(rest)


def _cmd_stream(args: argparse.Namespace, rest: list[str]) -> int:
    from eventstereo.runtime import stream_command

    return stream_command.main(rest)


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or sys.platform in (
        "darwin",
        "win32",
    )


def _gui_available() -> bool:
    """The app package and its Qt libraries are installed (``eventstereo`` itself never imports them)."""
    return all(importlib.util.find_spec(m) is not None for m in ("app", "PySide6", "pyqtgraph"))


def _cmd_app(args: argparse.Namespace, rest: list[str]) -> int:
    if not _gui_available():
        print("error: the GUI needs the app package with PySide6 and pyqtgraph "
              "(pip install 'eventstereo[gui]')", file=sys.stderr)
        return 2
    return importlib.import_module("app.main").main(rest)


def _cmd_run(args: argparse.Namespace, rest: list[str]) -> int:
    """The main job: the GUI where a display and the app exist, else the terminal stream."""
    # seed 1000: a scene the bundled model never saw in training (it trained on seeds 0-159)
    if _has_display() and _gui_available():
        return importlib.import_module("app.main").main(rest or ["--seed", "1000"])
    print("no display (or no GUI installed): streaming the synthetic scene in the terminal", file=sys.stderr)
    from eventstereo.runtime import stream_command

    return stream_command.main(rest or ["--source", "synthetic", "--seed", "1000", "--windows", "200"])


def _cmd_info(args: argparse.Namespace, rest: list[str]) -> int:
    if rest:
        print(f"eventstereo info: error: unrecognized arguments: {' '.join(rest)}", file=sys.stderr)
        return 2
    import numba
    import numpy
    import torch

    print(f"eventstereo {eventstereo.__version__}")
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, numpy {numpy.__version__}, "
          f"numba {numba.__version__}")
    print(f"cuda available: {torch.cuda.is_available()}; threads: {torch.get_num_threads()}")
    print(f"benchmarks: {', '.join(_bench_names())}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eventstereo", description=eventstereo.__doc__)
    p.add_argument("--version", action="version", version=eventstereo.__version__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="the main job: GUI on the synthetic scene, or the terminal stream if headless",
                   add_help=False).set_defaults(fn=_cmd_run)
    sub.add_parser("stream", help="stream a source through the model (see `stream --help`)",
                   add_help=False).set_defaults(fn=_cmd_stream)
    sub.add_parser("app", help="the desktop GUI on a source (see `app --help`; headless: --frames N)",
                   add_help=False).set_defaults(fn=_cmd_app)
    b = sub.add_parser("bench", help="benchmarks (see `bench NAME --help`)", add_help=False)
    b.add_argument("name", nargs="?", help="benchmark name (`eventstereo info` lists them)")
    b.set_defaults(fn=_cmd_bench)
    sub.add_parser("info", help="versions and devices").set_defaults(fn=_cmd_info)
    return p


USER_ERRORS = (EventStereoError, OSError, ValueError, OverflowError, MemoryError)
"""What a user's input can cause (a missing or unreadable file, a value out of range): exit status 2."""


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if isinstance(e, EventStereoError) else f"{type(e).__name__}: {text}"


def report_error(e: BaseException, verbose: bool, prog: str = "eventstereo") -> int:
    """One line on stderr for an exception (the traceback first with ``verbose``); the exit status."""
    if verbose:
        traceback.print_exception(e)
    hint = "" if verbose else " (rerun with -v for the traceback)"
    if isinstance(e, USER_ERRORS):
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    print(f"error: {prog} failed unexpectedly: {_one_line(e)}{hint}", file=sys.stderr)
    return 1


def run_at_edge(fn: Callable[[], int], verbose: bool, prog: str = "eventstereo",
                interrupted: str = "interrupted") -> int:
    """``fn()`` as a command's exit status: Ctrl-C is ``interrupted`` on stderr and 130, any exception
    one line through :func:`report_error` (the traceback only with ``verbose``). Every command and
    tool ends here, so none shows a bare traceback."""
    try:
        return fn()
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the edge: nothing reaches the user as a bare traceback
        return report_error(e, verbose, prog)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, rest = build_parser().parse_known_args(argv)
    verbose = args.verbose or any(a in ("-v", "--verbose") for a in rest)
    rest = [a for a in rest if a not in ("-v", "--verbose")]
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(message)s")
    return run_at_edge(lambda: args.fn(args, rest), verbose)


if __name__ == "__main__":
    sys.exit(main())
