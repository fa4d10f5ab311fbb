"""DARTS space: arch strings, the published parameter counts, the single-path and mixed supernet
forwards against each other and standalone nets, and the retraining network (genotypes:
test_darts_genotype.py)."""

from __future__ import annotations

import random

import pytest
import torch

from ddpnas.errors import ArchError
from ddpnas.spaces import get_space
from ddpnas.spaces.complexity import count_flops, count_params
from ddpnas.spaces.darts.genotype import DARTS_V1, DARTS_V2
from ddpnas.spaces.darts.ops import EDGES, OPS, FactorizedReduce
from ddpnas.spaces.darts.space import DartsSpace

SPACE = DartsSpace()
E, K = len(EDGES), len(OPS)
NONE_NODE = (0, 0) + (4,) * 12  # normal node 2 is fed only by 'none' edges
# Small nets keep forward tests fast; 5 layers hold both reduction cells (layers 1 and 3).
SMALL = {"C": 4, "layers": 5}
ARCHS = [
    tuple(range(1, 8)) * 4,
    tuple((e % 8) for e in range(E)),
    NONE_NODE * 2,
    (0,) * 9 + (3, 0, 6, 0, 2) + (5,) * 5 + (0,) * 9,  # node 5 normal and nodes 2..4 reduce: zero
    (0,) * E,
]
VALID = SPACE.arch_to_str(ARCHS[1])


def _random_archs(n: int, seed: int = 0) -> list[tuple[int, ...]]:
    rng = random.Random(seed)
    return [tuple(rng.randrange(K) for _ in range(E)) for _ in range(n)]


def test_space_metadata() -> None:
    space = get_space("darts")
    assert space.name == "darts"
    assert space.ops == (
        "none",
        "max_pool_3x3",
        "avg_pool_3x3",
        "skip_connect",
        "sep_conv_3x3",
        "sep_conv_5x5",
        "dil_conv_3x3",
        "dil_conv_5x5",
    )
    assert (space.num_edges, space.num_ops) == (28, 8)
    assert space.edges[:6] == (
        "normal:2<-0",
        "normal:2<-1",
        "normal:3<-0",
        "normal:3<-1",
        "normal:3<-2",
        "normal:4<-0",
    )
    assert space.edges[13] == "normal:5<-4"
    assert space.edges[14] == "reduce:2<-0"
    assert space.edges[27] == "reduce:5<-4"


def test_arch_string_form() -> None:
    text = SPACE.arch_to_str((4,) * 14 + (1,) * 14)
    normal, reduce = text.split(";")
    assert normal == (
        "normal=|sep_conv_3x3~0|sep_conv_3x3~1|+|sep_conv_3x3~0|sep_conv_3x3~1|sep_conv_3x3~2|"
        "+|sep_conv_3x3~0|sep_conv_3x3~1|sep_conv_3x3~2|sep_conv_3x3~3|"
        "+|sep_conv_3x3~0|sep_conv_3x3~1|sep_conv_3x3~2|sep_conv_3x3~3|sep_conv_3x3~4|"
    )
    assert reduce.startswith("reduce=|max_pool_3x3~0|max_pool_3x3~1|+|")


def test_arch_string_round_trip() -> None:
    for arch in _random_archs(300) + ARCHS:
        text = SPACE.arch_to_str(arch)
        assert SPACE.str_to_arch(text) == arch
        assert SPACE.str_to_arch(f"  {text}\n") == arch


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        (VALID.replace("max_pool_3x3~1", "conv_7x1_1x7~1", 1), "conv_7x1_1x7"),
        (VALID.replace("none~0", "none0", 1), "none0"),
        (VALID.replace("none~0", "none~x", 1), "none~x"),
        (VALID.replace("max_pool_3x3~1", "max_pool_3x3~2", 1), "max_pool_3x3~2"),
        (VALID.replace("reduce=", "reduction=", 1), "reduction="),
        (VALID.replace(";", "+", 1), "got 1"),
        (VALID + ";" + VALID.split(";")[1], "got 3"),
        (VALID.replace("+", "", 1), "got 3"),
        (VALID.replace("|max_pool_3x3~1|", "|", 1), "got 1"),
        (VALID.replace("+|", "+", 1), "must be wrapped"),
        ("", "got 1"),
    ],
)
def test_bad_arch_strings_name_the_bad_token(text: str, bad: str) -> None:
    with pytest.raises(ArchError) as info:
        SPACE.str_to_arch(text)
    message = str(info.value)
    assert bad in message
    assert "normal=|op~0|op~1|+|" in message  # shows the expected form


