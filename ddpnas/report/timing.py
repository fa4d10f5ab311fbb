"""Where a pipeline run's time goes: a table from the ``benchmark:`` files Snakemake wrote.

Every rule writes ``results/benchmarks/<stage>/.../<job>.tsv`` (one row: wall seconds, CPU
seconds, peak RSS). Per-seed jobs (``seed<N>.tsv``, ``seeds.tsv``) are grouped by their folder (one
search or retraining experiment), every other file is its own group (one table, one stage), so
the table says which stage and which experiment cost what, in the order of their cost.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from ddpnas.errors import DDPNASError
from ddpnas.runtime import cpu_model

# Snakemake's benchmark columns we read: wall seconds, CPU seconds, peak resident memory (MB).
COLUMNS = {"s": "wall_s", "cpu_time": "cpu_s", "max_rss": "max_rss_mb"}
SEED_JOB = re.compile(r"seeds?\d*")


def read_benchmarks(root: str | Path) -> pd.DataFrame:
    """One row per benchmark file: its group (path without the job), job name and figures."""
    root = Path(root)
    files = sorted(root.rglob("*.tsv"))
    if not files:
        raise DDPNASError(f"no benchmark files (*.tsv) under {root}; run the pipeline first")
    rows = []
    for f in files:
        try:
            frame = pd.read_csv(f, sep="\t")
            values = {name: float(frame[col].iloc[0]) for col, name in COLUMNS.items()}
        except (OSError, ValueError, KeyError, IndexError, pd.errors.ParserError) as exc:
            raise DDPNASError(f"{f}: not a Snakemake benchmark file ({exc})") from None
        rel = f.relative_to(root).with_suffix("")
        group = rel.parent.as_posix() if SEED_JOB.fullmatch(rel.name) else rel.as_posix()
        end = f.stat().st_mtime  # Snakemake writes the file when the job ends
        rows.append({"group": group, "job": rel.as_posix(), "end": end, **values})
    return pd.DataFrame(rows)


def timing_rows(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per group: jobs, summed and largest wall time, CPU time, peak RSS, share of all job time."""
    grouped = jobs.groupby("group", sort=False)
    df = pd.DataFrame(
        {
            "jobs": grouped.size(),
            "wall_s": grouped["wall_s"].sum(),
            "max_job_wall_s": grouped["wall_s"].max(),
            "cpu_s": grouped["cpu_s"].sum(),
            "max_rss_mb": grouped["max_rss_mb"].max(),
        }
    ).reset_index()
    df["share"] = df["wall_s"] / df["wall_s"].sum()
    # ties (equal wall time) keep name order, so the table is the same for the same run
    return df.sort_values(["wall_s", "group"], ascending=[False, True], kind="stable").reset_index(
        drop=True
    )


def timing_display(df: pd.DataFrame) -> pd.DataFrame:
    """Formatted columns plus a total row."""
    total = {
        "Rule / experiment": "**all jobs**",
        "Jobs": str(int(df["jobs"].sum())),
        "Wall (s)": f"{df['wall_s'].sum():.0f}",
        "Largest job (s)": f"{df['max_job_wall_s'].max():.0f}",
        "CPU (s)": f"{df['cpu_s'].sum():.0f}",
        "Peak RSS (MB)": f"{df['max_rss_mb'].max():.0f}",
        "Share": "100%",
    }
    rows = [
        {
            "Rule / experiment": r.group,
            "Jobs": str(r.jobs),
            "Wall (s)": f"{r.wall_s:.1f}",
            "Largest job (s)": f"{r.max_job_wall_s:.1f}",
            "CPU (s)": f"{r.cpu_s:.1f}",
            "Peak RSS (MB)": f"{r.max_rss_mb:.0f}",
            "Share": f"{r.share:.1%}",
        }
        for r in df.itertuples()
    ]
    return pd.DataFrame([*rows, total])


def machine() -> str:
    """The machine the run used, as the notes name it."""
    return f"{cpu_model()}, {os.cpu_count()} CPU cores"


def span_seconds(jobs: pd.DataFrame) -> float:
    """First job's start to last job's end (each start = its file's write time - its wall time)."""
    return float(jobs["end"].max() - (jobs["end"] - jobs["wall_s"]).min())


def timing_notes(df: pd.DataFrame, span: float, cores: int | None) -> list[str]:
    """How to read the table, with the run's end-to-end wall time."""
    where = f" with --cores {cores}" if cores else ""
    return [
        "From Snakemake's `benchmark:` file of every job (results/benchmarks/): wall and CPU "
        "seconds of the job's process (start-up and imports included), summed over the jobs of "
        "one rule and experiment; share = of the summed job wall time.",
        f"Pipeline wall time (first job's start to last job's end{where}; jobs run in parallel "
        f"where cores allow): {span:.0f} s = {span / 60:.1f} min for {df['wall_s'].sum():.0f} s "
        f"of summed job time, on {machine()}. Snakemake's own start-up and the HTML report "
        "are not included.",
    ]
