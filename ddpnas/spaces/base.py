"""The interface every search space offers to every strategy.

A space is E decisions ("edges"), each choosing one of K candidate operations. An architecture is a
plain tuple of E op indices; its canonical string form is space-specific (NAS-Bench-201 string for
the NB201 space).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from torch import nn

Arch = tuple[int, ...]


def copy_path_weights(network: nn.Module, supernet: nn.Module) -> None:
    """Load a standalone network's weights (and BN buffers) from the supernet it is a path of.

    Both carry a ``config`` dict and name their modules alike, so the network's state-dict keys
    are a subset of the supernet's; anything else is a mismatch worth an error.
    """
    source = supernet.state_dict()
    missing = [key for key in network.state_dict() if key not in source]
    if missing or supernet.config != network.config:
        raise ValueError(
            f"supernet {supernet.config} does not match this network {network.config}; "
            f"missing keys: {missing[:5]}"
        )
    network.load_state_dict({key: source[key] for key in network.state_dict()})


class SearchSpace(ABC):
    """Discrete space of E edges x K ops, with a supernet and standalone networks."""

    name: str
    ops: tuple[str, ...]
    edges: tuple[str, ...]

    @property
    def num_edges(self) -> int:
        return len(self.edges)

    @property
    def num_ops(self) -> int:
        return len(self.ops)

    @abstractmethod
    def arch_to_str(self, arch: Arch) -> str:
        """Canonical string of an architecture."""

    @abstractmethod
    def str_to_arch(self, text: str) -> Arch:
        """Parse a canonical string; raise ArchError naming the bad token."""

    def validate(self, arch: Arch) -> Arch:
        """Return arch as a tuple of ints after range checks."""
        from ddpnas.errors import ArchError

        arch = tuple(int(a) for a in arch)
        if len(arch) != self.num_edges:
            raise ArchError(f"{self.name}: expected {self.num_edges} ops, got {len(arch)}")
        for e, a in enumerate(arch):
            if not 0 <= a < self.num_ops:
                raise ArchError(
                    f"{self.name}: op index {a} on edge {e} is outside 0..{self.num_ops - 1}"
                )
        return arch

    def derived(self, arch: Arch, theta: np.ndarray, mask: np.ndarray) -> dict[str, str]:
        """Extra final forms of a search result for the record (e.g. the DARTS genotype)."""
        return {}

    @abstractmethod
    def supernet(self, **kwargs: Any) -> nn.Module:
        """Network holding every op of every edge; ``forward(x, arch)`` runs one path."""

    @abstractmethod
    def standalone(self, arch: Arch, **kwargs: Any) -> nn.Module:
        """Network holding only the ops of ``arch``; ``forward(x)``."""
