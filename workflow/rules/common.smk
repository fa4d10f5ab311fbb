# Helpers that turn the validated config into rule inputs and CLI arguments.
import json
import os
import re
from types import SimpleNamespace

from snakemake.exceptions import WorkflowError


def search_records(space=None):
    """Every search record the config asks for (optionally of one space)."""
    return [
        f"<results>/search/{name}/seed{seed}.json"
        for name, spec in config["searches"].items()
        if space is None or spec["space"] == space
        for seed in spec["seeds"]
    ]


def experiment_records(name):
    """The search records of one experiment, one per seed."""
    return [f"<results>/search/{name}/seed{seed}.json" for seed in config["searches"][name]["seeds"]]


def tabular_experiments():
    """Experiments whose seeds all run in one job each (the search_tabular_<name> rules)."""
    return [name for name, spec in config["searches"].items() if spec["mode"] == "tabular"]


def per_seed_experiments_regex():
    """The per-seed search rule takes only the other (weight-sharing) experiments, unambiguously."""
    names = [name for name in config["searches"] if name not in tabular_experiments()]
    return "|".join(re.escape(name) for name in names) or "(?!)"


def retrain_pairs():
    """(experiment, seed) of every search whose genotype is retrained."""
    for name in config["retrain"]["searches"]:
        spec = config["searches"].get(name)
        if spec is None or spec["space"] != "darts":
            raise ValueError(
                f"retrain.searches names {name!r}, which is not a DARTS-space search experiment"
            )
        for seed in spec["seeds"]:
            yield name, seed


def cifar10_inputs():
    pairs = list(retrain_pairs())
    return {
        "searches": [f"<results>/search/{e}/seed{s}.json" for e, s in pairs],
        "retrains": [f"<results>/retrain/{e}/seed{s}/result.json" for e, s in pairs],
    }


def cifar10_tables():
    if not config["retrain"]["searches"]:
        return []
    return expand("<results>/tables/cifar10.{ext}", ext=["csv", "md", "tex", "html"])


def retrain_launcher():
    """`ddpnas launch` (torchrun, across the SLURM job's nodes) for several GPUs, else the CLI."""
    gpus, nodes = config["retrain"]["gpus"], config["retrain"]["nodes"]
    if gpus > 1 or nodes > 1:
        return f"ddpnas launch --gpus-per-node {gpus} --"
    return "ddpnas"


def retrain_resources():
    """One node: `gpu` GPUs. Several (SLURM only): GPUs per node as gres, one launcher per node;
    `mpi` keeps the SLURM job step from pinning the command to one node."""
    gpus, nodes = config["retrain"]["gpus"], config["retrain"]["nodes"]
    if nodes == 1:
        return {"gpu": whole_gpus(gpus)}
    return {"gres": f"gpu:{gpus}", "nodes": nodes, "tasks": nodes, "tasks_per_gpu": 0, "mpi": "srun"}


def nb201_tables():
    if not search_records("nb201"):
        return []
    return expand("<results>/tables/nb201.{ext}", ext=["csv", "md", "tex", "html"])


def table_stem(wildcards, output):
    """The stem a table command writes <stem>.csv/.md/.tex to: its csv output without .csv."""
    return output.csv.removesuffix(".csv")


def generic_table_spaces():
    """Searched spaces without a tabular benchmark: each gets the generic searched-architecture
    table (NAS-Bench-201 has its own, with the benchmark's figures)."""
    used = dict.fromkeys(spec["space"] for spec in config["searches"].values())
    return [space for space in used if "tabular" not in PLAN.space_modes[space]]


def spaces_regex():
    return "|".join(re.escape(space) for space in generic_table_spaces()) or "(?!)"


def searches_tables():
    return expand(
        "<results>/tables/searches_{space}.{ext}",
        space=generic_table_spaces(),
        ext=["csv", "md", "tex", "html"],
    )


def logs_theta(spec):
    """Whether a search's strategy learns a distribution over ops (logged as "theta")."""
    return PLAN.logs_theta[spec["strategy"]]


def theta_figures():
    return [
        f"<results>/figures/theta_{name}.png"
        for name, spec in config["searches"].items()
        if logs_theta(spec)
    ]


def preferred_seed(seeds):
    """The configured figure seed when it is one of ``seeds``, else the first of them."""
    wanted = config["report"]["figure_seed"]
    return wanted if wanted in seeds else seeds[0]


def figure_seed(wildcards):
    """The figure seed of an experiment (see preferred_seed)."""
    return preferred_seed(config["searches"][wildcards.exp]["seeds"])


