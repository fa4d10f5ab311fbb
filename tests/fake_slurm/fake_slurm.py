#!/usr/bin/env python3
"""A one-machine stand-in for SLURM's client commands, for testing the Snakemake SLURM plugin.

Every command (sbatch, squeue, sacct, sacctmgr, srun, scontrol, sinfo, scancel) is a symlink to
this file and is chosen by the name it was called under. Jobs run at once, locally and detached,
in the directory ``-D`` names; their state lives in ``$FAKE_SLURM_DIR`` and every sbatch command
line is appended to ``$FAKE_SLURM_DIR/sbatch.log``. The answers follow SLURM's formats as far as
the plugin reads them (``--parsable`` job ids, ``id|STATE`` lines, ``scontrol show config`` key =
value).

``FAKE_SLURM_ACCOUNTING=off`` makes sacct fail as it does where accounting storage is disabled;
``FAKE_SLURM_MIN_JOB_AGE`` and ``FAKE_SLURM_ENFORCE`` set what ``scontrol show config`` says of
MinJobAge and AccountingStorageEnforce, ``FAKE_SLURM_ACCOUNTS`` the accounts sacctmgr lists.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

STATE = Path(os.environ.get("FAKE_SLURM_DIR", "/tmp/fake_slurm"))
# Options that take their value as the next word (others are flags or use --opt=value).
VALUED = {
    "-A", "--account", "-p", "--partition", "-t", "--time", "-C", "--constraint", "-D", "--chdir",
    "-J", "--job-name", "-o", "--output", "-e", "--error", "-N", "--nodes", "-n", "--ntasks",
    "-c", "--cpus-per-task", "--mem", "--mem-per-cpu", "--comment", "--clusters", "-M", "--gpus",
    "-G", "--gres", "--wrap", "--qos", "--export", "--name", "--format", "--states",
    "--starttime", "--endtime", "-u", "--user",
}  # fmt: skip


def parse(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """Leading options as {name: value} ('' for flags) and the remaining words."""
    opts: dict[str, str] = {}
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        word = argv[i]
        if word.startswith("--") and "=" in word:
            key, value = word.split("=", 1)
        elif word in VALUED:
            key, value = word, argv[i + 1]
            i += 1
        elif not word.startswith("--") and len(word) > 2 and word[:2] in VALUED:
            key, value = word[:2], word[2:]
        else:
            key, value = word, ""
        opts[key] = value
        i += 1
    return opts, argv[i:]


def _jobs() -> Path:
    (STATE / "jobs").mkdir(parents=True, exist_ok=True)
    return STATE / "jobs"


def _read(job_id: str) -> dict:
    return json.loads((_jobs() / f"{job_id}.json").read_text())


def _write(job_id: str, job: dict) -> None:
    tmp = _jobs() / f".{job_id}.tmp"
    tmp.write_text(json.dumps(job))
    os.replace(tmp, _jobs() / f"{job_id}.json")


def _next_id() -> str:
    with open(STATE / "lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        counter = STATE / "next_id"
        job_id = int(counter.read_text()) if counter.exists() else 1000
        counter.write_text(str(job_id + 1))
    return str(job_id)


def sbatch(argv: list[str]) -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / "sbatch.log", "a") as log:
        log.write(shlex.join(["sbatch", *argv]) + "\n")
    opts, rest = parse(argv)
    get = lambda *names: next((opts[n] for n in names if n in opts), None)  # noqa: E731
    if "--wrap" in opts:
        script = "#!/bin/sh\n" + opts["--wrap"] + "\n"
    elif rest:
        script = sys.stdin.read() if rest[0] in ("-", "/dev/stdin") else Path(rest[0]).read_text()
    else:
        print("sbatch: error: no batch script given", file=sys.stderr)
        return 1
    job_id = _next_id()
    (_jobs() / f"{job_id}.sh").write_text(script)
    workdir = get("-D", "--chdir") or os.getcwd()
    output = (get("-o", "--output") or "slurm-%j.out").replace("%j", job_id)
    _write(
        job_id,
        {
            "name": get("-J", "--job-name") or "sbatch",
            "state": "PENDING",
            "workdir": workdir,
            "output": str(Path(workdir, output)),
            "nodes": get("-N", "--nodes") or "1",
            "cpus": get("-c", "--cpus-per-task") or "1",
            "gpus": get("-G", "--gpus") or "",
        },
    )
    subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "__run", job_id],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    print(job_id if "--parsable" in opts else f"Submitted batch job {job_id}")
    return 0


def run(job_id: str) -> int:
    """The detached runner: execute the batch script, record RUNNING, then the final state."""
    job = _read(job_id)
    env = {
        **os.environ,
        "SLURM_JOB_ID": job_id,
        "SLURM_JOBID": job_id,
        "SLURM_JOB_NAME": job["name"],
        "SLURM_NNODES": job["nodes"],
        "SLURM_JOB_NUM_NODES": job["nodes"],
        "SLURM_JOB_NODELIST": "localhost",
        "SLURMD_NODENAME": "localhost",
        "SLURM_NTASKS": "1",
        "SLURM_CPUS_PER_TASK": job["cpus"],
        "SLURM_SUBMIT_DIR": job["workdir"],
    }
    if job["gpus"]:
        env["SLURM_GPUS"] = job["gpus"]
    with open(job["output"], "ab") as out:
        proc = subprocess.Popen(
            ["/bin/sh", str(_jobs() / f"{job_id}.sh")],
            cwd=job["workdir"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        _write(job_id, {**job, "state": "RUNNING", "pid": proc.pid})
        code = proc.wait()
    state = _read(job_id)["state"]
    if state != "CANCELLED":
        _write(job_id, {**job, "state": "COMPLETED" if code == 0 else "FAILED", "exit": code})
    return 0


def _states(name: str | None) -> list[str]:
    lines = []
    for path in sorted(_jobs().glob("*.json"), key=lambda p: int(p.stem)):
        job = json.loads(path.read_text())
        if name is None or job["name"] == name:
            lines.append(f"{path.stem}|{job['state']}")
    return lines


def sacct(argv: list[str]) -> int:
    if os.environ.get("FAKE_SLURM_ACCOUNTING") == "off":
        print("sacct: error: Slurm accounting storage is disabled", file=sys.stderr)
        return 1
    opts, _ = parse(argv)
    if "--name" in opts:  # job states: -X --parsable2 --noheader --format=JobIdRaw,State
        print("\n".join(_states(opts["--name"])))
    # the account guess (-nu USER -o Account): no accounts on this fake cluster
    return 0


def squeue(argv: list[str]) -> int:
    opts, _ = parse(argv)  # --format=%i|%T --states=all --noheader --name RUN
    print("\n".join(_states(opts.get("--name"))))
    return 0


def srun(argv: list[str]) -> int:
    """Run the command in place (one task on this one node), as ``srun -n1 ... CMD`` does."""
    _, command = parse(argv)
    os.execvp(command[0], command)


def scontrol(argv: list[str]) -> int:
    if argv[:2] == ["show", "config"]:
        accounting = "none" if os.environ.get("FAKE_SLURM_ACCOUNTING") == "off" else "slurmdbd"
        print(
            "Configuration data as of 2026-01-01T00:00:00\n"
            f"AccountingStorageEnforce = {os.environ.get('FAKE_SLURM_ENFORCE', 'none')}\n"
            f"AccountingStorageType   = accounting_storage/{accounting}\n"
            "MaxArraySize            = 1001\n"
            f"MinJobAge               = {os.environ.get('FAKE_SLURM_MIN_JOB_AGE', '300')} sec\n"
        )
        return 0
    if argv[:2] == ["show", "hostnames"]:
        nodelist = argv[2] if len(argv) > 2 else os.environ.get("SLURM_JOB_NODELIST", "")
        print("\n".join(h for h in nodelist.split(",") if h))
        return 0
    print(f"scontrol: error: unsupported by the fake: {shlex.join(argv)}", file=sys.stderr)
    return 1


def sacctmgr(argv: list[str]) -> int:
    """The user's accounts (-n -s list user USER format=account%256): $FAKE_SLURM_ACCOUNTS."""
    print("\n".join(os.environ.get("FAKE_SLURM_ACCOUNTS", "").split()))
    return 0


def sinfo(argv: list[str]) -> int:
    print("PARTITION\nfake*")
    return 0


def scancel(argv: list[str]) -> int:
    _, ids = parse(argv)
    for job_id in (i for word in ids for i in word.split(",")):
        job = _read(job_id.split("_")[0])
        if "pid" in job and job["state"] == "RUNNING":
            with contextlib.suppress(ProcessLookupError):
                os.killpg(os.getpgid(job["pid"]), signal.SIGTERM)
        _write(job_id, {**job, "state": "CANCELLED"})
    return 0


COMMANDS = {
    f.__name__: f for f in (sbatch, sacct, sacctmgr, squeue, srun, scontrol, sinfo, scancel)
}


if __name__ == "__main__":
    if sys.argv[1:2] == ["__run"]:
        sys.exit(run(sys.argv[2]))
    sys.exit(COMMANDS[Path(sys.argv[0]).name](sys.argv[1:]))
