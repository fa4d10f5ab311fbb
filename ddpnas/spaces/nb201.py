"""The NAS-Bench-201 cell space: 6 edges x 5 ops, its official strings, networks and costs.

The benchmark's index order is a fixed shuffle of the 15,625 cells (no enumeration of op names
reproduces it), so index conversions take the benchmark's ordered list of arch strings.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pydantic import Field
from torch import nn

from ddpnas.errors import ArchError
from ddpnas.registry import register_space
from ddpnas.spaces.base import Arch, CellBNOptions, SearchSpace, Shape, copy_path_weights
from ddpnas.spaces.complexity import count_flops, count_params

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES: tuple[str, ...] = ("1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2")
# Per intermediate node (1, 2, 3): its incoming (edge index, source node) pairs, in string order.
NODE_INPUTS: tuple[tuple[tuple[int, int], ...], ...] = (
    ((0, 0),),
    ((1, 0), (2, 1)),
    ((3, 0), (4, 1), (5, 2)),
)
EXAMPLE = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
)


def _relu_conv_bn(c: int, kernel: int, affine: bool, track: bool) -> nn.Sequential:
    """The benchmark's nor_conv (ReLU-Conv-BN); no conv bias since BN follows."""
    return nn.Sequential(
        nn.ReLU(),
        nn.Conv2d(c, c, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c, affine=affine, track_running_stats=track),
    )


def make_op(name: str, c: int, affine: bool = True, track_running_stats: bool = True) -> nn.Module:
    """Build one non-zero op at width c (stride 1, shape-preserving as every cell edge is)."""
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return _relu_conv_bn(c, 1, affine, track_running_stats)
    if name == "nor_conv_3x3":
        return _relu_conv_bn(c, 3, affine, track_running_stats)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ArchError(f"nb201: no module for op {name!r}; known ops: {', '.join(OPS[1:])}")


