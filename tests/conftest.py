"""Shared fixtures: where the reference data lives, and one decoded-image cache per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "workflow" / "Snakefile"
SHARED_DATA = REPO.parent / "shared" / "data"
NB201_TABLE = SHARED_DATA / "nasbench201" / "nb201_table.csv.gz"
NATS_FIXTURE = SHARED_DATA / "nasbench201" / "NATS-tss-v1_0-3ffb9-simple"
CIFAR_ZIP = SHARED_DATA / "cifar10-jpeg.zip"


def require(path: Path) -> Path:
    """Skip (with the reason) when a reference file is absent."""
    if not path.exists():
        pytest.skip(f"reference data {path} is absent (expected ../shared/data beside the repo)")
    return path


@pytest.fixture(scope="session")
def bench():
    """The compact NAS-Bench-201 table, loaded once."""
    from ddpnas.nasbench.files import load_bench

    return load_bench(require(NB201_TABLE))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Decoded CIFAR-10 cache shared by every test of the session (decoding happens once)."""
    return tmp_path_factory.mktemp("ddpnas-cache")
