"""Regularised (aging) evolution, REA (Real et al., AAAI 2019), on the NAS-Bench-201 table as
NAS-Bench-201 runs it: one file, registered through the ``ddpnas.strategies`` entry point.

Source: xautodl (D-X-Y/AutoDL-Projects) ``exps/NAS-Bench-201-algos/R_EA.py`` with its documented
command ``R-EA.sh cifar10 3 -1`` (``--ea_population 10 --ea_sample_size 3 --time_budget 12000``;
``--ea_cycles 200`` is unused once the time budget decides; NATS-Bench's ``regularized_ea.py``
takes the same 10 / 3):

* the population starts as ``population`` uniform random architectures, each queried;
* each cycle draws ``sample_size`` members uniformly with replacement; the best of them (the first
  drawn on ties, as Python's ``max``) is the parent; the child changes one op of the parent: a
  node uniformly, then one of its incoming edges uniformly, then a different op uniformly
  (``mutate_arch_func``); the child is queried, joins the population, and the oldest member leaves;
* queries go on until the simulated-time budget is spent; the query that would cross it is not
  counted (R_EA.py returns before adding it), exactly as random search counts
  (:class:`~baselines.random_search.BestWithinBudget`); the answer is the best-rewarded
  architecture of the whole history.

Differences: the initial population counts against the budget like any query (R_EA.py fills it
before checking, which matters only for budgets under about 10 queries); the reward is the
table's mean over training trials where the API draws one trial; R_EA.py also adds the wall time
of each mutation (microseconds) to the budget, we do not.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
from pydantic import Field

from baselines.random_search import BudgetedSearch, BudgetOptions, uniform_arch
from ddpnas.registry import register_strategy
from ddpnas.spaces.base import Arch, SearchSpace
from ddpnas.strategies.base import EpochPlan


class REAOptions(BudgetOptions):
    """NAS-Bench-201's REA (xautodl R-EA.sh: population 10, tournament sample 3)."""

    population: int = Field(10, ge=1, description="Members kept in the population (ea_population).")
    sample_size: int = Field(
        3, ge=1, description="Members drawn (with replacement) per tournament (ea_sample_size)."
    )


def node_edges(space: SearchSpace) -> list[list[int]]:
    """Edge indices grouped by the node they feed (names ``"<node><-<input>"``, as NAS-Bench-201's
    and the DARTS space's), so a mutation picks a node first as R_EA.py does; one group per edge
    for a space whose edges name no node."""
    if not all("<-" in edge for edge in space.edges):
        return [[e] for e in range(space.num_edges)]
    groups: dict[str, list[int]] = {}
    for e, edge in enumerate(space.edges):
        groups.setdefault(edge.rsplit("<-", 1)[0], []).append(e)
    return list(groups.values())


def mutate(arch: Arch, nodes: list[list[int]], num_ops: int, rng: np.random.Generator) -> Arch:
    """``arch`` with one op changed: a node uniformly, one of its edges uniformly, then an op
    uniformly among the other ``num_ops - 1`` (R_EA.py's ``mutate_arch_func``)."""
    edges = nodes[int(rng.integers(len(nodes)))]
    edge = edges[int(rng.integers(len(edges)))]
    op = int(rng.integers(num_ops - 1))
    child = list(arch)
    child[edge] = op if op < arch[edge] else op + 1
    return tuple(child)


@register_strategy
class REA(BudgetedSearch):
    """Regularised evolution under a simulated-time budget (tabular mode only).

    One engine epoch is one query: a random architecture while the population fills, then a
    mutated tournament winner. ``max_epochs`` additionally caps the number of queries.
    """

    name = "rea"
    Options = REAOptions
    options: REAOptions

    def __init__(self, space: SearchSpace, *, mode: str = "tabular", **options: Any) -> None:
        super().__init__(space, mode=mode, **options)
        self.nodes = node_edges(space)
        # (architecture, reward) of the living members, oldest first.
        self.population: deque[tuple[Arch, float]] = deque(maxlen=self.options.population)

    def propose(self, rng: np.random.Generator) -> EpochPlan:
        if self.done():
            raise RuntimeError("search is finished; nothing left to sample")
        if len(self.population) < self.options.population:
            arch = uniform_arch(self.space, rng)
        else:
            drawn = rng.integers(len(self.population), size=self.options.sample_size)
            rewards = [self.population[int(i)][1] for i in drawn]
            parent = self.population[int(drawn[int(np.argmax(rewards))])][0]
            arch = mutate(parent, self.nodes, self.space.num_ops, rng)
        return EpochPlan(train=arch, evaluate=[arch])

    def observe(
        self, plan: EpochPlan, train_metrics: dict[str, float], results: list[dict[str, float]]
    ) -> None:
        """Count the query if it fits the budget; it then joins the population (the oldest
        member leaves once the population is full)."""
        (arch,), (metrics,) = plan.evaluate, results
        self._epoch += 1
        accuracy = float(metrics["valid_acc"])
        if self.budget.add(arch, train_metrics, accuracy):
            self.population.append((tuple(arch), accuracy))

    def snapshot(self) -> dict[str, Any]:
        return {"population": len(self.population), **self.budget.snapshot(self.space)}

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self._epoch,
            "budget": self.budget.state_dict(),
            "population": [[list(a), acc] for a, acc in self.population],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._epoch = int(state["epoch"])
        self.budget.load_state_dict(state["budget"])
        self.population.clear()
        for arch, acc in state["population"]:
            self.population.append((tuple(int(k) for k in arch), float(acc)))
