"""The authors' released ImageNet networks, rebuilt so their sizes can be checked and retrained.

- :func:`proxyless_gpu_network`: ProxylessNAS's GPU network (40-channel stem, 22 blocks, head
  432 -> 1728, BN momentum 0.1 / eps 1e-3), optionally with DDPNAS's released 14-pair (kernel,
  expand) gene, which overwrites, in order, every block that is an MBConv (block 0 included, as
  DDPNAS's ``proxyless_nets.py`` does). Without a gene: 7.12 M params / 465.3 M MACs at 224 (as
  ProxylessNAS's log); with :data:`DDPNAS_GPU_GENE`: 6,729,696 params / 782.6 M MACs.
- :func:`darts_imagenet_network`: the DARTS-space ImageNet network (14 cells, C=48, ImageNet stems,
  reductions at cells 4 and 9, auxiliary head after cell 9, pool 7 -> dropout -> FC, BN eps 1e-3,
  a BN after every pooling op as in DDPNAS's pt.darts-derived code) built from
  :mod:`ddpnas.spaces.darts.network`'s cells; :data:`DDPNAS_DARTS_IMAGENET` is DDPNAS's released
  genotype (4,506,592 params without the auxiliary head, published 4.51 M).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ddpnas.errors import ArchError
from ddpnas.spaces.darts.genotype import Genotype
from ddpnas.spaces.darts.network import AuxiliaryHeadCIFAR, EvalCell, stack_cells
from ddpnas.spaces.mobile.ops import BNArgs, Logits, MBBlock, conv_bn

# ProxylessNAS-GPU blocks: (c_in, c_out, stride, kernel, expand, residual); None = a Zero block,
# whose output is its input.
Block = tuple[int, int, int, int, int, bool] | None
PROXYLESS_GPU_BLOCKS: tuple[Block, ...] = (
    (40, 24, 1, 3, 1, False),
    (24, 32, 2, 5, 3, False), None, None, None,
    (32, 56, 2, 7, 3, False), None, None,
    (56, 56, 1, 3, 3, True),
    (56, 112, 2, 7, 6, False), None, None,
    (112, 112, 1, 5, 3, True),
    (112, 128, 1, 5, 6, False), None,
    (128, 128, 1, 3, 3, True), (128, 128, 1, 5, 3, True),
    (128, 256, 2, 7, 6, False),
    (256, 256, 1, 7, 6, True), (256, 256, 1, 7, 6, True), (256, 256, 1, 5, 6, True),
    (256, 432, 1, 7, 6, False),
)  # fmt: skip
PROXYLESS_GPU_STEM = 40
PROXYLESS_GPU_HEAD = 1728
# DDPNAS's run_gpu_imagenet.sh: (kernel, expand) per MBConv block, in block order.
DDPNAS_GPU_GENE: tuple[tuple[int, int], ...] = (
    (7, 6), (7, 3), (5, 6), (7, 1), (3, 6), (7, 6), (5, 1),
    (5, 3), (5, 6), (7, 6), (7, 6), (5, 3), (7, 6), (5, 6),
)  # fmt: skip
DDPNAS_DARTS_IMAGENET = Genotype(
    normal=(
        ("sep_conv_5x5", 1), ("max_pool_3x3", 0), ("dil_conv_3x3", 0), ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 0), ("max_pool_3x3", 3), ("dil_conv_3x3", 2), ("avg_pool_3x3", 0),
    ),
    normal_concat=(2, 3, 4, 5),
    reduce=(
        ("sep_conv_5x5", 1), ("avg_pool_3x3", 0), ("avg_pool_3x3", 1), ("skip_connect", 0),
        ("skip_connect", 2), ("sep_conv_3x3", 1), ("dil_conv_5x5", 0), ("dil_conv_5x5", 4),
    ),
    reduce_concat=(2, 3, 4, 5),
)  # fmt: skip
IMAGENET_BN_EPS = 1e-3


class ChainNetwork(nn.Module):
    """Stem, a chain of blocks (None: skipped), 1x1 head conv, pooling and classifier."""

    def __init__(
        self,
        blocks: Sequence[Block],
        stem: int,
        head: int,
        num_classes: int,
        dropout: float,
        bn: BNArgs,
    ) -> None:
        super().__init__()
        first = next(b for b in blocks if b is not None)
        self.stem = conv_bn(3, stem, 3, 2, bn, act=True)
        self.blocks = nn.ModuleList(
            nn.Identity() if b is None else MBBlock(b[0], b[1], b[3], b[2], b[4], bn, skip=b[5])
            for b in blocks
        )
        last = next(b for b in reversed(blocks) if b is not None)
        if first[0] != stem:
            raise ArchError(f"first block takes {first[0]} channels, stem gives {stem}")
        self.feature_mix = conv_bn(last[1], head, 1, 1, bn, act=True)
        self.logits = Logits(head, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.logits(self.feature_mix(x))


def apply_gene(blocks: Sequence[Block], gene: Sequence[tuple[int, int]]) -> tuple[Block, ...]:
    """Overwrite (kernel, expand) of the MBConv blocks, in order, with ``gene``."""
    convs = [i for i, b in enumerate(blocks) if b is not None]
    if len(gene) != len(convs):
        raise ArchError(f"gene has {len(gene)} (kernel, expand) pairs; the net has {len(convs)}")
    out = list(blocks)
    for i, (kernel, expand) in zip(convs, gene, strict=True):
        c_in, c_out, stride, _, _, skip = blocks[i]  # type: ignore[misc]
        if kernel not in (3, 5, 7) or expand < 1:
            raise ArchError(f"gene pair {(kernel, expand)} is not kernel 3/5/7, expand >= 1")
        out[i] = (c_in, c_out, stride, kernel, expand, skip)
    return tuple(out)


def proxyless_gpu_network(
    gene: Sequence[tuple[int, int]] | None = DDPNAS_GPU_GENE,
    num_classes: int = 1000,
    dropout: float = 0.3,
) -> ChainNetwork:
    """DDPNAS's released GPU network (``gene=None``: ProxylessNAS-GPU unmodified); dropout 0.3
    before the classifier as DDPNAS's run_exp.py."""
    blocks = PROXYLESS_GPU_BLOCKS if gene is None else apply_gene(PROXYLESS_GPU_BLOCKS, gene)
    return ChainNetwork(
        blocks, PROXYLESS_GPU_STEM, PROXYLESS_GPU_HEAD, num_classes, dropout, BNArgs()
    )


