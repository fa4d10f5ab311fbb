"""The hook interface every search strategy implements; the engine in ddpnas.search owns the loop.

One engine epoch is: ``plan = propose(rng)``; the evaluator trains the shared weights along
``plan.train`` (one fixed architecture, or a :class:`TrainingPlan` that picks a path or mixed-op
weights per batch and may take an architecture step before each weight step), then validates every
architecture in ``plan.evaluate``; ``observe(plan, train_metrics, results)``; ``events = step()``.
Strategies never own a training loop, so no algorithm carries its own copy of one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from ddpnas.spaces.base import Arch, SearchSpace

# A path through a supernet: one op per edge (single path), or an E x K tensor of op weights
# (DARTS's continuous relaxation; rows sum to one).
SupernetPath = Arch | torch.Tensor
Path = SupernetPath  # old name (shadowed pathlib.Path); only until baselines/enas.py moves over
Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class StepContext:
    """What an architecture step may use, handed to a plan before every weight step."""

    model: nn.Module
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    train_batch: Batch
    valid_batch: Callable[[], Batch]


class TrainingPlan(Protocol):
    """How the shared weights are trained during one epoch, batch by batch."""

    def path(self) -> SupernetPath:
        """The path (or mixed-op weights, detached) for the next weight step."""

    def before_weight_step(self, ctx: StepContext) -> None:
        """Hook run before each weight step (DARTS: the architecture step)."""


@dataclass
class EpochPlan:
    """One engine epoch: what to train (None: nothing) and which architectures to validate.

    ``eval_images`` validates on a random subset of that many validation images (drawn from the
    epoch's generator) instead of the whole split, e.g. ENAS's cheap controller rewards.
    """

    train: Arch | TrainingPlan | None
    evaluate: list[Arch] = field(default_factory=list)
    eval_images: int | None = None


class Strategy(ABC):
    """A search algorithm expressed as hooks called once per engine epoch."""

    name: ClassVar[str]
    #: Evaluation modes the strategy supports ("tabular", "weight_sharing").
    modes: ClassVar[tuple[str, ...]] = ("tabular", "weight_sharing")

    def __init__(self, space: SearchSpace, mode: str = "weight_sharing") -> None:
        if mode not in self.modes:
            raise ValueError(f"{self.name} runs in mode(s) {', '.join(self.modes)}, not {mode!r}")
        self.space = space
        self.mode = mode

    @abstractmethod
    def propose(self, rng: np.random.Generator) -> EpochPlan:
        """What to train and validate this epoch."""

    @abstractmethod
    def observe(
        self, plan: EpochPlan, train_metrics: dict[str, float], results: list[dict[str, float]]
    ) -> None:
        """Feedback: ``results[i]`` (``valid_acc`` in [0, 1]) belongs to ``plan.evaluate[i]``."""

    def step(self) -> dict[str, Any]:
        """End of an epoch; returns JSON-able events (e.g. pruning) for the history."""
        return {}

    @abstractmethod
    def done(self) -> bool:
        """True once the search has converged to its answer."""

    @abstractmethod
    def result(self) -> Arch:
        """The searched architecture."""

    def preferences(self) -> tuple[np.ndarray, np.ndarray]:
        """(theta, mask): how strongly the search prefers each op per edge, E x K.

        Spaces whose final form is not one op per edge (the DARTS cell keeps two inputs per node)
        derive it from these. Default: the result, one-hot, over a small uniform floor.
        """
        theta = np.full((self.space.num_edges, self.space.num_ops), 0.1 / self.space.num_ops)
        theta[np.arange(self.space.num_edges), list(self.result())] += 0.9
        return theta, np.ones_like(theta, dtype=bool)

    def planned_epochs(self) -> int | None:
        """Epoch budget if known in advance (used for LR schedules and progress bars)."""
        return None

    def snapshot(self) -> dict[str, Any]:
        """JSON-able view of the strategy's state, logged after every epoch."""
        return {}

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (plain Python types and tensors only)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
