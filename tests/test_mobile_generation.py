"""The mobile chain: ImageNet (stand-in) search -> networks generated for budgets from its theta
-> retrained -> rows of the ImageNet table, beside the mobile generation table and figure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import CIFAR_ZIP, REPO, SHARED_DATA, SNAKEFILE, require

from ddpnas.cli.generate import budget_text
from ddpnas.cli.imagenet import generated_under, read_arch
from ddpnas.cli.main import main
from ddpnas.errors import DataError
from ddpnas.generation.latency import phone_table
from ddpnas.spaces.mobile.space import MBCONV1, MobileSpace, layers

PHONE_TABLE = SHARED_DATA / "mobile" / "mobile_trim.yaml"
SPACE = MobileSpace()
SEVENTH = [spec.ops[6] for spec in layers()]  # zero, or 3x3_MBConv1 on stage-first layers


def test_phone_table_lacks_mbconv1_and_excludes_it_instead_of_costing_it_zero() -> None:
    with pytest.raises(DataError, match="lacks 6 choice"):
        phone_table(SPACE, require(PHONE_TABLE))
    fixed, cost, excluded = phone_table(SPACE, PHONE_TABLE, missing="exclude")
    assert excluded[:, 6].tolist() == [name == MBCONV1 for name in SEVENTH]
    assert excluded.sum() == 6 and (cost[:, :6] > 0).all() and fixed > 0


def test_cli_generates_a_mobile_network_within_its_budgets(tmp_path: Path, capsys) -> None:
    """The seventh choice is the likeliest everywhere; the phone table has no 3x3_MBConv1, so the
    stage-first layers must take an MBConv the table costs, and both budgets must hold."""
    theta = np.full((21, 7), 0.05)
    theta[:, 6] = 0.7
    (tmp_path / "T.json").write_text(json.dumps(theta.tolist()))
    network = {"width_mult": 0.25, "resolution": 32}
    args = ["generate", "--theta", str(tmp_path / "T.json"), "--space", "mobile",
            "--network", json.dumps(network), "--latency", str(require(PHONE_TABLE)),
            "--budget", "macs=1.0e6", "--budget", "latency_ms=80"]  # fmt: skip
    out = tmp_path / "arch.json"
    assert main([*args, "--missing", "exclude", "--out", str(out)]) == 0
    gen = json.loads(out.read_text())
    assert gen["costs"]["macs"] <= 1.0e6 and gen["costs"]["latency_ms"] <= 80
    assert gen["measured_costs"]["macs"] == gen["costs"]["macs"]  # re-counted on the network
    assert gen["measured_costs"]["params"] == gen["costs"]["params"]
    names = [spec.ops[k] for spec, k in zip(layers(), gen["arch"], strict=True)]
    assert MBCONV1 not in names and names.count("zero") == SEVENTH.count("zero")
    assert "re-measured" in capsys.readouterr().out
    assert read_arch(out) == tuple(gen["arch"])
    assert generated_under(out) == {"macs": 1.0e6, "latency_ms": 80.0}
    assert budget_text(generated_under(out)) == "macs <= 1.00 M MACs, latency_ms <= 80.00 ms"
    assert main([*args, "--out", str(tmp_path / "x.json")]) == 2  # missing entries: an error
    assert "lacks 6 choice(s)" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: c["generate"]["nb201"].update(retrain=[{"macs": 1.0e8}]),
            "generate.nb201.retrain: only networks of the ImageNet search",
        ),
        (
            lambda c: c["imagenet"].update(enabled=False),
            "generate.mobile.experiment is 'imagenet' but the config has no enabled imagenet",
        ),
    ],
)
def test_pipeline_refuses_a_generate_entry_it_cannot_run(tmp_path: Path, change, message) -> None:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    change(config)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-s", str(SNAKEFILE),
         "--directory", str(tmp_path), "--configfile", str(tmp_path / "bad.yaml")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert run.returncode != 0 and message in run.stdout + run.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_pipeline_mobile_chain_on_the_default_config(tmp_path: Path) -> None:
    """The shipped default config's chain via Snakemake: stand-in, search, generation, retraining
    of the generated networks and the ImageNet table (the transferred DARTS cell, which needs a
    CIFAR-10 search, is tested in test_imagenet.py)."""
    require(CIFAR_ZIP)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["data"]["root"] = str(SHARED_DATA)
    config["imagenet"]["transfer"]["searches"] = []
    entry = config["generate"]["mobile"]
    entry["latency"] = str(REPO / entry["latency"])  # relative to the repository root
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    targets = [
        "results/config/tables/imagenet.csv",
        "results/config/tables/generation_mobile.md",
    ]
    subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory",
         str(tmp_path), "--configfile", str(tmp_path / "config.yaml"), "--cores", "2", *targets],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    results = tmp_path / "results" / "config"
    table = pd.read_csv(results / "tables" / "imagenet.csv")
    ours = table[table["source"].str.startswith("ours")]
    assert len(ours) == 1 + len(entry["retrain"]) and ours["data"].str.startswith("stand-in").all()
    for i, budgets in enumerate(entry["retrain"]):
        gen = json.loads((results / f"generated/mobile/seed0/net{i}.json").read_text())
        assert gen["budgets"] == budgets
        for resource, budget in budgets.items():
            assert gen["costs"][resource] <= budget
        assert gen["measured_costs"]["macs"] == gen["costs"]["macs"]
        retrain = json.loads(
            (results / f"imagenet/retrain/mobile-net{i}/seed0/result.json").read_text()
        )
        assert retrain["arch"] == gen["arch_str"] and retrain["budgets"] == budgets
        assert 1e6 * retrain["macs_m"] == pytest.approx(gen["costs"]["macs"])  # same network
        row = ours[ours["method"].str.endswith(f"(mobile, generated under {budget_text(budgets)})")]
        assert len(row) == 1 and row["top1"].iloc[0] == pytest.approx(100 * retrain["test_acc"])
        assert (results / f"benchmarks/generated/mobile/seed0/net{i}.tsv").exists()
    sweep = pd.read_csv(results / "tables" / "generation_mobile.csv")
    assert len(sweep) == int(entry["sweep"].rsplit(":", 1)[1]) and sweep["feasible"].any()
    ok = sweep[sweep["feasible"]]
    assert (ok["macs"] <= ok["budget"]).all() and (ok["measured_macs"] == ok["macs"]).all()
    table = (results / "tables" / "generation_mobile.md").read_text()
    # the phone table's latencies are of another network than the costed one: both are named
    assert "phone ms of the phone table's network (width 1.0, 224 px), not the costed" in table
    assert "macs (M MACs; width_mult=" in table
    assert (results / "tables" / "generation_mobile.tex").exists()
    assert (results / "figures" / "generation_mobile.png").read_bytes()[:4] == b"\x89PNG"
