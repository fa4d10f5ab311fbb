"""DARTS (Liu et al., ICLR 2019) as engine hooks: softmax-relaxed ops, alternating alpha/w steps.

Every batch, the evaluator first calls the plan's ``before_weight_step``. That hook takes one Adam
step on the architecture parameters alpha (E x K), using a validation batch. First order uses the
gradient of L_val(w, alpha). Second order uses the gradient of the one-step-unrolled L_val(w',
alpha), with the Hessian-vector product taken by central differences as in DARTS. Then the
evaluator trains the weights along ``softmax(alpha)``, held fixed. The per-batch loop stays the
engine's; this module only supplies the hooks and the alpha-gradient math.

The alpha-gradient forwards run through ``torch.func.functional_call`` on parameter dicts, so the
model is never copied and its weights are never written. They run in the model's current mode: the
evaluator trains in train mode, so BN uses batch statistics, as in DARTS. Unlike DARTS, these
forwards work on copies of the BN buffers, so the architecture step leaves the running statistics
alone as well. Those statistics are only used when the argmax path is validated in eval mode.

Final architecture: on NAS-Bench-201 (and any one-op-per-edge space), the argmax over all ops per
edge, 'none' included. NAS-Bench-201's DARTS baseline reads it off the same way, which is why DARTS
collapses to skip/none there. In the DARTS space, the result is the DARTS genotype (two strongest
non-'none' inputs per node, :func:`~ddpnas.spaces.darts.genotype.derive_genotype`). Its arch form
runs the strongest non-'none' op on each of the 8 kept edges per cell and 'none' on the other 6, so
arch and genotype describe the same cells. The arch validated each epoch is this same derived arch.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from torch.func import functional_call

from ddpnas.config.options import Number, Options
from ddpnas.registry import register_strategy
from ddpnas.spaces.base import Arch, SearchSpace
from ddpnas.spaces.darts.genotype import Genotype
from ddpnas.spaces.darts.ops import CELL_EDGES, EDGES, NODE_INPUTS, OPS
from ddpnas.spaces.darts.space import DartsSpace
from ddpnas.strategies.base import (
    Batch,
    Decision,
    EpochPlan,
    StepContext,
    Strategy,
    SupernetPath,
)

Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ALPHA_INIT_SCALE = 1e-3  # DARTS initialises alpha as 1e-3 * N(0, 1)
ARCH_BETAS = (0.5, 0.999)  # DARTS's Adam betas for alpha


def _grads(loss: torch.Tensor, inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """d loss / d inputs; an input the loss does not reach (an op off every path) gets zeros."""
    return torch.autograd.grad(loss, list(inputs), allow_unused=True, materialize_grads=True)


def _loss(
    model: nn.Module,
    weights: dict[str, torch.Tensor],
    alpha: torch.Tensor,
    batch: Batch,
    criterion: Criterion,
) -> torch.Tensor:
    """L(w, alpha) on a batch, with ``weights`` in place of the model's parameters.

    BN buffers are passed as fresh copies, so a train-mode forward cannot update the model's
    running statistics.
    """
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    x, y = batch
    logits = functional_call(model, (weights, buffers), (x, F.softmax(alpha, dim=-1)))
    return criterion(logits, y)


def first_order_grad(
    model: nn.Module, alpha: torch.Tensor, batch: Batch, criterion: Criterion = F.cross_entropy
) -> torch.Tensor:
    """dL_val(w, alpha)/dalpha at the current weights (DARTS's first-order approximation)."""
    a = alpha.detach().requires_grad_()
    weights = {name: p.detach() for name, p in model.named_parameters()}
    return _grads(_loss(model, weights, a, batch, criterion), [a])[0]


def unrolled_grad(
    model: nn.Module,
    alpha: torch.Tensor,
    train_batch: Batch,
    valid_batch: Batch,
    optimizer: torch.optim.Optimizer,
    criterion: Criterion = F.cross_entropy,
    eps: float = 0.01,
) -> torch.Tensor:
    """DARTS's second-order alpha gradient: d/dalpha of L_val(w', alpha), with w' one SGD step on.

    The unrolled step is ``w' = w - xi * (mu * buf + dL_train/dw + wd * w)``. Here xi, mu and wd
    come from the first param group of the weight ``optimizer``, and buf is each weight's momentum
    buffer, zero before the first step. Nesterov is ignored, as in DARTS. The gradient is
    ``dL_val(w', alpha)/dalpha - xi * H``. H is the Hessian-vector product
    ``d2L_train/(dalpha dw) . dw'``, with ``dw' = dL_val(w', alpha)/dw'``. H is estimated as
    ``(dL_train(w + R dw')/dalpha - dL_train(w - R dw')/dalpha) / 2R``, with
    ``R = eps / ||dw'||``.
    """
    group = optimizer.param_groups[0]
    xi = float(group["lr"])
    mu = float(group.get("momentum", 0.0))
    wd = float(group.get("weight_decay", 0.0))
    params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    w = {name: p.detach().requires_grad_() for name, p in params}
    fixed_alpha = alpha.detach()
    train_grads = _grads(_loss(model, w, fixed_alpha, train_batch, criterion), list(w.values()))
    with torch.no_grad():
        unrolled = {}
        for (name, p), g in zip(params, train_grads, strict=True):
            step = g + wd * w[name]
            buf = optimizer.state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                step = step + mu * buf
            unrolled[name] = (w[name] - xi * step).requires_grad_()
    a = alpha.detach().requires_grad_()
    d_alpha, *d_unrolled = _grads(
        _loss(model, unrolled, a, valid_batch, criterion), [a, *unrolled.values()]
    )
    del unrolled
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(d) for d in d_unrolled]))
    # A zero dw' makes H zero; the floor keeps R finite so the difference below is exactly 0.
    r = eps / norm.clamp_min(torch.finfo(norm.dtype).tiny)

    def train_alpha_grad(sign: float) -> torch.Tensor:
        with torch.no_grad():
            shifted = {
                name: w[name].detach() + sign * r * d
                for (name, _), d in zip(params, d_unrolled, strict=True)
            }
        a = alpha.detach().requires_grad_()
        return _grads(_loss(model, shifted, a, train_batch, criterion), [a])[0]

    hessian_vector = (train_alpha_grad(1.0) - train_alpha_grad(-1.0)) / (2 * r)
    return d_alpha - xi * hessian_vector


