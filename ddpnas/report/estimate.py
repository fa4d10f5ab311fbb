"""GPU-hours a config will take, per stage, from measured per-step speeds (before running it).

The speeds (``speeds.yaml`` beside this file) name the device, script and sizes they were measured
at. The estimate is steps x ms/step: training steps per epoch = train images / batch; the step time
scales linearly with the batch (a GPU-bound assumption); validation batches cost ``valid_fraction``
of a training step. Rows whose network size differs from the measured one are flagged, not scaled.
Tabular searches use no GPU (the table replaces training).
"""

from __future__ import annotations

import math
from functools import cache
from importlib import resources
from typing import Any

import pandas as pd
import yaml

from ddpnas.spaces import get_space
from ddpnas.strategies import get_strategy

SPLIT = 25_000  # images in each half of the 50k CIFAR-10 training set (the search split)
CIFAR_TRAIN, CIFAR_TEST = 50_000, 10_000


@cache
def speeds() -> dict[str, Any]:
    """The measured per-step speeds shipped with the package."""
    return yaml.safe_load(resources.files("ddpnas.report").joinpath("speeds.yaml").read_text())


def search_row(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Estimated GPU-hours of one seed of a search experiment."""
    row: dict[str, Any] = {"stage": "search", "experiment": name, "seeds": len(spec["seeds"])}
    if spec["mode"] == "tabular":
        return {
            **row,
            "epochs": None,
            "steps_per_epoch": None,
            "gpu_hours_per_seed": 0.0,
            "note": "tabular: table lookups, no GPU",
        }
    strategy = get_strategy(spec["strategy"])(
        get_space(spec["space"]), mode=spec["mode"], **spec["strategy_args"]
    )
    measured = speeds()["search"].get(spec["space"], {})
    if strategy.speed_key() not in measured.get("train_step_ms", {}):
        return {
            **row,
            "epochs": None,
            "steps_per_epoch": None,
            "gpu_hours_per_seed": math.nan,
            "note": f"no measured speed for {strategy.speed_key()} on {spec['space']}",
        }
    train = spec["train"]
    n_train = train["train_size"] or SPLIT
    n_valid = train["valid_size"] or SPLIT
    batch = train["batch_size"]
    step_ms = measured["train_step_ms"][strategy.speed_key()] * batch / measured["batch_size"]
    epochs, validated = strategy.search_images(n_valid)
    steps = math.ceil(n_train / batch)
    valid_ms = validated / batch * step_ms * speeds()["valid_fraction"]
    hours = (epochs * steps * step_ms + valid_ms) / 3.6e6
    same = spec["supernet"] == measured["supernet"]
    note = "size as measured" if same else f"measured at {measured['supernet']}: not scaled"
    return {
        **row,
        "epochs": epochs,
        "steps_per_epoch": steps,
        "gpu_hours_per_seed": hours,
        "note": note,
    }


def retrain_rows(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Estimated GPU-hours of retraining each listed search's genotypes (one per seed)."""
    block = config["retrain"]
    measured = speeds()["retrain"]
    proto = block["protocol"]
    batch = proto["batch_size"]
    step_ms = measured["train_step_ms"] * batch / measured["batch_size"]
    steps = math.ceil((proto["train_size"] or CIFAR_TRAIN) / batch)
    evals = proto["epochs"] // proto["eval_every"]
    test_ms = (
        evals * (proto["test_size"] or CIFAR_TEST) / batch * step_ms * speeds()["valid_fraction"]
    )
    hours = (proto["epochs"] * steps * step_ms + test_ms) / 3.6e6
    same = block["network"] == measured["network"]
    note = "size as measured" if same else f"measured at {measured['network']}: not scaled"
    if block["gpus"] > 1:
        note += f"; {block['gpus']} GPUs per job (GPU-hours assume linear scaling)"
    return [
        {
            "stage": "retrain",
            "experiment": name,
            "seeds": len(config["searches"][name]["seeds"]),
            "epochs": proto["epochs"],
            "steps_per_epoch": steps,
            "gpu_hours_per_seed": hours,
            "note": note,
        }
        for name in block["searches"]
    ]


def estimate(config: dict[str, Any]) -> pd.DataFrame:
    """One row per experiment and stage, with the total over seeds."""
    rows = [search_row(name, spec) for name, spec in config["searches"].items()]
    rows += retrain_rows(config)
    df = pd.DataFrame(rows)
    df["gpu_hours"] = df["gpu_hours_per_seed"] * df["seeds"]
    return df


def estimate_text(df: pd.DataFrame, config_name: str) -> str:
    """Markdown table plus per-stage totals, naming the speeds' device and provenance."""
    s = speeds()
    shown = df.assign(
        epochs=df["epochs"].map(lambda e: "-" if pd.isna(e) else f"{e:.0f}"),
        steps_per_epoch=df["steps_per_epoch"].map(lambda e: "-" if pd.isna(e) else f"{e:.0f}"),
        gpu_hours_per_seed=df["gpu_hours_per_seed"].map(
            lambda h: "?" if pd.isna(h) else f"{h:.3g}"
        ),
        gpu_hours=df["gpu_hours"].map(lambda h: "?" if pd.isna(h) else f"{h:.3g}"),
    )
    totals = df.groupby("stage", sort=False)["gpu_hours"].sum()
    lines = [
        f"Estimated GPU-hours of {config_name} on one {s['device']} (torch {s['torch']}), from "
        "the measured per-step speeds in ddpnas/report/speeds.yaml:",
        "",
        shown.to_markdown(index=False),
        "",
        *(f"- {stage}: {hours:.3g} GPU-hours" for stage, hours in totals.items()),
        f"- total: {df['gpu_hours'].sum():.3g} GPU-hours ({df['gpu_hours'].sum() / 24:.3g} "
        "GPU-days)",
    ]
    unknown = df[df["gpu_hours"].isna()]
    if len(unknown):
        lines.append(
            f"- not included: {', '.join(unknown['experiment'])} (no measured speed; see notes)"
        )
    return "\n".join(lines)
