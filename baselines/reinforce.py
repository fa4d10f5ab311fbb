"""REINFORCE on the NAS-Bench-201 table, as NAS-Bench-201's own baseline runs it.

Source: xautodl (D-X-Y/AutoDL-Projects) ``exps/NATS-algos/reinforce.py`` (and the earlier
``exps/algos/reinforce.py``): a factorised policy, one E x K matrix of logits with softmax per
edge; Adam with the learning rate its documented commands pass (``--learning_rate 0.01``); an
exponential-moving-average baseline with momentum 0.9 and bias correction (its
``ExponentialMovingAverage``: numerator and denominator both decayed, value = their ratio); the
reward is the validation accuracy in percent as the API returns it; one Adam step per query, the
baseline updated with the reward *before* the advantage is taken; queries until the simulated-time
budget is spent; the answer is the best-rewarded architecture seen.

Differences, on purpose: the logits start at exactly zero (the source draws 1e-3 * N(0, 1), a
policy uniform to within 0.1 %), so building the strategy touches no RNG; the budget is counted
by :class:`~baselines.random_search.BestWithinBudget` exactly as for random search (the query that
would cross it is not counted); the reward is what the evaluator returns (the pipeline: the
table's seed-averaged 12-epoch accuracy, where the API's ``simulate_train_eval`` draws one random
trial).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pydantic import Field
from torch import nn

from baselines.random_search import BudgetedSearch, BudgetOptions, derived_seed
from ddpnas.config.options import Number
from ddpnas.registry import register_strategy
from ddpnas.spaces.base import Arch, SearchSpace
from ddpnas.strategies.base import Decision, EpochPlan


class EMABaseline:
    """Bias-corrected exponential moving average (xautodl's ExponentialMovingAverage).

    The correction makes the first value the first reward instead of (1 - momentum) * reward.
    """

    def __init__(self, momentum: float) -> None:
        self.momentum = momentum
        self.numerator = 0.0
        self.denominator = 0.0

    def update(self, value: float) -> float:
        """Fold ``value`` in and return the new average."""
        self.numerator = self.momentum * self.numerator + (1 - self.momentum) * value
        self.denominator = self.momentum * self.denominator + (1 - self.momentum)
        return self.value

    @property
    def value(self) -> float:
        return self.numerator / self.denominator if self.denominator else 0.0

    def state_dict(self) -> dict[str, float]:
        return {"numerator": self.numerator, "denominator": self.denominator}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.numerator = float(state["numerator"])
        self.denominator = float(state["denominator"])


class ReinforceOptions(BudgetOptions):
    """NAS-Bench-201's REINFORCE (xautodl exps/NATS-algos/reinforce.py)."""

    lr: Number = Field(0.01, gt=0, description="Adam learning rate of the policy's logits.")
    ema_momentum: Number = Field(0.9, ge=0, lt=1, description="Momentum of the EMA baseline.")


@register_strategy
class Reinforce(BudgetedSearch):
    """Factorised-policy REINFORCE under a simulated-time budget (tabular mode only).

    One engine epoch is one query: an architecture drawn from the policy, trained (its simulated
    cost charged) and validated. ``max_epochs`` additionally caps the number of queries.
    """

    name = "reinforce"
    Options = ReinforceOptions
    options: ReinforceOptions
    logs_theta = True
    theta_label = "policy probability"

    def __init__(self, space: SearchSpace, *, mode: str = "tabular", **options: Any) -> None:
        super().__init__(space, mode=mode, **options)
        self.logits = nn.Parameter(torch.zeros(space.num_edges, space.num_ops))
        self.optimizer = torch.optim.Adam([self.logits], lr=self.options.lr)
        self.baseline = EMABaseline(self.options.ema_momentum)

    def probabilities(self) -> np.ndarray:
        """E x K op probabilities of the policy."""
        with torch.no_grad():
            return torch.softmax(self.logits, dim=-1).numpy()

    def propose(self, rng: np.random.Generator) -> EpochPlan:
        if self.done():
            raise RuntimeError("search is finished; nothing left to sample")
        generator = torch.Generator().manual_seed(derived_seed(rng))
        probs = torch.softmax(self.logits.detach(), dim=-1)
        arch = tuple(int(k) for k in torch.multinomial(probs, 1, generator=generator).squeeze(1))
        return EpochPlan(train=arch, evaluate=[arch])

    def observe(
        self, plan: EpochPlan, train_metrics: dict[str, float], results: list[dict[str, float]]
    ) -> None:
        """Count the query if it fits the budget; then one policy-gradient step on it."""
        (arch,), (metrics,) = plan.evaluate, results
        self._epoch += 1
        accuracy = float(metrics["valid_acc"])
        if self.budget.add(arch, train_metrics, accuracy):
            self.reinforce(arch, 100.0 * accuracy)

    def reinforce(self, arch: Arch, reward: float) -> None:
        """One Adam step on -log pi(arch) * (reward - baseline), reward in percent."""
        advantage = reward - self.baseline.update(reward)
        log_probs = torch.log_softmax(self.logits, dim=-1)
        log_prob = log_probs[torch.arange(self.space.num_edges), list(arch)].sum()
        self.optimizer.zero_grad(set_to_none=True)
        (-log_prob * advantage).backward()
        self.optimizer.step()

    def decision(self) -> Decision:
        probs = self.probabilities()
        return Decision(probs, np.ones_like(probs, dtype=bool), "softmax(logits) of the policy")

    def snapshot(self) -> dict[str, Any]:
        return {
            "theta": np.round(self.probabilities(), 6).tolist(),
            "baseline": self.baseline.value,
            **self.budget.snapshot(self.space),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "logits": self.logits.detach().clone(),
            "optimizer": self.optimizer.state_dict(),
            "baseline": self.baseline.state_dict(),
            "epoch": self._epoch,
            "budget": self.budget.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.logits.copy_(state["logits"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline.load_state_dict(state["baseline"])
        self._epoch = int(state["epoch"])
        self.budget.load_state_dict(state["budget"])
