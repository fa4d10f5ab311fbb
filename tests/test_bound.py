"""Failure bounds of DDPNAS's schedule, and the Monte-Carlo of the real strategy checking them."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import NB201_TABLE, REPO, SHARED_DATA, require
from toys import SyntheticEvaluator, ToySpace, separated_means

from ddpnas.analysis.bounds import (
    BOUNDS,
    hoeffding_bound,
    prune_schedule,
    required_pruning_step,
    required_search_epochs,
    search_epochs,
    successive_rejects_bound,
)
from ddpnas.analysis.montecarlo import (
    NB201Table,
    QueryBudget,
    Setting,
    _failures,
    clipped_gaussian_mean,
    exceeds,
    run_replicas,
    synthetic,
)
from ddpnas.cli.main import main
from ddpnas.config.load import load_config
from ddpnas.engine.evaluators import TabularEvaluator
from ddpnas.engine.loop import run_search
from ddpnas.errors import DDPNASError
from ddpnas.report.bound_tables import bound_rows, curve_gaps, failure_figure, run_settings
from ddpnas.spaces.nb201 import NB201Space
from ddpnas.strategies import DDPNAS, get_strategy
from ddpnas.strategies.distribution import JointCategorical

# Replicates per setting in tests; the pipeline runs the configured 2,000. The one-sided
# Clopper-Pearson margin of `exceeds` accounts for the smaller sample.
TEST_SEEDS = 300


def shipped_block(**overrides: object) -> dict:
    """The default config's report.bound block (validated, defaults filled)."""
    return {**load_config(REPO / "config" / "config.yaml")["report"]["bound"], **overrides}


@pytest.fixture(scope="module")
def table(bench) -> NB201Table:
    return NB201Table(bench)


@pytest.fixture(scope="module")
def shipped_rows(table: NB201Table) -> tuple[pd.DataFrame, list]:
    """Every setting of the shipped config, at TEST_SEEDS replicates."""
    block = shipped_block(seeds=TEST_SEEDS)
    outcomes = run_settings(block, table)
    return bound_rows(outcomes, block["target"], block["alpha"]), outcomes


def test_schedule_is_the_strategys() -> None:
    """Prune m after m*T rounds, at the epochs the real strategy prunes; 42 and 105 epochs."""
    steps = prune_schedule(5, 3)
    assert [s.epoch for s in steps] == [15, 27, 36, 42]
    assert [s.samples for s in steps] == [3, 6, 9, 12]
    assert [s.survivors for s in steps] == [5, 4, 3, 2]
    assert search_epochs(5, 3) == 42 and search_epochs(8, 3) == 105
    space = ToySpace(2, 5)
    strategy = DDPNAS(space, mode="tabular", pruning_step=3)
    out = run_search(strategy, SyntheticEvaluator(separated_means(2, 5, 0), 0.05), seed=0)
    pruned_at = [h["epoch"] + 1 for h in out.history if h["events"].get("pruned")]
    assert pruned_at == [s.epoch for s in steps]
    assert out.epochs == strategy.planned_epochs() == search_epochs(5, 3)


def test_bounds_in_closed_form() -> None:
    t, a, b = 4, 0.2, 0.5
    assert hoeffding_bound([a], t) == pytest.approx(math.exp(-t * a * a / 2))
    assert successive_rejects_bound([a], t) == pytest.approx(math.exp(-t * a * a))
    # K = 3: step 1 is sure to keep the gap-b competitor (Hoeffding) / one of the largest 1 (SR);
    # step 2 keeps some competitor, so Hoeffding uses the smallest gap, SR sums over both.
    assert hoeffding_bound([b, a], t) == pytest.approx(
        math.exp(-t * b * b / 2) + math.exp(-t * a * a / 2)
    )
    assert successive_rejects_bound([b, a], t) == pytest.approx(
        math.exp(-t * b * b) + math.exp(-2 * t * a * a) + math.exp(-2 * t * b * b)
    )
    for fn in BOUNDS.values():  # union over edges: E equal edges, or a matrix of per-edge gaps
        assert fn([a, b], t, 6) == pytest.approx(6 * fn([a, b], t, 1))
        assert fn([[a, b], [b, b]], t, 1) == pytest.approx(fn([a, b], t) + fn([b, b], t))


@pytest.mark.parametrize("bound", sorted(BOUNDS))
@pytest.mark.parametrize(
    "gaps", [[0.3, 0.3, 0.3, 0.3], [0.05, 0.6, 0.6, 0.6], [0.2, 0.4, 0.6, 0.8]]
)
def test_inversion_gives_the_smallest_sufficient_t(bound: str, gaps: list[float]) -> None:
    fn = BOUNDS[bound]
    values = [fn(gaps, t, 6) for t in range(1, 200)]
    assert all(x > y for x, y in itertools.pairwise(values))  # strictly decreasing
    for target in (0.5, 0.05, 1e-4):
        t = required_pruning_step(bound, gaps, target, 6)
        assert fn(gaps, t, 6) <= target
        assert t == 1 or fn(gaps, t - 1, 6) > target
        assert required_search_epochs(bound, gaps, target, 6) == search_epochs(5, t)


