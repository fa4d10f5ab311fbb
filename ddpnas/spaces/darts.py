"""The DARTS cell space (Liu et al., ICLR 2019): 28 edges x 8 ops, genotypes and networks.

A cell has two input nodes (0: output of the cell before last, 1: output of the last cell) and four
intermediate nodes 2..5; node i is fed by every earlier node, so a cell has 2+3+4+5 = 14 edges. The
space has a normal and a reduction cell: edges 0..13 are the normal cell's, 14..27 the reduction
cell's, each in node order and, within a node, by input (``normal:2<-0``, ``normal:2<-1``,
``normal:3<-0``, ...). An :data:`Arch` picks one op per edge: what DDPNAS samples and prunes.

Canonical arch string: per cell, the NAS-Bench-201 form over nodes 2..5, ``|op~input|...|`` per
node joined by ``+``, the two cells as ``normal=...;reduce=...``::

    normal=|sep_conv_3x3~0|skip_connect~1|+|...|+|...|+|none~0|...|dil_conv_3x3~4|;reduce=|...|

A :class:`Genotype` is the DARTS discretisation (two inputs per node, no ``none``); its string is
DARTS's familiar ``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], ...)``.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ddpnas.errors import ArchError
from ddpnas.registry import register_space
from ddpnas.spaces.base import Arch, CellBNOptions, SearchSpace, copy_path_weights
from ddpnas.spaces.costs import count_flops, count_params

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
EXAMPLE_CELL = "|op~0|op~1|+|op~0|op~1|op~2|+|...|+|op~0|op~1|op~2|op~3|op~4|"
EXAMPLE = f"normal={EXAMPLE_CELL};reduce={EXAMPLE_CELL}"
GENOTYPE_FORM = (
    "Genotype(normal=[('op', input), ... 8 pairs], normal_concat=[2, 3, 4, 5], "
    "reduce=[... 8 pairs], reduce_concat=[2, 3, 4, 5])"
)


# ----------------------------------------------------------------------------------------- ops


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


def _search_op(name: str, c: int, stride: int, affine: bool, track: bool) -> nn.Module:
    """An op of the search network: DARTS follows pools by a BN there, to scale them like convs."""
    op = make_op(name, c, stride, affine, track)
    return nn.Sequential(op, _bn(c, affine, track)) if "pool" in name else op


def _reduction_layers(layers: int) -> set[int]:
    return {layers // 3, 2 * layers // 3}


# --------------------------------------------------------------------------------- search network


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
                    n: _search_op(n, c, 2 if reduction and j < 2 else 1, affine, track)
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
            reduction = i in _reduction_layers(layers)
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


# -------------------------------------------------------------------------------------- genotype


def _pairs(name: str, value: Any) -> tuple[tuple[str, int], ...]:
    """Validated (op, input) pairs of one cell: 2 per node, inputs earlier nodes, no 'none'."""
    if not isinstance(value, Iterable) or isinstance(value, str | bytes):
        raise ArchError(f"darts genotype: {name} must be a list of (op, input) pairs")
    items = list(value)
    if len(items) != 2 * STEPS:
        raise ArchError(
            f"darts genotype: {name} needs {2 * STEPS} (op, input) pairs, got {len(items)}"
        )
    pairs: list[tuple[str, int]] = []
    for p, item in enumerate(items):
        node = p // 2 + 2
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise ArchError(f"darts genotype: {name} item {item!r} is not an (op, input) pair")
        op, source = item
        if not isinstance(op, str) or op not in OPS[1:]:
            raise ArchError(
                f"darts genotype: unknown op {op!r} in {name} pair {item!r} "
                f"(known: {', '.join(OPS[1:])}; a genotype never holds 'none')"
            )
        if isinstance(source, bool) or not isinstance(source, int | np.integer):
            raise ArchError(
                f"darts genotype: input {source!r} in {name} pair {item!r} is not an int"
            )
        if not 0 <= source < node:
            raise ArchError(
                f"darts genotype: {name} pair {item!r} feeds node {node} from node {source}; "
                f"inputs of node {node} are 0..{node - 1}"
            )
        pairs.append((op, int(source)))
    return tuple(pairs)


def _concat(name: str, value: Any) -> tuple[int, ...]:
    """Validated output nodes of one cell: distinct node numbers in 0..5."""
    if not isinstance(value, Iterable) or isinstance(value, str | bytes):
        raise ArchError(f"darts genotype: {name} must be a list of node numbers, got {value!r}")
    nodes = list(value)
    if not all(isinstance(n, int | np.integer) and not isinstance(n, bool) for n in nodes):
        raise ArchError(f"darts genotype: {name} {nodes!r} holds a value that is not a node number")
    nodes = [int(n) for n in nodes]
    if not nodes or len(set(nodes)) != len(nodes) or not all(0 <= n < 2 + STEPS for n in nodes):
        raise ArchError(
            f"darts genotype: {name} {nodes} must be distinct node numbers in 0..{STEPS + 1}"
        )
    return tuple(nodes)


@dataclass(frozen=True, repr=False)
class Genotype:
    """A discrete DARTS cell pair: per cell 8 (op, input) pairs, two per node, and output nodes.

    ``str()``/``repr()`` give DARTS's own notation, which :meth:`parse` reads back without eval.
    """

    normal: tuple[tuple[str, int], ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[tuple[str, int], ...]
    reduce_concat: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "normal", _pairs("normal", self.normal))
        object.__setattr__(self, "reduce", _pairs("reduce", self.reduce))
        object.__setattr__(self, "normal_concat", _concat("normal_concat", self.normal_concat))
        object.__setattr__(self, "reduce_concat", _concat("reduce_concat", self.reduce_concat))

    def __repr__(self) -> str:
        return (
            f"Genotype(normal={list(self.normal)}, normal_concat={list(self.normal_concat)}, "
            f"reduce={list(self.reduce)}, reduce_concat={list(self.reduce_concat)})"
        )

    @classmethod
    def parse(cls, text: str) -> Genotype:
        """Read DARTS's notation (``range(2, 6)`` accepted for a concat, as DARTS logs print it).

        Only literals are evaluated (``ast.literal_eval``), so a string can never run code.
        """

        def fail(why: str) -> ArchError:
            return ArchError(f"darts genotype: {why} in {text!r}; expected {GENOTYPE_FORM}")

        try:
            call = ast.parse(text.strip(), mode="eval").body
        except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
            raise fail(f"not a Genotype(...) expression ({error})") from None
        if not (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Name)
            and call.func.id == "Genotype"
        ):
            raise fail("the string must be one call 'Genotype(...)'")
        if call.args or any(k.arg is None for k in call.keywords):
            raise fail("every field must be given by name (normal=..., normal_concat=..., ...)")
        names = [k.arg for k in call.keywords]
        expected = ["normal", "normal_concat", "reduce", "reduce_concat"]
        unknown = sorted(set(names) - set(expected))
        missing = [n for n in expected if n not in names]
        if unknown or missing or len(names) != len(set(names)):
            raise fail(f"fields must be exactly {expected}; unknown {unknown}, missing {missing}")
        values = {k.arg: _literal(k.arg, k.value, fail) for k in call.keywords}
        return cls(**values)


def _literal(name: str, node: ast.expr, fail: Callable[[str], ArchError]) -> Any:
    """A literal field value, or the list of a ``range(a, b)`` call for a concat field."""
    if (
        name.endswith("_concat")
        and isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "range"
        and not node.keywords
        and 1 <= len(node.args) <= 2
        and all(isinstance(a, ast.Constant) and type(a.value) is int for a in node.args)
    ):
        return list(range(*(a.value for a in node.args)))
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        raise fail(f"{name} is not a literal: {ast.unparse(node)!r}") from None


# From the DARTS paper's code release (genotypes.py): first- and second-order search results.
DARTS_V1 = Genotype(
    normal=(
        ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
        ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2),
    ),
    normal_concat=(2, 3, 4, 5),
    reduce=(
        ("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
        ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0),
    ),
    reduce_concat=(2, 3, 4, 5),
)  # fmt: skip
DARTS_V2 = Genotype(
    normal=(
        ("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2),
    ),
    normal_concat=(2, 3, 4, 5),
    reduce=(
        ("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
        ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1),
    ),
    reduce_concat=(2, 3, 4, 5),
)  # fmt: skip


def derive_genotype(theta: np.ndarray, mask: np.ndarray) -> Genotype:
    """The genotype of a (28 x 8) op distribution restricted to the surviving ops ``mask``.

    Per node, keep the two incoming edges whose strongest surviving non-'none' op has the largest
    theta, each with that op; ties go to the lower op index, then the lower input node. DARTS's
    softmax(alpha) with an all-True mask and DDPNAS's pruned theta both map to genotypes this way.
    """
    theta = np.asarray(theta, dtype=float)
    mask = np.asarray(mask, dtype=bool)
    shape = (len(EDGES), len(OPS))
    if theta.shape != shape or mask.shape != shape:
        raise ArchError(f"darts: theta and mask must be {shape}, got {theta.shape}, {mask.shape}")
    if not np.isfinite(theta[mask]).all():
        raise ArchError("darts: theta has non-finite values on surviving ops")
    cells: list[list[tuple[str, int]]] = []
    for c, cell in enumerate(CELLS):
        pairs: list[tuple[str, int]] = []
        for node, inputs in enumerate(NODE_INPUTS, start=2):
            candidates: list[tuple[float, int, int]] = []  # (strength, input node, op)
            for e, j in inputs:
                row = c * CELL_EDGES + e
                alive = [k for k in range(1, len(OPS)) if mask[row, k]]
                if alive:
                    best = max(alive, key=lambda k, row=row: theta[row, k])  # first max wins
                    candidates.append((float(theta[row, best]), j, best))
            if len(candidates) < 2:
                raise ArchError(
                    f"darts: node {node} of the {cell} cell has {len(candidates)} incoming edge(s) "
                    "with a surviving op other than 'none'; a genotype needs 2"
                )
            candidates.sort(key=lambda t: -t[0])  # stable: equal strengths keep input order
            pairs.extend((OPS[k], j) for _, j, k in candidates[:2])
        cells.append(pairs)
    return Genotype(
        normal=tuple(cells[0]),
        normal_concat=tuple(range(2, 2 + STEPS)),
        reduce=tuple(cells[1]),
        reduce_concat=tuple(range(2, 2 + STEPS)),
    )


# ------------------------------------------------------------------------------ evaluation network


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


class AuxiliaryHeadCIFAR(nn.Module):
    """DARTS's auxiliary classifier on the 8x8 feature map after the second reduction."""

    def __init__(self, c: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(),
            nn.AvgPool2d(5, stride=3, count_include_pad=False),
            nn.Conv2d(c, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
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
        c_prev_prev, c_prev, c_curr = c_curr, c_curr, C
        cells: list[EvalCell] = []
        reduction_prev = False
        c_aux = c_prev
        for i in range(layers):
            reduction = i in _reduction_layers(layers)
            if reduction:
                c_curr *= 2
            pairs, concat = (
                (genotype.reduce, genotype.reduce_concat)
                if reduction
                else (genotype.normal, genotype.normal_concat)
            )
            cells.append(
                EvalCell(pairs, concat, c_prev_prev, c_prev, c_curr, reduction, reduction_prev)
            )
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, len(concat) * c_curr
            if i == self.aux_position:
                c_aux = c_prev
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


# ---------------------------------------------------------------------------------------- space


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

    def derived(self, arch: Arch, theta: np.ndarray, mask: np.ndarray) -> dict[str, str]:
        """The genotype: two strongest non-none inputs per node (see :func:`derive_genotype`)."""
        return {"genotype": str(derive_genotype(theta, mask))}

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
