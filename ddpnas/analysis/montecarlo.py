"""Monte-Carlo of the real DDPNAS strategy against the bounds of :mod:`ddpnas.analysis.bounds`.

Thousands of searches run at once as the edges of one :class:`~ddpnas.strategies.ddpnas.DDPNAS`
object over a space of ``replicates x edges`` decisions: the strategy's own round-robin sampling,
:class:`~ddpnas.strategies.distribution.JointCategorical` update (softmax scores, momentum, theta)
and pruning run unchanged, vectorised by NumPy; only the credits come from here, one per edge and
epoch (``JointCategorical.credit`` takes a vector). Nothing of the algorithm is re-implemented.

Settings:

- synthetic arms, one independent credit per (edge, op, round): Gaussian (mean + std * N(0, 1),
  clipped to [0, 1]; gaps from the exact clipped means) or Bernoulli (0/1 with the mean as
  probability), for the gap profiles of :data:`PROFILES`; each edge gets the profile in its own
  random op order, so argmin's lowest-index tie-break favours no op in particular;
- NAS-Bench-201 in tabular mode: the credit of every edge is the table's 200-epoch validation
  accuracy of the whole sampled cell plus Gaussian noise in percentage points, as
  :class:`~ddpnas.engine.evaluators.TabularEvaluator` computes it (tested equal); gaps are per-edge
  differences of the table's marginal means (all cells with that op on that edge), and "failure"
  is ending on an op whose marginal mean is below the edge's best.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import stats

from ddpnas.engine.evaluators import TabularEvaluator
from ddpnas.engine.loop import run_search
from ddpnas.errors import DDPNASError
from ddpnas.nasbench.table import NB201Bench
from ddpnas.spaces import get_space
from ddpnas.spaces.base import Arch, SearchSpace
from ddpnas.strategies import DDPNAS, get_strategy

# Mean credit of each of K = 5 ops (best first) for the three gap profiles of the issue.
PROFILES: dict[str, tuple[float, ...]] = {
    "clear_best": (0.9, 0.3, 0.3, 0.3, 0.3),
    "near_tie": (0.9, 0.85, 0.3, 0.3, 0.3),
    "equal_gaps": (0.9, 0.7, 0.5, 0.3, 0.1),
}
CREDITS = ("gaussian", "bernoulli")
NB201_METRIC = "cifar10_valid_valid_acc"  # what TabularEvaluator rewards (200-epoch schedule)
NB201_TEST = "cifar10_test_acc"  # the accuracy a found cell is judged by (the C10 test column)


class ReplicaSpace(SearchSpace):
    """``num_edges`` decisions of ``num_ops`` ops and no networks: the searches' shared index."""

    name = "replicas"

    def __init__(self, num_edges: int, num_ops: int) -> None:
        self.ops = tuple(f"op{k}" for k in range(num_ops))
        self.edges = tuple(f"e{e}" for e in range(num_edges))

    def arch_to_str(self, arch: Arch) -> str:
        return "-".join(map(str, self.validate(arch)))

    def str_to_arch(self, text: str) -> Arch:
        return self.validate(tuple(int(t) for t in text.split("-")))

    def supernet(self, **kwargs: Any) -> Any:
        raise NotImplementedError("a replica space only indexes simulated searches")

    def standalone(self, arch: Arch, **kwargs: Any) -> Any:
        raise NotImplementedError("a replica space only indexes simulated searches")


@dataclass(frozen=True)
class Setting:
    """One Monte-Carlo setting: the credit model, its gaps' source, T and the noise."""

    credits: str  # gaussian | bernoulli | nb201
    profile: str  # a PROFILES key, or "marginals" for NAS-Bench-201
    pruning_step: int
    noise: float  # gaussian: std (accuracy fraction); nb201: std in percentage points
    edges: int = 1

    @property
    def name(self) -> str:
        noise = "" if self.credits == "bernoulli" else f", noise {self.noise:g}"
        if self.credits == "nb201":
            noise += " pp"
        return f"{self.credits}/{self.profile} (E={self.edges}{noise})"

    def seed_key(self) -> int:
        """A stable per-setting stream id, so adding settings never changes the others."""
        return zlib.crc32(f"{self.name}|T={self.pruning_step}".encode())


@dataclass
class Outcome:
    """What a setting's replicates produced."""

    setting: Setting
    gaps: np.ndarray  # E x (K-1), per edge
    failures: int
    replicates: int
    seconds: float
    found: np.ndarray = field(repr=False)  # replicates x E op indices

    @property
    def rate(self) -> float:
        return self.failures / self.replicates


