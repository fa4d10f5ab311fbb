# Helpers that turn the validated config into rule inputs and CLI arguments.
import json


def search_records(space=None):
    """Every search record the config asks for (optionally of one space)."""
    return [
        f"results/search/{name}/seed{seed}.json"
        for name, spec in config["searches"].items()
        if space is None or spec["space"] == space
        for seed in spec["seeds"]
    ]


def nb201_tables():
    if not search_records("nb201"):
        return []
    return expand("results/tables/nb201.{ext}", ext=["csv", "md", "tex"])


def theta_figures():
    return [f"results/figures/theta_{name}.png" for name in config["searches"]]


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
