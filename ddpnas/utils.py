"""Small shared helpers: atomic writes, seeding and a description of the machine.

torch is imported inside the helpers that need it: report commands use only the atomic writes,
and importing torch costs them about a second on a small machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
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
    import torch

    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path, *, version: int, fingerprint: str) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` for this run, or say why not."""
    import torch

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
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model} ({torch.get_num_threads()} threads)"


def environment(device: torch.device) -> dict[str, str]:
    """Versions and hardware recorded beside every result."""
    import torch

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
