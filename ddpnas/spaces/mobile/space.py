"""The MobileNetV2-based space of ProxylessNAS / XNAS (``proxyless``): 21 layers x 7 choices.

Skeleton (widths x ``width_mult``, rounded by :func:`make_divisible`): a 3x3 stride-2 stem
conv-BN-ReLU6 to 32, a fixed MBConv k3 e1 32->16 without residual, six stages of searchable layers
(widths 24, 40, 80, 96, 192, 320; first strides 2, 2, 2, 1, 2, 1; depths 4, 4, 4, 4, 4, 1), and a
1x1 conv-BN-ReLU6 head to 1280, global pooling and a linear classifier. Each searchable layer picks
one of MBConv {3x3, 5x5, 7x7} x expand {3, 6} or a seventh choice: ``zero`` (the layer is skipped:
its output is its input) on the 15 layers that keep stride 1 and width, ``3x3_MBConv1`` on the 6
stage-first layers. Resolution only changes feature-map sizes (224 for ImageNet; 32-64 on a CPU).

Canonical arch string: the op names of each stage joined by ``,``, stages joined by ``|``::

    3x3_MBConv6,zero,zero,5x5_MBConv3|7x7_MBConv3,...|...|...|...|7x7_MBConv6

DARTS's mixed ops do not fit: with ``zero`` a layer's choices are not all computed (and the
network is meant to stay single-path), so the supernet has no mixed forward and configuring DARTS
here is rejected before any work. MACs are conv + linear multiply-accumulates (no bias adds),
the convention of ProxylessNAS's and XNAS's tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pydantic import Field
from torch import nn

from ddpnas.config.options import Number, Options
from ddpnas.errors import ArchError, ConfigError
from ddpnas.registry import register_space
from ddpnas.spaces.base import Arch, SearchSpace, copy_path_weights
from ddpnas.spaces.complexity import count_macs, count_params
from ddpnas.spaces.mobile.ops import (
    BNArgs,
    Logits,
    MBBlock,
    conv_bn,
    make_divisible,
    parse_mbconv,
)

MBCONV_OPS: tuple[str, ...] = tuple(f"{k}x{k}_MBConv{e}" for k in (3, 5, 7) for e in (3, 6))
ZERO = "zero"
MBCONV1 = "3x3_MBConv1"
OPS: tuple[str, ...] = (*MBCONV_OPS, f"{ZERO}/{MBCONV1}")
BASE_WIDTHS = (32, 16, 24, 40, 80, 96, 192, 320, 1280)  # stem, first block, 6 stages, head
STAGES: tuple[tuple[int, int], ...] = ((2, 4), (2, 4), (2, 4), (1, 4), (2, 4), (1, 1))
EDGES: tuple[str, ...] = tuple(
    f"stage{s}.{b}" for s, (_, depth) in enumerate(STAGES, start=1) for b in range(depth)
)
EXAMPLE = "|".join(",".join([MBCONV_OPS[0]] + [ZERO] * (d - 1)) for _, d in STAGES)


def _out_size(size: int, stride: int) -> int:
    """Feature-map size after an odd-kernel 'same'-padded conv: ceil(size / stride)."""
    return (size - 1) // stride + 1


@dataclass(frozen=True)
class Layer:
    """One searchable layer at a given width multiplier and resolution."""

    c_in: int
    c_out: int
    stride: int
    size: int  # input height = width
    first: bool  # stage-first: the seventh choice is 3x3_MBConv1, else zero

    @property
    def ops(self) -> tuple[str, ...]:
        return (*MBCONV_OPS, MBCONV1 if self.first else ZERO)


def widths(width_mult: float) -> tuple[int, ...]:
    """Stem, first-block, six stage and head widths at ``width_mult`` (head scaled too, as XNAS)."""
    if not width_mult > 0:
        raise ConfigError(f"mobile: width_mult must be > 0, got {width_mult}")
    return tuple(make_divisible(w * width_mult) for w in BASE_WIDTHS)


def layers(width_mult: float = 1.0, resolution: int = 224) -> tuple[Layer, ...]:
    """The 21 searchable layers in order."""
    if resolution < 1:
        raise ConfigError(f"mobile: resolution must be >= 1, got {resolution}")
    w = widths(width_mult)
    size = _out_size(resolution, 2)  # after the stem; the first block keeps it
    c_in = w[1]
    out: list[Layer] = []
    for (stride, depth), c_out in zip(STAGES, w[2:8], strict=True):
        for b in range(depth):
            s = stride if b == 0 else 1
            out.append(Layer(c_in, c_out, s, size, first=b == 0))
            size, c_in = _out_size(size, s), c_out
    return tuple(out)


def _choice(name: str, layer: Layer, bn: BNArgs) -> MBBlock:
    kernel, expand = parse_mbconv(name)
    return MBBlock(layer.c_in, layer.c_out, kernel, layer.stride, expand, bn)


class _MobileBody(nn.Module):
    """Skeleton shared by the supernet and standalone nets (same module names, same code)."""

    def __init__(
        self,
        ops_per_edge: Sequence[Sequence[str]],
        width_mult: float,
        num_classes: int,
        dropout: float,
        bn: BNArgs,
    ) -> None:
        super().__init__()
        self.config = {
            "width_mult": width_mult,
            "num_classes": num_classes,
            "dropout": dropout,
            "bn": bn,
        }
        w = widths(width_mult)
        self.specs = layers(width_mult)
        self.stem = conv_bn(3, w[0], 3, 2, bn, act=True)
        self.first_block = MBBlock(w[0], w[1], 3, 1, 1, bn, skip=False)
        self.layers = nn.ModuleList(
            nn.ModuleDict({n: _choice(n, spec, bn) for n in names if n != ZERO})
            for spec, names in zip(self.specs, ops_per_edge, strict=True)
        )
        self.feature_mix = conv_bn(w[7], w[8], 1, 1, bn, act=True)
        self.logits = Logits(w[8], num_classes, dropout)

    def _run(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        x = self.first_block(self.stem(x))
        for spec, choices, k in zip(self.specs, self.layers, arch, strict=True):
            name = spec.ops[k]
            if name != ZERO:  # a zero layer passes its input on without computing anything
                x = choices[name](x)
        return self.logits(self.feature_mix(x))


class MobileSupernet(_MobileBody):
    """Every choice of every layer; ``forward(x, arch)`` runs one path (no mixed ops)."""

    def __init__(
        self,
        width_mult: float = 1.0,
        num_classes: int = 1000,
        dropout: float = 0.0,
        affine: bool = True,
        track_running_stats: bool = False,
    ) -> None:
        bn = BNArgs(affine=affine, track_running_stats=track_running_stats)
        super().__init__([spec.ops for spec in layers(width_mult)], width_mult, num_classes,
                         dropout, bn)  # fmt: skip

    def forward(self, x: torch.Tensor, arch: Arch | torch.Tensor) -> torch.Tensor:
        if isinstance(arch, torch.Tensor):
            raise ConfigError(
                "mobile: the supernet is single-path only; DARTS's mixed ops do not fit this space"
            )
        return self._run(x, _check(arch))


def _check(arch: Sequence[int]) -> Arch:
    if len(arch) != len(EDGES) or not all(0 <= k < len(OPS) for k in arch):
        raise ArchError(f"mobile: {arch!r} is not {len(EDGES)} op indices in 0..{len(OPS) - 1}")
    return tuple(int(k) for k in arch)


class MobileNetwork(_MobileBody):
    """A standalone network of one architecture; ``zero`` layers hold no module."""

    def __init__(
        self,
        arch: Arch,
        width_mult: float = 1.0,
        num_classes: int = 1000,
        dropout: float = 0.0,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        self.arch = _check(arch)
        bn = BNArgs(affine=affine, track_running_stats=track_running_stats)
        chosen = [(spec.ops[k],) for spec, k in zip(layers(width_mult), self.arch, strict=True)]
        super().__init__(chosen, width_mult, num_classes, dropout, bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, self.arch)

    def load_from_supernet(self, supernet: MobileSupernet) -> None:
        """Copy the inherited weights (and BN buffers) of this path out of a supernet."""
        copy_path_weights(self, supernet)


def _measurable(network_kwargs: dict[str, Any]) -> MobileSupernet:
    """A supernet whose modules run alone on one image: BN with running statistics, as in a
    standalone network (batch statistics of a 1 x 1 map are undefined)."""
    return MobileSupernet(**{"track_running_stats": True, **network_kwargs})


def _shape(c: int, size: int) -> tuple[int, int, int, int]:
    return (1, c, size, size)


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class MobileOptions(Options):
    """The mobile supernet's size."""

    width_mult: Number = Field(1.0, gt=0, description="Channel width multiplier.")
    dropout: Number = Field(0.0, ge=0, lt=1, description="Dropout before the classifier.")


