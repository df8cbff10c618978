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

from eventstereo.errors import EventStereoError
from eventstereo.events.sbt import MODES, SBTSettings
from eventstereo.sources.cache import write_sbt_cache
from eventstereo.sources.registry import add_source_arguments, open_source

log = logging.getLogger("prepare_mvsec")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="prepare_mvsec", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_source_arguments(p)
    p.set_defaults(source="mvsec")
    p.add_argument(
        "--out", required=True, help="cache file; a directory when --split is given without --subset"
    )
    p.add_argument("--bins", type=int, default=5, help="SBT time bins")
    p.add_argument("--mode", choices=MODES, default="sign", help="SBT bin values")
    p.add_argument("--max-windows", type=int, default=None, help="stop after this many windows per file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    settings = SBTSettings(window_us=int(round(args.window_ms * 1000)), n_bins=args.bins, mode=args.mode)
    jobs: list[tuple[argparse.Namespace, Path]] = []
    if args.source == "mvsec" and args.split is not None and args.subset is None:
        out_dir = Path(args.out)
        for subset in ("train", "val", "test"):
            a = copy.copy(args)
            a.subset = subset
            jobs.append((a, out_dir / f"split{args.split}_{subset}.h5"))
    else:
        jobs.append((args, Path(args.out)))
    try:
        for a, out in jobs:
            with open_source(a) as source:
                log.info("%s -> %s", source.describe(), out)
                write_sbt_cache(source, out, settings, max_windows=a.max_windows, progress=not a.quiet)
    except EventStereoError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
