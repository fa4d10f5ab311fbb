"""Constraint-aware generation: the most probable architecture under resource budgets.

The network is generated straight from a learned distribution theta (E x K, 0 = pruned) as a
multiple-choice knapsack: every edge takes exactly one op, pruned ops are infeasible, and

    maximise  sum_e value(theta[e, a_e])
    s.t.      fixed_r + sum_e cost_r[e, a_e] <= budget_r      for every budgeted resource r.

``value`` is ``log theta`` by default, so the objective is the log-probability of the
architecture under theta (the product of per-edge probabilities, which is what theta models);
``objective="theta"`` sums theta itself, as the authors' generator did (with ``int(100 * theta)``;
we keep the floats).

It is solved exactly as a binary ILP with ``scipy.optimize.milp`` (HiGHS, ``mip_rel_gap=0``); the
returned architecture is then re-checked against every budget in float64, and a solution that only
fits within the solver's feasibility tolerance is cut off and the problem re-solved, so the result
never exceeds a budget (one of the two defects of the public generator, the other being a
suboptimal pick among tied ops).

Ties are broken by one documented total order, never silently by index:

1. larger objective (objectives within ``VALUE_TOL`` nats are tied);
2. lower normalised cost ``sum_r total_r / scale_r`` (``scale_r`` = the largest total of resource r
   over all architectures, so resources of any unit weigh alike; within ``COST_TOL`` is a tie);
3. the lexicographically smallest op-index vector (edge 0 first), the explicit last resort.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from ddpnas.errors import DDPNASError

#: resource -> (fixed cost of the parts that are not searched, E x K cost of every choice).
CostTable = Mapping[str, tuple[float, np.ndarray]]
OBJECTIVES = ("log", "theta")
VALUE_TOL = 1e-6
COST_TOL = 1e-6
_MAX_CUTS = 100


class InfeasibleBudget(DDPNASError):
    """No architecture meets every budget; the message gives the minimum feasible costs."""


@dataclass(frozen=True)
class Generated:
    """One generated architecture: op index per edge, its objective and its total costs."""

    arch: tuple[int, ...]
    objective: float
    costs: dict[str, float]


def check_problem(
    theta: Any, costs: CostTable, budgets: Mapping[str, float] | None = None
) -> tuple[np.ndarray, dict[str, tuple[float, np.ndarray]]]:
    """Validate shapes, signs and names; return theta and costs as float arrays.

    Raises DDPNASError with one line naming the first problem (bad user input, not a bug).
    """
    try:
        theta = np.asarray(theta, dtype=float)
    except (TypeError, ValueError):
        raise DDPNASError("theta must be an E x K list of numbers") from None
    if theta.ndim != 2 or theta.shape[0] < 1 or theta.shape[1] < 1:
        raise DDPNASError(f"theta must be an E x K list of numbers, got shape {theta.shape}")
    if not np.isfinite(theta).all() or (theta < 0).any():
        raise DDPNASError("theta must hold finite, non-negative probabilities (0 = pruned)")
    dead = np.flatnonzero(~(theta > 0).any(axis=1))
    if dead.size:
        raise DDPNASError(f"theta has no surviving op (all zero) on edge(s) {dead.tolist()}")
    checked: dict[str, tuple[float, np.ndarray]] = {}
    for name, (fixed, table) in costs.items():
        try:
            arr = np.asarray(table, dtype=float)
            fixed = float(fixed)
        except (TypeError, ValueError):
            raise DDPNASError(f"costs of {name!r} must be numbers") from None
        if arr.shape != theta.shape:
            raise DDPNASError(f"costs of {name!r} have shape {arr.shape}, theta has {theta.shape}")
        if not (np.isfinite(arr).all() and np.isfinite(fixed)) or (arr < 0).any() or fixed < 0:
            raise DDPNASError(f"costs of {name!r} must be finite and non-negative")
        checked[name] = (fixed, arr)
    for name, value in (budgets or {}).items():
        if name not in checked:
            known = ", ".join(checked) or "none"
            raise DDPNASError(f"budget on unknown resource {name!r}; costs are given for: {known}")
        if not np.isfinite(value):
            raise DDPNASError(f"budget {name}={value} is not a finite number")
    return theta, checked


def values(theta: np.ndarray, objective: str = "log") -> np.ndarray:
    """Per-choice value; pruned choices (theta == 0) get -inf, i.e. are infeasible."""
    if objective not in OBJECTIVES:
        raise DDPNASError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    with np.errstate(divide="ignore"):
        value = np.log(theta) if objective == "log" else theta.astype(float)
    return np.where(theta > 0, value, -np.inf)


def arch_costs(arch: Sequence[int], costs: CostTable) -> dict[str, float]:
    """Total cost of ``arch`` per resource (fixed part included)."""
    edges = np.arange(len(arch))
    return {
        name: float(fixed + np.asarray(table, dtype=float)[edges, list(arch)].sum())
        for name, (fixed, table) in costs.items()
    }


def cost_scales(theta: np.ndarray, costs: CostTable) -> dict[str, float]:
    """Largest total of each resource over all feasible architectures (1 when it is 0)."""
    feasible = theta > 0
    scales = {}
    for name, (fixed, table) in costs.items():
        largest = fixed + np.where(feasible, table, 0.0).max(axis=1).sum()
        scales[name] = float(largest) if largest > 0 else 1.0
    return scales


class _Problem:
    """The binary ILP over x[e, k] with per-edge equalities and budget rows, scaled to O(1)."""

    def __init__(self, theta: np.ndarray, costs: dict[str, tuple[float, np.ndarray]]) -> None:
        self.shape = theta.shape
        self.feasible = theta > 0
        self.costs = costs
        self.scales = cost_scales(theta, costs)
        n = theta.size
        onehot = np.zeros((self.shape[0], n))
        for e in range(self.shape[0]):
            onehot[e, e * self.shape[1] : (e + 1) * self.shape[1]] = 1.0
        self.base = [LinearConstraint(onehot, 1.0, 1.0)]
        self.normcost = sum(
            (table / self.scales[name] for name, (_, table) in costs.items()),
            start=np.zeros(self.shape),
        ).ravel()

    def solve(
        self,
        c: np.ndarray,
        extra: Sequence[LinearConstraint],
        upper: np.ndarray | None = None,
    ) -> np.ndarray | None:
        """Minimise c.x over the binary x; None when infeasible."""
        ub = self.feasible.ravel().astype(float) if upper is None else upper
        res = milp(
            c,
            constraints=[*self.base, *extra],
            integrality=np.ones(c.size),
            bounds=Bounds(np.zeros(c.size), ub),
            options={"mip_rel_gap": 0.0},
        )
        if res.status == 2:
            return None
        if res.x is None:
            raise RuntimeError(f"MILP solver failed: {res.message}")
        return np.rint(res.x).reshape(self.shape)

    def budget_rows(self, limits: Mapping[str, float]) -> list[LinearConstraint]:
        """sum cost_r x <= limit_r - fixed_r, each row divided by the resource's scale."""
        rows = []
        for name, limit in limits.items():
            fixed, table = self.costs[name]
            scale = self.scales[name]
            rows.append(LinearConstraint(table.ravel() / scale, -np.inf, (limit - fixed) / scale))
        return rows


