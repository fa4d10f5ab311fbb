"""Output paths claimed before any work: checked (a writable file or directory) and locked, so
two processes never write (or resume from) the same files; the lock files go when the run ends.

A lock is ``fcntl.flock`` on ``.<name>.lock`` beside each path. Its holder removes the file while
still holding it, and a taker keeps the lock only if the file it locked is still the one at that
path: a process that opened the old file just before it was removed (and locks it just after)
sees that and retries on the new one, so two runs never both hold a path's lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ddpnas.errors import DDPNASError
from ddpnas.io.files import ensure_writable


@dataclass(frozen=True)
class Output:
    """A path a command writes: ``flag`` names it in errors (``--out``, ``data.cache``);
    ``lock`` False for a shared one (a data cache that concurrent runs fill)."""

    flag: str
    path: str | Path | None
    is_dir: bool = False
    lock: bool = True


def lock_file(path: str | Path) -> Path:
    """Where the lock of ``path`` lives."""
    path = Path(path).expanduser().absolute()
    return path.with_name(f".{path.name}.lock")


def _acquire(lock: Path, path: Path, what: str) -> int:
    """An fd holding ``lock`` (the file now at that path); an error when another run holds it."""
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise DDPNASError(
                f"cannot create the lock {lock} for {path} ({exc.strerror}); choose another "
                f"{what} path or fix the permissions of {lock.parent}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DDPNASError(
                f"{path} is in use by another ddpnas process (lock {lock}); wait for it to "
                f"finish or give this run another {what} path"
            ) from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # its holder removed it as it finished: lock the file now at that path


def _release(lock: Path, fd: int) -> None:
    """Remove the lock file while still holding it, then let go."""
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
    finally:
        os.close(fd)


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; the ones this call created, outermost first."""
    missing, created = [], []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for made in reversed(missing):
        try:
            made.mkdir()
        except FileExistsError:  # another process made it: not ours to remove
            continue
        created.append(made)
    return created


@contextlib.contextmanager
def exclusive(paths: Iterable[str | Path | None], what: str = "output") -> Iterator[None]:
    """Hold an exclusive lock on each path for the block; the second process fails at once.

    Folders created for the lock files are removed again, if still empty, when the block fails:
    a refused or failed command leaves no trace, a successful one its outputs' folders.
    """
    created: list[Path] = []

    def tidy(failed: type[BaseException] | None, *_: object) -> bool:
        if failed is not None:
            for folder in reversed(created):
                with contextlib.suppress(OSError):  # not empty: something was written there
                    folder.rmdir()
        return False

    with contextlib.ExitStack() as stack:
        stack.push(tidy)  # runs last, after every lock is released
        for path in sorted({Path(p).expanduser().absolute() for p in paths if p is not None}):
            lock = lock_file(path)
            created += _make_parents(lock.parent)
            fd = _acquire(lock, path, what)
            stack.callback(_release, lock, fd)
        yield


@contextlib.contextmanager
def claim(outputs: Iterable[Output]) -> Iterator[None]:
    """Check every output path, then lock them all, before the command's work starts."""
    outputs = [o for o in outputs if o.path is not None]
    for out in outputs:
        ensure_writable(out.path, out.flag, is_dir=out.is_dir)
    flags = "/".join(dict.fromkeys(o.flag for o in outputs if o.lock))
    with exclusive([o.path for o in outputs if o.lock], flags or "output"):
        yield
