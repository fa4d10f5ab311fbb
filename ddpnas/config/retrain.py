"""The ``retrain:`` section: which DARTS-space cells are retrained, on what network, under
which protocol (DARTS's CIFAR-10 evaluation protocol by default)."""

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


class RetrainNetwork(Options):
    C: Positive = 36
    layers: int = Field(20, ge=3)
    auxiliary: bool = True


class RetrainProtocol(Options):
    """The training protocol (defaults are DARTS's CIFAR-10 evaluation protocol)."""

    epochs: Positive = 600
    batch_size: Positive = Field(96, description="Images per optimiser step, over all GPUs.")
    lr: Number = Field(0.025, gt=0)
    momentum: Number = Field(0.9, ge=0)
    weight_decay: Number = Field(0.0003, ge=0)
    grad_clip: Number = Field(5.0, ge=0)
    auxiliary_weight: Number = Field(0.4, ge=0)
    drop_path_prob: Fraction = 0.2
    cutout: NonNegative = 16
    train_size: Size = Field(None, description="Training images (null = all 50k).")
    test_size: Size = Field(None, description="Test images (null = all 10k).")
    amp: bool | None = Field(
        False,
        description=(
            "Mixed precision (opt-in speed switch; the protocol is fp32; null = on for CUDA). "
            "The CIFAR-10 table marks rows retrained with it."
        ),
    )
    amp_dtype: Literal["bfloat16", "float16"] = "bfloat16"
    channels_last: bool | None = None
    accumulate: Positive | Unset = absent(
        "Micro-batches per optimiser step: each GPU holds batch_size / (gpus x accumulate) "
        "images at once (and batch norm normalises over that many). Absent: 1."
    )
    eval_batch_size: Positive = 256
    eval_every: Positive = 1
    cuda_graphs: bool | Unset = absent(
        "Capture the training step once per epoch and replay it as a CUDA graph (one GPU per "
        "run, not with float16 loss scaling). Absent = off."
    )


class Retrain(Options):
    """Retrain the genotypes found by DARTS-space searches from scratch on CIFAR-10 (one run per
    search seed, with that seed) and report test accuracy."""

    searches: list[str] = Field(
        [], description="Names of DARTS-space search experiments whose genotypes are retrained."
    )
    gpus: Positive = Field(
        1, description="GPUs per node of a retraining job; more than one launches torchrun (DDP)."
    )
    nodes: Positive = Field(
        1,
        description=(
            "Nodes per retraining job (SLURM only): torchrun on each, rendezvous from SLURM's "
            'environment (see the README, "Running on a cluster").'
        ),
    )
    network: RetrainNetwork = block()
    protocol: RetrainProtocol = block()