class AuxiliaryHeadImageNet(AuxiliaryHeadCIFAR):
    """DARTS's ImageNet auxiliary classifier: pooling stride 2, and its second BN left out (as in
    DARTS's code)."""

    def __init__(self, c: int, num_classes: int) -> None:
        super().__init__(c, num_classes, pool_stride=2, second_bn=False)


class NetworkImageNet(nn.Module):
    """DARTS's ImageNet evaluation network; ``forward(x)`` returns ``(logits, aux_logits)`` like
    :class:`~ddpnas.spaces.darts.network.NetworkCIFAR`, so the same retraining loop drives both."""

    def __init__(
        self,
        genotype: Genotype,
        C: int = 48,
        layers: int = 14,
        num_classes: int = 1000,
        auxiliary: bool = True,
        dropout: float = 0.3,
        pool_bn: bool = True,
    ) -> None:
        super().__init__()
        self.genotype = genotype
        self.drop_path_prob = 0.0
        self.aux_position = 2 * layers // 3
        self.stem0 = nn.Sequential(
            nn.Conv2d(3, C // 2, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C // 2),
            nn.ReLU(),
            nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C),
        )
        self.stem1 = nn.Sequential(
            nn.ReLU(), nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C)
        )
        cells, c_prev, c_aux = stack_cells(
            genotype, layers, C, C, True, self.aux_position, _add_pool_bn if pool_bn else None
        )
        self.cells = nn.ModuleList(cells)
        self.auxiliary_head = AuxiliaryHeadImageNet(c_aux, num_classes) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(c_prev, num_classes)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps = IMAGENET_BN_EPS

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        aux_logits = None
        s0 = self.stem0(x)
        s1 = self.stem1(s0)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_position and self.auxiliary_head is not None and self.training:
                aux_logits = self.auxiliary_head(s1)
        logits = self.classifier(self.dropout(self.global_pooling(s1).flatten(1)))
        return logits, aux_logits


def _add_pool_bn(cell: EvalCell, c: int) -> None:
    """Follow each pooling op of a cell by an affine BN, as DDPNAS's network (pt.darts's PoolBN)
    does; DARTS's own evaluation cells have none. Parameters only (2c each), no MACs."""
    for i, op in enumerate(cell.ops):
        if isinstance(op, nn.MaxPool2d | nn.AvgPool2d):
            cell.ops[i] = nn.Sequential(op, nn.BatchNorm2d(c))


def darts_imagenet_network(
    genotype: Genotype = DDPNAS_DARTS_IMAGENET,
    C: int = 48,
    layers: int = 14,
    num_classes: int = 1000,
    auxiliary: bool = True,
    dropout: float = 0.3,
    pool_bn: bool = True,
) -> NetworkImageNet:
    """DARTS's ImageNet network of a genotype (defaults: DDPNAS's released ImageNet setting;
    ``pool_bn=False`` gives DARTS's own cells, 9,216 parameters fewer for this genotype)."""
    return NetworkImageNet(genotype, C, layers, num_classes, auxiliary, dropout, pool_bn)
