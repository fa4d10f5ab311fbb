"""Issue 7 (core): workflow profile, genotype and pruning ties, and the runtime in checkpoints."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import NATS_FIXTURE, NB201_TABLE, REPO, SHARED_DATA, require
from torch import nn
from toys import SyntheticEvaluator

from baselines.random_search import RandomSearch
from ddpnas.config.load import load_config, validate_search
from ddpnas.data.cifar10 import ImageSet
from ddpnas.engine.evaluators import SupernetEvaluator
from ddpnas.engine.experiment import run_experiment
from ddpnas.engine.loop import run_search
from ddpnas.errors import DDPNASError
from ddpnas.nasbench.files import load_bench
from ddpnas.report.tables import (
    NB201_COLUMNS,
    _scale,
    method_label,
    nb201_columns,
    nb201_display,
    nb201_rows,
)
from ddpnas.retrain.setup import sync_batchnorm
from ddpnas.spaces.darts.genotype import Genotype
from ddpnas.spaces.darts.ops import CELL_EDGES, OPS
from ddpnas.spaces.darts.space import DartsSpace
from ddpnas.spaces.nb201 import NB201Space
from ddpnas.strategies import DDPNAS
from ddpnas.strategies.base import StepContext
from ddpnas.strategies.distribution import JointCategorical

# Node 5 of a DARTS cell has inputs 0..4 on edges 9..13; edge 13 is 5 <- 4.
LAST_EDGE_OF_NODE_5 = 13
SEP_CONV_3X3 = OPS.index("sep_conv_3x3")


# ------------------------------------------------------------------------ bug 0: workflow profile


def _dry_run(tmp_path: Path, config: dict) -> subprocess.CompletedProcess[str]:
    """``snakemake --configfile <config> -n`` from the repository root, as the README says."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    bin_dir = str(Path(sys.executable).parent)
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--configfile", str(path), "-n"],
        cwd=REPO,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.slow
def test_ci_configfile_replaces_the_default_config_and_schedules_only_its_jobs(
    tmp_path: Path,
) -> None:
    config = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())
    run = _dry_run(tmp_path, config)
    assert run.returncode == 0, run.stderr
    out = run.stdout + run.stderr
    assert "Using workflow specific profile workflow/profiles/default" in out
    assert "is extended" not in out  # the default config is not read at all
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out, flags=re.M))
    specs = config["searches"].values()
    per_seed = sum(len(s["seeds"]) for s in specs if s["mode"] == "weight_sharing")
    tabular = sum(s["mode"] == "tabular" for s in specs)  # all seeds of one in one job
    theta = sum(s["strategy"] in ("ddpnas", "darts", "enas", "reinforce") for s in specs)
    retrained = sum(len(config["searches"][e]["seeds"]) for e in config["retrain"]["searches"])
    assert int(counts["search"]) == per_seed
    assert sum(int(n) for job, n in counts.items() if job.startswith("search_tabular_")) == tabular
    assert int(counts["theta_figure"]) == theta
    assert int(counts["retrain"]) == int(counts["genotype"]) == retrained
    # a generic table per searched space without a tabular benchmark (ci: the DARTS space)
    assert int(counts["searches_table"]) == len({s["space"] for s in specs} - {"nb201"})
    # searches + genotypes + retrains + figures + the two tables + the generic table(s) + bound
    # + generations + ranking + costs + timing + all
    generations = len(config.get("generate", {}))
    ranking = int(bool(config["report"]["ranking"]["experiments"]))
    generic = int(counts["searches_table"])
    assert int(counts["timing_table"]) == 1
    expected = (
        (per_seed + tabular + 2 * retrained + theta + 2 + generic + 1 + generations + ranking + 1)
        + 1
        + 1
    )
    assert int(counts["total"]) == expected


@pytest.mark.slow
def test_an_empty_searches_block_is_refused(tmp_path: Path) -> None:
    run = _dry_run(tmp_path, {"searches": {}})
    assert run.returncode != 0
    assert "config.searches: {} should be non-empty" in run.stdout + run.stderr


# ---------------------------------------------------------------------- bug 3: ties prune 'none'


def test_exact_theta_ties_are_pruned_at_random_not_op_0_first() -> None:
    """Equal accuracies everywhere (the old code pruned 'none', op 0, on every edge first)."""
    space = NB201Space()
    flat = SyntheticEvaluator(np.full((space.num_edges, space.num_ops), 0.5))
    firsts, finals = [], []
    for seed in range(3):
        strategy = DDPNAS(space, mode="tabular")
        outcome = run_search(strategy, flat, seed=seed)
        first = next(h["events"]["pruned"] for h in outcome.history if h["events"])
        firsts.append(first)
        finals.append(outcome.arch)
        again = run_search(DDPNAS(space, mode="tabular"), flat, seed=seed)
        assert again.arch == outcome.arch  # random, but from the run's seed
    pruned_first = {op for first in firsts for op in first}
    assert pruned_first != {"none"} and len(pruned_first) > 2
    assert len({op for arch in finals for op in arch}) > 1


