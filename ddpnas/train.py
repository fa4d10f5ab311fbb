"""Retraining a discovered cell from scratch: the DARTS CIFAR-10 evaluation protocol.

The protocol (Liu et al., 2019; followed by DDPNAS) is 600 epochs of SGD (batch 96, lr 0.025
cosine-annealed to 0 once per epoch, momentum 0.9, weight decay 3e-4, gradient-norm clip 5), an
auxiliary head weighted 0.4, drop path ramped linearly towards 0.2, crop+flip plus 16x16 cutout;
the reported number is test top-1 after the last epoch.

After every epoch the whole state is checkpointed atomically. An epoch's data order, augmentation
and global RNG are pure functions of (seed, epoch, rank), so a run killed anywhere resumes to the
same numbers (bitwise on CPU with the same thread count). Under torchrun (``WORLD_SIZE`` > 1) each
global batch of the single-process order is split across ranks with DistributedDataParallel, and
only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ddpnas.data import IMAGE_SHAPE, ImageSet, iterate_batches, subset
from ddpnas.errors import ConfigError, DDPNASError
from ddpnas.search import epoch_generator
from ddpnas.spaces.costs import count_flops
from ddpnas.utils import (
    atomic_write,
    environment,
    load_checkpoint,
    run_cost,
    save_checkpoint,
    seed_everything,
    write_json,
)

CHECKPOINT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.csv"
RESULT_NAME = "result.json"
METRICS_COLUMNS = (
    "epoch",
    "lr",
    "drop_path_prob",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "seconds",
)
AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}
SUBSET_SEED = 0  # subsets do not follow the run seed, so seeds differ only in training noise


@dataclass(frozen=True)
class RetrainConfig:
    """One retraining run; the defaults are the DARTS CIFAR-10 protocol.

    ``batch_size`` is global (split evenly across ranks), ``eval_batch_size`` per rank.
    ``train_size``/``test_size`` pick a class-stratified subset (None: the whole set). ``amp`` and
    ``channels_last`` default (None) to on for CUDA, off elsewhere; ``amp_dtype`` float16 also
    turns on loss scaling. ``grad_clip`` 0 disables clipping.
    """

    epochs: int = 600
    batch_size: int = 96
    lr: float = 0.025
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    auxiliary_weight: float = 0.4
    drop_path_prob: float = 0.2
    cutout: int = 16
    train_size: int | None = None
    test_size: int | None = None
    amp: bool | None = None
    amp_dtype: str = "bfloat16"
    channels_last: bool | None = None
    seed: int = 0
    eval_batch_size: int = 256
    eval_every: int = 1

    def __post_init__(self) -> None:
        """Reject impossible values up front rather than hours into a run."""
        for name in ("epochs", "batch_size", "eval_batch_size", "eval_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"retrain {name} must be >= 1, got {getattr(self, name)}")
        for name in ("train_size", "test_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"retrain {name} must be >= 1 or null (all), got {value}")
        for name in ("lr", "momentum", "weight_decay", "grad_clip", "auxiliary_weight", "cutout"):
            if getattr(self, name) < 0:
                raise ConfigError(f"retrain {name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.drop_path_prob < 1:
            raise ConfigError(f"retrain drop_path_prob must be in [0, 1): {self.drop_path_prob}")
        if self.amp_dtype not in AMP_DTYPES:
            raise ConfigError(f"retrain amp_dtype must be one of {list(AMP_DTYPES)}")


def drop_path_schedule(base: float, epoch: int, epochs: int) -> float:
    """Drop-path probability of 0-based ``epoch``: DARTS's linear ramp ``base * epoch / epochs``."""
    return base * epoch / epochs