def clopper_pearson(failures: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact two-sided binomial interval of a failure rate."""
    ci = stats.binomtest(failures, n).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)


def exceeds(failures: int, n: int, bound: float, alpha: float = 1e-3) -> bool:
    """True when the empirical rate is significantly above ``bound`` (one-sided, level alpha).

    A bound holds unless even the lower end of the one-sided 1 - alpha Clopper-Pearson interval of
    the failure rate lies above it; a bound >= 1 can never be exceeded.
    """
    if failures == 0 or bound >= 1.0:
        return False
    low = float(stats.beta.ppf(alpha, failures, n - failures + 1))
    return low > bound


def run_replicas(
    num_edges: int,
    num_ops: int,
    pruning_step: int,
    credit: Callable[[np.ndarray], np.ndarray],
    rng: np.random.Generator,
) -> np.ndarray:
    """Drive one real DDPNAS over ``num_edges`` decisions; ``credit(arch)`` -> one value per edge.

    The loop is the engine's (propose, credit the trained architecture, step) minus training and
    bookkeeping; temperature, momentum and sampling are DDPNAS's shipped defaults.
    """
    strategy = DDPNAS(ReplicaSpace(num_edges, num_ops), mode="tabular", pruning_step=pruning_step)
    while not strategy.done():
        plan = strategy.propose(rng)
        arch = np.asarray(plan.train)
        strategy.dist.credit(plan.train, credit(arch))
        strategy.step()
    return np.asarray(strategy.result())


def _failures(found: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Per replicate: did any edge end on an op whose mean is below the edge's best?

    Compared by value, not by argmax index, so ops tied for best all count as success.
    """
    rows = np.arange(len(found))[:, None]
    edges = np.arange(found.shape[1])[None, :]
    return (means[rows, edges, found] < means.max(axis=2)).any(axis=1)


def _gaps(means: np.ndarray) -> np.ndarray:
    """Gaps of every op to the best of its edge, best op removed: ... x (K-1), ascending."""
    ordered = np.sort(means, axis=-1)
    return np.sort(ordered[..., -1:] - ordered[..., :-1], axis=-1)


def clipped_gaussian_mean(mean: np.ndarray, std: float) -> np.ndarray:
    """E[clip(mean + std Z, 0, 1)]: the mean credit a clipped Gaussian arm really has."""
    if std == 0:
        return np.asarray(mean, dtype=float)
    a, b = (0.0 - mean) / std, (1.0 - mean) / std
    norm = stats.norm
    inside = mean * (norm.cdf(b) - norm.cdf(a)) + std * (norm.pdf(a) - norm.pdf(b))
    return inside + norm.sf(b)  # mass clipped to 1 contributes 1 * P(X > 1)


def synthetic(setting: Setting, replicates: int, seed: int) -> Outcome:
    """Replicates of DDPNAS on independent synthetic arms of one gap profile."""
    if setting.credits not in CREDITS:
        raise DDPNASError(f"unknown synthetic credits {setting.credits!r}; known: {CREDITS}")
    profile = np.asarray(PROFILES[setting.profile])
    key = setting.seed_key()
    rng = np.random.Generator(np.random.PCG64([seed, key]))
    draw = np.random.Generator(np.random.PCG64([seed, key, 1]))
    num_ops, total = len(profile), replicates * setting.edges
    order = rng.permuted(np.tile(np.arange(num_ops), (total, 1)), axis=1)
    mu = profile[order]  # total x K: each edge's profile in its own op order
    rows = np.arange(total)
    std = setting.noise

    def credit(arch: np.ndarray) -> np.ndarray:
        mean = mu[rows, arch]
        if setting.credits == "bernoulli":
            return (draw.random(total) < mean).astype(float)
        return np.clip(mean + std * draw.standard_normal(total), 0.0, 1.0)

    means = profile if setting.credits == "bernoulli" else clipped_gaussian_mean(profile, std)
    start = time.perf_counter()
    found = run_replicas(total, num_ops, setting.pruning_step, credit, rng)
    seconds = time.perf_counter() - start
    found = found.reshape(replicates, setting.edges)
    per_edge = means[order].reshape(replicates, setting.edges, num_ops)
    return Outcome(
        setting,
        np.tile(_gaps(means), (setting.edges, 1)),
        int(_failures(found, per_edge).sum()),
        replicates,
        seconds,
        found,
    )


class NB201Table:
    """The table as arrays indexed by an architecture code sum_e a_e K^e (vectorised look-ups)."""

    def __init__(self, bench: NB201Bench) -> None:
        self.space = get_space("nb201")
        num_ops, num_edges = self.space.num_ops, self.space.num_edges
        archs = list(itertools.product(range(num_ops), repeat=num_edges))
        # product() varies the last edge fastest; codes weight edge e by K**e.
        index = np.empty(num_ops**num_edges, dtype=np.int64)
        codes = np.asarray(archs) @ (num_ops ** np.arange(num_edges))
        index[codes] = [bench.index_of(self.space.arch_to_str(a)) for a in archs]
        self.valid = bench.column(NB201_METRIC)[index]
        self.test = bench.column(NB201_TEST)[index]
        self.weights = num_ops ** np.arange(num_edges)
        grid = np.asarray(archs)
        per_cell = self.valid[codes] / 100.0
        # E x K mean validation accuracy (fraction) of the cells with op k on edge e.
        self.marginals = np.array(
            [[per_cell[grid[:, e] == k].mean() for k in range(num_ops)] for e in range(num_edges)]
        )

    def codes(self, archs: np.ndarray) -> np.ndarray:
        return archs @ self.weights

    def credit(self, archs: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
        """TabularEvaluator's reward of each cell: (accuracy + N(0, noise) pp) / 100, clipped."""
        accuracy = self.valid[self.codes(archs)]
        if noise:
            accuracy = accuracy + rng.normal(0.0, noise, size=accuracy.shape)
        return np.clip(accuracy / 100.0, 0.0, 1.0)


def nb201(setting: Setting, table: NB201Table, replicates: int, seed: int) -> Outcome:
    """Replicates of DDPNAS on the NAS-Bench-201 table; the credit couples the 6 edges of a cell."""
    key = setting.seed_key()
    rng = np.random.Generator(np.random.PCG64([seed, key]))
    noise_rng = np.random.Generator(np.random.PCG64([seed, key, 1]))
    num_edges, num_ops = table.space.num_edges, table.space.num_ops

    def credit(arch: np.ndarray) -> np.ndarray:
        cells = arch.reshape(replicates, num_edges)
        return np.repeat(table.credit(cells, setting.noise, noise_rng), num_edges)

    start = time.perf_counter()
    found = run_replicas(replicates * num_edges, num_ops, setting.pruning_step, credit, rng)
    seconds = time.perf_counter() - start
    found = found.reshape(replicates, num_edges)
    means = np.broadcast_to(table.marginals, (replicates, num_edges, num_ops))
    return Outcome(
        setting,
        _gaps(table.marginals),
        int(_failures(found, means).sum()),
        replicates,
        seconds,
        found,
    )


class QueryBudget:
    """A TabularEvaluator whose every query costs one unit, so ``budget_seconds`` counts queries.

    Baselines then get exactly the number of table queries a DDPNAS search makes, whatever their
    strategy (any tabular strategy taking ``budget_seconds``).
    """

    def __init__(self, inner: TabularEvaluator) -> None:
        self.inner = inner

    def train(self, what: Any, epoch: int, generator: torch.Generator) -> dict[str, float]:
        self.inner.train(what, epoch, generator)  # same checks as a real tabular epoch
        return {"sim_seconds": 1.0}

    def evaluate(self, arch: Arch, **kwargs: Any) -> dict[str, float]:
        return self.inner.evaluate(arch, **kwargs)

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)


@contextlib.contextmanager
def _quiet_engine() -> Iterator[None]:
    """Silence the engine's per-epoch log lines for thousands of short baseline runs."""
    logger = logging.getLogger("ddpnas.engine.loop")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def baseline_cells(
    name: str, bench: NB201Bench, queries: int, noise: float, runs: int, seed: int
) -> list[Arch]:
    """Cells found by ``runs`` searches of strategy ``name`` with ``queries`` table queries each.

    Rewards as DDPNAS gets them in this Monte-Carlo (200-epoch validation accuracy + ``noise`` pp).
    """
    try:
        cls = get_strategy(name)
    except KeyError as exc:
        raise DDPNASError(str(exc.args[0])) from None
    space = get_space("nb201")
    rng = np.random.Generator(
        np.random.PCG64([seed, zlib.crc32(f"{name}|{noise}|{queries}".encode())])
    )
    cells = []
    with _quiet_engine():
        for run_seed in rng.integers(2**31, size=runs):
            try:
                strategy = cls(space, mode="tabular", budget_seconds=float(queries))
            except (TypeError, ValueError) as exc:
                raise DDPNASError(
                    f"baseline {name!r} cannot run on the table with a query budget ({exc})"
                ) from None
            evaluator = QueryBudget(
                TabularEvaluator(bench, space, seed=int(run_seed), noise_std=noise)
            )
            cells.append(run_search(strategy, evaluator, seed=int(run_seed), progress=False).arch)
    return cells
