"""A results table for any space: what each experiment found, what its own search measured of it,
and what the search cost.

NAS-Bench-201 has a table of its own (the benchmark's trained figures of each found cell); every
space without a tabular benchmark (the DARTS cell, the mobile space, a plugin's space) gets this
one, so a new space is in the results the day it is registered.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ddpnas.report.tables import (
    _fmt,
    _stats,
    by_experiment,
    decision_columns,
    method_label,
    run_figures,
    seed_ranges,
)


def found_accuracy(record: dict[str, Any]) -> float:
    """The last validation accuracy the search itself measured of the architecture it returned
    (NaN when it never evaluated that exact architecture, e.g. a cell derived from theta)."""
    seen = [
        e["valid_acc"]
        for h in record["history"]
        for e in h["evaluated"]
        if e["arch"] == record["arch"]
    ]
    return seen[-1] if seen else math.nan


def best_seen(record: dict[str, Any]) -> float:
    """The best validation accuracy of any architecture the search evaluated."""
    return max(
        (e["valid_acc"] for h in record["history"] for e in h["evaluated"]), default=math.nan
    )


def search_rows(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per experiment: found architecture(s), search accuracies (%), epochs and cost."""
    rows = []
    for name, group in by_experiment(runs).items():
        archs = pd.Series([r["arch"] for r in group]).value_counts()
        found = [100 * found_accuracy(r) for r in group]
        measured = [a for a in found if not math.isnan(a)]
        row: dict[str, Any] = {
            "method": method_label(group[0]),
            "source": f"ours: {name}",
            "space": group[0]["space"],
            "runs": len(group),
            "seeds": seed_ranges(r["seed"] for r in group),
            "arch": archs.index[0],
            "arch_count": int(archs.iloc[0]),
            "distinct_archs": len(archs),
            "found_valid_acc": np.nan,
            "found_valid_acc_std": np.nan,
            "found_valid_acc_se": np.nan,
            "found_measured": len(measured),
        }
        if measured:
            stats = _stats(measured)
            row["found_valid_acc"], row["found_valid_acc_std"], row["found_valid_acc_se"] = stats
        row["best_seen_valid_acc"] = float(np.mean([100 * best_seen(r) for r in group]))
        row.update(run_figures(group))
        rows.append(row)
    return pd.DataFrame(rows)


def search_display(df: pd.DataFrame) -> pd.DataFrame:
    """Human-readable version of :func:`search_rows` for Markdown and LaTeX."""

    def found(row: pd.Series) -> str:
        text = _fmt(row["found_valid_acc"], row["found_valid_acc_std"], row["found_valid_acc_se"])
        if row["found_measured"] < row["runs"]:
            text += f" ({row['found_measured']}/{row['runs']} runs measured it)"
        return text

    return pd.DataFrame(
        {
            "Method": df["method"],
            "Runs": df["runs"].astype(int).astype(str),
            "Seeds": df["seeds"],
            "Found architecture (most frequent)": [
                f"`{a}` ({n}/{runs}; {d} distinct)"
                for a, n, runs, d in zip(
                    df["arch"], df["arch_count"], df["runs"], df["distinct_archs"], strict=True
                )
            ],
            "Search valid acc of it (%)": df.apply(found, axis=1),
            "Best seen (%)": df["best_seen_valid_acc"].map(lambda a: f"{a:.2f}"),
            "Search epochs": df["search_epochs"].map(lambda e: f"{e:g}"),
            "Search cost": [
                f"{s:.3g} s on {h}"
                for s, h in zip(df["search_seconds"], df["hardware"], strict=True)
            ],
            **decision_columns(df),
            "Source": df["source"],
        }
    )
