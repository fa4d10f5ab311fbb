"""Small shared helpers: atomic writes, seeding and a description of the machine."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
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
    """torch.save, atomically: a kill mid-write leaves the previous checkpoint intact."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path, *, version: int, fingerprint: str) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` for this run, or say why not."""
    from ddpnas.errors import DDPNASError

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a torn or foreign file: say which and what to do
        raise DDPNASError(
            f"checkpoint {path} is unreadable ({exc}); delete it to start over"
        ) from exc
    if state.get("version") != version or state.get("fingerprint") != fingerprint:
        raise DDPNASError(
            f"checkpoint {path} belongs to another config, seed, model or code version; delete it "
            "or write to another path"
        )
    return state


def seed_everything(seed: int) -> None:
    """One seed for Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present; an explicit ``cuda`` without a GPU is an error."""
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
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model} ({torch.get_num_threads()} threads)"


def environment(device: torch.device) -> dict[str, str]:
    """Versions and hardware recorded beside every result."""
    import ddpnas

    return {
        "ddpnas": ddpnas.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": device.type,
        "hardware": device_name(device),
        "platform": platform.platform(),
    }


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this process: the CUDA allocator's peak on a GPU, else the max RSS."""
    if device.type == "cuda":
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
    world = devices if devices is not None else int(os.environ.get("WORLD_SIZE", "1"))
    return {
        "device": device.type,
        "devices": world,
        "gpu_model": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "peak_memory_mb": round(peak_memory_mb(device), 1),
        "process_seconds": round(process_seconds(), 3),
    }
