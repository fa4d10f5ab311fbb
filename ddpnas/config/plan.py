"""What the Snakefile plans with: the validated config and the few registry facts its rules read,
saved by the main Snakemake process for the jobs it spawns.

A cluster job starts Snakemake (under SLURM twice: the batch job, then its job step), and each start
parses the Snakefile. Validating the config there imports every strategy and space, and torch with
them: about 2 s of a 3.1 s start on a 2-core machine (1.5 s of it torch), twice per job. So the
main process always validates and saves the result under ``.snakemake/ddpnas/``, keyed by the raw
config; a spawned job reads it back (validating itself only when there is none, e.g. a job
started by hand), and so plans with exactly what the main process planned with. The main process
never reads a saved plan: a changed strategy, space or default takes effect on the next run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ddpnas.config.load import validate
from ddpnas.errors import DDPNASError
from ddpnas.io.files import write_json
from ddpnas.registry import spaces, strategies

#: Where the main process saves plans, relative to Snakemake's working directory.
FOLDER = Path(".snakemake") / "ddpnas"


@dataclass(frozen=True)
class Plan:
    """The validated config (defaults filled in) and, by registered name, what the rules ask."""

    config: dict[str, Any]
    #: Evaluation modes of each search space ("tabular" needs a benchmark table).
    space_modes: dict[str, list[str]]
    #: Whether each strategy learns a distribution over ops (logged as "theta").
    logs_theta: dict[str, bool]

    def theta_strategies(self) -> list[str]:
        return [name for name, logs in self.logs_theta.items() if logs]


def _key(raw: Any) -> str:
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _fresh(raw: Any) -> Plan:
    """Validate ``raw`` and read the registry, as JSON gives it back (what a spawned job reads)."""
    plan = {
        "config": validate(raw),
        "space_modes": {name: list(cls.modes) for name, cls in spaces().items()},
        "logs_theta": {name: cls.logs_theta for name, cls in strategies().items()},
    }
    return Plan(**json.loads(json.dumps(plan)))


def workflow_plan(raw: Any, *, main: bool, folder: Path = FOLDER) -> Plan:
    """The plan for Snakemake's ``config`` (raw: as loaded, before validation). ``main``: this is
    the main Snakemake process (``workflow.is_main_process``), which validates and saves; a
    spawned job reads what its main process saved."""
    path = Path(folder) / f"{_key(raw)}.json"
    if not main:
        with contextlib.suppress(OSError, ValueError, TypeError):
            return Plan(**json.loads(path.read_text()))
    plan = _fresh(raw)
    if main:  # a folder it cannot write only costs the jobs their time to validate again
        with contextlib.suppress(OSError, DDPNASError):
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json(path, asdict(plan))
    return plan
