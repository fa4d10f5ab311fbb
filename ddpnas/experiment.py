"""Build and run one search experiment (one config block, one seed) and write its record."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from ddpnas.config import validate_search
from ddpnas.data import load_cifar10, nb201_split, resolve_cache_dir, resolve_data_root, subset
from ddpnas.errors import ConfigError
from ddpnas.evaluate import SupernetEvaluator, TabularEvaluator
from ddpnas.nasbench import load_bench
from ddpnas.search import run_search
from ddpnas.spaces import get_space
from ddpnas.strategies import get_strategy
from ddpnas.utils import environment, resolve_device, seed_everything, write_json

# The train/valid split and the small-run subsets are fixed across run seeds and methods, so every
# strategy sees the same images.
SPLIT_SEED = 0


def fingerprint(spec: dict[str, Any], seed: int) -> str:
    """Stable hash of what determines a run's result (not where its files go)."""
    blob = json.dumps({"spec": spec, "seed": seed}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


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
) -> dict[str, Any]:
    """Run one seed of a validated search spec; write the JSON record atomically to ``out``."""
    spec = validate_search(spec, name)
    data = data or {}
    strategy_cls = get_strategy(spec["strategy"])
    if spec["mode"] not in strategy_cls.modes:
        raise ConfigError(
            f"searches.{name}: strategy {spec['strategy']} runs in mode(s) "
            f"{', '.join(strategy_cls.modes)}, not {spec['mode']}"
        )
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device) if spec["mode"] == "weight_sharing" else torch.device("cpu")
    seed_everything(seed)
    space = get_space(spec["space"])
    strategy = strategy_cls(space, mode=spec["mode"], **spec["strategy_args"])
    if spec["mode"] == "tabular":
        bench = load_bench(data=data)
        evaluator: TabularEvaluator | SupernetEvaluator = TabularEvaluator(
            bench, space, seed=seed, **spec["tabular"]
        )
    else:
        train_cfg = dict(spec["train"])
        train_size, valid_size = train_cfg.pop("train_size"), train_cfg.pop("valid_size")
        root = resolve_data_root(data.get("root"))
        train_all, _ = load_cifar10(
            root,
            cache_dir=resolve_cache_dir(data.get("cache")),
            download=data.get("download", True),
        )
        train_idx, valid_idx = nb201_split(train_all.labels, seed=SPLIT_SEED)
        if train_size is not None:
            train_idx = subset(train_idx, train_size, seed=SPLIT_SEED, labels=train_all.labels)
        if valid_size is not None:
            valid_idx = subset(valid_idx, valid_size, seed=SPLIT_SEED, labels=train_all.labels)
        train_set, valid_set = train_all.take(train_idx), train_all.take(valid_idx)
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
        "ops": list(space.ops),
        "edges": list(space.edges),
        "history": outcome.history,
    }
    write_json(out, record)
    return record