@pytest.mark.parametrize("arch", [(8,) + (0,) * 27, (0,) * 27, (-1,) + (0,) * 27])
def test_bad_vectors_rejected(arch: tuple[int, ...]) -> None:
    with pytest.raises(ArchError):
        SPACE.arch_to_str(arch)
    with pytest.raises(ArchError):
        SPACE.supernet(C=2, layers=1)(torch.zeros(1, 3, 8, 8), arch)


# --------------------------------------------------------------------------------------- costs


def test_published_parameter_counts() -> None:
    v2 = SPACE.cost(DARTS_V2)
    assert v2["params"] == pytest.approx(3.3, rel=0.03)  # DARTS paper: 3.3 M
    assert v2["params"] == pytest.approx(3.349342, abs=1e-6)  # DARTS's own count, no aux head
    assert v2["flops"] == pytest.approx(528, rel=0.01)  # the widely quoted 528 MFLOPs
    with_aux = count_params(SPACE.eval_network(DARTS_V2))
    assert with_aux > v2["params"] + 0.4
    assert SPACE.cost(DARTS_V1)["params"] == pytest.approx(3.169414, abs=1e-6)


def test_supernet_flops_are_those_of_the_path() -> None:
    supernet = SPACE.supernet(**SMALL).train()
    for arch in ARCHS[1:3]:
        net = SPACE.standalone(arch, **SMALL)
        assert count_flops(supernet, (1, 3, 16, 16), arch) == count_flops(net, (1, 3, 16, 16))
        assert SPACE.cost(arch, **SMALL, input_size=16)["flops"] == count_flops(net, (1, 3, 16, 16))
    assert supernet.training


# ------------------------------------------------------------------------------------ supernet


