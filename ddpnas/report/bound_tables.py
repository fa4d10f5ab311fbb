"""``ddpnas report bound``: the bounds beside the Monte-Carlo of the real strategy; table, figures.

Every setting of the config's ``report.bound`` block runs ``seeds`` replicates (see
:mod:`ddpnas.analysis.montecarlo`); the table gives both bounds, the empirical failure rate with its
exact Clopper-Pearson 95% interval and whether the rate is significantly above a bound, the figures
the failure probability against T and against search epochs, and the accuracy of the found
NAS-Bench-201 cell against its search cost, beside baselines given the same number of queries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from ddpnas.analysis.bounds import BOUNDS, required_pruning_step, search_epochs
from ddpnas.analysis.montecarlo import (
    CREDITS,
    PROFILES,
    NB201Table,
    Outcome,
    Setting,
    baseline_cells,
    clopper_pearson,
    exceeds,
    nb201,
    synthetic,
)
from ddpnas.errors import DDPNASError
from ddpnas.io.files import atomic_write
from ddpnas.nasbench.table import NB201Bench
from ddpnas.report.plots import STYLE
from ddpnas.report.tables import write_table
from ddpnas.runtime import device_name, environment
from ddpnas.strategies import get_strategy

NB201_EDGES = 6
# PNG metadata without the matplotlib version, so a figure's bytes depend only on its data.
PNG_METADATA = {"Software": None}


def settings(block: dict[str, Any]) -> list[Setting]:
    """Every Monte-Carlo setting the config block asks for, synthetic first."""
    out = [
        Setting(
            credits,
            profile,
            t,
            block["gaussian_std"] if credits == "gaussian" else 0.0,
            block["edges"],
        )
        for credits in CREDITS
        for profile in PROFILES
        for t in block["pruning_steps"]
    ]
    out += [
        Setting("nb201", "marginals", t, float(noise), NB201_EDGES)
        for noise in block["nb201_noise"]
        for t in block["nb201_pruning_steps"]
    ]
    return out


def check_baselines(names: list[str]) -> None:
    """Fail before any Monte-Carlo work on a baseline that cannot run on the table."""
    for name in names:
        try:
            cls = get_strategy(name)
        except KeyError as exc:
            raise DDPNASError(f"report.bound.baselines: {exc.args[0]}") from None
        if "tabular" not in cls.modes or "budget_seconds" not in cls.Options.model_fields:
            raise DDPNASError(
                f"report.bound.baselines: {name!r} is not a tabular baseline taking budget_seconds"
            )


def run_settings(block: dict[str, Any], table: NB201Table) -> list[Outcome]:
    """Run every setting of the block, each from its own seed stream."""
    seeds, seed = block["seeds"], block["seed"]
    outcomes = []
    for setting in settings(block):
        if setting.credits != "nb201":
            outcomes.append(synthetic(setting, seeds, seed))
        else:
            outcomes.append(nb201(setting, table, seeds, seed))
    return outcomes


def _needed(bound: str, gaps: np.ndarray, target: float) -> float:
    """T reaching ``target`` by this bound; NaN when no T can (a gap of 0)."""
    try:
        return float(required_pruning_step(bound, gaps, target))
    except DDPNASError:
        return float("nan")


def bound_rows(outcomes: list[Outcome], target: float, alpha: float) -> pd.DataFrame:
    """One row per setting: both bounds, the empirical rate with its interval, the verdicts."""
    rows = []
    for o in outcomes:
        s, k = o.setting, o.gaps.shape[1] + 1
        low, high = clopper_pearson(o.failures, o.replicates)
        row: dict[str, Any] = {
            "setting": s.name,
            "credits": s.credits,
            "profile": s.profile,
            "noise": s.noise,
            "edges": s.edges,
            "ops": k,
            "T": s.pruning_step,
            "search_epochs": search_epochs(k, s.pruning_step),
            "min_gap": float(o.gaps[:, 0].min()),
        }
        for name, fn in BOUNDS.items():
            value = fn(o.gaps, s.pruning_step, 1)
            row[name] = value
            row[f"{name}_exceeded"] = exceeds(o.failures, o.replicates, value, alpha)
            row[f"{name}_T_for_target"] = _needed(name, o.gaps, target)
        row |= {
            "failures": o.failures,
            "seeds": o.replicates,
            "rate": o.rate,
            "ci_low": low,
            "ci_high": high,
            "seconds": o.seconds,
        }
        rows.append(row)
    return pd.DataFrame(rows)


def _bound_text(value: float, exceeded: bool) -> str:
    text = f"{value:.3g}" + (" (vacuous)" if value >= 1 else "")
    return text + (" **EXCEEDED**" if exceeded else "")


def bound_display(df: pd.DataFrame) -> pd.DataFrame:
    """Human-readable :func:`bound_rows`."""
    out = pd.DataFrame({"Setting": df["setting"], "T": df["T"], "Epochs": df["search_epochs"]})
    out["Min gap"] = df["min_gap"].map(lambda g: f"{g:.3f}")
    for name, head in (("hoeffding", "Hoeffding bound"), ("successive_rejects", "SR bound")):
        out[head] = [
            _bound_text(v, e) for v, e in zip(df[name], df[f"{name}_exceeded"], strict=True)
        ]
    out["Empirical failure [95% CI]"] = [
        f"{r:.4f} [{lo:.4f}, {hi:.4f}]"
        for r, lo, hi in zip(df["rate"], df["ci_low"], df["ci_high"], strict=True)
    ]
    out["Seeds"] = df["seeds"]
    needed = df["successive_rejects_T_for_target"]
    out["T for target (SR)"] = needed.map(lambda t: "-" if np.isnan(t) else f"{t:g}")
    out["Epochs for target (SR)"] = [
        "-" if np.isnan(t) else str(search_epochs(int(k), int(t)))
        for t, k in zip(needed, df["ops"], strict=True)
    ]
    return out


def cost_rows(
    block: dict[str, Any], bench: NB201Bench, table: NB201Table, outcomes: list[Outcome]
) -> pd.DataFrame:
    """C10 test accuracy of the found cell vs queries: DDPNAS at each T, baselines at its budget."""
    rows = []

    def add(method: str, noise: float, t: int, queries: int, accs: np.ndarray) -> None:
        half = 1.96 * accs.std(ddof=1) / np.sqrt(len(accs)) if len(accs) > 1 else np.nan
        rows.append(
            {
                "method": method,
                "noise": noise,
                "T": t,
                "queries": queries,
                "test_acc": float(accs.mean()),
                "ci95": float(half),
                "runs": len(accs),
            }
        )

    for o in outcomes:
        s = o.setting
        if s.credits != "nb201":
            continue
        queries = search_epochs(table.space.num_ops, s.pruning_step)
        add("ddpnas", s.noise, s.pruning_step, queries, table.test[table.codes(o.found)])
        for name in block["baselines"]:
            cells = baseline_cells(
                name, bench, queries, s.noise, block["baseline_seeds"], block["seed"]
            )
            add(name, s.noise, s.pruning_step, queries, table.test[table.codes(np.array(cells))])
    return pd.DataFrame(rows)


def _save(fig: Any, out: Path) -> None:
    atomic_write(out, lambda tmp: fig.savefig(tmp, format="png", metadata=PNG_METADATA))
    plt.close(fig)


def curve_gaps(outcomes: list[Outcome]) -> dict[tuple[str, Any], np.ndarray]:
    """Gaps of each figure curve, keyed like the figure's groups: (credits, profile or noise)."""
    return {
        (
            o.setting.credits,
            o.setting.noise if o.setting.credits == "nb201" else o.setting.profile,
        ): o.gaps
        for o in outcomes
    }


