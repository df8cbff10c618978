"""Encode synthetic scenes of a chosen generator configuration into SBT cache files, one per seed.

train_stereo.py caches registry sources, whose synthetic source is always the default generator; this
builds the varied world's training data (tools/configs/synthetic/synthetic_varied.json) the same way, so
train_stereo.py can mix them with ``--cache``. Existing files are kept (rerunning resumes).

    python tools/cache_synthetic.py --config tools/configs/synthetic/synthetic_varied.json \\
        --seeds 2000-2063 --windows 32 --out runs/varied-cache
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from eventstereo import argtypes
from eventstereo.cli import run_at_edge
from eventstereo.events.lookback import LookbackSettings
from eventstereo.events.sbt import MODES, SBTSettings
from eventstereo.sources.cache import write_sbt_cache
from eventstereo.sources.synthetic import SyntheticConfig, SyntheticStereoSource, load_config_file
from eventstereo.training.stereo import parse_seeds

log = logging.getLogger("cache_synthetic")


def build_parser() -> argparse.ArgumentParser:
    p = argtypes.OneLineErrorParser(prog="cache_synthetic", description=__doc__,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="show the traceback of an error")
    p.add_argument("--config", required=True, help="JSON file of SyntheticConfig settings")
    p.add_argument("--seeds", type=argtypes.seed_spec, required=True, help="scene seeds, e.g. 2000-2095")
    p.add_argument("--windows", type=argtypes.positive_int, default=32, help="windows per seed")
    p.add_argument("--out", required=True, help="folder for the cache files (<config stem>-seedN.h5)")
    p.add_argument("--bins", type=argtypes.int_in_range(1, 64), default=5)
    p.add_argument("--sbt-mode", choices=MODES, default="sign")
    p.add_argument("--min-density", type=argtypes.non_negative_float, default=0.0,
                   help="look-back frames as `stream --min-density` makes them (eventstereo.events.lookback)")
    p.add_argument("--max-lookback", type=argtypes.int_in_range(1, 1000), default=10,
                   help="most windows one frame may span with --min-density")
    p.add_argument("--window-ms", type=argtypes.float_in_range(0.0, 10_000.0, lo_open=True), default=50.0)
    return p


def main(argv: list[str] | None = None) -> int:
    """Write the caches; a user's mistake (a bad config file, a bad value) is one line and status 2."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def work() -> int:
        window_us = int(round(args.window_ms * 1000))
        config = SyntheticConfig.from_dict({**load_config_file(args.config), "window_us": window_us})
        settings = SBTSettings(window_us=window_us, n_bins=args.bins, mode=args.sbt_mode)
        for seed in parse_seeds(args.seeds):
            path = Path(args.out) / f"{Path(args.config).stem}-seed{seed}.h5"
            if not path.exists():
                write_sbt_cache(SyntheticStereoSource(config, seed=seed), path, settings,
                                max_windows=args.windows, progress=False,
                                lookback=LookbackSettings(args.min_density, args.max_lookback))
            print(path)
        return 0

    return run_at_edge(work, args.verbose, "cache_synthetic",
                       interrupted="interrupted (rerun the same command to resume)")


if __name__ == "__main__":
    sys.exit(main())