class NB201Cell(nn.Module):
    """One cell; ``edges[e]`` maps op name -> module for the ops this cell can run on edge e.

    The supernet holds every non-zero op, a standalone cell only the chosen one, under the same
    names, so a standalone state dict is a subset of the supernet's.
    """

    def __init__(
        self, c: int, ops_per_edge: Sequence[Sequence[str]], affine: bool, track: bool
    ) -> None:
        super().__init__()
        self.edges = nn.ModuleList(
            nn.ModuleDict({n: make_op(n, c, affine, track) for n in names if n != "none"})
            for names in ops_per_edge
        )

    def forward(self, x: torch.Tensor, arch: Arch | torch.Tensor) -> torch.Tensor:
        if isinstance(arch, torch.Tensor):
            return self.forward_mixed(x, arch)
        nodes = [x]
        for inputs in NODE_INPUTS:
            total: torch.Tensor | None = None
            for e, j in inputs:
                k = arch[e]
                if k == 0:
                    continue
                y = self.edges[e][OPS[k]](nodes[j])
                total = y if total is None else total + y
            # A node fed only by 'none' edges is the benchmark's zero tensor, seen by later ops.
            nodes.append(torch.zeros_like(x) if total is None else total)
        return nodes[-1]

    def forward_mixed(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """DARTS's relaxation: each edge is the weighted sum of its ops (``none`` adds nothing).

        ``weights`` is E x K with rows already normalised; gradients flow into it.
        """
        nodes = [x]
        for inputs in NODE_INPUTS:
            total = torch.zeros_like(x)
            for e, j in inputs:
                for k, name in enumerate(OPS):
                    if name != "none":
                        total = total + weights[e, k] * self.edges[e][name](nodes[j])
            nodes.append(total)
        return nodes[-1]


class ResNetReduction(nn.Module):
    """The benchmark's fixed reduction block: ResNet basic block, stride 2, width c_in -> c_out."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.conv_b = nn.Sequential(
            nn.ReLU(), nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out)
        )
        self.downsample = nn.Sequential(
            nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class _NB201Body(nn.Module):
    """Macro skeleton shared by the supernet and standalone nets, so both run the same code."""

    def __init__(
        self,
        ops_per_edge: Sequence[Sequence[str]],
        C: int,
        N: int,
        num_classes: int,
        affine: bool,
        track_running_stats: bool,
    ) -> None:
        super().__init__()
        self.config = {
            "C": C,
            "N": N,
            "num_classes": num_classes,
            "affine": affine,
            "track_running_stats": track_running_stats,
        }
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers: list[nn.Module] = []
        width = C
        for stage in range(3):
            if stage > 0:
                layers.append(ResNetReduction(width, 2 * width))
                width *= 2
            layers.extend(
                NB201Cell(width, ops_per_edge, affine, track_running_stats) for _ in range(N)
            )
        self.cells = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU())
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, num_classes)

    def _run(self, x: torch.Tensor, arch: Arch | torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for layer in self.cells:
            x = layer(x, arch) if isinstance(layer, NB201Cell) else layer(x)
        x = self.global_pooling(self.lastact(x))
        return self.classifier(x.flatten(1))


class NB201Supernet(_NB201Body):
    """Every op of every edge in every cell; ``forward(x, arch)`` runs only the ops of ``arch``."""

    def __init__(
        self,
        C: int = 16,
        N: int = 5,
        num_classes: int = 10,
        affine: bool = False,
        track_running_stats: bool = False,
    ) -> None:
        super().__init__([OPS] * len(EDGES), C, N, num_classes, affine, track_running_stats)

    def forward(self, x: torch.Tensor, arch: Arch | torch.Tensor) -> torch.Tensor:
        """Single path for an arch; mixed ops (DARTS) for an E x K weight tensor."""
        if isinstance(arch, torch.Tensor):
            if tuple(arch.shape) != (len(EDGES), len(OPS)):
                raise ValueError(f"nb201: mixed weights must be {len(EDGES)} x {len(OPS)}")
            return self._run(x, arch)
        if len(arch) != len(EDGES) or not all(0 <= k < len(OPS) for k in arch):
            raise ArchError(f"nb201: {arch!r} is not {len(EDGES)} op indices in 0..{len(OPS) - 1}")
        return self._run(x, arch)


class NB201Network(_NB201Body):
    """A standalone network of one architecture; 'none' edges hold no module."""

    def __init__(
        self,
        arch: Arch,
        C: int = 16,
        N: int = 5,
        num_classes: int = 10,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__([(OPS[k],) for k in arch], C, N, num_classes, affine, track_running_stats)
        self.arch = tuple(arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, self.arch)

    def load_from_supernet(self, supernet: NB201Supernet) -> None:
        """Copy the inherited weights (and BN buffers) of this path out of a supernet."""
        copy_path_weights(self, supernet)


class OpInEveryCell(nn.Module):
    """One edge's op as it appears in every cell of the network (3 stages x N cells).

    Choosing op k on edge e adds exactly these modules to a standalone network, so their costs are
    the additive cost of that choice. ``forward`` takes the first stage's input and feeds each later
    stage a zero tensor of its own shape (values do not change MACs or dense-op latency).
    """

    def __init__(self, name: str, C: int, N: int) -> None:
        super().__init__()
        self.C = C
        self.ops = nn.ModuleList(make_op(name, C * 2**s) for s in range(3) for _ in range(N))
        self.N = N

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        for i, op in enumerate(self.ops):
            s = i // self.N
            inp = x if s == 0 else x.new_zeros(b, self.C * 2**s, h // 2**s, w // 2**s)
            out = op(inp)
        return out


class NB201Options(CellBNOptions):
    """The NAS-Bench-201 supernet's size."""

    C: int = Field(16, ge=1, description="Channels of the first stage.")
    N: int = Field(5, ge=1, description="Cells per stage.")


@register_space
class NB201Space(SearchSpace):
    """NAS-Bench-201: a 4-node cell, 6 edges, 5 ops, repeated 3 x N times in a fixed skeleton."""

    name = "nb201"
    ops = OPS
    edges = EDGES
    Options = NB201Options
    modes = ("tabular", "weight_sharing")

    def arch_to_str(self, arch: Arch) -> str:
        arch = self.validate(arch)
        nodes = (
            "|" + "|".join(f"{OPS[arch[e]]}~{j}" for e, j in inputs) + "|" for inputs in NODE_INPUTS
        )
        return "+".join(nodes)

    def str_to_arch(self, text: str) -> Arch:
        def fail(why: str) -> ArchError:
            return ArchError(f"nb201: {why} in {text!r}; a valid string looks like {EXAMPLE}")

        parts = text.strip().split("+")
        if len(parts) != len(NODE_INPUTS):
            raise fail(f"expected {len(NODE_INPUTS)} nodes separated by '+', got {len(parts)}")
        arch: list[int] = []
        for node, (part, inputs) in enumerate(zip(parts, NODE_INPUTS, strict=True), start=1):
            if len(part) < 2 or not (part.startswith("|") and part.endswith("|")):
                raise fail(f"node {node} token {part!r} must be wrapped in '|'")
            tokens = part[1:-1].split("|")
            if len(tokens) != len(inputs):
                raise fail(f"node {node} needs {len(inputs)} edges, got {len(tokens)} in {part!r}")
            for token, (_, source) in zip(tokens, inputs, strict=True):
                op, sep, index = token.partition("~")
                if not sep or not index.isdigit():
                    raise fail(f"malformed token {token!r} (expected 'op~input')")
                if op not in OPS:
                    raise fail(f"unknown op {op!r} in token {token!r} (known: {', '.join(OPS)})")
                if int(index) != source:
                    raise fail(
                        f"token {token!r} of node {node} has input node {index}, expected {source}"
                    )
                arch.append(OPS.index(op))
        return tuple(arch)

    def disconnected(self, arch: Arch) -> bool:
        """No chain of non-'none' edges from node 0 to node 3: the cell outputs zeros (e.g.
        ``|none~0|+|none~0|nor_conv_3x3~1|+|none~0|nor_conv_3x3~1|nor_conv_3x3~2|``)."""
        arch = self.validate(arch)
        reached = {0}
        for node, inputs in enumerate(NODE_INPUTS, start=1):
            if any(OPS[arch[e]] != "none" and j in reached for e, j in inputs):
                reached.add(node)
        return len(NODE_INPUTS) not in reached

    def index_to_arch(self, index: int, archs: Sequence[str]) -> Arch:
        """Arch at a benchmark index; ``archs`` is the benchmark's ordered list of arch strings."""
        if not 0 <= index < len(archs):
            raise ArchError(f"nb201: index {index} is outside 0..{len(archs) - 1}")
        return self.str_to_arch(archs[index])

    def arch_to_index(self, arch: Arch, archs: Sequence[str]) -> int:
        """Benchmark index of an arch; ``archs`` is the benchmark's ordered list of arch strings."""
        text = self.arch_to_str(arch)
        try:
            return archs.index(text)
        except ValueError:
            raise ArchError(f"nb201: {text} is not in the list of {len(archs)} archs") from None

    def supernet(
        self,
        C: int = 16,
        N: int = 5,
        num_classes: int = 10,
        affine: bool = False,
        track_running_stats: bool = False,
    ) -> NB201Supernet:
        """Weight-sharing supernet; cell BNs default to the NATS-Bench search setting (no affine,
        batch statistics) because running stats shared across paths would be stale."""
        return NB201Supernet(C, N, num_classes, affine, track_running_stats)

    def standalone(
        self,
        arch: Arch,
        C: int = 16,
        N: int = 5,
        num_classes: int = 10,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> NB201Network:
        """Standalone net; BN defaults to the setting the benchmark's networks were trained with."""
        return NB201Network(self.validate(arch), C, N, num_classes, affine, track_running_stats)

    def cost(
        self, arch: Arch, C: int = 16, N: int = 5, num_classes: int = 10, input_size: int = 32
    ) -> dict[str, float]:
        """MFLOPs and M params of the standalone net, in NAS-Bench-201's cost-info convention."""
        net = self.standalone(arch, C=C, N=N, num_classes=num_classes)
        return {
            "flops": count_flops(net, (1, 3, input_size, input_size)),
            "params": count_params(net),
        }

    def choice_modules(
        self, C: int = 16, N: int = 5, num_classes: int = 10, input_size: int = 32
    ) -> list[list[tuple[nn.Module | None, Shape]]]:
        """Every edge is C -> C at the cell's resolution, so each (edge, op) is one module that
        runs the op in all 3N cells; ``none`` computes nothing."""
        shape = (1, C, input_size, input_size)
        return [
            [(None if op == "none" else OpInEveryCell(op, C, N), shape) for op in OPS]
            for _ in EDGES
        ]

    def fixed_modules(
        self, C: int = 16, N: int = 5, num_classes: int = 10, input_size: int = 32
    ) -> list[tuple[nn.Module, Shape]]:
        """Stem, the two reduction blocks and the head (BN, ReLU, pooling, classifier), taken from
        an all-``none`` network so they are the very modules every standalone net has."""
        net = self.standalone((0,) * len(EDGES), C=C, N=N, num_classes=num_classes)
        size = input_size
        out: list[tuple[nn.Module, Shape]] = [(net.stem, (1, 3, size, size))]
        for layer in net.cells:
            if isinstance(layer, ResNetReduction):
                c_in = layer.conv_a[1].in_channels
                out.append((layer, (1, c_in, size, size)))
                size = (size + 1) // 2
        head = nn.Sequential(net.lastact, net.global_pooling, nn.Flatten(), net.classifier)
        out.append((head, (1, 4 * C, size, size)))
        return out

    def measured_costs(
        self, arch: Arch, C: int = 16, N: int = 5, num_classes: int = 10, input_size: int = 32
    ) -> dict[str, float]:
        """Raw MACs (NAS-Bench-201's "flops") and params counted on the standalone network."""
        cost = self.cost(arch, C=C, N=N, num_classes=num_classes, input_size=input_size)
        return {
            "macs": float(round(cost["flops"] * 1e6)),
            "params": float(round(cost["params"] * 1e6)),
        }
