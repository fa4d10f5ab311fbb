"""DARTS space layout (ops, cells, nodes, edges) and the op modules its cells are built from.

A cell has two input nodes (0: output of the cell before last, 1: output of the last cell) and four
intermediate nodes 2..5; node i is fed by every earlier node, so a cell has 2+3+4+5 = 14 edges. The
space has a normal and a reduction cell: edges 0..13 are the normal cell's, 14..27 the reduction
cell's, each in node order and, within a node, by input (``normal:2<-0``, ``normal:2<-1``,
``normal:3<-0``, ...).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ddpnas.errors import ArchError

OPS: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
CELLS: tuple[str, ...] = ("normal", "reduce")
STEPS = 4  # intermediate nodes per cell
# Per intermediate node (2..5): its incoming (edge index in the cell, source node), string order.
NODE_INPUTS: tuple[tuple[tuple[int, int], ...], ...] = tuple(
    tuple((i * (i + 3) // 2 + j, j) for j in range(i + 2)) for i in range(STEPS)
)
CELL_EDGES = sum(len(inputs) for inputs in NODE_INPUTS)  # 14
EDGES: tuple[str, ...] = tuple(
    f"{cell}:{node}<-{j}"
    for cell in CELLS
    for node, inputs in enumerate(NODE_INPUTS, start=2)
    for _, j in inputs
)


def _bn(c: int, affine: bool, track: bool) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, affine=affine, track_running_stats=track)


class ReLUConvBN(nn.Sequential):
    """ReLU, 1x1 conv, BN: DARTS's cell input preprocessing; no conv bias since BN follows."""

    def __init__(self, c_in: int, c_out: int, affine: bool, track: bool) -> None:
        super().__init__(
            nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False), _bn(c_out, affine, track)
        )


class DilConv(nn.Sequential):
    """ReLU, dilated depthwise conv, pointwise conv, BN."""

    def __init__(self, c: int, kernel: int, stride: int, affine: bool, track: bool) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(
                c, c, kernel, stride=stride, padding=kernel - 1, dilation=2, groups=c, bias=False
            ),
            nn.Conv2d(c, c, 1, bias=False),
            _bn(c, affine, track),
        )


class SepConv(nn.Sequential):
    """Two stacked ReLU-depthwise-pointwise-BN blocks; only the first one strides."""

    def __init__(self, c: int, kernel: int, stride: int, affine: bool, track: bool) -> None:
        pad = kernel // 2
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c, c, kernel, stride=stride, padding=pad, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            _bn(c, affine, track),
            nn.ReLU(),
            nn.Conv2d(c, c, kernel, padding=pad, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            _bn(c, affine, track),
        )


class FactorizedReduce(nn.Module):
    """Stride-2 1x1 convs on the input and on it shifted by one pixel, concatenated, then BN.

    DARTS's reducing skip connection. Odd sizes get the shifted half padded at the end, so the
    output is ceil(H/2) x ceil(W/2) like every other stride-2 op (DARTS assumes even sizes).
    """

    def __init__(self, c_in: int, c_out: int, affine: bool, track: bool) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even output width, got {c_out}")
        self.relu = nn.ReLU()
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = _bn(c_out, affine, track)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = x[:, :, 1:, 1:]
        if x.shape[-2] % 2 or x.shape[-1] % 2:
            shifted = F.pad(shifted, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def make_op(name: str, c: int, stride: int, affine: bool, track: bool = True) -> nn.Module:
    """One non-zero op at width c, as in DARTS's OPS table ('none' has no module: it is skipped)."""
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine, track)
    if name in ("sep_conv_3x3", "sep_conv_5x5"):
        return SepConv(c, int(name[-1]), stride, affine, track)
    if name in ("dil_conv_3x3", "dil_conv_5x5"):
        return DilConv(c, int(name[-1]), stride, affine, track)
    raise ArchError(f"darts: no module for op {name!r}; known ops: {', '.join(OPS[1:])}")


def search_op(name: str, c: int, stride: int, affine: bool, track: bool) -> nn.Module:
    """An op of the search network: DARTS follows pools by a BN there, to scale them like convs."""
    op = make_op(name, c, stride, affine, track)
    return nn.Sequential(op, _bn(c, affine, track)) if "pool" in name else op


def reduction_layers(layers: int) -> set[int]:
    """The cells that halve the resolution: at one and two thirds of the depth, as in DARTS."""
    return {layers // 3, 2 * layers // 3}
