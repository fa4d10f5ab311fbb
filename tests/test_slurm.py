"""The pipeline through the real SLURM executor plugin, against fake SLURM commands (or a real
single-node cluster when one answers), gives the local run's results and asks for each rule's
declared resources."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import NB201_TABLE, REPO, SHARED_DATA, SNAKEFILE, require

FAKE_SLURM = Path(__file__).parent / "fake_slurm"
PROFILE = REPO / "workflow" / "profiles" / "slurm"
CI_CONFIG = REPO / "config" / "ci.yaml"
TABULAR = [
    "results/ci/search/nb201-ddpnas-tabular/seed0.json",
    "results/ci/search/nb201-rs-tabular/seed0.json",
]
GPU_SEARCH = "results/ci/search/nb201-ddpnas-ws/seed0.json"


def _fake_slurm_module() -> Any:
    spec = importlib.util.spec_from_file_location("fake_slurm", FAKE_SLURM / "fake_slurm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _workdir(tmp_path: Path, name: str) -> Path:
    """A working directory whose ../shared/data is the reference data, as config/ci.yaml expects."""
    shared = tmp_path / "shared"
    if not shared.exists():
        shared.mkdir()
        (shared / "data").symlink_to(require(SHARED_DATA), target_is_directory=True)
    work = tmp_path / name
    work.mkdir()
    return work


def _snakemake(work: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(work)]
    return subprocess.Popen(
        [*cmd, *args],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    """A search record without what legitimately differs between runs (timings, host)."""
    drop = {"search_seconds", "environment", "cost"}
    out = {k: v for k, v in record.items() if k not in drop}
    out["history"] = [{k: v for k, v in h.items() if k != "seconds"} for h in record["history"]]
    return out


@pytest.mark.slow
def test_ci_config_through_the_slurm_profile_matches_a_local_run(tmp_path: Path) -> None:
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install -e '.[cluster]'")
    require(NB201_TABLE)
    base_env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
    }
    slurm_env = {
        **base_env,
        "PATH": f"{FAKE_SLURM}{os.pathsep}{base_env['PATH']}",
        "FAKE_SLURM_DIR": str(tmp_path / "slurm-state"),
        "FAKE_SLURM_ACCOUNTING": "off",  # so job states must come from squeue, as documented
    }
    local_dir, slurm_dir = _workdir(tmp_path, "local"), _workdir(tmp_path, "slurm")
    # device=cuda makes the weight-sharing search ask for a GPU; without one here it fails fast,
    # which also shows that a failed SLURM job fails the run.
    slurm = _snakemake(
        slurm_dir,
        "--workflow-profile", str(PROFILE),
        "--configfile", str(CI_CONFIG),
        "--config", "device=cuda",
        "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", "1",
        "--latency-wait", "5",
        "--keep-going",
        "--", *TABULAR, GPU_SEARCH,
        env=slurm_env,
    )  # fmt: skip
    local = _snakemake(
        local_dir, "--configfile", str(CI_CONFIG), "--cores", "1", "--", *TABULAR,
        env=base_env,
    )  # fmt: skip
    local_log, _ = local.communicate(timeout=300)
    slurm_log, _ = slurm.communicate(timeout=300)
    assert local.returncode == 0, local_log
    assert slurm.returncode != 0, slurm_log
    assert "nb201-ddpnas-ws" in slurm_log and "FAILED" in slurm_log, slurm_log

    for target in TABULAR:
        ours, theirs = (json.loads((d / target).read_text()) for d in (slurm_dir, local_dir))
        assert _comparable(ours) == _comparable(theirs)
    assert not (slurm_dir / GPU_SEARCH).exists()

    # Each job was submitted with the resources its rule declares.
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())["set-resources"]
    config = yaml.safe_load(CI_CONFIG.read_text())
    parse = _fake_slurm_module().parse
    lines = (tmp_path / "slurm-state" / "sbatch.log").read_text().splitlines()
    submitted = {}
    for line in lines:
        opts, _ = parse(shlex.split(line)[1:])
        rule, _, wildcards = opts["--comment"].removeprefix("rule_").partition("_wildcards_")
        submitted[(rule, wildcards)] = opts
    assert set(submitted) == {
        ("search_tabular_nb201_ddpnas_tabular", ""),
        ("search_tabular_nb201_rs_tabular", ""),
        ("search", "nb201-ddpnas-ws_0"),
    }
    tabular_rule = {"runtime": 30, "mem_mb": 4000}  # declared by the per-experiment rules
    for (rule, wildcards), opts in submitted.items():
        assert opts["-t"] == str(profile.get(rule, tabular_rule)["runtime"])
        assert opts["--mem"] == str(profile.get(rule, tabular_rule)["mem_mb"])
        trains = wildcards.startswith("nb201-ddpnas-ws")
        assert opts["--cpus-per-task"] == str(config["threads"] if trains else 1)
        assert opts.get("--gpus") == ("1" if trains else None)
        assert opts["-D"] == str(slurm_dir)
        assert "-A" not in opts  # no account given, none to guess with accounting off


@pytest.mark.slow
def test_real_single_node_cluster(tmp_path: Path) -> None:
    """Optional: with DDPNAS_REAL_SLURM=1 and a running cluster (e.g. Debian's slurm-wlm)."""
    if os.environ.get("DDPNAS_REAL_SLURM") != "1" or not (
        shutil.which("slurmctld") and shutil.which("slurmd") and shutil.which("sbatch")
    ):
        pytest.skip("no real SLURM cluster (set DDPNAS_REAL_SLURM=1 where slurmctld/slurmd run)")
    require(NB201_TABLE)
    work = _workdir(tmp_path, "real")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = _snakemake(
        work, "--workflow-profile", str(PROFILE), "--configfile", str(CI_CONFIG),
        "--set-resources", "search:mem_mb=1000", "search:runtime=10", "--", *TABULAR, env=env,
    )  # fmt: skip
    log, _ = run.communicate(timeout=900)
    assert run.returncode == 0, log
    for target in TABULAR:
        assert json.loads((work / target).read_text())["epochs"] > 0


def test_launcher_takes_the_rendezvous_from_the_slurm_environment() -> None:
    from ddpnas.retrain.launch import BASE_PORT, launch_argv

    assert launch_argv(1, {}) == ["ddpnas"]
    # One node (also inside a one-node SLURM job): torchrun on this machine's GPUs.
    single = launch_argv(4, {"SLURM_JOB_ID": "77", "SLURM_NNODES": "1"})
    assert single == ["torchrun", "--nproc_per_node=4", "--standalone", "-m", "ddpnas.cli.main"]
    # Several nodes: one torchrun per node through srun, all meeting at the first host.
    env = {"SLURM_JOB_ID": "4242", "SLURM_NNODES": "3", "SLURM_JOB_NODELIST": "gpu[07-09]"}
    argv = launch_argv(2, env, hostnames=lambda nodelist: ["gpu07", "gpu08", "gpu09"])
    assert argv[:4] == ["srun", "--nodes=3", "--ntasks=3", "--ntasks-per-node=1"]
    assert argv[argv.index("torchrun") :] == [
        "torchrun",
        "--nproc_per_node=2",
        "--nnodes=3",
        "--rdzv_backend=c10d",
        f"--rdzv_endpoint=gpu07:{BASE_PORT + 242}",
        "--rdzv_id=4242",
        "-m",
        "ddpnas.cli.main",
    ]
    # SLURM_NNODES outside a job (no SLURM_JOB_ID) is not an allocation.
    assert launch_argv(2, {"SLURM_NNODES": "3"})[-3:] == ["--standalone", "-m", "ddpnas.cli.main"]


def test_launcher_expands_the_node_list_with_scontrol(monkeypatch: pytest.MonkeyPatch) -> None:
    from ddpnas.retrain.launch import slurm_hostnames

    monkeypatch.setenv("PATH", f"{FAKE_SLURM}{os.pathsep}{os.environ['PATH']}")
    assert slurm_hostnames("nodeA,nodeB") == ["nodeA", "nodeB"]
