"""ENAS (Pham et al., 2018): an LSTM controller trained with REINFORCE picks one op per edge.

Both modes share the controller and its update; they differ only in what an engine epoch is:

* ``weight_sharing``: ``epochs`` epochs in which the supernet is trained along a fresh controller
  sample per batch and ``controller_samples`` controller samples are validated on ``eval_images``
  random validation images as rewards; then one epoch that trains nothing and validates
  ``final_samples`` controller samples on the whole validation split; the result is the best.
* ``tabular``: one controller sample per epoch, trained (its simulated cost charged) and validated
  on the table, as NAS-Bench-201's REINFORCE baseline; with ``budget_seconds`` the search stops
  once the cumulative simulated cost would exceed it, and the result is the best-validated
  architecture within the budget (the pipeline configures the evaluator with ``hp="12"`` and
  ``charge_epochs=12`` for that protocol).

The controller takes one Adam step per (architecture, reward) pair, in order, so an epoch of M
rewards makes M steps (later ones on a slightly updated policy) and both modes update identically.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from baselines.random_search import BestWithinBudget, best_of, derived_seed
from ddpnas.spaces.base import Arch, SearchSpace
from ddpnas.strategies.base import EpochPlan, Path, StepContext, Strategy

# Samples (and their seed) behind the logged marginal op probabilities, fixed so the log is a
# deterministic function of the controller's weights.
SNAPSHOT_SAMPLES = 128
SNAPSHOT_SEED = 0


class Controller(nn.Module):
    """Autoregressive policy over one op per edge.

    The LSTM input at edge e is a learned embedding of e plus one of the op chosen on edge e-1; a
    head shared by all edges maps the hidden state to K logits, optionally divided by
    ``temperature`` and squashed to ``tanh_constant * tanh(.)`` as in ENAS.
    """

    def __init__(
        self,
        num_edges: int,
        num_ops: int,
        *,
        hidden: int = 64,
        temperature: float | None = 5.0,
        tanh_constant: float | None = 2.5,
    ) -> None:
        super().__init__()
        self.num_edges = num_edges
        self.hidden = hidden
        self.temperature = temperature
        self.tanh_constant = tanh_constant
        self.edge_embed = nn.Embedding(num_edges, hidden)
        self.op_embed = nn.Embedding(num_ops, hidden)
        self.cell = nn.LSTMCell(hidden, hidden)
        self.head = nn.Linear(hidden, num_ops)
        # ENAS's uniform(-0.1, 0.1) init, from a fixed local seed: building a strategy neither
        # reads nor advances the global torch RNG, and every run starts from a near-uniform policy.
        init = torch.Generator().manual_seed(0)
        for p in self.parameters():
            nn.init.uniform_(p, -0.1, 0.1, generator=init)

    def forward(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        actions: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample ``n`` architectures, or score the given ``actions`` (n x E) by teacher forcing.

        Returns actions (n x E), their log-probability and policy entropy summed over edges
        (n each), and the per-edge op probabilities (n x E x K) along those actions.
        """
        h = c = torch.zeros(n, self.hidden)
        chosen, log_probs, entropies, probs = [], [], [], []
        for e in range(self.num_edges):
            x = self.edge_embed.weight[e].expand(n, -1)
            if e:
                x = x + self.op_embed(chosen[-1])
            h, c = self.cell(x, (h, c))
            logits = self.head(h)
            if self.temperature is not None:
                logits = logits / self.temperature
            if self.tanh_constant is not None:
                logits = self.tanh_constant * torch.tanh(logits)
            log_p = torch.log_softmax(logits, dim=-1)
            p = log_p.exp()
            if actions is None:
                a = torch.multinomial(p.detach(), 1, generator=generator).squeeze(1)
            else:
                a = actions[:, e]
            chosen.append(a)
            log_probs.append(log_p.gather(1, a[:, None]).squeeze(1))
            entropies.append(-(p * log_p).sum(-1))
            probs.append(p)
        return (
            torch.stack(chosen, 1),
            torch.stack(log_probs, 1).sum(1),
            torch.stack(entropies, 1).sum(1),
            torch.stack(probs, 1),
        )

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> list[Arch]:
        """``n`` architectures drawn from the policy."""
        actions = self(n, generator=generator)[0]
        return [tuple(int(k) for k in row) for row in actions.tolist()]

    @torch.no_grad()
    def marginals(self) -> np.ndarray:
        """E x K marginal op probabilities, estimated deterministically.

        Averages the conditional probabilities along ``SNAPSHOT_SAMPLES`` sampled prefixes drawn
        with a fixed seed (a lower-variance estimate than counting the sampled ops).
        """
        generator = torch.Generator().manual_seed(SNAPSHOT_SEED)
        probs = self(SNAPSHOT_SAMPLES, generator=generator)[3]
        return probs.mean(0).numpy()


class ControllerPath:
    """Training plan that trains the supernet along a fresh controller sample per batch."""

    def __init__(self, controller: Controller, seed: int) -> None:
        self.controller = controller
        self.generator = torch.Generator().manual_seed(seed)

    def path(self) -> Path:
        return self.controller.sample(1, self.generator)[0]

    def before_weight_step(self, ctx: StepContext) -> None:
        """No architecture step: the controller learns from validation rewards in observe()."""


