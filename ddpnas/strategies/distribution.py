"""Joint categorical distribution over ops with masks: the state DDPNAS learns and prunes.

theta is an E x K matrix of probabilities, row-normalised over the surviving ops of each edge;
``mask`` marks the survivors. Accuracies are credited per round and turned into per-edge scores at
each update, exactly as in ../shared/reference/ddpnas_method.md:

    score_r[e, k] = softmax_k(temperature * acc_r[e, k])   over the ops observed on e in round r
    score[e, k]   = mean over the last T rounds of score_r[e, k]
    v            <- gamma * v + (1 - gamma) * score
    theta        <- normalise(theta + v) over the survivors, then prune argmin theta per edge.

Exact ties in argmin (e.g. equal accuracies on a small, quantised validation split) are broken at
random from the run's generator, never toward the lowest op index (which is 'none').

Rewards are accuracies in [0, 1] where larger is better. Feeding errors instead (a defect of the
public code) would prune the best op first; ``credit`` rejects values outside [0, 1] so a caller
that feeds percentages notices.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ddpnas.spaces.base import Arch


class JointCategorical:
    """Theta, survivor mask, momentum and the per-round credit of every (edge, op)."""

    def __init__(
        self, num_edges: int, num_ops: int, *, temperature: float = 100.0, momentum: float = 0.9
    ) -> None:
        if num_edges < 1 or num_ops < 2:
            raise ValueError("need at least one edge and two ops per edge")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)
        self.momentum = float(momentum)
        self.mask = np.ones((num_edges, num_ops), dtype=bool)
        self.theta = np.full((num_edges, num_ops), 1.0 / num_ops)
        self.velocity = np.zeros((num_edges, num_ops))
        # Prune step (1, 2, ...) at which each op was removed; 0 while it survives.
        self.pruned_at = np.zeros((num_edges, num_ops), dtype=np.int64)
        # theta just before the prune that removed the op; for survivors, before the latest prune
        # (after the last prune every survivor's theta is 1.0, this keeps how decisively it won).
        self.theta_at_prune = np.zeros((num_edges, num_ops))
        # Sum and count of accuracies credited to (edge, op) per closed round, plus the open one.
        self._rounds: list[tuple[np.ndarray, np.ndarray]] = []
        self._open = self._empty_round()

    @property
    def shape(self) -> tuple[int, int]:
        return self.mask.shape  # type: ignore[return-value]

    def _empty_round(self) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(self.shape), np.zeros(self.shape, dtype=np.int64)

    def alive(self, edge: int) -> np.ndarray:
        """Indices of the surviving ops of one edge."""
        return np.flatnonzero(self.mask[edge])

    @property
    def num_alive(self) -> int:
        """Survivors per edge; pruning keeps every edge at the same count."""
        counts = self.mask.sum(axis=1)
        assert (counts == counts[0]).all(), "edges must keep equal survivor counts"
        return int(counts[0])

    def sample(self, rng: np.random.Generator) -> Arch:
        """Draw a_e ~ theta_e independently per edge (pruned ops have probability 0)."""
        return tuple(int(rng.choice(self.shape[1], p=row)) for row in self.theta)

    def argmax(self) -> Arch:
        """Most probable surviving op per edge."""
        masked = np.where(self.mask, self.theta, -np.inf)
        return tuple(int(k) for k in masked.argmax(axis=1))

    def credit(self, arch: Arch, accuracy: float | np.ndarray) -> None:
        """Credit the validation accuracy of the trained architecture to each of its (e, a_e).

        ``accuracy`` may also be one value per edge: the Monte-Carlo of
        ``ddpnas.analysis.montecarlo`` runs thousands of independent searches as the edges of one
        distribution, each with its own credit, so the real update and prune code runs vectorised.
        """
        acc = np.asarray(accuracy, dtype=float)
        if acc.shape not in ((), (self.shape[0],)):
            raise ValueError(
                f"need one accuracy or one per edge ({self.shape[0]}), got {acc.shape}"
            )
        ok = (acc >= 0.0) & (acc <= 1.0)
        if not ok.all():
            bad = accuracy if acc.ndim == 0 else acc[~ok][:3].tolist()
            raise ValueError(f"accuracy must be a fraction in [0, 1] (larger is better), got {bad}")
        edges = np.arange(self.shape[0])
        ops = np.asarray(arch)
        if not self.mask[edges, ops].all():
            raise ValueError(f"architecture {arch} uses a pruned op")
        total, count = self._open
        total[edges, ops] += acc
        count[edges, ops] += 1

    def end_round(self) -> None:
        """Close the open round of credits."""
        self._rounds.append(self._open)
        self._open = self._empty_round()

    def scores(self, last_rounds: int) -> np.ndarray:
        """Per-edge softmax scores averaged over the last ``last_rounds`` closed rounds."""
        rounds = self._rounds[-last_rounds:]
        if not rounds:
            raise RuntimeError("no closed round to score")
        out = np.zeros(self.shape)
        for total, count in rounds:
            seen = count > 0
            mean = np.divide(total, count, out=np.zeros(self.shape), where=seen)
            logits = np.where(seen, self.temperature * mean, -np.inf)
            logits -= logits.max(axis=1, keepdims=True)  # rows always have a seen op
            weights = np.exp(logits)
            out += weights / weights.sum(axis=1, keepdims=True)
        return out / len(rounds)

    def mean_accuracy(self) -> np.ndarray:
        """Mean accuracy credited to each (edge, op) over every closed round (NaN if never)."""
        total = sum((t for t, _ in self._rounds), np.zeros(self.shape))
        count = sum((c for _, c in self._rounds), np.zeros(self.shape))
        return np.divide(total, count, out=np.full(self.shape, np.nan), where=count > 0)

    def update(self, last_rounds: int) -> None:
        """Momentum update of theta from the scores of the last rounds."""
        score = self.scores(last_rounds)
        self.velocity = self.momentum * self.velocity + (1.0 - self.momentum) * score
        self.velocity[~self.mask] = 0.0
        self._set_theta(self.theta + self.velocity)

    def prune(self, rng: np.random.Generator | None = None) -> list[int]:
        """Remove the least probable survivor of every edge; return the pruned op per edge.

        Exact ties are broken uniformly at random from ``rng``; without one a tie is an error
        rather than a silent preference for the lowest op index.
        """
        if self.num_alive < 2:
            raise RuntimeError("every edge is down to one op; nothing left to prune")
        masked = np.where(self.mask, self.theta, np.inf)
        pruned = []
        for row in masked:
            lowest = np.flatnonzero(row == row.min())
            if len(lowest) > 1 and rng is None:
                raise ValueError(f"ops {lowest.tolist()} tie for the smallest theta; pass rng")
            pruned.append(int(lowest[0] if len(lowest) == 1 else rng.choice(lowest)))
        edges = np.arange(self.shape[0])
        self.theta_at_prune[edges, pruned] = self.theta[edges, pruned]
        self.pruned_at[edges, pruned] = self.pruned_at.max() + 1
        self.mask[np.arange(self.shape[0]), pruned] = False
        self.velocity[~self.mask] = 0.0
        self.theta_at_prune[self.mask] = self.theta[self.mask]
        self._set_theta(self.theta)
        return pruned

    def _set_theta(self, theta: np.ndarray) -> None:
        theta = np.where(self.mask, theta, 0.0)
        self.theta = theta / theta.sum(axis=1, keepdims=True)

    def state_dict(self) -> dict[str, Any]:
        """Plain-Python state (lists), safe for ``torch.load(weights_only=True)``."""
        return {
            "temperature": self.temperature,
            "momentum": self.momentum,
            "theta": self.theta.tolist(),
            "mask": self.mask.tolist(),
            "velocity": self.velocity.tolist(),
            "pruned_at": self.pruned_at.tolist(),
            "theta_at_prune": self.theta_at_prune.tolist(),
            "rounds": [(t.tolist(), c.tolist()) for t, c in self._rounds],
            "open": (self._open[0].tolist(), self._open[1].tolist()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.temperature = float(state["temperature"])
        self.momentum = float(state["momentum"])
        self.theta = np.asarray(state["theta"], dtype=float)
        self.mask = np.asarray(state["mask"], dtype=bool)
        self.velocity = np.asarray(state["velocity"], dtype=float)
        self.pruned_at = np.asarray(state["pruned_at"], dtype=np.int64)
        self.theta_at_prune = np.asarray(state["theta_at_prune"], dtype=float)
        self._rounds = [
            (np.asarray(t, dtype=float), np.asarray(c, dtype=np.int64)) for t, c in state["rounds"]
        ]
        self._open = (
            np.asarray(state["open"][0], dtype=float),
            np.asarray(state["open"][1], dtype=np.int64),
        )
