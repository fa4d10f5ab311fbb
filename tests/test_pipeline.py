"""End to end: the CLI, a SIGKILLed search that resumes, and the Snakemake pipeline on ci.yaml."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import (
    CIFAR_ZIP,
    NB201_TABLE,
    REPO,
    SHARED_DATA,
    SNAKEFILE,
    pipeline_env,
    require,
    without_keys,
)
from report_browser import browser_or_skip, table_views

from ddpnas.cli.main import main
from ddpnas.engine.evaluators import TabularEvaluator
from ddpnas.report import readme
from ddpnas.spaces.darts.genotype import Genotype
from ddpnas.spaces.nb201 import NB201Space


def _ci_config(tmp_path: Path, **ws_overrides: object) -> Path:
    """config/ci.yaml with an absolute data root, so it works from any working directory."""
    config = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())
    config["data"]["root"] = str(require(SHARED_DATA))
    config["searches"]["nb201-ddpnas-ws"].update(ws_overrides)
    path = tmp_path / "ci.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# What a record holds besides its numbers: timing, and the machine (kernel, CPU name, versions);
# and keys added after the records were pinned ("split": which train/valid split, issue 18).
VOLATILE = {"search_seconds", "seconds", "environment", "cost", "split"}
RUNTIME = ("threads", "cpu_capability", "device", "torch")


def record_digest(record: dict) -> str:
    """sha256 of a record without its volatile fields (timing and machine description)."""

    text = json.dumps(without_keys(record, VOLATILE), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def check_records_pinned(search: Path) -> None:
    """The ci config's records equal those of the code before the package was reorganised
    (tests/fixtures/ci_records.json). Tabular records are pure NumPy: equal on any machine.
    Weight-sharing records are compared where the runtime (threads, CPU kernels, torch) is the
    one they were pinned with, as a checkpoint's fingerprint is."""
    pinned = json.loads((REPO / "tests" / "fixtures" / "ci_records.json").read_text())
    for key, digest in pinned["records"].items():
        record = json.loads((search / f"{key}.json").read_text())
        runtime = {k: record["environment"][k] for k in RUNTIME}
        if record["mode"] == "tabular" or runtime == pinned["runtime"]:
            assert record_digest(record) == digest, f"{key} differs from the pinned record"
        if record["mode"] == "weight_sharing":  # the JPEG copy: the seeded split, said so
            assert "not the canonical CIFAR-10 release" in record["split"]["name"], key


