"""ImageNet search and retraining on top of the CIFAR machinery (same engine, same retrain loop).

- Search: DDPNAS (or any weight-sharing strategy) in the mobile space on ProxylessNAS's split of
  the training set: the class-balanced held-out images (``held_out``, 50,000 on ImageNet) score
  architectures, the rest train the supernet; both are decoded once at the search resolution
  into memory (``train_size``/``valid_size`` take class-stratified subsets).
- Retraining: :func:`ddpnas.retrain.loop.retrain` with :class:`ImageNetSource` streaming the
  full train split and testing on ``val``, under one of the published protocols (:data:`PROTOCOLS`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ddpnas.data.cifar10 import ImageSet, subset
from ddpnas.data.imagenet import (
    RawBytes,
    collate_raw,
    decode_batch,
    decode_to_imageset,
    eval_transform,
    loader,
    open_split,
    search_split,
    targets,
    train_transform,
)
from ddpnas.errors import ConfigError
from ddpnas.retrain.setup import RetrainConfig

SPLIT_SEED = 0  # ProxylessNAS's randperm seed for the held-out split; independent of run seeds

# The published retraining recipes (reference tables, section 4), as retrain configs. Sources:
# the authors' repository tanglang96/DDPNAS@2e9b88f (utils/get_data_iter.py: DALI crop of area
# 0.1-1 and aspect 0.8-1.25, flip, no colour jitter; it ships no training loop), its issue #1
# (120 epochs, lr 0.4 cosine, batch 1024 on 4 V100s, "the rest as ProxylessNAS"),
# mit-han-lab/ProxylessNAS@b23018c (search/run_manager.py: cosine per iteration; Nesterov, wd 4e-5
# not on BN, label smoothing 0.1), quark0/darts@f276dd3 (cnn/train_imagenet.py).
PROTOCOLS: dict[str, RetrainConfig] = {
    # DDPNAS v1 on ImageNet: 120 epochs, lr 0.4 cosine stepped per iteration, batch 1024; the
    # authors' crop (area 0.1-1, aspect 0.8-1.25) and no jitter; the rest as ProxylessNAS (SGD
    # Nesterov m0.9, wd 4e-5 not on BN, label smoothing 0.1, no clipping).
    "ddpnas_v1": RetrainConfig(
        epochs=120,
        batch_size=1024,
        lr=0.4,
        lr_step="iteration",
        momentum=0.9,
        nesterov=True,
        weight_decay=4e-5,
        bn_weight_decay=False,
        label_smoothing=0.1,
        grad_clip=0.0,
        auxiliary_weight=0.0,
        drop_path_prob=0.0,
        cutout=0,
        crop_scale=(0.1, 1.0),
        crop_ratio=(0.8, 1.25),
    ),
    # DARTS's ImageNet transfer: 250 epochs, batch 128, lr 0.1 x 0.97 per epoch, SGD m0.9,
    # wd 3e-5 on everything, label smoothing 0.1, auxiliary weight 0.4, clip 5; random resized
    # crop (0.08-1, 3/4-4/3), flip, ColorJitter(0.4, 0.4, 0.4, 0.2).
    "darts_imagenet": RetrainConfig(
        epochs=250,
        batch_size=128,
        lr=0.1,
        lr_schedule="exponential",
        lr_gamma=0.97,
        momentum=0.9,
        weight_decay=3e-5,
        label_smoothing=0.1,
        auxiliary_weight=0.4,
        grad_clip=5.0,
        drop_path_prob=0.0,
        cutout=0,
        jitter=(0.4, 0.4, 0.4, 0.2),
    ),
}


def protocol(name: str, overrides: dict[str, Any], seed: int) -> RetrainConfig:
    """A published protocol with the config's overrides (e.g. fewer epochs on the stand-in)."""
    if name not in PROTOCOLS:
        raise ConfigError(f"unknown ImageNet protocol {name!r}; known: {', '.join(PROTOCOLS)}")
    fields = {f.name for f in dataclasses.fields(RetrainConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"unknown retrain protocol key(s) {unknown}; known: {sorted(fields)}")
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return dataclasses.replace(PROTOCOLS[name], **fixed, seed=seed)


def search_sets(
    root: Path,
    resolution: int,
    *,
    held_out: int,
    train_size: int | None,
    valid_size: int | None,
    workers: int = 0,
    cache_dir: str | Path | None = None,
) -> tuple[ImageSet, ImageSet]:
    """(supernet-training, held-out) images of the search split, in memory at ``resolution``,
    decoded by ``workers`` processes and cached in ``cache_dir`` for restarts."""
    dataset = open_split(root, "train")
    labels = torch.tensor(targets(dataset))
    train_idx, valid_idx = search_split(labels, held_out, seed=SPLIT_SEED)
    if train_size is not None:
        what = "imagenet.search.train.train_size (the search split's training images)"
        train_idx = subset(train_idx, train_size, SPLIT_SEED, labels=labels, what=what)
    if valid_size is not None:
        what = "imagenet.search.train.valid_size (the held-out images, imagenet.held_out)"
        valid_idx = subset(valid_idx, valid_size, SPLIT_SEED, labels=labels, what=what)
    return (
        decode_to_imageset(dataset, train_idx, resolution, workers=workers, cache_dir=cache_dir),
        decode_to_imageset(dataset, valid_idx, resolution, workers=workers, cache_dir=cache_dir),
    )


# How the in-memory search's protocol differs from XNAS's ImageNet search (reference tables,
# section 5: MAC-AutoML/XNAS@92720aa), for records and the table.
XNAS_SEARCH = "XNAS: 224 px, random resized crop + flip + colour jitter, lr x0.1 at round ends"


def search_protocol(resolution: int, held_out: int, train: dict[str, Any]) -> dict[str, Any]:
    """The record's description of an ImageNet search: split, resolution, augmentation and lr
    schedule, and how they differ from the published search."""
    return {
        "split": {
            "name": f"ProxylessNAS held-out: {held_out} class-balanced training images "
            f"(randperm seed {SPLIT_SEED})"
        },
        "search_protocol": {
            "resolution": resolution,
            "augmentation": "pad-4 crop + flip of the decoded images (CIFAR-style)",
            "lr_schedule": f"cosine to {train.get('lr_min', 0.001)} per epoch",
            "differs": XNAS_SEARCH,
        },
    }


class ImageNetSource:
    """Streaming ImageNet for :func:`ddpnas.retrain.loop.retrain`: train split for training, ``val``
    for testing, decoded by DataLoader workers (pinned memory on CUDA), or, with
    ``gpu_decode``, read by the workers and decoded on the GPU in batches. The training
    augmentation (crop area and aspect, colour jitter) is the protocol's (``augment``)."""

    def __init__(
        self,
        root: Path,
        resolution: int,
        *,
        device: torch.device,
        workers: int,
        gpu_decode: bool | None = None,
        augment: RetrainConfig | None = None,
        channels_last: bool = False,
    ) -> None:
        self.device, self.resolution, self.workers = device, resolution, workers
        self.gpu_decode = device.type == "cuda" if gpu_decode is None else gpu_decode
        self.channels_last = channels_last
        aug = augment or RetrainConfig()
        self.augment = {"scale": aug.crop_scale, "ratio": aug.crop_ratio, "jitter": aug.jitter}
        if self.gpu_decode:
            self.train: Dataset = RawBytes(open_split(root, "train"))
            self.test: Dataset = RawBytes(open_split(root, "val"))
        else:
            self.train = open_split(root, "train", train_transform(resolution, **self.augment))
            self.test = open_split(root, "val", eval_transform(resolution))
        self.train_labels = torch.tensor([label for _, label in self.train.samples])  # type: ignore[attr-defined]
        self.test_labels = torch.tensor([label for _, label in self.test.samples])  # type: ignore[attr-defined]
        self.num_classes = int(self.train_labels.max()) + 1
        self.image_shape = (3, resolution, resolution)

    def _batches(
        self, dataset: Dataset, indices: torch.Tensor, batch_size: int, train: bool,
        generator: torch.Generator,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:  # fmt: skip
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        batches = loader(
            dataset,
            indices,
            batch_size,
            workers=self.workers,
            pin_memory=self.device.type == "cuda",
            seed=seed,
            collate_fn=collate_raw if self.gpu_decode else None,
        )
        for x, y in batches:
            if self.gpu_decode:
                x = decode_batch(
                    x,
                    self.resolution,
                    device=self.device,
                    train=train,
                    generator=generator,
                    **self.augment,
                )
            x = x.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y.to(self.device, non_blocking=True)

    def train_batches(
        self, indices: torch.Tensor, batch_size: int, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self._batches(self.train, indices, batch_size, True, generator)

    def test_batches(
        self, indices: torch.Tensor, batch_size: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self._batches(self.test, indices, batch_size, False, torch.Generator())