@register_space
class MobileSpace(SearchSpace):
    """ProxylessNAS/XNAS MobileNetV2 space: 21 layers x 7 choices (7^21 networks)."""

    name = "mobile"
    ops = OPS
    latency_table_network = "width 1.0, 224 px"
    edges = EDGES
    Options = MobileOptions
    mixed_ops = False
    why_no_mixed_ops = "its 'zero' layers are skipped, not computed"

    def edge_ops(self, edge: int) -> tuple[str, ...]:
        """The 7 real op names of one layer (the seventh is ``zero`` or ``3x3_MBConv1``)."""
        return layers()[edge].ops

    def arch_to_str(self, arch: Arch) -> str:
        arch = self.validate(arch)
        names = [spec.ops[k] for spec, k in zip(layers(), arch, strict=True)]
        stages, start = [], 0
        for _, depth in STAGES:
            stages.append(",".join(names[start : start + depth]))
            start += depth
        return "|".join(stages)

    def str_to_arch(self, text: str) -> Arch:
        def fail(why: str) -> ArchError:
            return ArchError(f"mobile: {why} in {text!r}; a valid string looks like {EXAMPLE}")

        stages = text.strip().split("|")
        if len(stages) != len(STAGES):
            raise fail(f"expected {len(STAGES)} stages separated by '|', got {len(stages)}")
        specs = iter(layers())
        arch: list[int] = []
        for s, (chunk, (_, depth)) in enumerate(zip(stages, STAGES, strict=True), start=1):
            tokens = [t.strip() for t in chunk.split(",")]
            if len(tokens) != depth:
                raise fail(f"stage {s} needs {depth} ops separated by ',', got {len(tokens)}")
            for b, token in enumerate(tokens):
                allowed = next(specs).ops
                if token not in allowed:
                    raise fail(
                        f"op {token!r} is not a choice of layer stage{s}.{b} "
                        f"(choices: {', '.join(allowed)})"
                    )
                arch.append(allowed.index(token))
        return tuple(arch)

    def supernet(self, **kwargs: Any) -> MobileSupernet:
        """Single-path supernet; BN uses batch statistics by default (running statistics shared
        by sampled paths would be stale), as in the other spaces' supernets."""
        return MobileSupernet(**kwargs)

    def standalone(self, arch: Arch, **kwargs: Any) -> MobileNetwork:
        return MobileNetwork(self.validate(arch), **kwargs)

    def cost(self, arch: Arch, resolution: int = 224, **kwargs: Any) -> dict[str, float]:
        """MMACs (conv + linear) and M params of the standalone network at ``resolution``."""
        net = self.standalone(arch, **kwargs)
        return {
            "flops": count_macs(net, _shape(3, resolution)) / 1e6,
            "params": count_params(net),
        }

    # ---------------------------------------------------------------- per-choice costs (generation)

    def fixed_modules(
        self, resolution: int = 224, **network_kwargs: Any
    ) -> list[tuple[nn.Module, tuple[int, ...]]]:
        """(module, input shape) of the parts every network has: stem, first block, 1x1 head,
        pooling + classifier (the order of :meth:`fixed_latency_keys`)."""
        net = _measurable(network_kwargs)
        w = widths(network_kwargs.get("width_mult", 1.0))
        first = _out_size(resolution, 2)
        last = layers(network_kwargs.get("width_mult", 1.0), resolution)[-1]
        end = _out_size(last.size, last.stride)
        return [
            (net.stem, _shape(3, resolution)),
            (net.first_block, _shape(w[0], first)),
            (net.feature_mix, _shape(w[7], end)),
            (net.logits, _shape(w[8], end)),
        ]

    def choice_modules(
        self, resolution: int = 224, **network_kwargs: Any
    ) -> list[list[tuple[nn.Module | None, tuple[int, ...]]]]:
        """E x K (block module with its residual, input shape); None for ``zero``."""
        net = _measurable(network_kwargs)
        specs = layers(network_kwargs.get("width_mult", 1.0), resolution)
        return [
            [
                (None if name == ZERO else choices[name], _shape(spec.c_in, spec.size))
                for name in spec.ops
            ]
            for spec, choices in zip(specs, net.layers, strict=True)
        ]

    def choice_costs(
        self, resolution: int = 224, **network_kwargs: Any
    ) -> dict[str, tuple[float, np.ndarray]]:
        """Per resource ("macs", "params"; raw counts): (fixed cost, E x K per-choice costs).

        A network's cost is the fixed cost plus its chosen entries (``zero`` costs 0): exactly
        what :func:`count_macs` / the parameter count measure on the standalone network.
        """
        fixed = self.fixed_modules(resolution, **network_kwargs)
        choices = self.choice_modules(resolution, **network_kwargs)
        macs = np.zeros((self.num_edges, self.num_ops))
        params = np.zeros((self.num_edges, self.num_ops))
        for e, row in enumerate(choices):
            for k, (module, shape) in enumerate(row):
                if module is not None:
                    macs[e, k] = count_macs(module, shape)
                    params[e, k] = _params(module)
        return {
            "macs": (float(sum(count_macs(m, s) for m, s in fixed)), macs),
            "params": (float(sum(_params(m) for m, _ in fixed)), params),
        }

    def measured_costs(
        self, arch: Arch, resolution: int = 224, **network_kwargs: Any
    ) -> dict[str, float]:
        """Raw "macs" and "params" counted on the built standalone network (re-measuring what
        :meth:`choice_costs` adds up)."""
        net = self.standalone(arch, **network_kwargs)
        return {
            "macs": float(count_macs(net, _shape(3, resolution))),
            "params": float(_params(net)),
        }

    # ------------------------------------------------------------------ phone latency table keys

    def latency_key(self, edge: int, op: int) -> str | None:
        """Key of ``mobile_trim.yaml`` (width 1.0, 224 px) for one choice; None for ``zero``
        (skipped, costs nothing). ``3x3_MBConv1`` gets its key too, which the table lacks: it is
        reported as missing (or excluded), never costed 0."""
        spec = layers(1.0, 224)[edge]
        name = spec.ops[op]
        if name == ZERO:
            return None
        kernel, expand = parse_mbconv(name)
        skip = int(spec.stride == 1 and spec.c_in == spec.c_out)
        return _block_key(spec.size, spec.c_in, _out_size(spec.size, spec.stride), spec.c_out,
                          expand, kernel, spec.stride, skip)  # fmt: skip

    def fixed_latency_keys(self) -> list[str]:
        """Keys of stem, first block, 1x1 head and logits (the order of :meth:`fixed_modules`)."""
        w = widths(1.0)
        first = _out_size(224, 2)
        last = layers(1.0, 224)[-1]
        end = _out_size(last.size, last.stride)
        return [
            f"Conv-input:224x224x3-output:{first}x{first}x{w[0]}",
            _block_key(first, w[0], first, w[1], 1, 3, 1, 0),
            f"Conv_1-input:{end}x{end}x{w[7]}-output:{end}x{end}x{w[8]}",
            f"Logits-input:{end}x{end}x{w[8]}-output:1000",
        ]


def _block_key(
    size: int, c_in: int, out: int, c_out: int, expand: int, kernel: int, stride: int, skip: int
) -> str:
    return (
        f"expanded_conv-input:{size}x{size}x{c_in}-output:{out}x{out}x{c_out}"
        f"-expand:{expand}-kernel:{kernel}-stride:{stride}-idskip:{skip}"
    )
