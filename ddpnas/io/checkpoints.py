"""Checkpoints a killed run resumes from, refused when they belong to another run.

torch is imported inside the helpers: report commands never load it.
"""

from __future__ import annotations

import io
import logging
import pickle
from pathlib import Path
from typing import Any

from ddpnas.errors import DDPNASError, StaleCheckpointError
from ddpnas.io.files import atomic_write

log = logging.getLogger(__name__)


#: What a resumable run does with a checkpoint of another run: refuse it, or remove it and start.
STALE_CHECKPOINT = ("error", "restart")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """torch.save, atomically: a kill mid-write leaves the previous checkpoint intact.

    Serialised in memory first, so a full disk surfaces as an OSError of the file write (reported
    as such) rather than as torch's opaque zip-writer error.
    """
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getbuffer()))


def unreadable_reason(exc: BaseException) -> str:
    """Why ``torch.load`` failed, in a few words. Not torch's own text: a weights-only refusal
    advises ``weights_only=False``, i.e. running code from an unknown file, which never applies
    to a file ddpnas wrote (it holds only tensors and plain data)."""
    if isinstance(exc, pickle.UnpicklingError):
        return "it holds objects other than tensors and plain data, which ddpnas never writes"
    if isinstance(exc, EOFError):
        return "it ends early: empty or cut short"
    text = (str(exc).strip().splitlines() or [""])[0].split(". ")[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_checkpoint(
    path: str | Path, *, version: int, fingerprint: str | dict[str, Any]
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` for this run, or say why not.

    A dict ``fingerprint`` ({"config": hash, **runtime_fingerprint(device)}) lets the refusal
    name what differs when only the runtime (threads, CPU capability, device, torch) changed:
    those change weight-sharing results, so resuming under them would mix two different runs.
    A readable checkpoint of another run raises :class:`StaleCheckpointError`.
    """
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a torn or foreign file: say which and what to do
        raise DDPNASError(
            f"checkpoint {path} is unreadable ({unreadable_reason(exc)}); it is not a complete "
            "ddpnas checkpoint: delete it (or move it away) to start over"
        ) from None
    if not isinstance(state, dict):
        raise DDPNASError(
            f"checkpoint {path} holds a {type(state).__name__}, not a ddpnas checkpoint; delete "
            "it (or move it away) to start over"
        )
    stored = state.get("fingerprint")
    if (
        isinstance(stored, dict)
        and isinstance(fingerprint, dict)
        and state.get("version") == version
    ):
        same_config = stored.get("config") == fingerprint.get("config")
        differ = sorted(
            k for k in set(stored) | set(fingerprint) if stored.get(k) != fingerprint.get(k)
        )
        if same_config and differ:
            then = ", ".join(f"{k}={stored.get(k)}" for k in differ)
            now = ", ".join(f"{k}={fingerprint.get(k)}" for k in differ)
            raise StaleCheckpointError(
                f"checkpoint {path} was written with {then} but this run has {now}; resume with "
                "the same settings (e.g. the same --threads on the same kind of machine) or "
                "delete it to start over"
            )
    if state.get("version") != version or stored != fingerprint:
        raise StaleCheckpointError(
            f"checkpoint {path} belongs to another config, seed, model or code version; delete it "
            "or write to another path"
        )
    return state


def resume_state(
    path: str | Path | None,
    *,
    version: int,
    fingerprint: str | dict[str, Any],
    stale: str = "error",
) -> dict[str, Any] | None:
    """The state a resumable run continues from; None when it starts fresh (no checkpoint).

    A checkpoint of another run is refused (``stale="error"``, for hand-run commands) or, with
    ``stale="restart"`` (the pipeline, whose reruns follow changed inputs), removed with one log
    line saying why. Resuming a killed run with the same fingerprint is the same either way.
    """
    if stale not in STALE_CHECKPOINT:
        raise DDPNASError(f"stale checkpoint handling must be one of {STALE_CHECKPOINT}: {stale!r}")
    if path is None or not Path(path).exists():
        return None
    try:
        return load_checkpoint(path, version=version, fingerprint=fingerprint)
    except StaleCheckpointError as exc:
        if stale == "error":
            raise StaleCheckpointError(
                f"{exc}, or rerun with --stale-checkpoint restart to have it removed"
            ) from None
        log.warning("%s: removed it, starting over", str(exc).split("; ")[0])
        Path(path).unlink(missing_ok=True)
        return None