def _exclude(x: np.ndarray) -> LinearConstraint:
    """No-good cut: at most E - 1 of the choices of ``x`` (so not all of them) again."""
    return LinearConstraint(x.ravel(), -np.inf, x.shape[0] - 1)


def _arch(x: np.ndarray) -> tuple[int, ...]:
    return tuple(int(k) for k in x.argmax(axis=1))


def _best(
    problem: _Problem, value: np.ndarray, limits: Mapping[str, float], cuts: list[LinearConstraint]
) -> np.ndarray | None:
    """The optimum under ``limits`` in the documented tie order (see the module doc)."""
    rows = [*problem.budget_rows(limits), *cuts]
    gain = np.where(problem.feasible, value, 0.0).ravel()
    x = problem.solve(-gain, rows)
    if x is None:
        return None
    # 2. among the objective ties, the lowest normalised cost.
    rows.append(LinearConstraint(gain, float(gain @ x.ravel()) - VALUE_TOL, np.inf))
    x = problem.solve(problem.normcost, rows)
    assert x is not None, "the optimum itself satisfies the tie constraint"
    rows.append(
        LinearConstraint(problem.normcost, -np.inf, problem.normcost @ x.ravel() + COST_TOL)
    )
    # 3. unique? (exclude x and re-solve); else fix edges in order to their smallest tied op.
    if problem.solve(np.zeros(x.size), [*rows, _exclude(x)]) is None:
        return x
    upper = problem.feasible.ravel().astype(float)
    for e in range(x.shape[0]):
        index = np.zeros(problem.shape)
        index[e] = np.arange(problem.shape[1])
        x = problem.solve(index.ravel(), rows, upper)
        assert x is not None, "fixing earlier edges to tied optima keeps the problem feasible"
        k = int(x[e].argmax())
        upper.reshape(problem.shape)[e] = 0.0
        upper.reshape(problem.shape)[e, k] = 1.0
    return x


