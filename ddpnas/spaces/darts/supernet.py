"""DARTS's search networks: the supernet (every op on every edge, single-path or softmax-mixed)
and standalone search-skeleton networks of one arch, which can inherit the supernet's weights."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ddpnas.errors import ArchError
from ddpnas.spaces.base import Arch, copy_path_weights
from ddpnas.spaces.darts.ops import (
    CELL_EDGES,
    EDGES,
    NODE_INPUTS,
    OPS,
    STEPS,
    FactorizedReduce,
    ReLUConvBN,
    reduction_layers,
    search_op,
)


class SearchCell(nn.Module):
    """One search cell; ``edges[e]`` maps op name -> module for the ops this cell can run on edge e.

    The supernet holds every non-zero op, a standalone cell only the chosen one, under the same
    names, so a standalone state dict is a subset of the supernet's.
    """

    def __init__(
        self,
        ops_per_edge: Sequence[Sequence[str]],
        c_prev_prev: int,
        c_prev: int,
        c: int,
        reduction: bool,
        reduction_prev: bool,
        affine: bool,
        track: bool,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0: nn.Module = (
            FactorizedReduce(c_prev_prev, c, affine, track)
            if reduction_prev
            else ReLUConvBN(c_prev_prev, c, affine, track)
        )
        self.preprocess1 = ReLUConvBN(c_prev, c, affine, track)
        sources = [j for inputs in NODE_INPUTS for _, j in inputs]
        self.edges = nn.ModuleList(
            nn.ModuleDict(
                {
                    n: search_op(n, c, 2 if reduction and j < 2 else 1, affine, track)
                    for n in names
                    if n != "none"
                }
            )
            for j, names in zip(sources, ops_per_edge, strict=True)
        )

    def _node_zeros(self, s1: torch.Tensor) -> torch.Tensor:
        """The value of a node whose incoming edges are all 'none', at the cell's output size."""
        n, c, h, w = s1.shape
        if self.reduction:
            h, w = (h + 1) // 2, (w + 1) // 2
        return s1.new_zeros(n, c, h, w)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, ops: Sequence[int]) -> torch.Tensor:
        """Single path: run only op ``ops[e]`` on edge e; a 'none' edge is skipped."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for inputs in NODE_INPUTS:
            total: torch.Tensor | None = None
            for e, j in inputs:
                k = ops[e]
                if k == 0:
                    continue
                y = self.edges[e][OPS[k]](states[j])
                total = y if total is None else total + y
            states.append(self._node_zeros(states[1]) if total is None else total)
        return torch.cat(states[2:], dim=1)

    def forward_mixed(
        self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        """DARTS mixed ops: edge e outputs sum_k weights[e, k] * op_k(input); 'none' adds zero."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for inputs in NODE_INPUTS:
            total: torch.Tensor | None = None
            for e, j in inputs:
                for k in range(1, len(OPS)):
                    y = weights[e, k] * self.edges[e][OPS[k]](states[j])
                    total = y if total is None else total + y
            assert total is not None  # every node has inputs and every edge seven real ops
            states.append(total)
        return torch.cat(states[2:], dim=1)


