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
from matplotlib.figure import Figure

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


PANEL_TITLES = {"gaussian": "Gaussian credits", "bernoulli": "Bernoulli credits"}


def _bound_curves(ax: Any, steps: np.ndarray, gaps: np.ndarray, color: str) -> float:
    """Both bounds of one setting over ``steps`` (never clipped); returns their largest value."""
    top = 0.0
    for name, style in (("successive_rejects", "-"), ("hoeffding", "--")):
        values = np.array([BOUNDS[name](gaps, t, 1) for t in steps])
        ax.plot(steps, values, style, color=color, lw=1.1)
        top = max(top, float(values.max()))
    return top


def _monte_carlo(ax: Any, group: pd.DataFrame, color: str, label: str) -> None:
    """Rates with 95% Clopper-Pearson intervals; a zero-failure point as an open triangle at its
    interval's upper end (0 failures in N seeds say only "below that")."""
    seen = group[group["failures"] > 0]
    rate = seen["rate"].to_numpy()
    err = [rate - seen["ci_low"].to_numpy(), seen["ci_high"].to_numpy() - rate]
    ax.errorbar(seen["T"], rate, yerr=err, fmt="o", ms=3.5, color=color, capsize=2,
                label=label if len(seen) else None)  # fmt: skip
    zero = group[group["failures"] == 0]
    if len(zero):
        ax.plot(zero["T"], zero["ci_high"], "v", ms=5, mfc="none", color=color,
                label=None if len(seen) else label)  # fmt: skip


def _seeds_text(df: pd.DataFrame) -> str:
    """N of "0 / N": the seeds per setting (a range if the settings differ)."""
    low, high = int(df["seeds"].min()), int(df["seeds"].max())
    return str(low) if low == high else f"{low}-{high}"


def failure_plot(df: pd.DataFrame, gaps: dict[tuple[str, Any], np.ndarray]) -> Figure:
    """Failure probability vs rounds per prune T, one panel per credit model (search epochs on
    the top axis): bound curves, Monte-Carlo points with 95% CIs. ``gaps`` maps (credits, profile
    or noise) to the setting's E x (K-1) gaps. Call within :data:`STYLE`."""
    panels = [c for c in (*CREDITS, "nb201") if (df["credits"] == c).any()]
    fig = plt.figure(figsize=(4.2 * len(panels), 4.0), layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    # from below every interval's lower end (or a zero point's upper end) to above every bound
    low = 0.5 * min([*df.loc[df["ci_low"] > 0, "ci_low"], *df["ci_high"]])
    top = 1.0
    for ax, credits in zip(axes, panels, strict=True):
        part = df[df["credits"] == credits]
        key = "noise" if credits == "nb201" else "profile"
        steps = curve_steps(part)
        for i, (label, group) in enumerate(part.groupby(key, sort=False)):
            top = max(top, _bound_curves(ax, steps, gaps[credits, label], f"C{i}"))
            name = f"noise {label:g} pp" if credits == "nb201" else str(label)
            _monte_carlo(ax, group, f"C{i}", name)
        ops = int(part["ops"].iloc[0])
        per_t = search_epochs(ops, 1)
        top_axis = ax.secondary_xaxis("top", functions=(lambda t, c=per_t: t * c,
                                                        lambda e, c=per_t: e / c))  # fmt: skip
        top_axis.set_xlabel(f"search epochs T({ops}+...+2)", fontsize=7)
        ax.set_title(f"{PANEL_TITLES.get(credits, 'NAS-Bench-201 (tabular)')}, "
                     f"E={int(part['edges'].iloc[0])}", fontsize=9)  # fmt: skip
        ax.set_xlabel("rounds per prune T")
        ax.set_yscale("log")
        ax.legend(fontsize=7, loc="lower left")
    for ax in axes:
        ax.axhspan(1, 2 * top, color="0.92", zorder=0)
    axes[0].set_ylim(low, 2 * top)
    axes[0].set_ylabel("P(found != per-edge optimum)")
    styles = [
        plt.Line2D([], [], color="0.2", ls="-", label="successive-rejects bound"),
        plt.Line2D([], [], color="0.2", ls="--", label="Hoeffding bound"),
        plt.Line2D([], [], color="0.2", marker="o", ls="", label="Monte-Carlo, 95% CI"),
        plt.Line2D([], [], color="0.2", marker="v", mfc="none", ls="",
                   label=f"0 / {_seeds_text(df)} failures: 95% upper limit"),
        plt.Rectangle((0, 0), 1, 1, color="0.92", label="vacuous (>= 1)"),
    ]  # fmt: skip
    fig.legend(handles=styles, loc="outside lower center", ncols=len(styles), fontsize=7)
    return fig


def failure_figure(df: pd.DataFrame, gaps: dict[tuple[str, Any], np.ndarray], out: Path) -> None:
    """Write :func:`failure_plot` as a PNG."""
    with plt.style.context("default"), plt.rc_context(STYLE):
        _save(failure_plot(df, gaps), out)


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
FIGURES = {"T": "bound_T.png", "cost": "bound_cost.png"}


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
    failure_figure(df, gaps, figures / FIGURES["T"])
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
