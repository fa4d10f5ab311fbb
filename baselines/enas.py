"""ENAS (Pham et al., 2018) over a single-path supernet: an LSTM controller trained with REINFORCE.

Sources: the paper (arXiv 1802.03268) and its official code, melodyguan/enas
(``scripts/cifar10_micro_search.sh``, ``src/cifar10/main.py``, ``src/cifar10/micro_controller.py``).
What we take from them, with our default:

* controller: Adam, lr 3.5e-3 (``--controller_lr=0.0035``), beta1 0 and epsilon 1e-3
  (``src/utils.py``), parameters uniform in [-0.1, 0.1];
* one controller step per ``aggregate`` samples (``--controller_num_aggregate=10``: the gradients
  of 10 samples are aggregated into one step), ``controller_steps`` steps per epoch
  (``--controller_train_steps=30``);
* reward = validation accuracy of the sample on one random validation batch (``eval_images``; the
  micro search's batch is 160 images) plus ``entropy_weight`` (1e-4) times the sample's policy
  entropy (no gradient through it, as ``self.reward += self.entropy_weight * self.sample_entropy``);
* baseline: starts at 0 and moves by ``(1 - baseline_decay) * (reward - baseline)`` before the
  advantage is taken, decay 0.99 (``controller_bl_dec``);
* logits divided by ``temperature`` 5.0 and squashed to ``tanh_constant`` 2.5 * tanh(.): the
  paper's values (its Penn Treebank controller) and NAS-Bench-201's ENAS controller (xautodl
  ``search_model_enas_utils.py``, after TDeVries/enas_pytorch), so the NAS-Bench-201 rows match
  it. The micro search (``micro_controller.py``, ``cifar10_micro_search.sh``) is a different
  controller: per node it picks two inputs by attention (logits 1.10 * tanh, no temperature) and
  two ops among five without 'none' (op logits with learned biases initialised 10 on the two
  separable convolutions, 0.44 * tanh, plus fixed biases +-0.25 in the normal cell). Our controller
  picks one op per edge, 'none' included, in every space, so the DARTS-space rows are not the
  micro search: their labels say so. ``tanh_constant: 0.44, temperature: null`` gives the micro
  search's op squashing on our per-edge controller (an op's probability then stays below 0.26
  with eight ops, near uniform, which is why the DARTS-space rows keep NAS-Bench-201's values).

One engine epoch trains the supernet along a fresh controller sample per batch, then validates the
``controller_steps * aggregate`` samples and takes the steps. All samples of an epoch are drawn
from the policy at the start of the epoch (the engine validates a plan's architectures before
``observe``), whereas ENAS draws each step's samples after the previous step: within one epoch the
later steps are slightly off-policy. A final epoch trains nothing and validates ``final_samples``
controller samples on the whole validation split; the result is the best of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pydantic import Field
from torch import nn

from baselines.random_search import best_of, derived_seed
from ddpnas.config.options import Number, Options
from ddpnas.registry import register_strategy
from ddpnas.spaces.base import Arch, SearchSpace
from ddpnas.strategies.base import Decision, EpochPlan, StepContext, Strategy, SupernetPath

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

    def path(self) -> SupernetPath:
        return self.controller.sample(1, self.generator)[0]

    def before_weight_step(self, ctx: StepContext) -> None:
        """No architecture step: the controller learns from validation rewards in observe()."""


class ENASOptions(Options):
    """ENAS (Pham et al. 2018; official code melodyguan/enas, micro search)."""

    epochs: int = Field(50, ge=1, description="Training epochs (each with controller steps).")
    controller_steps: int = Field(
        30, ge=1, description="Controller steps per epoch (ENAS controller_train_steps)."
    )
    aggregate: int = Field(
        10,
        ge=1,
        description="Samples whose gradients make one controller step (controller_num_aggregate).",
    )
    eval_images: int | None = Field(
        160,
        ge=1,
        description=(
            "Validation images behind one reward (ENAS micro search batch, 160; null = all)."
        ),
    )
    final_samples: int = Field(
        100, ge=1, description="Controller samples the result is chosen from."
    )
    controller_lr: Number = Field(0.0035, gt=0, description="Adam learning rate of the controller.")
    entropy_weight: Number = Field(0.0001, ge=0, description="Weight of the entropy in the reward.")
    baseline_decay: Number = Field(0.99, ge=0, lt=1, description="Decay of the reward baseline.")
    hidden: int = Field(64, ge=1, description="LSTM hidden size of the controller.")
    temperature: Number | None = Field(
        5.0, gt=0, description="Logits divided by it (null: not divided)."
    )
    tanh_constant: Number | None = Field(
        2.5, gt=0, description="Logits squashed to tanh_constant * tanh(.) (null: not squashed)."
    )


@register_strategy
class ENAS(Strategy):
    """ENAS's controller search over a single-path supernet (weight sharing only).

    ``epochs`` training epochs, then one epoch that picks the best of ``final_samples`` controller
    samples on the whole validation split. See the module docstring for the protocol and sources.
    """

    name = "enas"
    Options = ENASOptions
    options: ENASOptions
    modes = ("weight_sharing",)
    logs_theta = True
    theta_label = "policy probability (controller marginal)"

    def __init__(self, space: SearchSpace, *, mode: str = "weight_sharing", **options: Any) -> None:
        super().__init__(space, mode, **options)
        opts = self.options
        self.epochs = opts.epochs
        self.controller_steps = opts.controller_steps
        self.aggregate = opts.aggregate
        self.eval_images = opts.eval_images
        self.final_samples = opts.final_samples
        self.entropy_weight = opts.entropy_weight
        self.baseline_decay = opts.baseline_decay
        self.controller = Controller(
            space.num_edges,
            space.num_ops,
            hidden=opts.hidden,
            temperature=opts.temperature,
            tanh_constant=opts.tanh_constant,
        )
        # ENAS's src/utils.py get_train_ops: Adam with beta1 = 0 and epsilon 1e-3.
        self.optimizer = torch.optim.Adam(
            self.controller.parameters(), lr=opts.controller_lr, betas=(0.0, 0.999), eps=1e-3
        )
        self.baseline = 0.0
        self._epoch = 0
        self._result: Arch | None = None

    def propose(self, rng: np.random.Generator) -> EpochPlan:
        """Controller samples to train along and to reward (or, last, to choose from)."""
        if self.done():
            raise RuntimeError("search is finished; nothing left to sample")
        generator = torch.Generator().manual_seed(derived_seed(rng))
        if self._epoch < self.epochs:
            return EpochPlan(
                train=ControllerPath(self.controller, derived_seed(rng)),
                evaluate=self.controller.sample(self.controller_steps * self.aggregate, generator),
                eval_images=self.eval_images,
            )
        candidates = self.controller.sample(self.final_samples, generator)
        return EpochPlan(train=None, evaluate=list(dict.fromkeys(candidates)))

    def observe(
        self, plan: EpochPlan, train_metrics: dict[str, float], results: list[dict[str, float]]
    ) -> None:
        """One controller step per ``aggregate`` rewards; in the final epoch, keep the best."""
        self._epoch += 1
        if plan.train is None:
            self._result = best_of(plan.evaluate, results)
            return
        accs = [float(r["valid_acc"]) for r in results]
        for start in range(0, len(accs), self.aggregate):
            stop = start + self.aggregate
            self.reinforce(plan.evaluate[start:stop], accs[start:stop])

    def reinforce(self, archs: list[Arch], accs: list[float]) -> None:
        """One Adam step on the mean of -(reward - baseline) * log pi(arch) over ``archs``.

        reward = accuracy + entropy_weight * entropy (a constant for the gradient); the baseline
        moves towards each reward in turn before that sample's advantage is taken.
        """
        _, log_prob, entropy, _ = self.controller(len(archs), actions=torch.tensor(archs))
        rewards = torch.tensor(accs) + self.entropy_weight * entropy.detach()
        advantages = []
        for reward in rewards.tolist():
            self.baseline += (1 - self.baseline_decay) * (reward - self.baseline)
            advantages.append(reward - self.baseline)
        loss = -(torch.tensor(advantages) * log_prob).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def done(self) -> bool:
        return self._result is not None

    def result(self) -> Arch:
        if self._result is None:
            raise RuntimeError("search has not finished yet")
        return self._result

    def planned_epochs(self) -> int:
        """Engine epochs: training epochs plus the final choice."""
        return self.epochs + 1

    def search_images(self, n_valid: int) -> tuple[int, int]:
        """Each reward validates ``eval_images`` (None: the whole split)."""
        per_reward = self.eval_images or n_valid
        per_epoch = self.controller_steps * self.aggregate * per_reward
        return self.epochs, self.epochs * per_epoch + self.final_samples * per_reward

    def decision(self) -> Decision:
        probs = self.controller.marginals()
        of = f"the controller's marginal op probabilities ({SNAPSHOT_SAMPLES} sampled prefixes)"
        return Decision(probs, np.ones_like(probs, dtype=bool), of)

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
            "result": None if self._result is None else list(self._result),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = float(state["baseline"])
        self._epoch = int(state["epoch"])
        result = state["result"]
        self._result = None if result is None else tuple(int(k) for k in result)
