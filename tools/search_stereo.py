"""Search a SpikeDHS-Stereo architecture (bi-level, first order) and write its genotype JSON.

The supernet (nas/supernets/stereo.py) has the deployed network's stems, cost volume, head, loss and
sub-pixel estimator, with searchable 3-node cells and 4-level layer trellises for the feature net
(``--feature-layers``, paper 2) and the matching net (``--matching-layers``, paper 4). The training
sequences are split into halves A (weights: SGD) and B (architecture: Adam) as nas.search does; the
architecture moves after ``--warmup-epochs``. Paper: 12 epochs, 3 warm-up, batch 1, crop 200x280, max
disparity 63, F = 8. The defaults are a SMALL search that runs on a laptop CPU (F = 2, max disparity 23,
crop 48x72, 4 synthetic scenes); see tools/README.md for measured costs and the paper-size command.

Data: any registry source with GT (synthetic by default, ``--train-seeds`` scenes), or an SBT cache
(``--cache``, e.g. the MVSEC split 1 train set written by tools/prepare_mvsec.py). Each sequence keeps
one crop for the whole search (drawn from ``--search-seed``), so a resumed run sees exactly the same data.

Output in ``--out``: ``checkpoint.pt`` (atomic, rerunning the same command resumes exactly),
``tb/`` (TensorBoard), ``genotype.json`` (the decoded StereoGenotype, rewritten after every epoch), and
a JSON line on stdout. Retrain with ``tools/train_stereo.py --genotype OUT/genotype.json``; the model
it exports runs in ``eventstereo stream --model`` and the app as is. Distributed:
``torchrun --nproc_per_node N tools/search_stereo.py ...`` (each rank takes its share of every batch).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import torch

from eventstereo.events.sbt import SBTSettings
from eventstereo.sources.registry import add_source_arguments
from eventstereo.training import WindowSequences
from eventstereo.training.loop import init_distributed
from eventstereo.training.stereo import store_from_args

log = logging.getLogger("search_stereo")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="search_stereo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/search-stereo", help="run directory (checkpoint, TB, genotype)")
    p.add_argument("--name", default="searched_stereo", help="name written into the genotype")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if OUT has a checkpoint")
    d = p.add_argument_group("data")
    d.add_argument("--cache", nargs="+", help="SBT cache file(s) to search on (instead of a source)")
    d.add_argument("--cache-dir", help="encode each source seed once into an SBT cache file here (reused)")
    d.add_argument("--train-seeds", default="0-3", help="source seeds to search on (default 0-3)")
    d.add_argument("--windows-per-seed", type=int, default=16, help="windows encoded per seed")
    d.add_argument("--bins", type=int, default=5, help="SBT bins (sources only; a cache has its own)")
    d.add_argument("--sbt-mode", default="sign", help="SBT mode: sign, sum or polarity (sources only)")
    d.add_argument("--seq-len", type=int, default=2, help="consecutive windows per sequence")
    d.add_argument("--crop", type=int, nargs=2, default=[48, 72], metavar=("H", "W"),
                   help="crop of every sequence (paper: 200 280); 0 0 = full frame")
    add_source_arguments(p)
    m = p.add_argument_group("supernet")
    m.add_argument("--filter-multiplier", type=int, default=2, help="channels per node at level 0 (paper 8)")
    m.add_argument("--max-disparity", type=int, default=23, help="largest disparity (paper 63)")
    m.add_argument("--feature-layers", type=int, default=2, help="feature trellis layers (paper 2)")
    m.add_argument("--matching-layers", type=int, default=4, help="matching trellis layers (paper 4)")
    m.add_argument("--mixing", choices=("membrane", "spike"), default="membrane",
                   help="mix candidate ops at the membrane (paper) or at the spike (ablation)")
    s = p.add_argument_group("search")
    s.add_argument("--epochs", type=int, default=12)
    s.add_argument("--warmup-epochs", type=int, default=3)
    s.add_argument("--batch-size", type=int, default=1)
    s.add_argument("--lr", type=float, default=0.025, help="weight SGD learning rate (cosine to --lr-min)")
    s.add_argument("--lr-min", type=float, default=0.001)
    s.add_argument("--arch-lr", type=float, default=3e-3, help="architecture Adam learning rate")
    s.add_argument("--search-seed", type=int, default=0,
                   help="seed of weights, halves, data order and crops")
    s.add_argument("--checkpoint-every", type=int, default=20, help="steps between mid-epoch checkpoints")
    s.add_argument("--device", default="cpu")
    s.add_argument("--threads", type=int, default=1,
                   help="torch threads per process (default 1: the supernet's many small ops lose time to "
                        "thread hand-offs on a busy CPU; 0 = torch's default)")
    s.add_argument("--no-progress", action="store_true")
    s.add_argument("--measure", type=int, metavar="N",
                   help="only time N search iterations (weight + architecture step) on random frames of the "
                        "--crop size and print time per iteration and peak memory as JSON; no data needed")
    s.add_argument("--stop-after-steps", type=int, help=argparse.SUPPRESS)  # tests: a kill after a checkpoint
    return p


def _collate(items: list[dict[str, torch.Tensor]], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: torch.stack([it[k] for it in items]).to(device) for k in items[0]}


def _write_genotype(path: Path, genotype) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(genotype.to_json())
    os.replace(tmp, path)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(args: argparse.Namespace) -> dict:
    """Cost of one search iteration at the options' size: (weight step on A + architecture step on B),
    timed over ``args.measure`` iterations after one untimed warm-up iteration; peak memory of the process
    (CPU: max RSS, which includes the baseline printed beside it; CUDA: max allocated)."""
    from nas.supernets.stereo import StereoSupernet, stereo_search_loss, supernet_parameters

    device = torch.device(args.device)
    baseline = _peak_memory_mb(device)
    torch.manual_seed(args.search_seed)
    net = StereoSupernet(filter_multiplier=args.filter_multiplier, max_disparity=args.max_disparity,
                         in_channels=args.bins, feature_layers=args.feature_layers,
                         matching_layers=args.matching_layers, mixing=args.mixing).to(device)
    h, w = args.crop
    shape = (args.batch_size, args.seq_len, args.bins, h, w)
    g = torch.Generator().manual_seed(args.search_seed)
    batch = {"left": torch.randint(-1, 2, shape, generator=g).float(),
             "right": torch.randint(-1, 2, shape, generator=g).float(),
             "gt": torch.rand(shape[:2] + (h, w), generator=g) * args.max_disparity}
    batch = {k: v.to(device) for k, v in batch.items()}
    arch = net.arch_parameters()
    ids = {id(p) for p in arch}
    opt_w = torch.optim.SGD([p for p in net.parameters() if id(p) not in ids], lr=args.lr, momentum=0.9)
    opt_a = torch.optim.Adam(arch, lr=args.arch_lr)

    def iteration() -> None:
        for opt in (opt_w, opt_a):
            opt.zero_grad(set_to_none=True)
            stereo_search_loss(net, batch)[0].backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    iteration()
    t0 = time.perf_counter()
    for _ in range(args.measure):
        iteration()
    seconds = (time.perf_counter() - t0) / args.measure
    n_weights, n_arch = supernet_parameters(net)
    return {"seconds_per_iteration": round(seconds, 3), "peak_memory_mb": round(_peak_memory_mb(device)),
            "baseline_memory_mb": round(baseline), "crop": [h, w], "max_disparity": args.max_disparity,
            "filter_multiplier": args.filter_multiplier, "seq_len": args.seq_len,
            "batch_size": args.batch_size,
            "supernet_weights": n_weights, "arch_parameters": n_arch, "device": str(device),
            "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    from nas.search import SearchConfig, bilevel_search
    from nas.supernets.stereo import StereoSupernet, stereo_search_loss, supernet_parameters

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.measure:
        print(json.dumps(measure(args), sort_keys=True))
        return 0
    device = torch.device(args.device)
    info = init_distributed(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    settings = SBTSettings(window_us=int(args.window_ms * 1000), n_bins=args.bins, mode=args.sbt_mode)
    if info.world_size > 1 and args.cache_dir and not args.cache:
        if info.is_main:
            store_from_args(args, args.train_seeds, args.windows_per_seed, settings, cache_dir=args.cache_dir)
        torch.distributed.barrier()
    store = store_from_args(args, args.train_seeds, args.windows_per_seed, settings, cache_dir=args.cache_dir,
                            build=info.is_main or not args.cache_dir)
    crop = tuple(args.crop) if args.crop and all(args.crop) else None
    data = WindowSequences(store, args.seq_len, crop=crop, seed=args.search_seed)
    torch.manual_seed(args.search_seed)
    net = StereoSupernet(filter_multiplier=args.filter_multiplier, max_disparity=args.max_disparity,
                         in_channels=store.sbt_settings.n_bins, feature_layers=args.feature_layers,
                         matching_layers=args.matching_layers, mixing=args.mixing)
    n_weights, n_arch = supernet_parameters(net)
    log.info("%d search sequences of %d windows; supernet %d weights, %d architecture parameters",
             len(data), args.seq_len, n_weights, n_arch)
    cfg = SearchConfig(epochs=args.epochs, warmup_epochs=min(args.warmup_epochs, args.epochs),
                       batch_size=args.batch_size, lr=args.lr, lr_min=args.lr_min, arch_lr=args.arch_lr,
                       seed=args.search_seed, checkpoint_every=args.checkpoint_every)
    writer = None
    if info.is_main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"))
    genotype_path = out / "genotype.json"

    def on_epoch(epoch: int, record: dict) -> None:
        g = net.decode(args.name)
        _write_genotype(genotype_path, g)
        print(f"epoch {epoch}: loss {record.get('weights/loss', float('nan')):.3f}, arch loss "
              f"{record.get('arch/loss', float('nan')):.3f}, feature {list(g.feature.path)} "
              f"{list(g.feature.cell)}, matching {list(g.matching.path)} {list(g.matching.cell)}",
              file=sys.stderr)

    state = bilevel_search(net, len(data), lambda idx: _collate([data[int(i)] for i in idx], device),
                           stereo_search_loss, cfg, out, dist_info=info, device=device,
                           resume=not args.no_resume, progress=not args.no_progress, writer=writer,
                           on_epoch=on_epoch, stop_after_steps=args.stop_after_steps, model_config=net.config)
    if writer is not None:
        writer.close()
    if not info.is_main:
        return 0
    g = net.decode(args.name)
    _write_genotype(genotype_path, g)
    last = state.history[-1] if state.history else {}
    result = {"genotype": str(genotype_path), "checkpoint": str(out / "checkpoint.pt"), "epochs": state.epoch,
              "steps": state.step, "feature": g.feature.to_dict(), "matching": g.matching.to_dict(),
              "search_loss": last.get("arch/loss"), "train_loss": last.get("weights/loss"),
              "train_disparity_error_px": last.get("weights/disparity_error_px"),
              "supernet_weights": n_weights, "arch_parameters": n_arch, "sequences": len(data),
              "seconds": round(time.time() - t0, 1), "device": str(device), "world_size": info.world_size}
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
