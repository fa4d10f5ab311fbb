"""A new strategy and a new space are ONE file outside the repository: a temporary package
registers both through the entry-point groups (what ``pip install`` of it writes), then
``ddpnas search`` runs them, the pipeline plans them, and their row is in a results table,
without touching any project file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import CIFAR_ZIP, REPO, SHARED_DATA, SNAKEFILE, require

PLUGIN = '''
"""A third-party strategy and space for ddpnas, in one file."""

import numpy as np
import torch
from pydantic import Field
from torch import nn

from ddpnas.config.options import Options
from ddpnas.errors import ArchError
from ddpnas.registry import register_space, register_strategy
from ddpnas.spaces.base import SearchSpace
from ddpnas.strategies.base import EpochPlan, Strategy


class TwoEdgeOptions(Options):
    C: int = Field(4, ge=1, description="Channels.")


class TwoEdgeNet(nn.Module):
    def __init__(self, C: int, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, C, 3, padding=1)
        self.choices = nn.ModuleList(
            nn.ModuleList([nn.Conv2d(C, C, 3, padding=1), nn.AvgPool2d(3, 1, 1)]) for _ in range(2)
        )
        self.head = nn.Linear(C, num_classes)

    def forward(self, x: torch.Tensor, arch) -> torch.Tensor:
        x = self.stem(x)
        for edge, op in zip(self.choices, arch):
            x = torch.relu(edge[int(op)](x))
        return self.head(x.mean((2, 3)))


@register_space
class TwoEdge(SearchSpace):
    name = "two_edge"
    ops = ("conv_3x3", "avg_pool_3x3")
    edges = ("0->1", "1->2")
    Options = TwoEdgeOptions
    mixed_ops = False
    why_no_mixed_ops = "a toy space"

    def arch_to_str(self, arch) -> str:
        return "-".join(self.ops[a] for a in self.validate(arch))

    def str_to_arch(self, text: str):
        try:
            return self.validate(tuple(self.ops.index(t) for t in text.split("-")))
        except ValueError as exc:
            raise ArchError(f"two_edge: {exc}") from None

    def supernet(self, C: int = 4, num_classes: int = 10, **kwargs) -> nn.Module:
        return TwoEdgeNet(C, num_classes)

    def standalone(self, arch, C: int = 4, num_classes: int = 10, **kwargs) -> nn.Module:
        return TwoEdgeNet(C, num_classes)


class BestOfOptions(Options):
    epochs: int = Field(3, ge=1, description="Architectures sampled, one per epoch.")


@register_strategy
class BestOf(Strategy):
    """Train one random path per epoch, keep the best validated one."""

    name = "best_of"
    modes = ("weight_sharing",)
    Options = BestOfOptions

    def __init__(self, space, mode="weight_sharing", **options) -> None:
        super().__init__(space, mode, **options)
        self.epoch, self.best, self.best_acc = 0, None, -1.0

    def propose(self, rng: np.random.Generator) -> EpochPlan:
        arch = tuple(int(rng.integers(self.space.num_ops)) for _ in self.space.edges)
        return EpochPlan(train=arch, evaluate=[arch])

    def observe(self, plan, train_metrics, results) -> None:
        if results[0]["valid_acc"] > self.best_acc:
            self.best, self.best_acc = plan.evaluate[0], results[0]["valid_acc"]

    def step(self) -> dict:
        self.epoch += 1
        return {}

    def done(self) -> bool:
        return self.epoch >= self.options.epochs

    def result(self):
        return self.best

    def planned_epochs(self) -> int:
        return self.options.epochs

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "best": self.best, "best_acc": self.best_acc}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.best, self.best_acc = state["epoch"], state["best"], state["best_acc"]
'''

ENTRY_POINTS = """\
[ddpnas.strategies]
best_of = toy_nas:BestOf

[ddpnas.spaces]
two_edge = toy_nas:TwoEdge
"""


def _install(site: Path) -> None:
    """What ``pip install`` of a one-module package declaring the two entry points leaves."""
    (site / "toy_nas.py").write_text(PLUGIN)
    info = site / "toy_nas-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-nas\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)


def _status() -> str:
    return subprocess.run(
        ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.slow
def test_out_of_tree_strategy_and_space(tmp_path: Path, cache_dir: Path) -> None:
    require(CIFAR_ZIP)
    before = _status()
    site = tmp_path / "site"
    site.mkdir()
    _install(site)
    config = {
        "device": "cpu",
        "threads": 1,
        "data": {"root": str(SHARED_DATA)},
        "searches": {
            "toy": {
                "label": "BestOf (plugin) on two_edge (plugin)",
                "space": "two_edge",
                "strategy": "best_of",
                "mode": "weight_sharing",
                "seeds": [0],
                "strategy_args": {"epochs": 2},
                "supernet": {"C": 2},
                "train": {"train_size": 64, "valid_size": 32, "batch_size": 32},
            }
        },
        "report": {"ranking": {"experiments": []}},
        "retrain": {"searches": []},
        "generate": {},
    }
    config_file = tmp_path / "toy.yaml"
    config_file.write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "DDPNAS_CACHE": str(cache_dir),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }

    def ddpnas(*args: str) -> None:
        cmd = [sys.executable, "-m", "ddpnas.cli.main", *args]
        done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr

    record = tmp_path / "toy-seed0.json"
    ddpnas("search", "--config", str(config_file), "--experiment", "toy", "--seed", "0",
           "--out", str(record))  # fmt: skip
    found = json.loads(record.read_text())
    assert found["space"] == "two_edge" and found["strategy"] == "best_of"
    assert found["epochs"] == 2 and found["arch"] in {e["arch"] for h in found["history"]
                                                     for e in h["evaluated"]}  # fmt: skip

    ddpnas("report", "searches-table", "--runs", str(record), "--out", str(tmp_path / "t"))
    row = pd.read_csv(tmp_path / "t.csv").set_index("source").loc["ours: toy"]
    assert row["arch"] == found["arch"] and row["method"] == config["searches"]["toy"]["label"]
    assert "BestOf (plugin)" in (tmp_path / "t.md").read_text()

    plan = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(tmp_path),
         "--configfile", str(config_file), "--cores", "1", "--dry-run"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert plan.returncode == 0, plan.stderr + plan.stdout
    planned = plan.stdout + plan.stderr
    assert "results/toy/search/toy/seed0.json" in planned
    assert "results/toy/tables/searches_two_edge.md" in planned
    assert _status() == before, "the plugin run changed files of the project"


def test_unknown_names_say_how_to_register_one(tmp_path: Path) -> None:
    from ddpnas.config.load import validate_search
    from ddpnas.errors import ConfigError

    spec = {"space": "nb201", "strategy": "toy", "mode": "tabular", "seeds": [0]}
    with pytest.raises(ConfigError, match=textwrap.dedent(r"""
        searches.x.strategy: unknown strategy 'toy'; known: .*ddpnas.*To add one, decorate the
        """).strip().replace("\n", " ")):  # fmt: skip
        validate_search(spec, "x")
    with pytest.raises(ConfigError, match=r"unknown space 'toy'.*entry-point group ddpnas\.spaces"):
        validate_search({**spec, "strategy": "ddpnas", "space": "toy"}, "x")
