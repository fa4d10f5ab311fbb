"""The DARTS cell space (Liu et al., ICLR 2019): 28 edges x 8 ops, genotypes and networks.

The cell layout and ops are in :mod:`~ddpnas.spaces.darts.ops`, the search networks in
:mod:`~ddpnas.spaces.darts.supernet`, genotypes in :mod:`~ddpnas.spaces.darts.genotype` and the
retraining network in :mod:`~ddpnas.spaces.darts.network`. An :data:`Arch` picks one op per edge:
what DDPNAS samples and prunes.

Canonical arch string: per cell, the NAS-Bench-201 form over nodes 2..5, ``|op~input|...|`` per
node joined by ``+``, the two cells as ``normal=...;reduce=...``::

    normal=|sep_conv_3x3~0|skip_connect~1|+|...|+|...|+|none~0|...|dil_conv_3x3~4|;reduce=|...|
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field
from torch import nn

from ddpnas.errors import ArchError
from ddpnas.registry import register_space
from ddpnas.spaces.base import Arch, CellBNOptions, SearchSpace
from ddpnas.spaces.complexity import count_flops, count_params
from ddpnas.spaces.darts.genotype import Genotype, derive_genotype
from ddpnas.spaces.darts.network import NetworkCIFAR
from ddpnas.spaces.darts.ops import CELL_EDGES, CELLS, EDGES, NODE_INPUTS, OPS
from ddpnas.spaces.darts.supernet import DartsNetwork, DartsSupernet

EXAMPLE_CELL = "|op~0|op~1|+|op~0|op~1|op~2|+|...|+|op~0|op~1|op~2|op~3|op~4|"
EXAMPLE = f"normal={EXAMPLE_CELL};reduce={EXAMPLE_CELL}"


class DartsOptions(CellBNOptions):
    """The DARTS search network's size."""

    C: int = Field(16, ge=1, description="Initial channels.")
    layers: int = Field(8, ge=3, description="Cells (two of them reduction cells).")


