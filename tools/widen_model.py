"""Widen a trained stereo model to a larger filter multiplier without changing what it computes.

Training a wider network from scratch costs hours on a CPU; growing a trained one (Net2Net, Chen et al.
2016, in its zero-initialised form) starts the wider network at the trained one's accuracy. Every
channel count of SpikeDHS-Stereo is a multiple of the filter multiplier F (cells concatenate nodes of
``k * F`` channels, the cost volume concatenates the two views), so at the new width F' each block of F
channels becomes a block of F' whose first F channels are the old ones. The new channels get the fresh
network's random incoming weights (so their neurons fire and learn), and the weights from a new channel
to an old one are zero: the old channels, and so the disparity, are exactly what the narrow model
computes, up to float rounding. Training then learns what the new channels add.

    python tools/widen_model.py eventstereo/model/weights/demo.safetensors --filter-multiplier 5 \\
        --out runs/demo-f5-init.safetensors
"""

from __future__ import annotations

import argparse
import sys

import torch

from eventstereo import argtypes
from eventstereo.cli import run_at_edge
from eventstereo.errors import InputError
from eventstereo.model.genotype import StereoGenotype
from eventstereo.model.io import LoadedModel, load_model, save_model


def build_parser() -> argparse.ArgumentParser:
    p = argtypes.OneLineErrorParser(prog="widen_model", description=__doc__,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="show the traceback of an error")
    p.add_argument("model", help="trained stereo model file")
    p.add_argument("--filter-multiplier", type=argtypes.int_in_range(1, 64), required=True,
                   help="the new filter multiplier F' (larger than the model's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the new channels' random weights")
    p.add_argument("--out", required=True, help="model file to write")
    return p


def old_positions(old: int, new: int, f_old: int, f_new: int, name: str) -> torch.Tensor:
    """Where the `old` channels of one tensor dimension lie among its `new` ones (all of them if the
    dimension does not scale with F, e.g. the SBT bins or a kernel size)."""
    if old == new:
        return torch.arange(new)
    blocks, rest = divmod(old, f_old)
    if rest or new != blocks * f_new:
        raise ValueError(f"{name}: a dimension of {old} -> {new} is not a multiple of F = {f_old} -> {f_new}")
    return (torch.arange(blocks)[:, None] * f_new + torch.arange(f_old)[None, :]).reshape(-1)


def widen(loaded: LoadedModel, filter_multiplier: int, *, seed: int = 0) -> torch.nn.Module:
    """A model of `loaded`'s architecture at `filter_multiplier` that computes what `loaded` does."""
    genotype = loaded.genotype
    source = str(loaded.path)
    if not isinstance(genotype, StereoGenotype):
        raise InputError("only stereo models can be widened", source=source)
    f_old, f_new = genotype.filter_multiplier, filter_multiplier
    if f_new <= f_old:
        raise InputError(f"the model already has filter multiplier {f_old}; widening needs a larger one, "
                         f"not {f_new}", source=source)
    torch.manual_seed(seed)
    wide = type(loaded.model)(genotype.with_changes(filter_multiplier=f_new))
    old_state, new_state = loaded.model.state_dict(), wide.state_dict()
    if old_state.keys() != new_state.keys():
        raise InputError("the model's layers do not match its genotype at the new width", source=source)
    with torch.no_grad():
        for name, old in old_state.items():
            new = new_state[name]
            if old.dim() == 0:
                new.copy_(old)
                continue
            try:
                pos = [old_positions(o, n, f_old, f_new, name) for o, n in zip(old.shape, new.shape)]
            except ValueError as e:
                raise InputError(str(e), source=source) from None
            if old.dim() >= 2 and old.shape[1] != new.shape[1]:  # weights: no new input reaches an old output
                fresh_in = torch.ones(new.shape[1], dtype=torch.bool)
                fresh_in[pos[1]] = False
                new[pos[0][:, None], fresh_in.nonzero().reshape(1, -1)] = 0
            new[torch.meshgrid(*pos, indexing="ij")] = old
    return wide.eval()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def work() -> int:
        loaded = load_model(args.model)
        model = widen(loaded, args.filter_multiplier, seed=args.seed)
        provenance = {"widened": {"from": str(args.model), "filter_multiplier": args.filter_multiplier,
                                  "seed": args.seed, "from_provenance": loaded.provenance}}
        print(save_model(args.out, model, sbt_settings=loaded.sbt_settings, provenance=provenance))
        return 0

    return run_at_edge(work, args.verbose, "widen_model")


if __name__ == "__main__":
    sys.exit(main())
