"""The per-rule timing table read from Snakemake benchmark files."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pytest

from ddpnas.cli.main import main

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _bench(root: Path, rel: str, wall: float, cpu: float, rss: float, end: float) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{wall}\t0:00:{int(wall):02d}\t{rss}\t1\t1\t1\t0\t0\t50\t{cpu}\n")
    os.utime(path, (end, end))


def test_timing_table_groups_sorts_and_spans(tmp_path: Path) -> None:
    bench = tmp_path / "benchmarks"
    _bench(bench, "search/exp-a/seed0.tsv", 30.0, 50.0, 800, end=1000.0)
    _bench(bench, "search/exp-a/seed1.tsv", 20.0, 35.0, 900, end=1020.0)
    _bench(bench, "search/tab/seeds.tsv", 5.0, 4.0, 300, end=975.0)
    _bench(bench, "tables/nb201.tsv", 5.0, 4.5, 400, end=1030.0)
    _bench(bench, "imagenet/standin.tsv", 8.0, 7.0, 500, end=990.0)
    out = tmp_path / "tables" / "timing"
    out.parent.mkdir()
    assert main(["report", "timing", "--benchmarks", str(bench), "--out", str(out)]) == 0
    df = pd.read_csv(out.with_suffix(".csv"))
    # groups by rule + experiment, most expensive first; equal wall times in name order
    assert df["group"].tolist() == [
        "search/exp-a",
        "imagenet/standin",
        "search/tab",
        "tables/nb201",
    ]
    first = df.iloc[0]
    assert (first["jobs"], first["wall_s"], first["max_job_wall_s"]) == (2, 50.0, 30.0)
    assert first["cpu_s"] == 85.0 and first["max_rss_mb"] == 900
    assert df["share"].sum() == pytest.approx(1.0)
    md = out.with_suffix(".md").read_text()
    # span: first start (seed0: 1000 - 30 = 970) to last end (1030) = 60 s, not the 68 s summed
    assert "60 s = 1.0 min for 68 s of summed job time" in md
    assert re.search(r"\| \*\*all jobs\*\* +\| +5 +\| +68 +\|", md)


def test_timing_without_benchmarks_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "timing"
    assert main(["report", "timing", "--benchmarks", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ddpnas: error: no benchmark files") and "\n" not in err
    assert not list(tmp_path.glob("timing*"))


def test_timing_rejects_a_file_that_is_not_a_benchmark(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "x.tsv").write_text("not\ta benchmark\n")
    out = tmp_path / "timing"
    assert main(["report", "timing", "--benchmarks", str(tmp_path), "--out", str(out)]) == 2
    assert "x.tsv: not a Snakemake benchmark file" in capsys.readouterr().err
    assert not list(tmp_path.glob("timing.*"))
