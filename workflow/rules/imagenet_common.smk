# Helpers of the ImageNet stage (workflow/rules/imagenet.smk).
import os

IMAGENET = config.get("imagenet", {})
STANDIN_DIR = f"{RESULTS}/imagenet/standin"
STANDIN_CLASSES = 10  # CIFAR-10's (ddpnas.data.imagenet.CIFAR_WNIDS); ImageNet's 1000 otherwise


def imagenet_on():
    return IMAGENET.get("enabled", False)


def imagenet_classes():
    return STANDIN_CLASSES if IMAGENET.get("standin", {}).get("enabled", True) else 1000


def imagenet_root_input():
    """The stand-in folder as a rule input when it replaces ImageNet, else nothing."""
    return [STANDIN_DIR] if IMAGENET.get("standin", {}).get("enabled", True) else []


def imagenet_root_arg():
    return f"--root {STANDIN_DIR}" if IMAGENET.get("standin", {}).get("enabled", True) else ""


def cifar_zip():
    root = config["data"]["root"] or os.environ.get("DDPNAS_DATA", "")
    return os.path.join(root, "cifar10-jpeg.zip")


def imagenet_arch(wildcards):
    """Architecture file of a retrained mobile network: the search record ("mobile") or the
    network generated from its theta ("<entry>-net<i>", rule generate_network)."""
    if wildcards.net == "mobile":
        return f"<results>/imagenet/search/seed{wildcards.seed}.json"
    name, i = wildcards.net.rsplit("-net", 1)
    return f"<results>/generated/{name}/seed{wildcards.seed}/net{i}.json"


def imagenet_pairs():
    """(search record, retrain result) of every ImageNet row of ours."""
    if not imagenet_on():
        return []
    pairs = []
    if "search" in IMAGENET:
        for seed in IMAGENET["search"]["seeds"]:
            pairs.append(
                (
                    f"<results>/imagenet/search/seed{seed}.json",
                    f"<results>/imagenet/retrain/mobile/seed{seed}/result.json",
                )
            )
    for name, i, seed in generated_networks():
        pairs.append(
            (
                f"<results>/imagenet/search/seed{seed}.json",
                f"<results>/imagenet/retrain/{name}-net{i}/seed{seed}/result.json",
            )
        )
    for name in IMAGENET.get("transfer", {}).get("searches", []):
        spec = config["searches"].get(name)
        if spec is None or spec["space"] != "darts":
            raise ValueError(f"imagenet.transfer.searches: {name!r} is not a DARTS-space search")
        for seed in spec["seeds"]:
            pairs.append(
                (
                    f"<results>/search/{name}/seed{seed}.json",
                    f"<results>/imagenet/transfer/{name}/seed{seed}/result.json",
                )
            )
    return pairs


def imagenet_tables():
    if not imagenet_pairs():
        return []
    return expand("<results>/tables/imagenet.{ext}", ext=["csv", "md", "tex", "html"])
