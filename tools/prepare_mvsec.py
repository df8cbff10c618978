"""Pre-encode MVSEC (or any source) windows into SBT cache files for fast training.

Examples::

    # the three subsets of split 1 into DIR/split1_{train,val,test}.h5
    python tools/prepare_mvsec.py --root MVSEC --split 1 --out DIR
    # one subset, or one sequence, into one file
    python tools/prepare_mvsec.py --root MVSEC --split 1 --subset train --out split1_train.h5
    python tools/prepare_mvsec.py --root MVSEC --sequence indoor_flying1 --out flying1.h5
    # GT and window edges as the published tables were scored (1/7 px steps; README "MVSEC ground truth")
    python tools/prepare_mvsec.py --root MVSEC --split 1 --gt-convention ddes --out DIR
    # any other source the registry knows
    python tools/prepare_mvsec.py --source synthetic --seed 3 --max-windows 200 --out synth3.h5

The training tool reads these with ``--cache FILE``.
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
from pathlib import Path

from eventstereo import argtypes
from eventstereo.cli import run_at_edge
from eventstereo.errors import InputError
from eventstereo.events.sbt import MODES, SBTSettings
from eventstereo.sources.cache import write_sbt_cache
from eventstereo.sources.registry import add_source_arguments, config_from_args, open_source

log = logging.getLogger("prepare_mvsec")

MAX_BINS = 64
"""Most SBT time bins accepted (a cache frame holds one channel per bin for every pixel)."""


def build_parser() -> argparse.ArgumentParser:
    p = argtypes.OneLineErrorParser(
        prog="prepare_mvsec", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-v", "--verbose", action="store_true", help="show the traceback of an error")
    add_source_arguments(p)
    p.set_defaults(source="mvsec")
    p.add_argument(
        "--out", required=True, help="cache file; a directory when --split is given without --subset"
    )
    p.add_argument("--bins", type=argtypes.int_in_range(1, MAX_BINS), default=5,
                   help=f"SBT time bins (1-{MAX_BINS})")
    p.add_argument("--mode", choices=MODES, default="sign", help="SBT bin values")
    p.add_argument("--max-windows", type=argtypes.positive_int, default=None,
                   help="stop after this many windows per file (needed on an endless source)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def jobs_of(args: argparse.Namespace) -> list[tuple[argparse.Namespace, Path]]:
    """(source arguments, cache file) per file to write: the three subsets of a split without --subset."""
    if args.source == "mvsec" and args.split is not None and args.subset is None:
        out_dir = Path(args.out)
        jobs = []
        for subset in ("train", "val", "test"):
            a = copy.copy(args)
            a.subset = subset
            jobs.append((a, out_dir / f"split{args.split}_{subset}.h5"))
        return jobs
    return [(args, Path(args.out))]


def main(argv: list[str] | None = None) -> int:
    """Write the caches; a user's mistake (bad option, unreadable data) is one line and status 2."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    def work() -> int:
        jobs = jobs_of(args)
        for a, _ in jobs:  # every option checked before the first file is written
            config_from_args(a)
        settings = SBTSettings(window_us=int(round(args.window_ms * 1000)), n_bins=args.bins, mode=args.mode)
        for a, out in jobs:
            with open_source(a) as source:
                try:
                    len(source)
                except TypeError:
                    if a.max_windows is None:
                        raise InputError(f"--source {a.source} is endless: give --max-windows N") from None
                log.info("%s -> %s", source.describe(), out)
                write_sbt_cache(source, out, settings, max_windows=a.max_windows, progress=not a.quiet)
        return 0

    return run_at_edge(work, args.verbose, "prepare_mvsec",
                       interrupted="interrupted")


if __name__ == "__main__":
    sys.exit(main())
