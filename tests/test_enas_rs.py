"""ENAS, REINFORCE, random search and RSPS on the shared engine: budgets, plans, resume."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from toys import SyntheticEvaluator, ToySpace, separated_means

from baselines.enas import ENAS
from baselines.random_search import RSPS, RandomSearch
from baselines.reinforce import Reinforce
from ddpnas.engine.evaluators import TabularEvaluator
from ddpnas.engine.loop import run_search
from ddpnas.spaces.base import Arch
from ddpnas.spaces.nb201 import NB201Space
from ddpnas.strategies import get_strategy, strategies
from ddpnas.strategies.base import TrainingPlan


class PlanEvaluator:
    """Stand-in for the supernet evaluator: draws ``batches`` paths per epoch from the plan.

    valid_acc = mean of mu over the path, plus (on a random subset of ``images``) a small offset
    drawn from the engine's validation generator, so resume also checks that generator's use.
    """

    def __init__(self, mu: np.ndarray, batches: int = 4, crash_at: int | None = None) -> None:
        self.mu = mu
        self.batches = batches
        self.crash_at = crash_at
        self.paths: list[list[Arch]] = []
        self.images: list[int | None] = []

    def train(self, what: TrainingPlan, epoch: int, generator: torch.Generator) -> dict[str, float]:
        assert not isinstance(what, tuple), "weight sharing trains along a per-batch plan"
        if epoch == self.crash_at:
            raise KeyboardInterrupt("simulated kill")
        self.paths.append([what.path() for _ in range(self.batches)])
        return {"train_loss": 1.0}

    def evaluate(
        self, arch: Arch, *, images: int | None = None, generator: torch.Generator | None = None
    ) -> dict[str, float]:
        self.images.append(images)
        value = self.mu[np.arange(len(arch)), list(arch)].mean()
        if images is not None:
            value += 0.01 * torch.rand((), generator=generator).item()
        return {"valid_acc": float(value)}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Stateless."""


class CostlyEvaluator(SyntheticEvaluator):
    """Synthetic scores with an architecture-dependent simulated cost of 1 + sum(arch) seconds."""

    def train(self, arch: Arch, epoch: int, generator: torch.Generator) -> dict[str, float]:
        super().train(arch, epoch, generator)
        return {"sim_seconds": 1.0 + sum(arch)}


pytestmark = pytest.mark.usefixtures("one_thread")


