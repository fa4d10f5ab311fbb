"""Parameter and FLOP counts in the convention of the NAS-Bench-201 / NATS-Bench cost info.

The official cost info (``get_cost_info``: ``flops``, ``params``) comes from the xautodl
``get_model_infos`` counter, which reports, in millions:

- params: every ``nn.Parameter`` of the network, BN affine weights included;
- flops: multiply-accumulates (one MAC = one FLOP) of convolutions and linear layers, plus one
  add per output element of a layer with a bias; pooling, BN, activations and additions are free.

``FlopCounterMode`` counts 2 FLOPs per MAC and ignores biases, so ``count_flops`` halves its total
and adds the bias adds. This reproduces the official numbers exactly (e.g. NAS-Bench-201 index 0 on
CIFAR-10: 15.64737 MFLOPs, 0.129306 M params).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> float:
    """Number of parameters in millions (shared or not, used by the forward or not)."""
    return sum(p.numel() for p in model.parameters()) / 1e6


def count_flops(model: nn.Module, input_shape: Sequence[int], *args: Any, **kwargs: Any) -> float:
    """MFLOPs (MAC convention, see module doc) of ``model(zeros(input_shape), *args, **kwargs)``.

    The count is for the whole input batch: pass batch size 1 for the per-image cost. The model is
    run once in eval mode without autograd; its training mode is restored afterwards.
    """
    bias_adds = 0

    def add_bias_adds(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal bias_adds
        bias_adds += output.numel()

    hooks = [
        m.register_forward_hook(add_bias_adds)
        for m in model.modules()
        if isinstance(m, nn.Linear | nn.modules.conv._ConvNd) and m.bias is not None
    ]
    try:
        macs = count_macs(model, input_shape, *args, **kwargs)
    finally:
        for hook in hooks:
            hook.remove()
    return (macs + bias_adds) / 1e6


def count_macs(model: nn.Module, input_shape: Sequence[int], *args: Any, **kwargs: Any) -> int:
    """Multiply-accumulates of convolutions and linear layers, biases and the rest free.

    The convention of the MobileNet / ProxylessNAS / XNAS tables (e.g. 465.3 M for ProxylessNAS-GPU
    at 224). Whole batch of ``input_shape``; eval mode, no autograd, training mode restored.
    """
    was_training = model.training
    param = next(model.parameters(), None)
    x = torch.zeros(tuple(input_shape), device=param.device if param is not None else None)
    try:
        model.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x, *args, **kwargs)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2
