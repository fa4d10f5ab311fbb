"""The machine a number was measured on: seeding, devices, versions and what a run held.

torch is imported inside the helpers that need it: report commands use only the CPU and
version facts, and importing torch costs them about a second on a small machine.
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import resource
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ddpnas.errors import ConfigError

if TYPE_CHECKING:
    import torch


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


#: Seeds are integers in [0, SEED_LIMIT): what torch's generators take (numpy gets seed % 2**32).
SEED_LIMIT = 2**63


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
    from ddpnas._version import __version__

    return {
        "ddpnas": __version__,
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