def test_degenerate_gaps_fail_clearly() -> None:
    assert hoeffding_bound([0.0, 0.5], 100) >= 1.0  # tied best ops: vacuous for every T
    with pytest.raises(DDPNASError, match="tied"):
        required_pruning_step("successive_rejects", [0.0, 0.5], 0.05)
    for bad in ([-0.1, 0.2], [0.2, 1.5], [float("nan")]):
        with pytest.raises(DDPNASError, match="gaps"):
            hoeffding_bound(bad, 3)
    with pytest.raises(DDPNASError, match="pruning_step"):
        successive_rejects_bound([0.2], 0)
    with pytest.raises(DDPNASError, match="target"):
        required_pruning_step("hoeffding", [0.2], 1.0)
    with pytest.raises(DDPNASError, match="rows"):
        hoeffding_bound([[0.1], [0.2]], 3, num_edges=3)


def test_per_edge_credits_are_checked() -> None:
    dist = JointCategorical(3, 2)
    dist.credit((0, 1, 0), np.array([0.1, 0.5, 1.0]))
    with pytest.raises(ValueError, match="fraction"):
        dist.credit((0, 1, 0), np.array([0.1, 50.0, 0.2]))
    with pytest.raises(ValueError, match="one per edge"):
        dist.credit((0, 1, 0), np.array([0.1, 0.2]))


def test_replica_driver_reproduces_run_search_on_the_table(bench, table: NB201Table) -> None:
    """One replicate of the Monte-Carlo driver is exactly a pipeline search (noise 0)."""
    space = NB201Space()
    rng = np.random.default_rng(0)
    cells = rng.integers(0, 5, size=(50, 6))
    evaluator = TabularEvaluator(bench, space, seed=0)
    expected = [evaluator.evaluate(tuple(int(k) for k in c))["valid_acc"] for c in cells]
    np.testing.assert_allclose(table.credit(cells, 0.0, rng), expected)
    for seed in range(3):
        out = run_search(
            DDPNAS(space, mode="tabular"), TabularEvaluator(bench, space, seed=seed), seed=seed
        )
        found = run_replicas(
            6,
            5,
            3,
            lambda arch: np.repeat(table.credit(arch[None, :], 0.0, rng), 6),
            np.random.Generator(np.random.PCG64(seed)),
        )
        assert tuple(found) == out.arch


def test_gaussian_gaps_use_the_clipped_means() -> None:
    mean = np.array([0.05, 0.5, 0.95])
    draws = np.clip(mean + 0.15 * np.random.default_rng(0).standard_normal((200_000, 3)), 0, 1)
    np.testing.assert_allclose(clipped_gaussian_mean(mean, 0.15), draws.mean(axis=0), atol=2e-3)


def test_monte_carlo_is_reproducible_and_finds_the_clear_best() -> None:
    setting = Setting("bernoulli", "clear_best", 3, 0.0, edges=2)
    a, b = synthetic(setting, 200, seed=7), synthetic(setting, 200, seed=7)
    assert a.failures == b.failures and (a.found == b.found).all()
    assert a.gaps.shape == (2, 4)
    assert 0 < a.rate < 0.2  # Bernoulli credits make failures visible at T = 3, not common


def test_empirical_failure_within_both_bounds_in_every_shipped_setting(shipped_rows) -> None:
    df, _ = shipped_rows
    assert len(df) == len(shipped_block()["pruning_steps"]) * 6 + 15
    assert set(df["credits"]) == {"gaussian", "bernoulli", "nb201"}
    for name in BOUNDS:
        assert not df[f"{name}_exceeded"].any(), df[df[f"{name}_exceeded"]]
    # The check has teeth: some settings fail often, and some bounds are informative (< 1).
    assert (df["rate"] > 0.1).any() and (df["successive_rejects"] < 0.1).any()


@pytest.mark.parametrize(
    ("profile", "t"),
    [("clear_best", 5), ("clear_best", 10), ("equal_gaps", 10), ("equal_gaps", 20)],
)
def test_union_over_edges_holds_where_it_is_informative(profile: str, t: int) -> None:
    """Three independent edges per search, at T where the union bound is below 1."""
    block = shipped_block()
    o = synthetic(Setting("bernoulli", profile, t, 0.0, edges=3), TEST_SEEDS, block["seed"])
    bound = successive_rejects_bound(o.gaps, t)
    assert o.gaps.shape == (3, 4) and bound < 1
    assert not exceeds(o.failures, o.replicates, bound, block["alpha"])
    assert not exceeds(o.failures, o.replicates, hoeffding_bound(o.gaps, t), block["alpha"])


