"""Shared fixtures: where the reference data lives, and one decoded-image cache per test session."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

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


def pipeline_env(cache_dir: Path) -> dict[str, str]:
    """Subprocess environment: this interpreter's scripts first, the shared decode cache."""
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "DDPNAS_CACHE": str(cache_dir),
        "PYTHONUNBUFFERED": "1",
    }


def without_keys(node: Any, keys: set[str]) -> Any:
    """A JSON record with ``keys`` removed at every depth (what legitimately differs between two
    runs of it: timing, the machine description)."""
    if isinstance(node, dict):
        return {k: without_keys(v, keys) for k, v in node.items() if k not in keys}
    if isinstance(node, list):
        return [without_keys(v, keys) for v in node]
    return node


def ci_config(folder: Path, **cluster: str) -> Path:
    """config/ci.yaml with an absolute data root (so it runs from any working directory) and the
    given `cluster:` keys, as folder/ci.yaml: its run writes results/ci."""
    config = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())
    config["data"]["root"] = str(require(SHARED_DATA))
    if cluster:
        config["cluster"] = cluster
    path = folder / "ci.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


#: The partitions of .ci/slurm's test cluster (its default partition is a third one, "debug").
CI_PARTITIONS = {"cpu_partition": "cpu", "gpu_partition": "gpu"}


@pytest.fixture(scope="session")
def ci_run(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """The folder of one local pipeline run on the ci config (with the test cluster's partitions,
    which a local run ignores), made once per session: the end-to-end checks read it and the
    SLURM tests compare their runs with it."""
    require(CIFAR_ZIP)
    folder = tmp_path_factory.mktemp("ci-run")
    config = ci_config(folder, **CI_PARTITIONS)
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(folder),
         "--configfile", str(config), "--cores", "2"],
        env=pipeline_env(cache_dir), capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return folder


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread for a test of tiny ops (controllers, policies): more only lose time
    (10x on a busy 2-core machine). Modules opt in with ``pytest.mark.usefixtures``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
