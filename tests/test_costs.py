"""Cost accounting: what records hold, how the table counts device-hours, Snakemake agreement."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import NB201_TABLE, REPO, SHARED_DATA, SNAKEFILE, require

from ddpnas.cli.main import main
from ddpnas.config.load import load_config
from ddpnas.report import cost_table as costs
from ddpnas.report.estimate import estimate
from ddpnas.runtime import run_cost


def test_run_cost_names_devices_memory_and_wall_time(monkeypatch) -> None:
    cpu = run_cost(torch.device("cpu"))
    assert cpu["device"] == "cpu" and cpu["gpu_model"] is None and cpu["devices"] == 1
    assert cpu["peak_memory_mb"] > 10 and cpu["process_seconds"] > 0
    monkeypatch.setenv("WORLD_SIZE", "4")  # torchrun's world size is the number of devices
    assert run_cost(torch.device("cpu"))["devices"] == 4


def _job(stage: str = "search", device: str = "cpu", devices: int = 1, wall: float = 3600.0):
    return costs.Job(
        method="DDPNAS",
        experiment="darts-ddpnas",
        space="darts",
        strategy="ddpnas",
        order=None,
        stage=stage,
        seed=0,
        cost={
            "device": device,
            "devices": devices,
            "gpu_model": "NVIDIA H200" if device == "cuda" else None,
            "peak_memory_mb": 100.0,
            "process_seconds": wall,
        },
        hardware="AMD EPYC (2 threads)",
        torch="2.14.1",
        loop_seconds=wall - 5,
        simulated_seconds=0.0,
        benchmark_seconds=wall * 1.02,
    )


def test_device_hours_are_wall_times_devices_and_named_by_device_kind() -> None:
    gpu = costs.cost_rows([_job(device="cuda", devices=2, wall=3600.0)])
    row = gpu.iloc[0]
    assert row["device_hours"] == pytest.approx(2.0) and row["unit"] == "GPU-hours"
    assert row["hardware"] == "NVIDIA H200"
    # DDPNAS (DARTS space) has two published costs: 0.06 GPU-days (v1) and 1.8 GPU-hours (IJCV).
    assert "0.06 GPU-days" in row["published"] and "1.8 GPU-hours on Tesla V100" in row["published"]
    assert row["ours_in_published_unit"] == f"{2 / 24:.3g} GPU-days"
    assert row["benchmark_rel_diff"] == pytest.approx(0.02 / 1.02)
    cpu = costs.cost_rows([_job(wall=1800.0), _job(wall=5400.0)]).iloc[0]
    assert cpu["unit"] == "CPU-hours" and cpu["device_hours"] == pytest.approx(1.0)  # mean
    assert cpu["ours_in_published_unit"].endswith("CPU-days") and cpu["runs"] == 2
    table = costs.cost_rows([_job(stage="retrain")])
    assert table.iloc[0]["published"] == "-"  # published figures are search costs only
    published_only = table[table["source"] == "published"]
    assert "ProxylessNAS (ImageNet mobile setting)" in set(published_only["method"])
    assert len(costs.cost_display(table)) == len(table)


def test_records_without_cost_and_torn_benchmarks_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "b.tsv"
    bad.write_text("nonsense\n1\n")
    with pytest.raises(costs.DDPNASError, match="benchmark"):
        costs.read_benchmark(bad)
    record = {"label": "x", "experiment": "x", "seed": 0, "space": "nb201", "strategy": "rs"}
    with pytest.raises(costs.DDPNASError, match="no cost block"):
        costs.search_jobs([{**record, "spec": {}, "environment": {}}], [bad])


def test_estimate_of_the_paper_config_uses_the_measured_speeds(
    capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ddpnas.report import memory

    def fixed(kind: str, options: dict, resolution: int) -> dict[str, float]:
        """Skip the CPU measurement (tests/test_paper_scale.py covers it)."""
        return {"per_image": 2**20, "fixed": 0.0, "params": 1e6, "macs": 1e8}

    monkeypatch.setattr(memory, "measure", fixed)
    monkeypatch.setattr(memory, "macs", fixed)
    df = estimate(load_config(REPO / "config" / "paper.yaml")).set_index(["stage", "experiment"])
    ddpnas = df.loc[("search", "darts-ddpnas")]
    # 105 epochs x 391 steps x 63.3 ms + one validation of 25k images per epoch (1/3 of a step).
    expected = 105 * 391 * 63.3 * (1 + 0.333) / 3.6e6
    assert ddpnas["gpu_hours_per_seed"] == pytest.approx(expected, rel=1e-3)
    assert df.loc[("search", "nb201-ddpnas-tabular"), "gpu_hours"] == 0
    assert df.loc[("retrain", "darts-ddpnas"), "epochs"] == 600
    assert main(["report", "estimate", "--config", str(REPO / "config" / "paper.yaml")]) == 0
    out = capsys.readouterr().out
    assert "NVIDIA H200" in out and "- total:" in out and "darts-darts2" in out
    assert "Paper plan" in out and "results/paper/tables/nb201.md" in out


@pytest.mark.slow
def test_record_and_snakemake_benchmark_agree(tmp_path: Path, cache_dir: Path) -> None:
    """A real search run by Snakemake: its record's wall time matches the benchmark TSV."""
    require(NB201_TABLE)
    config = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())
    config["data"]["root"] = str(SHARED_DATA)
    # a per-seed (weight-sharing) job: a tabular job holds all seeds, so no record has its own TSV
    ws = config["searches"]["nb201-ddpnas-ws"]
    ws["train"] = {**ws["train"], "train_size": 64, "valid_size": 32}
    config["searches"] = {"nb201-ddpnas-ws": ws}
    config["generate"] = {}
    config["retrain"]["searches"] = []
    config["report"]["ranking"]["experiments"] = []
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env["DDPNAS_CACHE"] = str(cache_dir)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(SNAKEFILE),
            "--directory",
            str(tmp_path),
            "--configfile",
            str(path),
            "--cores",
            "1",
            "results/c/tables/costs.md",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    record = json.loads((tmp_path / "results/c/search/nb201-ddpnas-ws/seed0.json").read_text())
    bench = costs.read_benchmark(tmp_path / "results/c/benchmarks/search/nb201-ddpnas-ws/seed0.tsv")
    wall = record["cost"]["process_seconds"]
    assert abs(wall - bench) <= costs.AGREEMENT * bench, (wall, bench)
    table = pd.read_csv(tmp_path / "results/c/tables/costs.csv")
    ours = table[table["source"] == "ours: nb201-ddpnas-ws"].iloc[0]
    assert ours["benchmark_rel_diff"] <= costs.AGREEMENT and ours["unit"] == "CPU-hours"
    assert ours["device_hours"] == pytest.approx(wall / 3600)
