"""NAS-Bench-201 look-ups behind one interface (:class:`NB201Bench`), and the compact table.

Three interchangeable back-ends implement it:

* ``table``: the compact CSV table (``nb201_table.csv.gz``), the fast path for search and reports,
  here (:class:`TableBench`);
* ``nats``: the official NATS-Bench topology files (``NATS-tss-v1_0-3ffb9-simple``), read with
  the ``nats_bench`` package (:mod:`ddpnas.nasbench.official`);
* ``nas201``: the official NAS-Bench-201 file (``NAS-Bench-201-v1_1-096897.pth``), read with the
  ``nas_201_api`` package (:mod:`ddpnas.nasbench.official`).

Every look-up defaults to ``hp="200"`` with seed-averaged results (``is_random=False``). Both
official APIs default to ``hp="12"`` and a random seed; the public DDPNAS code looked its results
up on the 12-epoch schedule, a published defect this suite must not repeat.

Finding and opening the data, and writing the table: :mod:`ddpnas.nasbench.files`.
"""

from __future__ import annotations

import abc
import operator
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ddpnas.data.locations import ENV_NB201
from ddpnas.errors import ArchError, ConfigError, DataError

NUM_ARCHS = 15_625
TABLE_NAME = "nb201_table.csv.gz"
NATS_DIR_NAME = "NATS-tss-v1_0-3ffb9-simple"
NB201_PTH_NAME = "NAS-Bench-201-v1_1-096897.pth"

HPS = ("200", "12")
SUFFIX_12EP = "_12ep"
#: Metrics of the 200-epoch schedule; the keys of :meth:`NB201Bench.query` for hp="200".
METRICS = (
    "cifar10_valid_train_acc",
    "cifar10_valid_valid_acc",
    "cifar10_valid_test_acc",
    "cifar10_valid_train_seconds",
    "cifar10_test_acc",
    "cifar100_valid_acc",
    "cifar100_test_acc",
    "imagenet16_120_valid_acc",
    "imagenet16_120_test_acc",
)
#: Metrics the compact table holds for hp="12" (as ``<metric>_12ep`` columns). It lacks
#: cifar10_valid_train_acc, cifar10_valid_test_acc and cifar10_valid_train_seconds, which the
#: official back-ends do return for hp="12".
METRICS_12EP = (
    "cifar10_valid_valid_acc",
    "cifar10_test_acc",
    "cifar100_valid_acc",
    "cifar100_test_acc",
    "imagenet16_120_valid_acc",
    "imagenet16_120_test_acc",
)
TABLE_COLUMNS = ("index", "arch", *METRICS, *(m + SUFFIX_12EP for m in METRICS_12EP))

NATS_TSS = "NATS-tss v1.0"
NB201_V10 = "NAS-Bench-201 v1.0"
#: Release each 200-epoch metric of the compact table comes from (shared/data/README.md). The
#: cifar10-valid columns (a NAS-Landscapes export) agree with the official NATS-tss records of the
#: fixture; the C100 / ImageNet16 valid columns are v1.0's, which differ from NATS-tss for about
#: 15 % of cells, so a table row must not put them beside the NATS-tss test columns.
TABLE_VERSIONS = {
    **{m: NATS_TSS for m in METRICS},
    "cifar100_valid_acc": NB201_V10,
    "imagenet16_120_valid_acc": NB201_V10,
}

HOW_TO_GET = f"""How to get NAS-Bench-201 data (any one of these):
  * NATS-Bench topology files: download NATS-tss-v1_0-3ffb9-simple.tar from
    https://github.com/D-X-Y/NATS-Bench and extract it (gives the {NATS_DIR_NAME} directory);
  * NAS-Bench-201: download {NB201_PTH_NAME} (links in https://github.com/D-X-Y/NAS-Bench-201);
  * the compact table {TABLE_NAME}: write it with `ddpnas nb201 export-table` from either
    official file, or use the copy in the project's reference data (shared/data/nasbench201/).
Then pass its path, or set {ENV_NB201} to it, or place it in $DDPNAS_DATA/nasbench201/
(the official files may also sit in $TORCH_HOME)."""


def check_hp(hp: str | int) -> str:
    """Normalise hp so that 200 and "200" mean the same schedule."""
    text = str(hp)
    if text not in HPS:
        raise ConfigError(f"NAS-Bench-201 hp must be one of {HPS}, got {hp!r}")
    return text


