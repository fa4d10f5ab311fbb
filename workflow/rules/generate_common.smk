# Helpers of workflow/rules/generate.smk: `generate:` config entries -> inputs and CLI arguments.
# An entry reads the theta of a `searches:` record, or (experiment: imagenet) of the ImageNet
# stage's mobile-space search; its `retrain:` networks are retrained by the ImageNet stage.
import shlex

from ddpnas.config.load import validate as validate_block
from ddpnas.config.generation import Generation

IMAGENET_SOURCE = "imagenet"


def generation_entry(name):
    """The `generate.<name>` block with its defaults, checked against the search it reads."""
    entry = validate_block(config["generate"][name], Generation, where=f"generate.{name}")
    if entry["experiment"] == IMAGENET_SOURCE:
        search = config.get("imagenet", {}).get("search")
        if search is None or not config["imagenet"].get("enabled", False):
            raise ValueError(
                f"generate.{name}.experiment is 'imagenet' but the config has no enabled "
                "imagenet stage with an imagenet.search block"
            )
    else:
        search = config["searches"].get(entry["experiment"])
        if entry["retrain"]:
            raise ValueError(
                f"generate.{name}.retrain: only networks of the ImageNet search "
                "(experiment: imagenet) are retrained"
            )
    if search is None or not logs_theta(search):
        raise ValueError(
            f"generate.{name}.experiment {entry['experiment']!r} is not a search experiment "
            f"that logs theta ({', '.join(PLAN.theta_strategies())}), nor 'imagenet'"
        )
    if entry["seed"] is not None and entry["seed"] not in search["seeds"]:
        raise ValueError(f"generate.{name}.seed {entry['seed']} is not a seed of that experiment")
    return entry


def generation_seed(name):
    """The entry's seed, else the figure seed when its experiment runs it, else its first seed."""
    entry = generation_entry(name)
    if entry["seed"] is not None:
        return entry["seed"]
    if entry["experiment"] == IMAGENET_SOURCE:
        return preferred_seed(config["imagenet"]["search"]["seeds"])
    return preferred_seed(config["searches"][entry["experiment"]]["seeds"])


def _record(name, seed):
    experiment = generation_entry(name)["experiment"]
    if experiment == IMAGENET_SOURCE:
        return f"<results>/imagenet/search/seed{seed}.json"
    return f"<results>/search/{experiment}/seed{seed}.json"


def generation_record(wildcards):
    return _record(wildcards.name, generation_seed(wildcards.name))


def generated_net_record(wildcards):
    return _record(wildcards.name, wildcards.seed)


def generation_network(entry):
    """Standalone network kwargs; an ImageNet entry defaults to the retrained network (width,
    resolution, classes), so budgets count exactly the networks that are retrained."""
    if entry["experiment"] != IMAGENET_SOURCE:
        return entry["network"]
    width = IMAGENET.get("retrain", {}).get("network", {}).get("width_mult", 1.0)
    retrained = {"width_mult": width, "resolution": IMAGENET["resolution"]}
    return {**retrained, "num_classes": imagenet_classes(), **entry["network"]}


def _options(entry):
    """`ddpnas generate` options shared by the sweep and the retrained networks."""
    args = ["--min-alive", str(entry["min_alive"]), "--objective", entry["objective"]]
    args += ["--network", json.dumps(generation_network(entry))]
    for resource, budget in entry["budgets"].items():
        args += ["--budget", f"{resource}={budget!r}"]
    if entry["latency"]:
        args += ["--latency", entry["latency"], "--missing", entry["missing"]]
        args += ["--device", config["device"]]
    return args


def generation_args(wildcards):
    """The sweep's `ddpnas generate` arguments, shell-quoted."""
    entry = generation_entry(wildcards.name)
    args = ["--sweep", entry["sweep"], *_options(entry)]
    return " ".join(shlex.quote(a) for a in args)


def generated_net_args(wildcards):
    """Arguments generating retrained network `net{i}` of an entry: its budgets on top of the
    entry's fixed ones."""
    entry = generation_entry(wildcards.name)
    args = _options(entry)
    for resource, budget in entry["retrain"][int(wildcards.i)].items():
        args += ["--budget", f"{resource}={budget!r}"]
    return " ".join(shlex.quote(a) for a in args)


def generated_networks():
    """(entry name, index, seed) of every generated network the ImageNet stage retrains."""
    return [
        (name, i, generation_seed(name))
        for name in config["generate"]
        for i in range(len(generation_entry(name)["retrain"]))
    ]


def generation_outputs():
    return [
        path
        for name in config["generate"]
        for path in (
            *expand("<results>/tables/generation_{name}.{ext}", name=name, ext=["csv", "md", "tex", "html"]),
            f"<results>/figures/generation_{name}.png",
        )
    ]
