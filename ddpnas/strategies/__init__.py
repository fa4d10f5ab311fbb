"""Search strategies: DDPNAS lives here, baselines in the top-level ``baselines`` package; all are
found through :mod:`ddpnas.registry`."""

from ddpnas.registry import get_strategy, register_strategy, strategies
from ddpnas.strategies.base import Strategy
from ddpnas.strategies.ddpnas import DDPNAS

__all__ = ["DDPNAS", "Strategy", "get_strategy", "register_strategy", "strategies"]
