"""Mobile (ProxylessNAS / XNAS MBConv) space: strings, layout, single-path supernet vs standalone
nets, per-choice costs that add up to the measured network, the phone latency keys, the released
ImageNet networks' sizes, and DDPNAS / RSPS / ENAS searches through the engine."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import yaml

from ddpnas.data.cifar10 import ImageSet
from ddpnas.engine.evaluators import SupernetEvaluator
from ddpnas.engine.loop import run_search
from ddpnas.errors import ArchError, ConfigError
from ddpnas.spaces import get_space
from ddpnas.spaces.complexity import count_macs
from ddpnas.spaces.mobile.space import EDGES, OPS, MobileSpace, layers
from ddpnas.spaces.published_nets import (
    DDPNAS_GPU_GENE,
    darts_imagenet_network,
    proxyless_gpu_network,
)
from ddpnas.strategies import get_strategy
from tests.conftest import SHARED_DATA, require

SPACE = MobileSpace()
E, K = len(EDGES), len(OPS)
SMALL = {"width_mult": 0.25, "num_classes": 10}
RES = 32


def _random_archs(n: int, seed: int = 0) -> list[tuple[int, ...]]:
    rng = random.Random(seed)
    return [tuple(rng.randrange(K) for _ in range(E)) for _ in range(n)]


def test_layout_matches_the_xnas_space() -> None:
    space = get_space("mobile")
    assert (space.num_edges, space.num_ops) == (21, 7)
    specs = layers(1.0, 224)
    sevenths = [spec.ops[-1] for spec in specs]
    assert sevenths.count("zero") == 15 and sevenths.count("3x3_MBConv1") == 6
    assert [s.c_out for s in specs if s.first] == [24, 40, 80, 96, 192, 320]
    assert [s.size for s in specs if s.first] == [112, 56, 28, 14, 14, 7]
    # zero only where the layer keeps stride and width (it is then an identity)
    assert all((s.stride, s.c_in) == (1, s.c_out) for s in specs if s.ops[-1] == "zero")


def test_arch_string_round_trips_and_names_bad_tokens() -> None:
    for arch in _random_archs(20):
        text = SPACE.arch_to_str(arch)
        assert SPACE.str_to_arch(text) == arch
    text = SPACE.arch_to_str((6,) * E)
    assert text.startswith("3x3_MBConv1,zero,zero,zero|3x3_MBConv1,")
    bad = text.replace("3x3_MBConv1,zero", "zero,zero", 1)  # zero on a stride-2 layer
    with pytest.raises(ArchError, match=r"'zero' is not a choice of layer stage1\.0"):
        SPACE.str_to_arch(bad)
    with pytest.raises(ArchError, match="expected 6 stages"):
        SPACE.str_to_arch("3x3_MBConv3")
    with pytest.raises(ArchError, match="stage 6 needs 1 ops"):
        SPACE.str_to_arch(text + ",zero")
    with pytest.raises(ArchError, match=r"outside 0\.\.6"):
        SPACE.arch_to_str((7,) * E)


def test_supernet_path_equals_standalone_with_inherited_weights() -> None:
    torch.manual_seed(0)
    supernet = SPACE.supernet(**SMALL, track_running_stats=True).eval()
    x = torch.randn(2, 3, RES, RES)
    for arch in [*_random_archs(1, seed=1), (6,) * E]:
        net = SPACE.standalone(arch, **SMALL).eval()
        net.load_from_supernet(supernet)
        torch.testing.assert_close(net(x), supernet(x, arch))


def test_zero_layers_are_skipped_not_computed() -> None:
    supernet = SPACE.supernet(**SMALL)
    called: list[int] = []
    for e, choices in enumerate(supernet.layers):
        for module in choices.values():
            module.register_forward_hook(lambda *_, e=e: called.append(e))
    arch = (6,) * E  # zero on every non-first layer
    supernet(torch.randn(2, 3, RES, RES), arch)
    assert called == [e for e, spec in enumerate(layers()) if spec.first]


def test_darts_mixed_ops_are_rejected_clearly() -> None:
    with pytest.raises(ConfigError, match="DARTS's mixed ops do not fit"):
        SPACE.supernet(**SMALL)(torch.randn(2, 3, RES, RES), torch.ones(E, K))


@pytest.fixture(scope="module")
def costs_224() -> dict[str, tuple[float, np.ndarray]]:
    return SPACE.choice_costs(224)


@pytest.mark.parametrize(("width", "res"), [(1.0, 224), (0.5, 64), (1.3, 40)])
def test_choice_costs_add_up_to_the_measured_network(
    width: float, res: int, costs_224: dict[str, tuple[float, np.ndarray]]
) -> None:
    kwargs = {"width_mult": width, "num_classes": 1000}
    costs = costs_224 if res == 224 else SPACE.choice_costs(res, **kwargs)
    zero = np.array([[spec.ops[k] == "zero" for k in range(K)] for spec in layers()])
    for _, table in costs.values():
        assert table.shape == (E, K) and (table[zero] == 0).all() and (table[~zero] > 0).all()
    archs = [*_random_archs(2, seed=res), (6,) * E]
    for arch in archs:
        net = SPACE.standalone(arch, **kwargs)
        chosen = np.arange(E), list(arch)
        fixed, table = costs["macs"]
        assert fixed + table[chosen].sum() == count_macs(net, (1, 3, res, res))
        fixed, table = costs["params"]
        assert fixed + table[chosen].sum() == sum(p.numel() for p in net.parameters())
        measured = SPACE.measured_costs(arch, res, **kwargs)
        assert measured == {
            name: fixed + table[chosen].sum() for name, (fixed, table) in costs.items()
        }


def test_xnas_space_macs_at_224(costs_224: dict[str, tuple[float, np.ndarray]]) -> None:
    """Reference section 1: fixed 42.2 M, all-min 51.2 M, all-max 606.6 M MACs (width 1.0)."""
    fixed, table = costs_224["macs"]
    assert round(fixed / 1e6, 1) == 42.2
    assert round((fixed + table.min(1).sum()) / 1e6, 1) == 51.2
    assert round((fixed + table.max(1).sum()) / 1e6, 1) == 606.6


def test_choice_modules_run_at_their_input_shapes() -> None:
    modules = SPACE.choice_modules(RES, **SMALL)
    assert len(modules) == E and all(len(row) == K for row in modules)
    for spec, row in zip(layers(0.25, RES), modules, strict=True):
        for name, (module, shape) in zip(spec.ops, row, strict=True):
            assert (module is None) == (name == "zero")
            assert shape == (1, spec.c_in, spec.size, spec.size)
            if module is not None:
                module.eval()(torch.zeros(shape))
    for module, shape in SPACE.fixed_modules(RES, **SMALL):
        module.eval()(torch.zeros(shape))


def test_latency_keys_are_in_the_phone_table() -> None:
    table = yaml.safe_load(require(SHARED_DATA / "mobile" / "mobile_trim.yaml").read_text())
    keys = [SPACE.latency_key(e, k) for e in range(E) for k in range(K)]
    found = [k for k in keys if k in table]
    assert len(found) == E * 6  # every MBConv k3/5/7 x e3/6
    ours = set(found) | set(SPACE.fixed_latency_keys())
    assert len(set(found)) == 11 * 6  # 11 distinct layer shapes x 6 MBConvs
    assert ours <= set(table)
    # the rest of the table: the first block at kernels 5 and 7, which this space never uses
    assert sorted(set(table) - ours) == [
        SPACE.fixed_latency_keys()[1].replace("kernel:3", f"kernel:{k}") for k in (5, 7)
    ]
    # the seventh choice: zero has no key (skipped); 3x3_MBConv1 has one the table lacks, so it
    # is reported or excluded, never costed 0
    seventh = [SPACE.latency_key(e, 6) for e in range(E)]
    assert seventh.count(None) == 15
    missing = [k for k in seventh if k is not None]
    assert len(missing) == 6 and not set(missing) & set(table)
    assert all("-expand:1-kernel:3-" in k for k in missing)


def test_released_gpu_network_sizes_at_224() -> None:
    """Reference section 2: DDPNAS's gene 6,729,696 / 782.6 M; ProxylessNAS-GPU 7.12 M / 465.3 M."""
    net = proxyless_gpu_network(DDPNAS_GPU_GENE)
    assert sum(p.numel() for p in net.parameters()) == 6_729_696
    assert round(count_macs(net, (1, 3, 224, 224)) / 1e6, 1) == 782.6
    plain = proxyless_gpu_network(None)
    assert round(sum(p.numel() for p in plain.parameters()) / 1e6, 2) == 7.12
    assert round(count_macs(plain, (1, 3, 224, 224)) / 1e6, 1) == 465.3
    with pytest.raises(ArchError, match="14"):
        proxyless_gpu_network(DDPNAS_GPU_GENE[:-1])


