"""DDPNAS replication suite: search, generation, retraining and reporting.

The small public API (as timm's ``create_model``); each name is imported on first use, so
``import ddpnas`` stays cheap and the subpackages never import this module::

    import ddpnas
    config = ddpnas.load_config("config/config.yaml")
    space = ddpnas.get_space("nb201")
    strategy = ddpnas.get_strategy("ddpnas")(space, pruning_step=1)
    outcome = ddpnas.run_search(strategy, evaluator, seed=0)  # an engine evaluator
"""

from __future__ import annotations

import importlib
from typing import Any

from ddpnas._version import __version__

_API = {
    "get_space": "ddpnas.registry",
    "get_strategy": "ddpnas.registry",
    "register_space": "ddpnas.registry",
    "register_strategy": "ddpnas.registry",
    "load_config": "ddpnas.config.load",
    "run_search": "ddpnas.engine.loop",
    "run_experiment": "ddpnas.engine.experiment",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'ddpnas' has no attribute {name!r}")
    return getattr(importlib.import_module(_API[name]), name)
