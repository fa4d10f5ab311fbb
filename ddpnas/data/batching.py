"""Batches for training: normalise, augment and order uint8 CIFAR images held in memory.

Split from :mod:`ddpnas.data.cifar10` (which finds, decodes and caches the images): batching runs
every step, so the whole batch is augmented at once with one gather, on the batch's device, and
every random draw comes from an explicit ``torch.Generator`` so an epoch is replayable on resume.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ddpnas.errors import ConfigError

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CROP_PADDING = 4
AUGMENT_STREAM = 0xA06  # separates the GPU augmentation stream from the order drawn on the CPU


def _random_crop_flip(
    batch: torch.Tensor, generator: torch.Generator, padding: int = CROP_PADDING
) -> torch.Tensor:
    """Standard CIFAR augmentation for a whole batch at once: zero-pad, random crop, random flip.

    One gather does both: each sample's row and column index vectors encode its crop offset and
    (reversed columns) its flip. Random draws come from ``generator`` on its own device: a CPU
    generator gives the same crops on every device, one on the batch's GPU (see
    :func:`device_generator`) keeps the whole augmentation there, with no per-step copy.
    """
    b, c, h, w = batch.shape
    device, drawn = batch.device, generator.device
    offsets = torch.randint(0, 2 * padding + 1, (2, b), generator=generator, device=drawn)
    flips = torch.randint(0, 2, (b,), generator=generator, device=drawn).bool()
    rows = offsets[0, :, None] + torch.arange(h, device=drawn)
    cols = offsets[1, :, None] + torch.where(
        flips[:, None], torch.arange(w - 1, -1, -1, device=drawn), torch.arange(w, device=drawn)
    )
    padded = F.pad(batch, (padding, padding, padding, padding))
    return padded[
        torch.arange(b, device=device)[:, None, None, None],
        torch.arange(c, device=device)[None, :, None, None],
        rows.to(device, non_blocking=True)[:, None, :, None],
        cols.to(device, non_blocking=True)[:, None, None, :],
    ]


def device_generator(generator: torch.Generator, device: torch.device | str) -> torch.Generator:
    """The generator that augments batches on ``device``: ``generator`` itself off CUDA.

    On CUDA a generator on the GPU, seeded from ``generator``'s seed (an epoch's seed is a pure
    function of run seed and epoch), so per-sample crops, flips and cutout are drawn on the device
    and stay seeded and resumable; CPU runs keep drawing from ``generator`` and are unchanged.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return generator
    seed = np.random.SeedSequence([generator.initial_seed(), AUGMENT_STREAM]).generate_state(1)
    return torch.Generator(device).manual_seed(int(seed[0]))


def iterate_batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    *,
    shuffle: bool,
    augment: bool,
    generator: torch.Generator,
    device: torch.device | str,
    drop_last: bool = False,
    channels_last: bool = False,
    augment_generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Normalised float batches (and labels) on ``device`` from uint8 images held in memory.

    Order and augmentation come only from ``generator`` (a CPU generator): the permutation is drawn
    first, then each batch's crops and flips, so saving its state at an epoch start makes the
    epoch replayable. ``augment_generator`` (default ``generator``) draws the crops and flips
    instead, e.g. one on the GPU from :func:`device_generator`. ``images`` may live on ``device``
    already (then the order is copied there once per epoch and nothing per batch).
    """
    if batch_size <= 0:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    if images.dtype != torch.uint8 or images.dim() != 4 or len(images) != len(labels):
        raise ConfigError(
            f"expected uint8 N x C x H x W images with one label each, got {images.dtype} "
            f"{tuple(images.shape)} and {len(labels)} labels"
        )
    count = len(labels)
    order = torch.randperm(count, generator=generator) if shuffle else torch.arange(count)
    order = order.to(images.device)
    augment_generator = generator if augment_generator is None else augment_generator
    stop = count - count % batch_size if drop_last else count
    std = torch.tensor(CIFAR10_STD, device=device).view(1, -1, 1, 1)
    scale = 1.0 / (255.0 * std)
    shift = -torch.tensor(CIFAR10_MEAN, device=device).view(1, -1, 1, 1) / std
    for start in range(0, stop, batch_size):
        index = order[start : start + batch_size]
        batch = images[index].to(device, non_blocking=True)
        if augment:
            batch = _random_crop_flip(batch, augment_generator)
        batch = torch.addcmul(shift, batch.float(), scale)
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        yield batch, labels[index.to(labels.device)].to(device, non_blocking=True)
