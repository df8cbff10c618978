"""The `nas` command: search, decode, retrain, eval, energy, bench (SpikeDHS for classification).

A first run on a laptop, all offline (scikit-learn's 8x8 digits):

    nas search --dataset digits --channels 4 --cells 3 --timesteps 2 --epochs 6 --out runs/s
    nas decode runs/s/genotype.json
    nas retrain --dataset digits --genotype runs/s/genotype.json --epochs 30 --out runs/r
    nas eval --model runs/r/model.safetensors --dataset digits
    nas energy --model runs/r/model.safetensors

The size options default to the paper's classification setting (8 cells with reductions at 1/3 and
2/3 depth, 4 nodes, T = 6) and, where the paper's text gives no number, to DARTS's (search C = 16 at
batch 64 for 50 epochs with 15 warm-up, retrain at batch 96 for 100 epochs). With --json
each verb prints one JSON object as the LAST line of stdout; progress bars go to stderr; TensorBoard
logs go under --out/tb.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see eventstereo/cli.py: spinning OpenMP threads

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from eventstereo import argtypes  # noqa: E402

PAPER = dict(channels=16, cells=8, nodes=4, timesteps=6)

# Upper bounds of the size options: far above any published setting, low enough that a typo (an extra
# zero or three) is refused here rather than by the allocator after minutes of loading.
CHANNELS = argtypes.int_in_range(1, 1024)
CELLS = argtypes.int_in_range(2, 64)  # fixed_path: one cell would take both reductions at once
NODES = argtypes.int_in_range(1, 16)
TIMESTEPS = argtypes.int_in_range(1, 1000)
BATCH = argtypes.int_in_range(1, 65536)
IMAGE_SIDE = argtypes.int_in_range(1, 4096)
SEED = argtypes.int_in_range(0, 2**32 - 1)
LR = argtypes.float_in_range(0.0, 10.0, lo_open=True)


# ------------------------------------------------------------------------------------------ helpers
def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)  # argtypes.device has checked it exists on this machine


def _emit(args: argparse.Namespace, result: dict[str, Any], text: str = "") -> None:
    if text and not (args.json and args.quiet):
        print(text)
    if args.json:
        print(json.dumps(result, sort_keys=True))


def _writer(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a declared dependency; stay usable without it
        return None
    return SummaryWriter(str(out / "tb"))


def _data(args: argparse.Namespace):
    from nas.classify.data import DataOptions, load_dataset

    opts = DataOptions(root=Path(args.root) if args.root else None,
                       timesteps=args.timesteps or PAPER["timesteps"], image_size=args.image_size,
                       limit=args.limit)
    return load_dataset(args.dataset, opts)


def _seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


# ------------------------------------------------------------------------------------------- verbs
def cmd_search(args: argparse.Namespace) -> int:
    import torch

    from eventstereo.training.loop import init_distributed
    from nas.decode import classifier_genotype
    from nas.search import SearchConfig, bilevel_search, classification_loss
    from nas.space import ClassifierSupernet

    device = _device(args.device)
    info = init_distributed(str(device))
    data = _data(args)
    _seed(args.seed)
    size = {k: getattr(args, k) or v for k, v in PAPER.items()}
    net = ClassifierSupernet(num_classes=data.num_classes, in_channels=data.in_channels, mixing=args.mixing,
                             stem_multiplier=args.stem_multiplier, reduction=args.reduction_cell, **size)
    cfg = SearchConfig(epochs=args.epochs, warmup_epochs=min(args.warmup_epochs, args.epochs),
                       batch_size=args.batch_size or 64, lr=args.lr, arch_lr=args.arch_lr, seed=args.seed)
    out = Path(args.out)
    writer = _writer(out) if info.is_main else None
    x, y = data.x_train.to(device), data.y_train.to(device)

    def batch(idx):
        idx = idx.to(device)
        xb = x[idx]
        return (xb.transpose(0, 1) if xb.dim() == 5 else xb), y[idx]

    def genotype(name: str = "searched"):
        return classifier_genotype(net.alphas, net.config, name=name,
                                   alphas_reduce=getattr(net, "alphas_reduce", None))

    def report(epoch: int, record: dict) -> None:
        g = genotype()
        print(f"epoch {epoch}: weights acc {record.get('weights/accuracy', 0):.1f} %, arch acc "
              f"{record.get('arch/accuracy', float('nan')):.1f} %, cell {list(g.net.cell)}", file=sys.stderr)

    t0 = time.time()
    state = bilevel_search(net, len(y), batch, classification_loss, cfg, out, dist_info=info, device=device,
                           resume=not args.no_resume, progress=not args.quiet, writer=writer, on_epoch=report,
                           model_config=net.config)
    seconds = time.time() - t0
    if not info.is_main:
        return 0
    g = genotype(args.name)
    path = out / "genotype.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(g.to_json())
    os.replace(tmp, path)
    last = state.history[-1] if state.history else {}
    if writer is not None:
        writer.close()
    result = {"genotype": str(path), "checkpoint": str(out / "checkpoint.pt"), "epochs": cfg.epochs,
              "cell": [list(p) for p in g.net.cell], "path": list(g.net.path), "mixing": args.mixing,
              "reduce_cell": None if g.reduce_cell is None else [list(p) for p in g.reduce_cell],
              "search_accuracy": last.get("arch/accuracy"), "train_accuracy": last.get("weights/accuracy"),
              "seconds": round(seconds, 1), "device": str(device), "world_size": info.world_size,
              "alphas": torch.softmax(net.alphas.detach().cpu(), -1).tolist()}
    _emit(args, result, describe(g))
    return 0


def describe(g) -> str:
    """A readable account of a classifier genotype: cells, nodes, ops and the path."""
    from eventstereo.model.genotype import edge_endpoints, neuron_layer_names

    src_name = {0: "s0 (cell before last)", 1: "s1 (previous cell)"}
    lines = [f"genotype {g.name!r}: {g.cells} cells on levels {list(g.net.path)}, {g.nodes} nodes, "
             f"C = {g.filter_multiplier}, T = {g.timesteps}, {g.num_classes} classes, "
             f"{g.in_channels} input channels"]
    cells = [("cell", g.net)]
    if g.reduce_cell is not None:
        cells = [("normal cell", g.net), ("reduction cell", g.cell_genotype(g.reduction_cells[0]))]
    for title, net in cells:
        if len(cells) > 1:
            lines.append(f"  {title}:")
        for j in range(g.nodes):
            ins = []
            for e, op in net.node_edges(j):
                src = edge_endpoints(e)[0]
                ins.append(f"{op} from {src_name.get(src, f'node {src - 2}')} (edge {e})")
            temp = net.node_temperature(j)
            note = f"  [surrogate temperature {temp:g}]" if temp else ""
            lines.append(f"  node {j}: " + "; ".join(ins) + note)
    lines.append(f"  reduction cells: {list(g.reduction_cells)}; "
                 f"auxiliary head after cell {g.auxiliary_after}")
    lines.append("  spiking layers: " + ", ".join(neuron_layer_names(g)))
    return "\n".join(lines)


def cmd_decode(args: argparse.Namespace) -> int:
    from eventstereo.errors import InputError
    from eventstereo.model.genotype import read_genotype
    from eventstereo.training.checkpoint import load_checkpoint
    from nas.decode import classifier_genotype

    src = Path(args.source)
    if src.suffix == ".json":
        g = read_genotype(src)
    else:
        state = load_checkpoint(src)
        cfg = state.get("config", {}).get("model")
        if "alphas" not in state["model"] or not cfg:
            raise InputError("not a nas search checkpoint (no alphas / supernet config)", source=str(src))
        g = classifier_genotype(state["model"]["alphas"], cfg, name=args.name,
                                alphas_reduce=state["model"].get("alphas_reduce"))
    if args.out:
        Path(args.out).write_text(g.to_json())
    text = describe(g) if hasattr(g, "net") else g.to_json()
    _emit(args, {"genotype": g.to_dict(), "written": args.out}, text)
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    from eventstereo.errors import InputError
    from eventstereo.model.classifier import build_classifier
    from eventstereo.model.genotype import ClassifierGenotype, NetGenotype, read_genotype
    from eventstereo.model.io import save_model
    from nas.classify.train import RetrainConfig, energy_report, evaluate, retrain
    from nas.space import fixed_path

    device = _device(args.device)
    data = _data(args)
    g = read_genotype(args.genotype)
    if not isinstance(g, ClassifierGenotype):
        raise InputError("retrain needs a classifier genotype (nas search writes one)", source=args.genotype)
    if args.nodes and args.nodes != g.nodes:
        raise InputError(f"--nodes {args.nodes}: the genotype's cell has {g.nodes} nodes",
                         source=args.genotype)
    changes: dict[str, Any] = {"num_classes": data.num_classes, "in_channels": data.in_channels,
                               "auxiliary": not args.no_auxiliary}
    if args.channels:
        changes["filter_multiplier"] = args.channels
    if args.cells:
        changes["net"] = NetGenotype(path=fixed_path(args.cells), cell=g.net.cell)
    if args.timesteps:
        changes["timesteps"] = args.timesteps
    g = g.with_changes(**changes)
    _seed(args.seed)
    model = build_classifier(g)
    from nas.temporal.cli import attach_from_args
    from nas.temporal.cli import report as temporal_report

    search = attach_from_args(args, model)
    cfg = RetrainConfig(epochs=args.epochs, batch_size=args.batch_size or 96, lr=args.lr, seed=args.seed,
                        cutout=not args.no_cutout)
    out = Path(args.out)
    writer = _writer(out)

    def report(epoch: int, record: dict) -> None:
        print(f"epoch {epoch}: loss {record['loss']:.3f}, train {record['train_accuracy']:.1f} %, "
              f"test {record['test_accuracy']:.2f} %", file=sys.stderr)

    t0 = time.time()
    history = retrain(model, data, cfg, out, device=device, resume=not args.no_resume,
                      progress=not args.quiet, writer=writer, on_epoch=report,
                      hooks=[search] if search is not None else ())
    temporal = {}
    if search is not None:  # decide: plain neurons with the decided specs go into the model file
        temporal = {k: v for k, v in temporal_report(search, model, out_dir=out).items() if k != "neurons"}
    seconds = time.time() - t0
    test = evaluate(model, data.x_test, data.y_test, device=device, probe=True)
    energy = energy_report(model, data.x_test[:32].to(device))
    prov = {"dataset": args.dataset, "root": args.root, "image_size": list(data.image_size),
            "epochs": cfg.epochs, "test_accuracy": test["accuracy"], "retrain": vars_of(cfg),
            "seconds": round(seconds, 1),
            **({"temporal_search": temporal} if temporal else {})}
    path = save_model(out / "model.safetensors", model.cpu(), sbt_settings=data.sbt, provenance=prov)
    if writer is not None:
        writer.close()
    result = {"test_accuracy": test["accuracy"], "model": str(path), "epochs": cfg.epochs,
              "firing_rate": test["firing_rate"], "energy_mj": energy.energy_mj,
              "parameters": sum(p.numel() for p in model.parameters()), "seconds": round(seconds, 1),
              "history": history, "neurons": {k: v.to_dict() for k, v in model.neuron_specs().items()},
              **({"temporal_search": temporal} if temporal else {})}
    _emit(args, result, f"test accuracy {test['accuracy']:.2f} % after {cfg.epochs} epochs "
                        f"({seconds:.0f} s); model: {path}")
    return 0


def vars_of(cfg) -> dict:
    from dataclasses import asdict

    return asdict(cfg)


def _load(args: argparse.Namespace):
    from eventstereo.model.io import load_model

    return load_model(args.model, _device(args.device), task="classification")


def cmd_eval(args: argparse.Namespace) -> int:
    from nas.classify.train import energy_report, evaluate

    loaded = _load(args)
    args.timesteps = args.timesteps or loaded.genotype.timesteps
    data = _data(args)
    device = next(loaded.model.parameters()).device
    test = evaluate(loaded.model, data.x_test, data.y_test, device=device, probe=True)
    energy = energy_report(loaded.model, data.x_test[:32].to(device))
    result = {"accuracy": test["accuracy"], "firing_rate": test["firing_rate"],
              "firing_rates": test["firing_rates"], "energy_mj": energy.energy_mj,
              "samples": len(data.y_test)}
    _emit(args, result, f"accuracy {test['accuracy']:.2f} % on {len(data.y_test)} test samples; mean firing "
                        f"rate {test['firing_rate']:.3f}; {energy.energy_mj:.4g} mJ per sample")
    return 0


def cmd_energy(args: argparse.Namespace) -> int:
    from eventstereo.errors import InputError
    from nas.classify.train import energy_report

    loaded = _load(args)
    prov = loaded.provenance
    args.dataset = args.dataset or prov.get("dataset")
    args.root = args.root or prov.get("root")
    args.timesteps = args.timesteps or loaded.genotype.timesteps
    if not args.dataset:
        raise InputError("the model file names no dataset: pass --dataset (and --root) for example inputs",
                         source=args.model)
    data = _data(args)
    device = next(loaded.model.parameters()).device
    report = energy_report(loaded.model, data.x_test[: args.samples].to(device))
    result = {"adds": report.adds, "macs": report.macs, "energy_mj": report.energy_mj,
              "layers": [o.to_dict() for o in report.layers], "samples": min(args.samples, len(data.y_test))}
    _emit(args, result, report.table())
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from nas.bench import run_bench

    result, text = run_bench(args)
    _emit(args, result, text)
    return 0


# ------------------------------------------------------------------------------------------- parser
def _common(p: argparse.ArgumentParser, *, data: bool = True) -> None:
    if data:
        from nas.classify.data import DATASETS

        default = None if p.prog.endswith("energy") else "digits"
        p.add_argument("--dataset", choices=sorted(DATASETS), default=default,
                       help="dataset (default digits, offline); " + "; ".join(
                           f"{k}: {v.layout}" for k, v in DATASETS.items() if v.needs_root))
        p.add_argument("--root", help="folder holding the dataset (see --dataset)")
        p.add_argument("--image-size", type=IMAGE_SIDE,
                       help="imagefolder: resize to this; event data: pool frames to it")
        p.add_argument("--limit", type=argtypes.positive_int,
                       help="use only the first N samples of each split (a quick try)")
    p.add_argument("--device", type=argtypes.device, default="auto",
                   help="auto (CUDA if available, else CPU), cpu, cuda, cuda:1")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
    p.add_argument("--quiet", action="store_true", help="no progress bars (and with --json only the JSON)")


def _size(p: argparse.ArgumentParser, *, defaults: bool) -> None:
    def note(k: str) -> str:
        if not defaults:
            return " (default: the genotype's)"
        return f" (default {PAPER[k]}, " + ("DARTS's search width)" if k == "channels" else "the paper's)")

    p.add_argument("--channels", type=CHANNELS,
                   help="initial channels C: a node at level l has C * 2**l" + note("channels"))
    p.add_argument("--cells", type=CELLS, help="cells L, reductions at L//3 and 2L//3" + note("cells"))
    p.add_argument("--nodes", type=NODES, help="nodes per cell" + note("nodes"))
    p.add_argument("--timesteps", type=TIMESTEPS, help="steps T per sample" + note("timesteps"))
    p.add_argument("--batch-size", type=BATCH, help="batch size (default 64 for search, 96 for retrain)")


def _positive(name: str):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if not 1 <= v <= 100_000:
            raise argparse.ArgumentTypeError(f"{name} must be >= 1 (and at most 100000), got {v}")
        return v
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argtypes.OneLineErrorParser(prog="nas", description=__doc__,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="show the traceback of an error")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    verbose = argparse.ArgumentParser(add_help=False)  # -v after the verb too; SUPPRESS keeps `nas -v VERB`
    verbose.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                         help="show the traceback of an error")

    def verb(name: str, **kw) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[verbose], **kw)

    s = verb("search", help="bi-level search of a SpikeDHS-CLA cell; writes OUT/genotype.json",
                       description="Search the cell (alphas) of a classification supernet with DARTS "
                                   "fixed downsampling by first-order bi-level optimisation (weights on "
                                   "half A, architecture on half B). Resumes from OUT/checkpoint.pt. "
                                   "Runs under torchrun.")
    _common(s)
    _size(s, defaults=True)
    s.add_argument("--epochs", type=_positive("--epochs"), default=50, help="search epochs (default 50)")
    s.add_argument("--warmup-epochs", type=argtypes.int_in_range(0, 100_000), default=15,
                   help="epochs before the architecture moves (15)")
    s.add_argument("--mixing", choices=("membrane", "spike"), default="membrane",
                   help="mix candidate ops at the membrane (default, one neuron per node) or at the spike")
    s.add_argument("--reduction-cell", choices=("shared", "separate"), default="shared",
                   help="reduction cells share the normal cell's alphas (default; the published form) or "
                        "are searched separately (DARTS)")
    s.add_argument("--stem-multiplier", type=argtypes.int_in_range(1, 16), default=3,
                   help="stem width = this x C (default 3)")
    s.add_argument("--lr", type=LR, default=0.025, help="weight learning rate (SGD, cosine; 0.025)")
    s.add_argument("--arch-lr", type=LR, default=1e-3, help="architecture learning rate (Adam; 1e-3)")
    s.add_argument("--seed", type=SEED, default=0, help="random seed (default 0)")
    s.add_argument("--name", default="searched", help="name written into the genotype")
    s.add_argument("--out", required=True, help="output folder (checkpoint, genotype.json, tb/)")
    s.add_argument("--no-resume", action="store_true", help="start afresh even if OUT has a checkpoint")
    s.set_defaults(fn=cmd_search)

    d = verb("decode", help="print a search checkpoint's or a genotype's cells and path",
                       description="Decode a search checkpoint (top-2 non-skip edges per node, argmax op) or "
                                   "read a genotype JSON, and print it readably.")
    d.add_argument("source", metavar="CHECKPOINT_OR_GENOTYPE")
    d.add_argument("--out", help="also write the genotype JSON here")
    d.add_argument("--name", default="searched")
    d.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(fn=cmd_decode)

    r = verb("retrain", help="train SpikeDHS-CLA from a genotype; writes OUT/model.safetensors",
                       description="Build SpikeDHS-CLA from the genotype (size options override its "
                                   "width, depth and steps), train it (SGD, cosine lr, auxiliary head 0.4, "
                                   "cutout for images), evaluate it and save an eventstereo model file. "
                                   "Resumes from OUT/checkpoint.pt.")
    _common(r)
    _size(r, defaults=False)
    r.add_argument("--genotype", required=True, help="genotype JSON (from nas search or nas decode --out)")
    r.add_argument("--epochs", type=_positive("--epochs"), default=100, help="epochs (default 100)")
    r.add_argument("--lr", type=LR, default=0.025, help="initial learning rate (SGD, cosine; 0.025)")
    r.add_argument("--no-auxiliary", action="store_true", help="no auxiliary head")
    r.add_argument("--no-cutout", action="store_true", help="natural images: crop and flip but no cutout")
    r.add_argument("--seed", type=SEED, default=0, help="random seed (default 0)")
    r.add_argument("--out", required=True, help="output folder (checkpoint, model.safetensors, tb/)")
    r.add_argument("--no-resume", action="store_true", help="start afresh even if OUT has a checkpoint")
    from nas.temporal.cli import add_arguments as add_temporal_arguments

    add_temporal_arguments(r)
    r.set_defaults(fn=cmd_retrain)

    e = verb("eval", help="accuracy, firing rates and energy of a model on a test split",
                       description="Evaluate a SpikeDHS-CLA model file on the dataset's test split.")
    _common(e)
    e.add_argument("--model", required=True, help="model file (.safetensors) from nas retrain")
    e.add_argument("--timesteps", type=TIMESTEPS, help="frames per event sample (default: the genotype's)")
    e.set_defaults(fn=cmd_eval)

    n = verb("energy", help="operations and energy per sample, per layer (REFERENCE §10)",
                       description="Count additions (spike-fed layers) and MACs (real-valued inputs) "
                                   "per layer on example inputs from the model's dataset (or --dataset) "
                                   "and price them at 0.9 pJ per addition and 4.6 pJ per MAC.")
    _common(n)
    n.add_argument("--model", required=True, help="model file (.safetensors)")
    n.add_argument("--samples", type=argtypes.int_in_range(1, 100_000), default=32,
                   help="example test samples (default 32)")
    n.add_argument("--timesteps", type=TIMESTEPS, help="frames per event sample (default: the genotype's)")
    n.set_defaults(fn=cmd_energy)

    b = verb("bench", help="search and retrain iteration: fused vs eager neurons (time, memory)",
                       description="Time one search iteration (supernet forward + backward, weights and "
                                   "architecture) and one retrain iteration of SpikeDHS-CLA with the fused "
                                   "neurons against the eager loop, in the same run, each in its own process "
                                   "for its peak memory. Ratios are what mean something on a shared machine.")
    b.add_argument("--size", type=IMAGE_SIDE, default=32, help="image side (default 32, CIFAR)")
    b.add_argument("--timesteps", type=TIMESTEPS, default=6, help="steps T (default 6)")
    b.add_argument("--batch-size", type=BATCH, default=32, help="batch size (default 32)")
    b.add_argument("--channels", type=CHANNELS, default=16, help="initial channels C (default 16)")
    b.add_argument("--cells", type=CELLS, default=8, help="cells L (default 8)")
    b.add_argument("--nodes", type=NODES, default=4, help="nodes per cell (default 4)")
    b.add_argument("--repeats", type=argtypes.int_in_range(1, 1000), default=3,
                   help="timed iterations after one warm-up (default 3)")
    b.add_argument("--device", type=argtypes.device, default="cpu", help="cpu, cuda, cuda:N (default cpu)")
    b.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
    b.add_argument("--quiet", action="store_true")
    b.set_defaults(fn=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    from eventstereo.cli import run_at_edge

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return run_at_edge(lambda: args.fn(args), args.verbose, f"nas {args.verb}",
                       interrupted=f"nas {args.verb}: interrupted")


if __name__ == "__main__":
    sys.exit(main())
