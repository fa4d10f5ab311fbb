"""NAS-Bench-201 look-ups behind one interface, over three interchangeable back-ends.

* ``table``: the compact CSV table (``nb201_table.csv.gz``), the fast path for search and reports;
* ``nats``: the official NATS-Bench topology files (``NATS-tss-v1_0-3ffb9-simple``), read with
  the ``nats_bench`` package;
* ``nas201``: the official NAS-Bench-201 file (``NAS-Bench-201-v1_1-096897.pth``), read with the
  ``nas_201_api`` package.

Every look-up defaults to ``hp="200"`` with seed-averaged results (``is_random=False``). Both
official APIs default to ``hp="12"`` and a random seed; the public DDPNAS code looked its results
up on the 12-epoch schedule, a published defect this suite must not repeat.

Data location (first match wins, see :func:`load_bench`): an explicit path, the environment
variable ``DDPNAS_NB201`` (a table file, a NATS directory, a .pth file, or a directory holding one),
``$DDPNAS_DATA/nasbench201/``, then the official files under ``$TORCH_HOME`` (default ``~/.torch``).
"""

from __future__ import annotations

import abc
import operator
import pickle
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ddpnas.errors import ArchError, ConfigError, DataError
from ddpnas.locations import ENV_NB201, nb201_locations

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
#: Back-end names: the compact table, the nats_bench package, the nas_201_api package.
BACKENDS = ("table", "nats", "nas201")
Backend = Literal["auto", "table", "nats", "nas201"]

# metric -> (official dataset name, get_more_info field); checked against the fixture records.
_OFFICIAL_FIELDS: dict[str, tuple[str, str]] = {
    "cifar10_valid_train_acc": ("cifar10-valid", "train-accuracy"),
    "cifar10_valid_valid_acc": ("cifar10-valid", "valid-accuracy"),
    "cifar10_valid_test_acc": ("cifar10-valid", "test-accuracy"),
    "cifar10_valid_train_seconds": ("cifar10-valid", "train-all-time"),
    "cifar10_test_acc": ("cifar10", "test-accuracy"),
    "cifar100_valid_acc": ("cifar100", "valid-accuracy"),
    "cifar100_test_acc": ("cifar100", "test-accuracy"),
    "imagenet16_120_valid_acc": ("ImageNet16-120", "valid-accuracy"),
    "imagenet16_120_test_acc": ("ImageNet16-120", "test-accuracy"),
}
_OFFICIAL_DATASETS = ("cifar10-valid", "cifar10", "cifar100", "ImageNet16-120")

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

# What reading a damaged official file raises (truncated bz2/pickle/torch archives, bad content).
_READ_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    AssertionError,
    RuntimeError,
    pickle.UnpicklingError,
)

HOW_TO_GET = f"""How to get NAS-Bench-201 data (any one of these):
  * NATS-Bench topology files: download NATS-tss-v1_0-3ffb9-simple.tar from
    https://github.com/D-X-Y/NATS-Bench and extract it (gives the {NATS_DIR_NAME} directory);
  * NAS-Bench-201: download {NB201_PTH_NAME} (links in https://github.com/D-X-Y/NAS-Bench-201);
  * the compact table {TABLE_NAME}: write it with `ddpnas nb201 export-table` from either
    official file, or use the copy in the project's reference data (shared/data/nasbench201/).
Then pass its path, or set {ENV_NB201} to it, or place it in $DDPNAS_DATA/nasbench201/
(the official files may also sit in $TORCH_HOME)."""


def _check_hp(hp: str | int) -> str:
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
        hp = _check_hp(hp)
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


