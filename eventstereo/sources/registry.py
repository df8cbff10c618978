"""Open any source from command-line arguments, so `stream`, the tools and the GUI share one path."""

from __future__ import annotations

import argparse

from eventstereo.sources.base import Source

SOURCE_KINDS = ("synthetic",)


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("source")
    g.add_argument("--source", choices=SOURCE_KINDS, default="synthetic", help="where events come from")
    g.add_argument("--seed", type=int, default=0, help="synthetic scene and motion seed")
    g.add_argument("--width", type=int, default=346, help="synthetic sensor width (px)")
    g.add_argument("--height", type=int, default=260, help="synthetic sensor height (px)")
    g.add_argument("--window-ms", type=float, default=50.0, help="window length (ms)")


def open_source(args: argparse.Namespace) -> Source:
    """Build the source that ``args`` (from add_source_arguments) describe."""
    if args.source == "synthetic":
        from eventstereo.sources.synthetic import SyntheticConfig, SyntheticStereoSource

        return SyntheticStereoSource(
            SyntheticConfig(width=args.width, height=args.height, window_us=int(args.window_ms * 1000)),
            seed=args.seed,
        )
    raise ValueError(f"unknown source {args.source!r}")
