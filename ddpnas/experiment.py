"""Build and run one search experiment (one config block; one seed, or many) and write records."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from ddpnas.config import validate_search
from ddpnas.data import load_cifar10, nb201_split, resolve_cache_dir, resolve_data_root, subset
from ddpnas.errors import ConfigError, DDPNASError
from ddpnas.evaluate import SupernetEvaluator, TabularEvaluator
from ddpnas.nasbench import NB201Bench, load_bench
from ddpnas.search import run_search
from ddpnas.spaces import get_space
from ddpnas.strategies import get_strategy
from ddpnas.utils import environment, resolve_device, seed_everything, write_json

# The train/valid split and the small-run subsets are fixed across run seeds and methods, so every
# strategy sees the same images.
SPLIT_SEED = 0


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


def default_label(spec: dict[str, Any]) -> str:
    """Row name of an unlabelled experiment; reward noise in accuracy points (pp)."""
    noise = spec["tabular"]["noise_std"] if spec["mode"] == "tabular" else 0.0
    extra = f", noise {noise:g} pp" if noise else ""
    return f"{spec['strategy']} ({spec['mode']}{extra})"


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
    record = search_record(
        name,
        spec,
        seed=seed,
        checkpoint=checkpoint,
        data=data,
        device=device,
        threads=threads,
        progress=progress,
    )
    write_json(out, record)
    return record


def record_paths(pattern: str, name: str, seeds: list[int]) -> list[Path]:
    """``pattern`` (with ``{seed}``, optionally ``{exp}``) filled in for every seed."""
    if "{seed}" not in pattern:
        raise DDPNASError(f"--out {pattern!r} needs a {{seed}} placeholder for several seeds")
    try:
        paths = [Path(pattern.format(exp=name, seed=seed)) for seed in seeds]
    except (KeyError, IndexError, ValueError) as exc:
        raise DDPNASError(
            f"--out {pattern!r}: only {{exp}} and {{seed}} may be filled in ({exc!r})"
        ) from None
    if len(set(paths)) != len(paths):
        raise DDPNASError(f"--out {pattern!r} maps two seeds to one file; are seeds repeated?")
    return paths


def run_experiment_seeds(
    name: str,
    spec: dict[str, Any],
    *,
    seeds: list[int],
    out: str,
    data: dict[str, Any] | None = None,
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """Every seed of a tabular experiment in this one process, one record per seed.

    Each record is exactly what :func:`run_experiment` writes for that seed (same seeding, a
    fresh strategy and evaluator per seed; only the benchmark is loaded once). Records are
    written, each atomically, only after every seed has finished, so an error leaves none.
    """
    spec = validate_search(spec, name)
    if spec["mode"] != "tabular":
        raise ConfigError(
            f"searches.{name} is a weight-sharing experiment; several seeds in one process are "
            "for tabular experiments (run one seed per job, with a checkpoint)"
        )
    paths = record_paths(out, name, seeds)
    bench = load_bench(nb201_source(data or {}))
    records = [
        search_record(
            name, spec, seed=seed, data=data, threads=threads, bench=bench, progress=False
        )
        for seed in seeds
    ]
    for path, record in zip(paths, records, strict=True):
        write_json(path, record)
    return records


def search_record(
    name: str,
    spec: dict[str, Any],
    *,
    seed: int,
    checkpoint: str | Path | None = None,
    data: dict[str, Any] | None = None,
    device: str = "auto",
    threads: int | None = None,
    progress: bool | None = None,
    bench: NB201Bench | None = None,
) -> dict[str, Any]:
    """Run one seed of a search spec and return its record (``bench``: reuse a loaded table)."""
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
        bench = bench or load_bench(nb201_source(data))
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
        "label": spec.get("label") or default_label(spec),
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
    return record