def cutout(batch: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero one ``size`` x ``size`` square per image, clipped at the borders; in place.

    As in DARTS the square's centre is uniform over the image (so squares near a border are cut
    short) and the zeros go in after normalisation. Centres are drawn from ``generator`` on the
    CPU, so the result does not depend on the device; their copy does not stall the GPU queue.
    """
    b, _, h, w = batch.shape
    device = batch.device
    top = torch.randint(0, h, (b, 1), generator=generator) - size // 2
    left = torch.randint(0, w, (b, 1), generator=generator) - size // 2
    top, left = top.to(device, non_blocking=True), left.to(device, non_blocking=True)
    rows = torch.arange(h, device=device)
    cols = torch.arange(w, device=device)
    in_rows = (rows >= top) & (rows < top + size)
    in_cols = (cols >= left) & (cols < left + size)
    return batch.masked_fill_(in_rows[:, None, :, None] & in_cols[:, None, None, :], 0.0)


def retrain(
    model_fn: Callable[[], nn.Module],
    train_set: ImageSet,
    test_set: ImageSet,
    cfg: RetrainConfig,
    *,
    device: torch.device | str,
    out_dir: str | Path,
    checkpoint: str | Path | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Train ``model_fn()`` from scratch on ``train_set`` and report top-1 on ``test_set``.

    The model's ``forward(x)`` returns ``(logits, aux_logits or None)`` and it reads the float
    attribute ``drop_path_prob``, set here each epoch. Writes ``metrics.csv`` (one row per epoch)
    and ``result.json`` under ``out_dir``; ``checkpoint`` (default ``out_dir/checkpoint.pt``) is
    written every epoch and resumed from when present. Returns the content of ``result.json``.
    ``progress`` shows a bar (None: when stderr is a terminal).
    """
    out = Path(out_dir)
    ckpt = Path(checkpoint) if checkpoint is not None else out / CHECKPOINT_NAME
    with _distributed(torch.device(device)) as (rank, world, dev), _cudnn_autotune(dev):
        run = _Retrainer(model_fn, train_set, test_set, cfg, dev, rank, world)
        if rank == 0:
            _remove_stale_temps([ckpt, out / METRICS_NAME, out / RESULT_NAME])
        if ckpt.exists():
            run.load(ckpt)
        run.wrap()
        show = rank == 0 and (sys.stderr.isatty() if progress is None else progress)
        epochs = run.cfg.epochs
        bar = tqdm(
            total=epochs, initial=len(run.history), disable=not show, desc="retrain", unit="epoch"
        )
        with bar:
            for epoch in range(len(run.history), epochs):
                row = run.epoch(epoch)
                if rank == 0:
                    run.save(ckpt)
                    _write_metrics(out / METRICS_NAME, run.history)
                bar.set_postfix(
                    {k: f"{row[k]:.3f}" for k in ("train_acc", "test_acc") if row[k] is not None}
                )
                bar.update()
        result = run.result()
        if rank == 0:
            write_json(out / RESULT_NAME, result)
        return result


