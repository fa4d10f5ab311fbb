"""Small shared helpers: atomic writes, seeding and a description of the machine.

torch is imported inside the helpers that need it: report commands use only the atomic writes,
and importing torch costs them about a second on a small machine.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import json
import logging
import os
import platform
import random
import resource
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

from ddpnas.errors import DDPNASError, StaleCheckpointError

log = logging.getLogger(__name__)
#: What a resumable run does with a checkpoint of another run: refuse it, or remove it and start.
STALE_CHECKPOINT = ("error", "restart")

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


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """torch.save, atomically: a kill mid-write leaves the previous checkpoint intact.

    Serialised in memory first, so a full disk surfaces as an OSError of the file write (reported
    as such) rather than as torch's opaque zip-writer error.
    """
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getbuffer()))


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
            f"checkpoint {path} is unreadable ({exc}); delete it to start over"
        ) from exc
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


def runtime_fingerprint(device: torch.device) -> dict[str, Any]:
    """What besides config and seed changes a run's numbers: thread count, CPU kernels, torch.

    Same config, seed and these give a bit-identical record on CPU; a different thread count or
    CPU capability (e.g. AVX2 vs AVX512) changes floating-point reduction order, hence results.
    """
    import torch

    return {
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "device": device.type,
        "torch": str(torch.__version__),
    }


def seed_everything(seed: int) -> None:
    """One seed for Python, NumPy and torch (CPU and CUDA)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present; an explicit ``cuda`` without a GPU is an error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        from ddpnas.errors import ConfigError

        raise ConfigError(
            "device 'cuda' was asked for but no CUDA GPU is visible; use device: auto or cpu"
        )
    return device


def device_name(device: torch.device) -> str:
    """Human name of the hardware a number was measured on."""
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} ({torch.get_num_threads()} threads)"


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def environment(device: torch.device) -> dict[str, str]:
    """Versions and hardware recorded beside every result."""
    import ddpnas

    return {
        "ddpnas": ddpnas.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        **runtime_fingerprint(device),
        "hardware": device_name(device),
        "platform": platform.platform(),
    }


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this process: the CUDA allocator's peak on a GPU, else the max RSS."""
    if device.type == "cuda":
        import torch

        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


def process_seconds() -> float:
    """Wall time since this process started: imports and data loading included, as a job's."""
    import psutil

    return time.time() - psutil.Process().create_time()


def run_cost(device: torch.device, devices: int | None = None) -> dict[str, Any]:
    """What a run held, for cost tables: devices (torchrun world size), GPU model, peak memory.

    ``process_seconds`` is this process's whole wall time (what Snakemake's ``benchmark:`` also
    measures); a resumed run counts only its last process, as its benchmark file does.
    """
    import torch

    world = devices if devices is not None else int(os.environ.get("WORLD_SIZE", "1"))
    return {
        "device": device.type,
        "devices": world,
        "gpu_model": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "peak_memory_mb": round(peak_memory_mb(device), 1),
        "process_seconds": round(process_seconds(), 3),
    }


def json_object(text: str | None, flag: str) -> dict:
    """A JSON object given on the command line (``flag`` names it in the error)."""
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise DDPNASError(f"{flag} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise DDPNASError(f"{flag} must be a JSON object")
    return value
