"""Per-choice latency tables for constraint-aware generation, from two sources.

* measured on this device: every choice module of the space (and every fixed part) timed at its
  input shape, eval mode, no autograd, after a warm-up, as the median of repeated forwards
  (CUDA-synchronised around each one), cached per device as JSON so a table is measured once;
* a published table (ProxylessNAS's phone table ``mobile_trim.yaml``): the space names the key of
  each choice; a choice whose key is absent is reported, never guessed: an error listing every
  missing key, or (``missing="exclude"``) a mask of choices to exclude from generation.

Latencies are additive estimates (the sum over the network's parts), the model every lookup-table
generator uses; :func:`network_latency_ms` re-measures the built network to show the difference,
and :func:`inference_latency` measures a retrained network for the ImageNet table.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from ddpnas.errors import DataError, DDPNASError
from ddpnas.io.files import write_json
from ddpnas.runtime import device_name
from ddpnas.spaces.base import Arch, SearchSpace, Shape

RESOURCE = "latency_ms"
#: Bump when the measuring procedure changes: cached tables of an older procedure are ignored.
PROCEDURE = 1
#: (warm-up, repeats) for a retrained network: a few on a CPU (seconds there), more on a GPU.
NETWORK_REPEATS = {"cpu": (2, 5), "cuda": (10, 50)}


def module_latency_ms(
    module: nn.Module,
    shape: Shape,
    device: torch.device,
    *,
    warmup: int = 5,
    repeats: int = 21,
) -> float:
    """Median wall time (ms) of ``module(randn(shape))`` on ``device`` after ``warmup`` runs."""
    if repeats < 1 or warmup < 0:
        raise DDPNASError(f"latency needs repeats >= 1 and warmup >= 0, got {repeats}, {warmup}")
    module = module.to(device).eval()
    x = torch.randn(tuple(shape), generator=torch.Generator().manual_seed(0)).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            sync()
            start = time.perf_counter()
            module(x)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _cache_file(
    space: SearchSpace,
    device: torch.device,
    network_kwargs: dict[str, Any],
    cache_dir: Path,
    **how: Any,
) -> tuple[Path, dict[str, Any]]:
    """Cache path and identity of a measured table: device, torch, space config, procedure."""
    key = {
        "device": device_name(device),
        "torch": torch.__version__,
        "space": space.name,
        "network": network_kwargs,
        "procedure": PROCEDURE,
        **how,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir / "latency" / f"{space.name}-{digest}.json", key


def measured_table(
    space: SearchSpace,
    device: torch.device,
    *,
    cache_dir: str | Path,
    network_kwargs: dict[str, Any] | None = None,
    batch_size: int = 1,
    warmup: int = 5,
    repeats: int = 21,
) -> tuple[float, np.ndarray]:
    """(fixed, E x K) latency in ms on ``device``; read from the per-device cache when present."""
    kwargs = dict(network_kwargs or {})
    path, key = _cache_file(
        space,
        device,
        kwargs,
        Path(cache_dir),
        batch_size=batch_size,
        warmup=warmup,
        repeats=repeats,
    )
    if path.exists():
        try:
            cached = json.loads(path.read_text())
            if cached["key"] == key:
                return float(cached["fixed"]), np.asarray(cached["choices"], dtype=float)
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            pass  # a torn or foreign cache file is measured again and overwritten

    def time_it(module: nn.Module | None, shape: Shape) -> float:
        if module is None:
            return 0.0
        shape = (batch_size, *shape[1:])
        return module_latency_ms(module, shape, device, warmup=warmup, repeats=repeats)

    fixed = sum(time_it(m, s) for m, s in space.fixed_modules(**kwargs))
    table = np.array([[time_it(m, s) for m, s in row] for row in space.choice_modules(**kwargs)])
    write_json(path, {"key": key, "fixed": fixed, "choices": table.tolist()})
    return fixed, table


def network_latency_ms(
    space: SearchSpace,
    arch: Arch,
    device: torch.device,
    *,
    network_kwargs: dict[str, Any] | None = None,
    batch_size: int = 1,
    warmup: int = 5,
    repeats: int = 21,
) -> float:
    """Latency of the built standalone network of ``arch``, measured like the table entries.

    Its input shape is that of the first fixed part (the stem); the keyword arguments the
    standalone constructor does not take (e.g. ``input_size``) only shape that input.
    """
    kwargs = dict(network_kwargs or {})
    accepted = inspect.signature(space.standalone).parameters
    net = space.standalone(arch, **{k: v for k, v in kwargs.items() if k in accepted})
    shape = space.fixed_modules(**kwargs)[0][1]
    return module_latency_ms(net, (batch_size, *shape[1:]), device, warmup=warmup, repeats=repeats)


def inference_latency(net: nn.Module, image_shape: Shape, device: torch.device) -> dict[str, Any]:
    """Batch-1 float32 latency of a trained network at its input size on ``device``, with how
    it was measured (what the ImageNet table prints beside the device's name)."""
    warmup, repeats = NETWORK_REPEATS["cuda" if device.type == "cuda" else "cpu"]
    shape = (1, *image_shape)
    return {
        "ms": module_latency_ms(net, shape, device, warmup=warmup, repeats=repeats),
        "device": device_name(device),
        "input": list(shape),
        "dtype": "float32",
        "warmup": warmup,
        "repeats": repeats,
        "statistic": "median",
    }


def read_phone_table(path: str | Path) -> dict[str, float]:
    """key -> mean latency (ms) of a ProxylessNAS-format YAML table ({key: {count, mean, var}})."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise DataError(f"cannot read latency table {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise DataError(f"latency table {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise DataError(f"latency table {path} must map keys to {{count, mean, var}}")
    table = {}
    for key, entry in raw.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("mean"), int | float):
            raise DataError(f"latency table {path}: entry {key!r} has no numeric 'mean'")
        table[str(key)] = float(entry["mean"])
    return table


def phone_table(
    space: SearchSpace, path: str | Path, *, missing: str = "error"
) -> tuple[float, np.ndarray, np.ndarray]:
    """(fixed, E x K latency in ms, E x K mask of excluded choices) from a published table.

    A choice whose ``latency_key`` is None costs 0 (it computes nothing). A choice whose key is not
    in the table is never guessed: ``missing="error"`` raises listing every missing key;
    ``missing="exclude"`` returns it in the mask (cost 0 there) so generation never picks it.
    A missing fixed part is always an error: no architecture could be costed.
    """
    if missing not in ("error", "exclude"):
        raise DDPNASError(f"missing must be 'error' or 'exclude', got {missing!r}")
    table = read_phone_table(path)
    fixed_keys = space.fixed_latency_keys()
    absent_fixed = [k for k in fixed_keys if k not in table]
    if absent_fixed:
        raise DataError(f"latency table {path} lacks the fixed part(s): {', '.join(absent_fixed)}")
    cost = np.zeros((space.num_edges, space.num_ops))
    excluded = np.zeros_like(cost, dtype=bool)
    absent = []
    for e in range(space.num_edges):
        for k in range(space.num_ops):
            key = space.latency_key(e, k)
            if key is None:
                continue
            if key in table:
                cost[e, k] = table[key]
            else:
                excluded[e, k] = True
                absent.append(f"{space.edges[e]}/{space.ops[k]}: {key}")
    if absent and missing == "error":
        raise DataError(
            f"latency table {path} lacks {len(absent)} choice(s) (exclude them with "
            f"missing='exclude' or measure on this device): " + "; ".join(absent)
        )
    return sum(table[k] for k in fixed_keys), cost, excluded
