"""Result tables: our measured runs beside the published figures (CSV + Markdown + LaTeX)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ddpnas.errors import DDPNASError
from ddpnas.io.files import atomic_paths, table_paths
from ddpnas.nasbench.table import NB201Bench
from ddpnas.report.html_table import table_html

# Table column -> NAS-Bench-201 metric (200-epoch figures, as in the NAS-Bench-201 paper's table).
NB201_COLUMNS = {
    "c10_valid": "cifar10_valid_valid_acc",
    "c10_test": "cifar10_test_acc",
    "c100_valid": "cifar100_valid_acc",
    "c100_test": "cifar100_test_acc",
    "in16_valid": "imagenet16_120_valid_acc",
    "in16_test": "imagenet16_120_test_acc",
}
# The spec blocks that matter for each evaluation mode (the others hold unused defaults).
RELEVANT = {
    "tabular": ("space", "strategy", "strategy_args", "tabular"),
    "weight_sharing": ("space", "strategy", "strategy_args", "supernet", "train"),
}
HEADERS = {
    "c10_valid": "C10 valid",
    "c10_test": "C10 test",
    "c100_valid": "C100 valid",
    "c100_test": "C100 test",
    "in16_valid": "IN16 valid",
    "in16_test": "IN16 test",
}


def darts_protocol(space: str) -> dict[tuple[str, str], Any]:
    """DARTS's published search settings (NAS-Bench-201's for its space: batch-statistics BN)."""
    return {
        ("train", "lr_min"): 0.001,
        ("train", "arch_batch_augment"): True,
        ("supernet", "affine"): False,
        ("supernet", "track_running_stats"): space == "darts",
    }


def method_label(record: dict[str, Any]) -> str:
    """The configured label, marked when a DARTS search departs from the published protocol."""
    spec = record["spec"]
    if spec["strategy"] != "darts":
        return record["label"]
    gaps = [
        f"{block}.{key}={spec.get(block, {}).get(key)}"
        for (block, key), value in darts_protocol(spec["space"]).items()
        if spec.get(block, {}).get(key) != value
    ]
    return record["label"] + (f" [not DARTS's protocol: {', '.join(gaps)}]" if gaps else "")


@cache
def published() -> dict[str, Any]:
    """The published figures shipped with the package (ddpnas/report/published.yaml)."""
    return yaml.safe_load(resources.files("ddpnas.report").joinpath("published.yaml").read_text())


# What the reports read from a search record and from a retraining's result.json.
SEARCH_KEYS = (
    "experiment", "label", "space", "strategy", "mode", "seed", "spec", "arch", "epochs",
    "search_seconds", "simulated_seconds", "environment", "ops", "edges", "history",
)  # fmt: skip
RETRAIN_KEYS = (
    "test_acc", "params_m", "epochs", "train_images", "test_images", "wall_seconds", "config",
    "environment",
)  # fmt: skip


def load_runs(
    paths: Iterable[str | Path], required: Sequence[str] = SEARCH_KEYS
) -> list[dict[str, Any]]:
    """Read search records (or other result files with ``required`` keys); a missing, torn or
    incomplete file is an error naming it."""
    runs = []
    for path in paths:
        try:
            run = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DDPNASError(f"cannot read search record {path}: {exc}; rerun its search") from exc
        missing = [k for k in required if k not in run] if isinstance(run, dict) else required
        if missing:
            raise DDPNASError(
                f"{path} is not a complete result file (missing {', '.join(missing)}); "
                "rerun the job that writes it"
            )
        runs.append(run)
    return runs


def seed_ranges(seeds: Iterable[int]) -> str:
    """Seeds as compact ranges: ``0-199`` or ``0-2, 5, 7-9``."""
    parts: list[str] = []
    run: list[int] = []
    for seed in sorted(set(seeds)):
        if run and seed != run[-1] + 1:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
            run = []
        run.append(seed)
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ", ".join(parts)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std; the std of a single run is unknown (NaN), not zero."""
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else float("nan")


