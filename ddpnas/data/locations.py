"""Where data lives: the one resolver of the config's ``data`` block and the environment.

Torch-free, so NAS-Bench-201 lookups and the CLI's quick commands resolve paths without loading it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

ENV_DATA = "DDPNAS_DATA"
ENV_CACHE = "DDPNAS_CACHE"
ENV_NB201 = "DDPNAS_NB201"
NB201_DIR = "nasbench201"
NB201_SPLIT = "cifar-split.txt"  # NAS-Bench-201's official cifar10-valid split


def resolve_data_root(config_value: str | None) -> Path | None:
    """Data root from the config, else $DDPNAS_DATA; None means torchvision's download cache."""
    value = config_value or os.environ.get(ENV_DATA)
    return Path(value).expanduser() if value else None


def resolve_cache_dir(config_value: str | None = None) -> Path:
    """Cache directory from the config, else $DDPNAS_CACHE, else ~/.cache/ddpnas."""
    value = config_value or os.environ.get(ENV_CACHE)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "ddpnas"


def nb201_locations(
    path: str | Path | None = None, data: dict[str, Any] | None = None
) -> list[tuple[str, Path]]:
    """(label, location) pairs to look for NAS-Bench-201 in, in order.

    ``path`` or else ``data.nb201`` stands alone (an explicit choice that holds nothing is an
    error, not a fall-through); otherwise ``<data.root>/nasbench201``, then ``$DDPNAS_NB201``
    (alone), else ``$DDPNAS_DATA/nasbench201`` and ``$TORCH_HOME`` (or ``~/.torch``).
    """
    data = data or {}
    for label, value in (("explicit path", path), ("data.nb201", data.get("nb201"))):
        if value:
            return [(label, Path(value).expanduser())]
    found: list[tuple[str, Path]] = []
    if data.get("root"):
        found.append((f"data.root/{NB201_DIR}", Path(data["root"]).expanduser() / NB201_DIR))
    if os.environ.get(ENV_NB201):
        return [*found, (f"${ENV_NB201}", Path(os.environ[ENV_NB201]).expanduser())]
    if os.environ.get(ENV_DATA):
        found.append((f"${ENV_DATA}/{NB201_DIR}", Path(os.environ[ENV_DATA]) / NB201_DIR))
    torch_home = os.environ.get("TORCH_HOME")
    home = Path(torch_home) if torch_home else Path.home() / ".torch"
    found.append(("$TORCH_HOME" if torch_home else "~/.torch", home.expanduser()))
    return found


def nb201_split_file(data: dict[str, Any] | None = None) -> Path | None:
    """NAS-Bench-201's official ``cifar-split.txt``: ``data.nb201_split``, else the first found
    beside a NAS-Bench-201 location (``<dir>/splits/``, ``<dir>/``, or the folder of a file);
    None when there is none."""
    data = data or {}
    if data.get("nb201_split"):
        return Path(data["nb201_split"]).expanduser()
    for _, location in nb201_locations(data=data):
        if not location.exists():
            continue
        folder = location if location.is_dir() else location.parent
        for candidate in (folder / "splits" / NB201_SPLIT, folder / NB201_SPLIT):
            if candidate.is_file():
                return candidate
    return None
