"""Interpolate the weights of two model files of one architecture: ``out = (1 - w) * A + w * B``.

A fine-tune on new data often forgets some of what the starting model knew; the weight-space average
of the start and the fine-tune (WiSE-FT, Wortsman et al. 2022) usually keeps most of both. Both files
must hold the same genotype (cells, neurons) and SBT settings; floating-point tensors (weights and
BatchNorm statistics, as the training's weight average treats them) are interpolated, integer counters
come from B. The result is an ordinary model file whose provenance names both inputs and ``w``.

    python tools/blend_models.py eventstereo/model/weights/demo.safetensors \\
        runs/demo-general/demo.safetensors --weight 0.5 --out runs/blend-0.5.safetensors
"""

from __future__ import annotations

import argparse
import sys

from eventstereo import argtypes
from eventstereo.cli import run_at_edge
from eventstereo.errors import InputError
from eventstereo.model.io import load_model, save_model
from eventstereo.training.ema import lerp_state_


def build_parser() -> argparse.ArgumentParser:
    p = argtypes.OneLineErrorParser(prog="blend_models", description=__doc__,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="show the traceback of an error")
    p.add_argument("a", help="first model file (weight 1 - w)")
    p.add_argument("b", help="second model file (weight w)")
    p.add_argument("--weight", type=argtypes.float_in_range(0.0, 1.0), default=0.5, help="w, the share of B")
    p.add_argument("--out", required=True, help="model file to write")
    return p


def blend(a, b, weight: float):
    """A's model moved ``weight`` of the way to B's (floats interpolated, integer counters from B)."""
    if a.genotype.to_dict() != b.genotype.to_dict():
        raise InputError(f"{b.path}: its architecture (genotype) differs from {a.path}'s; only models of one "
                         "architecture can be blended")
    if a.sbt_settings != b.sbt_settings:
        raise InputError(f"{b.path}: SBT settings {b.sbt_settings} differ from {a.path}'s {a.sbt_settings}")
    lerp_state_(a.model, b.model, weight)
    return a.model


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def work() -> int:
        a, b = load_model(args.a), load_model(args.b)
        model = blend(a, b, args.weight)
        provenance = {"blend": {"a": str(args.a), "b": str(args.b), "weight": args.weight,
                                "a_provenance": a.provenance, "b_provenance": b.provenance}}
        print(save_model(args.out, model, sbt_settings=b.sbt_settings, provenance=provenance))
        return 0

    return run_at_edge(work, args.verbose, "blend_models")


if __name__ == "__main__":
    sys.exit(main())
