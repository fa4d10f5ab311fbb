"""Figures with one fixed style, so regenerated plots are comparable run to run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from ddpnas.io.files import atomic_write

STYLE = {
    "figure.dpi": 110,
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
}


def theta_figure(run: dict[str, Any], out: str | Path) -> None:
    """theta of every op over epochs, one panel per edge, pruning events as dashed lines."""
    theta = [h["state"]["theta"] for h in run["history"]]
    epochs = [h["epoch"] + 1 for h in run["history"]]
    prunes = [
        (h["epoch"] + 1, h["events"]["pruned"]) for h in run["history"] if h["events"].get("pruned")
    ]
    edges, ops = run["edges"], run["ops"]
    cols = min(3, len(edges))
    rows = math.ceil(len(edges) / cols)
    with plt.style.context("default"), plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            rows, cols, figsize=(3.6 * cols, 2.6 * rows), sharex=True, sharey=True, squeeze=False
        )
        for e, ax in enumerate(axes.flat):
            if e >= len(edges):
                ax.set_visible(False)
                continue
            for k, op in enumerate(ops):
                ax.plot(epochs, [t[e][k] for t in theta], label=op, lw=1.4)
            for epoch, pruned in prunes:
                ax.axvline(epoch, color="0.4", ls="--", lw=0.8)
                ax.annotate(
                    pruned[e],
                    (epoch, 1.0),
                    rotation=90,
                    fontsize=6,
                    va="top",
                    ha="right",
                    color="0.3",
                    xycoords=("data", "axes fraction"),
                )
            ax.set_title(f"edge {edges[e]}")
            ax.set_ylim(0, 1)
        for ax in axes[-1]:
            ax.set_xlabel("search epoch")
        for ax in axes[:, 0]:
            ax.set_ylabel("theta")
        axes.flat[0].legend(fontsize=7, loc="center left")
        fig.suptitle(
            f"{run['label']} on {run['space']}, seed {run['seed']}: {run['arch']}", fontsize=8
        )
        fig.tight_layout()
        atomic_write(out, lambda tmp: fig.savefig(tmp, format=Path(out).suffix[1:] or "png"))
        plt.close(fig)
