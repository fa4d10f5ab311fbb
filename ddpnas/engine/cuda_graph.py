"""A training step captured once per fixed architecture and epoch, then replayed (CUDA graphs).

On an H200 a step of these small networks is bound by the host launching hundreds of small
kernels (bf16 was no faster than fp32), not by arithmetic. A CUDA graph records the whole step
(forward, backward, gradient clipping, SGD update) once and replays it with one launch.

Why CUDA graphs and not ``torch.compile(mode="reduce-overhead")``: a DDPNAS search trains another
path of the supernet every epoch (42 on NAS-Bench-201, 105 in the DARTS space) and compile
specialises on the path (Python control flow), so it would recompile every epoch -- tens of seconds
to minutes for a DARTS network, against NAS-Bench-201 epochs of about 10 s -- and fall back to
eager after its recompile limit. A capture costs two eager warm-up steps and one recorded step,
so it pays back within the epoch it serves.

Rules the captured step keeps (``SupernetEvaluator`` and ``train.retrain`` follow them):

- fixed shapes: a batch of another shape (an epoch's last, partial batch) runs eagerly;
- no host synchronisation inside (no ``.item()``); ``clip_grad_norm_`` is capturable, float16
  loss scaling is not (its overflow check reads the device), so it is refused;
- Python floats (learning rate, drop-path probability) are baked into the graph, so a graph
  serves one epoch and the next epoch captures afresh; the optimiser must be one without step
  counters (SGD) or ``capturable=True``;
- optimiser state (momentum buffers) must exist before capture: the warm-up steps create it;
- autocast's weight-cast cache must be off (``cache_enabled=False``).

Off CUDA, :class:`CapturedStep` runs the step eagerly through the same static input and output
buffers: the same numbers as the plain loop and no gain (the switch is off by default), but the
CPU tests cover all of it except the graph itself.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

StepFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]]
WARMUP_STEPS = 2  # eager steps before capture: optimiser state and cuDNN autotuning settle


class _CudaGraph:
    """``step`` recorded once on the static inputs (nothing runs until ``replay``)."""

    def __init__(self, step: StepFn, inputs: tuple[torch.Tensor, torch.Tensor]) -> None:
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = tuple(step(*inputs))

    def replay(self) -> None:
        self.graph.replay()


class _Rerun:
    """Stand-in for a graph off CUDA: reruns ``step`` and overwrites the same static outputs."""

    def __init__(self, step: StepFn, inputs: tuple[torch.Tensor, torch.Tensor]) -> None:
        self.step, self.inputs = step, inputs
        self.outputs: tuple[torch.Tensor, ...] = ()

    def replay(self) -> None:
        fresh = self.step(*self.inputs)
        if not self.outputs:
            self.outputs = tuple(torch.empty_like(t) for t in fresh)
        for static, value in zip(self.outputs, fresh, strict=True):
            static.copy_(value)


class CapturedStep:
    """``step(x, y) -> outputs`` replayed from a graph captured after ``warmup`` eager calls.

    The returned tensors are static: the next call overwrites them, so read (or accumulate on
    the device) before calling again. One instance serves one fixed architecture for one epoch.
    """

    def __init__(self, step: StepFn, device: torch.device, warmup: int = WARMUP_STEPS) -> None:
        if warmup < 1:
            raise ValueError("at least one eager step must create the optimiser state first")
        self.step, self.device, self.warmup = step, device, warmup
        self.eager_calls = 0
        self.replays = 0
        self.inputs: tuple[torch.Tensor, torch.Tensor] | None = None
        self.graph: _CudaGraph | _Rerun | None = None
        self.side = torch.cuda.Stream(device) if device.type == "cuda" else None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.inputs is None and self.eager_calls >= self.warmup:
            self.inputs = (x.clone(), y.clone())  # clone keeps x's memory format
            runner = _CudaGraph if self.device.type == "cuda" else _Rerun
            self.graph = runner(self.step, self.inputs)
        if self.graph is None or self.inputs is None or not _fits(self.inputs, x, y):
            self.eager_calls += 1
            return self._eager(x, y)
        self.inputs[0].copy_(x)
        self.inputs[1].copy_(y)
        self.graph.replay()
        self.replays += 1
        return self.graph.outputs

    def _eager(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Warm-up runs on a side stream, as capture requires; other eager steps run in place."""
        if self.side is None or self.graph is not None:
            return self.step(x, y)
        main = torch.cuda.current_stream(self.device)
        self.side.wait_stream(main)
        with torch.cuda.stream(self.side):
            outputs = self.step(x, y)
        main.wait_stream(self.side)
        return outputs


def _fits(inputs: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> bool:
    return inputs[0].shape == x.shape and inputs[1].shape == y.shape
