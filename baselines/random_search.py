"""Random search baselines: RS on the table under a simulated-time budget, and RSPS on a supernet.

``RandomSearch`` follows NAS-Bench-201's protocol (xautodl ``exps/NATS-algos/random_wo_share.py``
through the API's ``simulate_train_eval(arch, 'cifar10', hp='12')``): the pipeline configures the
:class:`~ddpnas.engine.evaluators.TabularEvaluator` with ``hp="12"``, ``charge_epochs=12`` and
``charge_valid_epochs`` (see there), so each query reads the 12-epoch validation accuracy and
costs 12 epochs of the architecture's simulated training time plus one validation pass, and the
search gets 12,000 simulated seconds. The API rewards one random training trial
(``is_random=True``); the compact table holds the trials' mean, so our reward is less noisy.

``RSPS`` (Li & Talwalkar, 2019; NAS-Bench-201's RANDOM-NAS) trains the shared weights along a
uniform random path per batch, then ranks uniform random architectures by their accuracy with the
shared weights. Paths and candidates take the space's final form: one op per edge on NAS-Bench-201,
a genotype (two distinct inputs per node, non-'none' ops) in the DARTS space. Two published
protocols, both configurable:

* xautodl's RANDOM-NAS (NAS-Bench-201's row): 250 epochs, then 100 candidates, each scored on one
  validation batch of 512 (``test_batch_size`` of ``RANDOM.config`` since 2019-12-29; 64 before);
* Li & Talwalkar (``randomNAS_release``, ``random_weight_share.py``): 1,000 candidates each scored
  on 10 minibatches of 64, the best 10 rescored on the whole validation split (``rescore_top``),
  repeated ``max(1, B / 10000)`` rounds (B = training minibatches; we run one round). Their ops are
  uniform over all 8 DARTS ops, 'none' included; ours over the 7 others (a genotype holds no
  'none'), and the derived genotype is exactly the scored architecture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from ddpnas.config.options import Number, Options, Unset, absent
from ddpnas.errors import DDPNASError
from ddpnas.registry import register_strategy
from ddpnas.spaces.base import Arch, SearchSpace
from ddpnas.strategies.base import EpochPlan, StepContext, Strategy, SupernetPath

BUDGET_RULE = (
    "budget_seconds: null needs max_epochs (an integer) to stop; set budget_seconds or max_epochs"
)


def uniform_arch(space: SearchSpace, rng: np.random.Generator) -> Arch:
    """One op per edge, each uniform over the space's ops."""
    return tuple(int(k) for k in rng.integers(0, space.num_ops, size=space.num_edges))


def derived_seed(rng: np.random.Generator) -> int:
    """A seed drawn from ``rng``: it advances the checkpointed state, unlike ``rng.spawn``."""
    return int(rng.integers(2**63))


def best_of(archs: Sequence[Arch], results: Sequence[dict[str, float]]) -> Arch:
    """The architecture with the highest ``valid_acc`` (the first one on ties).

    Ties are common when each candidate is scored on one batch (accuracies in steps of 1/64).
    Every caller passes its candidates in the random order they were drawn, so "the first" is a
    uniform random pick among the tied ones, as RANDOM-NAS's strict ``best_acc < acc`` is.
    """
    accs = [r["valid_acc"] for r in results]
    return archs[int(np.argmax(accs))]


