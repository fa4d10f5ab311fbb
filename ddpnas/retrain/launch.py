"""How a retraining job starts its processes: one process, ``torchrun`` on this machine's GPUs, or
``torchrun`` on every node of a SLURM allocation with the rendezvous taken from SLURM's environment.

The decision is made when the job runs, not when the workflow is planned, because only then are the
allocation's nodes and its first host (the rendezvous master) known.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping, Sequence

from ddpnas.errors import DDPNASError

# torchrun's default port, offset by the job id so two jobs sharing a master node do not collide.
BASE_PORT = 29500


def slurm_hostnames(nodelist: str) -> list[str]:
    """Expand a SLURM node list (``gpu[01-04]``) with ``scontrol show hostnames``."""
    try:
        out = subprocess.run(
            ["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise DDPNASError(f"cannot expand SLURM_JOB_NODELIST={nodelist!r}: {exc}") from None
    return out.split()


def launch_argv(
    gpus_per_node: int,
    env: Mapping[str, str],
    hostnames: Callable[[str], list[str]] = slurm_hostnames,
) -> list[str]:
    """The command that runs ``ddpnas`` once per GPU of the job (the CLI's arguments follow it)."""
    if gpus_per_node < 1:
        raise DDPNASError(f"--gpus-per-node must be at least 1, got {gpus_per_node}")
    nodes = int(env.get("SLURM_NNODES", "1")) if env.get("SLURM_JOB_ID") else 1
    if nodes <= 1 and gpus_per_node == 1:
        return ["ddpnas"]
    torchrun = ["torchrun", f"--nproc_per_node={gpus_per_node}"]
    if nodes <= 1:
        return [*torchrun, "--standalone", "-m", "ddpnas.cli.main"]
    job = env["SLURM_JOB_ID"]
    master = hostnames(env["SLURM_JOB_NODELIST"])[0]
    return [
        "srun",
        f"--nodes={nodes}",
        f"--ntasks={nodes}",
        "--ntasks-per-node=1",  # one torchrun per node; it starts the node's GPU processes
        *torchrun,
        f"--nnodes={nodes}",
        "--rdzv_backend=c10d",
        f"--rdzv_endpoint={master}:{BASE_PORT + int(job) % 1000}",
        f"--rdzv_id={job}",
        "-m",
        "ddpnas.cli.main",
    ]


def launch(gpus_per_node: int, args: Sequence[str]) -> None:
    """Replace this process with the launcher running ``ddpnas ARGS``."""
    argv = [*launch_argv(gpus_per_node, os.environ), *args]
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        raise DDPNASError(f"cannot start {argv[0]}: {exc}") from None
