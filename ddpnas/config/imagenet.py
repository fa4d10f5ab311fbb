"""The ``imagenet:`` section: the mobile-space search, retraining protocols and transfers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ddpnas.config.options import (
    Fraction,
    NonNegative,
    Number,
    Options,
    Positive,
    Size,
    Unset,
    absent,
    block,
)
from ddpnas.config.search import Search


class ProtocolOverrides(Options):
    epochs: Positive | Unset = absent()
    batch_size: Positive | Unset = absent()
    eval_batch_size: Positive | Unset = absent()
    lr: Number | Unset = absent(gt=0)
    weight_decay: Number | Unset = absent(ge=0)
    train_size: Size = absent()
    test_size: Size = absent()
    amp: bool | None = absent()
    grad_clip: Number | Unset = absent(ge=0)
    label_smoothing: Fraction | Unset = absent()
    accumulate: Positive | Unset = absent(
        "Micro-batches per optimiser step: each GPU holds batch_size / (GPUs x accumulate) "
        "images at once and batch norm normalises over that many, as on that many GPUs "
        "(ddpnas_v1's 1024 on one GPU: accumulate 4 = the authors' 256 per V100)."
    )
    lr_step: Literal["epoch", "iteration"] | Unset = absent(
        "When the cosine learning rate is annealed: per optimiser step (ProxylessNAS, the "
        "ddpnas_v1 default) or per epoch."
    )
    crop_scale: list[float] | Unset = absent(
        "Random resized crop's area range [low, high] (ddpnas_v1: the authors' [0.1, 1]; "
        "darts_imagenet: torchvision's [0.08, 1]).",
        min_length=2,
        max_length=2,
    )
    crop_ratio: list[float] | Unset = absent(
        "Random resized crop's aspect range (ddpnas_v1: [0.8, 1.25]; darts_imagenet: [3/4, 4/3]).",
        min_length=2,
        max_length=2,
    )
    jitter: list[float] | Unset = absent(
        "Colour jitter [brightness, contrast, saturation, hue] (darts_imagenet: DARTS's "
        "[0.4, 0.4, 0.4, 0.2]; ddpnas_v1: none, as the authors' DALI pipeline).",
        min_length=4,
        max_length=4,
    )


class ImagenetProtocol(Options):
    """A published ImageNet protocol (ddpnas_v1: 120 epochs, batch 1024, lr 0.4 cosine per
    iteration, label smoothing 0.1, no weight decay on BN, crop area 0.1-1 and aspect 0.8-1.25, no
    jitter; darts_imagenet: 250 epochs, batch 128, lr 0.1 x 0.97 per epoch, auxiliary 0.4, clip 5,
    colour jitter 0.4/0.4/0.4/0.2) and overrides of its fields (ddpnas.retrain.setup.RetrainConfig;
    fp32 without TF32 unless amp)."""

    name: Literal["ddpnas_v1", "darts_imagenet"]
    overrides: ProtocolOverrides = block()


class Standin(Options):
    """An ImageNet-format folder built from CIFAR-10 JPEGs (10 classes, upscaled)."""

    enabled: bool = True
    train_per_class: int = Field(30, ge=2)
    val_per_class: Positive = 10
    size: int = Field(64, ge=8)


class MobileNetwork(Options):
    width_mult: Number = Field(1.0, gt=0)
    dropout: Fraction = 0.3


class ImagenetRetrain(Options):
    """Retraining of the searched mobile network on ImageNet."""

    network: MobileNetwork = block()
    protocol: ImagenetProtocol | Unset = absent()


class TransferNetwork(Options):
    C: int = Field(48, ge=2)
    layers: int = Field(14, ge=3)
    auxiliary: bool = True
    dropout: Fraction = 0.3


class Transfer(Options):
    """DARTS-space cells (their search experiments) retrained on ImageNet."""

    searches: list[str] = Field([], description="DARTS-space search experiments to transfer.")
    network: TransferNetwork = block()
    protocol: ImagenetProtocol | Unset = absent()


class Imagenet(Options):
    """ImageNet stage: a mobile-space search on ImageNet's search split, retraining of the
    searched network, transfer of DARTS-space cells, and results/tables/imagenet.*. Without a
    real ImageNet, a stand-in built from the CIFAR-10 JPEGs (data.root) is used and marked so."""

    enabled: bool = False
    root: str | None = Field(
        None,
        description=(
            "ImageNet root (official ILSVRC2012 archives, or train/<wnid>/ and val/<wnid>/). "
            "null -> $DDPNAS_IMAGENET. Never downloaded. Ignored when standin.enabled."
        ),
    )
    standin: Standin = block()
    resolution: int = Field(
        224, ge=8, description="Input size for search and retraining (224 on ImageNet)."
    )
    search_resolution: int | None = Field(
        None,
        ge=8,
        description=(
            "Input size of the search (null = resolution). The search decodes its images once "
            "into memory (1.28 M ImageNet images take 15 GB at 64 px, 190 GB at 224 px)."
        ),
    )
    held_out: Positive = Field(
        50000,
        description=(
            "Class-balanced training images held out to score architectures (ProxylessNAS)."
        ),
    )
    workers: NonNegative = Field(
        8,
        description=(
            "Worker processes that decode images: the search's one-off decode into its cache and "
            "retraining's DataLoader (set it to the GPU host's cores)."
        ),
    )
    cache: str | Unset = absent(
        "Folder of the search's decoded images (uint8 at search_resolution, reused across "
        "restarts, keyed by file list and resolution; 1.28 M images take 15 GiB at 64 px). "
        "Absent: $DDPNAS_CACHE, else ~/.cache/ddpnas."
    )
    gpu_decode: bool | None = Field(
        None, description="Decode JPEG batches on the GPU (nvJPEG). null = when running on CUDA."
    )
    search: Search | Unset = absent(
        "The mobile-space search (a search experiment block; space must be mobile)."
    )
    retrain: ImagenetRetrain = block()
    transfer: Transfer = block()