def _infeasible(problem: _Problem, budgets: Mapping[str, float]) -> InfeasibleBudget:
    """An error giving, per budgeted resource, its minimum alone and under the other budgets."""
    parts = []
    for name, limit in budgets.items():
        fixed, table = problem.costs[name]
        alone = fixed + np.where(problem.feasible, table, np.inf).min(axis=1).sum()
        others = {r: b for r, b in budgets.items() if r != name}
        text = f"{name} <= {limit:.10g}: minimum feasible {name} {alone:.10g}"
        if others:
            x = problem.solve(table.ravel(), problem.budget_rows(others))
            within = "none fits" if x is None else f"{fixed + table.ravel() @ x.ravel():.10g}"
            text += f" (with the other budgets: {within})"
        parts.append(text)
    return InfeasibleBudget("no architecture fits the budget(s): " + "; ".join(parts))


def generate(
    theta: Any,
    costs: CostTable,
    budgets: Mapping[str, float] | None = None,
    objective: str = "log",
) -> Generated:
    """The architecture maximising the objective of theta within every budget (module doc).

    ``budgets`` bound the total (fixed part included) of named resources of ``costs``; an
    infeasible set of budgets raises DDPNASError naming the minimum feasible cost per resource.
    """
    budgets = dict(budgets or {})
    theta, checked = check_problem(theta, costs, budgets)
    value = values(theta, objective)
    problem = _Problem(theta, checked)
    cuts: list[LinearConstraint] = []
    for _ in range(_MAX_CUTS):
        x = _best(problem, value, budgets, cuts)
        if x is None:
            raise _infeasible(problem, budgets)
        arch = _arch(x)
        totals = arch_costs(arch, checked)
        over = {r: totals[r] for r, b in budgets.items() if totals[r] > b}
        if not over:
            score = float(sum(value[e, k] for e, k in enumerate(arch)))
            return Generated(arch, score, totals)
        # Over budget, accepted only within the solver's tolerance: exclude it and re-solve.
        cuts.append(_exclude(x))
    raise RuntimeError(f"MILP kept returning solutions over budget {budgets}")


def sweep(
    theta: Any,
    costs: CostTable,
    resource: str,
    budgets: Sequence[float],
    other_budgets: Mapping[str, float] | None = None,
    objective: str = "log",
) -> list[tuple[float, Generated | None]]:
    """Generate for each budget of ``resource``; infeasible budgets give None, not an error."""
    other = dict(other_budgets or {})
    if resource in other:
        raise DDPNASError(f"{resource} is both swept and given a fixed budget")
    out: list[tuple[float, Generated | None]] = []
    for budget in budgets:
        try:
            out.append(
                (float(budget), generate(theta, costs, {resource: budget, **other}, objective))
            )
        except InfeasibleBudget:
            out.append((float(budget), None))
    if all(g is None for _, g in out):  # nothing fits: raise the error of the largest budget
        generate(theta, costs, {resource: max(budgets), **other}, objective)
    return out
