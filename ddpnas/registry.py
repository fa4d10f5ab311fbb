"""The one registry of search strategies and spaces (as timm's ``@register_model``).

A strategy or space registers itself with a decorator where it is defined; its config options are
its ``Options`` model. The config schema, the defaults, the rules' per-strategy facts and the CLI
all read this registry. The built-in modules are imported on the first lookup (listed once here),
so importing a strategy module never imports the others and baselines stay out of import cycles.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from ddpnas.spaces.base import SearchSpace
    from ddpnas.strategies.base import Strategy

BUILTIN_MODULES = (
    "ddpnas.spaces.nb201",
    "ddpnas.spaces.darts",
    "ddpnas.spaces.mobile",
    "ddpnas.strategies.ddpnas",
    "baselines.darts",
    "baselines.enas",
    "baselines.reinforce",
    "baselines.random_search",
)

_STRATEGIES: dict[str, type[Strategy]] = {}
_SPACES: dict[str, type[SearchSpace]] = {}
_loaded = False

S = TypeVar("S", bound="type[Strategy]")
P = TypeVar("P", bound="type[SearchSpace]")


def _register(table: dict, cls: type, kind: str) -> None:
    known = table.get(cls.name)
    same = known is not None and (known.__module__, known.__qualname__) == (
        cls.__module__,
        cls.__qualname__,
    )
    if known is not None and not same:
        raise ValueError(
            f"{kind} name {cls.name!r} is taken by {known.__module__}.{known.__name__}"
        )
    table[cls.name] = cls  # the same class re-imported (e.g. a reloaded module) replaces itself


def register_strategy(cls: S) -> S:
    """Class decorator: make a :class:`Strategy` subclass selectable as ``strategy: <cls.name>``."""
    _register(_STRATEGIES, cls, "strategy")
    return cls


def register_space(cls: P) -> P:
    """Class decorator: make a :class:`SearchSpace` subclass selectable as ``space: <cls.name>``."""
    _register(_SPACES, cls, "space")
    return cls


def _load_builtin() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in BUILTIN_MODULES:
            importlib.import_module(module)


def _ordered(table: dict[str, type]) -> dict[str, type]:
    """Built-ins first in BUILTIN_MODULES order, whatever imported them first (the generated
    schema lists them in this order), then others as registered."""
    _load_builtin()

    def rank(cls: type) -> int:
        module = cls.__module__
        return BUILTIN_MODULES.index(module) if module in BUILTIN_MODULES else len(BUILTIN_MODULES)

    return dict(sorted(table.items(), key=lambda item: rank(item[1])))


def registered() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The names registered so far (strategies, spaces), without importing the built-ins."""
    return tuple(_STRATEGIES), tuple(_SPACES)


def strategies() -> dict[str, type[Strategy]]:
    """Every registered strategy class by config name."""
    return _ordered(_STRATEGIES)


def spaces() -> dict[str, type[SearchSpace]]:
    """Every registered search space class by config name."""
    return _ordered(_SPACES)


def _lookup(table: dict[str, type], name: str, kind: str) -> type:
    try:
        return table[name]
    except KeyError:
        raise KeyError(f"unknown {kind} {name!r}; known: {', '.join(sorted(table))}") from None


def get_strategy(name: str) -> type[Strategy]:
    """Strategy class by config name."""
    return _lookup(strategies(), name, "strategy")


def space_class(name: str) -> type[SearchSpace]:
    """Search space class by config name."""
    return _lookup(spaces(), name, "search space")


def get_space(name: str) -> SearchSpace:
    """A search space by its config name."""
    return space_class(name)()
