"""DARTS baseline: alpha gradients against finite differences, a toy supernet whose right op per
edge is known by construction, resume after a crash, and how the final arch is derived."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from toys import ToySpace

from baselines.darts import DARTS, first_order_grad, genotype_arch, unrolled_grad
from ddpnas.data.cifar10 import ImageSet
from ddpnas.engine.evaluators import SupernetEvaluator
from ddpnas.engine.loop import SearchOutcome, run_search
from ddpnas.spaces.darts.genotype import derive_genotype
from ddpnas.spaces.darts.ops import NODE_INPUTS, OPS
from ddpnas.spaces.darts.space import DartsSpace
from ddpnas.spaces.nb201 import NB201Space
from ddpnas.strategies.base import Batch, SupernetPath

# ------------------------------------------------------------------- a toy with a known answer


class ChannelSupernet(nn.Module):
    """E edges x 4 ops (none + three channel readers) whose right op per edge is known.

    Op k >= 1 on edge e reads channel (e + k - 1) % 3, as its mean over the central 8 x 8 pixels
    (untouched by the evaluator's pad-4 crop and flip of these 16 x 16 constant-colour images),
    times a learned scale; the edges' sum is a two-class logit. Labels depend on channel 0 alone,
    so on edge e only op (-e) % 3 + 1 is informative, the others add noise, 'none' adds nothing.
    ``unreached`` is a parameter no forward uses, as ops off every path would be.
    """

    def __init__(self, num_edges: int = 3) -> None:
        super().__init__()
        self.num_edges = num_edges
        self.scale = nn.Parameter(torch.ones(num_edges, 4))
        self.bias = nn.Parameter(torch.zeros(2))
        self.unreached = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, path: SupernetPath) -> torch.Tensor:
        channels = x[:, :, 4:12, 4:12].mean(dim=(2, 3))
        readers = torch.stack(
            [channels[:, [(e + k) % 3 for k in range(3)]] for e in range(self.num_edges)], dim=1
        )
        ops = F.pad(readers, (1, 0)) * self.scale  # N x E x 4; 'none' (op 0) outputs zero
        if isinstance(path, torch.Tensor):
            s = (ops * path).sum(dim=(1, 2))
        else:
            s = ops[:, torch.arange(self.num_edges), list(path)].sum(dim=1)
        return torch.stack([-s, s], dim=1) + self.bias


# ------------------------------------------------------------------ gradients vs finite differences


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """These tensors are tiny: on a shared 2-core CPU, OpenMP threads made them 10-40x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


Problem = tuple[nn.Module, torch.Tensor, Batch, Batch]


def _tiny_nb201(seed: int) -> Problem:
    """A float64 NB201 supernet (C=2, N=1) in train mode, an alpha and two small batches.

    In train mode every BN normalises with batch statistics, so the loss is a deterministic,
    (piecewise, through ReLUs) smooth function of alpha and w; running statistics are never read.
    """
    torch.manual_seed(seed)
    model = NB201Space().supernet(C=2, N=1, num_classes=3).double().train()
    gen = torch.Generator().manual_seed(seed)

    def batch() -> Batch:
        x = torch.randn(4, 3, 8, 8, generator=gen, dtype=torch.float64)
        return x, torch.randint(0, 3, (4,), generator=gen)

    return model, torch.randn(6, 5, generator=gen, dtype=torch.float64), batch(), batch()


def _tiny_channel(seed: int) -> Problem:
    """The toy supernet below in float64 with random scales: smooth everywhere (no ReLU)."""
    model = ChannelSupernet().double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.scale.copy_(torch.randn(3, 4, generator=gen, dtype=torch.float64))

    def batch() -> Batch:
        x = torch.randn(8, 3, 16, 16, generator=gen, dtype=torch.float64)
        return x, torch.randint(0, 2, (8,), generator=gen)

    return model, torch.randn(3, 4, generator=gen, dtype=torch.float64), batch(), batch()


def _central_difference(
    f: Callable[[torch.Tensor], torch.Tensor], alpha: torch.Tensor, h: float = 1e-6
) -> torch.Tensor:
    grad = torch.zeros_like(alpha)
    for i in range(alpha.numel()):
        step = torch.zeros_like(alpha)
        step.view(-1)[i] = h
        grad.view(-1)[i] = (f(alpha + step) - f(alpha - step)) / (2 * h)
    return grad


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_unchanged(model: nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the alpha step changed the model"


@pytest.mark.parametrize("problem", [_tiny_nb201, _tiny_channel])
def test_first_order_gradient_matches_finite_differences(
    problem: Callable[[int], Problem],
) -> None:
    model, alpha, _, valid = problem(0)

    def val_loss(a: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return F.cross_entropy(model(valid[0], F.softmax(a, dim=-1)), valid[1])

    before = _state(model)
    grad = first_order_grad(model, alpha, valid)
    _assert_unchanged(model, before)  # weights and BN running statistics alike
    assert grad.abs().max() > 1e-3
    torch.testing.assert_close(grad, _central_difference(val_loss, alpha), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("momentum", [False, True])
@pytest.mark.parametrize(
    ("problem", "eps", "rtol"), [(_tiny_nb201, 1e-5, 1e-6), (_tiny_channel, 0.01, 1e-4)]
)
def test_second_order_gradient_matches_the_unrolled_objective(
    problem: Callable[[int], Problem], eps: float, rtol: float, momentum: bool
) -> None:
    """d/dalpha L_val(w - xi (mu buf + dL_train/dw(w, alpha) + wd w), alpha) by finite differences.

    What is left to approximate is the finite-difference Hessian-vector product, exact to
    O(eps**2) where the loss is smooth. Through ReLUs that only holds while no unit flips sign
    within the +-eps weight shift; on a net this tiny DARTS's eps = 0.01 flips some (the error
    exceeds the gradient), so the NB201 net is checked at eps = 1e-5, and DARTS's eps on the
    smooth toy.
    """
    model, alpha, train, valid = problem(1)
    xi = 0.5
    if momentum:  # SGD state as mid-search: momentum buffers after one step, weight decay on
        optimizer = torch.optim.SGD(model.parameters(), lr=xi, momentum=0.9, weight_decay=0.05)
        F.cross_entropy(model(train[0], F.softmax(-alpha, dim=-1)), train[1]).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=xi)
    group = optimizer.param_groups[0]
    params = dict(model.named_parameters())
    buffers = {
        n: optimizer.state[p].get("momentum_buffer", torch.zeros_like(p)) for n, p in params.items()
    }

    def unrolled_val_loss(a: torch.Tensor) -> torch.Tensor:
        weights = F.softmax(a, dim=-1)
        loss = F.cross_entropy(functional_call(model, params, (train[0], weights)), train[1])
        grads = torch.autograd.grad(loss, list(params.values()), materialize_grads=True)
        with torch.no_grad():
            unrolled = {
                n: p - xi * (group["momentum"] * buffers[n] + g + group["weight_decay"] * p)
                for (n, p), g in zip(params.items(), grads, strict=True)
            }
            return F.cross_entropy(functional_call(model, unrolled, (valid[0], weights)), valid[1])

    before = _state(model)
    grad = unrolled_grad(model, alpha, train, valid, optimizer, eps=eps)
    _assert_unchanged(model, before)
    expected = _central_difference(unrolled_val_loss, alpha)
    scale = expected.abs().max().item()
    torch.testing.assert_close(grad, expected, rtol=rtol, atol=rtol * scale)
    # Not vacuous: the second-order term moves the gradient far more than the tolerance.
    assert (first_order_grad(model, alpha, valid) - expected).abs().max() > 100 * rtol * scale


# ------------------------------------------------------------------------ search on the toy


RIGHT_OPS = tuple((-e) % 3 + 1 for e in range(3))  # (1, 3, 2)


def _channel_set(n: int, seed: int) -> ImageSet:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=gen)
    signal = 128 + (2 * labels - 1) * torch.randint(30, 100, (n,), generator=gen)
    noise = torch.randint(28, 228, (n, 2), generator=gen)
    colours = torch.cat([signal[:, None], noise], dim=1).to(torch.uint8)
    images = colours[:, :, None, None].expand(n, 3, 16, 16).contiguous()
    return ImageSet(images, labels, ("low", "high"))


class CrashingEvaluator(SupernetEvaluator):
    """Raises at the start of epoch ``crash_at``, as a killed run would."""

    def __init__(self, *args: Any, crash_at: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.crash_at = crash_at

    def train(self, what: Any, epoch: int, generator: torch.Generator) -> dict[str, float]:
        if epoch == self.crash_at:
            raise KeyboardInterrupt("simulated kill")
        return super().train(what, epoch, generator)


def _toy_search(
    order: int, epochs: int, crash_at: int | None = None, **run: Any
) -> tuple[DARTS, SearchOutcome]:
    strategy = DARTS(ToySpace(3, 4), order=order, epochs=epochs, arch_lr=0.05)
    evaluator = CrashingEvaluator(
        ChannelSupernet(),
        _channel_set(256, 0),
        _channel_set(256, 1),
        epochs=epochs,
        batch_size=32,
        lr=0.05,
        crash_at=crash_at,
    )
    return strategy, run_search(strategy, evaluator, seed=3, **run)


@pytest.mark.parametrize("order", [1, 2])
def test_finds_the_informative_op_on_every_edge(order: int) -> None:
    strategy, outcome = _toy_search(order, epochs=6)
    assert outcome.arch == RIGHT_OPS
    theta = strategy.theta()
    assert (theta[np.arange(3), list(RIGHT_OPS)] > 0.5).all(), theta
    assert outcome.history[-1]["evaluated"][0]["valid_acc"] == 1.0
    assert len(outcome.history) == strategy.planned_epochs() == 6
    np.testing.assert_allclose(outcome.history[-1]["state"]["theta"], theta, atol=1e-6)


def test_resume_after_a_crash_gives_the_uninterrupted_result(tmp_path) -> None:
    reference_strategy, reference = _toy_search(2, epochs=4)
    ckpt = tmp_path / "darts.pt"
    with pytest.raises(KeyboardInterrupt):
        _toy_search(2, epochs=4, crash_at=2, checkpoint=ckpt, fingerprint="a")
    strategy, resumed = _toy_search(2, epochs=4, checkpoint=ckpt, fingerprint="a")
    assert resumed.resumed_from == 2
    assert torch.equal(strategy.alpha, reference_strategy.alpha)
    strip = [
        [{k: v for k, v in h.items() if k != "seconds"} for h in r.history]
        for r in (reference, resumed)
    ]
    assert strip[0] == strip[1]
    assert resumed.arch == reference.arch


def test_alpha_is_drawn_from_the_engine_seed_and_survives_a_state_dict_round_trip() -> None:
    a, b = DARTS(ToySpace(3, 4)), DARTS(ToySpace(3, 4))
    a.propose(np.random.default_rng(5))
    b.propose(np.random.default_rng(5))
    assert torch.equal(a.alpha, b.alpha) and a.alpha.abs().max() < 1e-2
    c = DARTS(ToySpace(3, 4))
    c.load_state_dict(a.state_dict())
    assert torch.equal(c.alpha, a.alpha) and c.epoch == a.epoch
    with pytest.raises(ValueError, match="order"):
        DARTS(ToySpace(3, 4), order=3)


# ------------------------------------------------------------------------------- final arch


def _strategy_with_alpha(space: Any, alpha: torch.Tensor) -> DARTS:
    strategy = DARTS(space)
    strategy.load_state_dict({"alpha": alpha, "arch_optimizer": None, "epoch": 0})
    return strategy


def test_nb201_result_is_the_argmax_over_all_ops_none_included() -> None:
    alpha = torch.zeros(6, 5)
    alpha[np.arange(6), [0, 1, 2, 3, 4, 0]] = 1.0
    strategy = _strategy_with_alpha(NB201Space(), alpha)
    assert strategy.result() == (0, 1, 2, 3, 4, 0)
    plan = strategy.propose(np.random.default_rng(0))
    assert plan.evaluate == [strategy.result()]
    torch.testing.assert_close(plan.train.path(), F.softmax(alpha, dim=-1))
    with pytest.raises(TypeError, match="DARTS space"):
        strategy.genotype()


@pytest.mark.parametrize("none_wins", [False, True])
def test_darts_space_result_and_genotype_agree(none_wins: bool) -> None:
    space = DartsSpace()
    alpha = torch.randn(28, 8, generator=torch.Generator().manual_seed(0))
    if none_wins:  # DARTS's genotype ignores 'none', however strong it is
        alpha[:, 0] = 10.0
    strategy = _strategy_with_alpha(space, alpha)
    genotype, arch = strategy.genotype(), strategy.result()
    theta = F.softmax(alpha.double(), dim=-1).numpy()
    assert genotype == derive_genotype(theta, np.ones((28, 8), dtype=bool))
    assert genotype.to_json() == space.derived(arch, *strategy.preferences())["genotype"]
    assert arch == genotype_arch(genotype)
    assert strategy.propose(np.random.default_rng(0)).evaluate == [arch]
    for c, pairs in enumerate((genotype.normal, genotype.reduce)):
        assert all(op != "none" for op, _ in pairs)
        for node, inputs in enumerate(NODE_INPUTS):
            kept = [(OPS[arch[c * 14 + e]], j) for e, j in inputs if arch[c * 14 + e] != 0]
            assert len(kept) == 2
            assert sorted(kept, key=lambda t: t[1]) == sorted(
                pairs[2 * node : 2 * node + 2], key=lambda t: t[1]
            )
            for e, _ in inputs:  # a kept edge runs its strongest non-'none' op
                if arch[c * 14 + e]:
                    assert arch[c * 14 + e] == 1 + int(theta[c * 14 + e, 1:].argmax())
