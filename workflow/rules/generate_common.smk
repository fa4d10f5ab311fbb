# Helpers of workflow/rules/generate.smk: `generate:` config entries -> inputs and CLI arguments.
import shlex
from types import SimpleNamespace

from ddpnas.config import validate as validate_block
from ddpnas.config_models import Generation


def generation_entry(name):
    """The `generate.<name>` block with its defaults, checked against the searches it reads."""
    entry = validate_block(config["generate"][name], Generation, where=f"generate.{name}")
    search = config["searches"].get(entry["experiment"])
    if search is None or not logs_theta(search):
        theta = [name for name, cls in strategies().items() if cls.logs_theta]
        raise ValueError(
            f"generate.{name}.experiment {entry['experiment']!r} is not a search experiment "
            f"that logs theta ({', '.join(theta)})"
        )
    if entry["seed"] is not None and entry["seed"] not in search["seeds"]:
        raise ValueError(f"generate.{name}.seed {entry['seed']} is not a seed of that experiment")
    return entry


def generation_record(wildcards):
    entry = generation_entry(wildcards.name)
    seed = entry["seed"]
    if seed is None:
        seed = figure_seed(SimpleNamespace(exp=entry["experiment"]))
    return f"results/search/{entry['experiment']}/seed{seed}.json"


def generation_args(wildcards):
    """The entry's options as `ddpnas generate` arguments, shell-quoted."""
    entry = generation_entry(wildcards.name)
    args = ["--sweep", entry["sweep"], "--min-alive", str(entry["min_alive"])]
    args += ["--objective", entry["objective"], "--network", json.dumps(entry["network"])]
    for resource, budget in entry["budgets"].items():
        args += ["--budget", f"{resource}={budget!r}"]
    if entry["latency"]:
        args += ["--latency", entry["latency"], "--missing", entry["missing"]]
        args += ["--device", config["device"]]
    return " ".join(shlex.quote(a) for a in args)


def generation_outputs():
    return [
        path
        for name in config["generate"]
        for path in (
            *expand("results/tables/generation_{name}.{ext}", name=name, ext=["csv", "md", "tex"]),
            f"results/figures/generation_{name}.png",
        )
    ]
