"""The supernet ranking check: sampling, tie-aware statistics, per-edge order, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import REPO, SHARED_DATA, require
from scipy import stats

from ddpnas.cli.main import main
from ddpnas.config.load import load_config
from ddpnas.report import ranking


def test_topk_overlap_is_tie_aware() -> None:
    equal = np.ones(4)
    assert ranking.topk_inclusion(equal, 2).tolist() == [0.5] * 4  # not "the first two"
    assert ranking.topk_overlap(equal, np.arange(4.0), 2) == pytest.approx(0.5)
    scores = np.arange(10.0)
    assert ranking.topk_overlap(scores, scores, 3) == 1.0
    assert ranking.topk_overlap(scores, -scores, 3) == 0.0
    assert ranking.topk_overlap(scores, scores, 50) == 1.0  # k larger than n: all of them


def test_correlation_is_undefined_for_a_constant_supernet_not_zero() -> None:
    flat = ranking._correlation(np.ones(20), np.arange(20.0), "kendall", 200, 0)
    assert np.isnan(flat.value) and np.isnan(flat.low)
    x = np.arange(30.0)
    y = x + np.random.default_rng(0).normal(0, 5, 30)
    tau = ranking._correlation(x, y, "kendall", 300, 0)
    assert tau.value == pytest.approx(stats.kendalltau(x, y).statistic)
    assert tau.low <= tau.value <= tau.high < 1.0


def test_bootstrap_resamples_with_replacement() -> None:
    """Resampling the pairs without replacement only permutes them, which leaves tau unchanged:
    the interval would collapse to the point estimate. With replacement it has the width of
    tau's sampling error (about 2 x 1.96 x 0.08 here)."""
    x = np.arange(30.0)
    y = x + np.random.default_rng(0).normal(0, 5, 30)
    for kind in ("kendall", "spearman"):
        agreement = ranking._correlation(x, y, kind, 300, 0)
        assert agreement.low < agreement.value < agreement.high
        assert agreement.high - agreement.low > 0.1, agreement


def test_sample_is_stratified_fixed_by_its_seed(bench) -> None:
    default = load_config(REPO / "config" / "config.yaml")["report"]["ranking"]
    n = default["cells"]
    cells = ranking.sample_cells(bench, n, default["sample_seed"])
    assert len(set(cells)) == n
    assert cells == ranking.sample_cells(bench, n, default["sample_seed"])
    assert cells != ranking.sample_cells(bench, n, default["sample_seed"] + 1)
    acc = bench.column(ranking.VALID)
    edges = np.quantile(acc, np.linspace(0, 1, ranking.STRATA + 1))
    picked = np.array([acc[bench.index_of(c)] for c in cells])
    counts = np.histogram(picked, bins=edges)[0]
    assert counts.min() >= n // ranking.STRATA - 1  # every decile, good and bad cells alike
    with pytest.raises(Exception, match="at least one"):
        ranking.sample_cells(bench, 0, 0)


def test_implied_order_is_the_winner_then_reverse_pruning() -> None:
    ops = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
    prunes = [
        ["none"] * 6,
        ["avg_pool_3x3"] * 6,
        ["skip_connect"] * 6,
        ["nor_conv_1x1"] * 6,
    ]
    arch = "+".join("|" + "|".join(f"nor_conv_3x3~{j}" for j in range(n)) + "|" for n in (1, 2, 3))
    run = {
        "experiment": "x",
        "label": "x",
        "seed": 0,
        "arch": arch,
        "ops": ops,
        "edges": [str(e) for e in range(6)],
        "history": [{"events": {"pruned": p}} for p in prunes] + [{"events": {}}],
    }
    order = ranking.implied_order(run)
    assert order[0] == ["nor_conv_3x3", "nor_conv_1x1", "skip_connect", "avg_pool_3x3", "none"]
    marginals = np.tile(np.array([1.0, 2.0, 4.0, 5.0, 3.0]), (6, 1))
    rows = ranking.edge_rows(run, marginals)
    assert all(r["top_op_agrees"] for r in rows)
    assert rows[0]["kendall"] == pytest.approx(stats.kendalltau([1, 3, 4, 5, 2], marginals[0])[0])
    assert ranking.implied_order({**run, "history": [{"events": {}}]}) is None


@pytest.mark.slow
def test_ranking_of_a_real_supernet_end_to_end(tmp_path: Path, cache_dir, bench, monkeypatch):
    """A tiny weight-sharing search writes its supernet; the report re-scores it and agrees."""
    require(SHARED_DATA / "cifar10-jpeg.zip")
    monkeypatch.setenv("DDPNAS_CACHE", str(cache_dir))
    config = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())
    config["data"]["root"] = str(SHARED_DATA)
    path = tmp_path / "ci.yaml"
    path.write_text(yaml.safe_dump(config))
    record, supernet = tmp_path / "run.json", tmp_path / "supernet.pt"
    argv = ["search", "--config", str(path), "--experiment", "nb201-ddpnas-ws", "--seed", "0"]
    assert main([*argv, "--out", str(record), "--supernet-out", str(supernet)]) == 0
    run = json.loads(record.read_text())
    assert run["cost"]["devices"] == 1 and run["cost"]["peak_memory_mb"] > 0
    state = torch.load(supernet, weights_only=True)
    assert state["experiment"] == "nb201-ddpnas-ws" and state["model"]

    # Shipped defaults of the CLI (cells, bootstrap, top-k), the config's data block.
    out, cells = tmp_path / "tables" / "nb201_ranking", tmp_path / "cells.csv"
    data = json.dumps(config["data"])
    common = ["report", "ranking", "--runs", str(record), "--data", data]
    argv = [*common, "--supernets", str(supernet), "--out", str(out)]
    assert main([*argv, "--figure", str(tmp_path / "r.png"), "--cells-out", str(cells)]) == 0
    scored = pd.read_csv(cells)
    assert scored["in_sample"].sum() == 30 and scored["visited"].any()
    assert scored["arch"].is_unique and scored["supernet_acc"].between(0, 100).all()
    for _, row in scored.head(3).iterrows():
        assert row["c10_test"] == pytest.approx(bench.query(row["arch"])["cifar10_test_acc"])
    summary = pd.read_csv(out.with_suffix(".csv")).set_index("cells")
    everything = summary.loc["sample + visited"]
    assert everything["n"] == len(scored)
    tau = stats.kendalltau(scored["supernet_acc"], scored["c10_test"]).statistic
    assert everything["kendall_test"] == pytest.approx(tau)
    assert everything["kendall_test_low"] <= tau <= everything["kendall_test_high"]
    edges = pd.read_csv(tmp_path / "tables" / "nb201_ranking_edges.csv")
    assert len(edges) == 6 and set(edges["edge"]) == set(run["edges"])
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"

    # A supernet from another run (other seed) is refused with one line, nothing written.
    other = dict(run, seed=1)
    (tmp_path / "other.json").write_text(json.dumps(other))
    bad = [*common[:3], str(tmp_path / "other.json"), *common[4:]]
    fig = tmp_path / "bad.png"
    bad += ["--supernets", str(supernet), "--out", str(tmp_path / "bad"), "--figure", str(fig)]
    assert main(bad) == 2
    assert not fig.exists() and not (tmp_path / "bad.csv").exists()
