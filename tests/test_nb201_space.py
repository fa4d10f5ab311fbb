"""NB201 space: strings and indices against the official table, costs against the official cost
info, and the single-path supernet against standalone networks."""

from __future__ import annotations

import csv
import gzip
import itertools
from pathlib import Path

import pytest
import torch

from ddpnas.errors import ArchError
from ddpnas.spaces import get_space
from ddpnas.spaces.complexity import count_flops, count_params
from ddpnas.spaces.nb201 import OPS, NB201Network, NB201Space, NB201Supernet

DATA = Path(__file__).resolve().parents[1].parent / "shared/data/nasbench201"
TABLE = DATA / "nb201_table.csv.gz"
SPACE = NB201Space()
VALID = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|"
ALL_NONE = (0,) * 6
# Small cells keep forward tests fast; archs cover every op, 'none' edges and zero nodes.
ARCHS = [(3, 3, 4, 0, 3, 4), (1, 2, 0, 0, 0, 3), (0, 0, 0, 2, 4, 1), (4, 1, 3, 2, 0, 0), ALL_NONE]


@pytest.fixture(scope="module")
def table_archs() -> list[str]:
    """The benchmark's arch strings in official index order."""
    if not TABLE.exists():
        pytest.skip(f"NAS-Bench-201 table not found at {TABLE}")
    with gzip.open(TABLE, "rt", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["index"]) for r in rows] == list(range(len(rows)))
    return [r["arch"] for r in rows]


def test_space_metadata() -> None:
    assert get_space("nb201").name == "nb201"
    assert SPACE.ops == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    assert SPACE.edges == ("1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2")
    assert SPACE.arch_to_str((1, 2, 3, 4, 0, 1)) == (
        "|skip_connect~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|skip_connect~2|"
    )


def test_string_round_trip_whole_table(table_archs: list[str]) -> None:
    assert len(table_archs) == 15625
    parsed = [SPACE.str_to_arch(text) for text in table_archs]
    assert [SPACE.arch_to_str(a) for a in parsed] == table_archs
    assert set(parsed) == set(itertools.product(range(5), repeat=6))


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        (VALID.replace("avg_pool_3x3~1", "max_pool_3x3~1"), "max_pool_3x3"),
        (VALID.replace("nor_conv_3x3~1|avg", "nor_conv_3x3~2|avg"), "nor_conv_3x3~2"),
        (VALID.replace("none~0", "none0"), "none0"),
        (VALID.replace("none~0", "none~x"), "none~x"),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|", "got 2"),
        (VALID + "+|none~0|", "got 4"),
        (VALID.replace("|avg_pool_3x3~1|", "|"), "got 1"),
        (VALID.replace("+|none~0|", "+none~0|"), "none~0|nor_conv_3x3~1|avg_pool_3x3~2|"),
        ("", "got 1"),
    ],
)
def test_bad_strings_name_the_bad_token(text: str, bad: str) -> None:
    with pytest.raises(ArchError) as info:
        SPACE.str_to_arch(text)
    message = str(info.value)
    assert bad in message
    assert "|nor_conv_3x3~0|+|" in message  # shows a valid example


@pytest.mark.parametrize("arch", [(5, 0, 0, 0, 0, 0), (0, 0, 0, 0, 0), (-1, 0, 0, 0, 0, 0)])
def test_bad_vectors_rejected(arch: tuple[int, ...]) -> None:
    with pytest.raises(ArchError):
        SPACE.arch_to_str(arch)
    with pytest.raises(ArchError):
        SPACE.supernet(C=2, N=1)(torch.zeros(1, 3, 8, 8), arch)


def test_index_round_trip(table_archs: list[str]) -> None:
    for index in [0, 1, 11, 284, 7777, 15624]:
        arch = SPACE.index_to_arch(index, table_archs)
        assert SPACE.arch_to_str(arch) == table_archs[index]
        assert SPACE.arch_to_index(arch, table_archs) == index
    assert SPACE.index_to_arch(0, table_archs) == (4, 2, 1, 2, 1, 1)
    for index in [-1, 15625]:
        with pytest.raises(ArchError, match=str(index)):
            SPACE.index_to_arch(index, table_archs)
    with pytest.raises(ArchError, match="not in the list"):
        SPACE.arch_to_index(ALL_NONE, table_archs[:10])


@pytest.mark.parametrize("index", [0, 11, 284])
def test_costs_match_official_cost_info(index: int, monkeypatch: pytest.MonkeyPatch) -> None:
    nats_bench = pytest.importorskip("nats_bench")
    if not (DATA / "NATS-tss-v1_0-3ffb9-simple").is_dir():
        pytest.skip(f"NATS-Bench fixture not found under {DATA}")
    monkeypatch.setenv("TORCH_HOME", str(DATA))
    api = nats_bench.create(None, "tss", fast_mode=True, verbose=False)
    arch = SPACE.str_to_arch(api.meta_archs[index])
    for dataset, classes in [("cifar10", 10), ("cifar100", 100)]:
        official = api.get_cost_info(index, dataset)
        ours = SPACE.cost(arch, num_classes=classes)
        assert ours["flops"] == pytest.approx(official["flops"], rel=0.02)
        assert ours["params"] == pytest.approx(official["params"], rel=0.02)


