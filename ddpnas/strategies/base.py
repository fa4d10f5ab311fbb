"""The hook interface every search strategy implements; the engine (ddpnas.engine.loop) owns
the loop.

One engine epoch is: ``plan = propose(rng)``; the evaluator trains the shared weights along
``plan.train`` (one fixed architecture, or a :class:`TrainingPlan` that picks a path or mixed-op
weights per batch and may take an architecture step before each weight step), then validates every
architecture in ``plan.evaluate``; ``observe(plan, train_metrics, results)``; ``events = step()``.
Strategies never own a training loop, so no algorithm carries its own copy of one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from ddpnas.config.options import Options as OptionsModel
from ddpnas.spaces.base import Arch, SearchSpace

# A path through a supernet: one op per edge (single path), or an E x K tensor of op weights
# (DARTS's continuous relaxation; rows sum to one).
SupernetPath = Arch | torch.Tensor
Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class StepContext:
    """What an architecture step may use, handed to a plan before every weight step."""

    model: nn.Module
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    train_batch: Batch
    valid_batch: Callable[[], Batch]


class TrainingPlan(Protocol):
    """How the shared weights are trained during one epoch, batch by batch."""

    def path(self) -> SupernetPath:
        """The path (or mixed-op weights, detached) for the next weight step."""

    def before_weight_step(self, ctx: StepContext) -> None:
        """Hook run before each weight step (DARTS: the architecture step)."""


@dataclass
class EpochPlan:
    """One engine epoch: what to train (None: nothing) and which architectures to validate.

    ``eval_images`` validates on a random subset of that many validation images (drawn from the
    epoch's generator) instead of the whole split, e.g. ENAS's cheap controller rewards.
    """

    train: Arch | TrainingPlan | None
    evaluate: list[Arch] = field(default_factory=list)
    eval_images: int | None = None


# Spawn key of the generator that breaks exact ties in preferences (one stream per run seed).
TIE_STREAM = 7


@dataclass
class Decision:
    """The op distribution a search read its answer from (E x K probabilities over ``support``),
    named in ``of`` (e.g. "softmax(logits)", "theta before the last prune")."""

    probs: np.ndarray
    support: np.ndarray
    of: str


def decisiveness(probs: np.ndarray, support: np.ndarray) -> dict[str, float]:
    """How decided a distribution is, averaged over edges: the entropy normalised by its maximum
    ln(ops in the edge's support) (1 = uniform, 0 = one op), and the best op's probability.

    A near-uniform policy (a controller that barely learned) shows as entropy near 1 and a
    best-op probability near 1 / ops; an edge with a single op in its support counts as decided.
    """
    p = np.where(support, np.asarray(probs, dtype=float), 0.0)
    p = p / p.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(p), 0.0)
    ops = support.sum(axis=1)
    norm = np.divide(terms.sum(axis=1), np.log(ops), out=np.zeros(len(ops)), where=ops > 1)
    return {"entropy": float(norm.mean()), "best_op_probability": float(p.max(axis=1).mean())}


def rank_strength(keys: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Strictly ordered strengths in (0, 1] of the cells of same-shaped ``keys`` (larger wins).

    ``keys[0]`` decides first, later keys break its ties (NaN ranks lowest); exact ties left
    after the last key are broken at random from ``rng``, never by position.
    """
    flat = [np.nan_to_num(np.asarray(k, dtype=float).ravel(), nan=-np.inf) for k in keys]
    size = flat[0].size
    order = np.lexsort([rng.random(size), *reversed(flat)])  # lexsort's last key is primary
    strength = np.empty(size)
    strength[order] = np.arange(1, size + 1) / size
    return strength.reshape(np.shape(keys[0]))


class Evidence:
    """The validation accuracies the engine saw, per (edge, op): mean over the evaluated
    architectures that use the op on the edge. The default preferences rank by it."""

    def __init__(self, num_edges: int, num_ops: int) -> None:
        self.total = np.zeros((num_edges, num_ops))
        self.count = np.zeros((num_edges, num_ops), dtype=np.int64)
        self.seed = 0

    def reset(self, seed: int) -> None:
        """Start a run: no evidence, ties broken from the stream of this run seed."""
        self.total[:] = 0.0
        self.count[:] = 0
        self.seed = seed

    def add(self, arch: Arch, accuracy: float) -> None:
        edges = np.arange(self.total.shape[0])
        self.total[edges, list(arch)] += accuracy
        self.count[edges, list(arch)] += 1

    def mean(self) -> np.ndarray:
        """Mean accuracy per (edge, op); NaN where no evaluated architecture used it."""
        out = np.full(self.total.shape, np.nan)
        return np.divide(self.total, self.count, out=out, where=self.count > 0)

    def tie_rng(self, stream: int = 0) -> np.random.Generator:
        """A fresh generator of this run seed's tie-breaking ``stream`` (same draws every call).

        Stream 0 orders the preferences; strategies take other streams for their own ties.
        """
        seq = np.random.SeedSequence(self.seed, spawn_key=(TIE_STREAM, stream))
        return np.random.default_rng(seq)


class Strategy(ABC):
    """A search algorithm expressed as hooks called once per engine epoch.

    Register a subclass with :func:`ddpnas.registry.register_strategy`; its ``Options`` model is
    the one declaration of its config options (``strategy_args``): defaults, bounds, descriptions.
    """

    name: ClassVar[str]
    #: The options (``strategy_args``); the constructor's keyword arguments are checked by it.
    Options: ClassVar[type[OptionsModel]] = OptionsModel
    #: Evaluation modes the strategy supports ("tabular", "weight_sharing").
    modes: ClassVar[tuple[str, ...]] = ("tabular", "weight_sharing")
    #: Whether ``snapshot()`` logs a ``theta`` (E x K op distribution) every epoch: the pipeline
    #: plots it, and ``ddpnas generate`` starts from it.
    logs_theta: ClassVar[bool] = False
    #: What that theta is, as figures name it on their axis.
    theta_label: ClassVar[str] = "theta (op probability)"
    #: Whether it trains along mixed-op weights (an E x K tensor), which only spaces with
    #: ``mixed_ops`` compute.
    mixed_ops: ClassVar[bool] = False

    def __init__(self, space: SearchSpace, mode: str = "weight_sharing", **options: Any) -> None:
        if mode not in self.modes:
            raise ValueError(f"{self.name} runs in mode(s) {', '.join(self.modes)}, not {mode!r}")
        self.options = self.Options.model_validate(options)
        self.space = space
        self.mode = mode
        # Filled by the engine (ddpnas.engine.loop.run_search) with every validated architecture.
        self.evidence = Evidence(space.num_edges, space.num_ops)

    @abstractmethod
    def propose(self, rng: np.random.Generator) -> EpochPlan:
        """What to train and validate this epoch."""

    @abstractmethod
    def observe(
        self, plan: EpochPlan, train_metrics: dict[str, float], results: list[dict[str, float]]
    ) -> None:
        """Feedback: ``results[i]`` (``valid_acc`` in [0, 1]) belongs to ``plan.evaluate[i]``."""

    def step(self) -> dict[str, Any]:
        """End of an epoch; returns JSON-able events (e.g. pruning) for the history."""
        return {}

    @abstractmethod
    def done(self) -> bool:
        """True once the search has converged to its answer."""

    @abstractmethod
    def result(self) -> Arch:
        """The searched architecture."""

    def preferences(self) -> tuple[np.ndarray, np.ndarray]:
        """(theta, mask): how strongly the search prefers each op per edge, E x K.

        Spaces whose final form is not one op per edge (the DARTS cell keeps two inputs per node)
        derive it from these, comparing strengths across edges, so equal strengths must not
        fall back to edge order. Default: the result's op on each edge first, then the mean
        validation accuracy of the evaluated architectures using each (edge, op) (see
        :class:`Evidence`), then a seeded random order; strengths are ranks in (0, 1].
        """
        shape = (self.space.num_edges, self.space.num_ops)
        chosen = np.zeros(shape)
        chosen[np.arange(shape[0]), list(self.result())] = 1.0
        strength = rank_strength([chosen, self.evidence.mean()], self.evidence.tie_rng())
        return strength, np.ones(shape, dtype=bool)

    def decision(self) -> Decision | None:
        """The distribution (or policy) the answer was read from, for the record's ``decision``
        (see :func:`decisiveness`); None for methods without one (RS, RSPS, REA)."""
        return None

    def unused_epochs(self) -> int:
        """Trailing engine epochs whose result the search did not use (a query that would have
        crossed its budget): the record's ``used_epochs`` and ``used_simulated_seconds`` leave
        them out."""
        return 0

    def planned_epochs(self) -> int | None:
        """Epoch budget if known in advance (used for LR schedules and progress bars)."""
        return None

    def search_images(self, n_valid: int) -> tuple[int, int]:
        """(training epochs, images validated over the search) of a weight-sharing run, for the
        cost estimate (ddpnas/report/estimate.py). Default: each planned epoch trains, then
        validates one architecture on the whole ``n_valid``-image split."""
        epochs = self.planned_epochs() or 0
        return epochs, epochs * n_valid

    def speed_key(self) -> str:
        """Row of the measured per-step speeds (ddpnas/report/speeds.yaml) this search uses."""
        return self.name

    def snapshot(self) -> dict[str, Any]:
        """JSON-able view of the strategy's state, logged after every epoch."""
        return {}

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (plain Python types and tensors only)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