def curve_steps(df: pd.DataFrame) -> np.ndarray:
    """T values the bound curves are drawn at: beyond the Monte-Carlo grid, to show where they
    stop being vacuous."""
    return np.arange(1, max(3 * int(df["T"].max()), 30) + 1)


def failure_figure(
    df: pd.DataFrame, gaps: dict[tuple[str, Any], np.ndarray], x: str, out: Path
) -> None:
    """Failure probability vs T or search epochs: bound curves, Monte-Carlo points with 95% CIs.

    ``gaps`` maps (credits, profile or noise) to the setting's E x (K-1) gaps. A Monte-Carlo rate
    of 0 is drawn at the floor 0.5 / seeds with its interval reaching up to the CI's upper end.
    """
    panels = [c for c in (*CREDITS, "nb201") if (df["credits"] == c).any()]
    titles = {"gaussian": "Gaussian credits", "bernoulli": "Bernoulli credits"}
    with plt.style.context("default"), plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            1, len(panels), figsize=(4.2 * len(panels), 3.6), sharey=True, squeeze=False
        )
        floor = 0.5 / df["seeds"].max()
        for ax, credits in zip(axes[0], panels, strict=True):
            part = df[df["credits"] == credits]
            key = "noise" if credits == "nb201" else "profile"
            steps = curve_steps(part)
            for i, (label, group) in enumerate(part.groupby(key, sort=False)):
                color, ops = f"C{i}", int(group["ops"].iloc[0])
                curve_x = [search_epochs(ops, t) if x == "epochs" else t for t in steps]
                lowest = np.inf
                for name, style in (("successive_rejects", "-"), ("hoeffding", "--")):
                    values = [BOUNDS[name](gaps[credits, label], t, 1) for t in steps]
                    lowest = min(lowest, *values)
                    ax.plot(curve_x, np.minimum(values, 10.0), style, color=color, lw=1.1)
                if lowest >= 1:
                    ax.text(
                        0.98,
                        0.9 - 0.07 * i,
                        f"{label}: bounds >= {lowest:.3g}, vacuous",
                        transform=ax.transAxes,
                        ha="right",
                        fontsize=6,
                        color=color,
                    )
                xs = [search_epochs(ops, t) if x == "epochs" else t for t in group["T"]]
                rate = np.maximum(group["rate"].to_numpy(), floor)
                err = [
                    rate - np.maximum(group["ci_low"].to_numpy(), floor),
                    np.maximum(group["ci_high"].to_numpy() - rate, 0.0),
                ]
                name = f"noise {label:g} pp" if credits == "nb201" else str(label)
                ax.errorbar(xs, rate, yerr=err, fmt="o", ms=3.5, color=color, capsize=2, label=name)
            ax.axhspan(1, 10, color="0.92", zorder=0)
            ax.set_yscale("log")
            ax.set_ylim(floor / 10, 10)
            edges = int(part["edges"].iloc[0])
            ax.set_title(f"{titles.get(credits, 'NAS-Bench-201 (tabular)')}, E={edges}")
            ax.set_xlabel("rounds per prune T" if x == "T" else "search epochs T(K+...+2)")
            ax.legend(fontsize=7, loc="lower right")
        axes[0, 0].set_ylabel("P(found != per-edge optimum)")
        fig.suptitle(
            "solid: successive-rejects bound, dashed: Hoeffding bound (grey band: vacuous, >= 1); "
            "points: DDPNAS Monte-Carlo with 95% Clopper-Pearson intervals",
            fontsize=8,
        )
        fig.tight_layout()
        _save(fig, out)