def _metric_arrays(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Metric columns as read-only arrays, so callers sharing the cache cannot corrupt it."""
    arrays = {}
    for col in frame.columns[2:]:
        values = frame[col].to_numpy(dtype=np.float64, copy=True)
        values.setflags(write=False)
        arrays[col] = values
    return arrays


class NB201Bench(abc.ABC):
    """Architecture strings and metrics of the 15,625 NAS-Bench-201 cells, from one back-end.

    Load once (:func:`load_bench`) and keep the object: it caches what it read.
    """

    backend: str

    def __init__(self, arch_strs: Sequence[str], source: Path) -> None:
        self.source = source
        self._archs = [str(a) for a in arch_strs]
        self._index = {a: i for i, a in enumerate(self._archs)}
        if len(self._archs) != NUM_ARCHS or len(self._index) != NUM_ARCHS:
            raise DataError(
                f"{source} lists {len(self._archs)} architectures ({len(self._index)} distinct); "
                f"NAS-Bench-201 has {NUM_ARCHS}. The file is corrupt or not NAS-Bench-201.\n"
                + HOW_TO_GET
            )
        self._columns: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._archs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(backend={self.backend!r}, source={str(self.source)!r})"

    def arch_strings(self) -> list[str]:
        """All architecture strings in the official index order."""
        return list(self._archs)

    def arch_str(self, index: int) -> str:
        """The official string of architecture ``index``."""
        return self._archs[self.resolve(index)]

    def index_of(self, arch: str) -> int:
        """The official index of an architecture string."""
        try:
            return self._index[arch]
        except KeyError:
            raise ArchError(
                f"{arch!r} is not a NAS-Bench-201 architecture string; expected the official form "
                "'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|' with ops none, skip_connect, nor_conv_1x1, "
                "nor_conv_3x3, avg_pool_3x3"
            ) from None

    def resolve(self, arch: int | str) -> int:
        """Index of an architecture given as an index or a string, range-checked."""
        if isinstance(arch, str):
            return self.index_of(arch)
        index = operator.index(arch)
        if not 0 <= index < len(self._archs):
            raise ArchError(f"NAS-Bench-201 index {index} is outside 0..{len(self._archs) - 1}")
        return index

    @abc.abstractmethod
    def query(
        self, arch: int | str, hp: str | int = "200", *, is_random: bool | int = False
    ) -> dict[str, float]:
        """Metrics of one architecture, keyed by the table's column names without ``_12ep``."""

    @abc.abstractmethod
    def table(self, indices: Iterable[int] | None = None) -> pd.DataFrame:
        """Rows of the compact table (columns as in :data:`TABLE_COLUMNS`), all or ``indices``."""

    def column(self, name: str) -> np.ndarray:
        """One table column over all 15,625 cells as a read-only float array (cached)."""
        if name not in TABLE_COLUMNS[2:]:
            raise ConfigError(
                f"unknown NAS-Bench-201 column {name!r}; known: {', '.join(TABLE_COLUMNS[2:])}"
            )
        if not self._columns:
            self._columns = _metric_arrays(self.table())
        if name not in self._columns:
            raise DataError(f"{self.source} has no {name!r} results")
        return self._columns[name]

    @abc.abstractmethod
    def version(self, metric: str) -> str:
        """The benchmark release a 200-epoch metric is read from (e.g. "NATS-tss v1.0")."""

    def optimum(self, column: str) -> float:
        """Best value of a table column over the whole space (e.g. 94.37 for cifar10_test_acc)."""
        return float(self.column(column).max())


class TableBench(NB201Bench):
    """The compact table held in memory: look-ups are array reads, no file access."""

    backend = "table"

    def __init__(self, frame: pd.DataFrame, source: Path) -> None:
        super().__init__(frame["arch"].tolist(), source)
        self._frame = frame
        self._columns = _metric_arrays(frame)
        self._lists = {c: v.tolist() for c, v in self._columns.items()}
        self._keys = {
            "200": [(m, m) for m in METRICS],
            "12": [(m, m + SUFFIX_12EP) for m in METRICS_12EP if m + SUFFIX_12EP in self._lists],
        }

    @classmethod
    def from_csv(cls, path: Path) -> TableBench:
        """Read and validate a compact table file (.csv or .csv.gz)."""
        return cls(_read_table(path), path)

    def version(self, metric: str) -> str:
        return TABLE_VERSIONS[metric]

    def query(
        self, arch: int | str, hp: str | int = "200", *, is_random: bool | int = False
    ) -> dict[str, float]:
        """Seed-averaged metrics; for hp="12" only the :data:`METRICS_12EP` keys exist."""
        hp = check_hp(hp)
        if is_random is not False:
            raise ConfigError(
                "the compact NAS-Bench-201 table holds seed averages only (is_random=False); "
                "use an official back-end for single trials"
            )
        index = self.resolve(arch)
        return {key: self._lists[col][index] for key, col in self._keys[hp]}

    def table(self, indices: Iterable[int] | None = None) -> pd.DataFrame:
        if indices is None:
            return self._frame.copy()
        rows = [self.resolve(i) for i in indices]
        return self._frame.iloc[rows].reset_index(drop=True)


def _read_table(path: Path) -> pd.DataFrame:
    """Parse and check the compact table so that corruption is reported, never half-used."""
    broken = f"NAS-Bench-201 table {path} is corrupt"
    try:
        frame = pd.read_csv(path, compression="infer")
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise DataError(f"{broken}: {type(exc).__name__}: {exc}\n{HOW_TO_GET}") from exc
    required = ("index", "arch", *METRICS)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"{broken}: missing column(s) {', '.join(missing)}\n{HOW_TO_GET}")
    if len(frame) != NUM_ARCHS:
        raise DataError(f"{broken}: {len(frame)} rows, expected {NUM_ARCHS}\n{HOW_TO_GET}")
    frame = frame[[c for c in TABLE_COLUMNS if c in frame.columns]].copy()
    for col in frame.columns.drop("arch"):
        values = pd.to_numeric(frame[col], errors="coerce")
        if values.isna().any():
            raise DataError(f"{broken}: column {col} has empty or non-numeric values\n{HOW_TO_GET}")
        frame[col] = values
    if not np.array_equal(frame["index"].to_numpy(), np.arange(NUM_ARCHS)):
        raise DataError(f"{broken}: the index column is not 0..{NUM_ARCHS - 1} in order")
    frame["arch"] = frame["arch"].astype(str)
    return frame
