"""DARTS genotypes: the discrete cell pair DARTS retrains (two inputs per node, no ``none``).

Its string is DARTS's familiar ``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3,
4, 5], ...)``; records and pipeline files hold its JSON form (:meth:`Genotype.to_json`), and the
text form is parsed only for genotypes written by people or by DARTS's own code.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ddpnas.errors import ArchError, DDPNASError
from ddpnas.spaces.darts.ops import CELL_EDGES, CELLS, EDGES, NODE_INPUTS, OPS, STEPS

FIELDS: tuple[str, ...] = ("normal", "normal_concat", "reduce", "reduce_concat")
GENOTYPE_FORM = (
    "Genotype(normal=[('op', input), ... 8 pairs], normal_concat=[2, 3, 4, 5], "
    "reduce=[... 8 pairs], reduce_concat=[2, 3, 4, 5])"
)
JSON_FORM = (
    '{"normal": [["op", input], ... 8 pairs], "normal_concat": [2, 3, 4, 5], '
    '"reduce": [... 8 pairs], "reduce_concat": [2, 3, 4, 5]}'
)


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

    ``str()``/``repr()`` give DARTS's own notation, which :meth:`parse` reads back without eval;
    records and pipeline files hold :meth:`to_json`'s object, which :meth:`from_json` reads back.
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

    def to_json(self) -> dict[str, list[Any]]:
        """The stored form: DARTS's four fields, each (op, input) pair as an [op, input] list."""
        return {
            "normal": [list(pair) for pair in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [list(pair) for pair in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    @classmethod
    def from_json(cls, value: Any) -> Genotype:
        """Read :meth:`to_json`'s object back; its fields are checked as the constructor's are."""
        if not isinstance(value, dict) or sorted(value) != sorted(FIELDS):
            got = sorted(value) if isinstance(value, dict) else type(value).__name__
            raise ArchError(
                f"darts genotype: expected a JSON object with the keys {list(FIELDS)}, got {got}; "
                f"it looks like {JSON_FORM}"
            )
        return cls(**value)

    @classmethod
    def from_record(cls, value: Any) -> Genotype:
        """The genotype a search or retrain record holds: :meth:`to_json`'s object. Records written
        before genotypes were stored as JSON hold DARTS's text form; it is parsed, so old results
        keep working."""
        return cls.parse(value) if isinstance(value, str) else cls.from_json(value)

    @classmethod
    def read(cls, path: str | Path) -> Genotype:
        """A genotype file: the pipeline's JSON (``ddpnas genotype``) or, for a genotype from
        elsewhere, DARTS's text form; a file starting with '{' is JSON."""
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise DDPNASError(f"cannot read genotype file {path}: {exc}") from None
        if not text.lstrip().startswith("{"):
            return cls.parse(text)
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ArchError(
                f"darts genotype: {path} is not valid JSON ({exc}); it should look like "
                f"{JSON_FORM}, or rerun 'ddpnas genotype' to write it"
            ) from None
        return cls.from_json(value)

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
        expected = list(FIELDS)
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
