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
from ddpnas.io.files import atomic_write
from ddpnas.nasbench.table import NB201Bench
from ddpnas.report.html_table import write_html_table

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


def nb201_rows(runs: list[dict[str, Any]], bench: NB201Bench) -> pd.DataFrame:
    """One row per experiment (mean ± std over seeds), then the published rows and the optimum.

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
        }
        for col in NB201_COLUMNS:
            row[col] = row[f"{col}_std"] = row[f"{col}_se"] = np.nan
        for col, metric in columns.items():
            row[col], row[f"{col}_std"], row[f"{col}_se"] = _stats([rec[metric] for rec in records])
        row["search_epochs"] = _mean_std([r["epochs"] for r in group])[0]
        row["search_seconds"] = _mean_std([r["search_seconds"] for r in group])[0]
        row["simulated_seconds"] = _mean_std([r["simulated_seconds"] for r in group])[0]
        row["hardware"] = group[0]["environment"]["hardware"]
        archs = pd.Series([r["arch"] for r in group]).value_counts()
        row["arch"] = f"{archs.index[0]} ({archs.iloc[0]}/{len(group)})"
        rows.append(row)
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
        cost += f" (simulated training {row['simulated_seconds'] / 3600:.2f} h)"
    return cost


def nb201_display(df: pd.DataFrame) -> pd.DataFrame:
    """Human-readable version of :func:`nb201_rows` for Markdown and LaTeX."""
    out = pd.DataFrame({"Method": df["method"]})
    out["Runs"] = df["runs"].map(lambda n: "-" if pd.isna(n) else str(int(n)))
    for col, head in HEADERS.items():
        out[head] = [
            _fmt(m, s, se)
            for m, s, se in zip(df[col], df[f"{col}_std"], _column(df, f"{col}_se"), strict=True)
        ]
    out["Search epochs"] = df.get("search_epochs", pd.Series(np.nan, index=df.index)).map(
        lambda e: "-" if pd.isna(e) else f"{e:g}"
    )
    out["Search cost (measured)"] = df.apply(_fmt_cost, axis=1)
    out["Benchmark release"] = df["benchmark"]
    out["Source"] = df["source"]
    return out


def provenance(runs: list[dict[str, Any]]) -> list[str]:
    """One line per experiment: seeds, architecture(s), hardware and versions behind our rows."""
    lines = []
    for name, group in by_experiment(runs).items():
        env = group[0]["environment"]
        seeds = sorted(r["seed"] for r in group)
        archs = pd.Series([r["arch"] for r in group]).value_counts()
        found = "; ".join(f"`{a}` x{n}" for a, n in archs.items())
        spec = json.dumps(
            {k: v for k, v in group[0]["spec"].items() if k in RELEVANT[group[0]["mode"]]}
        )
        lines.append(
            f"**{name}** ({group[0]['label']}): seeds {seeds}; spec `{spec}`;"
            f" {env['hardware']}, torch {env['torch']}, Python {env['python']}, "
            f"ddpnas {env['ddpnas']}. Found: {found}."
        )
    return lines


def write_table(
    df: pd.DataFrame, display: pd.DataFrame, stem: str | Path, title: str, notes: Sequence[str] = ()
) -> None:
    """Write ``stem``.csv (raw numbers), .md, .tex and .html (formatted), each atomically."""
    stem = Path(stem)
    atomic_write(stem.with_suffix(".csv"), lambda tmp: df.to_csv(tmp, index=False))
    footer = "".join(f"\n- {note}" for note in notes)
    markdown = f"# {title}\n\n{display.to_markdown(index=False)}\n{footer}\n"
    atomic_write(stem.with_suffix(".md"), lambda tmp: tmp.write_text(markdown))
    latex = display.to_latex(index=False, caption=title, escape=True)
    atomic_write(stem.with_suffix(".tex"), lambda tmp: tmp.write_text(latex))
    write_html_table(display, stem.with_suffix(".html"), title, notes)


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
            "Source": df["source"],
        }
    )
