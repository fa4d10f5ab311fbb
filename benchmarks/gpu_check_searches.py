"""The parts of the GPU speed check that time whole ``ddpnas search`` processes (C, E, F).

Imported by benchmarks/gpu_check.py (see there); each part fills ``check.figures``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gpu_check_common import PAPER, Check

from ddpnas.config.load import validate_search


def search_spec(name: str, **changes: Any) -> dict[str, Any]:
    spec = json.loads(json.dumps(PAPER["searches"][name]))
    for key, value in changes.items():
        spec[key] = {**spec.get(key, {}), **value}
    return validate_search(spec, name)


def ddpnas_search(
    check: Check, root: Path, spec: dict[str, Any], seed: int, tag: str
) -> subprocess.Popen:
    """Start one ``ddpnas search`` process (the CLI the pipeline calls)."""
    out = check.out / f"{tag}-seed{seed}.json"
    cmd = [
        sys.executable,
        "-m",
        "ddpnas.cli.main",
        "search",
        "--experiment",
        tag,
        "--spec",
        json.dumps(spec),
        "--data",
        json.dumps({"root": str(root), "download": False}),
        "--seed",
        str(seed),
        "--out",
        str(out),
        "--device",
        check.device.type,
        "--threads",
        "2",
    ]
    with (check.out / f"{tag}-seed{seed}.log").open("w") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())


def timed_searches(
    check: Check, root: Path, spec: dict, seeds: list[int], tag: str, timeout: float
) -> tuple[float, list[dict]]:
    """Wall time of ``len(seeds)`` concurrent search processes, and their records."""
    began = time.perf_counter()
    procs = [ddpnas_search(check, root, spec, seed, tag) for seed in seeds]
    for proc in procs:
        try:
            proc.wait(timeout=max(1.0, timeout - (time.perf_counter() - began)))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise RuntimeError(f"{tag} did not finish within {timeout:.0f} s") from None
        if proc.returncode:
            raise RuntimeError(f"{tag} exited {proc.returncode}; see {check.out}/{tag}-seed*.log")
    wall = time.perf_counter() - began
    return wall, [json.loads((check.out / f"{tag}-seed{s}.json").read_text()) for s in seeds]


def part_nb201_search(check: Check, root: Path) -> None:
    """C: the NB201 weight-sharing DDPNAS search at paper scale, end to end, captured."""
    sizes = {"train_size": check.split, "valid_size": check.split}
    spec = search_spec(
        "nb201-ddpnas-ws",
        supernet=check.nb201,
        strategy_args=check.schedule,
        train={**sizes, "cuda_graphs": True},
    )
    wall, (record,) = timed_searches(
        check, root, spec, [0], "nb201-paper", max(60, check.left() - 200)
    )
    images = record["epochs"] * 2 * (check.split or 25_000)
    check.figures["nb201_search"] = {
        "process_wall_s": wall,
        "search_s": record["search_seconds"],
        "epochs": record["epochs"],
        "images_per_s": images / record["search_seconds"],
        "goal_s": 180,
    }
    search_s = record["search_seconds"]
    print(f"   {record['epochs']} epochs: process wall {wall:.1f} s (goal <= 180 s; search loop")
    print(f"   {search_s:.1f} s), {images / search_s:.0f} images/s (train + valid)")


def part_short_and_shared(check: Check, root: Path) -> None:
    """E and F: a short search eager vs captured, then N captured searches at once."""
    sizes = {"train_size": check.short, "valid_size": check.short}
    short = {"supernet": check.nb201, "strategy_args": {"pruning_step": 1}}
    rows = {}
    for graphs in (False, True):
        spec = search_spec("nb201-ddpnas-ws", **short, train={**sizes, "cuda_graphs": graphs})
        wall, (record,) = timed_searches(check, root, spec, [0], f"short-{graphs}", 150)
        name, search_s = ("captured" if graphs else "eager"), record["search_seconds"]
        rows[name] = {"process_wall_s": wall, "search_s": search_s}
        print(
            f"   {name}: {record['epochs']} epochs, process {wall:.1f} s, search {search_s:.1f} s"
        )
    check.figures["short_search"] = rows
    seeds = list(range(1, check.share + 1))
    wall, _ = timed_searches(check, root, spec, seeds, "shared", 200)
    single = rows["captured"]["process_wall_s"]
    gain = check.share * single / wall
    check.figures["gpu_share"] = {
        "n": check.share,
        "wall_s": wall,
        "single_wall_s": single,
        "gain": gain,
    }
    print(f"   {check.share} at once: {wall:.1f} s vs {single:.1f} s alone: throughput x{gain:.2f}")