def cost_figure(df: pd.DataFrame, optimum: float, out: Path) -> None:
    """Accuracy of the found cell vs queries, one panel per noise level."""
    noises = list(dict.fromkeys(df["noise"]))
    with plt.style.context("default"), plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            1, len(noises), figsize=(4.0 * len(noises), 3.4), sharey=True, squeeze=False
        )
        for ax, noise in zip(axes[0], noises, strict=True):
            part = df[df["noise"] == noise]
            for i, (method, group) in enumerate(part.groupby("method", sort=False)):
                ax.errorbar(
                    group["queries"],
                    group["test_acc"],
                    yerr=group["ci95"],
                    fmt="o-",
                    ms=3.5,
                    capsize=2,
                    color=f"C{i}",
                    label=f"{method} ({int(group['runs'].iloc[0])} runs)",
                )
                if method == "ddpnas":
                    for q, acc, t in zip(
                        group["queries"], group["test_acc"], group["T"], strict=True
                    ):
                        ax.annotate(
                            f"T={t}",
                            (q, acc),
                            fontsize=6,
                            xytext=(3, -8),
                            textcoords="offset points",
                        )
            ax.axhline(optimum, color="0.3", ls=":", lw=1, label=f"optimum {optimum:.2f}")
            ax.set_title(f"reward noise {noise:g} pp")
            ax.set_xlabel("search cost (table queries = search epochs)")
            ax.legend(fontsize=7, loc="lower right")
        axes[0, 0].set_ylabel("C10 test accuracy of found cell (%)")
        fig.suptitle(
            "NAS-Bench-201 (tabular): accuracy vs search cost, mean and 95% CI", fontsize=8
        )
        fig.tight_layout()
        _save(fig, out)


