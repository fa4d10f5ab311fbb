"""Failure bounds of DDPNAS's pruning schedule: P(searched architecture != per-edge optimum).

DDPNAS with round-robin sampling is a best-arm identification procedure of the successive-rejects
family: on every edge, K ops ("arms") are each sampled once per round, and every T rounds
(``pruning_step``) the least-credited survivor is pruned, K - 1 times. This module gives two bounds
on the probability that the best op of an edge is pruned (union over the prune steps), and on the
probability that the searched architecture differs from the per-edge optimum (union over edges),
as functions of the gaps, K, T and the number of edges, and their inversions.

The schedule of our implementation (``ddpnas/strategies/ddpnas.py``): prune step m = 1..K-1 happens
after round m*T, i.e. after epoch ``T * (K + (K-1) + ... + (K-m+1))``; every op surviving at step m
has then been credited exactly ``m*T`` times in all, ``T`` times in the window of the last T rounds.
The search ends after ``T * (K + ... + 2)`` epochs (42 for K=5, T=3; 105 for K=8, T=3).

Model (both bounds): op k of edge e has a mean credit mu_k in [0, 1]; each round gives one credit
in [0, 1] per surviving op; credits of different rounds are independent. Gaps are
Delta_k = mu_k* - mu_k > 0 against the best op k*. Weight sharing breaks the independence (the
supernet learns from the very paths it is scoring); in tabular mode the credit of an op also
depends on the ops other edges happen to draw in that round, which is independent across rounds.

What the code does differently from either bound, so the Monte-Carlo
(``ddpnas.analysis.montecarlo``) checks each against the real ``DDPNAS`` strategy rather than
assuming it: the code does not compare means of raw accuracies. It compares theta, which is a
positive, data-dependently weighted sum of the per-round scores softmax(temperature * accuracy) of
*every* round since the start (theta <- normalise(theta + v) accumulates all v, and the momentum v
accumulates all scores). So

- :func:`hoeffding_bound` (the bound of ../shared/reference/ddpnas_method.md) assumes the prune at
  step m is decided by the last-T-round window alone (n = T fresh samples, the "scores over the last
  T rounds" of the method), and uses Hoeffding on paired differences (range 2):
  P(k* pruned at m) <= exp(-T Delta^2 / 2) for the competitor with the largest gap that is sure to
  survive. Because the window is fresh, the random survivor set does not depend on it, which is what
  makes the "min over competitors" legitimate. Evidence the code keeps from older rounds is assumed
  not to hurt.
- :func:`successive_rejects_bound` (Audibert, Bubeck & Munos, COLT 2010, their proof applied to our
  schedule) assumes the prune at step m compares means of all n_m = m*T credits with equal weights,
  and independent credits of different ops (Hoeffding over 2n independent [0,1] terms:
  exp(-n Delta^2)). The survivor set then depends on the same samples, so the union runs over the m
  largest-gap competitors, at least one of which survives to step m:
  P(k* pruned at m) <= sum_{i=K-m}^{K-1} exp(-m T Delta_(i)^2), Delta_(1) <= ... <= Delta_(K-1).

Both are plain unions and can exceed 1 (vacuous); callers report that rather than hiding it.
Bounding every term of step m by its smallest-gap one gives Audibert et al.'s closed form for
this schedule, K(K-1)/2 * exp(-T / H), H = max_m 1 / (m Delta_(K-m)^2) (their H_2 up to the
allocation); it is never tighter than the sum computed here, so only the sum is implemented.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ddpnas.errors import DDPNASError

# The largest pruning step the inversion searches; beyond it a target is reported as unreachable.
MAX_PRUNING_STEP = 1_000_000


@dataclass(frozen=True)
class PruneStep:
    """One prune of the schedule: when it happens and how much evidence each survivor has."""

    step: int  # m = 1..K-1
    survivors: int  # ops alive on each edge just before the prune (K - m + 1)
    epoch: int  # search epochs elapsed when the prune happens
    samples: int  # credits per surviving op since the start (m * T)
    window: int  # credits per surviving op in the last-T-rounds window (T)


def search_epochs(num_ops: int, pruning_step: int) -> int:
    """Epochs of a whole search: T * (K + (K-1) + ... + 2)."""
    _check_schedule(num_ops, pruning_step)
    return pruning_step * (num_ops * (num_ops + 1) // 2 - 1)


def prune_schedule(num_ops: int, pruning_step: int) -> list[PruneStep]:
    """The K - 1 prune steps of our implementation for K ops and T rounds per prune."""
    _check_schedule(num_ops, pruning_step)
    steps, epoch = [], 0
    for m in range(1, num_ops):
        survivors = num_ops - m + 1
        epoch += pruning_step * survivors
        steps.append(PruneStep(m, survivors, epoch, m * pruning_step, pruning_step))
    return steps


def _check_schedule(num_ops: int, pruning_step: int) -> None:
    if num_ops < 2:
        raise DDPNASError(f"need at least 2 ops per edge, got {num_ops}")
    if pruning_step < 1:
        raise DDPNASError(f"pruning_step must be >= 1, got {pruning_step}")


def sorted_gaps(gaps: ArrayLike, num_edges: int = 1) -> np.ndarray:
    """Gaps as an E x (K-1) array, each row ascending.

    ``gaps`` is one row of K-1 gaps (then repeated for ``num_edges`` edges) or an E x (K-1) matrix
    (then ``num_edges`` must be 1 or E). Gaps are differences of mean credits in [0, 1], so they
    must lie in [0, 1]; a gap of 0 (a tie for the best op) makes every bound vacuous.
    """
    arr = np.atleast_2d(np.asarray(gaps, dtype=float))
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise DDPNASError(
            f"gaps must be a row of K-1 values or an E x (K-1) matrix, got {arr.shape}"
        )
    if num_edges < 1:
        raise DDPNASError(f"num_edges must be >= 1, got {num_edges}")
    if arr.shape[0] == 1:
        arr = np.repeat(arr, num_edges, axis=0)
    elif num_edges not in (1, arr.shape[0]):
        raise DDPNASError(f"num_edges={num_edges} disagrees with {arr.shape[0]} rows of gaps")
    if not np.isfinite(arr).all() or (arr < 0).any() or (arr > 1).any():
        raise DDPNASError("gaps must be finite and in [0, 1] (differences of mean accuracies)")
    return np.sort(arr, axis=1)


def hoeffding_terms(gaps: ArrayLike, pruning_step: int, num_edges: int = 1) -> np.ndarray:
    """E x (K-1) bounds on P(best op of edge e pruned at step m), the method document's bound."""
    g = sorted_gaps(gaps, num_edges)
    k = g.shape[1] + 1
    _check_schedule(k, pruning_step)
    # Step m = 1..K-1 is sure to keep a competitor with gap >= Delta_(K-m): column K-1-m.
    guaranteed = g[:, ::-1]
    return np.exp(-pruning_step * guaranteed**2 / 2.0)


