"""What each method cost: device-hours per stage from the records, checked against Snakemake.

Every search record and retraining result carries a ``cost`` block (ddpnas.runtime.run_cost): the
device type, the number of devices (torchrun world size), the GPU model, peak memory and the
process's wall time. Device-hours = wall time x devices, called GPU-hours only when a GPU ran the
job (CPU runs are CPU-hours). The same wall time is measured independently by the ``benchmark:``
file Snakemake writes for the job; the table shows both and their relative difference.

A stage is a list of :class:`Job` s; searches and retrainings are read here, and another stage
(e.g. a generation step) only needs a loader that returns jobs.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ddpnas.errors import DDPNASError
from ddpnas.report.tables import published, used_simulated

AGREEMENT = 0.10  # largest accepted relative difference between record and benchmark wall time
COLUMNS = [
    "method",
    "source",
    "stage",
    "runs",
    "device",
    "hardware",
    "devices",
    "wall_seconds",
    "device_hours",
    "unit",
    "loop_seconds",
    "simulated_hours",
    "benchmark_seconds",
    "benchmark_rel_diff",
    "peak_memory_mb",
    "torch",
    "seeds",
    "published",
    "ours_in_published_unit",
]


@dataclass(frozen=True)
class Job:
    """One pipeline job (one experiment, stage and seed) and what it held."""

    method: str
    experiment: str
    space: str
    strategy: str
    order: int | None
    stage: str
    seed: int
    cost: dict[str, Any]
    hardware: str
    torch: str
    loop_seconds: float
    simulated_seconds: float
    benchmark_seconds: float


def read_benchmark(path: str | Path) -> float:
    """Wall seconds (column ``s``) of a Snakemake benchmark TSV; repeated runs are averaged.

    A file without a timing row (a job killed as Snakemake wrote it) or with a time that is not a
    positive number is an error: the table could not check the record against it.
    """
    try:
        with Path(path).open() as fh:
            seconds = [float(r["s"]) for r in csv.DictReader(fh, delimiter="\t")]
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise DDPNASError(f"cannot read Snakemake benchmark {path}: {exc}") from None
    if not seconds or not all(np.isfinite(s) and s > 0 for s in seconds):
        what = f"a time that is not > 0: {seconds}" if seconds else "no timing row (header only)"
        raise DDPNASError(
            f"Snakemake benchmark {path} has {what}, so the record cannot be checked against it; "
            "rerun the job that writes it (snakemake --forcerun <its rule>)"
        )
    return float(np.mean(seconds))


def _cost(record: dict[str, Any], where: str | Path) -> dict[str, Any]:
    if "cost" not in record:
        raise DDPNASError(f"{where} has no cost block (written by an older version); rerun it")
    return record["cost"]


def _job(
    search: dict[str, Any],
    timed: dict[str, Any],
    stage: str,
    what: str,
    loop_key: str,
    benchmark: str | Path,
) -> Job:
    """One job: the method from its search record, the cost (checked first) and times from the
    record the job wrote; only tabular searches charge simulated time."""
    return Job(
        method=search["label"],
        experiment=search["experiment"],
        space=search["space"],
        strategy=search["strategy"],
        order=search["spec"].get("strategy_args", {}).get("order"),
        stage=stage,
        seed=search["seed"],
        cost=_cost(timed, f"{what} {search['experiment']} seed {search['seed']}"),
        hardware=timed["environment"]["hardware"],
        torch=timed["environment"]["torch"],
        loop_seconds=timed[loop_key],
        simulated_seconds=used_simulated(timed) if "simulated_seconds" in timed else 0.0,
        benchmark_seconds=read_benchmark(benchmark),
    )


def search_jobs(records: Sequence[dict[str, Any]], benchmarks: Sequence[str | Path]) -> list[Job]:
    """Search records paired, in order, with their Snakemake benchmark files."""
    if len(records) != len(benchmarks):
        raise DDPNASError("--searches and --search-benchmarks must pair up (same length)")
    return [
        _job(r, r, "search", "search record", "search_seconds", b)
        for r, b in zip(records, benchmarks, strict=True)
    ]


def retrain_jobs(
    results: Sequence[dict[str, Any]],
    searches: Sequence[dict[str, Any]],
    benchmarks: Sequence[str | Path],
) -> list[Job]:
    """Retraining results, each with the search record it retrained and its benchmark file."""
    if not len(results) == len(searches) == len(benchmarks):
        raise DDPNASError(
            "--retrains, --retrain-searches and --retrain-benchmarks must pair up (same length)"
        )
    return [
        _job(s, r, "retrain", "retrain result of", "wall_seconds", b)
        for r, s, b in zip(results, searches, benchmarks, strict=True)
    ]


def _matches(entry: dict[str, Any], job: Job) -> bool:
    return (
        entry["space"] == job.space
        and entry["strategy"] == job.strategy
        and entry.get("order", job.order) == job.order
        and job.stage == "search"
    )


def _published_text(entry: dict[str, Any]) -> str:
    on = f" on {entry['hardware']}" if entry.get("hardware") else ""
    mark = "" if entry["checked"] else " [unchecked]"
    return f"{entry['value']:g} {entry['unit']}{on}{mark} ({entry['source']})"


def _in_unit(device_hours: float, kind: str, unit: str) -> str:
    """Our device-hours in a published unit (GPU-days or GPU-hours), named by our device kind."""
    value = device_hours / 24 if unit.endswith("days") else device_hours
    return f"{value:.3g} {kind}-{unit.split('-', 1)[1]}"


def cost_rows(jobs: Sequence[Job]) -> pd.DataFrame:
    """One row per (experiment, stage): means over seeds, then the unmatched published rows."""
    groups: dict[tuple[str, str], list[Job]] = {}
    for job in jobs:
        groups.setdefault((job.experiment, job.stage), []).append(job)
    entries = published()["costs"]["rows"]
    used: set[int] = set()
    rows = []
    for (experiment, stage), group in groups.items():
        first = group[0]
        kinds = {j.cost["device"] for j in group}
        kind = "GPU" if kinds == {"cuda"} else "CPU" if kinds == {"cpu"} else "mixed"
        wall = np.array([j.cost["process_seconds"] for j in group])
        devices = np.array([j.cost["devices"] for j in group])
        bench = np.array([j.benchmark_seconds for j in group])
        device_hours = float(np.mean(wall * devices)) / 3600
        matched = [i for i, e in enumerate(entries) if _matches(e, first)]
        used.update(matched)
        unit = entries[matched[0]]["unit"] if matched else None
        rows.append(
            {
                "method": first.method,
                "source": f"ours: {experiment}",
                "stage": stage,
                "runs": len(group),
                "device": kind,
                "hardware": first.cost.get("gpu_model") or first.hardware,
                "devices": float(devices.mean()),
                "wall_seconds": float(wall.mean()),
                "device_hours": device_hours,
                "unit": f"{kind}-hours",
                "loop_seconds": float(np.mean([j.loop_seconds for j in group])),
                "simulated_hours": float(np.mean([j.simulated_seconds for j in group])) / 3600,
                "benchmark_seconds": float(bench.mean()),
                "benchmark_rel_diff": float(np.max(np.abs(wall - bench) / bench)),
                "peak_memory_mb": max(j.cost["peak_memory_mb"] for j in group),
                "torch": first.torch,
                "seeds": " ".join(str(j.seed) for j in group),
                "published": "; ".join(_published_text(entries[i]) for i in matched) or "-",
                "ours_in_published_unit": _in_unit(device_hours, kind, unit) if unit else "-",
            }
        )
    for i, entry in enumerate(entries):
        if i not in used:
            rows.append(
                {
                    "method": entry["method"],
                    "source": "published",
                    "stage": "search",
                    "published": _published_text(entry),
                }
            )
    return pd.DataFrame(rows).reindex(columns=COLUMNS)


def cost_display(df: pd.DataFrame) -> pd.DataFrame:
    """Human-readable version of :func:`cost_rows` for Markdown and LaTeX."""

    def num(col: str, fmt: str) -> list[str]:
        return ["-" if pd.isna(v) else format(v, fmt) for v in df[col]]

    return pd.DataFrame(
        {
            "Method": df["method"],
            "Stage": df["stage"],
            "Runs": num("runs", ".0f"),
            "Device": [
                "-" if pd.isna(n) else f"{n:g} x {h}"
                for n, h in zip(df["devices"], df["hardware"], strict=True)
            ],
            "Wall (s)": num("wall_seconds", ".1f"),
            "Device-hours": [
                "-" if pd.isna(h) else f"{h:.3g} {u}"
                for h, u in zip(df["device_hours"], df["unit"], strict=True)
            ],
            "Benchmark (s)": num("benchmark_seconds", ".1f"),
            "Record vs benchmark": [
                "-" if pd.isna(d) else f"{100 * d:.1f} %" for d in df["benchmark_rel_diff"]
            ],
            "Peak memory (MB)": num("peak_memory_mb", ".0f"),
            "Simulated (h)": num("simulated_hours", ".3g"),
            "Ours, published unit": df["ours_in_published_unit"].fillna("-"),
            "Published": df["published"],
            "Source": df["source"],
        }
    )
