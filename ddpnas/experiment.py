"""Build and run one search experiment (one config block, one seed) and write its record."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from ddpnas.config import validate_search
from ddpnas.data import ImageSet, load_cifar10, nb201_split, subset
from ddpnas.errors import ConfigError
from ddpnas.evaluate import SupernetEvaluator, TabularEvaluator
from ddpnas.locations import resolve_cache_dir, resolve_data_root
from ddpnas.nasbench import load_bench
from ddpnas.search import run_search
from ddpnas.spaces import get_space
from ddpnas.strategies import get_strategy
from ddpnas.utils import (
    environment,
    resolve_device,
    runtime_fingerprint,
    seed_everything,
    write_json,
)

# The train/valid split and the small-run subsets are fixed across run seeds and methods, so every
# strategy sees the same images.
SPLIT_SEED = 0


def fingerprint(spec: dict[str, Any], seed: int, device: torch.device) -> dict[str, Any]:
    """What determines a run's result (not where its files go): config and seed, as a stable
    hash, plus the runtime (threads, CPU capability, device, torch) by name so that a refused
    resume can say what differs."""
    blob = json.dumps({"spec": spec, "seed": seed}, sort_keys=True)
    return {"config": hashlib.sha256(blob.encode()).hexdigest()[:16], **runtime_fingerprint(device)}


def _cifar10_split(
    data: dict[str, Any], train_size: int | None, valid_size: int | None
) -> tuple[ImageSet, ImageSet]:
    """The NAS-Bench-201 train/valid halves of CIFAR-10's training set (optionally subsets)."""
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
    return train_all.take(train_idx), train_all.take(valid_idx)


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
    datasets: tuple[ImageSet, ImageSet] | None = None,
    record_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run one seed of a validated search spec; write the JSON record atomically to ``out``.

    Weight-sharing searches train on CIFAR-10's NAS-Bench-201 split unless ``datasets`` gives
    the (train, valid) images (e.g. ImageNet's search split); ``record_extra`` adds record keys.
    """
    spec = validate_search(spec, name)
    data = data or {}
    strategy_cls = get_strategy(spec["strategy"])
    if spec["mode"] not in strategy_cls.modes:
        raise ConfigError(
            f"searches.{name}: strategy {spec['strategy']} runs in mode(s) "
            f"{', '.join(strategy_cls.modes)}, not {spec['mode']}"
        )
    if spec["strategy"] == "darts" and spec["space"] == "mobile":
        raise ConfigError(
            f"searches.{name}: DARTS's mixed ops do not fit the mobile space (its 'zero' layers "
            "are skipped, not computed); use ddpnas, enas or rsps there"
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
        if datasets is None:
            train_set, valid_set = _cifar10_split(data, train_size, valid_size)
        else:
            train_set, valid_set = datasets
        model = space.supernet(**spec["supernet"], num_classes=len(train_set.classes))
        evaluator = SupernetEvaluator(
            model, train_set, valid_set, epochs=strategy.planned_epochs(), device=dev, **train_cfg
        )
    outcome = run_search(
        strategy,
        evaluator,
        seed=seed,
        checkpoint=checkpoint,
        fingerprint=fingerprint(spec, seed, dev),
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
        **(record_extra or {}),
    }
    write_json(out, record)
    return record
