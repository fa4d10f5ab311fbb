"""What a retraining run is made of: its config (defaults: the DARTS CIFAR-10 protocol), where its
batches come from, its augmentation and drop-path schedule, its optimiser's parameter groups, and
the processes it runs in (torchrun ranks, SyncBN, cuDNN autotuning).

The protocol (Liu et al., 2019; followed by DDPNAS) is 600 epochs of SGD (batch 96, lr 0.025
cosine-annealed to 0 once per epoch, momentum 0.9, weight decay 3e-4, gradient-norm clip 5), an
auxiliary head weighted 0.4, drop path ramped linearly towards 0.2, crop+flip plus 16x16 cutout;
the reported number is test top-1 after the last epoch. The options also cover the ImageNet
recipes (label smoothing, no weight decay on BN, cosine or per-epoch exponential lr, Nesterov).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import nn

from ddpnas.data.batching import iterate_batches
from ddpnas.data.cifar10 import ImageSet, subset
from ddpnas.errors import ConfigError, DDPNASError

AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}
LR_SCHEDULES = ("cosine", "exponential")
LR_STEPS = ("epoch", "iteration")
SUBSET_SEED = 0  # subsets do not follow the run seed, so seeds differ only in training noise


@dataclass(frozen=True)
class RetrainConfig:
    """One retraining run; the defaults are the DARTS CIFAR-10 protocol.

    ``batch_size`` is global (split evenly across ranks), ``eval_batch_size`` per rank.
    ``train_size``/``test_size`` pick a class-stratified subset (None: the whole set). ``amp`` is an
    opt-in speed switch (the protocol is fp32; None: on for CUDA); ``channels_last`` defaults
    (None) to on for CUDA, off elsewhere; ``amp_dtype`` float16 also turns on loss scaling.
    ``grad_clip`` 0 disables clipping.
    ``cuda_graphs`` captures the training step once per epoch and replays it
    (:mod:`ddpnas.engine.cuda_graph`; one process only, not with float16 loss scaling).
    ``accumulate`` splits each rank's batch into that many micro-batches, one forward and backward
    each, and takes one optimiser step: the per-GPU memory is that of batch_size / (ranks x
    accumulate) images, and batch norm normalises over each micro-batch, as on that many GPUs.
    ``lr_step`` "iteration" anneals the cosine after every optimiser step (ProxylessNAS), "epoch"
    once per epoch (DARTS). ``crop_scale``, ``crop_ratio`` (random resized crop: area fraction and
    aspect range) and ``jitter`` (colour jitter: brightness, contrast, saturation, hue) are the
    ImageNet training augmentation; CIFAR-10 sources pad, crop and flip and ignore them. Without
    ``amp`` the run is strict fp32: TF32 is turned off on CUDA for its duration.
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
    amp: bool | None = False
    amp_dtype: str = "bfloat16"
    channels_last: bool | None = None
    seed: int = 0
    eval_batch_size: int = 256
    eval_every: int = 1
    label_smoothing: float = 0.0
    bn_weight_decay: bool = True
    nesterov: bool = False
    lr_schedule: str = "cosine"
    lr_gamma: float = 0.97
    cuda_graphs: bool = False
    accumulate: int = 1
    lr_step: str = "epoch"
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    jitter: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

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
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"retrain lr_schedule must be one of {list(LR_SCHEDULES)}")
        if not 0 <= self.label_smoothing < 1 or not 0 < self.lr_gamma <= 1:
            raise ConfigError("retrain label_smoothing must be in [0, 1) and lr_gamma in (0, 1]")
        self._check_schedule_and_augmentation()
        if self.cuda_graphs and self.amp is not False and self.amp_dtype == "float16":
            raise ConfigError(
                "retrain cuda_graphs cannot capture float16 loss scaling (it reads the device "
                "every step); use amp_dtype bfloat16 or turn cuda_graphs off"
            )

    def _check_schedule_and_augmentation(self) -> None:
        if self.accumulate < 1 or self.batch_size % self.accumulate:
            raise ConfigError(
                f"retrain accumulate must be >= 1 and divide batch_size {self.batch_size}, got "
                f"{self.accumulate}"
            )
        if self.lr_step not in LR_STEPS:
            raise ConfigError(f"retrain lr_step must be one of {list(LR_STEPS)}")
        if self.lr_step == "iteration" and self.lr_schedule != "cosine":
            raise ConfigError("retrain lr_step iteration is for the cosine schedule only")
        if self.lr_step == "iteration" and self.cuda_graphs:
            raise ConfigError(
                "retrain cuda_graphs bakes one learning rate into each epoch's graph; use "
                "lr_step epoch or turn cuda_graphs off"
            )
        low, high = self.crop_scale
        if not 0 < low <= high <= 1 or not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ConfigError(
                f"retrain crop_scale must be 0 < low <= high <= 1 and crop_ratio 0 < low <= high, "
                f"got {self.crop_scale} and {self.crop_ratio}"
            )
        if len(self.jitter) != 4 or min(self.jitter) < 0 or self.jitter[3] > 0.5:
            raise ConfigError(
                "retrain jitter is (brightness, contrast, saturation, hue), each >= 0, hue <= 0.5"
            )


