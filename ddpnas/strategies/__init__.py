"""Strategy registry: DDPNAS lives here, baselines in the top-level ``baselines`` package."""

from ddpnas.strategies.base import Strategy
from ddpnas.strategies.ddpnas import DDPNAS


def strategies() -> dict[str, type[Strategy]]:
    """Every strategy by config name. Baselines import lazily: they import this package's base."""
    from baselines.darts import DARTS
    from baselines.enas import ENAS
    from baselines.random_search import RSPS, RandomSearch
    from baselines.reinforce import Reinforce

    return {cls.name: cls for cls in (DDPNAS, DARTS, ENAS, Reinforce, RandomSearch, RSPS)}


def get_strategy(name: str) -> type[Strategy]:
    """Strategy class by config name."""
    known = strategies()
    try:
        return known[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; known: {', '.join(sorted(known))}") from None


__all__ = ["DDPNAS", "Strategy", "get_strategy", "strategies"]