class ENAS(Strategy):
    """ENAS's controller search over a single-path supernet, or REINFORCE on the table.

    ``mode`` must match the evaluator the engine is given. ``epochs`` counts training epochs in
    weight sharing (default 50) and controller samples in tabular mode (default: unlimited when
    ``budget_seconds`` is set, else 50). Rewards are ``valid_acc``; the moving-average baseline
    starts at the first reward and is updated before each advantage, as in ENAS's code.
    """

    name = "enas"

    def __init__(
        self,
        space: SearchSpace,
        *,
        mode: str = "weight_sharing",
        epochs: int | None = None,
        budget_seconds: float | None = None,
        controller_samples: int = 10,
        eval_images: int | None = 500,
        final_samples: int = 100,
        controller_lr: float = 3.5e-4,
        entropy_weight: float = 1e-4,
        baseline_decay: float = 0.95,
        hidden: int = 64,
        temperature: float | None = 5.0,
        tanh_constant: float | None = 2.5,
    ) -> None:
        super().__init__(space, mode)
        if mode == "weight_sharing" and budget_seconds is not None:
            raise ValueError("budget_seconds needs simulated costs, i.e. mode: tabular")
        checks = [
            ("epochs", epochs, epochs is None or epochs >= 1),
            ("controller_samples", controller_samples, controller_samples >= 1),
            ("eval_images", eval_images, eval_images is None or eval_images >= 1),
            ("final_samples", final_samples, final_samples >= 1),
            ("controller_lr", controller_lr, controller_lr > 0),
            ("entropy_weight", entropy_weight, entropy_weight >= 0),
            ("baseline_decay", baseline_decay, 0 <= baseline_decay < 1),
            ("hidden", hidden, hidden >= 1),
            ("temperature", temperature, temperature is None or temperature > 0),
            ("tanh_constant", tanh_constant, tanh_constant is None or tanh_constant > 0),
        ]
        for key, value, ok in checks:
            if not ok:
                raise ValueError(f"invalid ENAS option {key}={value!r}")
        if epochs is None and (mode == "weight_sharing" or budget_seconds is None):
            epochs = 50
        self.epochs = epochs
        self.controller_samples = controller_samples
        self.eval_images = eval_images
        self.final_samples = final_samples
        self.entropy_weight = entropy_weight
        self.baseline_decay = baseline_decay
        self.controller = Controller(
            space.num_edges,
            space.num_ops,
            hidden=hidden,
            temperature=temperature,
            tanh_constant=tanh_constant,
        )
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=controller_lr)
        self.baseline: float | None = None
        self.budget = BestWithinBudget(budget_seconds)
        self._epoch = 0
        self._result: Arch | None = None

    def propose(self, rng: np.random.Generator) -> EpochPlan:
        """Controller samples to train along and to reward (or, last, to choose from)."""
        if self.done():
            raise RuntimeError("search is finished; nothing left to sample")
        generator = torch.Generator().manual_seed(derived_seed(rng))
        if self.mode == "tabular":
            (arch,) = self.controller.sample(1, generator)
            return EpochPlan(train=arch, evaluate=[arch])
        if self._epoch < self.epochs:
            return EpochPlan(
                train=ControllerPath(self.controller, derived_seed(rng)),
                evaluate=self.controller.sample(self.controller_samples, generator),
                eval_images=self.eval_images,
            )
        candidates = self.controller.sample(self.final_samples, generator)
        return EpochPlan(train=None, evaluate=list(dict.fromkeys(candidates)))

    def observe(
        self, plan: EpochPlan, train_metrics: dict[str, float], results: list[dict[str, float]]
    ) -> None:
        """REINFORCE on each reward; in the final epoch, keep the best candidate."""
        self._epoch += 1
        if self.mode == "tabular":
            (arch,), (metrics,) = plan.evaluate, results
            reward = float(metrics["valid_acc"])
            if self.budget.add(arch, train_metrics, reward):
                self.reinforce(arch, reward)
        elif plan.train is None:
            self._result = best_of(plan.evaluate, results)
        else:
            for arch, metrics in zip(plan.evaluate, results, strict=True):
                self.reinforce(arch, float(metrics["valid_acc"]))

    def reinforce(self, arch: Arch, reward: float) -> None:
        """One Adam step on -(reward - baseline) * log pi(arch) - entropy_weight * entropy."""
        decay = self.baseline_decay
        self.baseline = (
            reward if self.baseline is None else decay * self.baseline + (1 - decay) * reward
        )
        _, log_prob, entropy, _ = self.controller(1, actions=torch.tensor([arch]))
        loss = -(reward - self.baseline) * log_prob.sum() - self.entropy_weight * entropy.sum()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def done(self) -> bool:
        if self.mode == "weight_sharing":
            return self._result is not None
        capped = self.epochs is not None and self._epoch >= self.epochs
        return self.budget.exhausted or capped

    def result(self) -> Arch:
        if not self.done():
            raise RuntimeError("search has not finished yet")
        if self._result is None:  # tabular: no final epoch, the best within the budget
            return self.budget.result()
        return self._result

    def planned_epochs(self) -> int | None:
        """Engine epochs: training epochs plus the final choice (weight sharing)."""
        if self.mode == "weight_sharing":
            return self.epochs + 1
        return self.epochs

    def snapshot(self) -> dict[str, Any]:
        return {
            "theta": np.round(self.controller.marginals(), 6).tolist(),
            "baseline": self.baseline,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "controller": self.controller.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "baseline": self.baseline,
            "epoch": self._epoch,
            "budget": self.budget.state_dict(),
            "result": None if self._result is None else list(self._result),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = None if state["baseline"] is None else float(state["baseline"])
        self._epoch = int(state["epoch"])
        self.budget.load_state_dict(state["budget"])
        result = state["result"]
        self._result = None if result is None else tuple(int(k) for k in result)
