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


def retrain_gpu_slots():
    """A retraining holds its GPUs whole: every slot that gpu_share searches would share."""
    return config["retrain"]["gpus"] * config["gpu_share"]


def search_threads(wildcards):
    """Tabular lookups need one core; training uses the configured threads."""
    return config["threads"] if uses_gpu(wildcards) else 1
