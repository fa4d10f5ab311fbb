"""DARTS's CIFAR evaluation network of a genotype: cells, drop path and the auxiliary head."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ddpnas.spaces.darts.genotype import Genotype
from ddpnas.spaces.darts.ops import FactorizedReduce, ReLUConvBN, make_op, reduction_layers


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples with probability drop_prob, rescaling the rest (DARTS's drop path)."""
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class EvalCell(nn.Module):
    """A cell built from a genotype: two ops per node, output the concat of the chosen nodes."""

    def __init__(
        self,
        pairs: Sequence[tuple[str, int]],
        concat: Sequence[int],
        c_prev_prev: int,
        c_prev: int,
        c: int,
        reduction: bool,
        reduction_prev: bool,
    ) -> None:
        super().__init__()
        self.preprocess0: nn.Module = (
            FactorizedReduce(c_prev_prev, c, True, True)
            if reduction_prev
            else ReLUConvBN(c_prev_prev, c, True, True)
        )
        self.preprocess1 = ReLUConvBN(c_prev, c, True, True)
        self.ops = nn.ModuleList(
            make_op(op, c, 2 if reduction and j < 2 else 1, affine=True) for op, j in pairs
        )
        self.inputs = tuple(j for _, j in pairs)
        self.concat = tuple(concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(len(self.ops) // 2):
            total: torch.Tensor | None = None
            for p in (2 * node, 2 * node + 1):
                op = self.ops[p]
                h = op(states[self.inputs[p]])
                if self.training and drop_prob > 0 and not isinstance(op, nn.Identity):
                    h = drop_path(h, drop_prob)
                total = h if total is None else total + h
            assert total is not None
            states.append(total)
        return torch.cat([states[i] for i in self.concat], dim=1)


def stack_cells(
    genotype: Genotype,
    layers: int,
    c_stem: int,
    C: int,
    reduction_prev: bool,
    aux_position: int,
    on_cell: Callable[[EvalCell, int], None] | None = None,
) -> tuple[list[EvalCell], int, int]:
    """The cells of DARTS's evaluation networks (CIFAR and ImageNet stack them alike).

    Returns the cells, the channels out of the last one and those at ``aux_position``;
    ``on_cell(cell, channels)`` may add modules to each cell as it is built.
    """
    c_prev_prev, c_prev, c_curr = c_stem, c_stem, C
    cells: list[EvalCell] = []
    c_aux = c_prev
    for i in range(layers):
        reduction = i in reduction_layers(layers)
        if reduction:
            c_curr *= 2
        pairs, concat = (
            (genotype.reduce, genotype.reduce_concat)
            if reduction
            else (genotype.normal, genotype.normal_concat)
        )
        cell = EvalCell(pairs, concat, c_prev_prev, c_prev, c_curr, reduction, reduction_prev)
        if on_cell is not None:
            on_cell(cell, c_curr)
        cells.append(cell)
        reduction_prev = reduction
        c_prev_prev, c_prev = c_prev, len(concat) * c_curr
        if i == aux_position:
            c_aux = c_prev
    return cells, c_prev, c_aux


class AuxiliaryHeadCIFAR(nn.Module):
    """DARTS's auxiliary classifier on the 8x8 feature map after the second reduction.

    ``pool_stride`` and ``second_bn`` exist for DARTS's ImageNet head, which differs only there.
    """

    def __init__(
        self, c: int, num_classes: int, pool_stride: int = 3, second_bn: bool = True
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(),
            nn.AvgPool2d(5, stride=pool_stride, count_include_pad=False),
            nn.Conv2d(c, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.Conv2d(128, 768, 2, bias=False),
            *([nn.BatchNorm2d(768)] if second_bn else []),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class NetworkCIFAR(nn.Module):
    """DARTS's CIFAR evaluation network; the trainer sets ``drop_path_prob`` each epoch.

    ``forward(x)`` returns ``(logits, aux_logits)``; aux_logits is None unless training with the
    auxiliary head, which sits after cell 2*layers//3 (the second reduction).
    """

    def __init__(
        self,
        genotype: Genotype,
        C: int = 36,
        layers: int = 20,
        num_classes: int = 10,
        auxiliary: bool = True,
        stem_multiplier: int = 3,
    ) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"darts: need at least one layer, got {layers}")
        self.genotype = genotype
        self.drop_path_prob = 0.0
        self.aux_position = 2 * layers // 3
        c_curr = stem_multiplier * C
        self.stem = nn.Sequential(
            nn.Conv2d(3, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr)
        )
        cells, c_prev, c_aux = stack_cells(genotype, layers, c_curr, C, False, self.aux_position)
        self.cells = nn.ModuleList(cells)
        self.auxiliary_head = AuxiliaryHeadCIFAR(c_aux, num_classes) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        aux_logits = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_position and self.auxiliary_head is not None and self.training:
                aux_logits = self.auxiliary_head(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        return logits, aux_logits
