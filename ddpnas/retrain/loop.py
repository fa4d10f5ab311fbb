"""Retraining a discovered cell from scratch: the training loop, its checkpoints and output files.

The run's config (defaults: the DARTS CIFAR-10 evaluation protocol), batch sources, augmentation
and processes are in :mod:`ddpnas.retrain.setup`. After every epoch the whole state is checkpointed
atomically. An epoch's data order, augmentation and global RNG are pure functions of (seed, epoch,
rank), so a run killed anywhere resumes to the same numbers (bitwise on CPU with the same thread
count). Under torchrun (``WORLD_SIZE`` > 1) each global batch of the single-process order is split
across ranks with DistributedDataParallel, and only rank 0 writes files.

The same loop retrains ImageNet networks: the data then come from a streaming
:class:`~ddpnas.data.imagenet.ImageNetSource` (DataLoader workers, or JPEGs decoded on the GPU)
instead of tensors in memory; top-5 is reported beside top-1.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ddpnas.data.batching import device_generator
from ddpnas.data.cifar10 import ImageSet
from ddpnas.engine.cuda_graph import CapturedStep
from ddpnas.engine.loop import epoch_generator
from ddpnas.errors import ConfigError
from ddpnas.generation.latency import inference_latency
from ddpnas.io.checkpoints import resume_state, save_checkpoint
from ddpnas.io.files import atomic_write, write_json
from ddpnas.io.progress import duration, on_terminal, tracked
from ddpnas.retrain.setup import (
    AMP_DTYPES,
    BatchSource,
    MemorySource,
    RetrainConfig,
    cutout,
    distributed,
    drop_path_schedule,
    kernels,
    micro_batches,
    param_groups,
    precision,
    subset_indices,
    sync_batchnorm,
)
from ddpnas.runtime import environment, run_cost, runtime_fingerprint, seed_everything
from ddpnas.spaces.complexity import count_flops, count_macs

log = logging.getLogger(__name__)
CHECKPOINT_VERSION = 1
# Protocol fields added after checkpoints existed, with the value that reproduces the code before
# them: at that value they stay out of the fingerprint, so those checkpoints still resume.
LATER_FIELDS: dict[str, Any] = {
    "accumulate": 1,
    "lr_step": "epoch",
    "crop_scale": (0.08, 1.0),
    "crop_ratio": (3 / 4, 4 / 3),
    "jitter": (0.0, 0.0, 0.0, 0.0),
}
CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.csv"
RESULT_NAME = "result.json"
METRICS_COLUMNS = (
    "epoch", "lr", "drop_path_prob", "train_loss", "train_acc", "test_loss", "test_acc",
    "test_top5", "seconds",
)  # fmt: skip


def retrain(
    model_fn: Callable[[], nn.Module],
    train_set: ImageSet | BatchSource,
    test_set: ImageSet | None,
    cfg: RetrainConfig,
    *,
    device: torch.device | str,
    out_dir: str | Path,
    checkpoint: str | Path | None = None,
    progress: bool | None = None,
    extra: dict[str, Any] | None = None,
    stale_checkpoint: str = "error",
    latency: bool = False,
) -> dict[str, Any]:
    """Train ``model_fn()`` from scratch on ``train_set`` and report top-1/5 on ``test_set``.

    ``train_set`` is an ImageSet (with ``test_set``) or a streaming :class:`BatchSource` holding
    both (``test_set`` None). The model's ``forward(x)`` returns logits or ``(logits, aux_logits
    or None)``; a float attribute ``drop_path_prob`` is set on it each epoch (cells read it).
    Writes ``metrics.csv`` (one row per epoch) and ``result.json`` under ``out_dir``;
    ``checkpoint`` (default ``out_dir/checkpoint.pt``) is written every epoch and resumed from
    when present; one of another run is refused, or removed with ``stale_checkpoint="restart"``
    (:func:`ddpnas.io.checkpoints.resume_state`). ``latency`` adds the trained network's batch-1
    latency on ``device`` (:func:`ddpnas.generation.latency.inference_latency`). Returns the
    content of ``result.json`` (plus the keys of ``extra``). ``progress`` shows a bar (None: when
    stderr is a terminal).
    """
    out = Path(out_dir)
    ckpt = Path(checkpoint) if checkpoint is not None else out / CHECKPOINT_NAME
    with distributed(torch.device(device)) as (rank, world, dev), kernels(dev, cfg):
        run = Retrainer(model_fn, train_set, test_set, cfg, dev, rank, world)
        if rank == 0:
            _remove_stale_temps([ckpt, out / METRICS_NAME, out / RESULT_NAME])
        # rank 0 looks first: a stale checkpoint it removes is gone before the other ranks look
        if world > 1 and rank > 0:
            dist.barrier()
        run.load(ckpt, stale_checkpoint)
        if world > 1 and rank == 0:
            dist.barrier()
        run.wrap()
        show = rank == 0 and (on_terminal() if progress is None else progress)
        epochs, first = run.cfg.epochs, len(run.history)
        bar = tqdm(total=epochs, initial=first, disable=not show, desc="retrain", unit="epoch")
        with bar, logging_redirect_tqdm():
            for epoch in range(first, epochs):
                row = run.epoch(epoch)
                if rank == 0:
                    run.save(ckpt)
                    _write_metrics(out / METRICS_NAME, run.history)
                    log.info(epoch_line(row, epochs, run.images_per_second, _eta(run, first)))
                bar.set_postfix(
                    {k: f"{row[k]:.3f}" for k in ("train_acc", "test_acc") if row[k] is not None}
                )
                bar.update()
        result = {**run.result(), **(extra or {})}
        if rank == 0:
            if latency:
                result["latency"] = inference_latency(run.net, run.source.image_shape, dev)
            write_json(out / RESULT_NAME, result)
        return result


def _eta(run: Retrainer, first: int) -> float:
    """Seconds left: the epochs to go at the mean pace of those run by this process."""
    done = run.history[first:]
    pace = sum(r["seconds"] for r in done) / max(len(done), 1)
    return pace * (run.cfg.epochs - len(run.history))


def epoch_line(row: dict[str, Any], epochs: int, images_per_second: float, eta: float) -> str:
    """One log line per epoch: loss, top-1 (and the test's when evaluated), lr, speed, ETA."""
    text = (
        f"retrain epoch {row['epoch'] + 1}/{epochs}: train loss {row['train_loss']:.4f}, "
        f"top-1 {100 * row['train_acc']:.2f}%"
    )
    if row["test_acc"] is not None:
        text += (
            f"; test loss {row['test_loss']:.4f}, top-1 {100 * row['test_acc']:.2f}%, "
            f"top-5 {100 * row['test_top5']:.2f}%"
        )
    return (
        f"{text}; lr {row['lr']:.3g}; {images_per_second:.0f} images/s; "
        f"{row['seconds']:.1f} s; ETA {duration(eta)}"
    )


class Retrainer:
    """Model, optimiser, data shards and history of one run on one rank."""

    #: Training speed of the last epoch (images per second, all ranks), for the log.
    images_per_second = float("nan")

    def __init__(
        self,
        model_fn: Callable[[], nn.Module],
        train_set: ImageSet | BatchSource,
        test_set: ImageSet | None,
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
        if cfg.batch_size % (world * cfg.accumulate):
            raise ConfigError(
                f"batch_size {cfg.batch_size} does not split over {world} ranks x "
                f"{cfg.accumulate} micro-batches (accumulate)"
            )
        if cfg.cuda_graphs and world > 1:
            raise ConfigError("retrain cuda_graphs runs in one process; set gpus: 1 or turn it off")
        self.device, self.rank, self.world = device, rank, world
        if isinstance(train_set, ImageSet):
            if test_set is None:
                raise ConfigError("retrain: an in-memory train set needs a test set")
            self.source: BatchSource = MemorySource(
                train_set, test_set, device, bool(cfg.channels_last)
            )
        else:
            self.source = train_set
        self.train_index = subset_indices(self.source.train_labels, cfg, "train_size")
        test_index = subset_indices(self.source.test_labels, cfg, "test_size")
        self.n_train, self.n_test = len(self.train_index), len(test_index)
        self.test_index = test_index[rank::world]

        seed_everything(cfg.seed)
        self.net = model_fn().to(device)
        if cfg.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.model: nn.Module = self.net
        self.fingerprint = {
            "config": _fingerprint(cfg, self.net, self.n_train, self.n_test),
            **runtime_fingerprint(device),
        }
        self.optimizer = torch.optim.SGD(
            param_groups(self.net, cfg),
            lr=cfg.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            nesterov=cfg.nesterov,
        )
        self.scheduler = _scheduler(self.optimizer, cfg, self.steps_per_epoch())
        self.scaler = torch.amp.GradScaler(
            device.type, enabled=bool(cfg.amp) and cfg.amp_dtype == "float16"
        )
        self.history: list[dict[str, Any]] = []
        self.wall_seconds = 0.0

    def wrap(self) -> None:
        """Wrap in DDP (after any resume, so every rank starts from the loaded weights)."""
        if self.world > 1:
            self.net = sync_batchnorm(self.net, self.world, self.device)
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
        self.images_per_second = self.n_train / max(time.perf_counter() - start, 1e-9)
        if cfg.lr_step == "epoch":
            self.scheduler.step()
        test_loss = test_acc = test_top5 = None
        if (epoch + 1) % cfg.eval_every == 0 or epoch == cfg.epochs - 1:
            test_loss, test_acc, test_top5 = self._evaluate()
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
            "test_top5": test_top5,
            "seconds": seconds,
        }
        self.history.append(row)
        return row

    def _autocast(self) -> torch.autocast:
        return torch.autocast(
            self.device.type,
            dtype=AMP_DTYPES[self.cfg.amp_dtype],
            enabled=bool(self.cfg.amp),
            cache_enabled=not self.cfg.cuda_graphs,  # a graph must not keep a step's casts
        )

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One SGD step on a batch (in ``accumulate`` micro-batches); (main-head loss, logits),
        detached."""
        cfg = self.cfg
        self.optimizer.zero_grad(set_to_none=True)
        sizes = micro_batches(len(y), cfg.batch_size // self.world // cfg.accumulate)
        if len(sizes) == 1:
            loss, logits = self._backward(x, y, 1.0)
        else:
            parts = [
                self._backward(xs, ys, len(ys) / len(y), sync=i == len(sizes) - 1)
                for i, (xs, ys) in enumerate(zip(x.split(sizes), y.split(sizes), strict=True))
            ]
            loss = torch.stack([part[0] for part in parts]).sum()
            logits = torch.cat([part[1] for part in parts])
        if cfg.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.net.parameters(), cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss, logits

    def _backward(
        self, x: torch.Tensor, y: torch.Tensor, weight: float, sync: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward and backward of one (micro-)batch whose loss weighs ``weight`` of the step;
        DDP all-reduces the gradients only on the ``sync`` one (the last)."""
        cfg = self.cfg
        skip = not sync and isinstance(self.model, DistributedDataParallel)
        with self.model.no_sync() if skip else contextlib.nullcontext():  # forward and backward
            with self._autocast():
                logits, aux = _outputs(self.model(x))
                loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
                objective = loss
                if aux is not None:
                    objective = loss + cfg.auxiliary_weight * F.cross_entropy(
                        aux, y, label_smoothing=cfg.label_smoothing
                    )
                if weight != 1.0:
                    objective = objective * weight
            self.scaler.scale(objective).backward()
        return (loss.detach() * weight if weight != 1.0 else loss.detach()), logits.detach()

    def _train(self, epoch: int) -> tuple[float, float]:
        """One pass over this rank's shard; (mean cross-entropy of the main head, top-1)."""
        cfg = self.cfg
        generator = epoch_generator(cfg.seed, epoch)
        order = torch.randperm(self.n_train, generator=generator)
        aug_seed, rng_seed = torch.randint(0, 2**62, (self.world, 2), generator=generator)[
            self.rank
        ].tolist()
        torch.manual_seed(rng_seed)  # drop path and any dropout replay exactly after a resume
        augment = device_generator(torch.Generator().manual_seed(aug_seed), self.device)
        local_batch = cfg.batch_size // self.world
        shard = order[self.rank :: self.world][: self.shard_size()]
        self.model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.float64, device=self.device)
        # lr and drop-path probability are fixed for the epoch: capture its step once
        step = CapturedStep(self.train_step, self.device) if cfg.cuda_graphs else self.train_step
        batches = self.source.train_batches(self.train_index[shard], local_batch, augment)
        if self.rank == 0:
            total = math.ceil(len(shard) / local_batch)
            batches = tracked(batches, f"epoch {epoch + 1} training", total, unit="batches")
        for x, y in batches:
            if cfg.cutout:
                cutout(x, cfg.cutout, augment)
            loss, logits = step(x, y)
            if cfg.lr_step == "iteration":
                self.scheduler.step()
            loss_sum += loss.double() * len(y)
            correct += (logits.argmax(1) == y).sum()
        return self._mean_over_ranks(loss_sum, correct, len(shard))[:2]

    def shard_size(self) -> int:
        """Training images of one rank per epoch (a last batch of one image is dropped: batch
        norm cannot train on a single image)."""
        size = self.n_train // self.world
        return size - 1 if size % (self.cfg.batch_size // self.world) == 1 else size

    def steps_per_epoch(self) -> int:
        return math.ceil(self.shard_size() / (self.cfg.batch_size // self.world))

    @torch.inference_mode()
    def _evaluate(self) -> tuple[float, float, float]:
        """(mean cross-entropy, top-1, top-5) on the whole test set, each rank scoring its share."""
        if self.world > 1:  # every rank scores with rank 0's BN statistics, the checkpointed ones
            for buffer in self.net.buffers():
                dist.broadcast(buffer, 0)
        self.net.eval()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.float64, device=self.device)
        top5 = torch.zeros((), dtype=torch.float64, device=self.device)
        for x, y in self.source.test_batches(self.test_index, self.cfg.eval_batch_size):
            with self._autocast():
                logits, _ = _outputs(self.net(x))
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
            correct += (logits.argmax(1) == y).sum()
            best = logits.topk(min(5, logits.shape[1]), dim=1).indices
            top5 += (best == y[:, None]).any(1).sum()
        return self._mean_over_ranks(loss_sum, correct, len(self.test_index), top5)

    def _mean_over_ranks(
        self,
        loss_sum: torch.Tensor,
        correct: torch.Tensor,
        count: int,
        top5: torch.Tensor | None = None,
    ) -> tuple[float, float, float]:
        extra = loss_sum.new_zeros(()) if top5 is None else top5
        totals = torch.stack([loss_sum, correct, extra, loss_sum.new_tensor(float(count))])
        if self.world > 1:
            dist.all_reduce(totals)
        loss, hits, hits5, seen = totals.tolist()
        return loss / max(seen, 1.0), hits / max(seen, 1.0), hits5 / max(seen, 1.0)

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

    def load(self, path: Path, stale: str) -> None:
        """Continue from ``path`` if it holds this run (see
        :func:`ddpnas.io.checkpoints.resume_state`)."""
        state = resume_state(
            path, version=CHECKPOINT_VERSION, fingerprint=self.fingerprint, stale=stale
        )
        if state is None:
            return
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
            "test_top5": last["test_top5"],
            "test_loss": last["test_loss"],
            "params_m": sum(
                p.numel() for name, p in self.net.named_parameters() if "auxiliary" not in name
            )
            / 1e6,
            "flops_m": count_flops(self.net, (1, *self.source.image_shape)),
            "macs_m": count_macs(self.net, (1, *self.source.image_shape)) / 1e6,
            "epochs": self.cfg.epochs,
            "train_images": self.n_train,
            "test_images": self.n_test,
            "world_size": self.world,
            "precision": precision(self.cfg, self.device),
            "sync_bn": any(isinstance(m, nn.SyncBatchNorm) for m in self.net.modules()),
            "wall_seconds": self.wall_seconds,
            "environment": environment(self.device),
            "cost": run_cost(self.device, self.world),
            "config": {  # as JSON reads it back: tuples as lists
                k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self.cfg).items()
            },
        }