class _SearchBody(nn.Module):
    """DARTS's search skeleton, shared by the supernet and standalone nets so both run one code."""

    def __init__(
        self,
        ops_per_edge: Sequence[Sequence[str]],
        C: int,
        layers: int,
        num_classes: int,
        stem_multiplier: int,
        affine: bool,
        track_running_stats: bool,
    ) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"darts: need at least one layer, got {layers}")
        self.config = {
            "C": C,
            "layers": layers,
            "num_classes": num_classes,
            "stem_multiplier": stem_multiplier,
            "affine": affine,
            "track_running_stats": track_running_stats,
        }
        c_curr = stem_multiplier * C
        self.stem = nn.Sequential(
            nn.Conv2d(3, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr)
        )
        c_prev_prev, c_prev, c_curr = c_curr, c_curr, C
        cells: list[SearchCell] = []
        reduction_prev = False
        for i in range(layers):
            reduction = i in reduction_layers(layers)
            if reduction:
                c_curr *= 2
            cell_ops = ops_per_edge[CELL_EDGES:] if reduction else ops_per_edge[:CELL_EDGES]
            cells.append(
                SearchCell(
                    cell_ops,
                    c_prev_prev,
                    c_prev,
                    c_curr,
                    reduction,
                    reduction_prev,
                    affine,
                    track_running_stats,
                )
            )
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, STEPS * c_curr
        self.cells = nn.ModuleList(cells)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def _run(
        self,
        x: torch.Tensor,
        cell_forward: Callable[[SearchCell, torch.Tensor, torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell_forward(cell, s0, s1)
        return self.classifier(self.global_pooling(s1).flatten(1))

    def _run_path(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        """Single-path forward: each cell runs the ops its type (normal/reduce) takes in arch."""
        return self._run(
            x,
            lambda cell, s0, s1: cell(
                s0, s1, arch[CELL_EDGES:] if cell.reduction else arch[:CELL_EDGES]
            ),
        )


def _check_arch(arch: Arch) -> None:
    if len(arch) != len(EDGES) or not all(0 <= k < len(OPS) for k in arch):
        raise ArchError(f"darts: {arch!r} is not {len(EDGES)} op indices in 0..{len(OPS) - 1}")


class DartsSupernet(_SearchBody):
    """Every op of every edge in every cell; ``forward(x, arch)`` runs only the ops of ``arch``,
    ``forward_mixed`` runs DARTS's continuous relaxation."""

    def __init__(
        self,
        C: int = 16,
        layers: int = 8,
        num_classes: int = 10,
        stem_multiplier: int = 3,
        affine: bool = False,
        track_running_stats: bool = False,
    ) -> None:
        super().__init__(
            [OPS] * len(EDGES),
            C,
            layers,
            num_classes,
            stem_multiplier,
            affine,
            track_running_stats,
        )

    def forward(self, x: torch.Tensor, path: Arch | torch.Tensor) -> torch.Tensor:
        """Single path for an arch; mixed ops for a 28 x 8 weight tensor (normal rows first)."""
        if isinstance(path, torch.Tensor):
            return self.forward_mixed(x, path[:CELL_EDGES], path[CELL_EDGES:])
        _check_arch(path)
        return self._run_path(x, path)

    def forward_mixed(
        self, x: torch.Tensor, weights_normal: torch.Tensor, weights_reduce: torch.Tensor
    ) -> torch.Tensor:
        """Softmax-weighted forward; the weights (14 x 8 each, already normalised by the caller)
        receive gradients, which is how DARTS learns alpha. 'none' is skipped rather than computed
        as zeros, so its weight column gets a zero gradient, exactly as with an explicit zero op."""
        for name, w in (("weights_normal", weights_normal), ("weights_reduce", weights_reduce)):
            if tuple(w.shape) != (CELL_EDGES, len(OPS)):
                raise ValueError(f"darts: {name} must be {CELL_EDGES} x {len(OPS)}, got {w.shape}")
        return self._run(
            x,
            lambda cell, s0, s1: cell.forward_mixed(
                s0, s1, weights_reduce if cell.reduction else weights_normal
            ),
        )


class DartsNetwork(_SearchBody):
    """A standalone search-skeleton network of one architecture; 'none' edges hold no module."""

    def __init__(
        self,
        arch: Arch,
        C: int = 16,
        layers: int = 8,
        num_classes: int = 10,
        stem_multiplier: int = 3,
        affine: bool = False,
        track_running_stats: bool = False,
    ) -> None:
        _check_arch(arch)
        super().__init__(
            [(OPS[k],) for k in arch],
            C,
            layers,
            num_classes,
            stem_multiplier,
            affine,
            track_running_stats,
        )
        self.arch = tuple(arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run_path(x, self.arch)

    def load_from_supernet(self, supernet: DartsSupernet) -> None:
        """Copy the inherited weights (and BN buffers) of this path out of a supernet."""
        copy_path_weights(self, supernet)
