"""GPU-hours and peak GPU memory of every job a config runs, before running it, and which subset
of the config reproduces which published table.

Time: steps x ms/step. A step's time is a measured one (``speeds.yaml`` beside this file names the
device, script and network size of each figure), scaled linearly with the batch; a network of
another size or one never measured is **extrapolated** from a measured step by its MACs per image
(the row names the measured step it comes from). Validation batches cost ``valid_fraction`` of a
training step. ImageNet epochs are also bounded below by the input pipeline's measured rate
(``bench_imagenet_data.py``, extrapolated to the configured workers) where it decodes on the CPU,
and the ImageNet search adds its one-off parallel decode. Tabular searches, the bound, generation
and the tables need no GPU.

Memory: the peak per GPU of each job from activations measured per image on the CPU
(:mod:`ddpnas.report.memory`); a job above the config's ``gpu_memory_gib`` is refused by
:func:`check_memory` (the pipeline's ``memory_check`` rule) before any GPU job starts.
"""

from __future__ import annotations

import math
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from ddpnas.errors import ConfigError
from ddpnas.report import memory
from ddpnas.spaces import get_space
from ddpnas.strategies import get_strategy

SPLIT = 25_000  # images in each half of the 50k CIFAR-10 training set (the search split)
CIFAR_TRAIN, CIFAR_TEST, CIFAR_SIDE = 50_000, 10_000, 32
IMAGENET_TRAIN, IMAGENET_VAL, IMAGENET_CLASSES = 1_281_167, 50_000, 1000
BYTES_UINT8, BYTES_FLOAT = 1, 4


@cache
def speeds() -> dict[str, Any]:
    """The measured per-step speeds shipped with the package."""
    return yaml.safe_load(resources.files("ddpnas.report").joinpath("speeds.yaml").read_text())


def _hours(steps: float, step_ms: float) -> float:
    return steps * step_ms / 3.6e6


def _reference() -> tuple[float, str]:
    """ms per image of the measured reference step (DARTS-V2 retraining) per MAC of its network,
    and its name: the base of every extrapolation."""
    ref = speeds()["retrain"]
    measured = memory.macs(
        "darts_cifar",
        {"network": {**ref["network"], "num_classes": 10}, "genotype": "DARTS_V2"},
        32,
    )
    per_mac = ref["train_step_ms"] / ref["batch_size"] / measured["macs"]
    return per_mac, f"the measured DARTS-V2 retraining step ({speeds()['device']})"


def extrapolated_ms(macs: float, batch: int) -> tuple[float, str]:
    """A step of ``batch`` images of ``macs`` each, from the reference's ms per MAC."""
    per_mac, name = _reference()
    return per_mac * macs * batch, f"extrapolated: MACs ratio to {name}"


def _row(stage: str, experiment: str, seeds: list[int], **fields: Any) -> dict[str, Any]:
    return {"stage": stage, "experiment": experiment, "seed_list": list(seeds), **fields}


