"""The pipeline on a real one-node SLURM cluster (Debian's slurmctld/slurmd/munge, no accounting;
`.ci/slurm up` as root, which CI runs): the ci config through workflow/profiles/slurm, with its
weight-sharing search cancelled (scancel) and the run repeated, gives the local run's records and
tables, each job asks for its rule's time, memory and partition, a rejected submission deletes
nothing, and a status command that would wait forever is refused before any job. Without a
cluster these tests skip; where CI brought one up (DDPNAS_SLURM=required) they fail instead."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import CI_PARTITIONS, REPO, SNAKEFILE, ci_config, pipeline_env, without_keys

from ddpnas.config.load import load_config

PROFILE = REPO / "workflow" / "profiles" / "slurm"
# Short waits for a one-node test cluster: job states from 2 s after submission and every 2 s
# (the profile keeps the plugin's 40 s and Snakemake's 10 s, meant for a shared cluster).
FAST = ("--slurm-init-seconds-before-status-checks", "2", "--latency-wait", "5",
        "--seconds-between-status-checks", "2")  # fmt: skip
WS_RECORD = "results/ci/search/nb201-ddpnas-ws/seed0.json"
WS_CHECKPOINT = "results/ci/checkpoints/nb201-ddpnas-ws/seed0.pt"
WS_JOB = "rule_search_wildcards_nb201-ddpnas-ws_0"  # the SLURM job's comment
TABULAR = "results/ci/search/nb201-rs-tabular/seed0.json"
# What legitimately differs between two runs of one record: timing and the machine description,
# and where a search resumed from.
VOLATILE = {
    "search_seconds",
    "seconds",
    "wall_seconds",
    "environment",
    "cost",
    "resumed_from_epoch",
}
# Table columns that hold measured time (or what is computed from it), by table.
TIMING_COLUMNS = {
    "nb201": {"search_seconds"},
    "searches_darts": {"search_seconds"},
    "cifar10": {"search_seconds", "search_cost", "retrain_seconds", "retrain_cost"},
    "bound": {"seconds"},
    "metrics": {"seconds"},
    "costs": {"wall_seconds", "device_hours", "loop_seconds", "benchmark_seconds",
              "benchmark_rel_diff", "peak_memory_mb", "ours_in_published_unit"},
}  # fmt: skip


def _answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        return False
    return bool(re.search(r"^(idle|mixed|allocated)", out.stdout, flags=re.M))


@pytest.fixture(scope="session")  # session: checked before the session's local ci run
def cluster() -> None:
    if not _answers():
        if os.environ.get("DDPNAS_SLURM") == "required":
            pytest.fail("DDPNAS_SLURM=required but no SLURM cluster answers (see .ci/slurm up)")
        pytest.skip("no SLURM cluster answers here (as root: .ci/slurm up; CI starts one)")


def _workdir(path: Path) -> Path:
    """A folder for one SLURM run of the ci config (exactly the local run's config), holding the
    default config/config.yaml as a checkout does: the jobs must not merge it in."""
    (path / "config").mkdir(parents=True)
    shutil.copy(REPO / "config" / "config.yaml", path / "config" / "config.yaml")
    ci_config(path, **CI_PARTITIONS)
    return path


def _profile_run(work: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(work),
         "--workflow-profile", str(PROFILE), "--configfile", str(work / "ci.yaml"), *FAST, *args],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _squeue(work: Path) -> dict[str, dict[str, str]]:
    """The jobs SLURM knows (finished ones for MinJobAge) whose working directory is ``work``."""
    out = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--format=%i|%T|%P|%m|%l|%k|%Z"],
        capture_output=True, text=True, timeout=30,
    ).stdout  # fmt: skip
    jobs = {}
    for line in out.splitlines():
        job_id, state, partition, mem, limit, comment, workdir = line.split("|")
        if workdir == str(work):
            jobs[job_id] = dict(
                state=state, partition=partition, mem=mem, limit=limit, rule=comment
            )
    return jobs


def _watch(
    run: subprocess.Popen[str], work: Path, tick: Callable[[dict], None] | None = None
) -> tuple[str, dict[str, dict[str, str]]]:
    """Wait for the run, seeing every job it submits in squeue (and calling ``tick`` with them
    each half second); its log and those jobs."""
    jobs: dict[str, dict[str, str]] = {}
    log: list[str] = []
    reader = threading.Thread(target=lambda: log.extend(run.stdout), daemon=True)
    reader.start()
    while run.poll() is None:
        jobs.update(_squeue(work))
        if tick:
            tick(jobs)
        time.sleep(0.5)
    reader.join()
    jobs.update(_squeue(work))
    return "".join(log), jobs


def _minutes(limit: str) -> int:
    """squeue's time limit ([D-]HH:MM:SS or MM:SS) in minutes."""
    days, _, clock = limit.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    hours, minutes = (parts[0], parts[1]) if len(parts) == 3 else (0, parts[0])
    return (int(days or 0) * 24 + hours) * 60 + minutes


def _outputs(results: Path) -> set[str]:
    """The run's outputs: everything but logs, benchmarks, checkpoints and lock files."""
    skip = ("logs/", "benchmarks/", "checkpoints/")
    return {
        str(p.relative_to(results))
        for p in results.rglob("*")
        if p.is_file() and not str(p.relative_to(results)).startswith(skip)
        and not p.name.endswith(".lock")
    }  # fmt: skip


def _assert_same_outputs(ours: Path, local: Path) -> None:
    """Every record and table equal (timing aside), every figure and supernet byte for byte."""
    names = _outputs(ours)
    assert names == _outputs(local)
    for name in sorted(names):
        a, b = ours / name, local / name
        if Path(name).stem == "timing":  # wall times only, most expensive first: run-specific
            continue
        if name.endswith(".json"):
            x, y = (without_keys(json.loads(f.read_text()), VOLATILE) for f in (a, b))
            assert x == y, name
        elif name.endswith(".csv"):
            timing = TIMING_COLUMNS.get(Path(name).stem, set())
            x, y = pd.read_csv(a), pd.read_csv(b)
            assert timing <= set(x.columns), f"{name} lost a timing column"
            pd.testing.assert_frame_equal(
                x.drop(columns=list(timing)), y.drop(columns=list(timing))
            )
        elif name.endswith((".md", ".tex", ".html")) and Path(name).stem in TIMING_COLUMNS:
            # the same rows and text; the timing cells' numbers (and so the column widths) differ
            assert _masked(a.read_text()) == _masked(b.read_text()), name
        elif not name.endswith("checkpoint.pt"):  # a retraining's checkpoint holds its timing
            # records' genotypes, tables without timing, figures, supernets: byte for byte
            assert a.read_bytes() == b.read_bytes(), name


def _masked(text: str) -> str:
    text = re.sub(r"\d+(\.\d+)?", "#", text)
    return re.sub(r"-{3,}", "---", re.sub(r"[ \t]+", " ", text))


class _CancelSearch:
    """Cancels (scancel) the ws search once its checkpoint holds 3 epochs, noting the finished
    outputs that exist then (records, tables, figures: none may change afterwards)."""

    def __init__(self, work: Path) -> None:
        self.work, self.epochs, self.kept = work, 0, dict[str, bytes]()

    def __call__(self, jobs: dict[str, dict[str, str]]) -> None:
        checkpoint = self.work / WS_CHECKPOINT
        running = [i for i, j in jobs.items() if j["state"] == "RUNNING" and j["rule"] == WS_JOB]
        if self.epochs or not running or not checkpoint.exists() or _epochs(checkpoint) < 3:
            return
        results = self.work / "results" / "ci"
        self.kept = {name: (results / name).read_bytes() for name in _outputs(results)}
        self.epochs = _epochs(checkpoint)
        subprocess.run(["scancel", running[0]], check=True)


def _other_runs_logs(work: Path) -> set[Path]:
    """What another run keeps in the SLURM log folder: a pending job's (still empty) log folder
    and a 30-day-old log. The plugin's clean-up at exit would delete both."""
    logs = work / ".snakemake" / "slurm_logs" / "rule_search" / "other-run_0"
    pending = logs.parent / "pending-run_0"
    pending.mkdir(parents=True)
    logs.mkdir()
    old = logs / "1.log"
    old.write_text("an earlier run's job log\n")
    month_ago = time.time() - 30 * 86400
    os.utime(old, (month_ago, month_ago))
    return {pending, old}


def _rule(job: dict[str, str]) -> str:
    """The rule of a job, from the comment the plugin gives it (rule_<name>_wildcards_...)."""
    return re.sub(r"^rule_|_wildcards_.*$", "", job["rule"])


def _epochs(checkpoint: Path) -> int:
    return len(torch.load(checkpoint, weights_only=True)["history"])


@pytest.mark.slow
def test_ci_config_on_slurm_with_a_cancelled_search_equals_the_local_run(
    cluster, ci_run, tmp_path, cache_dir
) -> None:
    """The whole ci config through the profile, its weight-sharing search cancelled (scancel) at
    epoch 3 (--keep-going: the other jobs finish): the run fails, deleting and changing nothing;
    the rerun resumes the search from its checkpoint, and every output equals the local run's.

    The profile's settings as shipped; SLURM log folders another run left (a pending job's empty
    one, an old log) stay. About 3 minutes on 2 cores: about 30 SLURM jobs in the two runs, each
    starting Snakemake twice (which reads the main process's validated config, not validating
    again: ddpnas/config/plan.py)."""
    env, work = pipeline_env(cache_dir), _workdir(tmp_path / "slurm")
    others = _other_runs_logs(work)
    cancel = _CancelSearch(work)
    run = _profile_run(work, "--keep-going", env=env)
    log, jobs = _watch(run, work, cancel)
    assert cancel.epochs >= 3, "the search finished before it could be cancelled"
    assert run.returncode != 0 and "SLURM status is: 'CANCELLED'" in log, log[-5000:]
    results = work / "results" / "ci"
    assert {name: (results / name).read_bytes() for name in cancel.kept} == cancel.kept
    assert not (work / WS_RECORD).exists() and _epochs(work / WS_CHECKPOINT) >= cancel.epochs

    rerun = _profile_run(work, env=env)
    log, seen = _watch(rerun, work)
    assert rerun.returncode == 0 and " error" not in log.lower(), log[-5000:]
    more = {job_id: job for job_id, job in seen.items() if job_id not in jobs}  # (MinJobAge)
    # Nothing was lost: the rerun runs the cancelled search and the jobs that need it, only
    # (timing_table reads every job's benchmark file).
    assert sorted(_rule(job) for job in more.values()) == [
        "costs_table", "nb201_ranking", "nb201_table", "search", "theta_figure", "timing_table"
    ]  # fmt: skip
    jobs.update(more)
    _assert_same_outputs(results, ci_run / "results" / "ci")
    assert json.loads((work / WS_RECORD).read_text())["resumed_from_epoch"] >= cancel.epochs
    # Each job read the ci config only (Snakemake does not pass --replace-workflow-config on).
    job_logs = set((work / ".snakemake" / "slurm_logs").rglob("*.log")) - others
    assert len(job_logs) == len(jobs) and all(p.exists() for p in others)
    assert not [p for p in job_logs if "extended by additional config" in p.read_text()]

    # Each job asked for its rule's time and memory from the config's cluster block, and went to
    # the CPU partition (device: cpu), not the cluster's default one.
    limits = load_config(work / "ci.yaml")["cluster"]["resources"]
    rules = set()
    for job in jobs.values():
        rule = _rule(job)
        rules.add(rule)
        key = "search_tabular" if rule.startswith("search_tabular_") else rule
        assert job["state"] in ("COMPLETED", "CANCELLED"), job
        assert job["partition"] == "cpu", job
        assert job["mem"] == f"{limits[key]['mem_mb']}M", job
        assert _minutes(job["limit"]) == limits[key]["runtime"], job
    assert {"search", "retrain", "nb201_ranking", "costs_table", "searches_table"} <= rules
    assert [j["state"] for j in jobs.values()].count("CANCELLED") == 1


def _copy_results(run: Path, work: Path, *parts: str) -> None:
    """Parts of a finished run, with Snakemake's record of them: ``work``'s earlier results."""
    for part in (*parts, ".snakemake/metadata"):
        shutil.copytree(run / part, work / part)


@pytest.mark.slow
def test_a_rejected_submission_keeps_the_earlier_record(
    cluster, ci_run, tmp_path, cache_dir
) -> None:
    """device=cuda changes the search's params, so Snakemake reruns it; this node has no GPU, so
    SLURM rejects the job (which asked the GPU partition for one). The record stays as it was."""
    env = pipeline_env(cache_dir)
    work = _workdir(tmp_path / "slurm")
    _copy_results(ci_run, work, "results/ci/search", "results/ci/supernets")
    plan = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(work),
         "--configfile", str(work / "ci.yaml"), "-n", WS_RECORD],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert "Nothing to be done" in plan.stdout + plan.stderr, plan.stdout + plan.stderr
    before = (work / WS_RECORD).read_bytes()
    run = _profile_run(work, "--config", "device=cuda", "--", WS_RECORD, env=env)
    log, jobs = _watch(run, work)
    assert run.returncode != 0 and not jobs, log[-3000:]
    assert re.search(r"sbatch .*-p gpu .*--gpus=1", log), log[-3000:]
    assert (work / WS_RECORD).read_bytes() == before


@pytest.mark.slow
def test_a_status_command_that_would_hang_is_refused(cluster, tmp_path, cache_dir) -> None:
    """Without accounting sacct fails, and the plugin would wait for job states forever."""
    work = _workdir(tmp_path / "slurm")
    env = pipeline_env(cache_dir)
    run = _profile_run(work, "--slurm-status-command", "sacct", "--", TABULAR, env=env)
    log, jobs = _watch(run, work)
    errors = [line for line in log.splitlines() if line.startswith("ddpnas: error:")]
    assert run.returncode == 2 and not jobs, log[-3000:]
    assert len(errors) == 1 and "sacct" in errors[0] and "squeue" in errors[0], log[-3000:]
    assert "Traceback" not in log and not (work / "results").exists()
