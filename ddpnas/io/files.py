"""Atomic file writes and up-front output checks: a kill, a full disk or a file-size limit never
leaves a torn file (nor some files of a set without the others), and a bad output path fails
before any work."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ddpnas.errors import DDPNASError

# Writes that fail for lack of room: one clear line (what to do), not an OSError or torch's
# "enforce fail". EFBIG is a file-size limit (``ulimit -f``) or the file system's maximum.
WRITE_LIMITS = {
    errno.ENOSPC: "disk full while writing {path}; free space (or write elsewhere) and rerun",
    errno.EDQUOT: "disk quota exceeded while writing {path}; free space (or write elsewhere) and "
    "rerun",
    errno.EFBIG: "{path} would exceed the file-size limit (ulimit -f, or the file system's "
    "largest file); raise the limit (e.g. ulimit -f unlimited) or write elsewhere and rerun",
}

#: A result table is these three files of one stem, written together (:func:`atomic_paths`).
TABLE_SUFFIXES = (".csv", ".md", ".tex", ".html")


def table_paths(stem: str | Path) -> list[Path]:
    """The files of the table ``stem``."""
    return [Path(stem).with_suffix(suffix) for suffix in TABLE_SUFFIXES]


def write_failure(exc: OSError, *paths: str | Path) -> DDPNASError | None:
    """The one-line error for a write of ``paths`` that ran out of room, or None for any other
    failure."""
    text = WRITE_LIMITS.get(exc.errno or 0)
    if text is None:
        return None
    intact = "the previous file, if any, is intact"
    if len(paths) > 1:
        intact = "the previous files, if any, are intact"
    return DDPNASError(f"{text.format(path=', '.join(map(str, paths)))}: {intact}")


def temp_sibling(path: Path, suffix: str = "tmp") -> Path:
    """A name beside ``path`` that only this process uses: hidden, named after it, unique.
    Create it with ``open``/``mkdir`` (modes from the umask), never mkstemp/mkdtemp (0600/0700)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.{suffix}")


@contextlib.contextmanager
def atomic_paths(paths: Sequence[str | Path]) -> Iterator[list[Path]]:
    """Yield a temp path beside each of ``paths``; rename them over ``paths`` only if the block
    succeeds, so a set of files (a table's .csv, .md, .tex) is written whole or not at all.

    Temp files are created by the writer (so they get the umask's mode, not mkstemp's 0600); a
    failure leaves every path as it was and removes the temp files.
    """
    targets = [Path(p) for p in paths]
    temps = [temp_sibling(p) for p in targets]
    try:
        for path in targets:
            path.parent.mkdir(parents=True, exist_ok=True)
        yield temps
        for tmp, path in zip(temps, targets, strict=True):
            os.replace(tmp, path)
    except OSError as exc:
        failure = write_failure(exc, *targets)
        if failure is not None:
            raise failure from None
        raise
    finally:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it over ``path`` only if the block succeeds."""
    with atomic_paths([path]) as (tmp,):
        yield tmp


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp)`` and atomically move the result to ``path``."""
    with atomic_path(path) as tmp:
        write(tmp)


def write_json(path: str | Path, obj: Any) -> None:
    """Atomic, human-readable JSON."""
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2) + "\n"))


@contextlib.contextmanager
def atomic_dir(path: str | Path, replace: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """Build a directory in a temporary sibling and rename it to ``path`` only on success.

    The sibling is made with ``mkdir`` (the umask's mode, not mkdtemp's 0700). ``path`` may be
    missing or an empty directory; one with content is replaced only when ``replace`` is given:
    it is called with ``path`` first (and must raise unless everything there may go), then the old
    tree is moved aside, the new one renamed in, and the old one removed. A failure removes only
    the temporary sibling.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    tmp.mkdir()
    try:
        yield tmp
        if path.is_dir() and any(path.iterdir()):
            if replace is None:
                raise DDPNASError(f"{path} is not empty; give a new folder")
            replace(path)
            old = temp_sibling(path, "old")
            path.rename(old)
            try:
                tmp.rename(path)
            except OSError:
                old.rename(path)
                raise
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)  # over a missing path or an empty directory
    except OSError as exc:
        failure = write_failure(exc, path)
        if failure is not None:
            raise failure from None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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