def _randomise(model: torch.nn.Module) -> None:
    """Non-trivial weights and BN statistics, so a wrong copy cannot pass by chance."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.normal_(0, 0.1)
            elif name.endswith("running_var"):
                b.uniform_(0.5, 1.5)


@pytest.mark.parametrize(("affine", "track"), [(False, False), (True, True)])
def test_single_path_matches_standalone(affine: bool, track: bool) -> None:
    torch.manual_seed(0)
    supernet = SPACE.supernet(**SMALL, affine=affine, track_running_stats=track)
    _randomise(supernet)
    x = torch.randn(2, 3, 16, 16)
    for arch in ARCHS:
        net = SPACE.standalone(arch, **SMALL, affine=affine, track_running_stats=track)
        net.load_from_supernet(supernet)
        for training in (False, True):  # eval first: train mode moves the running stats
            supernet.train(training)
            net.train(training)
            torch.testing.assert_close(supernet(x, arch), net(x), rtol=0, atol=0)


def test_standalone_holds_only_the_chosen_ops() -> None:
    arch = ARCHS[1]
    net = SPACE.standalone(arch, **SMALL)
    for cell in net.cells:
        ops = arch[14:] if cell.reduction else arch[:14]
        assert [list(edge.keys()) for edge in cell.edges] == [
            [] if k == 0 else [OPS[k]] for k in ops
        ]
    assert set(net.state_dict()) < set(SPACE.supernet(**SMALL).state_dict())
    with pytest.raises(ValueError, match="does not match"):
        SPACE.standalone(arch, **SMALL, affine=True).load_from_supernet(SPACE.supernet(**SMALL))


def test_unsampled_ops_get_no_gradient() -> None:
    torch.manual_seed(1)
    supernet = SPACE.supernet(**SMALL, affine=True)
    arch = ARCHS[0]
    on_path = set(dict(SPACE.standalone(arch, **SMALL, affine=True).named_parameters()))
    supernet(torch.randn(2, 3, 16, 16), arch).sum().backward()
    for name, p in supernet.named_parameters():
        assert (p.grad is not None) == (name in on_path), name
    assert any(".dil_conv_5x5." in name for name in on_path)


def _one_hot(arch: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    weights = torch.nn.functional.one_hot(torch.tensor(arch), K).float()
    return weights[:14], weights[14:]


@pytest.mark.parametrize(("affine", "track"), [(False, False), (True, True)])
def test_mixed_forward_with_one_hot_weights_is_the_single_path(affine: bool, track: bool) -> None:
    """Exactly equal: 0 * op(x) adds exact zeros and 1 * op(x) is op(x). In train mode the
    BNs normalise by batch statistics, which are the same per op in both forwards; only the running
    statistics then differ (mixed updates every op's), so eval mode is compared first."""
    torch.manual_seed(2)
    supernet = SPACE.supernet(**SMALL, affine=affine, track_running_stats=track)
    _randomise(supernet)
    x = torch.randn(2, 3, 16, 16)
    for arch in (ARCHS[1], ARCHS[3], ARCHS[4]):  # every op, 'none' edges, zero nodes, all 'none'
        for training in (False, True):
            supernet.train(training)
            torch.testing.assert_close(
                supernet.forward_mixed(x, *_one_hot(arch)), supernet(x, arch), rtol=0, atol=0
            )


def test_gradients_reach_the_mixed_weights() -> None:
    torch.manual_seed(3)
    supernet = SPACE.supernet(**SMALL)
    alphas = [torch.randn(14, K).mul(1e-3).requires_grad_() for _ in range(2)]
    out = supernet.forward_mixed(torch.randn(2, 3, 16, 16), *(a.softmax(-1) for a in alphas))
    torch.nn.functional.cross_entropy(out, torch.tensor([1, 7])).backward()
    for alpha in alphas:
        assert alpha.grad is not None
        assert torch.isfinite(alpha.grad).all()
        assert (alpha.grad.abs().sum(-1) > 0).all()  # every edge
    with pytest.raises(ValueError, match="14 x 8"):
        supernet.forward_mixed(torch.zeros(1, 3, 8, 8), torch.zeros(14, 7), torch.zeros(14, 8))


def test_factorized_reduce_handles_odd_sizes() -> None:
    op = FactorizedReduce(4, 6, affine=False, track=False)
    assert op(torch.randn(2, 4, 7, 9)).shape == (2, 6, 4, 5)
    assert op(torch.randn(2, 4, 8, 8)).shape == (2, 6, 4, 4)


# ----------------------------------------------------------------------------- eval network


@pytest.mark.parametrize("auxiliary", [True, False])
def test_eval_network_forward_backward(auxiliary: bool) -> None:
    torch.manual_seed(4)
    net = SPACE.eval_network(DARTS_V2, C=8, layers=5, auxiliary=auxiliary)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    net.train()
    net.drop_path_prob = 0.3
    logits, aux = net(x)
    assert logits.shape == (4, 10)
    loss = torch.nn.functional.cross_entropy(logits, y)
    if auxiliary:
        assert aux is not None and aux.shape == (4, 10)
        loss = loss + 0.4 * torch.nn.functional.cross_entropy(aux, y)
    else:
        assert aux is None
        assert not any("auxiliary" in name for name, _ in net.named_parameters())
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())
    net.eval()
    logits, aux = net(x)
    assert logits.shape == (4, 10) and aux is None


def test_drop_path_only_in_training() -> None:
    net = SPACE.eval_network(DARTS_V1, C=8, layers=5, auxiliary=False)
    x = torch.randn(4, 3, 32, 32)
    net.train()
    assert torch.equal(net(x)[0], net(x)[0])  # drop_path_prob is 0 by default
    net.drop_path_prob = 0.5
    torch.manual_seed(0)
    first = net(x)[0]
    torch.manual_seed(1)
    assert not torch.equal(first, net(x)[0])
    net.eval()
    assert torch.equal(net(x)[0], net(x)[0])
