"""Finding and opening NAS-Bench-201 data (:func:`load_bench`), and writing the compact table.

Data location (first match wins, see :func:`load_bench`): an explicit path, the environment
variable ``DDPNAS_NB201`` (a table file, a NATS directory, a .pth file, or a directory holding one),
``$DDPNAS_DATA/nasbench201/``, then the official files under ``$TORCH_HOME`` (default ``~/.torch``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from ddpnas.data.locations import nb201_locations
from ddpnas.errors import ConfigError, DataError
from ddpnas.nasbench.official import open_nats, open_nb201_pth
from ddpnas.nasbench.table import (
    HOW_TO_GET,
    NATS_DIR_NAME,
    NB201_PTH_NAME,
    TABLE_NAME,
    NB201Bench,
    TableBench,
)

#: Back-end names: the compact table, the nats_bench package, the nas_201_api package.
BACKENDS = ("table", "nats", "nas201")
Backend = Literal["auto", "table", "nats", "nas201"]

_OPENERS: dict[str, Callable[[Path], NB201Bench]] = {
    "table": TableBench.from_csv,
    "nats": open_nats,
    "nas201": open_nb201_pth,
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
    :func:`ddpnas.data.locations.nb201_locations` orders them. ``backend="auto"`` detects the format
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
    from ddpnas.io.files import atomic_write

    out = Path(out_path)
    compression = {"method": "gzip", "mtime": 0} if out.name.endswith(".gz") else None
    atomic_write(out, lambda tmp: frame.to_csv(tmp, index=False, compression=compression))
    return out
