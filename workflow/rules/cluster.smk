# Pre-flight of a cluster run (workflow/profiles/slurm). Snakemake runs `onstart` after building the
# DAG and before submitting the first job; where this host cannot run the workflow on SLURM, it
# stops there with one line saying what to do, instead of failing every job (or waiting forever
# for job states) later. Local runs and dry runs skip it.
import shutil
import subprocess
import sys

# What the SLURM plugin calls on this host: submit, job states, cancel, config, default partition.
SLURM_COMMANDS = ("sbatch", "squeue", "scancel", "scontrol", "sinfo")
# The plugin's longest pause between two job-state checks (snakemake-executor-plugin-slurm 2.8.0).
STATUS_INTERVAL_MAX = 180
# AccountingStorageEnforce values under which a job without an account is rejected.
ACCOUNT_ENFORCED = ("associations", "limits", "qos", "safe")


def _run(argv):
    """(exit code, stdout, last line of stderr) of a SLURM command; 124 when it hangs."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return 124, "", f"no answer in 30 s"
    lines = done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or [""]
    return done.returncode, done.stdout, lines[-1]


def slurm_conf():
    """`scontrol show config` as {key: value}; a str says why it failed."""
    code, out, err = _run(["scontrol", "show", "config"])
    if code:
        return err
    pairs = (line.split("=", 1) for line in out.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def min_job_age(conf):
    """Seconds a finished job stays visible to squeue (None: not said)."""
    words = conf.get("MinJobAge", "").split()
    return int(words[0]) if words and words[0].isdigit() else None


def status_problem(settings, conf):
    """Whether the plugin's job-state command works here; it waits forever when it fails.
    Mirrors the plugin's choice: squeue falls back to sacct when MinJobAge < 3 x the first
    status interval."""
    first = settings.init_seconds_before_status_checks or 40
    age = min_job_age(conf)
    sacct = shutil.which("sacct") is not None
    command = settings.status_command or ("sacct" if sacct else "squeue")
    if command == "squeue" and (age is None or age < 3 * first) and sacct:
        command = "sacct"
    if command == "sacct" and not sacct:
        command = "squeue"
    if command == "sacct":
        code, _, err = _run(["sacct", "-X", "-n", "--format=JobIdRaw", "--starttime", "now"])
        if code:
            return (
                f"the SLURM plugin would read job states with sacct, which fails here ({err}), "
                "and wait forever: pass --slurm-status-command squeue (the profile's) with "
                f"MinJobAge >= {max(3 * first, 300)} s in slurm.conf (now {age}), or enable "
                "accounting (slurmdbd)"
            )
    elif age and age <= STATUS_INTERVAL_MAX:
        return (
            f"MinJobAge is {age} s: squeue forgets a finished job before the SLURM plugin's next "
            f"check (up to {STATUS_INTERVAL_MAX} s later), and the run would wait for it forever; "
            "set MinJobAge = 300 (SLURM's default) in slurm.conf, or pass "
            "--slurm-status-command sacct where accounting works"
        )
    return None


def account_problem(conf, jobs):
    """A cluster that rejects jobs without an account, and a job without one (the plugin's
    own guess always fails in 2.8.0)."""
    enforced = conf.get("AccountingStorageEnforce", "none")
    if not any(word in enforced for word in ACCOUNT_ENFORCED):
        return None
    if all(job.resources.get("slurm_account") for job in jobs):
        return None
    return (
        f"this cluster requires an account (AccountingStorageEnforce = {enforced}): pass "
        "--default-resources slurm_account=NAME (`sacctmgr show assoc user=$USER` lists yours)"
    )


def slurm_preflight(settings, jobs):
    """The first reason this host cannot run the jobs on SLURM, or None."""
    missing = [name for name in SLURM_COMMANDS if shutil.which(name) is None]
    if missing:
        return (
            f"the SLURM profile needs {missing[0]!r}, which is not on PATH: run from a SLURM "
            "login node, or leave out --workflow-profile workflow/profiles/slurm to run here"
        )
    conf = slurm_conf()
    if isinstance(conf, str):
        return f"SLURM does not answer (scontrol show config: {conf}); check that `sinfo` works"
    return status_problem(settings, conf) or account_problem(conf, jobs)


onstart:
    if workflow.executor_plugin is not None and workflow.executor_plugin.name == "slurm":
        problem = slurm_preflight(workflow.executor_settings, list(workflow.dag.needrun_jobs()))
        if problem:
            print(f"ddpnas: error: {problem}", file=sys.stderr)
            raise SystemExit(2)