@contextlib.contextmanager
def _distributed(device: torch.device) -> Iterator[tuple[int, int, torch.device]]:
    """(rank, world size, this rank's device); joins the torchrun group when WORLD_SIZE > 1."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield 0, 1, device
        return
    if not dist.is_available():
        raise DDPNASError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    owns_group = not dist.is_initialized()
    if owns_group:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield dist.get_rank(), dist.get_world_size(), device
    finally:
        if owns_group:
            dist.destroy_process_group()


@contextlib.contextmanager
def _cudnn_autotune(device: torch.device) -> Iterator[None]:
    """Let cuDNN pick the fastest kernels on CUDA (not bitwise reproducible there anyway)."""
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = previous or device.type == "cuda"
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


class _Retrainer:
    """Model, optimiser, data shards and history of one run on one rank."""

    def __init__(
        self,
        model_fn: Callable[[], nn.Module],
        train_set: ImageSet,
        test_set: ImageSet,
        cfg: RetrainConfig,
        device: torch.device,
        rank: int,
        world: int,
    ) -> None:
        on_cuda = device.type == "cuda"
        self.cfg = cfg = dataclasses.replace(
            cfg,
            amp=on_cuda if cfg.amp is None else cfg.amp,
            channels_last=on_cuda if cfg.channels_last is None else cfg.channels_last,
        )
        if cfg.batch_size % world:
            raise ConfigError(f"batch_size {cfg.batch_size} does not split over {world} ranks")
        self.device, self.rank, self.world = device, rank, world
        train, test = _take(train_set, cfg.train_size), _take(test_set, cfg.test_size)
        self.n_train, self.n_test = len(train), len(test)
        self.train_images = train.images.to(device)  # uploaded once: batches gather on device
        self.train_labels = train.labels.to(device)
        mine = torch.arange(rank, self.n_test, world)
        self.test_images = test.images[mine].to(device)
        self.test_labels = test.labels[mine].to(device)

        seed_everything(cfg.seed)
        self.net = model_fn().to(device)
        if cfg.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.model: nn.Module = self.net
        self.fingerprint = _fingerprint(cfg, self.net, self.n_train, self.n_test)
        self.optimizer = torch.optim.SGD(
            self.net.parameters(),
            lr=cfg.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
        )
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, cfg.epochs)
        self.scaler = torch.amp.GradScaler(
            device.type, enabled=bool(cfg.amp) and cfg.amp_dtype == "float16"
        )
        self.history: list[dict[str, Any]] = []
        self.wall_seconds = 0.0

    def wrap(self) -> None:
        """Wrap in DDP (after any resume, so every rank starts from the loaded weights)."""
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.net, device_ids=ids)

    def epoch(self, epoch: int) -> dict[str, Any]:
        """Train one epoch, evaluate when due, step the schedule; returns the metrics row."""
        cfg = self.cfg
        start = time.perf_counter()
        lr = self.optimizer.param_groups[0]["lr"]
        drop_path = drop_path_schedule(cfg.drop_path_prob, epoch, cfg.epochs)
        self.net.drop_path_prob = drop_path
        train_loss, train_acc = self._train(epoch)
        self.scheduler.step()
        test_loss = test_acc = None
        if (epoch + 1) % cfg.eval_every == 0 or epoch == cfg.epochs - 1:
            test_loss, test_acc = self._evaluate()
        seconds = time.perf_counter() - start
        self.wall_seconds += seconds
        row = {
            "epoch": epoch,
            "lr": lr,
            "drop_path_prob": drop_path,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "test_loss": test_loss,
            "test_acc": test_acc,
            "seconds": seconds,
        }
        self.history.append(row)
        return row

    def _autocast(self) -> torch.autocast:
        return torch.autocast(
            self.device.type, dtype=AMP_DTYPES[self.cfg.amp_dtype], enabled=bool(self.cfg.amp)
        )

    def _train(self, epoch: int) -> tuple[float, float]:
        """One pass over this rank's shard; (mean cross-entropy of the main head, top-1)."""
        cfg = self.cfg
        generator = epoch_generator(cfg.seed, epoch)
        order = torch.randperm(self.n_train, generator=generator)
        aug_seed, rng_seed = torch.randint(0, 2**62, (self.world, 2), generator=generator)[
            self.rank
        ].tolist()
        torch.manual_seed(rng_seed)  # drop path and any dropout replay exactly after a resume
        augment = torch.Generator().manual_seed(aug_seed)
        local_batch = cfg.batch_size // self.world
        shard = order[self.rank :: self.world][: self.n_train // self.world]
        if len(shard) % local_batch == 1:  # batch norm cannot train on a single image
            shard = shard[:-1]
        shard = shard.to(self.device)
        self.model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.float64, device=self.device)
        for x, y in iterate_batches(
            self.train_images[shard],
            self.train_labels[shard],
            local_batch,
            shuffle=False,
            augment=True,
            generator=augment,
            device=self.device,
            channels_last=bool(cfg.channels_last),
        ):
            if cfg.cutout:
                cutout(x, cfg.cutout, augment)
            with self._autocast():
                logits, aux = self.model(x)
                loss = F.cross_entropy(logits, y)
                objective = loss
                if aux is not None:
                    objective = loss + cfg.auxiliary_weight * F.cross_entropy(aux, y)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(objective).backward()
            if cfg.grad_clip:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.net.parameters(), cfg.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            loss_sum += loss.detach().double() * len(y)
            correct += (logits.argmax(1) == y).sum()
        return self._mean_over_ranks(loss_sum, correct, len(shard))

    @torch.no_grad()
    def _evaluate(self) -> tuple[float, float]:
        """(mean cross-entropy, top-1) on the whole test set, each rank scoring its share."""
        if self.world > 1:  # every rank scores with rank 0's BN statistics, the checkpointed ones
            for buffer in self.net.buffers():
                dist.broadcast(buffer, 0)
        self.net.eval()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.float64, device=self.device)
        for x, y in iterate_batches(
            self.test_images,
            self.test_labels,
            self.cfg.eval_batch_size,
            shuffle=False,
            augment=False,
            generator=torch.Generator(),
            device=self.device,
            channels_last=bool(self.cfg.channels_last),
        ):
            with self._autocast():
                logits, _ = self.net(x)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
            correct += (logits.argmax(1) == y).sum()
        return self._mean_over_ranks(loss_sum, correct, len(self.test_labels))

    def _mean_over_ranks(
        self, loss_sum: torch.Tensor, correct: torch.Tensor, count: int
    ) -> tuple[float, float]:
        totals = torch.stack([loss_sum, correct, loss_sum.new_tensor(float(count))])
        if self.world > 1:
            dist.all_reduce(totals)
        loss, hits, seen = totals.tolist()
        return loss / max(seen, 1.0), hits / max(seen, 1.0)

    def save(self, path: Path) -> None:
        state = {
            "version": CHECKPOINT_VERSION,
            "fingerprint": self.fingerprint,
            "epoch": len(self.history),
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "history": self.history,
            "wall_seconds": self.wall_seconds,
        }
        save_checkpoint(path, state)

    def load(self, path: Path) -> None:
        """Continue from ``path``; refuse a checkpoint of another model, config or version."""
        state = load_checkpoint(path, version=CHECKPOINT_VERSION, fingerprint=self.fingerprint)
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.history = state["history"]
        self.wall_seconds = float(state["wall_seconds"])

    def result(self) -> dict[str, Any]:
        """Final-epoch test top-1, model size and cost, and where and how it was measured."""
        last = self.history[-1]
        return {
            "test_acc": last["test_acc"],
            "test_loss": last["test_loss"],
            "params_m": sum(
                p.numel() for name, p in self.net.named_parameters() if "auxiliary" not in name
            )
            / 1e6,
            "flops_m": count_flops(self.net, (1, *IMAGE_SHAPE)),
            "epochs": self.cfg.epochs,
            "train_images": self.n_train,
            "test_images": self.n_test,
            "world_size": self.world,
            "wall_seconds": self.wall_seconds,
            "environment": environment(self.device),
            "cost": run_cost(self.device, self.world),
            "config": dataclasses.asdict(self.cfg),
        }


