"""Progress of long loops: a tqdm bar on a terminal, else a one-line status now and then.

A pipeline job writes to a log file, where a bar is noise (or nothing at all until it ends); so
when stderr is not a terminal, :func:`tracked` logs one line every :data:`STATUS_EVERY` seconds
instead: what runs, the step, the rate and the time left. The numbers a run computes never
depend on either.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
log = logging.getLogger(__name__)
#: Seconds between two status lines when nobody watches a terminal ($DDPNAS_STATUS_EVERY).
STATUS_EVERY = float(os.environ.get("DDPNAS_STATUS_EVERY", "60"))


def on_terminal() -> bool:
    """Whether a person watches stderr (then bars, else status lines)."""
    return sys.stderr.isatty()


def duration(seconds: float) -> str:
    """``1h02m``, ``3m05s``, ``12s``: short enough for a status line."""
    if not math.isfinite(seconds):
        return "?"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def status(desc: str, done: int, total: int | None, elapsed: float, unit: str) -> str:
    """``desc: 120/391 batches (31%), 52.1 batches/s, 5s left`` (``unit``: plural)."""
    rate = done / elapsed if elapsed > 0 else float("nan")
    if not total:
        return f"{desc}: {done} {unit}, {rate:.3g} {unit}/s"
    left = (total - done) / rate if rate > 0 else float("inf")
    return (
        f"{desc}: {done}/{total} {unit} ({done / total:.0%}), {rate:.3g} {unit}/s, "
        f"{duration(left)} left"
    )


def tracked(
    items: Iterable[T],
    desc: str,
    total: int | None = None,
    *,
    unit: str = "steps",
    show: bool | None = None,
    every: float | None = None,
) -> Iterator[T]:
    """``items``, with a bar (``show``; None: on a terminal) or a status line every ``every``
    seconds (default :data:`STATUS_EVERY`)."""
    if show if show is not None else on_terminal():
        yield from tqdm(items, desc=desc, total=total, unit=unit, leave=False)
        return
    every = STATUS_EVERY if every is None else every
    start = last = time.perf_counter()
    for done, item in enumerate(items, start=1):
        yield item
        now = time.perf_counter()
        if now - last >= every:
            last = now
            log.info(status(desc, done, total, now - start, unit))