def trains(wildcards):
    return config["searches"][wildcards.exp]["mode"] == "weight_sharing"


def whole_gpus(n=1):
    """GPUs a training job holds (the `gpu` resource, --gpus under SLURM): none on a CPU run, so
    CPU jobs never queue for the profile's gpu token."""
    return n if config["device"] != "cpu" else 0


def uses_gpu(wildcards):
    """Training searches take a GPU unless on the CPU; tabular lookups never do."""
    return whole_gpus(int(trains(wildcards)))


def search_gpus(wildcards):
    """Whole GPUs of a search (what SLURM's --gpus gets): one, unless gpu_share > 1 packs several
    searches per GPU locally, when only gpu_slots counts them (a SLURM job cannot share a GPU)."""
    return uses_gpu(wildcards) if config["gpu_share"] == 1 else 0


def retrain_gpu_slots():
    """A retraining holds its GPUs whole: every slot that gpu_share searches would share."""
    return whole_gpus(config["retrain"]["gpus"]) * config["gpu_share"]


def cluster_resources(rule_name, gpus=0):
    """Time, memory and partition a rule's jobs ask a cluster for (config key cluster, the one
    place they are set; a local run ignores them): the GPU partition when the job holds GPUs."""
    block = config["cluster"]
    resources = dict(block["resources"][rule_name])
    partition = block.get("gpu_partition" if gpus else "cpu_partition")
    if partition:
        resources["slurm_partition"] = partition
    return resources


def run_cores():
    """--cores of this run, which the timing table's notes name (0: not given, e.g. --lint)."""
    try:
        return workflow.cores
    except WorkflowError:
        return 0


def search_threads(wildcards):
    """Tabular lookups need one core; training uses the configured threads."""
    return config["threads"] if trains(wildcards) else 1



# Evidence stages (ranking.smk, costs.smk).
def ranking_runs(kind):
    """Search records (kind "search") or supernets ("supernets") of the ranking check."""
    ext = "json" if kind == "search" else "pt"
    paths = []
    for name in config["report"]["ranking"]["experiments"]:
        spec = config["searches"].get(name)
        if spec is None or spec["space"] != "nb201" or spec["mode"] != "weight_sharing":
            raise ValueError(
                f"report.ranking.experiments names {name!r}, which is not a weight-sharing "
                "NAS-Bench-201 search experiment"
            )
        seed = figure_seed(SimpleNamespace(exp=name))
        paths.append(f"<results>/{kind}/{name}/seed{seed}.{ext}")
    return paths


def ranking_outputs():
    if not config["report"]["ranking"]["experiments"]:
        return []
    return [
        *expand(
            "<results>/tables/nb201_ranking{part}.{ext}",
            part=["", "_edges"],
            ext=["csv", "md", "tex", "html"],
        ),
        "<results>/figures/nb201_ranking.png",
    ]


def cost_inputs():
    # Per-seed (weight-sharing) searches: each is one job with its own benchmark file. A tabular
    # experiment runs all its seeds in one job, so no per-record benchmark exists to check against.
    tabular = set(tabular_experiments())
    searches = [p for p in search_records() if p.split("/")[2] not in tabular]
    pairs = list(retrain_pairs())
    return {
        "searches": searches,
        "search_benchmarks": [
            p.replace("<results>/search/", "<results>/benchmarks/search/").replace(".json", ".tsv")
            for p in searches
        ],
        "retrains": [f"<results>/retrain/{e}/seed{s}/result.json" for e, s in pairs],
        "retrain_searches": [f"<results>/search/{e}/seed{s}.json" for e, s in pairs],
        "retrain_benchmarks": [f"<results>/benchmarks/retrain/{e}/seed{s}.tsv" for e, s in pairs],
    }


def cost_tables():
    return expand("<results>/tables/costs.{ext}", ext=["csv", "md", "tex", "html"])


def pipeline_outputs():
    """Every output the config asks for but the timing table, which reads their benchmarks."""
    return [
        *search_records(),
        *nb201_tables(),
        *searches_tables(),
        *cifar10_tables(),
        *theta_figures(),
        *BOUND_OUTPUTS,
        *imagenet_tables(),
        *generation_outputs(),
        *ranking_outputs(),
        *cost_tables(),
    ]


def memory_checked():
    """The memory check's report as an input of a GPU rule when the config declares
    gpu_memory_gib (memory.smk), else nothing; ancient(): its reruns never outdate a result."""
    if config.get("gpu_memory_gib") is None:
        return []
    return [ancient("<results>/estimate.md")]