def test_a_wrong_bound_is_caught(shipped_rows) -> None:
    """The same check flags bounds that are too small: either bound / 100, or SR with 10x n."""
    _, outcomes = shipped_rows
    wrong = {
        f"{name} / 100": lambda o, fn=fn: fn(o.gaps, o.setting.pruning_step, 1) / 100
        for name, fn in BOUNDS.items()
    }
    wrong["successive_rejects, n x 10"] = lambda o: successive_rejects_bound(
        o.gaps, 10 * o.setting.pruning_step
    )
    for name, bound in wrong.items():
        assert any(exceeds(o.failures, o.replicates, bound(o)) for o in outcomes), name


def test_exceeds_has_a_binomial_margin() -> None:
    assert not exceeds(6, 100, 0.05)  # observed above, but not significantly
    assert exceeds(30, 100, 0.05)
    assert not exceeds(100, 100, 1.0) and not exceeds(0, 100, 0.0)


def test_query_budget_gives_baselines_exactly_the_queries(bench) -> None:
    space = NB201Space()
    strategy = get_strategy("rs")(space, mode="tabular", budget_seconds=14.0)
    evaluator = QueryBudget(TabularEvaluator(bench, space, seed=0, noise_std=0.5))
    run_search(strategy, evaluator, seed=0, progress=False)
    assert strategy.budget.counted == 14 == search_epochs(5, 1)


def test_figures_are_byte_identical(shipped_rows, tmp_path: Path) -> None:
    df, outcomes = shipped_rows
    gaps = curve_gaps(outcomes)
    part = df[df["credits"] == "bernoulli"]
    failure_figure(part, gaps, tmp_path / "a.png")
    failure_figure(part, gaps, tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


@pytest.mark.slow
def test_cli_writes_tables_and_figures_and_rejects_bad_input(tmp_path: Path, capsys) -> None:
    require(NB201_TABLE)
    ci = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())["report"]["bound"]
    out, figures = tmp_path / "tables" / "bound", tmp_path / "figures"
    data = f'{{"root": "{require(SHARED_DATA)}"}}'
    args = ["report", "bound", "--out", str(out), "--figures", str(figures), "--data", data]
    assert main([*args, "--bound", json.dumps(ci)]) == 0
    df = pd.read_csv(out.with_suffix(".csv"))
    assert len(df) == 6 * len(ci["pruning_steps"]) + len(ci["nb201_pruning_steps"])
    assert (df["seeds"] == ci["seeds"]).all()
    assert "Clopper-Pearson" in out.with_suffix(".md").read_text()
    costs = pd.read_csv(tmp_path / "tables" / "bound_cost.csv")
    assert set(costs["method"]) == {"ddpnas", "rs"}
    assert sorted(p.name for p in figures.iterdir()) == [
        "bound_T.png",
        "bound_cost.png",
    ]
    bad = tmp_path / "bad"
    assert (
        main(["report", "bound", "--out", str(bad / "b"), "--figures", str(bad), "--seeds", "0"])
        == 2
    )
    assert "report.bound.seeds" in capsys.readouterr().err
    assert (
        main(
            [
                *args[:2],
                "--out",
                str(bad / "b"),
                "--figures",
                str(bad),
                "--data",
                data,
                "--bound",
                '{"baselines": ["darts"]}',
            ]
        )
        == 2
    )
    assert "not a tabular baseline" in capsys.readouterr().err
    assert not bad.exists()


def test_an_op_tied_for_best_is_a_success_not_a_failure() -> None:
    """Failures are judged by value: ending on the second of two ops tied for best (argmax would
    name the first) is a success; ending below the best is a failure."""
    means = np.array([[[0.3, 0.7, 0.7, 0.1], [0.5, 0.2, 0.5, 0.5]]])  # 1 replicate, 2 edges
    assert not _failures(np.array([[2, 3]]), means).any()
    assert not _failures(np.array([[1, 0]]), means).any()
    assert _failures(np.array([[0, 2]]), means).all()
    assert _failures(np.array([[2, 1]]), means).all()


def test_failure_figure_shows_every_panel_and_marks_zero_failures(shipped_rows) -> None:
    """One figure vs T (search epochs on the top axis): every panel labelled, bound curves never
    clipped below the axis top, and each zero-failure setting an open triangle with "0 / N"."""
    import matplotlib.pyplot as plt

    from ddpnas.report.bound_tables import failure_plot

    df, outcomes = shipped_rows
    fig = failure_plot(df, curve_gaps(outcomes))
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == df["credits"].nunique()
    top = panels[0].get_ylim()[1]
    for ax in panels:
        assert ax.get_xlabel() == "rounds per prune T" and ax.get_yscale() == "log"
        assert any(a.get_xlabel().startswith("search epochs T(") for a in ax.child_axes)
        curves = [line.get_ydata() for line in ax.get_lines() if len(line.get_xdata()) > 5]
        assert curves and all(max(c) <= top for c in curves)  # nothing off the scale
    assert panels[0].get_ylabel() == "P(found != per-edge optimum)"
    zero = df[df["failures"] == 0]
    triangles = [line for ax in panels for line in ax.get_lines() if line.get_marker() == "v"]
    assert sum(len(line.get_xdata()) for line in triangles) == len(zero) > 0
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert f"0 / {TEST_SEEDS} failures: 95% upper limit" in legend
    plt.close(fig)
