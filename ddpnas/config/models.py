"""The whole config: the top-level keys and one typed model per section (each in its own module
of :mod:`ddpnas.config`), the one declaration of every key, default, bound and description.

Strategies and spaces declare their own blocks (``strategy_args``, ``supernet``) as the ``Options``
model of their registered class; :class:`~ddpnas.config.search.Search` picks the one named by
``strategy`` / ``space``. The JSON schema exported for editors (``python -m ddpnas.config.export``)
is generated from these models.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ddpnas.config.cluster import Cluster
from ddpnas.config.data import Data
from ddpnas.config.generation import Generation
from ddpnas.config.imagenet import Imagenet
from ddpnas.config.options import (
    Number,
    Options,
    Positive,
    Unset,
    absent,
    block,
)
from ddpnas.config.report import Report
from ddpnas.config.retrain import Retrain
from ddpnas.config.search import Search


class Config(Options):
    """One file drives the pipeline (Snakemake) and the CLI. Unknown keys are errors, so a typo
    never silently falls back to a default."""

    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto picks CUDA when present."
    )
    threads: Positive = Field(
        2,
        description="CPU threads per compute job (torch.set_num_threads and Snakemake threads).",
    )
    gpu_share: Positive = Field(
        1,
        description=(
            "Weight-sharing searches that share one GPU. Each such search takes one `gpu_slots` "
            "unit and a retraining takes gpu_share per GPU, so run Snakemake with "
            "`--resources gpu=<GPUs> gpu_slots=<GPUs x gpu_share>` (a resource left out is "
            "unlimited)."
        ),
    )
    gpu_memory_gib: Number | None = absent(
        "Memory of each GPU the jobs run on, in GiB (e.g. 79 for an 80 GB H100, 139 for an "
        "H200). When set, the pipeline's first job (memory_check: `ddpnas report estimate "
        "--check-memory`) refuses, before any GPU job, a config with a job whose estimated peak "
        "per GPU exceeds it. Absent: not checked.",
        gt=0,
    )
    results_dir: str | Unset = absent(
        "Folder of this config's pipeline outputs (absent: results/<config file name>, e.g. "
        "results/ci for config/ci.yaml), so two configs never share or overwrite outputs."
    )
    data: Data = block()
    searches: dict[str, Search] = Field(
        min_length=1, description="Named search experiments; each runs once per seed."
    )
    retrain: Retrain = block()
    report: Report = block()
    imagenet: Imagenet = block()
    generate: dict[str, Generation] = Field(
        {},
        description=(
            "Constraint-aware generation (`ddpnas generate`): per entry, the networks generated "
            "from the theta of one search record (the last theta with min_alive survivors per "
            "edge, before its prune) for a sweep of budgets on one resource, each re-measured on "
            "the built network; writes results/tables/generation_<name>.{csv,md,tex} and "
            "results/figures/generation_<name>.png. On NAS-Bench-201 the table holds each "
            "generated cell's accuracy and its gap to the benchmark's true accuracy/cost front. "
            "Name an entry after its space (nb201, mobile). An entry on the ImageNet search "
            "(experiment: imagenet) may list networks to retrain."
        ),
    )
    cluster: Cluster = block(
        "What each rule's jobs ask a cluster scheduler for (time, memory, partition); only read "
        "through an executor that submits jobs (workflow/profiles/slurm)."
    )
