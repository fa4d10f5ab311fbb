"""Build and run one search experiment (one config block; one seed, or many) and write records."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ddpnas.config.load import validate_search
from ddpnas.data.cifar10 import (
    CANONICAL,
    ImageSet,
    load_cifar10,
    nb201_split,
    read_nb201_split,
    subset,
)
from ddpnas.data.locations import nb201_split_file, resolve_cache_dir, resolve_data_root
from ddpnas.engine.evaluators import SupernetEvaluator, TabularEvaluator
from ddpnas.engine.loop import SearchOutcome, run_search
from ddpnas.errors import ConfigError, DDPNASError
from ddpnas.io.checkpoints import save_checkpoint
from ddpnas.io.files import write_json
from ddpnas.io.progress import tracked
from ddpnas.nasbench.files import load_bench
from ddpnas.nasbench.table import NB201Bench
from ddpnas.runtime import (
    environment,
    resolve_device,
    run_cost,
    runtime_fingerprint,
    seed_everything,
)
from ddpnas.spaces import get_space
from ddpnas.spaces.base import SearchSpace
from ddpnas.strategies import get_strategy
from ddpnas.strategies.base import Strategy, decisiveness

# The train/valid split and the small-run subsets are fixed across run seeds and methods, so every
# strategy sees the same images.
SPLIT_SEED = 0
# Layout of the file ``--supernet-out`` writes; bump when it changes.
SUPERNET_VERSION = 1
SIZE_KEYS = ("train_size", "valid_size")
# How a too-large size is named: the key, and the split it takes from.
TRAIN_SIZE = "train.train_size (the supernet-training half of the NAS-Bench-201 split)"
VALID_SIZE = "train.valid_size (the validation half of the NAS-Bench-201 split)"


def config_hash(spec: dict[str, Any], seed: int) -> str:
    """Stable hash of the config and seed of a run (not where its files go)."""
    blob = json.dumps({"spec": spec, "seed": seed}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def fingerprint(spec: dict[str, Any], seed: int, device: torch.device) -> dict[str, Any]:
    """What determines a run's result: config and seed, as a stable hash, plus the runtime
    (threads, CPU capability, device, torch) by name so that a refused resume can say what
    differs."""
    return {"config": config_hash(spec, seed), **runtime_fingerprint(device)}


def search_split(spec: dict[str, Any], data: dict[str, Any]) -> tuple[ImageSet, ImageSet]:
    """The train/valid images of a weight-sharing search (the same for every seed and method)."""
    train, valid, _ = search_data(spec, data)
    return train, valid


def search_data(
    spec: dict[str, Any], data: dict[str, Any]
) -> tuple[ImageSet, ImageSet, dict[str, Any]]:
    """(train, valid, split) of a weight-sharing search; ``split`` names the split for records.

    On CIFAR-10's canonical release with NAS-Bench-201's official ``cifar-split.txt`` at hand,
    the official cifar10-valid halves; otherwise (a JPEG copy stored per class, whose order the
    official indices do not refer to, or no split file) the seeded stratified halves.
    """
    train_all, _ = load_cifar10(
        resolve_data_root(data.get("root")),
        cache_dir=resolve_cache_dir(data.get("cache")),
        download=data.get("download", True),
    )
    split_file = nb201_split_file(data)
    if train_all.origin == CANONICAL and split_file is not None:
        train_idx, valid_idx = read_nb201_split(split_file, len(train_all))
        split = {"name": "cifar10-valid (NAS-Bench-201 official)", "file": split_file.name}
    else:
        train_idx, valid_idx = nb201_split(train_all.labels, seed=SPLIT_SEED)
        why = (
            "no official cifar-split.txt found (set data.nb201_split)"
            if train_all.origin == CANONICAL
            else "not the canonical CIFAR-10 release, which the official index lists refer to"
        )
        split = {"name": f"stratified 25k/25k halves, seed {SPLIT_SEED} (not official: {why})"}
    train_size, valid_size = (spec["train"][k] for k in SIZE_KEYS)
    labels = train_all.labels
    if train_size is not None:
        train_idx = subset(train_idx, train_size, SPLIT_SEED, labels=labels, what=TRAIN_SIZE)
    if valid_size is not None:
        valid_idx = subset(valid_idx, valid_size, SPLIT_SEED, labels=labels, what=VALID_SIZE)
    return train_all.take(train_idx), train_all.take(valid_idx), split


def save_supernet(path: str | Path, name: str, spec: dict[str, Any], seed: int, model: Any) -> None:
    """The final shared weights of a search, atomically, tagged with the run they belong to."""
    save_checkpoint(
        path,
        {
            "version": SUPERNET_VERSION,
            "fingerprint": config_hash(spec, seed),
            "experiment": name,
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        },
    )


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
    stale_checkpoint: str = "error",
    data: dict[str, Any] | None = None,
    device: str = "auto",
    threads: int | None = None,
    progress: bool | None = None,
    datasets: tuple[ImageSet, ImageSet] | None = None,
    record_extra: dict[str, Any] | None = None,
    supernet_out: str | Path | None = None,
) -> dict[str, Any]:
    """Run one seed of a validated search spec; write the JSON record atomically to ``out``.

    Weight-sharing searches train on CIFAR-10's NAS-Bench-201 split unless ``datasets`` gives
    the (train, valid) images (e.g. ImageNet's search split); ``record_extra`` adds record keys.
    ``supernet_out`` (weight sharing only) receives the final supernet weights, so the shared
    weights can be validated after the search (``ddpnas report ranking``).
    """
    record = search_record(
        name,
        spec,
        seed=seed,
        checkpoint=checkpoint,
        stale_checkpoint=stale_checkpoint,
        data=data,
        device=device,
        threads=threads,
        progress=progress,
        datasets=datasets,
        record_extra=record_extra,
        supernet_out=supernet_out,
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
    bench = load_bench(data=data or {})
    # milliseconds per seed: progress per seed (a bar, or a status line now and then), not
    # a log line per epoch of each
    records = [
        search_record(
            name, spec, seed=seed, data=data, threads=threads, bench=bench, progress=False
        )
        for seed in tracked(seeds, name, len(seeds), unit="seeds")
    ]
    for path, record in zip(paths, records, strict=True):
        write_json(path, record)
    return records


def _evaluator(
    spec: dict[str, Any],
    space: SearchSpace,
    strategy: Strategy,
    seed: int,
    data: dict[str, Any],
    device: torch.device,
    bench: NB201Bench | None,
    datasets: tuple[ImageSet, ImageSet] | None,
) -> TabularEvaluator | SupernetEvaluator:
    """The table (tabular mode) or a fresh supernet on the search split (weight sharing)."""
    if spec["mode"] == "tabular":
        return TabularEvaluator(bench or load_bench(data=data), space, seed=seed, **spec["tabular"])
    train_cfg = {k: v for k, v in spec["train"].items() if k not in SIZE_KEYS}
    train_set, valid_set = datasets or search_split(spec, data)
    model = space.supernet(**spec["supernet"], num_classes=len(train_set.classes))
    return SupernetEvaluator(
        model, train_set, valid_set, epochs=strategy.planned_epochs(), device=device, **train_cfg
    )


def decision_record(strategy: Strategy) -> dict[str, Any] | None:
    """How decided the final distribution or policy was (None for methods without one)."""
    decision = strategy.decision()
    if decision is None:
        return None
    ops = sorted({int(n) for n in np.asarray(decision.support).sum(axis=1)})
    return {
        "of": decision.of,
        "ops": ops[0] if len(ops) == 1 else ops,
        **decisiveness(decision.probs, decision.support),
    }


def _record(
    name: str,
    spec: dict[str, Any],
    seed: int,
    space: SearchSpace,
    strategy: Strategy,
    outcome: SearchOutcome,
    device: torch.device,
) -> dict[str, Any]:
    """The search record: what was found, how, on what machine, and the whole history."""
    return {
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
        "used_epochs": outcome.used_epochs,
        "used_simulated_seconds": outcome.used_simulated_seconds,
        "decision": decision_record(strategy),
        "resumed_from_epoch": outcome.resumed_from,
        "environment": environment(device),
        "cost": run_cost(device),
        "ops": list(space.ops),
        "edges": list(space.edges),
        "history": outcome.history,
    }


def search_record(
    name: str,
    spec: dict[str, Any],
    *,
    seed: int,
    checkpoint: str | Path | None = None,
    stale_checkpoint: str = "error",
    data: dict[str, Any] | None = None,
    device: str = "auto",
    threads: int | None = None,
    progress: bool | None = None,
    bench: NB201Bench | None = None,
    datasets: tuple[ImageSet, ImageSet] | None = None,
    record_extra: dict[str, Any] | None = None,
    supernet_out: str | Path | None = None,
) -> dict[str, Any]:
    """Run one seed of a search spec and return its record (``bench``: reuse a loaded table)."""
    spec = validate_search(spec, name)
    data = data or {}
    strategy_cls = get_strategy(spec["strategy"])
    if supernet_out is not None and spec["mode"] != "weight_sharing":
        raise ConfigError(f"searches.{name} runs in {spec['mode']} mode: it has no supernet")
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device) if spec["mode"] == "weight_sharing" else torch.device("cpu")
    seed_everything(seed)
    space = get_space(spec["space"])
    strategy = strategy_cls(space, mode=spec["mode"], **spec["strategy_args"])
    split: dict[str, Any] = {}
    if spec["mode"] == "weight_sharing" and datasets is None:
        train_set, valid_set, info = search_data(spec, data)
        datasets, split = (train_set, valid_set), {"split": info}
    evaluator = _evaluator(spec, space, strategy, seed, data, dev, bench, datasets)
    outcome = run_search(
        strategy,
        evaluator,
        seed=seed,
        checkpoint=checkpoint,
        fingerprint=fingerprint(spec, seed, dev),
        stale_checkpoint=stale_checkpoint,
        progress=progress,
    )
    record = {
        **_record(name, spec, seed, space, strategy, outcome, dev),
        **split,
        **(record_extra or {}),
    }
    if supernet_out is not None:
        assert isinstance(evaluator, SupernetEvaluator)
        save_supernet(supernet_out, name, spec, seed, evaluator.model)
    return record
