"""Train a SpikeDHS-Stereo network on event windows and export it as a model file.

Data: an SBT cache (``--cache FILE``, fastest), or any registry source encoded at start-up (for the
synthetic source, many scenes with ``--train-seeds 0-63``). Training: sequences of ``--seq-len``
consecutive windows with their GT, truncated BPTT every ``--tbptt`` windows, Adam with the learning
rate multiplied by ``--lr-gamma`` at each of ``--lr-milestones``, random crops. Progress goes to a bar,
TensorBoard (``OUT/tb``) and atomic checkpoints (``OUT/checkpoint.pt``); rerunning the same command
resumes. Distributed: ``torchrun --nproc_per_node N tools/train_stereo.py ...``.

Settings can come from a JSON file (``--config tools/configs/demo.json``, keys are the option names
with ``_``); options given on the command line win. The bundled demo model is reproduced with

    python tools/train_stereo.py --config tools/configs/demo.json
    python tools/train_stereo.py --config tools/configs/demo_finetune.json
    python tools/train_stereo.py --config tools/configs/demo_polish.json

(the first run caches the synthetic training scenes under runs/demo-cache; see tools/README.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

from eventstereo import argtypes
from eventstereo.cli import run_at_edge
from eventstereo.errors import InputError
from eventstereo.events.sbt import SBTSettings
from eventstereo.sources.registry import add_source_arguments, config_from_args
from eventstereo.training import TrainConfig, WindowSequences, train
from eventstereo.training.augment import AUGMENTATIONS, SensorAugment
from eventstereo.training.loop import init_distributed
from eventstereo.training.stereo import git_commit, store_from_args

log = logging.getLogger("train_stereo")
POS, NONNEG = argtypes.positive_int, argtypes.non_negative_int


def build_parser() -> argparse.ArgumentParser:
    p = argtypes.OneLineErrorParser(prog="train_stereo", description=__doc__,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
    irange, frange = argtypes.int_in_range, argtypes.float_in_range
    p.add_argument("--config", help="JSON file of option defaults")
    p.add_argument("-v", "--verbose", action="store_true", help="show the traceback of an error")
    p.add_argument("--out", default="runs/stereo", help="run directory (checkpoint, TensorBoard, model)")
    p.add_argument("--export", help="model file written at the end (default OUT/model.safetensors)")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if OUT has a checkpoint")
    d = p.add_argument_group("data")
    d.add_argument("--cache", nargs="+", help="SBT cache file(s) to train on (instead of a source)")
    d.add_argument("--cache-dir", help="encode each source seed once into an SBT cache file here (reused)")
    d.add_argument("--prepare-only", action="store_true", help="build the --cache-dir caches, then exit")
    d.add_argument("--train-seeds", type=argtypes.seed_spec,
                   help="source seeds to train on, e.g. 0-63 (default: --seed)")
    d.add_argument("--windows-per-seed", type=POS, default=40, help="windows encoded per training seed")
    d.add_argument("--val-seeds", type=argtypes.seed_spec,
                   help="seeds for validation during training, e.g. 1000-1001")
    d.add_argument("--val-windows", type=POS, default=20, help="windows per validation seed")
    d.add_argument("--val-cache", nargs="+", help="SBT cache file(s) for validation")
    d.add_argument("--bins", type=irange(1, 64), default=5,
                   help="SBT bins (sources only; a cache has its own)")
    d.add_argument("--sbt-mode", default="sign", choices=("sign", "sum", "polarity"),
                   help="SBT mode: sign, sum or polarity (sources only)")
    d.add_argument("--augment", nargs="*", default=[], choices=sorted(AUGMENTATIONS), metavar="NAME",
                   help="sensor augmentations of the training frames (never validation): "
                        + "; ".join(f"{k}: {a.help}" for k, a in AUGMENTATIONS.items()))
    add_source_arguments(p)
    m = p.add_argument_group("model")
    m.add_argument("--genotype", default=None, help="genotype name or JSON file (default: the builder's)")
    m.add_argument("--filter-multiplier", type=irange(1, 64), default=None,
                   help="channels per node at level 1")
    m.add_argument("--max-disparity", type=irange(1, 1024), default=None,
                   help="largest disparity (default: genotype's)")
    m.add_argument("--model-options", default="{}", help="JSON dict of extra build_stereo_model keywords")
    m.add_argument("--init", help="start from this model file's weights")
    t = p.add_argument_group("training")
    t.add_argument("--iterations", type=NONNEG, default=1000, help="batches of sequences to train on")
    t.add_argument("--batch-size", type=POS, default=2)
    t.add_argument("--seq-len", type=POS, default=4, help="consecutive windows per sequence")
    t.add_argument("--tbptt", type=NONNEG, default=0, help="windows per backward pass (0 = whole sequence)")
    t.add_argument("--crop", type=POS, nargs=2, default=None, metavar=("H", "W"), help="random crop size")
    t.add_argument("--lr", type=argtypes.positive_float, default=1e-3)
    t.add_argument("--lr-milestones", type=NONNEG, nargs="*", default=[],
                   help="iterations to decay the lr at")
    t.add_argument("--lr-gamma", type=frange(0.0, 1.0, lo_open=True), default=0.5)
    t.add_argument("--grad-clip", type=argtypes.non_negative_float, default=0.0)
    t.add_argument("--ema-decay", type=frange(0.0, 1.0), default=0.0,
                   help="keep a moving average of the weights with this decay (e.g. 0.999) and export it")
    t.add_argument("--train-seed", type=irange(0, 2**32 - 1), default=0,
                   help="seed of weights, data order and crops")
    t.add_argument("--workers", type=irange(0, 256), default=0, help="DataLoader worker processes")
    t.add_argument("--threads", type=irange(0, 1024), default=0,
                   help="torch threads per process (0 = default)")
    t.add_argument("--device", type=argtypes.device, default="cpu")
    t.add_argument("--log-every", type=POS, default=10)
    t.add_argument("--checkpoint-every", type=POS, default=50)
    t.add_argument("--validate-every", type=NONNEG, default=0)
    t.add_argument("--no-progress", action="store_true")
    from nas.temporal.cli import add_arguments as add_temporal_arguments

    add_temporal_arguments(p)
    return p


def _config_argv(p: argparse.ArgumentParser, path: str, cfg: dict) -> list[str]:
    """A config file's values as option strings, so they pass the same type and range checks as typed
    options (a value of the wrong kind is an error naming the file and the key)."""
    by_dest = {a.dest: a for a in p._actions if a.option_strings}
    out: list[str] = []
    for key, value in cfg.items():
        action = by_dest[key]
        flag = action.option_strings[-1]
        if action.nargs == 0:  # store_true
            if not isinstance(value, bool):
                p.error(f"{path}: {key} must be true or false, not {value!r}")
            out += [flag] if value else []
        elif value is None:
            continue
        elif isinstance(value, list):
            if action.nargs in (None, "?"):
                p.error(f"{path}: {key} takes one value, not a list")
            out += [flag, *map(str, value)] if value or action.nargs == "*" else []
        elif isinstance(value, dict):
            out += [flag, json.dumps(value)]
        else:
            out += [flag, str(value)]
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse with the ``--config`` file's values as defaults (unknown keys are an error); typed options
    win over the file, and the file's values pass the same checks."""
    p = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    first, _ = p.parse_known_args(argv)
    if first.config:
        try:
            cfg = json.loads(Path(first.config).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            p.error(f"--config {first.config}: cannot read it as JSON ({e})")
        if not isinstance(cfg, dict):
            p.error(f"--config {first.config}: expected a JSON object of option names")
        known = {a.dest for a in p._actions}
        unknown = sorted(set(cfg) - known)
        if unknown:
            p.error(f"{first.config}: unknown option(s) {unknown}")
        file_parser = build_parser()
        file_parser.prog = f"train_stereo --config {first.config}"
        values = {k: v for k, v in cfg.items() if k != "config"}
        checked = file_parser.parse_args(_config_argv(file_parser, first.config, values))
        p.set_defaults(**{k: getattr(checked, k) for k in cfg if k != "config"})
    args = p.parse_args(argv)
    try:
        options = json.loads(args.model_options)
    except json.JSONDecodeError as e:
        p.error(f"argument --model-options: not JSON ({e})")
    if not isinstance(options, dict):
        p.error("argument --model-options: expected a JSON object")
    try:  # the source options (with --cache only the window length matters) before any data is read
        config_from_args(args if not args.cache else argparse.Namespace(window_ms=args.window_ms))
    except InputError as e:
        p.error(str(e))
    return args


def build_model(args: argparse.Namespace, max_disparity: int):
    from eventstereo.model import build_stereo_model

    genotype = None
    if args.genotype:
        from eventstereo.model.genotype import load_genotype

        genotype = load_genotype(args.genotype)
    model = build_stereo_model(genotype=genotype, filter_multiplier=args.filter_multiplier,
                               max_disparity=args.max_disparity, **json.loads(args.model_options))
    if model.max_disparity < max_disparity:
        log.warning("the model covers disparities up to %d, the data's source up to %d: GT beyond the "
                    "model's range is left out of the loss", model.max_disparity, max_disparity)
    return model


def main(argv: list[str] | None = None) -> int:
    """Train; a user's mistake (bad data, a corrupt checkpoint) is one line ``error: ...`` and status 2."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_at_edge(lambda: run(args, argv), args.verbose, "train_stereo",
                       interrupted="interrupted (rerun the same command to resume from the last checkpoint)")


def run(args: argparse.Namespace, argv: list[str] | None) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.train_seed)
    t_start = time.time()
    info = init_distributed(args.device)
    settings = SBTSettings(window_us=int(args.window_ms * 1000), n_bins=args.bins, mode=args.sbt_mode)

    def open_store(cache, seeds, windows):
        """Rank 0 builds missing cache files first; the other ranks then only open them."""
        a = argparse.Namespace(**{**vars(args), "cache": cache})
        if info.world_size > 1 and args.cache_dir:
            if info.is_main:
                store_from_args(a, seeds, windows, settings, cache_dir=args.cache_dir)
            torch.distributed.barrier()
        return store_from_args(a, seeds, windows, settings, cache_dir=args.cache_dir, build=info.is_main)

    store = open_store(args.cache, args.train_seeds, args.windows_per_seed)
    settings = store.sbt_settings
    dataset = WindowSequences(store, args.seq_len, crop=tuple(args.crop) if args.crop else None,
                              seed=args.train_seed,
                              augment=SensorAugment(args.augment) if args.augment else None)
    val_loader = None
    if args.val_seeds or args.val_cache:
        val_store = open_store(args.val_cache, args.val_seeds, args.val_windows)
        val_seqs = WindowSequences(val_store, min(args.seq_len, len(val_store)))
        val_loader = torch.utils.data.DataLoader(val_seqs, batch_size=1)
    if args.prepare_only:
        log.info("data ready: %d training windows", len(store))
        return 0
    model = build_model(args, store.max_disparity)
    if args.init:
        from eventstereo.model.io import load_model

        model.load_state_dict(load_model(args.init).model.state_dict(), strict=True)
    n_params = sum(p.numel() for p in model.parameters())
    from nas.temporal.cli import attach_from_args

    search = attach_from_args(args, model)
    log.info("%d training sequences of %d windows from %d windows; model %d parameters, max disparity %d",
             len(dataset), args.seq_len, len(store), n_params, model.max_disparity)
    cfg = TrainConfig(iterations=args.iterations, batch_size=args.batch_size, lr=args.lr,
                      lr_milestones=list(args.lr_milestones), lr_gamma=args.lr_gamma, tbptt=args.tbptt,
                      grad_clip=args.grad_clip, ema_decay=args.ema_decay, seed=args.train_seed,
                      num_workers=args.workers,
                      log_every=args.log_every, checkpoint_every=args.checkpoint_every,
                      validate_every=args.validate_every, device=args.device, progress=not args.no_progress)
    run_config = {k: v for k, v in vars(args).items() if k != "config"}
    export = Path(args.export or Path(args.out) / "model.safetensors")

    def finish(trained: torch.nn.Module) -> None:
        from eventstereo.model.io import save_model

        temporal = {}
        if search is not None:
            from nas.temporal.cli import report

            temporal = report(search, model, *([trained] if trained is not model else []), out_dir=args.out)
            del temporal["neurons"]  # the genotype in the file has every layer's spec
            log.info("temporal search decided: %s", json.dumps(temporal["searched"]))
        provenance = {
            "tool": "tools/train_stereo.py",
            "command": " ".join(["python", "tools/train_stereo.py",
                                 *(sys.argv[1:] if argv is None else argv)]),
            "config": run_config,
            "commit": git_commit(),
            "training_windows": len(store),
            "training_sequences": len(dataset),
            "process_wall_time_s": round(time.time() - t_start, 1),  # this invocation (resumes restart it)
            "final_step": cfg.iterations,
            "parameters": n_params,
            **({"temporal_search": temporal} if temporal else {}),
        }
        save_model(export, trained.cpu(), sbt_settings=settings, provenance=provenance)
        log.info("model written to %s", export)

    stats = train(model, dataset, cfg, args.out, resume=not args.no_resume, run_config=run_config,
                  val_loader=val_loader, fxb=store.fxb, on_finish=finish,
                  hooks=[search] if search is not None else ())
    log.info("done in %.1f min: %s", (time.time() - t_start) / 60, json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
