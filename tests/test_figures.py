"""Figures a reviewer can read: files written, axes naming what is plotted (checked on the
matplotlib objects, not pixels), titles short, the theta axis scaled to the data."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from ddpnas.report.generation import OBJECTIVE_LABELS, sweep_figure, sweep_plot
from ddpnas.report.plots import theta_figure, theta_plot

OPS = ["none", "skip_connect", "nor_conv_1x1"]


def _run(strategy: str, theta: list[np.ndarray], prunes: dict[int, list[str]]) -> dict:
    """A search record as theta-plot reads it: per-epoch theta, events, edges and ops."""
    history = [
        {
            "epoch": i,
            "state": {"theta": t.tolist()},
            "events": {"pruned": prunes[i]} if i in prunes else {},
        }
        for i, t in enumerate(theta)
    ]
    label = f"{strategy} (a long label of a small CPU run, seed and all)"
    return {"history": history, "edges": ["1<-0", "2<-0"], "ops": OPS, "strategy": strategy,
            "label": label, "seed": 0}  # fmt: skip


@pytest.mark.parametrize(
    "strategy, label",
    [("ddpnas", "theta (sampling probability)"), ("darts", "softmax(alpha)"),
     ("enas", "policy probability (controller marginal)"), ("reinforce", "policy probability")],
)  # fmt: skip
def test_theta_figure_names_what_it_plots(strategy: str, label: str, tmp_path: Path) -> None:
    # a DARTS-like run: softmax(alpha) moves by ~1e-3 around 1/K; a fixed 0-1 axis shows flat lines
    theta = [np.full((2, 3), 1 / 3) + np.array([[1e-3, -1e-3, 0.0]] * 2) * i for i in range(4)]
    fig = theta_plot(_run(strategy, theta, {}))
    assert fig.get_supylabel() == label and fig.get_supxlabel() == "search epoch"
    low, high = fig.axes[0].get_ylim()
    assert high - low < 0.02 and low <= 1 / 3 - 3e-3 and high >= 1 / 3 + 3e-3
    assert all(ax.get_title().startswith("edge ") for ax in fig.axes if ax.get_visible())
    assert len(fig.get_suptitle()) < 80 and "|" not in fig.get_suptitle()  # no architecture
    plt.close(fig)
    theta_figure(_run(strategy, theta, {}), tmp_path / "t.png")
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


def test_theta_title_is_short_whatever_the_label() -> None:
    """The config's label (protocol included, 150+ characters) goes to the caption; the title
    beside the legend names the method, the experiment and the seed."""
    label = "ENAS (DARTS space, small CPU run; " + "logits / 5 then 2.5 tanh; " * 6 + ")"
    run = {**_run("enas", [np.full((2, 3), 1 / 3)] * 2, {}), "label": label, "experiment": "x"}
    fig = theta_plot(run)
    assert fig.get_suptitle() == "ENAS: x, seed 0"
    plt.close(fig)


def test_theta_figure_marks_each_prune_on_the_pruned_op() -> None:
    theta = [np.full((2, 3), 1 / 3), np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5]])]
    fig = theta_plot(_run("ddpnas", theta, {1: ["none", "skip_connect"]}))
    for ax, k in zip(fig.axes[:2], (0, 1), strict=True):
        (mark,) = [line for line in ax.get_lines() if line.get_marker() == "x"]
        assert mark.get_color() == f"C{k}" and list(mark.get_xdata()) == [2]
    assert fig.axes[0].get_ylim() == pytest.approx((0.0, 0.525))  # the data, 5% margin, >= 0
    plt.close(fig)


def _sweep() -> pd.DataFrame:
    return pd.DataFrame(
        {"budget": [1e6, 2e6], "feasible": [True, True], "objective": [-3.2, -1.1],
         "macs": [0.9e6, 1.8e6], "acc": [90.0, 92.0]}
    )  # fmt: skip


def test_generation_figure_plots_the_objective_with_its_unit(tmp_path: Path) -> None:
    fig = sweep_plot(_sweep(), "macs", 1e6, "M MACs", "mobile: generated", objective="log")
    ax = fig.axes[0]
    assert ax.get_ylabel() == OBJECTIVE_LABELS["log"] and "nats" in ax.get_ylabel()
    assert ax.get_xlabel() == "cost: macs (M MACs)" and ax.get_title() == "mobile: generated"
    plt.close(fig)
    cells = pd.DataFrame(
        {"arch": ["a", "b", "c"], "acc": [85.0, 90.0, 93.0], "macs": [0.5e6, 1e6, 2e6]}
    )
    fig = sweep_plot(_sweep(), "macs", 1e6, "M MACs", "nb201: generated", cells)
    assert fig.axes[0].get_ylabel() == "CIFAR-10 test accuracy (%, 200 epochs)"
    plt.close(fig)
    sweep_figure(_sweep(), "macs", 1e6, "M MACs", tmp_path / "g.png", "t")
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
