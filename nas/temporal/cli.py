"""The command-line flags of the temporal search, shared by every training command that offers it
(``tools/train_stereo.py``, ``nas retrain``): one definition of the flags, their help and checks."""

from __future__ import annotations

import argparse

from torch import nn

from eventstereo import argtypes
from eventstereo.errors import InputError

__all__ = ["add_arguments", "attach_from_args", "report"]


_COUNT = argtypes.int_in_range(1, 10**9)
_AT_LEAST_0 = argtypes.int_in_range(0, 10**9)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``--tps --hns --dgs LAYERS --energy-lambda L`` group (and its schedule options)."""
    s = p.add_argument_group("temporal search (TPS / HNS / DGS; decided specs go into the genotype)")
    s.add_argument("--tps", action="store_true", help="search each LIF/ALIF layer's time constants")
    s.add_argument("--hns", action="store_true", help="search each layer's neuron kind: LIF, ALIF or ReLU")
    s.add_argument("--dgs", metavar="LAYERS", default="",
                   help="search the surrogate temperature of these layers: 'stem' or comma-separated names")
    s.add_argument("--energy-lambda", type=argtypes.float_in_range(), default=0.0,  # [0, 1]: attach checks
                   help="HNS energy-aware loss weight in [0, 1] (0 = task loss only)")
    s.add_argument("--tps-period", type=_COUNT, default=5, help="iterations per TPS search step")
    s.add_argument("--tps-warmup", type=_AT_LEAST_0, default=0, help="iterations before TPS starts moving")
    s.add_argument("--dgs-every", type=_COUNT, default=20, help="iterations per DGS round")
    s.add_argument("--dgs-batches", type=_COUNT, default=5, help="DGS batches at the end of each round")
    s.add_argument("--search-iterations", type=_AT_LEAST_0, default=0,
                   help="decide after this many iterations and train the decided network for the rest "
                        "(0 = decide at the end)")
    s.add_argument("--arch-lr", type=argtypes.float_in_range(0.0, 10.0, lo_open=True), default=0.05,
                   help="Adam learning rate of the TPS/HNS weights")


def attach_from_args(args: argparse.Namespace, model: nn.Module):
    """The search the flags ask for, attached to `model`; None when none is asked."""
    if not (args.tps or args.hns or args.dgs):
        if args.energy_lambda:
            raise InputError("--energy-lambda prices the neuron choice: it needs --hns")
        return None
    from nas.temporal.search import attach

    return attach(model, tps=args.tps, hns=args.hns, dgs_layers=args.dgs.split(",") if args.dgs else (),
                  energy_lambda=args.energy_lambda, tps_period=args.tps_period, tps_warmup=args.tps_warmup,
                  dgs_every=args.dgs_every, dgs_batches=args.dgs_batches, arch_lr=args.arch_lr,
                  decide_at=args.search_iterations)


def report(search, model: nn.Module, *copies: nn.Module, out_dir=None) -> dict:
    """Decide (in `model` and `copies`), save the history under `out_dir`; returns the report entries:
    ``neurons`` = {layer: spec as the genotype stores it} for every neuron layer of the result, and
    ``searched`` = the layers the search decided."""
    from nas.temporal.search import neuron_table

    result = copies[0] if copies else model
    entries: dict = {}
    if search is not None:
        decided = search.decide(*copies)
        entries["searched"] = {k: v.to_dict() for k, v in decided.items()}
        if out_dir is not None:
            entries["history"] = str(search.save_history(out_dir)["history"])
    entries["neurons"] = neuron_table(result)
    return entries