@register_space
class DartsSpace(SearchSpace):
    """The DARTS cell space: 28 edges (normal then reduction cell) x 8 ops."""

    name = "darts"
    ops = OPS
    edges = EDGES
    Options = DartsOptions
    derive_genotype = staticmethod(derive_genotype)

    def arch_to_str(self, arch: Arch) -> str:
        arch = self.validate(arch)
        parts = []
        for c, cell in enumerate(CELLS):
            ops = arch[c * CELL_EDGES : (c + 1) * CELL_EDGES]
            nodes = (
                "|" + "|".join(f"{OPS[ops[e]]}~{j}" for e, j in inputs) + "|"
                for inputs in NODE_INPUTS
            )
            parts.append(f"{cell}=" + "+".join(nodes))
        return ";".join(parts)

    def str_to_arch(self, text: str) -> Arch:
        def fail(why: str) -> ArchError:
            return ArchError(f"darts: {why} in {text!r}; a valid string looks like {EXAMPLE}")

        cells = text.strip().split(";")
        if len(cells) != len(CELLS):
            raise fail(f"expected {len(CELLS)} cells separated by ';', got {len(cells)}")
        arch: list[int] = []
        for cell, part in zip(CELLS, cells, strict=True):
            label, sep, body = part.partition("=")
            if not sep or label.strip() != cell:
                raise fail(f"cell token {part[:20]!r} must start with '{cell}='")
            nodes = body.split("+")
            if len(nodes) != len(NODE_INPUTS):
                raise fail(
                    f"{cell} cell: expected {len(NODE_INPUTS)} nodes separated by '+', "
                    f"got {len(nodes)}"
                )
            for node, (chunk, inputs) in enumerate(zip(nodes, NODE_INPUTS, strict=True), start=2):
                if len(chunk) < 2 or not (chunk.startswith("|") and chunk.endswith("|")):
                    raise fail(f"{cell} node {node} token {chunk!r} must be wrapped in '|'")
                tokens = chunk[1:-1].split("|")
                if len(tokens) != len(inputs):
                    raise fail(
                        f"{cell} node {node} needs {len(inputs)} edges, "
                        f"got {len(tokens)} in {chunk!r}"
                    )
                for token, (_, source) in zip(tokens, inputs, strict=True):
                    op, sep, index = token.partition("~")
                    if not sep or not index.isdigit():
                        raise fail(f"malformed token {token!r} (expected 'op~input')")
                    if op not in OPS:
                        raise fail(
                            f"unknown op {op!r} in token {token!r} (known: {', '.join(OPS)})"
                        )
                    if int(index) != source:
                        raise fail(
                            f"token {token!r} of {cell} node {node} has input node {index}, "
                            f"expected {source}"
                        )
                    arch.append(OPS.index(op))
        return tuple(arch)

    def supernet(
        self,
        C: int = 16,
        layers: int = 8,
        num_classes: int = 10,
        stem_multiplier: int = 3,
        affine: bool = False,
        track_running_stats: bool = False,
    ) -> DartsSupernet:
        """DARTS's search network with every op on every edge (BN affine=False, as in DARTS).

        Cell BNs use batch statistics by default, as the NB201 supernet does: running statistics
        shared across sampled paths would be stale. Pass True for DARTS's exact BN setting.
        """
        return DartsSupernet(C, layers, num_classes, stem_multiplier, affine, track_running_stats)

    def standalone(
        self,
        arch: Arch,
        C: int = 16,
        layers: int = 8,
        num_classes: int = 10,
        stem_multiplier: int = 3,
        affine: bool = False,
        track_running_stats: bool = False,
    ) -> DartsNetwork:
        """The search skeleton holding only the ops of ``arch`` (BN defaults match the supernet's,
        so it can inherit the supernet's weights)."""
        return DartsNetwork(
            self.validate(arch),
            C,
            layers,
            num_classes,
            stem_multiplier,
            affine,
            track_running_stats,
        )

    def derived(self, arch: Arch, theta: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
        """The genotype: two strongest non-none inputs per node (see :func:`derive_genotype`)."""
        return {"genotype": derive_genotype(theta, mask).to_json()}

    def sample_final_form(self, rng: np.random.Generator) -> Arch:
        """A uniform random genotype in arch form (Li & Talwalkar's ``sample_arch``): per cell and
        node two distinct inputs, each with an op uniform over the non-'none' ops; every other
        edge 'none'. Drawn cell by cell, node by node: the inputs, then their two ops."""
        arch = [0] * self.num_edges
        for c in range(len(CELLS)):
            for inputs in NODE_INPUTS:
                picked = rng.choice(len(inputs), size=2, replace=False)
                ops = rng.integers(1, len(OPS), size=2)
                for i, op in zip(picked, ops, strict=True):
                    arch[c * CELL_EDGES + inputs[int(i)][0]] = int(op)
        return tuple(arch)

    def eval_network(
        self,
        genotype: Genotype,
        C: int = 36,
        layers: int = 20,
        num_classes: int = 10,
        auxiliary: bool = True,
    ) -> NetworkCIFAR:
        """DARTS's retraining network for a genotype (defaults: the paper's CIFAR-10 setting)."""
        return NetworkCIFAR(genotype, C, layers, num_classes, auxiliary)

    def cost(
        self,
        arch: Arch | Genotype,
        C: int | None = None,
        layers: int | None = None,
        num_classes: int = 10,
        input_size: int = 32,
    ) -> dict[str, float]:
        """MFLOPs (per image, eval mode) and M params without the auxiliary head, as DARTS reports.

        A genotype is costed as its evaluation network (default 36 channels, 20 cells), an arch
        as its standalone search-skeleton network (default 16 channels, 8 cells).
        """
        net: nn.Module
        if isinstance(arch, Genotype):
            net = self.eval_network(arch, C or 36, layers or 20, num_classes, auxiliary=False)
        else:
            net = self.standalone(arch, C or 16, layers or 8, num_classes)
        return {
            "flops": count_flops(net, (1, 3, input_size, input_size)),
            "params": count_params(net),
        }