class OfficialBench(NB201Bench):
    """Adapter over a ``nats_bench`` or ``nas_201_api`` API object (same get_more_info fields)."""

    def __init__(self, api: Any, source: Path, backend: str) -> None:
        self.backend = backend
        super().__init__(list(api.meta_archs), source)
        self._api = api

    def version(self, metric: str) -> str:
        """One release per file: NATS-tss, or the NAS-Bench-201 .pth named by its file."""
        if self.backend == "nats":
            return NATS_TSS
        return NB201_V10 if "v1_0" in Path(self.source).name else "NAS-Bench-201 v1.1"

    def _metrics(self, index: int, hp: str, is_random: bool | int) -> dict[str, float]:
        """Whatever metrics the record holds; DataError when the record itself is absent."""
        found: dict[str, float] = {}
        for dataset in _OFFICIAL_DATASETS:
            try:
                info = self._api.get_more_info(
                    index, dataset, iepoch=None, hp=hp, is_random=is_random
                )
            except KeyError:  # this record has no such dataset or hp
                continue
            except _READ_ERRORS as exc:
                raise DataError(
                    f"{self.source} has no readable record for architecture {index} "
                    f"({self._archs[index]}) [{type(exc).__name__}: {exc}]; a partial or damaged "
                    f"download holds only some records.\n{HOW_TO_GET}"
                ) from exc
            for metric, (name, field) in _OFFICIAL_FIELDS.items():
                if name == dataset and info.get(field) is not None:
                    found[metric] = float(info[field])
        return found

    def query(
        self, arch: int | str, hp: str | int = "200", *, is_random: bool | int = False
    ) -> dict[str, float]:
        """Metrics of the official record; is_random as in the official get_more_info."""
        hp = _check_hp(hp)
        index = self.resolve(arch)
        found = self._metrics(index, hp, is_random)
        if not found:
            raise DataError(f"{self.source} has no hp={hp} results for architecture {index}")
        return found

    def table(self, indices: Iterable[int] | None = None) -> pd.DataFrame:
        """Build table rows from the official records.

        Every row needs all 200-epoch metrics (else DataError); a ``_12ep`` column is kept only
        when every requested row has it.
        """
        rows = range(len(self)) if indices is None else [self.resolve(i) for i in indices]
        records = []
        for index in rows:
            full = self._metrics(index, "200", False)
            missing = [m for m in METRICS if m not in full]
            if missing:
                raise DataError(
                    f"{self.source}: the hp=200 record of architecture {index} lacks "
                    f"{', '.join(missing)}"
                )
            less = self._metrics(index, "12", False)
            records.append(
                {
                    "index": index,
                    "arch": self._archs[index],
                    **full,
                    **{m + SUFFIX_12EP: less[m] for m in METRICS_12EP if m in less},
                }
            )
        frame = pd.DataFrame.from_records(records, columns=list(TABLE_COLUMNS))
        keep = [c for c in TABLE_COLUMNS if frame[c].notna().all()]
        return frame[keep].astype({"index": np.int64})


def _numpy_safe_globals() -> list[Any]:
    """Numpy scalar types the official .pth holds, allowed through torch's safe unpickler.

    The file stores some numbers as numpy scalars (pickled as numpy.core.* by numpy 1.x), which
    ``torch.load(weights_only=True)``, the default since torch 2.6, refuses unless allow-listed.
    """
    scalar = np.float64(0.0).__reduce__()[0]  # numpy's scalar rebuild function, public route
    return [
        scalar,
        (scalar, "numpy.core.multiarray.scalar"),
        np.dtype,
        np.dtypes.Float64DType,
        np.dtypes.Float32DType,
        np.dtypes.Int64DType,
        np.dtypes.Int32DType,
        np.dtypes.BoolDType,
    ]


def _open_nats(path: Path) -> NB201Bench:
    """nats_bench reads a directory lazily (fast_mode) or a single .pickle.pbz2 file whole."""
    try:
        import nats_bench
    except ImportError as exc:
        raise DataError(f"reading {path} needs nats_bench: pip install 'ddpnas[bench]'") from exc
    try:
        api = nats_bench.create(str(path), "tss", fast_mode=path.is_dir(), verbose=False)
    except _READ_ERRORS as exc:
        raise DataError(
            f"NATS-Bench topology data {path} is corrupt or incomplete: "
            f"{type(exc).__name__}: {exc}\n{HOW_TO_GET}"
        ) from exc
    return OfficialBench(api, path, "nats")


