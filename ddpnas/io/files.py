"""Atomic file writes and up-front output checks: a kill or a full disk never leaves a torn
file, and a bad output path fails before any work."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ddpnas.errors import DDPNASError

# A full disk (or quota) while writing: one clear line, not an OSError or torch's "enforce fail".
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it over ``path`` only if the block succeeds.

    The temp file is created by the writer (so it gets the umask's mode, not mkstemp's 0600); a
    failure leaves ``path`` as it was and removes the temp file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise DDPNASError(
                f"disk full while writing {path}; free space (or write elsewhere) and rerun: "
                "the previous file, if any, is intact"
            ) from None
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp)`` and atomically move the result to ``path``."""
    with atomic_path(path) as tmp:
        write(tmp)


def write_json(path: str | Path, obj: Any) -> None:
    """Atomic, human-readable JSON."""
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2) + "\n"))


def ensure_writable(path: str | Path | None, what: str, *, is_dir: bool = False) -> None:
    """Fail before any work when ``path`` (a file, or a directory with ``is_dir``) cannot be
    written: checks the nearest existing directory on the way, creating nothing."""
    if path is None:
        return
    target = Path(path).expanduser()
    if target.exists() and (target.is_dir() != is_dir):
        kind = "a directory" if target.is_dir() else "a file"
        raise DDPNASError(f"{what} {target} is {kind}; give a {'directory' if is_dir else 'file'}")
    probe = target if is_dir else target.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise DDPNASError(
            f"{what} {target}: cannot write in {probe} (read-only or no permission); "
            "choose another path or fix its permissions"
        )