def _scheduler(
    optimizer: torch.optim.Optimizer, cfg: RetrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Cosine to 0 over the run, stepped per epoch (DARTS) or per optimiser step (ProxylessNAS:
    ``lr_step`` iteration), or ``lr_gamma`` per epoch (DARTS's ImageNet protocol)."""
    if cfg.lr_schedule == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, cfg.lr_gamma)
    if cfg.lr_step == "epoch":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, cfg.epochs)
    total = cfg.epochs * steps_per_epoch
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    )


def _outputs(out: torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]) -> tuple[Any, Any]:
    """(logits, aux logits or None) of a model returning either form."""
    return out if isinstance(out, tuple) else (out, None)


def _fingerprint(cfg: RetrainConfig, net: nn.Module, n_train: int, n_test: int) -> str:
    """Identity of a run; the module tree tells apart genotypes whose weights have equal shapes.

    ``cuda_graphs`` changes speed, not results, so a run may resume with it flipped (and
    checkpoints written before the switch existed still match). Fields added later
    (:data:`LATER_FIELDS`) count only when they differ from the behaviour before them.
    """
    config = {
        k: v
        for k, v in dataclasses.asdict(cfg).items()
        if k != "cuda_graphs" and not (k in LATER_FIELDS and v == LATER_FIELDS[k])
    }
    text = json.dumps(
        {"config": config, "data": [n_train, n_test], "model": repr(net)},
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
    """Delete temp files that a killed run of this job left beside ``paths``: only names that
    ``ddpnas.io.files.temp_sibling`` makes (``.<name>.<32 hex digits>.tmp``), under the job's
    lock, so nothing another process or the user made is touched."""
    hex32 = "[0-9a-f]" * 32
    for path in paths:
        if path.parent.is_dir():
            for stale in path.parent.glob(f".{path.name}.{hex32}.tmp"):
                stale.unlink(missing_ok=True)
