"""DDPNAS: sample from a joint categorical distribution, credit, update and prune dynamically."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from ddpnas.config.options import Number, Options
from ddpnas.registry import register_strategy
from ddpnas.spaces.base import Arch, SearchSpace
from ddpnas.strategies.base import Decision, EpochPlan, Strategy, rank_strength
from ddpnas.strategies.distribution import JointCategorical


class DDPNASOptions(Options):
    """DDPNAS's options (the paper's T, temperature and momentum of the theta update)."""

    pruning_step: int = Field(3, ge=1, description="Rounds between theta updates and prunes (T).")
    temperature: Number = Field(100, gt=0, description="Softmax temperature of the theta update.")
    momentum: Number = Field(0.9, ge=0, lt=1, description="Momentum of the theta update.")
    sampling: Literal["round_robin", "distribution"] = Field(
        "round_robin",
        description="round_robin: every survivor once per round; distribution: sample theta.",
    )


@register_strategy
class DDPNAS(Strategy):
    """Dynamic distribution pruning (see ../shared/reference/ddpnas_method.md).

    A round lasts k epochs when k ops survive per edge; every ``pruning_step`` rounds theta is
    updated from the credited accuracies and one op per edge is pruned. The search stops as soon as
    one op per edge survives, after exactly ``pruning_step * (K + ... + 2)`` epochs.
    """

    name = "ddpnas"
    Options = DDPNASOptions
    options: DDPNASOptions
    logs_theta = True
    theta_label = "theta (sampling probability)"

    def __init__(self, space: SearchSpace, *, mode: str = "weight_sharing", **options: Any) -> None:
        super().__init__(space, mode, **options)
        self.pruning_step = self.options.pruning_step
        self.sampling = self.options.sampling
        self.dist = JointCategorical(
            space.num_edges,
            space.num_ops,
            temperature=self.options.temperature,
            momentum=self.options.momentum,
        )
        self._epoch_in_round = 0
        self._rounds_since_update = 0
        self._order: list[list[int]] = []
        # Breaks exact theta ties when pruning: a stream of the run seed (Evidence.tie_rng), made
        # at the first prune and checkpointed, so resume is exact and the engine's draws (hence
        # tie-free runs) are untouched.
        self._rng: np.random.Generator | None = None

    def propose(self, rng: np.random.Generator) -> EpochPlan:
        """Train the sampled architecture for the epoch, then validate that same architecture."""
        if self.done():
            raise RuntimeError("search is finished; nothing left to sample")
        if self.sampling == "distribution":
            arch = self.dist.sample(rng)
        else:
            if self._epoch_in_round == 0:
                # Survivors of every edge in one call (equal counts per edge); one permutation per
                # edge, drawn in edge order. Vectorised for the bound's Monte-Carlo (many edges).
                alive = np.nonzero(self.dist.mask)[1].reshape(self.space.num_edges, -1)
                self._order = [rng.permutation(row).tolist() for row in alive]
            arch = tuple(order[self._epoch_in_round] for order in self._order)
        return EpochPlan(train=arch, evaluate=[arch])

    def observe(
        self, plan: EpochPlan, train_metrics: dict[str, float], results: list[dict[str, float]]
    ) -> None:
        """Credit the validation accuracy to the architecture that was trained."""
        (arch,), (metrics,) = plan.evaluate, results
        assert plan.train == arch, "DDPNAS credits the architecture it trained"
        self.dist.credit(arch, float(metrics["valid_acc"]))

    def step(self) -> dict[str, Any]:
        self._epoch_in_round += 1
        if self._epoch_in_round < self.dist.num_alive:
            return {}
        self.dist.end_round()
        self._epoch_in_round = 0
        self._rounds_since_update += 1
        if self._rounds_since_update < self.pruning_step:
            return {}
        self._rounds_since_update = 0
        self.dist.update(self.pruning_step)
        if self._rng is None:
            self._rng = self.evidence.tie_rng(stream=1)
        # The updated distribution before the prune (unrounded): what generation under a budget
        # starts from, since after the last prune a single op per edge is left.
        before = self.dist.theta.tolist()
        pruned = self.dist.prune(self._rng)
        return {"pruned": [self.space.ops[k] for k in pruned], "theta_before_prune": before}

    def done(self) -> bool:
        return self.dist.num_alive == 1

    def result(self) -> Arch:
        if not self.done():
            raise RuntimeError("search has not converged yet")
        return self.dist.argmax()

    def preferences(self) -> tuple[np.ndarray, np.ndarray]:
        """Ranks in (0, 1]: survivors first, then ops by how long they survived, and within that
        by theta just before the prune that decided them, then by mean credited accuracy, then a
        seeded random order.

        After the last prune every survivor's theta is 1.0, so theta alone cannot tell which
        inputs of a DARTS node the search preferred; theta before that prune says how decisively
        each survivor beat its last competitor. When fewer than two edges of a node end with a
        non-none survivor, the next inputs are the edges whose non-none op was pruned last.
        """
        dist = self.dist
        survival = np.where(dist.mask, dist.pruned_at.max() + 1, dist.pruned_at)
        keys = [survival, dist.theta_at_prune, dist.mean_accuracy()]
        return rank_strength(keys, self.evidence.tie_rng()), np.ones_like(dist.mask)

    def decision(self) -> Decision | None:
        """theta just before the last prune, over the ops alive then (two per edge once the search
        has converged): after that prune theta is one-hot by construction, which says nothing about
        how clearly the last two ops were told apart."""
        dist = self.dist
        if dist.pruned_at.max() == 0:
            return Decision(dist.theta.copy(), dist.mask.copy(), "theta (nothing pruned yet)")
        support = dist.mask | (dist.pruned_at == dist.pruned_at.max())
        alive = int(support.sum(axis=1)[0])
        of = f"theta before the last prune ({alive} ops alive per edge)"
        return Decision(np.where(support, dist.theta_at_prune, 0.0), support, of)

    def planned_epochs(self) -> int:
        return self.pruning_step * sum(range(2, self.space.num_ops + 1))

    def snapshot(self) -> dict[str, Any]:
        return {"theta": np.round(self.dist.theta, 6).tolist()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "dist": self.dist.state_dict(),
            "epoch_in_round": self._epoch_in_round,
            "rounds_since_update": self._rounds_since_update,
            "order": self._order,
            "rng": None if self._rng is None else self._rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.dist.load_state_dict(state["dist"])
        self._epoch_in_round = int(state["epoch_in_round"])
        self._rounds_since_update = int(state["rounds_since_update"])
        self._order = [list(map(int, o)) for o in state["order"]]
        self._rng = None
        if state["rng"] is not None:
            self._rng = np.random.default_rng()
            self._rng.bit_generator.state = state["rng"]
