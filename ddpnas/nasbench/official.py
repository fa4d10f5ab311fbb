"""The official NAS-Bench-201 back-ends: ``nats`` (``nats_bench``) and ``nas201`` (``nas_201_api``).

Both APIs answer ``get_more_info`` with the same fields; :class:`OfficialBench` maps them onto the
compact table's columns. The packages (and torch) are imported only when a file is opened.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ddpnas.errors import DataError
from ddpnas.nasbench.table import (
    HOW_TO_GET,
    METRICS,
    METRICS_12EP,
    NATS_TSS,
    NB201_V10,
    SUFFIX_12EP,
    TABLE_COLUMNS,
    NB201Bench,
    check_hp,
)

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
        hp = check_hp(hp)
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


def open_nats(path: Path) -> NB201Bench:
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


def open_nb201_pth(path: Path) -> NB201Bench:
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
