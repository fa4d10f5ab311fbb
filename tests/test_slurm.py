"""The pipeline through the real SLURM executor plugin, against fake SLURM commands: the cases a
real one-node cluster cannot stage (a GPU job, a cluster that requires accounts, a short MinJobAge,
a host without SLURM) and the resources every rule asks for. The real cluster's tests are in
test_slurm_cluster.py."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import NB201_TABLE, REPO, SHARED_DATA, SNAKEFILE, require

from ddpnas.config.load import load_config

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
    base_env = _env()
    slurm_env = {
        **_fake_env(tmp_path),
        # a cluster that rejects jobs without an account, and the user's one account
        "FAKE_SLURM_ENFORCE": "associations,limits",
        "FAKE_SLURM_ACCOUNTS": "proj",
    }
    local_dir, slurm_dir = _workdir(tmp_path, "local"), _workdir(tmp_path, "slurm")
    # device=cuda makes the weight-sharing search ask for a GPU; without one here it fails fast,
    # which also shows that a failed SLURM job fails the run.
    slurm = _snakemake(
        slurm_dir,
        "--workflow-profile", str(PROFILE),
        "--configfile", str(CI_CONFIG),
        "--config", "device=cuda", "cluster={cpu_partition: cpu, gpu_partition: gpu}",
        "--default-resources", "slurm_account=proj",
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

    # Each job was submitted with the resources the config's cluster block gives its rule.
    limits = load_config(CI_CONFIG)["cluster"]["resources"]
    config = yaml.safe_load(CI_CONFIG.read_text())
    submitted = _submitted(tmp_path)
    assert set(submitted) == {
        ("search_tabular_nb201_ddpnas_tabular", ""),
        ("search_tabular_nb201_rs_tabular", ""),
        ("search", "nb201-ddpnas-ws_0"),
    }
    for (rule, wildcards), opts in submitted.items():
        rule_limits = limits["search_tabular" if rule.startswith("search_tabular_") else rule]
        assert opts["-t"] == str(rule_limits["runtime"])
        assert opts["--mem"] == str(rule_limits["mem_mb"])
        trains = wildcards.startswith("nb201-ddpnas-ws")
        assert opts["--cpus-per-task"] == str(config["threads"] if trains else 1)
        assert opts.get("--gpus") == ("1" if trains else None)
        assert opts["-p"] == ("gpu" if trains else "cpu")  # small CPU jobs to the CPU partition
        assert opts["-D"] == str(slurm_dir)
        assert opts["-A"] == "proj"


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
    }


def _fake_env(tmp_path: Path, **fake: str) -> dict[str, str]:
    """SLURM's commands are the fakes, accounting off (job states from squeue, as documented)."""
    return {
        **_env(),
        "PATH": f"{FAKE_SLURM}{os.pathsep}{_env()['PATH']}",
        "FAKE_SLURM_DIR": str(tmp_path / "slurm-state"),
        "FAKE_SLURM_ACCOUNTING": "off",
        **fake,
    }


def _submitted(tmp_path: Path) -> dict[tuple[str, str], dict[str, str]]:
    """The fake cluster's sbatch options per (rule, wildcards)."""
    parse = _fake_slurm_module().parse
    log = tmp_path / "slurm-state" / "sbatch.log"
    submitted = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        opts, _ = parse(shlex.split(line)[1:])
        rule, _, wildcards = opts["--comment"].removeprefix("rule_").partition("_wildcards_")
        submitted[(rule, wildcards)] = opts
    return submitted


def _stopped(run: subprocess.CompletedProcess[str], *words: str) -> str:
    """The one error line a run stopped with before any job; it names ``words``."""
    log = run.stdout + run.stderr
    errors = [line for line in log.splitlines() if line.startswith("ddpnas: error:")]
    assert run.returncode == 2 and len(errors) == 1, log[-3000:]
    assert all(word in errors[0] for word in words), errors[0]
    assert "Traceback" not in log and "submitted" not in log, log[-3000:]
    return errors[0]


def _profile_run(work: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(work),
         "--workflow-profile", str(PROFILE), "--configfile", str(CI_CONFIG), *args,
         "--", TABULAR[0]],
        cwd=work, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.slow
