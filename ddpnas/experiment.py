"""Build and run one search experiment (one config block, one seed) and write its record."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from ddpnas.config import validate_search
from ddpnas.data import (
    ImageSet,
    load_cifar10,
    nb201_split,
    resolve_cache_dir,
    resolve_data_root,
    subset,
)
from ddpnas.errors import ConfigError
from ddpnas.evaluate import SupernetEvaluator, TabularEvaluator
from ddpnas.nasbench import load_bench
from ddpnas.search import run_search
from ddpnas.spaces import get_space
from ddpnas.strategies import get_strategy
from ddpnas.utils import (
    environment,
    resolve_device,
    run_cost,
    save_checkpoint,
    seed_everything,
    write_json,
)

# The train/valid split and the small-run subsets are fixed across run seeds and methods, so every
# strategy sees the same images.
SPLIT_SEED = 0
# Layout of the file ``--supernet-out`` writes; bump when it changes.
SUPERNET_VERSION = 1


def nb201_source(data: dict[str, Any]) -> str | None:
    """NAS-Bench-201 location from the config: explicit, else <root>/nasbench201 when present."""
    if data.get("nb201"):
        return data["nb201"]
    root = resolve_data_root(data.get("root"))
    if root is not None and (root / "nasbench201").exists():
        return str(root / "nasbench201")
    return None


def fingerprint(spec: dict[str, Any], seed: int) -> str:
    """Stable hash of what determines a run's result (not where its files go)."""
    blob = json.dumps({"spec": spec, "seed": seed}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


SIZE_KEYS = ("train_size", "valid_size")


def search_split(spec: dict[str, Any], data: dict[str, Any]) -> tuple[ImageSet, ImageSet]:
    """The train/valid images of a weight-sharing search (the same for every seed and method)."""
    train_all, _ = load_cifar10(
        resolve_data_root(data.get("root")),
        cache_dir=resolve_cache_dir(data.get("cache")),
        download=data.get("download", True),
    )
    train_idx, valid_idx = nb201_split(train_all.labels, seed=SPLIT_SEED)
    train_size, valid_size = (spec["train"][k] for k in SIZE_KEYS)
    if train_size is not None:
        train_idx = subset(train_idx, train_size, seed=SPLIT_SEED, labels=train_all.labels)
    if valid_size is not None:
        valid_idx = subset(valid_idx, valid_size, seed=SPLIT_SEED, labels=train_all.labels)
    return train_all.take(train_idx), train_all.take(valid_idx)


def save_supernet(path: str | Path, name: str, spec: dict[str, Any], seed: int, model: Any) -> None:
    """The final shared weights of a search, atomically, tagged with the run they belong to."""
    save_checkpoint(
        path,
        {
            "version": SUPERNET_VERSION,
            "fingerprint": fingerprint(spec, seed),
            "experiment": name,
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        },
    )


def run_experiment(
    name: str,
    spec: dict[str, Any],
    *,
    seed: int,
    out: str | Path,
    checkpoint: str | Path | None = None,
    data: dict[str, Any] | None = None,
    device: str = "auto",
    threads: int | None = None,
    progress: bool | None = None,
    supernet_out: str | Path | None = None,
) -> dict[str, Any]:
    """Run one seed of a validated search spec; write the JSON record atomically to ``out``.

    ``supernet_out`` (weight sharing only) receives the final supernet weights, so the shared
    weights can be validated after the search (``ddpnas report ranking``).
    """
    spec = validate_search(spec, name)
    data = data or {}
    strategy_cls = get_strategy(spec["strategy"])
    if spec["mode"] not in strategy_cls.modes:
        raise ConfigError(
            f"searches.{name}: strategy {spec['strategy']} runs in mode(s) "
            f"{', '.join(strategy_cls.modes)}, not {spec['mode']}"
        )
    if supernet_out is not None and spec["mode"] != "weight_sharing":
        raise ConfigError(f"searches.{name} runs in {spec['mode']} mode: it has no supernet")
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device) if spec["mode"] == "weight_sharing" else torch.device("cpu")
    seed_everything(seed)
    space = get_space(spec["space"])
    strategy = strategy_cls(space, mode=spec["mode"], **spec["strategy_args"])
    if spec["mode"] == "tabular":
        bench = load_bench(nb201_source(data))
        evaluator: TabularEvaluator | SupernetEvaluator = TabularEvaluator(
            bench, space, seed=seed, **spec["tabular"]
        )
    else:
        train_cfg = {k: v for k, v in spec["train"].items() if k not in SIZE_KEYS}
        train_set, valid_set = search_split(spec, data)
        model = space.supernet(**spec["supernet"], num_classes=10)
        evaluator = SupernetEvaluator(
            model, train_set, valid_set, epochs=strategy.planned_epochs(), device=dev, **train_cfg
        )
    outcome = run_search(
        strategy,
        evaluator,
        seed=seed,
        checkpoint=checkpoint,
        fingerprint=fingerprint(spec, seed),
        progress=progress,
    )
    record = {
        "experiment": name,
        "label": spec.get("label") or f"{spec['strategy']} ({spec['mode']})",
        "space": spec["space"],
        "strategy": spec["strategy"],
        "mode": spec["mode"],
        "seed": seed,
        "spec": spec,
        "arch": space.arch_to_str(outcome.arch),
        **space.derived(outcome.arch, *strategy.preferences()),
        "epochs": outcome.epochs,
        "search_seconds": outcome.wall_seconds,
        "simulated_seconds": outcome.simulated_seconds,
        "resumed_from_epoch": outcome.resumed_from,
        "environment": environment(dev),
        "cost": run_cost(dev),
        "ops": list(space.ops),
        "edges": list(space.edges),
        "history": outcome.history,
    }
    if supernet_out is not None:
        assert isinstance(evaluator, SupernetEvaluator)
        save_supernet(supernet_out, name, spec, seed, evaluator.model)
    write_json(out, record)
    return record