def test_darts_imagenet_network_size() -> None:
    """Reference section 3: 4,506,592 params without the auxiliary head (published 4.51 M)."""
    net = darts_imagenet_network(auxiliary=False)
    assert sum(p.numel() for p in net.parameters()) == 4_506_592
    with_aux = darts_imagenet_network(auxiliary=True).train()
    assert sum(p.numel() for p in with_aux.parameters()) - 4_506_592 == pytest.approx(1.26e6, 1e-2)
    logits, aux = with_aux(torch.randn(2, 3, 224, 224))
    assert logits.shape == aux.shape == (2, 1000)
    assert with_aux.eval()(torch.randn(1, 3, 224, 224))[1] is None


def _images(n: int, seed: int) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    images = torch.randint(0, 256, (n, 3, 16, 16), generator=g, dtype=torch.uint8)
    return ImageSet(images, labels, tuple(str(c) for c in range(10)))


@pytest.mark.parametrize(
    ("strategy", "args"),
    [
        ("ddpnas", {"pruning_step": 1}),
        ("rsps", {"epochs": 2, "final_samples": 3}),
        (
            "enas",
            {
                "epochs": 2,
                "controller_steps": 2,
                "aggregate": 2,
                "eval_images": 8,
                "final_samples": 3,
            },
        ),
    ],
)
def test_strategies_search_the_mobile_space(strategy: str, args: dict) -> None:
    torch.manual_seed(0)
    cls = get_strategy(strategy)
    search = cls(SPACE, mode="weight_sharing", **args)
    evaluator = SupernetEvaluator(
        SPACE.supernet(**SMALL), _images(16, 0), _images(8, 1),
        epochs=search.planned_epochs(), batch_size=8,
    )  # fmt: skip
    outcome = run_search(search, evaluator, seed=0)
    assert len(outcome.arch) == E
    SPACE.str_to_arch(SPACE.arch_to_str(outcome.arch))
    if strategy == "ddpnas":
        assert outcome.epochs == sum(range(2, K + 1))  # 27 epochs at pruning_step 1
