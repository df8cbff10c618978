"""Retraining, evaluation and energy of SpikeDHS-CLA (REFERENCE §6 "Classification", §10).

Retraining follows the paper: SGD (momentum 0.9, weight decay 3e-4) with a cosine learning rate from
0.025, the auxiliary head's loss weighted 0.4, gradient clipping, and for natural images random crop,
flip and cutout. Checkpoints (atomic, exact resume) every epoch; the result is saved as an eventstereo
model file (safetensors, genotype in the metadata) that ``nas eval`` and ``eventstereo`` load.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from eventstereo.model.classifier import SpikeDHSClassifier
from eventstereo.snn.energy import EnergyReport
from eventstereo.snn.probes import FiringRateProbe
from eventstereo.training.checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from eventstereo.training.loop import EpochSampler
from nas.classify.data import Splits, augment_images

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainConfig:
    epochs: int = 100
    batch_size: int = 96
    lr: float = 0.025
    lr_min: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 3e-4
    aux_weight: float = 0.4
    grad_clip: float = 5.0
    cutout: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")


def _inputs(x: Tensor) -> Tensor:
    """Batches of event frames arrive (B, T, C, H, W); the network takes (T, B, C, H, W)."""
    return x.transpose(0, 1) if x.dim() == 5 else x


def evaluate(model: SpikeDHSClassifier, x: Tensor, y: Tensor, *, batch_size: int = 256,
             device: torch.device | str = "cpu", probe: bool = False) -> dict[str, Any]:
    """Accuracy (%) on (x, y) and, with ``probe``, the firing rate of every spiking layer."""
    model.eval()
    correct = 0
    rates = None
    with torch.no_grad(), FiringRateProbe(model) if probe else contextlib.nullcontext() as p:
        for i in range(0, len(y), batch_size):
            xb = _inputs(x[i : i + batch_size].to(device))
            correct += int((model(xb).argmax(1).cpu() == y[i : i + batch_size]).sum())
        if probe:
            rates = p.rates()
    out: dict[str, Any] = {"accuracy": 100.0 * correct / max(1, len(y))}
    if rates is not None:
        out["firing_rates"] = rates
        out["firing_rate"] = sum(rates.values()) / max(1, len(rates))
    return out


def energy_report(model: SpikeDHSClassifier, x: Tensor) -> EnergyReport:
    """Operations and energy per sample of one inference (all T steps) on the example batch x."""
    model.eval()
    xb = _inputs(x)
    return EnergyReport.measure(model, (xb,), batch_size=x.shape[0])


def retrain(
    model: SpikeDHSClassifier,
    data: Splits,
    cfg: RetrainConfig,
    out_dir: str | Path,
    *,
    device: torch.device | str = "cpu",
    resume: bool = True,
    progress: bool = True,
    writer: Any = None,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Train ``model`` on data's training split; returns the per-epoch history (test accuracy each)."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    ckpt = out_dir / CHECKPOINT_NAME
    if resume and ckpt.is_file():  # it resumes only the run that wrote it
        from nas.search import check_resumable

        check_resumable(ckpt, {"retrain": asdict(cfg), "genotype": model.genotype.to_json(indent=None)})
    model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=cfg.lr_min)
    history: list[dict[str, Any]] = []
    epoch = 0
    if resume and ckpt.is_file():
        saved = load_checkpoint(ckpt, map_location=device)
        restore_checkpoint(saved, model=model, optimizer=opt, scheduler=sched)
        epoch, history = int(saved["extra"]["epoch"]), list(saved["extra"]["history"])
        log.info("resumed %s after epoch %d", ckpt, epoch)
    n = len(data.y_train)
    batch = min(cfg.batch_size, n)
    sampler = EpochSampler(n, batch_size=batch, seed=cfg.seed)
    while epoch < cfg.epochs:
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler))
        gen = torch.Generator().manual_seed(cfg.seed * 7919 + epoch)
        model.train()
        total, correct, loss_sum = 0, 0, 0.0
        bar = tqdm(range(0, len(order), batch), desc=f"retrain epoch {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=not progress)
        for i in bar:
            idx = order[i : i + batch]
            x, y = data.x_train[idx], data.y_train[idx]
            if data.augment and not data.is_events:
                x = augment_images(x, gen, cutout=None if cfg.cutout else 0)
            x, y = _inputs(x.to(device)), y.to(device)
            logits, aux = model.forward_with_aux(x)
            loss = nn.functional.cross_entropy(logits, y)
            if aux is not None and cfg.aux_weight > 0:
                loss = loss + cfg.aux_weight * nn.functional.cross_entropy(aux, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            total += len(y)
            correct += int((logits.argmax(1) == y).sum())
            loss_sum += float(loss.detach()) * len(y)
            bar.set_postfix(loss=f"{loss_sum / total:.3f}", acc=f"{100 * correct / total:.1f}")
        sched.step()
        test = evaluate(model, data.x_test, data.y_test, device=device)
        record = {"epoch": epoch + 1, "loss": loss_sum / max(1, total),
                  "train_accuracy": 100 * correct / max(1, total), "test_accuracy": test["accuracy"],
                  "lr": float(opt.param_groups[0]["lr"])}
        history.append(record)
        epoch += 1
        if writer is not None:
            for k, v in record.items():
                if k != "epoch":
                    writer.add_scalar(f"retrain/{k}", v, epoch)
        save_checkpoint(ckpt, model=model, optimizer=opt, scheduler=sched, step=epoch,
                        config={"retrain": asdict(cfg), "genotype": model.genotype.to_json(indent=None)},
                        extra={"epoch": epoch, "history": history})
        if on_epoch is not None:
            on_epoch(epoch, record)
    return history
