"""The interface every search space offers to every strategy.

A space is E decisions ("edges"), each choosing one of K candidate operations. An architecture is a
plain tuple of E op indices; its canonical string form is space-specific (NAS-Bench-201 string for
the NB201 space).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from pydantic import Field
from torch import nn

from ddpnas.config.options import Options

Arch = tuple[int, ...]
#: Input shape of a module, batch first (batch 1 for per-image costs).
Shape = tuple[int, ...]


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


class CellBNOptions(Options):
    """Batch norm inside the supernet's cells (shared by the cell spaces' supernet options)."""

    affine: bool = Field(
        False,
        description=(
            "Learnable BN scale/shift in the supernet's cells (false in DARTS and NATS-Bench)."
        ),
    )
    track_running_stats: bool = Field(
        False,
        description=(
            "Running BN statistics in the supernet's cells. false (batch statistics) suits "
            "single-path training and is NATS-Bench's search setting; DARTS's own search uses true."
        ),
    )


class SearchSpace(ABC):
    """Discrete space of E edges x K ops, with a supernet and standalone networks.

    Register a subclass with :func:`ddpnas.registry.register_space`; its ``Options`` model declares
    the supernet size of a search (the ``supernet`` block), passed to :meth:`supernet`.
    """

    name: str
    ops: tuple[str, ...]
    edges: tuple[str, ...]
    #: The ``supernet`` block of a search in this space.
    Options: ClassVar[type[Options]] = Options
    #: Evaluation modes a search in this space can use (tabular needs a benchmark table).
    modes: ClassVar[tuple[str, ...]] = ("weight_sharing",)
    #: Whether its supernet computes DARTS's mixed ops (given an E x K tensor of op weights).
    mixed_ops: ClassVar[bool] = True
    #: Why not, said to whoever pairs it with a mixed-op strategy.
    why_no_mixed_ops: ClassVar[str] = ""
    #: The network whose per-choice latencies a published table (:meth:`latency_key`) holds,
    #: e.g. "width 1.0, 224 px": tables name it beside latencies costed from that table.
    latency_table_network: ClassVar[str] = ""

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

    def derived(self, arch: Arch, theta: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
        """Extra final forms of a search result for the record (e.g. the DARTS genotype)."""
        return {}

    def sample_final_form(self, rng: np.random.Generator) -> Arch:
        """A uniform random architecture of the form a search answers with (random search with
        weight sharing trains and scores these). Default: one op per edge, each uniform."""
        return tuple(int(k) for k in rng.integers(0, self.num_ops, size=self.num_edges))

    def disconnected(self, arch: Arch) -> bool:
        """Whether no path of non-'none' ops leads from the cell's input to its output (such a
        cell's output is constant zero: tables flag it). Default: never (no such notion)."""
        return False

    @abstractmethod
    def supernet(self, **kwargs: Any) -> nn.Module:
        """Network holding every op of every edge; ``forward(x, arch)`` runs one path."""

    @abstractmethod
    def standalone(self, arch: Arch, **kwargs: Any) -> nn.Module:
        """Network holding only the ops of ``arch``; ``forward(x)``."""

    # Constraint-aware generation (ddpnas/generation/solver.py, ddpnas/generation/latency.py). A
    # space whose costs are additive over its choices offers per-choice modules; the defaults say
    # clearly when it is not.

    def choice_modules(self, **network_kwargs: Any) -> list[list[tuple[nn.Module | None, Shape]]]:
        """E x K (module, input shape) of every choice, None for a choice that computes nothing.

        The module of (e, k) is everything choosing op k on edge e adds to the standalone network
        (all its repeats), so costs measured on it are exactly additive.
        """
        raise self._not_additive()

    def fixed_modules(self, **network_kwargs: Any) -> list[tuple[nn.Module, Shape]]:
        """(module, input shape) of the parts every architecture has (stem, reductions, head)."""
        raise self._not_additive()

    def choice_costs(self, **network_kwargs: Any) -> dict[str, tuple[float, np.ndarray]]:
        """resource -> (fixed, E x K) raw counts ("macs", "params") of the standalone network.

        MACs follow ddpnas.spaces.complexity (one MAC per multiply-add plus bias adds); the total of
        an architecture is fixed + sum over edges, which equals the count of its standalone network.
        """
        from ddpnas.spaces.complexity import count_flops

        def count(module: nn.Module | None, shape: Shape) -> tuple[float, float]:
            if module is None:
                return 0.0, 0.0
            macs = round(count_flops(module, shape) * 1e6)
            return float(macs), float(sum(p.numel() for p in module.parameters()))

        fixed = [count(m, s) for m, s in self.fixed_modules(**network_kwargs)]
        table = np.array(
            [[count(m, s) for m, s in row] for row in self.choice_modules(**network_kwargs)]
        )
        return {
            name: (float(sum(f[i] for f in fixed)), table[:, :, i])
            for i, name in enumerate(("macs", "params"))
        }

    def measured_costs(self, arch: Arch, **network_kwargs: Any) -> dict[str, float]:
        """Raw "macs" and "params" counted on the built standalone network of ``arch``."""
        raise self._not_additive()

    def latency_key(self, edge: int, op: int) -> str | None:
        """Key of choice (edge, op) in a published latency table; None when it costs nothing."""
        raise self._no_latency_table()

    def fixed_latency_keys(self) -> list[str]:
        """Keys of the fixed parts (stem, head) in a published latency table."""
        raise self._no_latency_table()

    def _not_additive(self) -> Exception:
        from ddpnas.errors import DDPNASError

        return DDPNASError(
            f"space {self.name} has no additive per-choice costs, so networks cannot be generated "
            "from its costs; pass a costs file (--costs) instead"
        )

    def _no_latency_table(self) -> Exception:
        from ddpnas.errors import DDPNASError

        return DDPNASError(f"space {self.name} has no entries in a published latency table")
