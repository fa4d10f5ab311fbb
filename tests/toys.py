"""Toy search space and evaluators with known answers, for strategy and engine tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ddpnas.errors import ArchError
from ddpnas.spaces.base import Arch, SearchSpace


class ToySpace(SearchSpace):
    """E edges x K ops with a simple string form ``k0-k1-...``; no networks."""

    name = "toy"

    def __init__(self, num_edges: int = 6, num_ops: int = 5) -> None:
        self.ops = tuple(f"op{k}" for k in range(num_ops))
        self.edges = tuple(f"e{e}" for e in range(num_edges))

    def arch_to_str(self, arch: Arch) -> str:
        return "-".join(self.ops[a] for a in self.validate(arch))

    def str_to_arch(self, text: str) -> Arch:
        try:
            return self.validate(tuple(self.ops.index(t) for t in text.split("-")))
        except ValueError as exc:
            raise ArchError(str(exc)) from None

    def supernet(self, **kwargs: Any) -> torch.nn.Module:
        raise NotImplementedError

    def standalone(self, arch: Arch, **kwargs: Any) -> torch.nn.Module:
        raise NotImplementedError


class SyntheticEvaluator:
    """valid_acc = mean over edges of mu[e, a_e] + Gaussian noise; records what it trained."""

    def __init__(
        self, mu: np.ndarray, noise: float = 0.0, seed: int = 0, crash_at: int | None = None
    ) -> None:
        self.mu = mu
        self.noise = noise
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.trained: list[Arch] = []
        self.crash_at = crash_at

    def train(self, arch: Arch, epoch: int, generator: torch.Generator) -> dict[str, float]:
        if self.crash_at is not None and epoch == self.crash_at:
            raise KeyboardInterrupt("simulated kill")
        self.trained.append(tuple(arch))
        return {"sim_seconds": 1.0}

    def evaluate(
        self, arch: Arch, *, images: int | None = None, generator: torch.Generator | None = None
    ) -> dict[str, float]:
        value = self.mu[np.arange(len(arch)), list(arch)].mean() + self.rng.normal(0, self.noise)
        return {"valid_acc": float(np.clip(value, 0.0, 1.0))}

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


def separated_means(num_edges: int, num_ops: int, seed: int, gap: float = 0.1) -> np.ndarray:
    """Per-edge op means 0.2, 0.2 + gap, ... in a random order per edge (kept inside [0, 1])."""
    rng = np.random.Generator(np.random.PCG64(seed))
    mu = np.empty((num_edges, num_ops))
    for e in range(num_edges):
        mu[e, rng.permutation(num_ops)] = 0.2 + gap * np.arange(num_ops)
    assert mu.max() <= 1.0, "gap too large for this many ops"
    return mu
