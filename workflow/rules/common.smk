# Helpers that turn the validated config into rule inputs and CLI arguments.
import json
import re
from types import SimpleNamespace


def search_records(space=None):
    """Every search record the config asks for (optionally of one space)."""
    return [
        f"results/search/{name}/seed{seed}.json"
        for name, spec in config["searches"].items()
        if space is None or spec["space"] == space
        for seed in spec["seeds"]
    ]


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
        "searches": [f"results/search/{e}/seed{s}.json" for e, s in pairs],
        "retrains": [f"results/retrain/{e}/seed{s}/result.json" for e, s in pairs],
    }


def cifar10_tables():
    if not config["retrain"]["searches"]:
        return []
    return expand("results/tables/cifar10.{ext}", ext=["csv", "md", "tex"])


def retrain_launcher():
    """torchrun (DDP) for several GPUs per job, the plain CLI otherwise."""
    gpus = config["retrain"]["gpus"]
    if gpus > 1:
        return f"torchrun --standalone --nproc_per_node {gpus} -m ddpnas.cli"
    return "ddpnas"


def nb201_tables():
    if not search_records("nb201"):
        return []
    return expand("results/tables/nb201.{ext}", ext=["csv", "md", "tex"])


# Strategies that learn a distribution over ops (logged as "theta" every epoch).
THETA_STRATEGIES = ("ddpnas", "darts", "enas")


def theta_figures():
    return [
        f"results/figures/theta_{name}.png"
        for name, spec in config["searches"].items()
        if spec["strategy"] in THETA_STRATEGIES
    ]


def figure_seed(wildcards):
    """The configured figure seed when the experiment runs it, else its first seed."""
    seeds = config["searches"][wildcards.exp]["seeds"]
    wanted = config["report"]["figure_seed"]
    return wanted if wanted in seeds else seeds[0]


def uses_gpu(wildcards):
    return int(config["searches"][wildcards.exp]["mode"] == "weight_sharing")


def search_threads(wildcards):
    """Tabular lookups need one core; training uses the configured threads."""
    return config["threads"] if uses_gpu(wildcards) else 1


# Evidence stages (ranking.smk, costs.smk).
def experiment_regex(mode):
    """Regex matching exactly the search experiments of one mode (none: matches nothing)."""
    names = [n for n, s in config["searches"].items() if s["mode"] == mode]
    return "|".join(re.escape(n) for n in names) or "(?!)"


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
        paths.append(f"results/{kind}/{name}/seed{seed}.{ext}")
    return paths


def ranking_outputs():
    if not config["report"]["ranking"]["experiments"]:
        return []
    return [
        *expand("results/tables/nb201_ranking{part}.{ext}", part=["", "_edges"], ext=["csv", "md", "tex"]),
        "results/figures/nb201_ranking.png",
    ]


def cost_inputs():
    searches = search_records()
    pairs = list(retrain_pairs())
    return {
        "searches": searches,
        "search_benchmarks": [
            p.replace("results/search/", "results/benchmarks/search/").replace(".json", ".tsv")
            for p in searches
        ],
        "retrains": [f"results/retrain/{e}/seed{s}/result.json" for e, s in pairs],
        "retrain_searches": [f"results/search/{e}/seed{s}.json" for e, s in pairs],
        "retrain_benchmarks": [f"results/benchmarks/retrain/{e}/seed{s}.tsv" for e, s in pairs],
    }


def cost_tables():
    return expand("results/tables/costs.{ext}", ext=["csv", "md", "tex"])