def test_cost_of_index_0_without_fixture() -> None:
    cost = SPACE.cost((4, 2, 1, 2, 1, 1))
    assert cost["flops"] == pytest.approx(15.64737, rel=1e-6)
    assert cost["params"] == pytest.approx(0.129306, rel=1e-6)


def test_supernet_flops_are_those_of_the_path() -> None:
    supernet = SPACE.supernet(C=4, N=1, affine=True, track_running_stats=True)
    supernet.train()
    for arch in ARCHS:
        net = SPACE.standalone(arch, C=4, N=1)
        assert count_flops(supernet, (1, 3, 16, 16), arch) == count_flops(net, (1, 3, 16, 16))
    assert supernet.training
    assert count_params(supernet) > count_params(SPACE.standalone((3,) * 6, C=4, N=1))


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
    supernet = SPACE.supernet(C=4, N=2, affine=affine, track_running_stats=track)
    _randomise(supernet)
    x = torch.randn(3, 3, 16, 16)
    for arch in ARCHS:
        net = SPACE.standalone(arch, C=4, N=2, affine=affine, track_running_stats=track)
        net.load_from_supernet(supernet)
        for training in (True, False):
            supernet.train(training)
            net.train(training)
            torch.testing.assert_close(supernet(x, arch), net(x), rtol=0, atol=0)


def test_standalone_holds_only_the_chosen_ops() -> None:
    arch = (3, 0, 1, 0, 2, 4)
    net = SPACE.standalone(arch, C=4, N=1)
    for cell in (m for m in net.modules() if hasattr(m, "edges")):
        assert [list(edge.keys()) for edge in cell.edges] == [
            [] if k == 0 else [OPS[k]] for k in arch
        ]
    with pytest.raises(ValueError, match="does not match"):
        SPACE.standalone(arch, C=4, N=1, affine=True).load_from_supernet(
            SPACE.supernet(C=4, N=1, affine=False)
        )


def test_unsampled_ops_get_no_gradient() -> None:
    torch.manual_seed(1)
    supernet = SPACE.supernet(C=4, N=1, affine=True)
    arch = (3, 2, 0, 4, 3, 1)
    on_path = set(dict(SPACE.standalone(arch, C=4, N=1, affine=True).named_parameters()))
    supernet(torch.randn(2, 3, 16, 16), arch).sum().backward()
    for name, p in supernet.named_parameters():
        assert (p.grad is not None) == (name in on_path), name
    assert any(".nor_conv_1x1." in name for name in on_path)


def test_all_none_arch_runs() -> None:
    supernet: NB201Supernet = SPACE.supernet(C=4, N=1)
    net: NB201Network = SPACE.standalone(ALL_NONE, C=4, N=1)
    x = torch.randn(2, 3, 16, 16)
    for out in (supernet(x, ALL_NONE), net(x)):
        assert out.shape == (2, 10)
        assert torch.isfinite(out).all()
    net(x).sum().backward()
    assert net.classifier.weight.grad is not None


def test_zero_node_feeds_later_ops_like_the_benchmark() -> None:
    """Node 1 is all-'none', so the conv on 2<-1 sees zeros and outputs its BN shift (beta)."""
    net = SPACE.standalone((0, 0, 3, 0, 0, 1), C=4, N=1)
    cell = net.cells[0]
    with torch.no_grad():
        cell.edges[2]["nor_conv_3x3"][2].bias.fill_(0.7)
    x = torch.randn(2, 4, 8, 8)
    for training in (True, False):
        cell.train(training)
        torch.testing.assert_close(cell(x, net.arch), torch.full_like(x, 0.7))


def test_mixed_forward_with_one_hot_weights_is_the_single_path() -> None:
    torch.manual_seed(2)
    supernet = SPACE.supernet(C=4, N=1)
    _randomise(supernet)
    x = torch.randn(2, 3, 16, 16)
    for arch in ARCHS[:4]:
        one_hot = torch.nn.functional.one_hot(torch.tensor(arch), len(OPS)).float()
        torch.testing.assert_close(supernet(x, one_hot), supernet(x, arch))


def test_gradients_reach_the_mixed_weights() -> None:
    torch.manual_seed(3)
    supernet = SPACE.supernet(C=4, N=1)
    alpha = torch.zeros(6, len(OPS), requires_grad=True)
    supernet(torch.randn(2, 3, 16, 16), alpha.softmax(-1)).sum().backward()
    assert alpha.grad is not None and (alpha.grad.abs().sum(dim=1) > 0).all()