def _open_nb201_pth(path: Path) -> NB201Bench:
    """nas_201_api loads the whole .pth (several GB of RAM for the official file)."""
    try:
        import nas_201_api
        import torch
    except ImportError as exc:
        raise DataError(f"reading {path} needs nas-bench-201: pip install 'ddpnas[bench]'") from exc
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            api = nas_201_api.NASBench201API(str(path), verbose=False)
    except _READ_ERRORS as exc:
        raise DataError(
            f"NAS-Bench-201 file {path} is corrupt or not in the official format: "
            f"{type(exc).__name__}: {exc}\n{HOW_TO_GET}"
        ) from exc
    return OfficialBench(api, path, "nas201")


_OPENERS: dict[str, Callable[[Path], NB201Bench]] = {
    "table": TableBench.from_csv,
    "nats": _open_nats,
    "nas201": _open_nb201_pth,
}


def _kind_of_file(path: Path) -> str | None:
    """Back-end implied by a file name."""
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return "table"
    if name.endswith(".pth"):
        return "nas201"
    if name.endswith(".pickle.pbz2"):
        return "nats"
    return None


def _is_nats_dir(path: Path) -> bool:
    return path.name.startswith("NATS-tss") or (path / "meta.pickle.pbz2").is_file()


def _dir_candidates(directory: Path) -> Iterator[tuple[str, Path]]:
    """(back-end, path) pairs a directory may hold, fastest back-end first."""
    for base in (directory, directory / "nasbench201"):
        yield "table", base / TABLE_NAME
        yield "nats", base / NATS_DIR_NAME
        yield "nas201", base / NB201_PTH_NAME


def _pick(location: Path, backend: str) -> tuple[str, Path] | None:
    """The back-end and data path found at ``location``, or None when nothing usable is there."""
    if location.is_file():
        kind = _kind_of_file(location) if backend == "auto" else backend
        if kind is None:
            raise DataError(
                f"cannot tell the NAS-Bench-201 format of {location} from its name; expected "
                "*.csv(.gz), *.pth or *.pickle.pbz2, or pass backend= explicitly"
            )
        return kind, location
    if not location.is_dir():
        return None
    if _is_nats_dir(location) and backend in ("auto", "nats"):
        return "nats", location
    for kind, candidate in _dir_candidates(location):
        if backend in ("auto", kind) and candidate.exists():
            return kind, candidate
    return None


def load_bench(
    path: str | Path | None = None, backend: Backend = "auto", data: dict[str, Any] | None = None
) -> NB201Bench:
    """Open NAS-Bench-201 data from the first location that holds it.

    Locations (``path``, the config's ``data`` block, the environment) as
    :func:`ddpnas.locations.nb201_locations` orders them. ``backend="auto"`` detects the format
    (table, NATS directory or .pth); a directory holding several prefers the table.
    """
    if backend != "auto" and backend not in BACKENDS:
        raise ConfigError(f"unknown NAS-Bench-201 backend {backend!r}; use auto or {BACKENDS}")
    tried = []
    for label, location in nb201_locations(path, data):
        picked = _pick(location, backend)
        if picked is not None:
            kind, data_path = picked
            return _OPENERS[kind](data_path)
        state = "holds no usable file" if location.exists() else "does not exist"
        tried.append(f"  - {label}: {location} ({state})")
    wanted = "NAS-Bench-201 data" if backend == "auto" else f"NAS-Bench-201 data for {backend}"
    raise DataError(
        f"{wanted} not found. Looked for {TABLE_NAME}, {NATS_DIR_NAME}/ or {NB201_PTH_NAME} in:\n"
        + "\n".join(tried)
        + "\n"
        + HOW_TO_GET
    )


def export_table(
    bench: NB201Bench, out_path: str | Path, indices: Iterable[int] | None = None
) -> Path:
    """Write the compact table (all rows, or ``indices``) from any back-end; return its path.

    Values are rounded to 4 decimals like the reference table; a ``.gz`` name is gzip-compressed
    reproducibly. The file is written to a temporary name and renamed, so a failure (e.g. a missing
    official record) leaves no partial file behind.
    """
    frame = bench.table(indices).round(4)
    from ddpnas.utils import atomic_write  # torch-free callers of this module never load it

    out = Path(out_path)
    compression = {"method": "gzip", "mtime": 0} if out.name.endswith(".gz") else None
    atomic_write(out, lambda tmp: frame.to_csv(tmp, index=False, compression=compression))
    return out
