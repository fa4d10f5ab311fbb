"""The hook interface every search strategy implements; the engine in ddpnas.search owns the loop.

One engine epoch is: ``arch = propose(rng)``; the evaluator trains and evaluates ``arch``;
``observe(arch, metrics)``; ``events = step()``. Strategies never train networks themselves, so no
algorithm carries its own copy of a training loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ddpnas.spaces.base import Arch, SearchSpace


class Strategy(ABC):
    """A search algorithm expressed as hooks called once per engine epoch."""

    name: ClassVar[str]

    def __init__(self, space: SearchSpace) -> None:
        self.space = space

    @abstractmethod
    def propose(self, rng: np.random.Generator) -> Arch:
        """Architecture to train and evaluate this epoch."""

    @abstractmethod
    def observe(self, arch: Arch, metrics: Mapping[str, float]) -> None:
        """Feedback for the architecture that was actually trained (``valid_acc`` in [0, 1])."""

    def step(self) -> dict[str, Any]:
        """End of an epoch; returns JSON-able events (e.g. pruning) for the history."""
        return {}

    @abstractmethod
    def done(self) -> bool:
        """True once the search has converged to its answer."""

    @abstractmethod
    def result(self) -> Arch:
        """The searched architecture."""

    def planned_epochs(self) -> int | None:
        """Epoch budget if known in advance (used for LR schedules and progress bars)."""
        return None

    def snapshot(self) -> dict[str, Any]:
        """JSON-able view of the strategy's state, logged after every epoch."""
        return {}

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume; plain Python types only."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
