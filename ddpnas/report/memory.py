"""Peak GPU memory of a training job, from activations measured per image on the CPU.

No GPU is needed: one training-mode forward of the job's network at batch 2 and at batch 3 runs
under :func:`torch.autograd.graph.saved_tensors_hooks`, which sees every tensor autograd keeps for
the backward pass; their storages are counted once each (views and aliases share one), parameters
left out. The difference between the two batches is the bytes one image adds; the rest is a
fixed part. These are the tensors that dominate a training step's memory,
and their sizes do not depend on the device.

A job's peak per GPU is then modelled as

    context + data on the GPU + (3 + extra) x parameter bytes
            + margin x (micro-batch x per-image bytes + fixed bytes)

with weights, gradients and SGD momentum (3; DARTS's second order keeps an unrolled copy of the
weights and its gradients: extra 2), ``CONTEXT_GIB`` for the CUDA context and cuDNN/cuBLAS
workspaces and ``MARGIN`` for the caching allocator's rounding and the transient gradients of the
backward pass. Both are assumptions (no GPU was at hand to calibrate them): they are printed with
every estimate. Networks not known before the run (the searched or generated mobile network, the
retrained DARTS cell) are measured at the space's largest: an upper bound.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Callable
from functools import cache
from typing import Any

import torch
from torch import nn

from ddpnas.errors import DDPNASError

CONTEXT_GIB = 1.0
MARGIN = 1.25
PROBE_BATCHES = (2, 3)
CACHE_VERSION = 4  # of the measurements stored in the cache directory
GIB = 2**30
# The DARTS cell with the largest activations: separable convolutions (two stacked ReLU-conv-BN
# units, the most saved tensors of any op) on every edge.
WORST_CELL = [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)] * 4


def saved_bytes(model: nn.Module, run: Callable[[torch.Tensor], Any], x: torch.Tensor) -> int:
    """Bytes of the distinct storages autograd saves for backward in ``run(x)`` (parameters
    excluded), with the graph alive so no saved storage is freed and reused meanwhile."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            seen.setdefault(storage.data_ptr(), storage.nbytes())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = run(x)
    total = sum(seen.values())
    del out
    return total


def _worst_genotype() -> Any:
    from ddpnas.spaces.darts.genotype import Genotype

    return Genotype(WORST_CELL, (2, 3, 4, 5), WORST_CELL, (2, 3, 4, 5))


def _network(kind: str, options: dict[str, Any]) -> tuple[nn.Module, list[Any]]:
    """The network of a job and the forward arguments to try (the peak is the largest)."""
    from ddpnas.spaces import get_space

    if kind == "supernet":
        space = get_space(options["space"])
        net = space.supernet(**options["supernet"], num_classes=options["classes"])
        if options["mixed"]:
            return net, [torch.full((space.num_edges, space.num_ops), 1.0 / space.num_ops)]
        return net, [(k,) * space.num_edges for k in range(space.num_ops)]
    if kind == "darts_cifar":
        from ddpnas.spaces.darts.genotype import DARTS_V2

        genotype = DARTS_V2 if options.get("genotype") == "DARTS_V2" else _worst_genotype()
        return get_space("darts").eval_network(genotype, **options["network"]), [None]
    if kind == "darts_imagenet":
        from ddpnas.spaces.published_nets import darts_imagenet_network

        net = darts_imagenet_network(_worst_genotype(), **options["network"])
        return net, [None]
    if kind == "mobile":
        from ddpnas.spaces.mobile.space import EDGES, OPS, MobileSpace

        largest = (OPS.index("7x7_MBConv6"),) * len(EDGES)  # the space's largest network
        return MobileSpace().standalone(largest, **options["network"]), [None]
    raise ValueError(f"unknown network kind {kind!r}")


def _key(kind: str, options: dict[str, Any], resolution: int) -> str:
    return json.dumps({"kind": kind, "options": options, "resolution": resolution}, sort_keys=True)