def test_a_host_without_slurm_stops_before_any_job(tmp_path: Path) -> None:
    """The issue's run from a laptop: eight sacct/sacctmgr errors after 50 s, results deleted."""
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install -e '.[cluster]'")
    # This machine's commands, SLURM's left out (CI's machine has a real cluster).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    slurm = {"sbatch", "squeue", "scancel", "scontrol", "sinfo", "sacct", "srun", "sacctmgr"}
    for folder in os.environ["PATH"].split(os.pathsep):
        for tool in Path(folder).glob("*") if Path(folder).is_dir() else []:
            if tool.name not in slurm and not (bin_dir / tool.name).exists():
                (bin_dir / tool.name).symlink_to(tool)
    env = {**_env(), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{bin_dir}"}
    work = _workdir(tmp_path, "laptop")
    _stopped(_profile_run(work, env), "'sbatch'", "not on PATH", "--workflow-profile")
    assert not (work / "results").exists() and not (work / ".snakemake" / "slurm_logs").exists()


@pytest.mark.slow
def test_job_states_that_squeue_would_lose_stop_the_run(tmp_path: Path) -> None:
    """MinJobAge 150 s is enough for the plugin to use squeue (>= 3 x 40 s) but shorter than its
    longest pause between checks: a job finishing then would be waited for forever."""
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install -e '.[cluster]'")
    env = _fake_env(tmp_path, FAKE_SLURM_MIN_JOB_AGE="150")
    _stopped(_profile_run(_workdir(tmp_path, "w"), env), "MinJobAge is 150 s", "300")
    assert not _submitted(tmp_path)


@pytest.mark.slow
def test_a_cluster_that_requires_an_account_stops_a_run_without_one(tmp_path: Path) -> None:
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install -e '.[cluster]'")
    env = _fake_env(tmp_path, FAKE_SLURM_ENFORCE="associations")
    _stopped(_profile_run(_workdir(tmp_path, "w"), env), "requires an account", "slurm_account=")
    assert not _submitted(tmp_path)


def _planned_resources(*args: str) -> dict[str, list[dict[str, str]]]:
    """Per rule, the resources of each job a dry run through the SLURM profile plans."""
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(REPO),
         "--workflow-profile", str(PROFILE), "-n", "--forceall", "--nolock", *args],
        capture_output=True, text=True, timeout=300, env=_env(),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-3000:]
    planned: dict[str, list[dict[str, str]]] = {}
    for block in re.split(r"^(?:local)?rule ", run.stdout, flags=re.M)[1:]:
        rule = block.split(":", 1)[0]
        line = re.search(r"^\s+resources: (.*)$", block, flags=re.M)
        pairs = (item.split("=", 1) for item in line.group(1).split(", ")) if line else ()
        planned.setdefault(rule, []).append(dict(pairs))
    return planned


@pytest.mark.slow
def test_every_rule_asks_for_time_and_memory_from_the_config() -> None:
    """On the paper config (every stage): each rule's jobs take runtime and mem_mb from
    config/paper.yaml's cluster block, GPU jobs the GPU partition and the rest the CPU one, and a
    --set-resources on the command line changes its one rule only (the profile sets none)."""
    planned = _planned_resources(
        "--configfile", "config/paper.yaml",
        "--config", "cluster={cpu_partition: cpu, gpu_partition: gpu}",
        "--set-resources", "retrain:runtime=4321",
    )  # fmt: skip
    planned.pop("all")
    limits = load_config(REPO / "config" / "paper.yaml")["cluster"]["resources"]
    keys = {rule: re.sub(r"^search_tabular_.*", "search_tabular", rule) for rule in planned}
    # Every rule the workflow defines has an entry and every entry a rule (search_tabular: the
    # rules named per tabular experiment); paper.yaml plans all but the ImageNet stand-in.
    defined = {
        name
        for smk in (REPO / "workflow" / "rules").glob("*.smk")
        for name in re.findall(r"^rule (\w+):", smk.read_text(), flags=re.M)
    }
    assert defined | {"search_tabular"} == set(limits)
    assert set(keys.values()) == set(limits) - {"imagenet_standin"}
    gpu_rules = {"search", "retrain", "nb201_ranking", "imagenet_search", "imagenet_retrain",
                 "imagenet_transfer"}  # fmt: skip
    for rule, jobs in planned.items():
        for job in jobs:
            runtime = 4321 if rule == "retrain" else limits[keys[rule]]["runtime"]
            assert job["runtime"] == str(runtime), (rule, job)
            assert job["mem_mb"] == str(limits[keys[rule]]["mem_mb"]), (rule, job)
            assert job["slurm_partition"] == ("gpu" if rule in gpu_rules else "cpu"), (rule, job)
            assert (rule in gpu_rules) == (job.get("gpu", "0") != "0" or "gres" in job), (rule, job)


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


def test_cluster_block_fills_each_rule_and_names_a_wrong_key() -> None:
    """A rule given only mem_mb keeps its default runtime; a misspelt rule or a zero is one line."""
    from ddpnas.config.load import validate
    from ddpnas.errors import ConfigError

    config = yaml.safe_load(CI_CONFIG.read_text())
    defaults = validate(config)["cluster"]
    assert "cpu_partition" not in defaults and set(defaults) == {"resources"}
    config["cluster"] = {"gpu_partition": "a100", "resources": {"search": {"mem_mb": 1234}}}
    filled = validate(config)["cluster"]
    assert filled["gpu_partition"] == "a100"
    assert filled["resources"]["search"] == {
        "runtime": defaults["resources"]["search"]["runtime"],
        "mem_mb": 1234,
    }
    assert filled["resources"]["retrain"] == defaults["resources"]["retrain"]
    for bad, words in (
        ({"serch": {"mem_mb": 1}}, ("cluster.resources", "'serch'", "allowed keys")),
        ({"search": {"mem_mb": 0}}, ("cluster.resources.search.mem_mb", "minimum of 1")),
    ):
        config["cluster"] = {"resources": bad}
        with pytest.raises(ConfigError) as error:
            validate(config)
        assert "\n" not in str(error.value) and all(w in str(error.value) for w in words)
