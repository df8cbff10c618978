"""The evidence table on digits: accuracy and energy of SpikeDHS-CLA retrained with and without each
temporal method (same seeds, same data order), and an HNS lambda sweep.

    python -m nas.temporal.digits_table --epochs 8 --seeds 0 1 --out runs/temporal-digits

Each row trains the same small classifier (the published cell on path [0, 1, 1], C = 4, T = 4) with
Adam; the search flags change only what ``nas.temporal.attach`` wraps. Energy: eventstereo's
count_ops on the test images after ``decide()`` (ReLU layers make the layers they feed multiply).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from eventstereo.model.classifier import build_classifier
from eventstereo.model.genotype import ClassifierGenotype, NetGenotype
from eventstereo.snn.energy import EnergyReport
from nas.temporal.search import attach, neuron_table

PUBLISHED_CELL = ((1, "snn_b3"), (0, "snn_b3"), (3, "snn_b5"), (2, "snn_b3"), (7, "snn_b3"), (8, "snn_b3"))

ROWS: dict[str, dict] = {
    "baseline (LIF 0.2)": {},
    "TPS": {"tps": True},
    "DGS stem": {"dgs_layers": ("stem",)},
    "HNS lambda 0": {"hns": True},
    "HNS lambda 0.05": {"hns": True, "energy_lambda": 0.05},
    "HNS lambda 0.1": {"hns": True, "energy_lambda": 0.1},
    "HNS lambda 0.2": {"hns": True, "energy_lambda": 0.2},
    "HNS lambda 0.5": {"hns": True, "energy_lambda": 0.5},
    "HNS lambda 1": {"hns": True, "energy_lambda": 1.0},
    "TPS + HNS 0.2 + DGS": {"tps": True, "hns": True, "energy_lambda": 0.2, "dgs_layers": ("stem",)},
}


def small_genotype(num_classes: int = 10, in_channels: int = 1) -> ClassifierGenotype:
    return ClassifierGenotype(name="digits-small", net=NetGenotype(path=(0, 1, 1), cell=PUBLISHED_CELL),
                              filter_multiplier=4, num_classes=num_classes, in_channels=in_channels,
                              stem_multiplier=2, timesteps=4, auxiliary=False)


def run(row: dict, data, *, epochs: int, seed: int, decide_at: float = 0.6, batch_size: int = 64,
        lr: float = 5e-3) -> dict:
    torch.manual_seed(seed)
    model = build_classifier(small_genotype(data.num_classes, data.in_channels)).train()
    iterations = epochs * (len(data.y_train) // batch_size)
    search = attach(model, tps_period=10, tps_warmup=iterations // 10, dgs_every=max(10, iterations // 6),
                    dgs_batches=5, decide_at=int(decide_at * iterations), **row) if row else None
    owned = {id(p) for p in search.parameters()} if search else set()
    opt = torch.optim.Adam([p for p in model.parameters() if id(p) not in owned], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iterations)
    g = torch.Generator().manual_seed(seed)
    step, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(data.y_train), generator=g)
        for i in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[i: i + batch_size]
            x, y = data.x_train[idx], data.y_train[idx]

            def task_loss(x=x, y=y):
                return F.cross_entropy(model(x), y)

            loss = task_loss()
            if search:
                loss = search.loss(model, loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if search:
                search.after_backward(model)
            opt.step()
            sched.step()
            step += 1
            if search:
                search.after_iteration(model, step, task_loss)
    decided = search.decide() if search else {}
    model.eval()
    with torch.no_grad():
        acc = float((model(data.x_test).argmax(1) == data.y_test).float().mean()) * 100
        energy = EnergyReport.measure(model, data.x_test[:200], batch_size=200).energy_mj
    table = neuron_table(model)
    kinds = [s["kind"] for s in table.values()]
    spiking = [s for s in table.values() if s["kind"] != "relu"]
    seconds = round(time.perf_counter() - t0, 1)
    return {"test_accuracy": round(acc, 2), "energy_mj": energy, "seconds": seconds,
            "relu_layers": kinds.count("relu"), "alif_layers": kinds.count("alif"), "layers": len(kinds),
            "mean_tau": round(sum(s["tau"] for s in spiking) / max(1, len(spiking)), 3),
            "stem_temperature": table["stem.neuron"].get("temperature"),
            "decided": {k: v.to_dict() for k, v in decided.items()}}


def main(argv=None) -> int:
    from nas.classify.data import load_dataset

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--rows", nargs="*", default=list(ROWS), help="which rows (default all)")
    p.add_argument("--decide-at", type=float, default=0.6,
                   help="fraction of the iterations spent searching; the decided net trains for the rest")
    p.add_argument("--out", default="runs/temporal-digits")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    data = load_dataset("digits")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in args.rows:
        results[name] = [run(ROWS[name], data, epochs=args.epochs, seed=s, decide_at=args.decide_at)
                         for s in args.seeds]
        r = results[name]
        acc = sum(x["test_accuracy"] for x in r) / len(r)
        e = sum(x["energy_mj"] for x in r) / len(r)
        print(f"{name:<24} acc {acc:6.2f} %  energy {e * 1e3:8.4f} uJ  relu {r[0]['relu_layers']}/"
              f"{r[0]['layers']}  alif {r[0]['alif_layers']}  mean tau {r[0]['mean_tau']}  "
              f"stem b {r[0]['stem_temperature']}  ({r[0]['seconds']} s)", flush=True)
        (out / "table.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
