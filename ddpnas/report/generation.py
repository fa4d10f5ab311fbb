"""Generation sweeps as tables and figures; on NAS-Bench-201, against the table's true front.

For each budget of a sweep the table holds the generated architecture, its objective and costs
(additive, and re-measured on the built network when the space is known). On NAS-Bench-201 it also
holds the generated cell's 200-epoch CIFAR-10 test accuracy, the best accuracy of any of the 15,625
cells within the same budget (the true accuracy/cost Pareto front) and the gap between the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ddpnas.generation.latency import RESOURCE
from ddpnas.generation.solver import CostTable, Generated
from ddpnas.io.files import atomic_write
from ddpnas.nasbench.table import NB201Bench
from ddpnas.report.plots import STYLE
from ddpnas.spaces.base import SearchSpace

#: The accuracy the NB201 validation reports: 200-epoch CIFAR-10 test accuracy (train+valid).
NB201_METRIC = "cifar10_test_acc"


def all_cell_costs(space: SearchSpace, bench: NB201Bench, costs: CostTable) -> pd.DataFrame:
    """Every cell of the benchmark with its accuracy and its (additive, exact) cost per resource."""
    archs = np.array([space.str_to_arch(a) for a in bench.arch_strings()])
    edges = np.arange(archs.shape[1])
    frame = pd.DataFrame({"arch": bench.arch_strings(), "acc": bench.column(NB201_METRIC)})
    for name, (fixed, table) in costs.items():
        frame[name] = fixed + np.asarray(table)[edges, archs].sum(axis=1)
    return frame


def sweep_rows(
    space: SearchSpace | None,
    resource: str,
    results: Sequence[tuple[float, Generated | None]],
    measured: Sequence[dict[str, float] | None],
    cells: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per budget: the generated architecture, its costs and, given ``cells``, the gap."""
    rows = []
    for (budget, gen), meas in zip(results, measured, strict=True):
        row: dict[str, Any] = {"budget": budget, "resource": resource, "feasible": gen is not None}
        if gen is not None:
            row["arch"] = space.arch_to_str(gen.arch) if space else str(list(gen.arch))
            row["disconnected"] = bool(space and space.disconnected(gen.arch))
            row["objective"] = gen.objective
            row.update({f"{r}": v for r, v in gen.costs.items()})
            row.update({f"measured_{r}": v for r, v in (meas or {}).items()})
        if cells is not None:
            within = cells[cells[resource] <= budget]
            if gen is not None:
                row["acc"] = float(cells.loc[cells["arch"] == row["arch"], "acc"].iloc[0])
            if len(within):
                best = within["acc"].max()
                # Every cell at the best accuracy, cheapest first: the front may be tied.
                ties = within[within["acc"] == best].sort_values([resource, "arch"])
                row["front_acc"] = float(best)
                row["front_arch"] = ties["arch"].iloc[0]
                row[f"front_{resource}"] = float(ties[resource].iloc[0])
                if gen is not None:
                    row["gap"] = float(best - row["acc"])
        rows.append(row)
    return pd.DataFrame(rows)


def _num(value: Any, scale: float = 1.0, fmt: str = "{:.2f}") -> str:
    return "-" if value is None or pd.isna(value) else fmt.format(value / scale)