def successive_rejects_terms(gaps: ArrayLike, pruning_step: int, num_edges: int = 1) -> np.ndarray:
    """E x (K-1) bounds on P(best op of edge e pruned at step m), successive-rejects style."""
    g = sorted_gaps(gaps, num_edges)
    k = g.shape[1] + 1
    _check_schedule(k, pruning_step)
    terms = np.empty_like(g)
    for m in range(1, k):
        largest = g[:, k - 1 - m :]  # the m largest gaps: at least one of those ops survives
        terms[:, m - 1] = np.exp(-m * pruning_step * largest**2).sum(axis=1)
    return terms


def hoeffding_bound(gaps: ArrayLike, pruning_step: int, num_edges: int = 1) -> float:
    """Union over prune steps and edges of :func:`hoeffding_terms` (may exceed 1: vacuous)."""
    return float(hoeffding_terms(gaps, pruning_step, num_edges).sum())


def successive_rejects_bound(gaps: ArrayLike, pruning_step: int, num_edges: int = 1) -> float:
    """Union over prune steps and edges of :func:`successive_rejects_terms` (may exceed 1)."""
    return float(successive_rejects_terms(gaps, pruning_step, num_edges).sum())


BoundFn = Callable[[ArrayLike, int, int], float]
BOUNDS: dict[str, BoundFn] = {
    "hoeffding": hoeffding_bound,
    "successive_rejects": successive_rejects_bound,
}


def required_pruning_step(
    bound: str | BoundFn, gaps: ArrayLike, target: float, num_edges: int = 1
) -> int:
    """Smallest T whose bound is <= ``target``: the rounds per prune that buy that confidence.

    Every bound here decreases in T, so a doubling search then bisection finds the exact minimum.
    A zero gap (tied best ops) keeps a bound at >= 1 for every T; that is an error, not a loop.
    """
    fn = BOUNDS[bound] if isinstance(bound, str) else bound
    if not 0.0 < target < 1.0:
        raise DDPNASError(f"target failure probability must be in (0, 1), got {target}")
    if (sorted_gaps(gaps, num_edges)[:, 0] == 0).any():
        raise DDPNASError("a gap of 0 (two best ops tied) cannot be resolved by any pruning_step")
    hi = 1
    while fn(gaps, hi, num_edges) > target:
        hi *= 2
        if hi > MAX_PRUNING_STEP:
            raise DDPNASError(f"no pruning_step <= {MAX_PRUNING_STEP} reaches failure {target}")
    lo = hi // 2  # fn(lo) > target, or lo == 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fn(gaps, mid, num_edges) <= target:
            hi = mid
        else:
            lo = mid
    return hi


def required_search_epochs(
    bound: str | BoundFn, gaps: ArrayLike, target: float, num_edges: int = 1
) -> int:
    """Search epochs T * (K + ... + 2) at the smallest T meeting ``target`` (the cost side)."""
    k = sorted_gaps(gaps, num_edges).shape[1] + 1
    return search_epochs(k, required_pruning_step(bound, gaps, target, num_edges))
