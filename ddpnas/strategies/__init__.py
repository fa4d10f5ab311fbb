"""Strategy registry: DDPNAS lives here, baselines in the top-level ``baselines`` package."""

from ddpnas.strategies.base import Strategy
from ddpnas.strategies.ddpnas import DDPNAS

STRATEGIES: dict[str, type[Strategy]] = {DDPNAS.name: DDPNAS}


def get_strategy(name: str) -> type[Strategy]:
    """Strategy class by config name."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise KeyError(
            f"unknown strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}"
        ) from None


__all__ = ["DDPNAS", "STRATEGIES", "Strategy", "get_strategy"]