def _stats(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean, sample std and the standard error of the mean (std / sqrt(n); NaN for one run)."""
    mean, std = _mean_std(values)
    return mean, std, std / np.sqrt(len(values))


def by_experiment(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Search records grouped by experiment, in first-seen order (one table row each)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(run["experiment"], []).append(run)
    return groups


def nb201_columns(bench: NB201Bench) -> dict[str, str]:
    """The table columns our rows can fill from one benchmark release (that of the test columns).

    A row never mixes releases: columns the back-end reads from another release (the compact
    table's C100 / IN16 valid come from v1.0, its test columns from NATS-tss) stay empty.
    """
    release = bench.version(NB201_COLUMNS["c10_test"])
    return {col: m for col, m in NB201_COLUMNS.items() if bench.version(m) == release}


def used_epochs(record: dict[str, Any]) -> float:
    """Epochs (queries) the answer drew on: a budgeted search's query that would have crossed its
    budget was looked up but not counted. Records written before ``used_epochs`` existed: the
    budget's own count from the last snapshot, else every epoch."""
    if record.get("used_epochs") is not None:
        return float(record["used_epochs"])
    state = (record.get("history") or [{}])[-1].get("state") or {}
    return float(state.get("counted", record["epochs"]))


def used_simulated(record: dict[str, Any]) -> float:
    """Simulated training seconds of the used queries (see :func:`used_epochs`)."""
    if record.get("used_simulated_seconds") is not None:
        return float(record["used_simulated_seconds"])
    state = (record.get("history") or [{}])[-1].get("state") or {}
    return float(state.get("spent_seconds", record.get("simulated_seconds", 0.0)))


#: A tabular search's reward -> the dataset it searched on (weight-sharing searches: CIFAR-10).
SEARCH_DATA = {
    "cifar10_valid_valid_acc": "CIFAR-10",
    "cifar100_valid_acc": "CIFAR-100",
    "imagenet16_120_valid_acc": "ImageNet16-120",
}


def search_data(record: dict[str, Any]) -> str:
    """The dataset whose validation accuracy steered the search."""
    spec = record.get("spec", {})
    if record.get("mode", spec.get("mode")) != "tabular":
        return "CIFAR-10"
    return SEARCH_DATA[spec.get("tabular", {}).get("metric", "cifar10_valid_valid_acc")]


def protocol(record: dict[str, Any]) -> str:
    """The reward and the cost accounting of a search, read from its spec (the label names the
    method's own settings)."""
    spec = record.get("spec", {})
    if record.get("mode", spec.get("mode")) != "tabular":
        return "weight sharing: supernet validation accuracy (cifar10-valid split)"
    tab, args = spec.get("tabular", {}), spec.get("strategy_args", {})
    noise = f" + {tab['noise_std']:g} pp noise" if tab.get("noise_std") else ""
    reward = f"{tab.get('hp', '200')}-epoch valid acc (mean over trials){noise}"
    if tab.get("metric", "cifar10_valid_valid_acc") != "cifar10_valid_valid_acc":
        charge = "no training time in the table, none charged"
    else:
        epochs, valid = tab.get("charge_epochs", 1), tab.get("charge_valid_epochs") or 0
        plus = f" + {valid:g}" if valid else ""
        unit = "epoch" if epochs + valid == 1 else "epochs"
        charge = f"each query charged {epochs}{plus} {unit} of train time"
    if args.get("budget_seconds") is not None:
        stop = f"budget {args['budget_seconds']:,.0f} s"
    elif args.get("max_epochs") is not None:
        stop = f"budget {args['max_epochs']} queries"
    else:
        stop = "no budget: the method's own schedule"
    return f"{reward}; {charge}; {stop}"


def _decision(group: list[dict[str, Any]], key: str) -> tuple[float, float]:
    """Mean and std over seeds of one ``decision`` figure (NaN without one)."""
    values = [r["decision"][key] for r in group if r.get("decision")]
    return _mean_std(values) if values else (np.nan, np.nan)


def _disconnected(group: list[dict[str, Any]]) -> int:
    """Runs whose found cell has no path from input to output (:meth:`SearchSpace.disconnected`)."""
    from ddpnas.spaces import get_space

    space = get_space(group[0].get("space", "nb201"))
    return sum(space.disconnected(space.str_to_arch(r["arch"])) for r in group)


def run_figures(group: list[dict[str, Any]]) -> dict[str, Any]:
    """The search-side figures of one experiment: queries and simulated time actually used, how
    decided its final distribution was, how many found cells are disconnected."""
    sims = [used_simulated(r) for r in group]
    entropy, entropy_std = _decision(group, "entropy")
    best, best_std = _decision(group, "best_op_probability")
    decisions = {r["decision"]["of"] for r in group if r.get("decision")}
    return {
        "search_epochs": _mean_std([used_epochs(r) for r in group])[0],
        "search_seconds": _mean_std([r["search_seconds"] for r in group])[0],
        "simulated_seconds": float(np.mean(sims)),
        "simulated_max_seconds": float(np.max(sims)),
        "decision_entropy": entropy,
        "decision_entropy_std": entropy_std,
        "decision_best_prob": best,
        "decision_best_prob_std": best_std,
        "decision_of": "; ".join(sorted(decisions)) or None,
        "disconnected": _disconnected(group),
        "hardware": group[0]["environment"]["hardware"],
    }


def nb201_rows(runs: list[dict[str, Any]], bench: NB201Bench) -> pd.DataFrame:
    """One row per experiment (mean ± std over seeds), grouped by the dataset it searched on,
    then the published rows and the optimum.

    ``benchmark`` names the release of every number in the row.
    """
    release = bench.version(NB201_COLUMNS["c10_test"])
    columns = nb201_columns(bench)
    rows = []
    for name, group in by_experiment(runs).items():
        records = [bench.query(r["arch"], hp="200") for r in group]
        row: dict[str, Any] = {
            "method": method_label(group[0]),
            "source": f"ours: {name}",
            "benchmark": release,
            "runs": len(group),
            "search_data": search_data(group[0]),
            "protocol": protocol(group[0]),
        }
        for col in NB201_COLUMNS:
            row[col] = row[f"{col}_std"] = row[f"{col}_se"] = np.nan
        for col, metric in columns.items():
            row[col], row[f"{col}_std"], row[f"{col}_se"] = _stats([rec[metric] for rec in records])
        row.update(run_figures(group))
        archs = pd.Series([r["arch"] for r in group]).value_counts()
        row["arch"] = f"{archs.index[0]} ({archs.iloc[0]}/{len(group)})"
        rows.append(row)
    order = list(SEARCH_DATA.values())
    rows.sort(key=lambda r: order.index(r["search_data"]))  # stable: config order within a group
    pub = published()["nb201"]
    for entry in pub["rows"]:
        mark = "" if entry["checked"] else " [unchecked]"
        row = {
            "method": entry["method"] + mark,
            "source": pub["source"],
            "benchmark": pub["benchmark"],
            "runs": np.nan,
        }
        std = entry.get("std", [np.nan] * len(pub["columns"]))
        for col, mean, sd in zip(pub["columns"], entry["mean"], std, strict=True):
            row[col], row[f"{col}_std"] = mean, sd
        rows.append(row)
    optimum = {
        "method": "optimum (200-epoch, over all 15,625 cells)",
        "source": f"{bench.backend} back-end: {Path(bench.source).name}",
        "benchmark": release,
        "runs": np.nan,
    }
    for col, metric in NB201_COLUMNS.items():
        optimum[col] = bench.optimum(metric) if col in columns else np.nan
    rows.append(optimum)
    return pd.DataFrame(rows)


def _fmt(mean: float, std: float, se: float = float("nan")) -> str:
    """``mean ± std``, then the standard error when known (our rows over several seeds)."""
    if pd.isna(mean):
        return "-"
    text = f"{mean:.2f}" if pd.isna(std) else f"{mean:.2f} ± {std:.2f}"
    return text if pd.isna(se) else f"{text} (SE {se:.2f})"


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    """A column, or NaN where the frame has none (e.g. no row with a standard error)."""
    return df[name] if name in df else pd.Series(np.nan, index=df.index)


def _fmt_cost(row: pd.Series) -> str:
    if pd.isna(row.get("search_seconds")):
        return "-"
    cost = f"{row['search_seconds']:.3g} s on {row['hardware']}"
    if row.get("simulated_seconds"):
        cost += f" (simulated training {row['simulated_seconds'] / 3600:.2f} h"
        if row.get("runs", 1) > 1 and not pd.isna(row.get("simulated_max_seconds")):
            cost += f", max {row['simulated_max_seconds']:,.0f} s"
        cost += ")"
    return cost


def _fmt_decision(mean: float, std: float) -> str:
    if pd.isna(mean):
        return "-"
    return f"{mean:.3f}" if pd.isna(std) else f"{mean:.3f} ± {std:.3f}"


def decision_columns(df: pd.DataFrame) -> dict[str, list[str]]:
    """The displayed decision columns (see :data:`DECISION_NOTE`)."""
    heads = {"Final entropy (norm.)": "decision_entropy", "Best-op prob.": "decision_best_prob"}
    return {
        head: [
            _fmt_decision(m, s)
            for m, s in zip(_column(df, key), _column(df, f"{key}_std"), strict=True)
        ]
        for head, key in heads.items()
    }


DECISION_NOTE = (
    "Final entropy (norm.) and best-op prob.: how decided the distribution the answer was read "
    "from is, per edge then averaged over edges and seeds (mean ± std): the entropy divided by "
    "ln(ops it spreads over), 1 = uniform, 0 = one op; the best op's probability, 1/ops = "
    "uniform. DDPNAS: theta before its last prune (over the 2 ops left); REINFORCE: "
    "softmax(logits); ENAS: the controller's marginals; DARTS: softmax(alpha). '-': a method "
    "without one (RS, REA, RSPS) or a record written before it was stored."
)
QUERIES_NOTE = (
    "Epochs / queries (used): engine epochs the answer drew on (a tabular query is one epoch); "
    "a budgeted search's query that would have crossed the budget is looked up but not counted, "
    "here or in its simulated time (mean over seeds, and the largest)."
)
DISCONNECTED_NOTE = (
    "Disconnected: runs whose found cell has no path of non-'none' ops from the cell's input to "
    "its output (its output is zero, so its accuracy is chance: 10 % on CIFAR-10)."
)


def nb201_display(df: pd.DataFrame) -> pd.DataFrame:
    """Human-readable version of :func:`nb201_rows` for Markdown and LaTeX."""
    out = pd.DataFrame({"Method": df["method"]})
    out["Searched on"] = _column(df, "search_data").map(lambda d: "-" if pd.isna(d) else d)
    out["Runs"] = df["runs"].map(lambda n: "-" if pd.isna(n) else str(int(n)))
    for col, head in HEADERS.items():
        out[head] = [
            _fmt(m, s, se)
            for m, s, se in zip(df[col], df[f"{col}_std"], _column(df, f"{col}_se"), strict=True)
        ]
    out["Epochs / queries (used)"] = _column(df, "search_epochs").map(
        lambda e: "-" if pd.isna(e) else f"{e:g}"
    )
    out["Search cost (measured)"] = df.apply(_fmt_cost, axis=1)
    out = out.assign(**decision_columns(df))
    out["Disconnected"] = [
        "-" if pd.isna(d) else f"{int(d)}/{int(n)}"
        for d, n in zip(_column(df, "disconnected"), df["runs"], strict=True)
    ]
    out["Protocol"] = _column(df, "protocol").map(lambda p: "-" if pd.isna(p) else p)
    out["Benchmark release"] = df["benchmark"]
    out["Source"] = df["source"]
    return out


def top_cells(archs: Iterable[str], top: int = 3) -> str:
    """The ``top`` most frequent cells with their counts (ties in first-seen order), and how many
    other distinct cells there were: a readable line even over 200 seeds."""
    counts = pd.Series(list(archs)).value_counts(sort=True)
    text = "; ".join(f"`{arch}` x{n}" for arch, n in counts.iloc[:top].items())
    others = len(counts) - top
    return text + (f"; and {others} other cell{'s' if others > 1 else ''}" if others > 0 else "")


def provenance(runs: list[dict[str, Any]]) -> list[str]:
    """One line per experiment: seeds, the most frequent architectures, hardware and versions
    behind our rows."""
    lines = []
    for name, group in by_experiment(runs).items():
        env = group[0]["environment"]
        spec = json.dumps(
            {k: v for k, v in group[0]["spec"].items() if k in RELEVANT[group[0]["mode"]]}
        )
        lines.append(
            f"**{name}** ({group[0]['label']}): seeds {seed_ranges(r['seed'] for r in group)}; "
            f"spec `{spec}`; {env['hardware']}, torch {env['torch']}, Python {env['python']}, "
            f"ddpnas {env['ddpnas']}. Found: {top_cells(str(r['arch']) for r in group)}."
        )
    return lines


def write_table(
    df: pd.DataFrame, display: pd.DataFrame, stem: str | Path, title: str, notes: Sequence[str] = ()
) -> None:
    """Write ``stem``.csv (raw numbers), .md, .tex and .html (formatted): all four or none."""
    footer = "".join(f"\n- {note}" for note in notes)
    markdown = f"# {title}\n\n{display.to_markdown(index=False)}\n{footer}\n"
    latex = display.to_latex(index=False, caption=title, escape=True)
    page = table_html(display, title, notes)
    with atomic_paths(table_paths(stem)) as (csv, md, tex, html):
        df.to_csv(csv, index=False)
        md.write_text(markdown)
        tex.write_text(latex)
        html.write_text(page, encoding="utf-8")


PAPER_PROTOCOL = {"epochs": 600, "train_size": None, "test_size": None}


def _scale(retrain: dict[str, Any]) -> str:
    """ "paper protocol" only for the full 600-epoch 50k/10k run on a GPU; else what is small."""
    cfg = retrain["config"]
    small = [f"{key}={cfg[key]}" for key, value in PAPER_PROTOCOL.items() if cfg.get(key) != value]
    if retrain["environment"]["device"] != "cuda":
        small.append("CPU")
    scale = "paper protocol" if not small else "small-scale: " + ", ".join(small)
    if cfg.get("amp"):  # the published protocol trains in fp32
        scale += f"; AMP ({cfg.get('amp_dtype')}), not fp32"
    return scale


def _cost_text(seconds: float, env: dict[str, str]) -> str:
    """GPU-days on a GPU (the unit the papers use), seconds on a CPU; always naming the device."""
    if env["device"] == "cuda":
        return f"{seconds / 86400:.3g} GPU-days ({seconds / 3600:.3g} h) on {env['hardware']}"
    return f"{seconds:.3g} s on {env['hardware']}"


def cifar10_rows(searches: list[dict[str, Any]], retrains: list[dict[str, Any]]) -> pd.DataFrame:
    """Our DARTS-space searches (retrained, mean ± std over seeds) beside the published rows."""
    rows = []
    groups: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for search, retrain in zip(searches, retrains, strict=True):
        groups.setdefault(search["experiment"], []).append((search, retrain))
    for name, pairs in groups.items():
        errors = [100.0 * (1.0 - r["test_acc"]) for _, r in pairs]
        search, retrain = pairs[0]
        row: dict[str, Any] = {
            "method": method_label(search),
            "source": f"ours: {name}",
            "runs": len(pairs),
        }
        row["test_error"], row["test_error_std"], row["test_error_se"] = _stats(errors)
        row["params_m"] = _mean_std([r["params_m"] for _, r in pairs])[0]
        row["search_seconds"] = _mean_std([s["search_seconds"] for s, _ in pairs])[0]
        row["search_cost"] = _cost_text(row["search_seconds"], search["environment"])
        row["retrain_seconds"] = _mean_std([r["wall_seconds"] for _, r in pairs])[0]
        row["retrain_cost"] = _cost_text(row["retrain_seconds"], retrain["environment"])
        row["scale"] = _scale(retrain)
        searches_of = [s for s, _ in pairs]
        row["decision_entropy"], row["decision_entropy_std"] = _decision(searches_of, "entropy")
        best = _decision(searches_of, "best_op_probability")
        row["decision_best_prob"], row["decision_best_prob_std"] = best
        rows.append(row)
    pub = published()["cifar10"]
    for entry in pub["rows"]:
        error, params, days = entry["values"]
        rows.append(
            {
                "method": entry["method"] + ("" if entry["checked"] else " [unchecked]"),
                "source": pub["source"],
                "runs": np.nan,
                "test_error": error,
                "test_error_std": np.nan,
                "params_m": params,
                "search_cost": "-" if days is None else f"{days:g} GPU-days (published)",
                "retrain_cost": "-",
                "scale": "published",
            }
        )
    return pd.DataFrame(rows)


def cifar10_display(df: pd.DataFrame) -> pd.DataFrame:
    """Human-readable version of :func:`cifar10_rows`."""
    return pd.DataFrame(
        {
            "Method": df["method"],
            "Runs": df["runs"].map(lambda n: "-" if pd.isna(n) else str(int(n))),
            "Test error (%)": [
                _fmt(m, s, se)
                for m, s, se in zip(
                    df["test_error"],
                    df["test_error_std"],
                    _column(df, "test_error_se"),
                    strict=True,
                )
            ],
            "Params (M)": df["params_m"].map(lambda p: "-" if pd.isna(p) else f"{p:.2f}"),
            "Search cost": df["search_cost"],
            "Retrain cost": df["retrain_cost"],
            "Scale": df["scale"],
            **decision_columns(df),
            "Source": df["source"],
        }
    )
