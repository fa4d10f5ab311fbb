"""The one registry of search strategies and spaces (as timm's ``@register_model``).

A strategy or space is one class in one file, decorated with :func:`register_strategy` or
:func:`register_space`; its config options are its ``Options`` model. Nothing lists them:

- the built-ins are discovered by importing every module of :mod:`ddpnas.strategies` and
  :mod:`ddpnas.spaces`;
- any installed distribution adds its own through the entry-point groups ``ddpnas.strategies``
  and ``ddpnas.spaces`` (the value is the module or ``module:Class`` to import). The project's
  ``baselines/`` register this way, as a third-party package would (see ``pyproject.toml``).

The config schema, the defaults, the rules' per-strategy facts and the CLI all read this
registry, on the first lookup, so importing one strategy module never imports the others.
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, TypeVar

from ddpnas.errors import DDPNASError

if TYPE_CHECKING:
    from ddpnas.spaces.base import SearchSpace
    from ddpnas.strategies.base import Strategy

#: Entry-point group -> (what it registers, the built-in package walked for it).
GROUPS = {"ddpnas.strategies": "strategy", "ddpnas.spaces": "space"}
HOW_TO_REGISTER = (
    "decorate the class with ddpnas.registry.register_{kind} and declare its module under the "
    "entry-point group ddpnas.{kind_plural} of an installed package (docs/extending.md)"
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


def _import_builtins(package: str) -> None:
    """Import every module of a built-in package (its classes register as they are defined)."""
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, f"{package}."):
        importlib.import_module(info.name)


def _load_plugin(entry: EntryPoint, kind: str) -> None:
    """Import one entry point; a class it names registers even without the decorator."""
    try:
        loaded = entry.load()
    except Exception as exc:  # a broken plugin: name it, not a traceback from deep inside
        raise DDPNASError(
            f"{kind} plugin {entry.name} = {entry.value} (entry-point group {entry.group}) "
            f"failed to import: {exc}; fix or uninstall that package"
        ) from exc
    if isinstance(loaded, type):
        (register_strategy if kind == "strategy" else register_space)(loaded)


def _load() -> None:
    """Discover the built-ins, then the installed plugins (once per process)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for group, kind in GROUPS.items():
        _import_builtins(group)
        for entry in sorted(entry_points(group=group), key=lambda e: e.name):
            _load_plugin(entry, kind)


def registered() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The names registered so far (strategies, spaces), without discovering more."""
    return tuple(_STRATEGIES), tuple(_SPACES)


def _ordered(table: dict[str, type]) -> dict[str, type]:
    """Built-ins first, then plugins, each by name: the same order whatever imported what first
    (the exported schema lists them in it)."""
    _load()
    return dict(
        sorted(table.items(), key=lambda i: (not i[1].__module__.startswith("ddpnas."), i[0]))
    )


def strategies() -> dict[str, type[Strategy]]:
    """Every registered strategy class by config name."""
    return _ordered(_STRATEGIES)


def spaces() -> dict[str, type[SearchSpace]]:
    """Every registered search space class by config name."""
    return _ordered(_SPACES)


def unknown(kind: str, name: str, known: list[str] | tuple[str, ...]) -> str:
    """The message for a name nobody registered: what is known and how to add one."""
    how = HOW_TO_REGISTER.format(
        kind=kind, kind_plural="strategies" if kind == "strategy" else "spaces"
    )
    return f"unknown {kind} {name!r}; known: {', '.join(sorted(known))}. To add one, {how}"


def _lookup(table: dict[str, type], name: str, kind: str) -> type:
    try:
        return table[name]
    except KeyError:
        raise KeyError(unknown(kind, name, list(table))) from None


def get_strategy(name: str) -> type[Strategy]:
    """Strategy class by config name."""
    return _lookup(strategies(), name, "strategy")


def space_class(name: str) -> type[SearchSpace]:
    """Search space class by config name."""
    return _lookup(spaces(), name, "space")


def get_space(name: str) -> SearchSpace:
    """A search space by its config name."""
    return space_class(name)()
