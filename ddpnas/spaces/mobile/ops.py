"""Building blocks of the MobileNetV2-based (ProxylessNAS / XNAS) networks.

An MBConv ("mobile inverted bottleneck") is a 1x1 expansion to ``round(c_in * expand)`` channels
(left out when expand is 1), a k x k depthwise conv carrying the stride, and a linear 1x1
projection, each followed by BN, ReLU6 after the first two; convs have no bias. A residual is added
only when the block keeps stride 1 and width, as in ProxylessNAS's MobileInvertedResidualBlock.
BN defaults to ProxylessNAS's momentum 0.1 / eps 1e-3 (its released networks use it; parameter
and MAC counts do not depend on it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from ddpnas.errors import ArchError

BN_MOMENTUM = 0.1
BN_EPS = 1e-3
_MBCONV = re.compile(r"^(\d)x\1_MBConv(\d)$")


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a scaled width to a multiple of ``divisor``, never more than 10 % below ``value``.

    The MobileNetV2 rule the ProxylessNAS/XNAS code uses for every width-multiplied layer.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


@dataclass(frozen=True)
class BNArgs:
    """How every BN of a network is built (shared by supernet and standalone nets)."""

    momentum: float = BN_MOMENTUM
    eps: float = BN_EPS
    affine: bool = True
    track_running_stats: bool = True

    def __call__(self, c: int) -> nn.BatchNorm2d:
        return nn.BatchNorm2d(
            c,
            momentum=self.momentum,
            eps=self.eps,
            affine=self.affine,
            track_running_stats=self.track_running_stats,
        )


def conv_bn(
    c_in: int, c_out: int, kernel: int, stride: int, bn: BNArgs, *, groups: int = 1, act: bool
) -> nn.Sequential:
    """Conv (no bias, 'same' padding) -> BN -> optional ReLU6."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        bn(c_out),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """Mobile inverted bottleneck conv (no residual: :class:`MBBlock` adds it)."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, expand: int, bn: BNArgs
    ) -> None:
        super().__init__()
        mid = round(c_in * expand)
        self.kernel, self.stride, self.expand = kernel, stride, expand
        self.inverted_bottleneck = None if expand == 1 else conv_bn(c_in, mid, 1, 1, bn, act=True)
        self.depth_conv = conv_bn(mid, mid, kernel, stride, bn, groups=mid, act=True)
        self.point_linear = conv_bn(mid, c_out, 1, 1, bn, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inverted_bottleneck is not None:
            x = self.inverted_bottleneck(x)
        return self.point_linear(self.depth_conv(x))


def parse_mbconv(name: str) -> tuple[int, int]:
    """(kernel, expand) of an op name like ``5x5_MBConv6``."""
    match = _MBCONV.match(name)
    if match is None:
        raise ArchError(f"mobile: {name!r} is not an op name like '5x5_MBConv6' or 'zero'")
    return int(match.group(1)), int(match.group(2))


class MBBlock(nn.Module):
    """An MBConv with the identity shortcut added when stride is 1 and width is kept."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int,
        expand: int,
        bn: BNArgs,
        *,
        skip: bool | None = None,
    ) -> None:
        super().__init__()
        self.conv = MBConv(c_in, c_out, kernel, stride, expand, bn)
        self.skip = (stride == 1 and c_in == c_out) if skip is None else skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y + x if self.skip else y


class Logits(nn.Module):
    """Global average pool, dropout, linear classifier (the latency table's ``Logits`` entry)."""

    def __init__(self, c_in: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.pool(x).flatten(1)))
