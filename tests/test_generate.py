"""Constraint-aware generation: exact against brute force, ties, budgets, spaces, record, CLI."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import NB201_TABLE, REPO, SHARED_DATA, SNAKEFILE, require
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from toys import SyntheticEvaluator, ToySpace, separated_means

from ddpnas.cli.generate import parse_budget, parse_sweep, theta_from_record
from ddpnas.cli.main import main
from ddpnas.engine.loop import run_search
from ddpnas.errors import DDPNASError
from ddpnas.generation.solver import (
    COST_TOL,
    VALUE_TOL,
    InfeasibleBudget,
    arch_costs,
    cost_scales,
    generate,
    sweep,
    values,
)
from ddpnas.spaces.nb201 import NB201Space
from ddpnas.strategies import DDPNAS


def brute_force(theta, costs, budgets, objective):
    """Every architecture, ranked by the documented order: objective, normalised cost, index."""
    theta = np.asarray(theta, dtype=float)
    value, scales = values(theta, objective), cost_scales(theta, costs)
    fits = []
    for arch in itertools.product(*[range(theta.shape[1])] * theta.shape[0]):
        if any(theta[e, k] == 0 for e, k in enumerate(arch)):
            continue
        total = arch_costs(arch, costs)
        if all(total[r] <= b for r, b in budgets.items()):
            norm = sum(total[r] / scales[r] for r in total)
            fits.append((sum(value[e, k] for e, k in enumerate(arch)), norm, arch))
    if not fits:
        return None
    best = max(f[0] for f in fits)
    tied = [f for f in fits if f[0] >= best - VALUE_TOL]
    cheapest = min(f[1] for f in tied)
    return min(f[2] for f in tied if f[1] <= cheapest + COST_TOL)


@st.composite
def instances(draw):
    """Small instances with frequent ties (few distinct values), pruned ops and tight budgets."""
    e, k = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    cell = st.sampled_from([0.0, 0.1, 0.2, 0.2, 0.25, 0.5])
    theta = np.array(draw(st.lists(st.lists(cell, min_size=k, max_size=k), min_size=e, max_size=e)))
    for row in theta:  # every edge keeps a survivor (an all-zero row is a separate error)
        if not row.any():
            row[draw(st.integers(0, k - 1))] = 0.3
    costs = {}
    for name in ("macs", "params", "latency_ms")[: draw(st.integers(1, 3))]:
        integral = draw(st.booleans())
        num = st.integers(0, 6).map(float) if integral else st.floats(0, 6, allow_nan=False)
        table = draw(st.lists(st.lists(num, min_size=k, max_size=k), min_size=e, max_size=e))
        costs[name] = (draw(num), np.array(table))
    budgets = {
        name: draw(st.floats(0, fixed + table.max(axis=1).sum() + 1, allow_nan=False))
        for name, (fixed, table) in costs.items()
        if draw(st.booleans())
    }
    return theta, costs, budgets, draw(st.sampled_from(["log", "theta"]))


@settings(
    max_examples=400,
    derandomize=True,  # the same 400 instances on every run
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(instances())
def test_generator_equals_brute_force(instance) -> None:
    theta, costs, budgets, objective = instance
    expected = brute_force(theta, costs, budgets, objective)
    if expected is None:
        with pytest.raises(InfeasibleBudget, match="no architecture fits"):
            generate(theta, costs, budgets, objective)
        return
    got = generate(theta, costs, budgets, objective)
    assert got.arch == expected
    assert all(got.costs[r] <= b for r, b in budgets.items())  # never over a budget
    assert all(theta[e, k] > 0 for e, k in enumerate(got.arch))  # never a pruned op


def test_tied_ops_prefer_the_cheaper_one_not_the_lower_index() -> None:
    # The public generator let the later (costlier) of two equal ops win on layer 0; index order
    # alone would pick op 0 here. We pick the cheaper op 1 in both orders.
    costs = {"macs": (0.0, np.array([[5.0, 1.0], [0.0, 0.0]]))}
    theta = [[0.5, 0.5], [1.0, 0.0]]
    assert generate(theta, costs).arch == (1, 0)
    flipped = {"macs": (0.0, np.array([[1.0, 5.0], [0.0, 0.0]]))}
    assert generate(theta, flipped).arch == (0, 0)
    # Equal value and equal cost: the documented last resort, the smaller index.
    same = {"macs": (0.0, np.array([[2.0, 2.0], [0.0, 0.0]]))}
    assert generate(theta, same).arch == (0, 0)


def test_a_solution_within_the_solver_tolerance_but_over_budget_is_cut_off() -> None:
    # 1e9 + 1 against a budget of 1e9 violates the scaled row by 1e-9, inside HiGHS's tolerance.
    costs = {"macs": (0.0, np.array([[0.0, 1e9 + 1]]))}
    got = generate([[0.1, 0.9]], costs, {"macs": 1e9})
    assert got.arch == (0,)
    assert generate([[0.1, 0.9]], costs, {"macs": 1e9 + 1}).arch == (1,)


def test_infeasible_budgets_name_the_minimum_feasible_cost() -> None:
    costs = {
        "macs": (10.0, np.array([[0.0, 4.0], [3.0, 1.0]])),
        "params": (0.0, np.array([[5.0, 0.0], [0.0, 5.0]])),
    }
    theta = [[0.0, 1.0], [0.5, 0.5]]  # op 0 of edge 0 is pruned: its cost 0 must not count
    with pytest.raises(InfeasibleBudget, match=r"macs <= 12: minimum feasible macs 15"):
        generate(theta, costs, {"macs": 12})
    # Each alone is feasible (macs >= 15, params >= 0) but not both at once: (1, 0) costs
    # 17 macs, 0 params; (1, 1) costs 15 macs, 5 params.
    with pytest.raises(InfeasibleBudget) as err:
        generate(theta, costs, {"macs": 15, "params": 4})
    assert "minimum feasible macs 15 (with the other budgets: 17)" in str(err.value)
    assert "minimum feasible params 0 (with the other budgets: 5)" in str(err.value)
    with pytest.raises(InfeasibleBudget, match=r"params 0 \(with the other budgets: none fits\)"):
        generate(theta, costs, {"macs": 12, "params": 4})


@pytest.mark.parametrize(
    ("theta", "costs", "budgets", "message"),
    [
        ([[0.5, 0.5]], {"macs": (0, [[1, 2, 3]])}, {}, "shape"),
        ([[0.5, 0.5]], {"macs": (0, [[1, -2]])}, {}, "non-negative"),
        ([[0.5, 0.5]], {"macs": (-1, [[1, 2]])}, {}, "non-negative"),
        ([[0.5, 0.5]], {"macs": (0, [[1, 2]])}, {"flops": 3}, "unknown resource 'flops'"),
        ([[0.0, 0.0]], {"macs": (0, [[1, 2]])}, {}, "no surviving op"),
        ([[0.5, float("nan")]], {"macs": (0, [[1, 2]])}, {}, "finite"),
        ([0.5, 0.5], {"macs": (0, [[1, 2]])}, {}, "E x K"),
    ],
)
def test_bad_inputs_are_one_line_errors(theta, costs, budgets, message) -> None:
    with pytest.raises(DDPNASError, match=message) as err:
        generate(theta, costs, budgets)
    assert "\n" not in str(err.value)


def test_sweep_is_monotone_and_marks_infeasible_budgets() -> None:
    rng = np.random.default_rng(0)
    theta = rng.dirichlet(np.ones(4), size=5)
    costs = {"macs": (2.0, rng.integers(0, 10, size=(5, 4)).astype(float))}
    floor = 2.0 + costs["macs"][1].min(axis=1).sum()
    results = sweep(theta, costs, "macs", np.linspace(floor - 1, floor + 30, 12))
    assert results[0][1] is None
    objectives = [g.objective for _, g in results if g is not None]
    assert objectives == sorted(objectives)  # a larger budget never generates a worse network
    with pytest.raises(InfeasibleBudget):
        sweep(theta, costs, "macs", [floor - 2, floor - 1])


def test_nb201_costs_are_additive_and_equal_the_built_network(bench) -> None:
    space = NB201Space()
    costs = space.choice_costs()  # the benchmark's network, the shipped default
    assert arch_costs((3,) * 6, costs) == space.measured_costs((3,) * 6)
    small = {"C": 4, "N": 2, "num_classes": 7, "input_size": 16}  # random cells, cheaply
    costs_small = space.choice_costs(**small)
    rng = np.random.default_rng(0)
    for arch in [(0,) * 6, *(tuple(rng.integers(0, 5, 6).tolist()) for _ in range(5))]:
        assert arch_costs(arch, costs_small) == space.measured_costs(arch, **small)
    # NAS-Bench-201's published cost of index 0 (CIFAR-10): 15.64737 MFLOPs, 0.129306 M params.
    index0 = space.str_to_arch(bench.arch_str(0))
    assert arch_costs(index0, costs) == {"macs": 15_647_370.0, "params": 129_306.0}


def test_a_space_without_additive_costs_says_so() -> None:
    from ddpnas.spaces.darts.space import DartsSpace

    with pytest.raises(DDPNASError, match="no additive per-choice costs"):
        DartsSpace().choice_costs()


def test_theta_comes_from_before_the_last_prune() -> None:
    space = ToySpace(num_edges=3, num_ops=4)
    outcome = run_search(DDPNAS(space), SyntheticEvaluator(separated_means(3, 4, seed=0)), seed=0)
    record = {"history": outcome.history, "strategy": "ddpnas"}
    theta, where = theta_from_record(record)
    assert ((theta > 0).sum(axis=1) == 2).all() and "before its prune" in where
    np.testing.assert_allclose(theta.sum(axis=1), 1.0)
    # Its argmax is the search's answer: the final prune removed the less probable survivor.
    assert tuple(theta.argmax(axis=1)) == outcome.arch
    three, _ = theta_from_record(record, min_alive=3)
    assert ((three > 0).sum(axis=1) == 3).all()
    # An older record without the pre-prune snapshot falls back to the per-epoch state.
    for h in record["history"]:
        h["events"].pop("theta_before_prune", None)
    old, where = theta_from_record(record)
    assert ((old > 0).sum(axis=1) == 2).all() and "after" in where
    with pytest.raises(DDPNASError, match="5 surviving ops"):
        theta_from_record(record, min_alive=5)


@pytest.mark.parametrize(
    ("text", "ok"),
    [("macs=300e6", ("macs", 300e6)), ("macs", None), ("=3", None), ("macs=abc", None)],
)
def test_parse_budget(text, ok) -> None:
    if ok is None:
        with pytest.raises(DDPNASError, match="malformed budget"):
            parse_budget(text)
    else:
        assert parse_budget(text) == ok


def test_parse_sweep() -> None:
    name, grid = parse_sweep("macs=1e6:3e6:3")
    assert name == "macs" and grid.tolist() == [1e6, 2e6, 3e6]
    for bad in ("macs=3:1:2", "macs=1:2", "macs=1:2:0", "1:2:3"):
        with pytest.raises(DDPNASError, match="malformed sweep"):
            parse_sweep(bad)


def test_cli_generates_from_files_and_rejects_bad_ones(tmp_path: Path, capsys) -> None:
    theta = [[0.2, 0.8], [0.6, 0.4], [0.0, 1.0]]
    costs = {
        "macs": [[1, 9], [2, 3], [0, 4]],
        "params": [[1, 1], [1, 1], [1, 1]],
        "fixed": {"macs": 5},
    }
    (tmp_path / "T.json").write_text(json.dumps(theta))
    (tmp_path / "C.json").write_text(json.dumps(costs))
    args = ["generate", "--theta", str(tmp_path / "T.json"), "--costs", str(tmp_path / "C.json")]
    assert main([*args, "--budget", "macs=15", "--out", str(tmp_path / "arch.json")]) == 0
    out = json.loads((tmp_path / "arch.json").read_text())
    expected = generate(
        theta, {"macs": (5, costs["macs"]), "params": (0, costs["params"])}, {"macs": 15}
    )
    assert out["arch"] == list(expected.arch) == [0, 0, 1]
    assert out["costs"] == {"macs": 12.0, "params": 3.0}
    assert out["objective"] == pytest.approx(np.log([0.2, 0.6, 1.0]).sum())
    assert "objective (log)" in capsys.readouterr().out
    bad_shape = tmp_path / "bad.json"
    bad_shape.write_text(json.dumps({"macs": [[1, 2]]}))
    negative = tmp_path / "neg.json"
    negative.write_text(json.dumps({"macs": [[1, -2], [0, 0], [0, 0]]}))
    out_args = ["--out", str(tmp_path / "x.json")]
    for extra, message in [
        ([*args[3:], "--budget", "macs=3"], "no architecture fits"),
        ([*args[3:], "--budget", "flops=3"], "unknown resource 'flops'"),
        ([*args[3:], "--budget", "macs:3"], "malformed budget"),
        (["--costs", str(bad_shape)], "shape"),
        (["--costs", str(negative)], "non-negative"),
    ]:
        capsys.readouterr()
        assert main([*args[:3], *extra, *out_args]) == 2
        err = capsys.readouterr().err
        assert message in err and err.startswith("ddpnas: error:") and err.count("\n") == 1
    assert not (tmp_path / "x.json").exists()
    # A sweep without a space: the objective over the budget, infeasible budgets marked.
    stem, figure = tmp_path / "generation_custom", tmp_path / "custom.png"
    sweep_args = ["--sweep", "macs=6:20:8", "--table", str(stem), "--figure", str(figure)]
    assert main([*args, *sweep_args]) == 0
    df = pd.read_csv(stem.with_suffix(".csv"))
    assert df["feasible"].tolist() == [False] * 3 + [True] * 5 and "gap" not in df  # min 12
    assert df["objective"].dropna().is_monotonic_increasing and figure.stat().st_size > 0


@pytest.mark.slow
def test_cli_nb201_sweep_writes_the_gap_to_the_true_front(tmp_path: Path) -> None:
    space = ToySpace(num_edges=6, num_ops=5)
    outcome = run_search(DDPNAS(space), SyntheticEvaluator(separated_means(6, 5, seed=0)), seed=0)
    record = tmp_path / "record.json"
    record.write_text(
        json.dumps({"space": "nb201", "strategy": "ddpnas", "history": outcome.history})
    )
    stem = tmp_path / "generation_nb201"
    code = main(
        [
            "generate", "--record", str(record), "--min-alive", "3", "--sweep", "macs=5e6:200e6:5",
            "--bench", str(require(NB201_TABLE)), "--table", str(stem),
            "--figure", str(tmp_path / "fig.png"),
        ]
    )  # fmt: skip
    assert code == 0
    df = pd.read_csv(stem.with_suffix(".csv"))
    assert df["feasible"].tolist() == [False, True, True, True, True]
    ok = df[df["feasible"]]
    assert (ok["macs"] <= ok["budget"]).all() and (ok["measured_macs"] == ok["macs"]).all()
    assert (ok["gap"] >= 0).all()
    np.testing.assert_allclose(ok["gap"], ok["front_acc"] - ok["acc"])
    assert (tmp_path / "fig.png").stat().st_size > 0
    assert "Gap" in stem.with_suffix(".md").read_text()


@pytest.mark.slow
def test_pipeline_generation_rule_on_the_default_config(tmp_path: Path) -> None:
    """The shipped default config's generation job, via Snakemake, under 30 s of CPU time."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["data"]["root"] = str(require(SHARED_DATA))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    # The search the job reads runs here, in-process (seconds); Snakemake then runs only the job.
    entry = config["generate"]["nb201"]
    record = tmp_path / f"results/config/search/{entry['experiment']}/seed0.json"
    search = ["search", "--config", str(tmp_path / "config.yaml"), "--experiment"]
    assert main([*search, entry["experiment"], "--seed", "0", "--out", str(record)]) == 0
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    targets = [
        "results/config/tables/generation_nb201.csv",
        "results/config/figures/generation_nb201.png",
    ]
    subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory",
         str(tmp_path), "--configfile", str(tmp_path / "config.yaml"), "--cores", "1", *targets],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    df = pd.read_csv(tmp_path / targets[0])
    assert len(df) == int(entry["sweep"].rsplit(":", 1)[1]) and df["feasible"].all()
    assert (df["macs"] <= df["budget"]).all() and (df["measured_macs"] == df["macs"]).all()
    assert (df["gap"] >= 0).all() and (df["front_macs"] <= df["budget"]).all()
    bench = pd.read_csv(tmp_path / "results/config/benchmarks/generation/nb201.tsv", sep="\t")
    assert bench["cpu_time"].iloc[0] < 30  # CPU seconds (wall time depends on the machine's load)
    assert (
        "gap to the true front"
        in (tmp_path / "results/config/logs/generation/nb201.log").read_text()
    )


def test_every_budget_binds_even_when_only_the_least_likely_arch_fits() -> None:
    """The second budget must be a constraint of the MILP itself: were only the first one
    enforced, the over-budget re-solve loop would have to cut 255 of the 256 architectures
    before reaching the only feasible one (all op 1, the least likely under theta)."""
    theta = np.tile([0.9, 0.1], (8, 1))
    costs = {
        "macs": (0.0, np.tile([2.0, 1.0], (8, 1))),
        "params": (0.0, np.tile([1.0, 0.0], (8, 1))),  # only op 1 has no parameters
    }
    got = generate(theta, costs, {"macs": 1e9, "params": 0.0})
    assert got.arch == (1,) * 8 and got.costs["params"] == 0.0