def test_prune_without_a_generator_refuses_a_tie() -> None:
    dist = JointCategorical(2, 3)
    with pytest.raises(ValueError, match="tie"):
        dist.prune()
    assert dist.mask.all()


# ---------------------------------------------------------- bug 1: DARTS genotype of tied survivors


def _key_edge_means(space: DartsSpace) -> np.ndarray:
    """Accuracy depends only on the last input edge of node 5 in each cell (sep_conv_3x3 there)."""
    mu = np.full((space.num_edges, space.num_ops), 0.3)
    for cell in range(2):
        mu[cell * CELL_EDGES + LAST_EDGE_OF_NODE_5, SEP_CONV_3X3] = 0.3 + 0.25 * space.num_edges
    return mu


def _node_5_inputs(genotype: dict) -> list[list[int]]:
    parsed = Genotype.from_json(genotype)
    return [[j for _, j in cell[6:8]] for cell in (parsed.normal, parsed.reduce)]


@pytest.mark.parametrize("seed", [0, 1])
def test_ddpnas_genotype_ranks_tied_survivors_by_the_search_evidence(seed: int) -> None:
    """After the last prune every survivor has theta 1.0; the old code then kept inputs 0 and 1
    of node 5, although only edge 5 <- 4 ever changed the accuracy."""
    space = DartsSpace()
    strategy = DDPNAS(space)  # shipped defaults: T = 3, round robin
    outcome = run_search(strategy, SyntheticEvaluator(_key_edge_means(space)), seed=seed)
    assert np.all(strategy.dist.theta[strategy.dist.mask] == 1.0)  # the tie the issue describes
    for cell in range(2):
        assert outcome.arch[cell * CELL_EDGES + LAST_EDGE_OF_NODE_5] == SEP_CONV_3X3
    genotype = space.derived(outcome.arch, *strategy.preferences())["genotype"]
    for inputs in _node_5_inputs(genotype):
        assert 4 in inputs
    strength, _ = strategy.preferences()
    assert len(np.unique(strength)) == strength.size  # no tie left for position to decide
    assert space.derived(outcome.arch, *strategy.preferences())["genotype"] == genotype


def test_default_preferences_rank_inputs_by_evaluated_accuracy() -> None:
    """Strategies without their own preferences (RS, RSPS, ENAS) had a one-hot: all tied."""
    space = DartsSpace()
    strategy = RandomSearch(space, budget_seconds=None, max_epochs=300)
    outcome = run_search(strategy, SyntheticEvaluator(_key_edge_means(space)), seed=0)
    for cell in range(2):
        assert outcome.arch[cell * CELL_EDGES + LAST_EDGE_OF_NODE_5] == SEP_CONV_3X3
    theta, mask = strategy.preferences()
    np.testing.assert_array_equal(theta.argmax(axis=1), outcome.arch)  # the result's ops first
    genotype = space.derived(outcome.arch, theta, mask)["genotype"]
    for inputs in _node_5_inputs(genotype):
        assert 4 in inputs


# ------------------------------------------------------------ reproducibility: runtime fingerprint


def test_resume_under_another_thread_count_is_refused(tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())
    require(NB201_TABLE)
    spec = config["searches"]["nb201-ddpnas-tabular"]
    data = {"root": str(SHARED_DATA)}
    ckpt, out = tmp_path / "run.pt", tmp_path / "run.json"
    before = torch.get_num_threads()
    try:
        kwargs = {"seed": 0, "out": out, "checkpoint": ckpt, "data": data, "device": "cpu"}
        first = run_experiment("nb201-ddpnas-tabular", spec, threads=1, **kwargs)
        assert first["environment"]["threads"] == 1
        assert first["environment"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
        out.unlink()
        with pytest.raises(DDPNASError, match=r"threads=1 .*threads=2.*same --threads"):
            run_experiment("nb201-ddpnas-tabular", spec, threads=2, **kwargs)
        assert not out.exists()
        again = run_experiment("nb201-ddpnas-tabular", spec, threads=1, **kwargs)
        assert again["resumed_from_epoch"] == first["epochs"] and again["arch"] == first["arch"]
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------ protocol: DARTS search, retrain


def test_shipped_search_defaults_follow_the_darts_protocol() -> None:
    """Cosine floor 0.001 and architecture batches with the training transform, by default."""
    spec = validate_search(
        {"space": "nb201", "strategy": "darts", "mode": "weight_sharing", "seeds": [0]}
    )
    train = dict(spec["train"])
    assert train["lr_min"] == 0.001 and train["arch_batch_augment"] is True
    assert spec["supernet"]["affine"] is False
    del train["train_size"], train["valid_size"]
    images = ImageSet(
        torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8),
        torch.arange(8) % 10,
        tuple(f"c{k}" for k in range(10)),
    )
    model = NB201Space().supernet(C=2, N=1, num_classes=10)
    evaluator = SupernetEvaluator(model, images, images, epochs=2, **train)
    assert evaluator.scheduler.eta_min == 0.001

    seen: list[torch.Tensor] = []

    class GrabValid:
        """A training plan that records the architecture-step batches."""

        def path(self) -> tuple[int, ...]:
            return (1,) * 6

        def before_weight_step(self, ctx: StepContext) -> None:
            seen.append(ctx.valid_batch()[0])

    evaluator.train(GrabValid(), 0, torch.Generator().manual_seed(0))
    plain = images.images.float() / 255
    batch = seen[0]
    # crop + flip: some validation image is not delivered as stored (normalisation aside)
    assert not all(any(torch.allclose(_unit(b), _unit(p), atol=1e-4) for p in plain) for b in batch)


