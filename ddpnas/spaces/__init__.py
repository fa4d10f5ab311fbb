"""Search spaces. Each module exposes a :class:`~ddpnas.spaces.base.SearchSpace`."""

from ddpnas.spaces.base import Arch, SearchSpace


def get_space(name: str) -> SearchSpace:
    """Look a search space up by its config name."""
    if name == "nb201":
        from ddpnas.spaces.nb201 import NB201Space

        return NB201Space()
    if name == "darts":
        from ddpnas.spaces.darts import DartsSpace

        return DartsSpace()
    if name == "mobile":
        from ddpnas.spaces.mobile import MobileSpace

        return MobileSpace()
    raise KeyError(f"unknown search space {name!r}; known: nb201, darts, mobile")


__all__ = ["Arch", "SearchSpace", "get_space"]