def search_row(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """GPU-hours and peak memory of one seed of a search experiment on CIFAR-10."""
    if spec["mode"] == "tabular":
        return _row(
            "search",
            name,
            spec["seeds"],
            gpu_hours_per_seed=0.0,
            speed="CPU: table lookups, no GPU",
        )
    train = spec["train"]
    n_train, n_valid = train["train_size"] or SPLIT, train["valid_size"] or SPLIT
    data = (n_train + n_valid) * 3 * CIFAR_SIDE**2 * BYTES_UINT8
    return _weight_sharing_row("search", name, spec, n_train, n_valid, CIFAR_SIDE, 10, data)


def _weight_sharing_row(
    stage: str,
    name: str,
    spec: dict[str, Any],
    n_train: int,
    n_valid: int,
    side: int,
    classes: int,
    data_bytes: float,
) -> dict[str, Any]:
    """A weight-sharing search of ``spec``: measured speed when its space and size were measured,
    else extrapolated; peak memory with the images held on the GPU (``data_bytes``)."""
    strategy = get_strategy(spec["strategy"])(
        get_space(spec["space"]), mode=spec["mode"], **spec["strategy_args"]
    )
    batch = spec["train"]["batch_size"]
    options = {
        "space": spec["space"],
        "supernet": spec["supernet"],
        "classes": classes,
        "mixed": strategy.mixed_ops,
    }
    net = memory.measure("supernet", options, side)
    measured = speeds()["search"].get(spec["space"], {})
    key = strategy.speed_key()
    if key in measured.get("train_step_ms", {}) and side == CIFAR_SIDE:
        step_ms = measured["train_step_ms"][key] * batch / measured["batch_size"]
        size = {k: spec["supernet"].get(k) for k in measured["supernet"]}
        speed = f"measured ({speeds()['device']}, {measured['source'].split()[0]})"
        if size != measured["supernet"]:
            at = memory.macs("supernet", {**options, "supernet": measured["supernet"]}, side)
            step_ms *= net["macs"] / at["macs"]
            speed = f"extrapolated: MACs ratio to the step measured at {measured['supernet']}"
    else:
        step_ms, speed = extrapolated_ms(net["macs"], batch)
    epochs, validated = strategy.search_images(n_valid)
    steps = math.ceil(n_train / batch)
    valid_ms = validated / batch * step_ms * speeds()["valid_fraction"]
    # DARTS's second order keeps an unrolled copy of the weights and its gradients
    copies = 2 if spec["strategy"] == "darts" and spec["strategy_args"].get("order") == 2 else 0
    peak = memory.peak_bytes(net, batch, data_bytes=data_bytes, extra_copies=copies)
    return _row(
        stage,
        name,
        spec["seeds"],
        step_ms=step_ms,
        epochs=epochs,
        steps_per_epoch=steps,
        gpus=1,
        batch_per_gpu=str(batch),
        gpu_hours_per_seed=_hours(epochs * steps, step_ms) + valid_ms / 3.6e6,
        peak=peak,
        speed=speed,
    )


def _protocol_row(
    stage: str,
    name: str,
    seeds: list[int],
    proto: dict[str, Any],
    gpus: int,
    net: dict[str, float],
    sizes: tuple[int, int, int],
    measured: tuple[float, str] | None = None,
) -> dict[str, Any]:
    """A retraining under ``proto`` (epochs, batch_size, accumulate, eval_every): ``sizes`` =
    (train images, test images, side); ``measured`` = (ms of a full step, its label), else
    extrapolated from the network's MACs."""
    n_train, n_test, side = sizes
    batch, accumulate = proto["batch_size"], proto.get("accumulate", 1)
    step_ms, speed = measured or extrapolated_ms(net["macs"], batch)
    steps = math.ceil(n_train / batch)
    evals = math.ceil(proto["epochs"] / proto.get("eval_every", 1))
    test_ms = evals * n_test / batch * step_ms * speeds()["valid_fraction"]
    micro = batch // gpus // accumulate
    batch_bytes = batch // gpus * 3 * side**2 * BYTES_FLOAT
    return _row(
        stage,
        name,
        seeds,
        epochs=proto["epochs"],
        steps_per_epoch=steps,
        gpus=gpus,
        batch_per_gpu=f"{micro} x {accumulate}" if accumulate > 1 else str(micro),
        gpu_hours_per_seed=_hours(proto["epochs"] * steps, step_ms) + test_ms / 3.6e6,
        peak=memory.peak_bytes(net, micro, data_bytes=batch_bytes),
        speed=speed,
    )


def retrain_rows(config: dict[str, Any]) -> list[dict[str, Any]]:
    """CIFAR-10 retraining of each listed search's genotypes (one per seed)."""
    block, ref = config["retrain"], speeds()["retrain"]
    proto = block["protocol"]
    network = {**block["network"], "num_classes": 10}
    net = memory.measure("darts_cifar", {"network": network, "genotype": "worst"}, CIFAR_SIDE)
    step_ms = ref["train_step_ms"] * proto["batch_size"] / ref["batch_size"]
    speed = f"measured ({speeds()['device']}, DARTS-V2 genotype, TF32 on)"
    if block["network"] != ref["network"]:
        at = memory.macs(
            "darts_cifar",
            {"network": {**ref["network"], "num_classes": 10}, "genotype": "worst"},
            CIFAR_SIDE,
        )
        step_ms *= net["macs"] / at["macs"]
        speed = f"extrapolated: MACs ratio to the step measured at {ref['network']}"
    sizes = (proto["train_size"] or CIFAR_TRAIN, proto["test_size"] or CIFAR_TEST, CIFAR_SIDE)
    rows = []
    for name in block["searches"]:
        row = _protocol_row(
            "retrain",
            name,
            config["searches"][name]["seeds"],
            proto,
            block["gpus"],
            net,
            sizes,
            (step_ms, speed),
        )
        row["peak"] += (CIFAR_TRAIN + CIFAR_TEST) * 3 * CIFAR_SIDE**2  # images held on the GPU
        rows.append(row)
    return rows


def estimate(config: dict[str, Any]) -> pd.DataFrame:
    """One row per experiment and stage (total over seeds), peak memory and whether it fits."""
    rows = [search_row(name, spec) for name, spec in config["searches"].items()]
    rows += retrain_rows(config) if config["retrain"]["searches"] else []
    rows += imagenet_rows(config) + ranking_rows(config) + [cpu_row(config)]
    df = pd.DataFrame(rows)
    df["seeds"] = df["seed_list"].map(len)
    df["gpu_hours"] = df["gpu_hours_per_seed"] * df["seeds"]
    df["peak_gib"] = df["peak"] / memory.GIB
    limit = config.get("gpu_memory_gib")
    df["fits"] = df["peak_gib"].map(
        lambda p: "-" if pd.isna(p) or limit is None else ("yes" if p <= limit else "NO")
    )
    return df


def cpu_row(config: dict[str, Any]) -> dict[str, Any]:
    """The stages that need no GPU, named so that the estimate covers the whole config."""
    names = ["bound"] + [f"generate {name}" for name in config["generate"]] + ["tables, figures"]
    return _row("cpu", ", ".join(names), [0], gpu_hours_per_seed=0.0, speed="CPU only, no GPU")


def check_memory(df: pd.DataFrame, limit: float | None) -> None:
    """Refuse, in one line, a config with a job whose peak exceeds ``limit`` GiB per GPU."""
    if limit is None:
        return
    over = df[df["peak_gib"] > limit]
    if len(over):
        jobs = ", ".join(
            f"{r.stage} {r.experiment} ({r.peak_gib:.1f} GiB at batch {r.batch_per_gpu} per GPU)"
            for r in over.itertuples()
        )
        raise ConfigError(
            f"{jobs} cannot fit gpu_memory_gib {limit:g}: raise the protocol's accumulate (or "
            "gpus), lower batch_size or search_resolution, or set gpu_memory_gib to a larger GPU"
        )


def results_dir(config: dict[str, Any], config_path: str | Path) -> str:
    """Where the pipeline writes this config's outputs (as the Snakefile decides)."""
    return config.get("results_dir") or f"results/{Path(config_path).stem}"


def _imagenet_sizes(block: dict[str, Any]) -> tuple[int, int, int]:
    """(train images, val images, classes): ImageNet's, or the stand-in's."""
    standin = block["standin"]
    if standin["enabled"]:
        classes = 10  # CIFAR-10's (ddpnas.data.imagenet.CIFAR_WNIDS)
        return standin["train_per_class"] * classes, standin["val_per_class"] * classes, classes
    return IMAGENET_TRAIN, IMAGENET_VAL, IMAGENET_CLASSES


def _imagenet_search_row(block: dict[str, Any], n_images: int, classes: int) -> dict[str, Any]:
    """The mobile-space search on ImageNet's search split, images held on the GPU, plus the
    one-off parallel decode before its first epoch."""
    spec = block["search"]
    side = block["search_resolution"] or block["resolution"]
    held = block["held_out"]
    n_train = spec["train"]["train_size"] or n_images - held
    n_valid = spec["train"]["valid_size"] or held
    data = (n_train + n_valid) * 3 * side**2 * BYTES_UINT8
    row = _weight_sharing_row(
        "imagenet search", "mobile", spec, n_train, n_valid, side, classes, data
    )
    rates = speeds()["imagenet_data"]
    workers = max(1, block["workers"])
    decode_h = (n_train + n_valid) / (rates["decode_per_worker"] * workers) / 3600
    row["gpu_hours_per_seed"] += decode_h
    row["speed"] += (
        f"; + {decode_h:.2g} h decoding at {side} px ({workers} workers, extrapolated from "
        f"bench_imagenet_data.py on {rates['device']}; once, a restart maps the cache)"
    )
    return row


def _input_bound(row: dict[str, Any], block: dict[str, Any], n_train: int) -> dict[str, Any]:
    """An epoch cannot be faster than the CPU DataLoader delivers images (measured per worker,
    times the configured workers); the GPU decoder (``gpu_decode``) was not measured."""
    rates = speeds()["imagenet_data"]
    if block["gpu_decode"] is not False:
        row["speed"] += "; input: nvJPEG on the GPU (not measured)"
        return row
    epoch_h = n_train / (rates["stream_per_worker"] * max(1, block["workers"])) / 3600
    floor = epoch_h * row["epochs"]
    if floor > row["gpu_hours_per_seed"]:
        row["gpu_hours_per_seed"] = floor
        row["speed"] = (
            f"input-bound: {block['workers']} DataLoader workers at "
            f"{rates['stream_per_worker']:.0f} img/s each (bench_imagenet_data.py on "
            f"{rates['device']}, extrapolated)"
        )
    return row


def _protocol(stage: dict[str, Any], default: str) -> dict[str, Any]:
    import dataclasses

    from ddpnas.retrain.imagenet import protocol

    chosen = stage.get("protocol", {"name": default})
    return dataclasses.asdict(protocol(chosen["name"], chosen.get("overrides", {}), seed=0))


def _generated(config: dict[str, Any]) -> list[tuple[str, dict[str, float], list[int]]]:
    """(name, budgets, seeds) of every network generated on the ImageNet search and retrained."""
    seeds = config["imagenet"]["search"]["seeds"]
    return [
        (f"{name}-net{i}", budgets, [entry["seed"]] if entry.get("seed") is not None else seeds)
        for name, entry in config["generate"].items()
        if entry["experiment"] == "imagenet"
        for i, budgets in enumerate(entry.get("retrain", []))
    ]


def _mobile_rows(config: dict[str, Any], sizes: tuple[int, int, int], classes: int) -> list:
    """Retraining of the searched mobile network and of the networks generated from its theta
    (measured at the space's largest network; a generated one under a MACs budget at that)."""
    block = config["imagenet"]
    proto = _protocol(block["retrain"], "ddpnas_v1")
    network = {**block["retrain"]["network"], "num_classes": classes}
    net = memory.measure("mobile", {"network": network}, sizes[2])
    seeds = block["search"]["seeds"]
    rows = [_protocol_row("imagenet retrain", "mobile", seeds, proto, 1, net, sizes)]
    for name, budgets, net_seeds in _generated(config):
        sized = {**net, "macs": min(net["macs"], budgets.get("macs", math.inf))}
        rows.append(_protocol_row("imagenet generated", name, net_seeds, proto, 1, sized, sizes))
    return rows


def _transfer_rows(config: dict[str, Any], sizes: tuple[int, int, int], classes: int) -> list:
    """DARTS-space cells retrained on ImageNet (measured at the largest cell)."""
    transfer = config["imagenet"]["transfer"]
    proto = _protocol(transfer, "darts_imagenet")
    network = {**transfer["network"], "num_classes": classes}
    net = memory.measure("darts_imagenet", {"network": network}, sizes[2])
    return [
        _protocol_row(
            "imagenet transfer", name, config["searches"][name]["seeds"], proto, 1, net, sizes
        )
        for name in transfer["searches"]
    ]


def imagenet_rows(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The ImageNet stage: search, retraining of the searched and generated networks, and the
    transferred DARTS cells (one GPU each, at the protocol's batch)."""
    block = config["imagenet"]
    if not block["enabled"]:
        return []
    n_train, n_val, classes = _imagenet_sizes(block)
    sizes = (n_train, n_val, block["resolution"])
    rows = []
    if "search" in block:
        rows.append(_imagenet_search_row(block, n_train, classes))
        rows += [_input_bound(r, block, n_train) for r in _mobile_rows(config, sizes, classes)]
    rows += [_input_bound(r, block, n_train) for r in _transfer_rows(config, sizes, classes)]
    return rows


def ranking_rows(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The supernet ranking check: single-path forwards of each sampled and visited cell (at
    most 2 x cells) over the validation split, with the figure seed's supernet."""
    ranking, figure_seed = config["report"]["ranking"], config["report"]["figure_seed"]
    fraction = speeds()["valid_fraction"]
    rows = []
    for name in ranking["experiments"]:
        spec = config["searches"][name]
        seed = figure_seed if figure_seed in spec["seeds"] else spec["seeds"][0]
        # a cell is scored along one path, whatever the strategy: time a single-path search step
        single = {**spec, "strategy": "ddpnas", "strategy_args": {}}
        search = search_row(name, single)
        step_ms = search["step_ms"] * fraction
        images = 2 * ranking["cells"] * (spec["train"]["valid_size"] or SPLIT)
        hours = _hours(images / spec["train"]["batch_size"], step_ms)
        speed = f"extrapolated: a forward is {fraction} of a single-path step, {search['speed']}"
        rows.append(
            _row(
                "ranking",
                name,
                [seed],
                gpus=1,
                batch_per_gpu="256 (inference)",
                gpu_hours_per_seed=hours,
                peak=search["peak"],
                speed=speed,
            )
        )
    return rows


def _pick(df: pd.DataFrame, stage: str, names: list[str], first_seed: bool = False) -> list:
    """(row, seeds) of ``stage`` rows of ``names``: all their seeds, or only the first."""
    rows = df[(df["stage"] == stage) & df["experiment"].isin(names)]
    return [(r, r["seed_list"][:1] if first_seed else r["seed_list"]) for _, r in rows.iterrows()]


Subset = tuple[str, str, list, list[str]]  # name, what it reproduces, [(row, seeds)], targets


def _subsets(df: pd.DataFrame, config: dict[str, Any], res: str) -> list[Subset]:
    """(subset, what it reproduces, [(row, seeds)], Snakemake targets) of the paper plan."""
    return (
        _nb201_subsets(df, config, res)
        + _cifar_subsets(df, config, res)
        + _imagenet_subsets(df, config, res)
    )


def _records(searches: dict[str, Any], names: list[str], res: str) -> list[str]:
    """Search records that make Snakemake run every seed of ``names``: one per tabular
    experiment (a single job writes all its seeds), every seed's otherwise."""
    return [
        f"{res}/search/{n}/seed{s}.json"
        for n in names
        for s in searches[n]["seeds"][: 1 if searches[n]["mode"] == "tabular" else None]
    ]


def _nb201_subsets(df: pd.DataFrame, config: dict[str, Any], res: str) -> list[Subset]:
    searches = config["searches"]
    nb201 = [n for n, s in searches.items() if s["space"] == "nb201"]
    ours = [n for n in nb201 if searches[n]["strategy"] == "ddpnas"]
    first = [n for n in ours if searches[n]["mode"] == "weight_sharing"][:1]
    plan: list[Subset] = []
    if first:
        seed = searches[first[0]]["seeds"][0]
        plan.append(
            (
                "first run: DDPNAS with weight sharing on NAS-Bench-201, one seed",
                "one run of the DDPNAS (weight sharing) row of the NAS-Bench-201 table",
                _pick(df, "search", first, True),
                [f"{res}/search/{first[0]}/seed{seed}.json"],
            )
        )
        plan.append(
            (
                "DDPNAS on NAS-Bench-201, every seed (tabular ones on the CPU)",
                "the DDPNAS rows of the NAS-Bench-201 table",
                _pick(df, "search", ours),
                _records(searches, ours, res),
            )
        )
    if nb201:
        plan.append(
            (
                "NAS-Bench-201 rows (every method and seed)",
                "NAS-Bench-201's searched results (Dong & Yang, ICLR 2020)",
                _pick(df, "search", nb201),
                [f"{res}/tables/nb201.md"],
            )
        )
    ranking = _pick(df, "ranking", list(config["report"]["ranking"]["experiments"]))
    if ranking:
        searched = {r["experiment"]: seeds for r, seeds in ranking}
        pairs = ranking + [
            (r, searched[r["experiment"]]) for r, _ in _pick(df, "search", list(searched))
        ]
        plan.append(
            (
                "supernet ranking check",
                "none published (evidence for the method)",
                pairs,
                [f"{res}/tables/nb201_ranking.md"],
            )
        )
    return plan


def _cifar_subsets(df: pd.DataFrame, config: dict[str, Any], res: str) -> list[Subset]:
    darts, searches = list(config["retrain"]["searches"]), config["searches"]

    def one_seed(names: list[str]) -> tuple[list, list[str]]:
        picks = _pick(df, "search", names, True) + _pick(df, "retrain", names, True)
        targets = [f"{res}/retrain/{n}/seed{searches[n]['seeds'][0]}/result.json" for n in names]
        return picks, targets

    plan: list[Subset] = []
    ours = [n for n in darts if searches[n]["strategy"] == "ddpnas"][:1]
    if ours:
        plan.append(
            (
                "DDPNAS on CIFAR-10, one seed: search and 600-epoch retraining",
                "one run of the DDPNAS row of DDPNAS Table 1 (CIFAR-10)",
                *one_seed(ours),
            )
        )
    if darts:
        every = _pick(df, "search", darts) + _pick(df, "retrain", darts)
        plan.append(
            (
                "CIFAR-10 column, one seed per method",
                "DDPNAS Table 1 (CIFAR-10), one run each",
                *one_seed(darts),
            )
        )
        plan.append(
            (
                "CIFAR-10 table, every seed",
                "DDPNAS Table 1 (CIFAR-10)",
                every,
                [f"{res}/tables/cifar10.md"],
            )
        )
    return plan


def _imagenet_subsets(df: pd.DataFrame, config: dict[str, Any], res: str) -> list[Subset]:
    block = config["imagenet"]
    if not block["enabled"]:
        return []
    plan: list[Subset] = []
    if "search" in block:
        seeds = block["search"]["seeds"]
        plan.append(
            (
                "ImageNet mobile setting: search and retraining of the searched network",
                "DDPNAS Table 3 (ImageNet, mobile setting)",
                _pick(df, "imagenet search", ["mobile"])
                + _pick(df, "imagenet retrain", ["mobile"]),
                [f"{res}/imagenet/retrain/mobile/seed{s}/result.json" for s in seeds],
            )
        )
        generated = df[df["stage"] == "imagenet generated"]
        if len(generated):
            plan.append(
                (
                    "networks generated under budgets from the ImageNet search, retrained",
                    "DDPNAS's constraint-aware generation (no published table)",
                    _pick(df, "imagenet search", ["mobile"])
                    + [(r, r["seed_list"]) for _, r in generated.iterrows()],
                    [
                        f"{res}/imagenet/retrain/{r['experiment']}/seed{s}/result.json"
                        for _, r in generated.iterrows()
                        for s in r["seed_list"]
                    ],
                )
            )
    names = list(block["transfer"]["searches"])
    if names:
        searches = config["searches"]
        plan.append(
            (
                "ImageNet transfer of the CIFAR-10 cells",
                "DDPNAS Table 2 (CIFAR-10 cell on ImageNet)",
                _pick(df, "search", names) + _pick(df, "imagenet transfer", names),
                [
                    f"{res}/imagenet/transfer/{n}/seed{s}/result.json"
                    for n in names
                    for s in searches[n]["seeds"]
                ],
            )
        )
    return plan


def plan(df: pd.DataFrame, config: dict[str, Any], config_path: str | Path) -> pd.DataFrame:
    """Subsets of the config, what each reproduces, its GPU-hours and the Snakemake targets that
    run it (and only it, with what it needs)."""
    res = results_dir(config, config_path)
    rows = []
    for subset, reproduces, picks, targets in _subsets(df, config, res):
        hours = sum(r["gpu_hours_per_seed"] * len(seeds) for r, seeds in picks)
        rows.append(
            {
                "subset": subset,
                "reproduces": reproduces,
                "gpu_hours": hours,
                "targets": " ".join(targets),
            }
        )
    rows.append(
        {
            "subset": "everything",
            "reproduces": "every table of the config",
            "gpu_hours": float(df["gpu_hours"].sum()),
            "targets": "(default target: all)",
        }
    )
    return pd.DataFrame(rows)


def estimate_text(df: pd.DataFrame, config: dict[str, Any], config_path: str | Path) -> str:
    """The jobs table, totals, the memory model and the paper plan, as Markdown."""
    s, limit = speeds(), config.get("gpu_memory_gib")
    shown = pd.DataFrame(
        {
            "stage": df["stage"],
            "experiment": df["experiment"],
            "seeds": df["seeds"],
            "epochs": df["epochs"].map(_count),
            "steps/epoch": df["steps_per_epoch"].map(_count),
            "GPUs": df["gpus"].map(_count),
            "batch per GPU": df["batch_per_gpu"].fillna("-"),
            "GPU-h per seed": df["gpu_hours_per_seed"].map(lambda h: f"{h:.3g}"),
            "GPU-h": df["gpu_hours"].map(lambda h: f"{h:.3g}"),
            "peak GiB per GPU": df["peak_gib"].map(lambda g: "-" if pd.isna(g) else f"{g:.1f}"),
            "fits": df["fits"],
            "time from": df["speed"],
        }
    )
    totals = df.groupby("stage", sort=False)["gpu_hours"].sum()
    steps = plan(df, config, config_path)
    steps["gpu_hours"] = steps["gpu_hours"].map(lambda h: f"{h:.3g}")
    fits = "not checked (no gpu_memory_gib)" if limit is None else f"checked against {limit:g} GiB"
    return "\n".join(
        [
            f"Estimated GPU-hours and peak memory of {config_path}. Time: per-step speeds measured "
            f"on one {s['device']} (torch {s['torch']}; ddpnas/report/speeds.yaml), scaled or "
            "extrapolated as each row's 'time from' says. Memory per GPU: activations measured per "
            f"image on the CPU ({memory.cpu_name()}) + weights, gradients and momentum "
            f"+ {memory.CONTEXT_GIB:g} GiB context, activations x {memory.MARGIN:g} (assumed, not "
            f"calibrated on a GPU); searched/generated networks at the space's largest; {fits}.",
            "",
            shown.to_markdown(index=False),
            "",
            *(f"- {stage}: {hours:.3g} GPU-hours" for stage, hours in totals.items()),
            f"- total: {df['gpu_hours'].sum():.3g} GPU-hours ({df['gpu_hours'].sum() / 24:.3g} "
            "GPU-days)",
            "",
            "Paper plan: run a subset with `snakemake TARGETS --cores 8 --resources gpu=1 "
            f"gpu_slots=1 --configfile {config_path}` (targets first: the options after them take "
            "several values; Snakemake runs only what the targets need):",
            "",
            steps.rename(columns={"gpu_hours": "GPU-hours"}).to_markdown(index=False),
        ]
    )


def _count(value: Any) -> str:
    return "-" if value is None or pd.isna(value) else f"{value:.0f}"
