"""Figures with one fixed style, so regenerated plots are comparable run to run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

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


def theta_label(strategy: str) -> str:
    """What a strategy's logged theta is (its class says), for the y-axis."""
    from ddpnas.registry import get_strategy

    try:
        return get_strategy(strategy).theta_label
    except KeyError:  # a record of a plugin that is not installed here
        return "theta"


def theta_limits(theta: np.ndarray) -> tuple[float, float]:
    """y-range of every panel: the data's range with a margin, so small movements show (a DARTS
    run of a few epochs moves softmax(alpha) by 1e-3 around 1/K), never beyond [0, 1]."""
    low, high = float(theta.min()), float(theta.max())
    pad = max(0.05 * (high - low), 1e-4)
    return max(0.0, low - pad), min(1.0, high + pad)


def _theta_panel(ax: Any, epochs: list[int], theta: np.ndarray, e: int, prunes: list) -> None:
    """One edge: a line per op; each pruning marked by an x in the pruned op's colour at its
    theta just before the prune. ``prunes``: (history index, op pruned per edge, theta)."""
    for k in range(theta.shape[2]):
        ax.plot(epochs, theta[:, e, k], color=f"C{k % 10}", lw=1.3)
    for i, ops, before in prunes:
        ax.axvline(epochs[i], color="0.6", ls="--", lw=0.7, zorder=0)
        k = ops[e]
        ax.plot(epochs[i], before[e][k], "x", color=f"C{k % 10}", ms=6, mew=1.6)
    uniform = 1.0 / theta.shape[2]
    low, high = ax.get_ylim()
    if low < uniform < high:
        ax.axhline(uniform, color="0.5", ls=":", lw=0.8, zorder=0)


def theta_plot(run: dict[str, Any]) -> Figure:
    """theta of every op over epochs, one panel per edge; pruning events (DDPNAS) as dashed
    lines with an x on the op pruned. The architecture found is in the record, not the title.
    Call within :data:`STYLE` (as :func:`theta_figure` does)."""
    theta = np.array([h["state"]["theta"] for h in run["history"]], dtype=float)
    epochs = [h["epoch"] + 1 for h in run["history"]]
    prunes = [
        (
            i,
            [run["ops"].index(op) for op in h["events"]["pruned"]],
            # theta updated right before the prune (older records: the epoch before)
            h["events"].get("theta_before_prune") or theta[max(i - 1, 0)].tolist(),
        )
        for i, h in enumerate(run["history"])
        if h["events"].get("pruned")
    ]
    edges, ops = run["edges"], run["ops"]
    cols = min(4 if len(edges) > 12 else 3, len(edges))
    rows = math.ceil(len(edges) / cols)
    fig = plt.figure(figsize=(3.3 * cols, 2.1 * rows + 1.0), layout="constrained")
    axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)
    axes[0, 0].set_ylim(*theta_limits(theta))
    for e, ax in enumerate(axes.flat):
        if e >= len(edges):
            ax.set_visible(False)
            continue
        _theta_panel(ax, epochs, theta, e, prunes)
        ax.set_title(f"edge {edges[e]}", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles = [plt.Line2D([], [], color=f"C{k % 10}", lw=1.5, label=op) for k, op in enumerate(ops)]
    handles.append(plt.Line2D([], [], color="0.5", ls=":", label=f"uniform 1/{len(ops)}"))
    if prunes:
        handles.append(
            plt.Line2D([], [], color="0.3", marker="x", ls="--", lw=0.7, label="op pruned")
        )
    fig.legend(handles=handles, loc="outside right upper")
    fig.supxlabel("search epoch")
    fig.supylabel(theta_label(run["strategy"]))
    fig.suptitle(theta_title(run), fontsize=9)
    return fig


def theta_title(run: dict[str, Any]) -> str:
    """A title that fits beside the legend: the method (the label up to its parenthesis), the
    experiment and the seed. The whole label, with its protocol, is in the tables and the
    report's caption."""
    method = run["label"].split(" (", 1)[0]
    experiment = run.get("experiment")
    name = f"{method}: {experiment}" if experiment else method
    return f"{name}, seed {run['seed']}"


def theta_figure(run: dict[str, Any], out: str | Path) -> None:
    """Write :func:`theta_plot` of ``run`` to ``out`` (its suffix names the format)."""
    with plt.style.context("default"), plt.rc_context(STYLE):
        fig = theta_plot(run)
        fmt = Path(out).suffix[1:] or "png"
        atomic_write(out, lambda tmp: fig.savefig(tmp, format=fmt, bbox_inches="tight"))
        plt.close(fig)
