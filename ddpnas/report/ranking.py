"""Does the trained supernet rank NAS-Bench-201 cells the way stand-alone training does?

After a weight-sharing search, a fixed set of cells is scored with the final shared weights (top-1
of each single path on the search's validation split) and looked up in the table (200-epoch
CIFAR-10 test accuracy, and the ``cifar10-valid`` validation accuracy). The set is a seeded sample
stratified by the table's 200-epoch ``cifar10-valid`` validation accuracy (equal shares from each
decile of the 15,625 cells, so good and bad cells are both present) plus the cells the search
visited (its answer and at most as many others as the sample holds). Rank agreement is Kendall's
tau-b and Spearman's rho (scipy, ties handled), with paired percentile-bootstrap intervals, and the
tie-aware top-k overlap.

Per edge, the op ranking the search implies (DDPNAS: the reverse order of pruning, the winner
first) is compared with the table's marginal ranking (mean 200-epoch test accuracy of the cells
that use op k on edge e).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats

from ddpnas.errors import DDPNASError
from ddpnas.nasbench.table import NB201Bench
from ddpnas.spaces.base import SearchSpace

TEST = "cifar10_test_acc"  # 200-epoch test accuracy (train on train+valid)
VALID = "cifar10_valid_valid_acc"  # 200-epoch accuracy on the cifar10-valid split
STRATA = 10


def sample_cells(bench: NB201Bench, n: int, seed: int) -> list[str]:
    """``n`` cells in equal shares from each decile of the table's 200-epoch valid accuracy.

    Ties in accuracy are ordered at random (seeded), not by index, before the deciles are cut;
    the remainder of ``n`` / 10 goes to randomly chosen deciles.
    """
    if n < 1:
        raise DDPNASError(f"ranking needs at least one sampled cell, got {n}")
    rng = np.random.default_rng([seed, 201])
    acc = bench.column(VALID)
    shuffled = rng.permutation(len(acc))
    order = shuffled[np.argsort(acc[shuffled], kind="stable")]
    strata = np.array_split(order, STRATA)
    share = np.full(STRATA, n // STRATA)
    share[rng.choice(STRATA, n % STRATA, replace=False)] += 1
    picks = [rng.choice(s, k, replace=False) for s, k in zip(strata, share, strict=True)]
    return [bench.arch_str(int(i)) for i in np.sort(np.concatenate(picks))]


def visited_cells(run: dict[str, Any], limit: int, seed: int) -> list[str]:
    """The cell the search returned, plus up to ``limit`` - 1 others it trained or validated.

    When it visited more (RSPS and ENAS validate 100 candidates at the end), a seeded random pick
    keeps the cost of the check bounded; the order is first-seen.
    """
    seen: dict[str, None] = {}
    for epoch in run["history"]:
        if epoch["arch"]:
            seen[epoch["arch"]] = None
        for evaluated in epoch["evaluated"]:
            seen[evaluated["arch"]] = None
    others = [a for a in seen if a != run["arch"]]
    if len(others) >= limit:
        rng = np.random.default_rng([seed, run["seed"], 7])
        keep = set(rng.choice(len(others), max(limit - 1, 0), replace=False).tolist())
        others = [a for i, a in enumerate(others) if i in keep]
    return [run["arch"], *others]


def topk_inclusion(scores: np.ndarray, k: int) -> np.ndarray:
    """Probability that each item is in the top ``k`` when ties are broken uniformly at random."""
    scores = np.asarray(scores, dtype=float)
    k = min(k, len(scores))
    if k == 0:
        return np.zeros(len(scores))
    threshold = np.sort(scores)[::-1][k - 1]
    above = scores > threshold
    tied = scores == threshold
    prob = above.astype(float)
    prob[tied] = (k - above.sum()) / tied.sum()
    return prob


def topk_overlap(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Expected share of the top ``k`` by ``a`` that is also in the top ``k`` by ``b``."""
    k = min(k, len(a))
    if k == 0:
        return float("nan")
    return float((topk_inclusion(a, k) * topk_inclusion(b, k)).sum() / k)


