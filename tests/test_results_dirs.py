"""Each config writes under its own folder: the default run, ci and paper never plan reruns of,
overwrite or delete each other's outputs (issue 19)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, SNAKEFILE


def _planned(workdir: Path, *args: str) -> tuple[set[str], str]:
    """Every file a dry run would write (outputs, logs, benchmarks), and its text."""
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(workdir),
         "--dry-run", "--cores", "2", *args],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr + run.stdout
    paths = {
        path.strip()
        for kind in re.findall(r"^\s+(?:output|log|benchmark): (.+)$", run.stdout, flags=re.M)
        for path in kind.split(", ")
    }
    return paths, run.stdout


@pytest.mark.slow
def test_shipped_configs_write_to_disjoint_folders(tmp_path: Path) -> None:
    work = tmp_path / "checkout"  # the shipped configs read ../shared/data
    shutil.copytree(REPO / "config", work / "config")
    (tmp_path / "shared").symlink_to(REPO.parent / "shared")
    planned = {}
    for name in ("config", "ci", "paper"):
        args = [] if name == "config" else ["--configfile", f"config/{name}.yaml"]
        paths, _ = _planned(work, *args)
        assert paths and all(p.startswith(f"results/{name}/") for p in paths), name
        planned[name] = paths
        # only paper.yaml declares gpu_memory_gib: its GPU jobs wait for the memory check
        assert (f"results/{name}/estimate.md" in paths) == (name == "paper"), name
    assert not planned["config"] & planned["paper"] and not planned["ci"] & planned["config"]


@pytest.mark.slow
def test_results_dir_key_overrides_the_folder(tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())
    config["results_dir"] = "elsewhere/mine"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    paths, _ = _planned(tmp_path, "--configfile", str(path))
    assert paths and all(p.startswith("elsewhere/mine/") for p in paths)


@pytest.mark.slow
def test_a_finished_default_run_is_not_replanned_by_another_config(tmp_path: Path) -> None:
    """The outputs of one config are not inputs or outputs of another: after the ci run's records
    exist, a dry run of another config plans all of its own jobs and none of ci's files."""
    config = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())
    ci_paths, _ = _planned(tmp_path, "--configfile", str(REPO / "config" / "ci.yaml"))
    for path in ci_paths:  # stand-ins for a finished ci run
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("done")
    config["searches"] = {"only": config["searches"]["nb201-ddpnas-tabular"]}
    config["retrain"]["searches"] = []
    config["report"]["ranking"]["experiments"] = []
    config.pop("generate")
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(config))
    paths, text = _planned(tmp_path, "--configfile", str(other))
    assert paths and not paths & ci_paths and "results/ci/" not in text