class BestWithinBudget:
    """The best-validated architecture among those whose cumulative simulated cost fits a budget.

    Shared by random search and tabular ENAS so both count the budget the same way: an
    architecture counts only if the running total including its cost stays <= ``budget``; the one
    that crosses it is not counted and marks the budget exhausted. ``budget=None`` counts all.
    """

    def __init__(self, budget: float | None) -> None:
        self.budget = budget
        self.spent = 0.0
        self.counted = 0
        self.exhausted = False
        self.best_arch: Arch | None = None
        self.best_acc = -math.inf

    def add(self, arch: Arch, train_metrics: dict[str, float], acc: float) -> bool:
        """Count ``arch`` if its cost fits; False (and exhausted from now on) once it does not."""
        if self.exhausted:
            raise RuntimeError("the budget is already exhausted")
        if self.budget is not None:
            if "sim_seconds" not in train_metrics:
                raise DDPNASError(
                    "budget_seconds needs an evaluator reporting sim_seconds; use mode: tabular"
                )
            cost = float(train_metrics["sim_seconds"])
            if self.spent + cost > self.budget:
                self.exhausted = True
                return False
            self.spent += cost
        self.counted += 1
        if acc > self.best_acc:
            self.best_arch, self.best_acc = tuple(arch), float(acc)
        return True

    def result(self) -> Arch:
        if self.best_arch is None:
            raise DDPNASError(
                f"no architecture fit in budget_seconds={self.budget}; raise the budget"
            )
        return self.best_arch

    def snapshot(self, space: SearchSpace) -> dict[str, Any]:
        best = None if self.best_arch is None else space.arch_to_str(self.best_arch)
        return {
            "best": best,
            "best_acc": None if best is None else self.best_acc,
            "spent_seconds": self.spent,
            "counted": self.counted,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "spent": self.spent,
            "counted": self.counted,
            "exhausted": self.exhausted,
            "best_arch": None if self.best_arch is None else list(self.best_arch),
            "best_acc": self.best_acc,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.spent = float(state["spent"])
        self.counted = int(state["counted"])
        self.exhausted = bool(state["exhausted"])
        best = state["best_arch"]
        self.best_arch = None if best is None else tuple(int(k) for k in best)
        self.best_acc = float(state["best_acc"])


class BudgetOptions(Options):
    """When a budgeted tabular search stops."""

    model_config = Options.model_config | {
        "json_schema_extra": {
            "if": {
                "properties": {"budget_seconds": {"type": "null"}},
                "required": ["budget_seconds"],
            },
            "then": {
                "properties": {"max_epochs": {"type": "integer", "errorMessage": BUDGET_RULE}},
                "required": ["max_epochs"],
                "errorMessage": BUDGET_RULE,
            },
        }
    }

    budget_seconds: Number | None = Field(
        12000, gt=0, description="Simulated training seconds the search may spend (null: no cap)."
    )
    max_epochs: int | None = Field(
        None, ge=1, description="Most queries (engine epochs); null: only the budget stops it."
    )

    @model_validator(mode="after")
    def _stops(self) -> BudgetOptions:
        if self.budget_seconds is None and self.max_epochs is None:
            raise ValueError(BUDGET_RULE)
        return self


class BudgetedSearch(Strategy):
    """A tabular search that stops when its simulated-time budget (or epoch cap) is spent and
    answers with the best architecture found within the budget (RS, REINFORCE)."""

    Options = BudgetOptions
    options: BudgetOptions
    modes = ("tabular",)

    def __init__(self, space: SearchSpace, *, mode: str = "tabular", **options: Any) -> None:
        super().__init__(space, mode, **options)
        self.max_epochs = self.options.max_epochs
        self.budget = BestWithinBudget(self.options.budget_seconds)
        self._epoch = 0

    def done(self) -> bool:
        capped = self.max_epochs is not None and self._epoch >= self.max_epochs
        return self.budget.exhausted or capped

    def result(self) -> Arch:
        if not self.done():
            raise RuntimeError("search has not finished yet")
        return self.budget.result()

    def planned_epochs(self) -> int | None:
        return self.max_epochs

    def unused_epochs(self) -> int:
        """The query that would have crossed the budget was looked up, but not counted."""
        return int(self.budget.exhausted)


@register_strategy
class RandomSearch(BudgetedSearch):
    """Query uniform random architectures until the simulated-time budget runs out.

    One engine epoch is one architecture: trained (its simulated cost charged) and validated.
    ``max_epochs`` additionally caps the number of queries (None: only the budget stops it).
    """

    name = "rs"

    def propose(self, rng: np.random.Generator) -> EpochPlan:
        if self.done():
            raise RuntimeError("search is finished; nothing left to sample")
        arch = uniform_arch(self.space, rng)
        return EpochPlan(train=arch, evaluate=[arch])

    def observe(
        self, plan: EpochPlan, train_metrics: dict[str, float], results: list[dict[str, float]]
    ) -> None:
        """Count the architecture if its cost fits the budget."""
        (arch,), (metrics,) = plan.evaluate, results
        self._epoch += 1
        self.budget.add(arch, train_metrics, float(metrics["valid_acc"]))

    def snapshot(self) -> dict[str, Any]:
        return self.budget.snapshot(self.space)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self._epoch, "budget": self.budget.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._epoch = int(state["epoch"])
        self.budget.load_state_dict(state["budget"])


class UniformPath:
    """Training plan of single-path training with a fresh uniform random path per batch, in the
    space's final form (:meth:`~ddpnas.spaces.base.SearchSpace.sample_final_form`)."""

    def __init__(self, space: SearchSpace, seed: int) -> None:
        self.space = space
        self.rng = np.random.Generator(np.random.PCG64(seed))

    def path(self) -> SupernetPath:
        return self.space.sample_final_form(self.rng)

    def before_weight_step(self, ctx: StepContext) -> None:
        """No architecture step."""


class RSPSOptions(Options):
    """RSPS's schedule: NAS-Bench-201's RANDOM-NAS, or Li & Talwalkar's with ``rescore_top``."""

    epochs: int = Field(50, ge=1, description="Epochs of uniform single-path training.")
    final_samples: int = Field(
        100,
        ge=1,
        description="Random candidates scored at the end (RANDOM-NAS: 100; Li & Talwalkar: 1000).",
    )
    eval_images: int | None = Field(
        None,
        ge=1,
        description=(
            "Validation images behind each candidate's score (xautodl's RANDOM-NAS config: one "
            "batch of 512, 64 before 2019-12-29; Li & Talwalkar: 10 batches of 64 = 640); "
            "null = the whole validation split."
        ),
    )
    rescore_top: int | Unset = absent(
        "Rescore the best this many candidates on the whole validation split and answer with the "
        "best of those (Li & Talwalkar: 10). Absent: answer with the best score (no default is "
        "filled in, so records of configs without the key are unchanged).",
        ge=1,
    )


@register_strategy
class RSPS(Strategy):
    """Random search with parameter sharing: uniform single-path training, then best of N.

    Paths and candidates are uniform random architectures of the space's final form (NAS-Bench-201:
    one op per edge; DARTS space: a genotype, two inputs per node). ``epochs`` training epochs
    validate nothing (the shared weights are the only state, so a per-epoch score would only cost
    time); one epoch trains nothing and scores ``final_samples`` candidates (duplicates once),
    each on its own random ``eval_images`` validation images (None: the whole split); with
    ``rescore_top``, one more epoch rescores the best ones on the whole split. The answer is the
    best of the last scoring.
    """

    name = "rsps"
    Options = RSPSOptions
    options: RSPSOptions
    modes = ("weight_sharing",)

    def __init__(self, space: SearchSpace, *, mode: str = "weight_sharing", **options: Any) -> None:
        super().__init__(space, mode, **options)
        self.epochs = self.options.epochs
        self.final_samples = self.options.final_samples
        self.eval_images = self.options.eval_images
        self.rescore_top = self.options.rescore_top
        self._epoch = 0
        self._top: list[Arch] = []
        self._result: Arch | None = None

    def propose(self, rng: np.random.Generator) -> EpochPlan:
        if self.done():
            raise RuntimeError("search is finished; nothing left to sample")
        if self._epoch < self.epochs:
            return EpochPlan(train=UniformPath(self.space, derived_seed(rng)))
        if self._top:
            return EpochPlan(train=None, evaluate=list(self._top))
        archs = [self.space.sample_final_form(rng) for _ in range(self.final_samples)]
        return EpochPlan(
            train=None, evaluate=list(dict.fromkeys(archs)), eval_images=self.eval_images
        )

    def observe(
        self, plan: EpochPlan, train_metrics: dict[str, float], results: list[dict[str, float]]
    ) -> None:
        """Keep the best scored candidate, or the best ones to rescore."""
        self._epoch += 1
        if plan.train is not None:
            return
        if self.rescore_top is None or self._top:
            self._result = best_of(plan.evaluate, results)
            return
        # Stable sort: equal scores keep the random order they were drawn in (see best_of).
        order = sorted(range(len(results)), key=lambda i: -results[i]["valid_acc"])
        self._top = [plan.evaluate[i] for i in order[: self.rescore_top]]

    def done(self) -> bool:
        return self._result is not None

    def result(self) -> Arch:
        if self._result is None:
            raise RuntimeError("search has not finished yet")
        return self._result

    def planned_epochs(self) -> int:
        return self.epochs + 1 + (self.rescore_top is not None)

    def search_images(self, n_valid: int) -> tuple[int, int]:
        """Training validates nothing; the scoring epoch scores each candidate, the rescoring
        epoch its best ones on the whole split."""
        scored = self.final_samples * min(self.eval_images or n_valid, n_valid)
        return self.epochs, scored + (self.rescore_top or 0) * n_valid

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self._epoch,
            "top": [list(a) for a in self._top],
            "result": None if self._result is None else list(self._result),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._epoch = int(state["epoch"])
        self._top = [tuple(int(k) for k in a) for a in state.get("top", [])]
        result = state["result"]
        self._result = None if result is None else tuple(int(k) for k in result)