@cache
def _stored(what: str, key: str) -> dict[str, float]:
    """``_probe`` or ``_count`` of ``key``, kept in the cache directory: measured once per
    network and torch version (a read-only cache only costs time)."""
    from ddpnas.data.locations import resolve_cache_dir
    from ddpnas.io.files import write_json

    name = hashlib.sha256(f"{CACHE_VERSION}|{torch.__version__}|{what}|{key}".encode())
    path = resolve_cache_dir() / "memory" / f"{name.hexdigest()[:24]}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # batches of 1-3 images: threads only add contention
    try:
        value = _probe(key) if what == "probe" else _count(key)
    finally:
        torch.set_num_threads(threads)
    with contextlib.suppress(OSError, DDPNASError):
        write_json(path, value)
    return value


def _count(key: str) -> dict[str, float]:
    """MACs per image (the largest over the forward arguments tried) and parameters."""
    spec = json.loads(key)
    net, paths = _network(spec["kind"], spec["options"])
    # two images: batch norm without running statistics normalises over the batch even in eval
    x = torch.zeros(2, 3, spec["resolution"], spec["resolution"])
    count = max(conv_linear_macs(net, x, *(() if p is None else (p,))) for p in paths) // 2
    return {"macs": float(count), "params": float(sum(p.numel() for p in net.parameters()))}


@torch.no_grad()
def conv_linear_macs(net: nn.Module, x: torch.Tensor, *args: Any) -> int:
    """Multiply-accumulates of the convolutions and linear layers ``net(x, *args)`` runs (the
    convention of :func:`ddpnas.spaces.complexity.count_macs`; forward hooks, which are much
    faster than a flop counter on these many small ops). Eval mode, restored afterwards."""
    total = 0

    def hook(module: nn.Module, _inputs: Any, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Linear):
            total += out.numel() * module.in_features
        else:
            kernel = math.prod(module.kernel_size)  # type: ignore[arg-type]
            total += out.numel() * module.in_channels // module.groups * kernel  # type: ignore[operator]

    layers = (nn.Linear, nn.modules.conv._ConvNd)
    hooks = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, layers)]
    was_training = net.training
    try:
        net.eval()
        net(x, *args)
    finally:
        net.train(was_training)
        for handle in hooks:
            handle.remove()
    return total


def _probe(key: str) -> dict[str, float]:
    """Per-image and fixed saved bytes of one network: the largest over the forward arguments
    tried (every uniform path of a single-path supernet)."""
    spec = json.loads(key)
    torch.manual_seed(0)
    net, paths = _network(spec["kind"], spec["options"])
    net.train()
    shape = (3, spec["resolution"], spec["resolution"])
    best = {"per_image": -1.0, "fixed": 0.0}
    for path in paths:
        args = () if path is None else (path,)
        sizes = [
            saved_bytes(net, lambda x, a=args: net(x, *a), torch.zeros(n, *shape))
            for n in PROBE_BATCHES
        ]
        per_image = (sizes[1] - sizes[0]) / (PROBE_BATCHES[1] - PROBE_BATCHES[0])
        if per_image > best["per_image"]:
            best = {"per_image": per_image, "fixed": max(0.0, sizes[0] - 2 * per_image)}
    return best


def macs(kind: str, options: dict[str, Any], resolution: int) -> dict[str, float]:
    """MACs per image and parameters of a network described by JSON-able ``options``."""
    return _stored("count", _key(kind, options, resolution))


def measure(kind: str, options: dict[str, Any], resolution: int) -> dict[str, float]:
    """Saved bytes per image and fixed, MACs per image and parameters of a network."""
    key = _key(kind, options, resolution)
    return {**_stored("probe", key), **_stored("count", key)}


def peak_bytes(
    measured: dict[str, float], micro_batch: int, *, data_bytes: float = 0.0, extra_copies: int = 0
) -> float:
    """The modelled peak of one GPU (see the module doc)."""
    weights = (3 + extra_copies) * 4 * measured["params"]
    activations = MARGIN * (micro_batch * measured["per_image"] + measured["fixed"])
    return CONTEXT_GIB * GIB + data_bytes + weights + activations


def cpu_name() -> str:
    """The CPU that measured the activations (named beside every memory figure)."""
    from ddpnas.runtime import device_name

    return device_name(torch.device("cpu"))