def _strip(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def test_tabular_reward_is_the_200_epoch_validation_accuracy(bench) -> None:
    """Published defect 4: results were looked up with the 12-epoch schedule."""
    space = NB201Space()
    evaluator = TabularEvaluator(bench, space, seed=0)
    arch_str = bench.arch_str(1)
    arch = space.str_to_arch(arch_str)
    row = pd.read_csv(NB201_TABLE).iloc[1]
    assert evaluator.evaluate(arch)["valid_acc"] == pytest.approx(
        row["cifar10_valid_valid_acc"] / 100
    )
    assert row["cifar10_valid_valid_acc"] != row["cifar10_valid_valid_acc_12ep"]
    assert bench.query(arch_str)["cifar10_test_acc"] == pytest.approx(row["cifar10_test_acc"])


def test_cli_tabular_search_writes_a_complete_record(tmp_path: Path, bench) -> None:
    out = tmp_path / "run.json"
    code = main(
        [
            "search",
            "--config",
            str(_ci_config(tmp_path)),
            "--experiment",
            "nb201-ddpnas-tabular",
            "--seed",
            "0",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    record = json.loads(out.read_text())
    assert record["epochs"] == 42 == len(record["history"])
    NB201Space().str_to_arch(record["arch"])
    assert record["simulated_seconds"] > 0 and record["search_seconds"] > 0
    assert {"torch", "hardware", "python"} <= set(record["environment"])
    pruned = [h["events"]["pruned"] for h in record["history"] if h["events"]]
    assert len(pruned) == 4 and all(len(p) == 6 for p in pruned)


def test_cli_rejects_a_bad_arch_and_missing_data(tmp_path: Path, capsys) -> None:
    assert (
        main(
            [
                "nb201",
                "lookup",
                "|nor_conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                "--source",
                str(require(NB201_TABLE)),
            ]
        )
        == 2
    )
    assert "nor_conv_9x9" in capsys.readouterr().err
    assert main(["nb201", "lookup", "0", "--source", str(tmp_path / "nowhere.csv.gz")]) == 2
    assert "nowhere.csv.gz" in capsys.readouterr().err


@pytest.mark.slow
def test_sigkilled_search_resumes_to_the_same_result(tmp_path: Path, cache_dir: Path) -> None:
    require(CIFAR_ZIP)
    config = _ci_config(tmp_path, strategy_args={"pruning_step": 2})
    env = pipeline_env(cache_dir)

    def command(name: str) -> list[str]:
        return [
            "ddpnas",
            "search",
            "--config",
            str(config),
            "--experiment",
            "nb201-ddpnas-ws",
            "--seed",
            "3",
            "--out",
            str(tmp_path / f"{name}.json"),
            "--checkpoint",
            str(tmp_path / f"{name}.pt"),
        ]

    subprocess.run(command("whole"), env=env, check=True, capture_output=True)
    victim = subprocess.Popen(
        command("killed"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    ckpt = tmp_path / "killed.pt"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if ckpt.exists() and len(torch.load(ckpt, weights_only=True)["history"]) >= 5:
            break
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "killed.json").exists(), "the run finished before it could be killed"
    subprocess.run(command("killed"), env=env, check=True, capture_output=True)
    whole = json.loads((tmp_path / "whole.json").read_text())
    resumed = json.loads((tmp_path / "killed.json").read_text())
    assert resumed["resumed_from_epoch"] >= 5
    assert resumed["arch"] == whole["arch"]
    assert _strip(resumed["history"]) == _strip(whole["history"])


def test_resumable_jobs_replace_a_checkpoint_of_another_config() -> None:
    """Snakemake reruns a search or retraining when its input changed; the checkpoint the old
    job left must not stop it (hand-run commands keep refusing it: the CLI's default)."""
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-p", "--nolock", "--forceall",
         "-s", str(SNAKEFILE), "--directory", str(REPO),
         "--configfile", str(REPO / "config" / "config.yaml")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    resumable = [
        line
        for line in run.stdout.splitlines()
        if "ddpnas " in line and ("--checkpoint" in line or "retrain --" in line)
    ]
    kinds = {k for k in ("search", "imagenet search", "retrain --genotype", "--arch") for line in
             resumable if k in line}  # fmt: skip
    assert kinds == {"search", "imagenet search", "retrain --genotype", "--arch"}
    assert all("--stale-checkpoint restart" in line for line in resumable)


@pytest.fixture(scope="module")
def ci_report(ci_run: Path, cache_dir: Path) -> Path:
    """The HTML report of the session's ci run (report.html beside its results/), made once for
    the tests of this module that read it."""
    report = ci_run / "report.html"
    subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(ci_run),
         "--configfile", str(ci_run / "ci.yaml"), "--report", str(report)],
        env=pipeline_env(cache_dir), check=True, capture_output=True,
    )  # fmt: skip
    return report


@pytest.mark.slow
def test_pipeline_on_ci_config(ci_run: Path, ci_report: Path, bench) -> None:
    results = ci_run / "results" / "ci"  # each config writes under results/<its name>
    check_records_pinned(results / "search")
    table = pd.read_csv(results / "tables" / "nb201.csv")
    ours = table[table["source"].str.startswith("ours")].set_index("source")
    assert set(ours.index) == {
        f"ours: {e}"
        for e in (
            "nb201-ddpnas-tabular",
            "nb201-ddpnas-ws",
            "nb201-rs-tabular",
            "nb201-reinforce-tabular",
            "nb201-rea-tabular",
            "nb201-rs-c100",
            "nb201-rsps-ws",
            "nb201-darts1-ws",
        )
    }
    # budgets count only used queries; the CIFAR-100 search spends a query budget, no time
    assert ours.loc["ours: nb201-rea-tabular", "simulated_max_seconds"] <= 12000
    c100 = ours.loc["ours: nb201-rs-c100"]
    assert c100["search_data"] == "CIFAR-100" and c100["search_epochs"] == 105
    assert c100["simulated_seconds"] == 0
    assert list(ours["search_data"]).index("CIFAR-100") == len(ours) - 1  # grouped last
    assert 0 < ours.loc["ours: nb201-reinforce-tabular", "decision_entropy"] <= 1
    tabular = ours.loc["ours: nb201-ddpnas-tabular"]
    assert tabular["runs"] == 3 and tabular["search_epochs"] == 42
    records = [
        json.loads((results / "search" / "nb201-ddpnas-tabular" / f"seed{s}.json").read_text())
        for s in range(3)
    ]
    c10 = [bench.query(r["arch"])["cifar10_test_acc"] for r in records]
    assert tabular["c10_test"] == pytest.approx(pd.Series(c10).mean())
    assert tabular["c10_test_std"] == pytest.approx(pd.Series(c10).std())
    assert ours.loc["ours: nb201-ddpnas-ws", "search_epochs"] == 14
    assert ours.loc["ours: nb201-rs-tabular", "runs"] == 2
    assert ours.loc["ours: nb201-darts1-ws", "search_epochs"] == 2
    assert ours.loc["ours: nb201-rsps-ws", "search_epochs"] == 3  # 2 training + 1 selection
    assert (ours["search_seconds"] > 0).all()
    optimum = table[table["method"].str.startswith("optimum")].iloc[0]
    assert optimum["c10_test"] == pytest.approx(94.37, abs=0.01)
    assert optimum["c10_valid"] == pytest.approx(91.61, abs=0.01)
    assert "RSPS" in set(table["method"])
    markdown = (results / "tables" / "nb201.md").read_text()
    assert "± " in markdown and "NAS-Bench-201" in markdown
    for exp in ("nb201-ddpnas-tabular", "nb201-ddpnas-ws", "nb201-darts1-ws", "darts-ddpnas"):
        png = results / "figures" / f"theta_{exp}.png"
        assert png.read_bytes()[:4] == b"\x89PNG"
        # a tabular experiment runs all its seeds in one job
        job = "seeds.tsv" if exp.endswith("tabular") else "seed0.tsv"
        assert (results / "benchmarks" / "search" / exp / job).exists()
    assert (results / "figures" / "theta_nb201-reinforce-tabular.png").exists()

    c10_table = pd.read_csv(results / "tables" / "cifar10.csv")
    row = c10_table[c10_table["source"] == "ours: darts-ddpnas"].iloc[0]
    retrain = json.loads(
        (results / "retrain" / "darts-ddpnas" / "seed0" / "result.json").read_text()
    )
    assert row["test_error"] == pytest.approx(100 * (1 - retrain["test_acc"]))
    assert row["scale"].startswith("small-scale") and "CPU" in row["scale"]
    assert retrain["epochs"] == 1 and retrain["train_images"] == 64
    genotype = json.loads((results / "genotypes" / "darts-ddpnas" / "seed0.txt").read_text())
    record = json.loads((results / "search" / "darts-ddpnas" / "seed0.json").read_text())
    assert Genotype.from_json(genotype).to_json() == record["genotype"] == genotype
    assert "DDPNAS" in set(c10_table["method"]) and "DARTS (second order)" in set(
        c10_table["method"]
    )

    # The evidence stages: supernet ranking, costs, and one HTML report with every item captioned.
    ranking = pd.read_csv(results / "tables" / "nb201_ranking.csv")
    assert set(ranking["experiment"]) == {"nb201-ddpnas-ws", "nb201-rsps-ws"}
    assert (results / "supernets" / "nb201-rsps-ws" / "seed0.pt").exists()
    costs = pd.read_csv(results / "tables" / "costs.csv")
    ours = costs[costs["source"].str.startswith("ours")]
    assert set(ours["stage"]) == {"search", "retrain"} and (ours["unit"] == "CPU-hours").all()
    # Every table is whole (what `report readme` checks); no job left a lock or temp file.
    for md in (results / "tables").glob("*.md"):
        readme.read_table(md)
    assert not [p for p in ci_run.rglob(".*") if p.suffix in (".lock", ".tmp")]
    assert ci_report.stat().st_size > 0
    timing = pd.read_csv(results / "tables" / "timing.csv")  # a rule of the run, in the report
    assert "search/nb201-ddpnas-ws" in set(timing["group"]) and (timing["wall_s"] > 0).all()


@pytest.mark.slow
def test_report_shows_every_table_inline_with_its_caption(ci_run: Path, ci_report: Path) -> None:
    """Headless Chromium opens report.html and clicks each table: an HTML table is visible in
    the page (not a download), with its title as caption and the report's description."""
    chromium = browser_or_skip()
    views = table_views(ci_report, chromium, ["Tables", "Bound"])
    tables = sorted(p.stem for p in (ci_run / "results" / "ci" / "tables").glob("*.html"))
    assert "timing" in tables and "nb201" in tables
    assert len(views) == len(tables), [v.label for v in views]
    for view in views:
        assert view.body_rows >= 1 and view.width > 100 and view.height > 20, view
        assert view.caption and view.description, view
    titles = " | ".join(v.caption for v in views)
    assert "Where the pipeline's time goes" in titles and "NAS-Bench-201" in titles


def test_cli_exports_the_compact_table_from_the_official_files(tmp_path: Path) -> None:
    from conftest import NATS_FIXTURE

    out = tmp_path / "table.csv.gz"
    code = main(
        [
            "nb201",
            "export-table",
            "--source",
            str(require(NATS_FIXTURE)),
            "--out",
            str(out),
            "--indices",
            "0",
            "11",
            "284",
        ]
    )
    assert code == 0
    exported = pd.read_csv(out).set_index("index")
    reference = pd.read_csv(require(NB201_TABLE)).set_index("index").loc[[0, 11, 284]]
    pd.testing.assert_frame_equal(exported, reference, check_exact=False, atol=1e-4)
    # an index whose record the fixture lacks is an error, and leaves no file behind
    assert (
        main(
            [
                "nb201",
                "export-table",
                "--source",
                str(NATS_FIXTURE),
                "--out",
                str(tmp_path / "bad.csv.gz"),
                "--indices",
                "5",
            ]
        )
        == 2
    )
    assert not (tmp_path / "bad.csv.gz").exists()
