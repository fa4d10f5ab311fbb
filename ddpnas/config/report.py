"""The ``report:`` section: the theta figure, the supernet ranking check and the bound study."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ddpnas.config.options import (
    Number,
    Options,
    Positive,
    Seed,
    UniqueList,
    block,
)


class Ranking(Options):
    """Supernet ranking check (results/tables/nb201_ranking.*): cells scored with the final
    supernet of each listed weight-sharing NAS-Bench-201 search (its figure_seed run) vs their
    200-epoch NAS-Bench-201 accuracies."""

    experiments: list[str] = Field(
        [], description="Weight-sharing NAS-Bench-201 search experiments to check (none = skip)."
    )
    cells: Positive = Field(
        30,
        description=(
            "Cells sampled in equal shares from the deciles of the table's 200-epoch "
            "cifar10-valid accuracy (the cells each search visited are added to them)."
        ),
    )
    sample_seed: Seed = Field(
        0, description="Seed of that sample (the same cells for every experiment)."
    )
    bootstrap: int = Field(
        1000, ge=100, description="Bootstrap resamples for the rank-correlation intervals."
    )
    top_k: Positive = Field(
        10, description="k of the top-k overlap between supernet and table rankings."
    )


class Bound(Options):
    """`ddpnas report bound`: failure bounds of DDPNAS's pruning schedule beside a Monte-Carlo of
    the real strategy (synthetic arms and the NAS-Bench-201 table), and the accuracy of the found
    NAS-Bench-201 cell vs search cost beside baselines with the same query budget."""

    seed: Seed = Field(0, description="Master seed of every Monte-Carlo setting and baseline run.")
    seeds: int = Field(2000, ge=10, description="Replicates (independent searches) per setting.")
    pruning_steps: UniqueList[Positive] = Field(
        [1, 2, 3, 5, 10],
        min_length=1,
        description="T values (rounds per prune) of the synthetic settings.",
    )
    gaussian_std: Number = Field(
        0.15,
        gt=0,
        le=1,
        description="Std of the Gaussian credits (accuracy fraction, clipped to [0, 1]).",
    )
    edges: Positive = Field(
        1, description="Edges per synthetic search (the bound is a union over them)."
    )
    nb201_pruning_steps: UniqueList[Positive] = Field(
        [1, 2, 3, 4, 5],
        min_length=1,
        description="T values of the NAS-Bench-201 settings (and of the accuracy-vs-cost figure).",
    )
    nb201_noise: UniqueList[Annotated[Number, Field(ge=0)]] = Field(
        [0, 0.5, 1.0],
        min_length=1,
        description="Reward noise levels (std, percentage points) of the NAS-Bench-201 settings.",
    )
    target: Number = Field(
        0.05,
        gt=0,
        lt=1,
        description='Failure probability the table\'s "T for target" inverts the bound for.',
    )
    alpha: Number = Field(
        0.001,
        gt=0,
        lt=0.5,
        description="One-sided level at which an empirical rate counts as above a bound.",
    )
    baselines: UniqueList[str] = Field(
        ["rs"],
        description="Tabular strategies (taking budget_seconds) run with DDPNAS's query budget.",
    )
    baseline_seeds: int = Field(50, ge=2, description="Runs per baseline, budget and noise level.")


class Report(Options):
    figure_seed: Seed = Field(0, description="Which seed's run the theta figure shows.")
    ranking: Ranking = block()
    bound: Bound = block()
