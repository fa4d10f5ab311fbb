"""Search spaces. Each module defines a registered :class:`~ddpnas.spaces.base.SearchSpace`."""

from ddpnas.registry import get_space, register_space, spaces
from ddpnas.spaces.base import Arch, SearchSpace

__all__ = ["Arch", "SearchSpace", "get_space", "register_space", "spaces"]