def sweep_display(
    df: pd.DataFrame,
    resource: str,
    scale: float,
    unit: str,
    network: str = "",
    latency_of: str = "",
) -> pd.DataFrame:
    """Human-readable version of :func:`sweep_rows` (costs divided by ``scale``, in ``unit``).

    ``network`` names the network the costs count (e.g. "width_mult=0.25, resolution=32") and
    ``latency_of`` where latencies come from, when that is another network (a phone table's).
    """
    of = f"; {network}" if network else ""
    out = pd.DataFrame({f"Budget ({unit}{of})": df["budget"].map(lambda b: _num(b, scale))})
    out["Generated"] = df.get("arch", pd.Series("-", index=df.index)).fillna("infeasible")
    if "disconnected" in df:  # a cell with no path from input to output computes zeros
        cut = df["disconnected"].fillna(False).astype(bool)
        out.loc[cut, "Generated"] += " [disconnected: no input-output path]"
    out["Objective"] = df.get("objective", pd.Series(np.nan, index=df.index)).map(
        lambda v: _num(v, fmt="{:.3f}")
    )
    for col in (resource, f"measured_{resource}"):
        if col in df:
            head = f"{resource} ({unit}{of})" if col == resource else f"re-measured ({unit})"
            out[head] = df[col].map(lambda v: _num(v, scale))
    if resource != RESOURCE and RESOURCE in df:
        out[f"Latency (ms, additive{f'; {latency_of}' if latency_of else ''})"] = df[RESOURCE].map(
            _num
        )
    if "front_acc" in df:
        out["C10 test acc"] = df.get("acc", pd.Series(np.nan, index=df.index)).map(_num)
        out["Front acc (within budget)"] = df["front_acc"].map(_num)
        out["Gap"] = df.get("gap", pd.Series(np.nan, index=df.index)).map(_num)
        out["Front cell"] = df["front_arch"].fillna("-")
    return out


#: The objective's axis label per ``--objective`` (both sums over edges or layers).
OBJECTIVE_LABELS = {
    "log": "log-probability under theta, sum of log theta (nats)",
    "theta": "sum of theta over edges (0 to E)",
}


def sweep_plot(
    df: pd.DataFrame,
    resource: str,
    scale: float,
    unit: str,
    title: str,
    cells: pd.DataFrame | None = None,
    objective: str = "log",
) -> Figure:
    """Generated architectures over the budget: their accuracy on top of all cells and the true
    front (NB201), else the generator's objective. Call within :data:`STYLE`."""
    ok = df[df["feasible"]]
    fig, ax = plt.subplots(figsize=(6.0, 4.0), layout="constrained")
    if cells is not None:
        ax.scatter(
            cells[resource] / scale, cells["acc"], s=2, c="0.75", label="all cells", rasterized=True
        )
        order = cells.sort_values([resource, "acc"], ascending=[True, False])
        front = order[order["acc"] > order["acc"].cummax().shift(fill_value=-np.inf)]
        xs = np.append(front[resource].to_numpy(), cells[resource].max()) / scale
        ys = np.append(front["acc"].to_numpy(), front["acc"].iloc[-1])
        ax.step(xs, ys, where="post", color="k", lw=1.2, label="true front (table)")
        ax.plot(ok[resource] / scale, ok["acc"], "o-", color="C3", label="generated from theta")
        ax.set_ylabel("CIFAR-10 test accuracy (%, 200 epochs)")
        ax.set_ylim(max(cells["acc"].min(), 80.0), cells["acc"].max() + 0.5)
    else:
        ax.plot(ok[resource] / scale, ok["objective"], "o-", color="C3", label="generated")
        ax.set_ylabel(OBJECTIVE_LABELS.get(objective, objective))
    ax.set_xlabel(f"cost: {resource} ({unit})" if unit != resource else resource)
    ax.legend(loc="lower right", fontsize=7)
    ax.set_title(title, fontsize=9)
    return fig


def sweep_figure(
    df: pd.DataFrame,
    resource: str,
    scale: float,
    unit: str,
    out: str | Path,
    title: str,
    cells: pd.DataFrame | None = None,
    objective: str = "log",
) -> None:
    """Write :func:`sweep_plot` to ``out`` (its suffix names the format)."""
    with plt.style.context("default"), plt.rc_context(STYLE):
        fig = sweep_plot(df, resource, scale, unit, title, cells, objective)
        atomic_write(out, lambda tmp: fig.savefig(tmp, format=Path(out).suffix[1:] or "png"))
        plt.close(fig)
