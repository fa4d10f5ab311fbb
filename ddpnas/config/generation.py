"""The ``generate:`` section: networks generated from a search's theta under budgets."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from ddpnas.config.options import (
    Number,
    Options,
    Positive,
    Seed,
)


class Generation(Options):
    """One `generate` entry: networks generated from one search record's theta."""

    experiment: str = Field(
        description=(
            "Search experiment whose record gives theta (a strategy that logs theta), or "
            "imagenet: the mobile-space search of the imagenet block "
            "(results/imagenet/search/seed<seed>.json)."
        )
    )
    seed: Seed | None = Field(
        None,
        description="Seed of that record; null -> report.figure_seed when the experiment runs it.",
    )
    sweep: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*=[^:=]+:[^:=]+:[0-9]+$",
        description=(
            "RESOURCE=LO:HI:N, N budgets from LO to HI (raw units, e.g. macs=10e6:220e6:15)."
        ),
    )
    budgets: dict[str, Number] = Field(
        {}, description="Fixed budgets on other resources, e.g. {params: 1.0e6}."
    )
    min_alive: Positive = Field(
        2,
        description=(
            "Survivors per edge the theta must still have (2 = just before the last prune)."
        ),
    )
    objective: Literal["log", "theta"] = Field(
        "log",
        description=(
            "log = sum of log theta (log-probability); theta = summed theta (the authors')."
        ),
    )
    network: dict[str, Any] = Field(
        {},
        description=(
            "Standalone network keyword arguments (default: the space's, e.g. NB201 C=16 N=5; for "
            "experiment imagenet: the network imagenet.retrain trains, its width_mult, "
            "resolution, classes)."
        ),
    )
    retrain: list[Annotated[dict[str, Number], Field(min_length=1)]] = Field(
        [],
        description=(
            "Networks to generate and retrain (experiment imagenet only): one budget map each, on "
            "top of budgets, e.g. [{macs: 4.0e+8}, {latency_ms: 80}]; each is generated to "
            "results/generated/<name>/seed<seed>/net<i>.json, retrained under imagenet.retrain "
            "and listed in results/tables/imagenet.* as generated under its budgets."
        ),
    )
    latency: str | None = Field(
        None,
        description=(
            "Adds resource latency_ms: 'device' (measured here, cached) or a phone-table YAML."
        ),
    )
    missing: Literal["error", "exclude"] = Field(
        "error",
        description=(
            "Choices a phone table lacks: error (list them) or exclude (never generated); never "
            "guessed."
        ),
    )