def genotype_arch(genotype: Genotype) -> Arch:
    """The 28-op arch of a genotype: each kept edge runs its op, every other edge is 'none'."""
    arch = [0] * len(EDGES)
    for c, pairs in enumerate((genotype.normal, genotype.reduce)):
        for p, (op, source) in enumerate(pairs):
            edge = next(e for e, j in NODE_INPUTS[p // 2] if j == source)
            arch[c * CELL_EDGES + edge] = OPS.index(op)
    return tuple(arch)


class _ArchStepPlan:
    """One DARTS training epoch: an alpha step before each weight step, weights along softmax."""

    def __init__(self, strategy: DARTS) -> None:
        self.strategy = strategy

    def path(self) -> SupernetPath:
        return F.softmax(self.strategy.alpha.detach(), dim=-1)

    def before_weight_step(self, ctx: StepContext) -> None:
        self.strategy.arch_step(ctx)


class DARTSOptions(Options):
    """DARTS's architecture optimiser (Adam on alpha) and schedule."""

    order: Literal[1, 2] = Field(1, description="1: first-order alpha gradient; 2: unrolled.")
    epochs: int = Field(50, ge=1, description="Search epochs.")
    arch_lr: Number = Field(0.0003, gt=0, description="Adam learning rate of alpha.")
    arch_weight_decay: Number = Field(0.001, ge=0, description="Adam weight decay of alpha.")
    unrolled_eps: Number = Field(
        0.01,
        gt=0,
        description="Finite-difference scale of the second-order Hessian-vector product.",
    )


@register_strategy
class DARTS(Strategy):
    """Differentiable architecture search with first- or second-order alpha steps (Adam on alpha).

    Each epoch trains along the current relaxation, then validates the current derived arch (what
    :meth:`result` would return when the epoch starts, since an EpochPlan fixes its list up
    front). The search stops after ``epochs`` epochs.
    """

    name = "darts"
    Options = DARTSOptions
    options: DARTSOptions
    modes = ("weight_sharing",)
    logs_theta = True
    theta_label = "softmax(alpha)"
    mixed_ops = True

    def __init__(self, space: SearchSpace, *, mode: str = "weight_sharing", **options: Any) -> None:
        super().__init__(space, mode, **options)
        opts = self.options
        self.order = opts.order
        self.epochs = opts.epochs
        self.arch_lr = float(opts.arch_lr)
        self.arch_weight_decay = float(opts.arch_weight_decay)
        self.unrolled_eps = float(opts.unrolled_eps)
        self.epoch = 0
        self.last_valid_acc: float | None = None
        # Drawn in the first propose, from the engine's seeded rng.
        self._alpha: torch.Tensor | None = None
        self._arch_optimizer: torch.optim.Adam | None = None

    # ------------------------------------------------------------------------- alpha and its steps

    def _alpha_and_optimizer(self) -> tuple[torch.Tensor, torch.optim.Adam]:
        if self._alpha is None or self._arch_optimizer is None:
            raise RuntimeError("alpha is drawn by the first propose(); no search has started")
        return self._alpha, self._arch_optimizer

    @property
    def alpha(self) -> torch.Tensor:
        """The E x K architecture parameters (a leaf tensor that Adam updates in place)."""
        return self._alpha_and_optimizer()[0]

    def _set_alpha(self, alpha: torch.Tensor, optimizer_state: dict[str, Any] | None) -> None:
        self._alpha = alpha.detach().clone().requires_grad_()
        self._arch_optimizer = torch.optim.Adam(
            [self._alpha],
            lr=self.arch_lr,
            betas=ARCH_BETAS,
            weight_decay=self.arch_weight_decay,
        )
        if optimizer_state is not None:
            self._arch_optimizer.load_state_dict(optimizer_state)

    def arch_step(self, ctx: StepContext) -> None:
        """One Adam step on alpha from a validation batch (DARTS's architecture step)."""
        alpha, optimizer = self._alpha_and_optimizer()
        device = ctx.train_batch[0].device
        if alpha.device != device:  # once per run (and resume): move alpha and its Adam state
            self._set_alpha(alpha.to(device), optimizer.state_dict())
            alpha, optimizer = self._alpha_and_optimizer()
        valid = ctx.valid_batch()
        if self.order == 1:
            grad = first_order_grad(ctx.model, alpha, valid, ctx.criterion)
        else:
            grad = unrolled_grad(
                ctx.model,
                alpha,
                ctx.train_batch,
                valid,
                ctx.optimizer,
                ctx.criterion,
                self.unrolled_eps,
            )
        alpha.grad = grad
        optimizer.step()
        alpha.grad = None

    def theta(self) -> np.ndarray:
        """softmax(alpha) per edge, float64 (E x K)."""
        return F.softmax(self.alpha.detach().double(), dim=-1).cpu().numpy()

    def genotype(self) -> Genotype:
        """The DARTS genotype of softmax(alpha): two strongest non-'none' inputs per node."""
        if not isinstance(self.space, DartsSpace):
            raise TypeError(f"a genotype exists only in the DARTS space, not {self.space.name}")
        theta = self.theta()
        return self.space.derive_genotype(theta, np.ones_like(theta, dtype=bool))

    # ------------------------------------------------------------------------------ engine hooks

    def propose(self, rng: np.random.Generator) -> EpochPlan:
        """Train along softmax(alpha) with alpha steps in between; validate the derived arch."""
        if self.done():
            raise RuntimeError("search is finished; no epochs left")
        if self._alpha is None:
            gen = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
            shape = (self.space.num_edges, self.space.num_ops)
            self._set_alpha(ALPHA_INIT_SCALE * torch.randn(shape, generator=gen), None)
        return EpochPlan(train=_ArchStepPlan(self), evaluate=[self.result()])

    def observe(
        self, plan: EpochPlan, train_metrics: dict[str, float], results: list[dict[str, float]]
    ) -> None:
        """Nothing to learn from validation (alpha learns per batch); keep it for the snapshot."""
        self.last_valid_acc = float(results[0]["valid_acc"])

    def step(self) -> dict[str, Any]:
        self.epoch += 1
        return {}

    def done(self) -> bool:
        return self.epoch >= self.epochs

    def result(self) -> Arch:
        """Argmax arch: per edge over all ops; in the DARTS space the genotype's arch."""
        if isinstance(self.space, DartsSpace):
            return genotype_arch(self.genotype())
        return tuple(int(k) for k in self.theta().argmax(axis=1))

    def preferences(self) -> tuple[np.ndarray, np.ndarray]:
        theta = self.theta()
        return theta, np.ones_like(theta, dtype=bool)

    def decision(self) -> Decision:
        theta = self.theta()
        return Decision(theta, np.ones_like(theta, dtype=bool), "softmax(alpha)")

    def planned_epochs(self) -> int:
        return self.epochs

    def speed_key(self) -> str:
        """The two orders' steps cost differently."""
        return f"darts{self.order}"

    def snapshot(self) -> dict[str, Any]:
        return {"theta": np.round(self.theta(), 6).tolist(), "valid_acc": self.last_valid_acc}

    def state_dict(self) -> dict[str, Any]:
        alpha = None if self._alpha is None else self._alpha.detach().cpu().clone()
        optimizer = None
        if self._arch_optimizer is not None:  # a copy, not a view of the live Adam state
            optimizer = copy.deepcopy(self._arch_optimizer.state_dict())
        return {"alpha": alpha, "arch_optimizer": optimizer, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        if state["alpha"] is None:
            self._alpha = self._arch_optimizer = None
        else:
            self._set_alpha(state["alpha"], state["arch_optimizer"])
