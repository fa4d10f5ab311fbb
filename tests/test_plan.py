"""The plan the main Snakemake process saves for the jobs it spawns (ddpnas/config/plan.py): a
spawned job plans with exactly what the main process validated, without importing a strategy,
a space or torch; the main process always validates afresh."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml
from conftest import REPO, SNAKEFILE, ci_config, pipeline_env

from ddpnas.config.load import validate
from ddpnas.config.plan import workflow_plan
from ddpnas.registry import spaces, strategies

SHIPPED = ["config.yaml", "ci.yaml", "paper.yaml"]
TABULAR = "results/ci/search/nb201-rs-tabular/seed0.json"
# Snakemake as a spawned job would start it, reporting at exit whether torch was imported.
PROBE = """
import atexit, runpy, sys
atexit.register(lambda: print("torch imported:", "torch" in sys.modules))
sys.argv = ["snakemake", *sys.argv[1:]]
runpy.run_module("snakemake", run_name="__main__")
"""


def _raw(name: str) -> dict:
    return yaml.safe_load((REPO / "config" / name).read_text())


@pytest.mark.parametrize("name", SHIPPED)
def test_a_plan_holds_the_validated_config_and_the_registry_facts(name: str, tmp_path) -> None:
    raw = _raw(name)
    plan = workflow_plan(raw, main=True, folder=tmp_path)
    assert plan.config == validate(raw)  # unchanged by the round trip through JSON
    assert plan.space_modes == {n: list(cls.modes) for n, cls in spaces().items()}
    assert plan.logs_theta == {n: cls.logs_theta for n, cls in strategies().items()}
    assert plan.theta_strategies() == [n for n, cls in strategies().items() if cls.logs_theta]
    assert "ddpnas" in plan.theta_strategies() and "rs" not in plan.theta_strategies()
    (saved,) = tmp_path.iterdir()
    assert workflow_plan(raw, main=False, folder=tmp_path) == plan
    assert json.loads(saved.read_text()) == asdict(plan)


def test_the_main_process_validates_afresh_and_a_job_reads_what_it_saved(tmp_path) -> None:
    """A plan saved by an earlier run (here: tampered with) never reaches the main process,
    which replaces it; a job without a saved plan validates itself."""
    raw = _raw("ci.yaml")
    assert workflow_plan(raw, main=False, folder=tmp_path) == workflow_plan(
        raw, main=True, folder=tmp_path / "other"
    )
    assert not list(tmp_path.glob("*.json"))  # a job saves nothing
    workflow_plan(raw, main=True, folder=tmp_path)
    (saved,) = tmp_path.glob("*.json")
    stale = json.loads(saved.read_text())
    stale["logs_theta"]["ddpnas"] = False
    saved.write_text(json.dumps(stale))
    assert workflow_plan(raw, main=False, folder=tmp_path).logs_theta["ddpnas"] is False
    assert workflow_plan(raw, main=True, folder=tmp_path).logs_theta["ddpnas"] is True
    assert workflow_plan(raw, main=False, folder=tmp_path).logs_theta["ddpnas"] is True
    other = {**raw, "device": "cuda"}
    assert workflow_plan(other, main=False, folder=tmp_path).config["device"] == "cuda"


def test_a_folder_the_main_process_cannot_write_costs_only_time(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    plan = workflow_plan(_raw("ci.yaml"), main=True, folder=blocker / "plans")
    assert plan.config == validate(_raw("ci.yaml")) and blocker.read_text() == "not a folder"


def _probe(work: Path, mode: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE, "-s", str(SNAKEFILE), "--directory", str(work),
         "--mode", mode, "-n", TABULAR, "--configfile", str(work / "ci.yaml")],
        cwd=work.parent, env=env, capture_output=True, text=True,  # the plan goes under work
    )  # fmt: skip


@pytest.mark.skipif(os.name != "posix", reason="Snakemake's spawned-job mode")
def test_a_spawned_job_parses_the_snakefile_without_importing_torch(tmp_path, cache_dir) -> None:
    """The point of the plan: a cluster job starts Snakemake twice, and each start would import
    every strategy and space (torch with them) only to validate the config again."""
    ci_config(tmp_path)
    env = pipeline_env(cache_dir)
    job = _probe(tmp_path, "subprocess", env)  # before any main process: it validates itself
    assert "torch imported: True" in job.stdout, job.stdout + job.stderr
    main = _probe(tmp_path, "default", env)
    assert "torch imported: True" in main.stdout, main.stdout + main.stderr
    assert len(list((tmp_path / ".snakemake" / "ddpnas").glob("*.json"))) == 1
    job = _probe(tmp_path, "subprocess", env)
    assert "torch imported: False" in job.stdout, job.stdout + job.stderr