ASSUMPTIONS = (
    "Model: op k of edge e has a mean credit in [0, 1]; one credit per surviving op and round; "
    "rounds independent. Hoeffding bound (method document): the prune at step m is decided by the "
    "T fresh credits of the last T rounds, Hoeffding on paired differences (range 2), "
    "exp(-T gap^2 / 2) for the largest-gap competitor sure to survive. Successive-rejects bound "
    "(Audibert, Bubeck & Munos 2010, on our schedule): the prune at step m compares means of all "
    "m T credits, independent ops, union over the m largest-gap competitors. Both are unions over "
    "the K-1 prune steps and the E edges; >= 1 is vacuous."
)
CODE_NOTE = (
    "The code compares theta, a positive data-dependently weighted sum of the per-round scores "
    "softmax(100 accuracy) of every round since the start (momentum 0.9), not means of raw "
    "accuracies; neither bound is a theorem about it, so the Monte-Carlo of the real DDPNAS "
    "strategy (JointCategorical update and prune unchanged) checks them: EXCEEDED marks a rate "
    "whose one-sided Clopper-Pearson lower end (level {alpha}) lies above the bound."
)


#: The figures :func:`run_bound_report` writes into its figures folder.
FIGURES = {"T": "bound_T.png", "epochs": "bound_epochs.png", "cost": "bound_cost.png"}


def run_bound_report(
    block: dict[str, Any], bench: NB201Bench, out: str | Path, figures: str | Path
) -> pd.DataFrame:
    """Run the Monte-Carlo and the baselines, then write the tables and figures.

    Every number is computed before the first file is written, so bad input or a failing
    baseline leaves no partial output.
    """
    out, figures = Path(out), Path(figures)
    check_baselines(block["baselines"])
    table = NB201Table(bench)
    outcomes = run_settings(block, table)
    df = bound_rows(outcomes, block["target"], block["alpha"])
    gaps = curve_gaps(outcomes)
    costs = cost_rows(block, bench, table, outcomes)
    optimum = tuple(int(k) for k in table.marginals.argmax(axis=1))
    cpu = torch.device("cpu")
    env = environment(cpu)
    notes = [
        ASSUMPTIONS,
        CODE_NOTE.format(alpha=block["alpha"]),
        f"Synthetic profiles (op means, best first): {PROFILES}; Gaussian std "
        f"{block['gaussian_std']}, clipped to [0, 1] (gaps from the clipped means). NAS-Bench-201: "
        "gaps from the table's per-edge marginal means of the 200-epoch validation accuracy; "
        "failure = ending on an op below the edge's best marginal. "
        f"That per-edge optimum, {table.space.arch_to_str(optimum)}, tests at "
        f"{table.test[table.codes(np.array([optimum]))][0]:.2f} (C10 test); the search sees gaps "
        "conditional on the other edges' survivors, not marginal ones, and often ends on other, "
        "sometimes better cells: the independent-arms model does not describe the table.",
        f"'T for target': smallest T whose successive-rejects bound is <= {block['target']} "
        "(bound inverted); 'Epochs for target': the search length T (K + ... + 2) it costs.",
        f"{block['seeds']} seeds per setting, master seed {block['seed']}; "
        f"{device_name(cpu)}, torch {env['torch']}; "
        f"Monte-Carlo {df['seconds'].sum():.1f} s in all.",
    ]
    write_table(df, bound_display(df), out, "Failure bounds of DDPNAS vs Monte-Carlo", notes)
    failure_figure(df, gaps, "T", figures / FIGURES["T"])
    failure_figure(df, gaps, "epochs", figures / FIGURES["epochs"])
    display = costs.assign(
        test_acc=[
            f"{a:.2f} ± {c:.2f}" for a, c in zip(costs["test_acc"], costs["ci95"], strict=True)
        ]
    ).drop(columns="ci95")
    write_table(
        costs,
        display,
        out.with_name(out.name + "_cost"),
        "NAS-Bench-201 (tabular): C10 test accuracy of the found cell vs search cost",
        [
            "Every method gets the 200-epoch validation accuracy plus Gaussian noise (pp) as "
            "reward and the same number of table queries (DDPNAS: T (K + ... + 2)); "
            "mean ± 95% CI (1.96 standard errors) over runs."
        ],
    )
    cost_figure(costs, bench.optimum("cifar10_test_acc"), figures / FIGURES["cost"])
    return df