def strip(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """History without wall-clock times, which differ between runs."""
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def test_registered() -> None:
    assert {"ddpnas", "darts", "enas", "rea", "reinforce", "rs", "rsps"} == set(strategies())
    assert get_strategy("enas") is ENAS and get_strategy("reinforce") is Reinforce
    assert RandomSearch.modes == ("tabular",) and RSPS.modes == ("weight_sharing",)
    assert Reinforce.modes == ("tabular",) and ENAS.modes == ("weight_sharing",)


def test_reinforce_budget_counts_like_random_search() -> None:
    space = ToySpace(3, 4)
    strategy = Reinforce(space, budget_seconds=20.0)
    assert strategy.planned_epochs() is None
    outcome = run_search(strategy, SyntheticEvaluator(separated_means(3, 4, 0), noise=0.02), seed=0)
    assert outcome.epochs == 21  # 20 one-second archs fit; the 21st crosses the budget
    counted = outcome.history[:20]
    best = max(counted, key=lambda h: h["evaluated"][0]["valid_acc"])
    assert space.arch_to_str(outcome.arch) == best["arch"]
    assert strategy.budget.counted == 20 and strategy.budget.spent == 20.0


def test_enas_weight_sharing_plan_and_final_choice() -> None:
    space = ToySpace(6, 5)
    a, b = (ENAS(space, epochs=2, controller_steps=1, aggregate=3, final_samples=40) for _ in "ab")
    plan_a, plan_b = a.propose(np.random.default_rng(5)), b.propose(np.random.default_rng(5))
    assert plan_a.evaluate == plan_b.evaluate and len(plan_a.evaluate) == 3
    assert plan_a.eval_images == 160  # ENAS's micro-search batch
    paths = [plan_a.train.path() for _ in range(20)]
    assert paths == [plan_b.train.path() for _ in range(20)]
    assert len(set(paths)) > 10, "a fresh controller sample per batch"

    mu = separated_means(6, 5, 3)
    strategy = ENAS(
        space, epochs=2, controller_steps=1, aggregate=3, final_samples=40, eval_images=100
    )
    evaluator = PlanEvaluator(mu)
    outcome = run_search(strategy, evaluator, seed=2)
    assert outcome.epochs == strategy.planned_epochs() == 3
    final = outcome.history[-1]
    assert final["arch"] is None and "train_loss" not in final
    assert 30 <= len(final["evaluated"]) <= 40  # 40 samples, duplicates validated once
    assert evaluator.images == [100] * 6 + [None] * len(final["evaluated"])
    best = max(final["evaluated"], key=lambda e: e["valid_acc"])
    assert space.arch_to_str(outcome.arch) == best["arch"]
    with pytest.raises(RuntimeError, match="finished"):
        strategy.propose(np.random.default_rng(0))


def test_random_search_stops_at_the_budget_exactly() -> None:
    space = ToySpace(4, 5)
    strategy = RandomSearch(space, budget_seconds=40.0)
    outcome = run_search(strategy, CostlyEvaluator(separated_means(4, 5, 1), noise=0.02), seed=3)
    costs = [h["sim_seconds"] for h in outcome.history]
    assert sum(costs[:-1]) <= 40.0 < sum(costs)
    assert strategy.budget.spent == sum(costs[:-1]) and strategy.budget.counted == len(costs) - 1
    counted = outcome.history[:-1]
    best = max(counted, key=lambda h: h["evaluated"][0]["valid_acc"])
    assert space.arch_to_str(outcome.arch) == best["arch"]
    assert outcome.history[-1]["state"]["best"] == best["arch"]


def test_random_search_counts_an_arch_that_fills_the_budget_to_the_second() -> None:
    strategy = RandomSearch(ToySpace(3, 4), budget_seconds=10.0)
    outcome = run_search(strategy, SyntheticEvaluator(separated_means(3, 4, 0)), seed=0)
    assert outcome.epochs == 11 and strategy.budget.counted == 10
    capped = RandomSearch(ToySpace(3, 4), budget_seconds=10.0, max_epochs=4)
    assert run_search(capped, SyntheticEvaluator(separated_means(3, 4, 0)), seed=0).epochs == 4


def test_random_search_on_nasbench201_under_its_protocol(bench) -> None:
    """12-epoch rewards, 12 epochs charged per query, 12,000 simulated seconds."""
    space = NB201Space()
    evaluator = TabularEvaluator(bench, space, seed=0, hp="12", charge_epochs=12)
    strategy = RandomSearch(space, budget_seconds=12_000.0)
    outcome = run_search(strategy, evaluator, seed=0)
    seen = outcome.history[:-1]
    costs = [h["sim_seconds"] for h in outcome.history]
    assert sum(costs[:-1]) <= 12_000.0 < sum(costs)
    accs = {h["arch"]: bench.query(h["arch"], hp="12")["cifar10_valid_valid_acc"] for h in seen}
    chosen = space.arch_to_str(outcome.arch)
    assert accs[chosen] == max(accs.values())
    print(f"random search: {len(seen)} archs fit in 12,000 simulated seconds")
    assert 30 <= len(seen) <= 300


def test_rsps_trains_uniform_paths_then_picks_the_best_of_n() -> None:
    space = ToySpace(6, 5)
    strategy = RSPS(space, epochs=2, final_samples=30)
    plan = strategy.propose(np.random.default_rng(1))
    assert plan.evaluate == []
    paths = np.array([plan.train.path() for _ in range(5000)])
    for e in range(6):
        freq = np.bincount(paths[:, e], minlength=5) / len(paths)
        np.testing.assert_allclose(freq, 0.2, atol=0.03)
    again = RSPS(space).propose(np.random.default_rng(1))
    assert [again.train.path() for _ in range(10)] == [tuple(p) for p in paths[:10].tolist()]

    evaluator = PlanEvaluator(separated_means(6, 5, 4))
    outcome = run_search(strategy, evaluator, seed=1)
    assert outcome.epochs == strategy.planned_epochs() == 3
    final = outcome.history[-1]
    assert final["arch"] is None and len(final["evaluated"]) == 30
    assert evaluator.images == [None] * 30  # default: the whole split
    one_batch = PlanEvaluator(separated_means(6, 5, 4))
    run_search(RSPS(space, epochs=1, final_samples=10, eval_images=64), one_batch, seed=1)
    assert one_batch.images == [64] * len(one_batch.images) and len(one_batch.images) >= 9
    best = max(final["evaluated"], key=lambda e: e["valid_acc"])
    assert space.arch_to_str(outcome.arch) == best["arch"]
    assert final["state"] == {}
    trained = [p for epoch in evaluator.paths for p in epoch]
    assert len(trained) == 8 and len(set(trained)) >= 7, "a fresh uniform path per batch"


def reinforce(space: ToySpace) -> Reinforce:
    return Reinforce(space, budget_seconds=100.0)


def enas_shared(space: ToySpace) -> ENAS:
    return ENAS(space, epochs=4, controller_steps=2, aggregate=3, final_samples=10, eval_images=50)


@pytest.mark.parametrize(
    ("make", "evaluator", "crash"),
    [
        (reinforce, lambda mu, crash: CostlyEvaluator(mu, 0.02, 1, crash_at=crash), 6),
        (enas_shared, lambda mu, crash: PlanEvaluator(mu, crash_at=crash), 3),
        (
            lambda space: RandomSearch(space, budget_seconds=100.0),
            lambda mu, crash: CostlyEvaluator(mu, 0.02, 1, crash_at=crash),
            6,
        ),
    ],
    ids=["reinforce", "enas-weight-sharing", "rs"],
)
def test_resume_after_a_crash_gives_the_uninterrupted_result(tmp_path, make, evaluator, crash):
    space = ToySpace(4, 4)
    mu = separated_means(4, 4, 6, gap=0.05)
    reference = run_search(make(space), evaluator(mu, None), seed=4)
    ckpt = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        run_search(make(space), evaluator(mu, crash), seed=4, checkpoint=ckpt, fingerprint="x")
    resumed = run_search(make(space), evaluator(mu, None), seed=4, checkpoint=ckpt, fingerprint="x")
    assert resumed.resumed_from == crash
    assert resumed.arch == reference.arch
    assert strip(resumed.history) == strip(reference.history)


def test_options_are_checked() -> None:
    space = ToySpace(2, 3)
    with pytest.raises(ValueError, match="mode"):
        ENAS(space, mode="tabular")
    with pytest.raises(ValueError, match="mode"):
        Reinforce(space, mode="weight_sharing")
    with pytest.raises(ValueError, match="baseline_decay"):
        ENAS(space, baseline_decay=1.0)
    with pytest.raises(ValueError, match="aggregate"):
        ENAS(space, aggregate=0)
    with pytest.raises(ValueError, match="ema_momentum"):
        Reinforce(space, ema_momentum=1.0)
    with pytest.raises(ValueError, match="budget_seconds or max_epochs"):
        Reinforce(space, budget_seconds=None)
    with pytest.raises(ValueError, match="eval_images"):
        RSPS(space, eval_images=0)
    with pytest.raises(ValueError, match="budget_seconds or max_epochs"):
        RandomSearch(space, budget_seconds=None)
    with pytest.raises(ValueError, match="final_samples"):
        RSPS(space, final_samples=0)
