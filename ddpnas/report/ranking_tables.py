"""Tables and figure of the supernet ranking check; :mod:`ddpnas.report.ranking` scores cells.

Kept apart from the scoring so that writing needs neither torch nor a supernet: it only formats
the frames :func:`ddpnas.report.ranking.ranking_report` returns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

EDGE_COLUMNS = [
    "method",
    "experiment",
    "seed",
    "edge",
    "search_order",
    "table_order",
    "kendall",
    "top_op_agrees",
]


def fmt_interval(value: float, low: float, high: float) -> str:
    """``0.41 [0.22, 0.58]``, or ``-`` when undefined."""
    if math.isnan(value):
        return "-"
    return f"{value:.2f} [{low:.2f}, {high:.2f}]"


def ranking_display(summary: pd.DataFrame) -> pd.DataFrame:
    """Human-readable version of the summary for Markdown and LaTeX."""

    def interval(prefix: str) -> list[str]:
        return [
            fmt_interval(r[prefix], r[f"{prefix}_low"], r[f"{prefix}_high"])
            for _, r in summary.iterrows()
        ]

    return pd.DataFrame(
        {
            "Method": summary["method"],
            "Seed": summary["seed"],
            "Cells": summary["cells"],
            "N": summary["n"],
            "Kendall tau (C10 test)": interval("kendall_test"),
            "Spearman rho (C10 test)": interval("spearman_test"),
            "Kendall tau (C10 valid)": interval("kendall_valid"),
            "Top-k overlap": [
                f"{o:.2f} (k={k})"
                for o, k in zip(summary["top_k_overlap"], summary["top_k"], strict=True)
            ],
            "Supernet acc range (%)": [
                f"{lo:.1f}-{hi:.1f}"
                for lo, hi in zip(
                    summary["supernet_acc_min"], summary["supernet_acc_max"], strict=True
                )
            ],
        }
    )


def edges_display(edges: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Method": edges["method"],
            "Edge": edges["edge"],
            "Search order (best first)": edges["search_order"],
            "Table marginal order": edges["table_order"],
            "Kendall tau": edges["kendall"].map(lambda t: f"{t:.2f}"),
            "Top op agrees": edges["top_op_agrees"].map({True: "yes", False: "no"}),
        }
    )


def ranking_figure(cells: pd.DataFrame, summary: pd.DataFrame, out: str | Path) -> None:
    """Supernet accuracy vs 200-epoch test accuracy, one panel per run (sample vs visited)."""
    import matplotlib.pyplot as plt

    from ddpnas.io.files import atomic_write
    from ddpnas.report.plots import STYLE

    groups = list(cells.groupby(["experiment", "seed"], sort=False))
    with plt.style.context("default"), plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            1, len(groups), figsize=(4.2 * len(groups), 3.6), squeeze=False, sharex=True
        )
        for ax, ((exp, seed), frame) in zip(axes.flat, groups, strict=True):
            sample = frame[frame["in_sample"]]
            extra = frame[~frame["in_sample"]]
            ax.scatter(sample["c10_test"], sample["supernet_acc"], s=14, label="stratified sample")
            ax.scatter(
                extra["c10_test"], extra["supernet_acc"], s=14, marker="x", label="visited only"
            )
            row = summary[
                (summary["experiment"] == exp)
                & (summary["seed"] == seed)
                & (summary["cells"] == "sample + visited")
            ].iloc[0]
            tau = fmt_interval(
                row["kendall_test"], row["kendall_test_low"], row["kendall_test_high"]
            )
            ax.set_title(
                f"{row['method']}, seed {seed}\nKendall tau (all {row['n']} cells) {tau}",
                fontsize=8,
            )
            ax.set_xlabel("NAS-Bench-201 C10 test acc, 200 epochs (%)")
        axes.flat[0].set_ylabel("supernet validation acc (%)")
        axes.flat[0].legend(fontsize=7)
        fig.tight_layout()
        atomic_write(out, lambda tmp: fig.savefig(tmp, format=Path(out).suffix[1:] or "png"))
        plt.close(fig)


def write_ranking(
    runs: Sequence[dict[str, Any]],
    cells: pd.DataFrame,
    summary: pd.DataFrame,
    edges: pd.DataFrame,
    args: Any,
) -> None:
    """The summary table, the per-edge table (empty when no run prunes), figure and cell CSV."""
    from ddpnas.io.files import atomic_write
    from ddpnas.report.tables import write_table

    notes = [
        f"{args.cells} cells sampled (seed {args.sample_seed}) in equal shares from the deciles of "
        "the table's 200-epoch cifar10-valid accuracy, plus the cell each search returned and up "
        f"to {args.cells - 1} others it visited (seeded pick); each scored with the search's "
        "final supernet on its validation split. Intervals: 95 % paired "
        f"percentile bootstrap ({args.bootstrap} resamples); top-k overlap is tie-aware.",
        *(
            f"**{r['experiment']}** seed {r['seed']}: {r['environment']['hardware']}, "
            f"torch {r['environment']['torch']}."
            for r in runs
        ),
    ]
    if args.cells_out:
        atomic_write(args.cells_out, lambda tmp: cells.to_csv(tmp, index=False))
    write_table(
        summary,
        ranking_display(summary),
        args.out,
        "NAS-Bench-201: supernet ranking vs stand-alone training (200-epoch table)",
        notes=notes,
    )
    edges = edges.reindex(columns=EDGE_COLUMNS)
    write_table(
        edges,
        edges_display(edges),
        f"{args.out}_edges",
        "NAS-Bench-201: per-edge op ranking implied by the search vs the table's marginals",
        notes=[
            "Table marginal: mean 200-epoch C10 test accuracy of all cells using the op there.",
            "Only searches that prune ops (DDPNAS) imply an op order; others have no rows.",
        ],
    )
    ranking_figure(cells, summary, args.figure)
