"""The stereo training loop: truncated BPTT over window sequences, Adam with step decay, resumable.

Runs unchanged as one process or under ``torchrun`` (DistributedDataParallel; gloo on CPU, nccl on
CUDA). Rank 0 alone writes TensorBoard logs, checkpoints and the final model file. Data order and crops
are functions of (seed, epoch, index), and checkpoints record the step, so a resumed run continues
where the killed one stopped.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler

from eventstereo.training.checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from eventstereo.training.ema import WeightAverage

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """How to train; ``iterations`` counts sequences (batches), ``lr_milestones`` are iterations at which
    the learning rate is multiplied by ``lr_gamma``; ``tbptt`` is the number of windows backpropagated
    together (0 = the whole sequence); ``ema_decay`` > 0 keeps a moving average of the weights
    (WeightAverage), which is then what validation measures and what the run exports."""

    iterations: int = 1000
    batch_size: int = 2
    lr: float = 1e-3
    lr_milestones: list[int] = field(default_factory=list)
    lr_gamma: float = 0.5
    tbptt: int = 0
    grad_clip: float = 0.0
    ema_decay: float = 0.0
    seed: int = 0
    num_workers: int = 0
    log_every: int = 10
    checkpoint_every: int = 100
    validate_every: int = 0
    device: str = "cpu"
    progress: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class TrainHook:
    """Extension points of the training loop; the base class does nothing at each of them.

    A searcher (e.g. nas.temporal's TPS/HNS/DGS) owns some parameters, which the loop then leaves out
    of the weight optimizer; it may add to the loss, step its own optimizer after each backward, act
    after each iteration (given a closure that computes a fresh sequence's loss on the current batch),
    and keep state in the checkpoints so a resumed run continues it. Its state is restored before the
    model's, so a hook that changed the model's structure (swapped layers) can first redo that.
    """

    def parameters(self) -> Iterable[torch.nn.Parameter]:
        return ()

    def loss(self, model: torch.nn.Module, loss: torch.Tensor) -> torch.Tensor:
        return loss

    def after_backward(self, model: torch.nn.Module) -> None:
        pass

    def after_iteration(self, model: torch.nn.Module, step: int,
                        sequence_loss: Callable[[], torch.Tensor]) -> None:
        pass

    def track(self, copy: torch.nn.Module) -> None:
        """A copy of the model the loop keeps (the weight average): structural changes apply to it too."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def _leave_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def init_distributed(device: str = "cpu") -> DistInfo:
    """Join the process group torchrun describes in the environment; a no-op for a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
        # every caller leaves the group at exit, not only train(): a process exiting with a live gloo
        # group can abort in its threads ("terminate called without an active exception")
        atexit.register(_leave_process_group)
    if device.startswith("cuda"):
        torch.cuda.set_device(info.local_rank)
    return info


class EpochSampler(Sampler[int]):
    """A seeded permutation per epoch, sharded across ranks and cut to whole batches so every rank runs
    the same number of steps; it can start part-way through an epoch when a run resumes."""

    def __init__(self, n: int, *, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        self.n, self.seed, self.rank, self.world_size = n, seed, rank, world_size
        self.epoch, self.skip = 0, 0
        self.per_rank = (math.ceil(n / world_size) // batch_size) * batch_size
        if self.per_rank == 0:
            raise ValueError(
                f"{n} sequences cannot fill a batch of {batch_size} on each of {world_size} ranks")

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        while len(order) < self.per_rank * self.world_size:  # pad by repeating, as DistributedSampler does
            order += order[: self.per_rank * self.world_size - len(order)]
        return iter(order[self.rank :: self.world_size][self.skip : self.per_rank])

    def __len__(self) -> int:
        return self.per_rank - self.skip


def stereo_loss(cost: torch.Tensor, gt: torch.Tensor, max_disparity: int) -> torch.Tensor:
    """Sub-pixel cross-entropy over pixels whose GT lies inside the network's disparity range."""
    from eventstereo.stereo import subpixel_cross_entropy

    gt = torch.where((gt >= 0) & (gt <= max_disparity), gt, torch.full_like(gt, float("inf")))
    if not torch.isfinite(gt).any():
        return cost.sum() * 0.0  # keeps DDP's gradient exchange in step on an all-invalid crop
    return subpixel_cross_entropy(cost, gt)


def train_sequence(
    model: torch.nn.Module,
    net: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    *,
    tbptt: int = 0,
    grad_clip: float = 0.0,
    ema: WeightAverage | None = None,
    hooks: Sequence[TrainHook] = (),
) -> float:
    """One batch of sequences: reset state, then forward/backward/step per chunk of ``tbptt`` windows,
    detaching state between chunks (truncated BPTT). ``net`` is what to call (maybe DDP-wrapped),
    ``model`` the bare network (for reset/detach); ``ema`` is updated after every optimizer step.
    Returns the mean loss over chunks."""
    left = batch["left"].transpose(0, 1)  # (B, T, ...) from the loader -> (T, B, ...)
    right = batch["right"].transpose(0, 1)
    gt = batch["gt"].transpose(0, 1)
    steps = left.shape[0]
    chunk = tbptt or steps
    model.reset()
    losses = []
    for s in range(0, steps, chunk):
        cost = net(left[s : s + chunk], right[s : s + chunk])
        loss = stereo_loss(cost.flatten(0, 1), gt[s : s + chunk].flatten(0, 1), model.max_disparity)
        for hook in hooks:
            loss = hook.loss(model, loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for hook in hooks:
            hook.after_backward(model)
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        if ema is not None:
            ema.update(model)
        model.detach()
        losses.append(float(loss.detach()))
    return sum(losses) / len(losses)


@torch.no_grad()
def evaluate_sequences(model: torch.nn.Module, loader: DataLoader, fxb: float, device: torch.device) -> dict:
    """Stereo metrics (REFERENCE §2) of the model over a loader of uncropped sequences."""
    from eventstereo.stereo import StereoMetrics, subpixel_map

    was_training = model.training
    model.eval()
    metrics = StereoMetrics()
    for batch in loader:
        model.reset()
        cost = model(batch["left"].transpose(0, 1).to(device), batch["right"].transpose(0, 1).to(device))
        pred = subpixel_map(cost.flatten(0, 1))
        gt = batch["gt"].transpose(0, 1).flatten(0, 1)
        for p, g in zip(pred.cpu().numpy(), gt.numpy()):
            metrics.update(p, g, fxb)
    model.reset()
    model.train(was_training)
    return metrics.summary()


def sequence_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The task loss of a batch of whole sequences from a reset state (what a TrainHook re-evaluates)."""
    model.reset()
    cost = model(batch["left"].transpose(0, 1), batch["right"].transpose(0, 1))
    return stereo_loss(cost.flatten(0, 1), batch["gt"].transpose(0, 1).flatten(0, 1), model.max_disparity)


def _follow_schedule(optimizer: torch.optim.Optimizer, scheduler, cfg: TrainConfig, step: int) -> None:
    """Make a resumed run follow ``cfg``'s schedule rather than the checkpoint's, so a run can be
    extended or its decay moved: lr = lr0 * gamma ** (milestones passed by ``step``)."""
    scheduler.milestones = Counter(cfg.lr_milestones)
    scheduler.gamma = cfg.lr_gamma
    passed = sum(1 for m in cfg.lr_milestones if m <= step)
    for group in optimizer.param_groups:
        group["initial_lr"] = cfg.lr
        group["lr"] = cfg.lr * cfg.lr_gamma**passed
    scheduler.base_lrs = [cfg.lr] * len(optimizer.param_groups)
    scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def train(
    model: torch.nn.Module,
    dataset,
    cfg: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    resume: bool = True,
    run_config: dict | None = None,
    val_loader: DataLoader | None = None,
    fxb: float = 1.0,
    on_finish: Callable[[torch.nn.Module], None] | None = None,
    hooks: Sequence[TrainHook] = (),
) -> dict:
    """Train ``model`` on a WindowSequences ``dataset`` for ``cfg.iterations`` batches.

    Resumes from ``out_dir/checkpoint.pt`` when it exists and ``resume`` is true. ``run_config`` (plain
    data) is stored in checkpoints so a run can be traced to its settings. ``on_finish(model)`` runs on
    rank 0 after the last step (e.g. to export the model file). ``hooks`` (TrainHook) extend each
    iteration; their parameters are not trained by the weight optimizer. Returns the last logged
    statistics.
    """
    out = Path(out_dir)
    info = init_distributed(cfg.device)
    device = torch.device(cfg.device if not cfg.device.startswith("cuda") else f"cuda:{info.local_rank}")
    model.to(device).train()
    net: torch.nn.Module = model
    if info.world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(  # a hook may retire parameters mid-run
            model, device_ids=[info.local_rank] if device.type == "cuda" else None,
            find_unused_parameters=bool(hooks))
    owned = {id(p) for hook in hooks for p in hook.parameters()}
    optimizer = torch.optim.Adam([p for p in model.parameters() if id(p) not in owned], lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(cfg.lr_milestones),
                                                     gamma=cfg.lr_gamma)
    ckpt_path = out / CHECKPOINT_NAME
    step = 0
    state = load_checkpoint(ckpt_path, map_location=device) if resume and ckpt_path.exists() else None
    if state is not None:
        for hook, hook_state in zip(hooks, state["extra"].get("hooks", [])):
            hook.load_state_dict(hook_state)  # first: a hook may change the model's structure back
        step = restore_checkpoint(state, model=model, optimizer=optimizer, scheduler=scheduler)
        _follow_schedule(optimizer, scheduler, cfg, step)
        log.info("resumed from %s at step %d (lr %.2e)", ckpt_path, step, scheduler.get_last_lr()[0])
    ema = None
    if cfg.ema_decay > 0:
        model.reset()
        ema = WeightAverage(model, cfg.ema_decay)
        for hook in hooks:
            hook.track(ema.module)
        if state is not None and "ema" in state["extra"]:
            ema.load_state_dict(state["extra"]["ema"])
        elif state is not None:
            log.warning("%s holds no weight average: it starts again from the resumed weights", ckpt_path)
    final = ema.module if ema is not None else model  # what is validated and exported
    sampler = EpochSampler(len(dataset), batch_size=cfg.batch_size, seed=cfg.seed, rank=info.rank,
                           world_size=info.world_size)
    batches_per_epoch = sampler.per_rank // cfg.batch_size
    loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
                        drop_last=True, pin_memory=device.type == "cuda")

    writer = None
    if info.is_main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"), purge_step=step or None)
    bar = None
    if info.is_main and cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.iterations, initial=step, unit="it", dynamic_ncols=True)

    def checkpoint(at: int) -> None:
        if info.is_main:
            save_checkpoint(ckpt_path, model=model, optimizer=optimizer, scheduler=scheduler, step=at,
                            config={"train": cfg.to_dict(), "run": run_config or {}},
                            extra={**({"ema": ema.state_dict()} if ema is not None else {}),
                                   **({"hooks": [h.state_dict() for h in hooks]} if hooks else {})})

    stats: dict = {}
    loss_sum, loss_n, t_last = 0.0, 0, time.perf_counter()
    try:
        while step < cfg.iterations:
            epoch, skip = divmod(step, batches_per_epoch)
            sampler.set_epoch(epoch, skip * cfg.batch_size)
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
            for batch in loader:
                batch = _to(batch, device)
                loss = train_sequence(model, net, batch, optimizer, tbptt=cfg.tbptt,
                                      grad_clip=cfg.grad_clip, ema=ema, hooks=hooks)
                scheduler.step()
                step += 1
                for hook in hooks:
                    hook.after_iteration(model, step, lambda b=batch: sequence_loss(model, b))
                loss_sum, loss_n = loss_sum + loss, loss_n + 1
                if bar is not None:
                    bar.update()
                    bar.set_postfix(loss=f"{loss:.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
                if step % cfg.log_every == 0 or step == cfg.iterations:
                    now = time.perf_counter()
                    stats = {"step": step, "loss": loss_sum / loss_n, "lr": scheduler.get_last_lr()[0],
                             "seconds_per_it": (now - t_last) / loss_n}
                    if writer is not None:
                        writer.add_scalar("train/loss", stats["loss"], step)
                        writer.add_scalar("train/lr", stats["lr"], step)
                        writer.add_scalar("train/seconds_per_it", stats["seconds_per_it"], step)
                    log.info("step %d loss %.4f lr %.2e", step, stats["loss"], stats["lr"])
                    loss_sum, loss_n, t_last = 0.0, 0, now
                if val_loader is not None and cfg.validate_every and info.is_main and (
                        step % cfg.validate_every == 0 or step == cfg.iterations):
                    val = evaluate_sequences(final, val_loader, fxb, device)
                    stats.update({f"val_{k}": v for k, v in val.items()})
                    for k, v in val.items():
                        if writer is not None and isinstance(v, (int, float)):
                            writer.add_scalar(f"val/{k}", v, step)
                    note = ""
                    if ema is not None:  # the raw iterate too, to see what the average buys
                        stats["val_raw_one_pa"] = evaluate_sequences(model, val_loader, fxb, device)["one_pa"]
                        note = f" (weight average; the last iterate {stats['val_raw_one_pa']:.2f} %)"
                    log.info("step %d validation 1PA %.2f %%%s", step, val.get("one_pa", float("nan")), note)
                if step % cfg.checkpoint_every == 0 or step == cfg.iterations:
                    checkpoint(step)
                if step >= cfg.iterations:
                    break
        if info.is_main and on_finish is not None:
            on_finish(final)
        if info.world_size > 1:
            dist.barrier()  # the others wait until rank 0 has written its files
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
        if info.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()
    return stats
