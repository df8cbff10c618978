"""Open any source from command-line arguments, so `stream`, the tools and the GUI share one path.

Every kind takes the common ``--window-ms`` and ``--start-s``; the rest are per kind:

- synthetic: ``--seed --width --height``
- mvsec: ``--root DIR`` and ``--sequence NAME`` or ``--split {1,3} --subset {train,val,test}``
- dsec: ``--root DIR --sequence NAME[,NAME...]|all [--subset train|test]``
- aedat4: ``--file REC.aedat4 [--left-camera NAME --right-camera NAME] [--calib camchain.yaml] [--fxb F]``
- live: ``[--left-camera SERIAL --right-camera SERIAL] [--calib ...] [--fxb F] [--record OUT.aedat4]``
"""

from __future__ import annotations

import argparse
import math

from eventstereo.errors import InputError
from eventstereo.sources.base import Source

SOURCE_KINDS = ("synthetic", "mvsec", "dsec", "aedat4", "live")


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("source")
    g.add_argument("--source", choices=SOURCE_KINDS, default="synthetic", help="where events come from")
    g.add_argument("--window-ms", type=float, default=50.0, help="window length (ms)")
    g.add_argument(
        "--start-s",
        type=float,
        default=None,
        help="start this many seconds into the recording (seekable sources)",
    )
    g.add_argument("--seed", type=int, default=0, help="synthetic scene and motion seed")
    g.add_argument("--width", type=int, default=346, help="synthetic sensor width (px)")
    g.add_argument("--height", type=int, default=260, help="synthetic sensor height (px)")
    g.add_argument("--root", default=None, help="mvsec/dsec: dataset directory")
    g.add_argument(
        "--sequence",
        default=None,
        help="mvsec: sequence (e.g. indoor_flying1); dsec: sequence(s), comma-separated, or 'all'",
    )
    g.add_argument("--split", type=int, choices=(1, 3), default=None, help="mvsec: split 1 or 3")
    g.add_argument(
        "--subset",
        choices=("train", "val", "test"),
        default=None,
        help="mvsec: subset of the split; dsec: 'train' or 'test' folder (default train)",
    )
    g.add_argument("--file", default=None, help="aedat4: the stereo recording")
    g.add_argument("--left-camera", default=None, help="aedat4: left camera name; live: left serial number")
    g.add_argument(
        "--right-camera", default=None, help="aedat4: right camera name; live: right serial number"
    )
    g.add_argument("--calib", default=None, help="aedat4/live: kalibr camchain yaml to rectify with")
    g.add_argument("--fxb", type=float, default=None, help="aedat4/live: focal length x baseline (px*m)")
    g.add_argument("--record", default=None, help="live: also write what the cameras saw to this AEDAT4 file")


def _need(args: argparse.Namespace, *names: str) -> None:
    missing = [n for n in names if getattr(args, n, None) is None]
    if missing:
        flags = ", ".join("--" + n.replace("_", "-") for n in missing)
        raise InputError(f"--source {args.source} needs {flags}")


def open_source(args: argparse.Namespace) -> Source:
    """Build the source that ``args`` (from add_source_arguments) describe; InputError on bad arguments."""
    window_us = int(round(getattr(args, "window_ms", 50.0) * 1000))
    kind = args.source
    if getattr(args, "record", None) and kind != "live":
        raise InputError(f"--record writes a live run to AEDAT4; it does not apply to --source {kind}")
    if kind == "synthetic":
        from eventstereo.sources.synthetic import SyntheticConfig, SyntheticStereoSource

        source: Source = SyntheticStereoSource(
            SyntheticConfig(width=args.width, height=args.height, window_us=window_us),
            seed=args.seed,
        )
    elif kind == "mvsec":
        from eventstereo.sources.mvsec import MVSECSource

        _need(args, "root")
        if args.sequence is not None and args.split is not None:
            raise InputError("--source mvsec takes --sequence or --split, not both")
        if args.sequence is None and args.split is None:
            raise InputError(
                "--source mvsec needs --sequence NAME or --split {1,3} --subset {train,val,test}"
            )
        if args.split is not None:
            _need(args, "subset")
        source = MVSECSource(
            args.root, sequence=args.sequence, split=args.split, subset=args.subset, window_us=window_us
        )
    elif kind == "dsec":
        from eventstereo.sources.dsec import DSECSource

        _need(args, "root", "sequence")
        subset = args.subset or "train"
        if subset not in ("train", "test"):
            raise InputError("--source dsec takes --subset train or test")
        source = DSECSource(args.root, sequences=args.sequence, subset=subset, window_us=window_us)
    elif kind == "aedat4":
        from eventstereo.sources.dv import AedatStereoSource

        _need(args, "file")
        source = AedatStereoSource(
            args.file,
            left_camera=args.left_camera,
            right_camera=args.right_camera,
            window_us=window_us,
            calib=args.calib,
            fxb=args.fxb if args.fxb is not None else math.nan,
        )
    elif kind == "live":
        from eventstereo.sources.dv import LiveStereoSource

        source = LiveStereoSource(
            left_serial=args.left_camera,
            right_serial=args.right_camera,
            window_us=window_us,
            calib=args.calib,
            fxb=args.fxb if args.fxb is not None else math.nan,
            record_to=args.record,
        )
    else:
        raise InputError(f"unknown source {kind!r}; choose from {', '.join(SOURCE_KINDS)}")
    if getattr(args, "start_s", None):
        if not source.can_seek:
            source.close()
            raise InputError(f"--start-s: the {kind} source cannot seek")
        source.seek(int(round(args.start_s * 1e6)))
    return source