def _take(images: ImageSet, size: int | None) -> ImageSet:
    """All of ``images`` (None), or a class-stratified subset that is the same for every seed."""
    if size is None:
        return images
    return images.take(subset(torch.arange(len(images)), size, SUBSET_SEED, labels=images.labels))


def _fingerprint(cfg: RetrainConfig, net: nn.Module, n_train: int, n_test: int) -> str:
    """Identity of a run; the module tree tells apart genotypes whose weights have equal shapes."""
    text = json.dumps(
        {"config": dataclasses.asdict(cfg), "data": [n_train, n_test], "model": repr(net)},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _write_metrics(path: Path, history: list[dict[str, Any]]) -> None:
    """The whole table from memory, atomically: a resumed run never duplicates rows."""

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=METRICS_COLUMNS)
            writer.writeheader()
            for row in history:
                writer.writerow({k: "" if row[k] is None else row[k] for k in METRICS_COLUMNS})

    atomic_write(path, write)


def _remove_stale_temps(paths: list[Path]) -> None:
    """Delete temp files that a killed run left beside ``paths`` (see ``utils.atomic_path``)."""
    for path in paths:
        if path.parent.is_dir():
            for stale in path.parent.glob(f".{path.name}.*.tmp"):
                stale.unlink(missing_ok=True)