def _unit(x: torch.Tensor) -> torch.Tensor:
    """Per-image standardised pixels, so the comparison ignores mean/std normalisation."""
    return (x - x.mean()) / (x.std() + 1e-8)


@pytest.mark.parametrize("config", ["config.yaml", "paper.yaml"])
def test_shipped_darts_rows_follow_the_protocol_and_a_departure_is_labelled(config: str) -> None:
    searches = load_config(REPO / "config" / config)["searches"]
    darts = {n: s for n, s in searches.items() if s["strategy"] == "darts"}
    assert darts
    for name, spec in darts.items():
        assert method_label({"label": name, "spec": spec}) == name
    spec = copy.deepcopy(next(s for s in darts.values() if s["space"] == "darts"))
    spec["supernet"]["track_running_stats"] = False
    assert method_label({"label": "D", "spec": spec}) == (
        "D [not DARTS's protocol: supernet.track_running_stats=False]"
    )


def test_paper_retraining_is_fp32_and_amp_rows_are_marked() -> None:
    assert load_config(REPO / "config" / "paper.yaml")["retrain"]["protocol"]["amp"] is False
    assert load_config(REPO / "config" / "config.yaml")["retrain"]["protocol"]["amp"] is False
    retrain = {
        "config": {"epochs": 600, "train_size": None, "test_size": None, "amp": False},
        "environment": {"device": "cuda"},
    }
    assert _scale(retrain) == "paper protocol"
    retrain["config"].update(amp=True, amp_dtype="bfloat16")
    assert _scale(retrain) == "paper protocol; AMP (bfloat16), not fp32"


def test_syncbn_only_when_one_retraining_spans_several_cuda_processes() -> None:
    """SyncBatchNorm's forward needs CUDA, so only the conversion is tested here (on CPU)."""

    def net() -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())

    def synced(module: nn.Module) -> bool:
        return any(isinstance(m, nn.SyncBatchNorm) for m in module.modules())

    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    model = net()
    params = list(model.parameters())
    converted = sync_batchnorm(model, 2, cuda)
    assert synced(converted) and list(converted.parameters()) == params  # optimizer stays valid
    assert not synced(sync_batchnorm(net(), 1, cuda))
    assert not synced(sync_batchnorm(net(), 2, cpu))


# ------------------------------------------------------------ protocol: NAS-Bench-201 releases


def test_nb201_rows_never_mix_benchmark_releases(bench) -> None:
    """The compact table's C100/IN16 valid columns are v1.0, its test columns NATS-tss."""
    record = {
        "experiment": "x",
        "label": "X",
        "arch": bench.arch_str(11),
        "epochs": 1,
        "search_seconds": 1.0,
        "simulated_seconds": 0.0,
        "environment": {"hardware": "cpu"},
        "spec": {"space": "nb201", "strategy": "ddpnas"},
    }
    table = nb201_rows([record], bench).set_index("source")
    ours = table.loc["ours: x"]
    assert ours["benchmark"] == "NATS-tss v1.0"
    assert ours["c10_test"] == pytest.approx(bench.query(record["arch"])["cifar10_test_acc"])
    assert np.isnan(ours["c100_valid"]) and np.isnan(ours["in16_valid"])
    optimum = table[table["method"].str.startswith("optimum")].iloc[0]
    assert np.isnan(optimum["c100_valid"]) and optimum["c10_test"] == pytest.approx(94.37, abs=0.01)
    published = table[table["method"] == "RSPS"].iloc[0]
    assert published["benchmark"] == "NAS-Bench-201 v1.0" and published["c100_valid"] > 0
    assert "Benchmark release" in nb201_display(table.reset_index()).columns
    nats = load_bench(require(NATS_FIXTURE))
    assert nb201_columns(nats) == NB201_COLUMNS  # one official file: one release, every column
