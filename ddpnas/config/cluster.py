"""The ``cluster:`` section: what each rule's jobs ask a cluster scheduler for (SLURM through
workflow/profiles/slurm): time, memory and partition. The one place these are set, per config,
since they follow the config's scale; a local run ignores them."""

from __future__ import annotations

from typing import Any, Self

from pydantic import Field, model_validator

from ddpnas.config.options import Options, Positive, Unset, absent, block


class Limits(Options):
    """Time and host memory of one rule's jobs; a key left out keeps the rule's default."""

    runtime: Positive | Unset = absent("Minutes (SLURM --time); the job is killed after it.")
    mem_mb: Positive | Unset = absent(
        "Megabytes of host memory (SLURM --mem); must fit one node of the partition."
    )


def _limits(runtime: int, mem_mb: int, jobs: str) -> Any:
    return Field(Limits(runtime=runtime, mem_mb=mem_mb), description=jobs)


class Resources(Options):
    """Per rule (the rule names of workflow/rules/*.smk). The defaults fit the CPU configs
    (config.yaml, ci.yaml: each job peaks under 1.5 GB); config/paper.yaml sets its own."""

    search: Limits = _limits(120, 4000, "A weight-sharing search (one experiment and seed).")
    search_tabular: Limits = _limits(
        30, 2000, "The search_tabular_<experiment> rules: all seeds of a tabular experiment."
    )
    genotype: Limits = _limits(10, 2000, "Extracting a DARTS genotype from a search record.")
    retrain: Limits = _limits(240, 4000, "Retraining one DARTS-space genotype on CIFAR-10.")
    nb201_table: Limits = _limits(10, 2000, "The NAS-Bench-201 table.")
    searches_table: Limits = _limits(10, 2000, "The searched-architecture table of a space.")
    cifar10_table: Limits = _limits(10, 2000, "The CIFAR-10 table.")
    theta_figure: Limits = _limits(10, 2000, "One theta figure.")
    nb201_ranking: Limits = _limits(60, 4000, "The supernet ranking check (trains no network).")
    costs_table: Limits = _limits(10, 2000, "The cost table.")
    bound: Limits = _limits(60, 4000, "The failure-bound study (Monte-Carlo).")
    generation: Limits = _limits(30, 4000, "Generation under budgets (one generate: entry).")
    generate_network: Limits = _limits(30, 4000, "One generated network to retrain.")
    imagenet_standin: Limits = _limits(30, 4000, "Building the ImageNet stand-in.")
    imagenet_search: Limits = _limits(120, 4000, "The ImageNet (mobile-space) search.")
    imagenet_retrain: Limits = _limits(240, 4000, "Retraining one network on ImageNet.")
    imagenet_transfer: Limits = _limits(240, 4000, "Training a DARTS cell on ImageNet.")
    imagenet_table: Limits = _limits(10, 2000, "The ImageNet table.")
    memory_check: Limits = _limits(
        20, 4000, "The per-GPU memory check (configs with gpu_memory_gib)."
    )
    timing_table: Limits = _limits(
        10, 2000, "The last job: where the run's time went, from every job's benchmark file."
    )

    @model_validator(mode="after")
    def _fill(self) -> Self:
        """A rule given only runtime or only mem_mb keeps the default of the other."""
        for name, field in type(self).model_fields.items():
            given, default = getattr(self, name), field.default
            setattr(
                self,
                name,
                Limits(
                    runtime=given.runtime or default.runtime,
                    mem_mb=given.mem_mb or default.mem_mb,
                ),
            )
        return self


class Cluster(Options):
    """Read where a cluster executor submits the jobs (snakemake --workflow-profile
    workflow/profiles/slurm); the README's "Running on a cluster" says how."""

    cpu_partition: str | Unset = absent(
        "SLURM partition of the jobs that hold no GPU (tables, figures, tabular searches, and "
        "everything when device is cpu). Absent: the cluster's default partition."
    )
    gpu_partition: str | Unset = absent(
        "SLURM partition of the jobs that hold GPUs (training when device is cuda or auto). "
        "Absent: the cluster's default partition."
    )
    resources: Resources = block()