class BatchSource(Protocol):
    """Where retraining batches come from: tensors in memory or a streaming ImageNet source.

    Indices are positions in the source's train (test) labels; batches are normalised floats on
    ``device``; all training randomness comes from ``generator`` (so an epoch replays).
    """

    train_labels: torch.Tensor
    test_labels: torch.Tensor
    image_shape: tuple[int, int, int]

    def train_batches(
        self, indices: torch.Tensor, batch_size: int, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    def test_batches(
        self, indices: torch.Tensor, batch_size: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


class MemorySource:
    """CIFAR-style ImageSets uploaded once to the device; crop + flip as the DARTS protocol."""

    def __init__(
        self, train: ImageSet, test: ImageSet, device: torch.device, channels_last: bool
    ) -> None:
        self.train_labels, self.test_labels = train.labels, test.labels
        self.image_shape = tuple(train.images.shape[1:])
        self.device, self.channels_last = device, channels_last
        self._train = (train.images.to(device), train.labels.to(device))
        self._test = (test.images.to(device), test.labels.to(device))

    def _batches(
        self,
        data: tuple[torch.Tensor, torch.Tensor],
        indices: torch.Tensor,
        batch_size: int,
        generator: torch.Generator | None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        index = indices.to(self.device)
        return iterate_batches(
            data[0][index],
            data[1][index],
            batch_size,
            shuffle=False,
            augment=generator is not None,
            generator=generator or torch.Generator(),
            device=self.device,
            channels_last=self.channels_last,
        )

    def train_batches(
        self, indices: torch.Tensor, batch_size: int, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self._batches(self._train, indices, batch_size, generator)

    def test_batches(
        self, indices: torch.Tensor, batch_size: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self._batches(self._test, indices, batch_size, None)


def drop_path_schedule(base: float, epoch: int, epochs: int) -> float:
    """Drop-path probability of 0-based ``epoch``: DARTS's linear ramp ``base * epoch / epochs``."""
    return base * epoch / epochs


def cutout(batch: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero one ``size`` x ``size`` square per image, clipped at the borders; in place.

    As in DARTS the square's centre is uniform over the image (so squares near a border are cut
    short) and the zeros go in after normalisation. Centres are drawn from ``generator`` on its
    own device: a CPU generator gives the same squares on every device, a GPU one
    (:func:`ddpnas.data.batching.device_generator`) keeps the draws on the batch's device.
    """
    b, _, h, w = batch.shape
    device, drawn = batch.device, generator.device
    top = torch.randint(0, h, (b, 1), generator=generator, device=drawn) - size // 2
    left = torch.randint(0, w, (b, 1), generator=generator, device=drawn) - size // 2
    top, left = top.to(device, non_blocking=True), left.to(device, non_blocking=True)
    rows = torch.arange(h, device=device)
    cols = torch.arange(w, device=device)
    in_rows = (rows >= top) & (rows < top + size)
    in_cols = (cols >= left) & (cols < left + size)
    return batch.masked_fill_(in_rows[:, None, :, None] & in_cols[:, None, None, :], 0.0)


def micro_batches(n: int, size: int) -> list[int]:
    """Sizes of the micro-batches that one step's ``n`` images are split into: pieces of
    ``size`` (the per-GPU batch), the rest last; a trailing single image joins the piece before
    it, since batch norm cannot train on one image."""
    if n <= size or size < 1:
        return [n]
    sizes = [size] * (n // size) + ([n % size] if n % size else [])
    if sizes[-1] == 1:
        sizes[-2:] = [sizes[-2] + 1]
    return sizes


def subset_indices(labels: torch.Tensor, cfg: RetrainConfig, key: str) -> torch.Tensor:
    """All indices (``cfg.<key>`` None), or a class-stratified subset that is the same for every
    seed; more than there are is an error naming ``retrain <key>``."""
    every, size = torch.arange(len(labels)), getattr(cfg, key)
    if size is None:
        return every
    return subset(every, size, SUBSET_SEED, labels=labels, what=f"retrain {key}")


def param_groups(net: nn.Module, cfg: RetrainConfig) -> list[dict[str, Any]]:
    """All parameters; with ``bn_weight_decay`` off, BN weights and biases get no weight decay
    (ProxylessNAS's recipe, which DDPNAS follows on ImageNet)."""
    if cfg.bn_weight_decay:
        return [{"params": list(net.parameters())}]
    bn = {
        id(p)
        for m in net.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        for p in m.parameters(recurse=False)
    }
    return [
        {"params": [p for p in net.parameters() if id(p) not in bn]},
        {"params": [p for p in net.parameters() if id(p) in bn], "weight_decay": 0.0},
    ]


@contextlib.contextmanager
def distributed(device: torch.device) -> Iterator[tuple[int, int, torch.device]]:
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
def cudnn_autotune(device: torch.device) -> Iterator[None]:
    """Let cuDNN pick the fastest kernels on CUDA (not bitwise reproducible there anyway)."""
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = previous or device.type == "cuda"
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


@contextlib.contextmanager
def strict_fp32(device: torch.device, on: bool) -> Iterator[None]:
    """Turn TF32 off on CUDA while ``on`` (a protocol run in fp32): PyTorch lets cuDNN
    convolutions use TF32 by default, so on an A100/H100 an "fp32" run would not be fp32."""
    if not on or device.type != "cuda":
        yield
        return
    previous = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = previous


@contextlib.contextmanager
def kernels(device: torch.device, cfg: RetrainConfig) -> Iterator[None]:
    """The run's kernel settings: cuDNN autotuning on CUDA, and TF32 off when it is fp32."""
    with cudnn_autotune(device), strict_fp32(device, precision(cfg, device).startswith("fp32")):
        yield


def precision(cfg: RetrainConfig, device: torch.device) -> str:
    """What the arithmetic was, for the result: the autocast dtype, or fp32 (TF32 off on CUDA)."""
    amp = device.type == "cuda" if cfg.amp is None else cfg.amp
    if amp:
        return f"{cfg.amp_dtype} autocast"
    return "fp32, TF32 off" if device.type == "cuda" else "fp32"


def sync_batchnorm(net: nn.Module, world: int, device: torch.device) -> nn.Module:
    """SyncBN when one retraining spans several CUDA processes, so BN sees the whole batch.

    Each rank's per-GPU batch is batch_size / world; plain BN would normalise over that slice
    only and change the protocol with the GPU count. SyncBatchNorm runs on CUDA only, so CPU
    (gloo) runs keep per-rank BN. Parameters and buffers are reused: the optimizer stays valid.
    """
    if world > 1 and device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(net)
    return net
