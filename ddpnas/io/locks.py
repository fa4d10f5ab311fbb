"""Exclusive locks on output paths, so two processes never write (or resume from) the same files."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterable, Iterator
from pathlib import Path

from ddpnas.errors import DDPNASError


@contextlib.contextmanager
def exclusive(paths: Iterable[str | Path | None], what: str = "output") -> Iterator[None]:
    """Hold an exclusive lock (``fcntl.flock`` on ``.<name>.lock`` beside each path) for the
    block, so two processes never write, or resume from, the same files; the second one fails."""
    with contextlib.ExitStack() as stack:
        for path in sorted({Path(p).expanduser().absolute() for p in paths if p is not None}):
            lock = path.with_name(f".{path.name}.lock")
            lock.parent.mkdir(parents=True, exist_ok=True)
            handle = stack.enter_context(open(lock, "a"))
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DDPNASError(
                    f"{path} is in use by another ddpnas process (lock {lock}); wait for it to "
                    f"finish or give this run another {what} path"
                ) from None
        yield