@dataclass(frozen=True)
class Agreement:
    """A rank correlation with its bootstrap interval (NaN when a side is constant)."""

    value: float
    low: float
    high: float


def _correlation(x: np.ndarray, y: np.ndarray, kind: str, resamples: int, seed: int) -> Agreement:
    """Kendall tau-b or Spearman rho with a paired percentile-bootstrap 95 % interval."""

    def statistic(a: np.ndarray, b: np.ndarray) -> float:
        fn = stats.kendalltau if kind == "kendall" else stats.spearmanr
        return float(fn(a, b).statistic)

    if len(x) < 3 or len(np.unique(x)) < 2 or len(np.unique(y)) < 2:
        return Agreement(float("nan"), float("nan"), float("nan"))
    value = statistic(x, y)
    with warnings.catch_warnings():  # resamples that are constant give NaN; they are dropped
        warnings.simplefilter("ignore")
        boot = stats.bootstrap(
            (x, y),
            statistic,
            paired=True,
            vectorized=False,
            n_resamples=resamples,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    return Agreement(
        value, float(boot.confidence_interval.low), float(boot.confidence_interval.high)
    )


def supernet_scorer(
    run: dict[str, Any], supernet: str | Path, data: dict[str, Any], device: torch.device
) -> Callable[[str], float]:
    """Top-1 of a cell's path through the run's final supernet, on the search's valid split."""
    from ddpnas.engine.evaluators import SupernetEvaluator
    from ddpnas.engine.experiment import SIZE_KEYS, SUPERNET_VERSION, config_hash, search_split
    from ddpnas.io.checkpoints import load_checkpoint
    from ddpnas.spaces import get_space

    spec = run["spec"]
    if run["space"] != "nb201" or run["mode"] != "weight_sharing":
        raise DDPNASError(
            f"{run['experiment']} is a {run['mode']} search on {run['space']}; the ranking check "
            "needs a weight-sharing NAS-Bench-201 search"
        )
    state = load_checkpoint(
        supernet, version=SUPERNET_VERSION, fingerprint=config_hash(spec, run["seed"])
    )
    space = get_space(spec["space"])
    model = space.supernet(**spec["supernet"], num_classes=10)
    model.load_state_dict(state["model"])
    train_set, valid_set = search_split(spec, data)
    train_cfg = {k: v for k, v in spec["train"].items() if k not in SIZE_KEYS}
    evaluator = SupernetEvaluator(model, train_set, valid_set, epochs=1, device=device, **train_cfg)
    return lambda arch: evaluator.evaluate(space.str_to_arch(arch))["valid_acc"]


def score_cells(
    run: dict[str, Any],
    valid_acc: Callable[[str], float],
    bench: NB201Bench,
    sample: Sequence[str],
    seed: int,
) -> pd.DataFrame:
    """One row per cell: where it came from, its supernet accuracy (``valid_acc``, in [0, 1],
    reported in %) and its table figures. Visited cells are capped at the sample's size."""
    visited = visited_cells(run, len(sample), seed)
    cells = dict.fromkeys([*sample, *visited])
    in_sample, was_visited = set(sample), set(visited)
    rows = []
    for arch in cells:
        record = bench.query(arch, hp="200")
        rows.append(
            {
                "experiment": run["experiment"],
                "seed": run["seed"],
                "arch": arch,
                "in_sample": arch in in_sample,
                "visited": arch in was_visited,
                "supernet_acc": 100.0 * valid_acc(arch),
                "c10_test": record[TEST],
                "c10_valid": record[VALID],
            }
        )
    return pd.DataFrame(rows)


def summarise(
    cells: pd.DataFrame, run: dict[str, Any], *, top_k: int, resamples: int, seed: int
) -> list[dict[str, Any]]:
    """Rank agreement of one run, on the stratified sample and on sample + visited cells."""
    rows = []
    for population, frame in (
        ("stratified sample", cells[cells["in_sample"]]),
        ("sample + visited", cells),
    ):
        sup = frame["supernet_acc"].to_numpy()
        row: dict[str, Any] = {
            "method": run["label"],
            "experiment": run["experiment"],
            "seed": run["seed"],
            "cells": population,
            "n": len(frame),
        }
        for col, target in (("test", "c10_test"), ("valid", "c10_valid")):
            truth = frame[target].to_numpy()
            for kind in ("kendall", "spearman"):
                agree = _correlation(sup, truth, kind, resamples, seed)
                row[f"{kind}_{col}"] = agree.value
                row[f"{kind}_{col}_low"] = agree.low
                row[f"{kind}_{col}_high"] = agree.high
        row["top_k"] = min(top_k, len(frame))
        row["top_k_overlap"] = topk_overlap(sup, frame["c10_test"].to_numpy(), top_k)
        row["supernet_acc_min"], row["supernet_acc_max"] = float(sup.min()), float(sup.max())
        rows.append(row)
    return rows


def table_marginals(bench: NB201Bench, space: SearchSpace) -> np.ndarray:
    """E x K mean 200-epoch test accuracy of the cells using op k on edge e (whole table)."""
    archs = np.array([space.str_to_arch(a) for a in bench.arch_strings()])
    acc = bench.column(TEST)
    out = np.full((space.num_edges, space.num_ops), np.nan)
    for e in range(space.num_edges):
        for k in range(space.num_ops):
            out[e, k] = acc[archs[:, e] == k].mean()
    return out


def implied_order(run: dict[str, Any]) -> list[list[str]] | None:
    """Per edge, ops from best to worst as the search implies: the winner, then the reverse
    pruning order (DDPNAS). None for strategies that do not prune."""
    prunes = [h["events"]["pruned"] for h in run["history"] if h["events"].get("pruned")]
    if not prunes:
        return None
    final = run["arch"]
    winners = [
        part.split("~")[0] for node in final.split("+") for part in node.strip("|").split("|")
    ]
    return [[winners[e], *[p[e] for p in reversed(prunes)]] for e in range(len(winners))]


def edge_rows(run: dict[str, Any], marginals: np.ndarray) -> list[dict[str, Any]]:
    """Per edge: the search's op order vs the table's marginal order (Kendall tau, top op)."""
    order = implied_order(run)
    if order is None:
        return []
    ops, edges = run["ops"], run["edges"]
    rows = []
    for e, ranked in enumerate(order):
        means = marginals[e]
        implied_score = np.zeros(len(ops))  # best op scores highest; ops never ranked tie lowest
        for position, op in enumerate(ranked):
            implied_score[ops.index(op)] = len(ranked) - position
        best = np.flatnonzero(means == means.max())
        table_order = sorted(range(len(ops)), key=lambda k: -means[k])
        rows.append(
            {
                "method": run["label"],
                "experiment": run["experiment"],
                "seed": run["seed"],
                "edge": edges[e],
                "search_order": " > ".join(ranked),
                "table_order": " > ".join(ops[k] for k in table_order),
                "kendall": float(stats.kendalltau(implied_score, means).statistic),
                "top_op_agrees": ops.index(ranked[0]) in set(best.tolist()),
            }
        )
    return rows


def ranking_report(
    runs: Sequence[dict[str, Any]],
    supernets: Sequence[str | Path],
    data: dict[str, Any],
    bench: NB201Bench,
    *,
    cells: int,
    sample_seed: int,
    top_k: int,
    resamples: int,
    device: torch.device,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(cells, summary, per-edge rows) for every run with its final supernet, in order."""
    from ddpnas.spaces import get_space

    if len(runs) != len(supernets):
        raise DDPNASError("--runs and --supernets must pair up (same length, same order)")
    sample = sample_cells(bench, cells, sample_seed)
    marginals = table_marginals(bench, get_space("nb201"))
    scored, summary, edges = [], [], []
    for run, supernet in zip(runs, supernets, strict=True):
        scorer = supernet_scorer(run, supernet, data, device)
        frame = score_cells(run, scorer, bench, sample, sample_seed)
        scored.append(frame)
        summary += summarise(frame, run, top_k=top_k, resamples=resamples, seed=sample_seed)
        edges += edge_rows(run, marginals)
    return pd.concat(scored, ignore_index=True), pd.DataFrame(summary), pd.DataFrame(edges)
