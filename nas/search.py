"""Bi-level first-order architecture search (REFERENCE §6 "Bi-level first-order search").

The training set is split into halves A and B (a seeded permutation). Each step takes an SGD step
(momentum 0.9, weight decay, gradient clipping, cosine learning rate over the epochs) on the weights
with a batch of A and, after the warm-up epochs, an Adam step on the architecture parameters (alphas,
betas) with a batch of B. First order: the architecture gradient is taken at the current weights.

Checkpoints (eventstereo.training.checkpoint: atomic, no pickled code) hold the weights, alphas and
betas, both optimizers, the scheduler, the position in the epoch and the history, every
``checkpoint_every`` steps and at each epoch end; a resumed run continues with the same data order and
gives the same result as an unbroken one. Under ``torchrun`` each rank takes its share of every batch
and DistributedDataParallel averages the gradients; rank 0 writes checkpoints and logs.

The loop is task-agnostic: ``batch(indices)`` returns what ``loss(model, batch)`` needs (for the
classifier a (images, labels) pair), so the stereo search can use it as it is.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from eventstereo.errors import InputError
from eventstereo.training.checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from eventstereo.training.loop import DistInfo, EpochSampler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchConfig:
    epochs: int = 50
    warmup_epochs: int = 15
    batch_size: int = 64
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    arch_lr: float = 1e-3
    arch_weight_decay: float = 1e-3
    grad_clip: float = 5.0
    seed: int = 0
    checkpoint_every: int = 50

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.warmup_epochs:
            raise ValueError(f"--warmup-epochs must be >= 0, got {self.warmup_epochs}")


@dataclass
class SearchState:
    """Where a search is: the next (epoch, step in epoch), the global step and the history."""

    epoch: int = 0
    epoch_step: int = 0
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    sums: dict[str, float] = field(default_factory=dict)  # of the logged scalars, this epoch so far


def split_halves(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """Indices of halves A (weights) and B (architecture) of a training set of n samples."""
    if n < 2:
        raise ValueError(f"a search needs at least 2 training samples, got {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[: n // 2], order[n // 2 : 2 * (n // 2)]


def _arch_and_weights(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    arch = list(model.arch_parameters())
    ids = {id(p) for p in arch}
    return arch, [p for p in model.parameters() if id(p) not in ids]


def bilevel_search(
    model: nn.Module,
    n_train: int,
    batch: Callable[[Tensor], Any],
    loss: Callable[[nn.Module, Any], tuple[Tensor, dict[str, float]]],
    cfg: SearchConfig,
    out_dir: str | Path,
    *,
    dist_info: DistInfo | None = None,
    device: torch.device | str = "cpu",
    resume: bool = True,
    progress: bool = True,
    writer: Any = None,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
    stop_after_steps: int | None = None,
    model_config: dict | None = None,
) -> SearchState:
    """Run (or resume) the search; returns the final state. ``loss(model, batch)`` returns the loss
    and scalars to log; ``stop_after_steps`` ends the run early after that many global steps (as a
    kill would, after the checkpoint that step wrote)."""
    from tqdm import tqdm

    dist_info = dist_info or DistInfo()
    out_dir = Path(out_dir)
    ckpt = out_dir / CHECKPOINT_NAME
    model.to(device)
    arch, weights = _arch_and_weights(model)
    if not arch:
        raise ValueError("the model has no architecture parameters (arch_parameters() is empty)")
    opt_w = torch.optim.SGD(weights, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    opt_a = torch.optim.Adam(arch, lr=cfg.arch_lr, betas=(0.5, 0.999), weight_decay=cfg.arch_weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt_w, T_max=cfg.epochs, eta_min=cfg.lr_min)
    state = SearchState()
    if resume and ckpt.is_file():
        saved = load_checkpoint(ckpt, map_location=device)
        check_same_settings(saved.get("config", {}).get("search"), asdict(cfg), ckpt)
        state.step = restore_checkpoint(saved, model=model, optimizer=opt_w, scheduler=sched)
        opt_a.load_state_dict(saved["extra"]["arch_optimizer"])
        state.epoch, state.epoch_step = saved["extra"]["epoch"], saved["extra"]["epoch_step"]
        state.history = list(saved["extra"]["history"])
        state.sums = dict(saved["extra"]["sums"])
        log.info("resumed %s at epoch %d step %d", ckpt, state.epoch, state.epoch_step)
    net: nn.Module = model
    if dist_info.world_size > 1:
        net = nn.parallel.DistributedDataParallel(model)
    half_a, half_b = split_halves(n_train, cfg.seed)
    per_rank = max(1, cfg.batch_size // dist_info.world_size)
    kw = dict(batch_size=per_rank, rank=dist_info.rank, world_size=dist_info.world_size)
    sampler_a = EpochSampler(len(half_a), seed=cfg.seed, **kw)
    sampler_b = EpochSampler(len(half_b), seed=cfg.seed + 1, **kw)
    steps_per_epoch = len(sampler_a) // per_rank

    def save() -> None:
        if dist_info.is_main:
            extra = {"arch_optimizer": opt_a.state_dict(), "epoch": state.epoch,
                     "epoch_step": state.epoch_step, "history": state.history, "sums": state.sums}
            save_checkpoint(ckpt, model=model, optimizer=opt_w, scheduler=sched, step=state.step,
                            config={"search": asdict(cfg), "model": dict(model_config or {})}, extra=extra)

    while state.epoch < cfg.epochs:
        sampler_a.set_epoch(state.epoch, state.epoch_step * per_rank)
        sampler_b.set_epoch(state.epoch, state.epoch_step * per_rank)
        order_a, order_b = list(sampler_a), list(sampler_b)
        searching = state.epoch >= cfg.warmup_epochs
        desc = f"search epoch {state.epoch + 1}/{cfg.epochs}" + ("" if searching else " (warm-up)")
        bar = tqdm(total=steps_per_epoch, initial=state.epoch_step, desc=desc, leave=False,
                   disable=not (progress and dist_info.is_main))
        for i in range(0, len(order_a) - per_rank + 1, per_rank):
            net.train()
            batch_a = batch(half_a[torch.tensor(order_a[i : i + per_rank])])
            opt_w.zero_grad(set_to_none=True)
            loss_w, scalars = loss(net, batch_a)
            loss_w.backward()
            nn.utils.clip_grad_norm_(weights, cfg.grad_clip)
            opt_w.step()
            logged = {f"weights/{k}": v for k, v in scalars.items()}
            if searching:
                batch_b = batch(half_b[torch.tensor(order_b[i : i + per_rank])])  # the halves are equal
                opt_a.zero_grad(set_to_none=True)
                loss_a, scalars_b = loss(net, batch_b)
                loss_a.backward()
                opt_a.step()
                logged.update({f"arch/{k}": v for k, v in scalars_b.items()})
            for k, v in logged.items():
                state.sums[k] = state.sums.get(k, 0.0) + v
            state.epoch_step += 1
            state.step += 1
            bar.update(1)
            bar.set_postfix({k.split("/")[-1]: f"{v:.3f}" for k, v in list(logged.items())[:2]})
            if writer is not None and dist_info.is_main:
                for k, v in logged.items():
                    writer.add_scalar(k, v, state.step)
            last_of_epoch = state.epoch_step >= steps_per_epoch
            if state.step % cfg.checkpoint_every == 0 and not last_of_epoch:
                save()
            if stop_after_steps is not None and state.step >= stop_after_steps and not last_of_epoch:
                bar.close()
                return state
        bar.close()
        n = max(1, state.epoch_step)
        record = {"epoch": state.epoch + 1, "lr": float(opt_w.param_groups[0]["lr"]),
                  **{k: v / n for k, v in state.sums.items()},
                  "alphas": [torch.softmax(p.detach().float().cpu(), -1).tolist() for p in arch],
                  "arch_entropy": [arch_entropy(torch.softmax(p.detach().float().cpu(), -1)) for p in arch]}
        sched.step()
        state.history.append(record)
        state.epoch += 1
        state.epoch_step = 0
        state.sums = {}
        save()
        if on_epoch is not None and dist_info.is_main:
            on_epoch(state.epoch, record)
        if stop_after_steps is not None and state.step >= stop_after_steps:
            return state
    return state


def check_resumable(ckpt: Path, current: dict) -> None:
    """Refuse to resume a checkpoint whose config differs from ``current`` in any key both have."""
    saved = load_checkpoint(ckpt).get("config", {})
    for key, value in current.items():
        if key in saved:
            if isinstance(value, dict):
                check_same_settings(saved[key], value, ckpt)
            elif saved[key] != value:
                raise InputError(f"this checkpoint was written with another {key}; rerun with the "
                                 "same options to resume, or pass --no-resume (or another --out)",
                                 source=str(ckpt))


def check_same_settings(saved: dict | None, current: dict, ckpt: Path) -> None:
    """A checkpoint resumes only the run that wrote it: other settings (epochs change the schedule)
    would silently give another run, so they are an InputError naming the first difference."""
    if saved is None or saved == current:
        return
    diff = next(k for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k))
    raise InputError(f"this checkpoint was written with {diff}={saved.get(diff)!r}, not "
                     f"{current.get(diff)!r}; rerun with the same options to resume, or pass --no-resume "
                     "(or another --out)", source=str(ckpt))


def classification_loss(model: nn.Module, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, dict[str, float]]:
    """Cross-entropy of the supernet's logits and the batch accuracy (%)."""
    x, y = batch
    logits = model(x)
    loss = nn.functional.cross_entropy(logits, y)
    acc = 100.0 * float((logits.argmax(1) == y).float().mean())
    return loss, {"loss": float(loss.detach()), "accuracy": acc}


def arch_entropy(weights: Tensor) -> float:
    """Mean entropy of softmaxed architecture rows, relative to uniform (1): falls as the search decides."""
    p = weights.clamp_min(1e-12)
    return float(-(p * p.log()).sum(-1).mean()) / math.log(weights.shape[-1])
