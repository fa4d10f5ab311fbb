"""The ``data:`` section: where CIFAR-10, NAS-Bench-201 and the decoded-image cache are."""

from __future__ import annotations

from pydantic import Field

from ddpnas.config.options import (
    Options,
    Unset,
    absent,
)


class Data(Options):
    """Where the data sets are."""

    root: str | None = Field(
        None,
        description=(
            "Folder holding CIFAR-10 (torchvision's cifar-10-batches-py, an image folder, or "
            "cifar10-jpeg.zip) and nasbench201/. null -> $DDPNAS_DATA -> torchvision download."
        ),
    )
    nb201: str | None = Field(
        None,
        description=(
            "NAS-Bench-201 source (compact table, NATS-tss-v1_0-3ffb9-simple dir or the v1_1 "
            ".pth). null -> <root>/nasbench201 -> $DDPNAS_NB201 -> $DDPNAS_DATA/nasbench201 -> "
            "$TORCH_HOME."
        ),
    )
    nb201_split: str | Unset = absent(
        "NAS-Bench-201's official cifar10-valid split file (cifar-split.txt). Absent: looked for "
        "beside the NAS-Bench-201 location (<dir>/splits/). Used when CIFAR-10 is the canonical "
        "release (the index lists refer to its order); other copies get the seeded stratified "
        "25k/25k split, and every record names the split it used."
    )
    cache: str | None = Field(
        None, description="Decoded-image cache. null -> $DDPNAS_CACHE -> ~/.cache/ddpnas."
    )
    download: bool = Field(
        True,
        description="Let torchvision download CIFAR-10 into the cache when root (and "
        "$DDPNAS_DATA) is null; never into a folder root names.",
    )
