"""Many seeds of a tabular experiment in one job; its statistics; RS's charged validation time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import NATS_FIXTURE, REPO, SHARED_DATA, SNAKEFILE, require

import ddpnas.engine.experiment as experiment
from ddpnas.cli.main import main
from ddpnas.cli.search import parse_seeds
from ddpnas.config.load import validate_search
from ddpnas.engine.evaluators import TabularEvaluator
from ddpnas.errors import DDPNASError
from ddpnas.report.tables import nb201_display, nb201_rows
from ddpnas.spaces.nb201 import NB201Space


def ci_config(tmp_path: Path) -> Path:
    config = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())
    config["data"]["root"] = str(require(SHARED_DATA))
    path = tmp_path / "ci.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def without_timings(record: dict) -> dict:
    """A record minus what differs between two runs of the same search (wall-clock times)."""
    history = [{k: v for k, v in h.items() if k != "seconds"} for h in record["history"]]
    timing = ("search_seconds", "cost")  # wall time, peak memory: not part of the result
    return {**{k: v for k, v in record.items() if k not in timing}, "history": history}


def test_parse_seeds() -> None:
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("5") == [5]
    assert parse_seeds("0-2,7,9-10") == [0, 1, 2, 7, 9, 10]
    for bad in ("3-1", "a-b", "0-2,2", "-1", ""):
        with pytest.raises(DDPNASError, match="--seeds"):
            parse_seeds(bad)


@pytest.mark.parametrize("exp", ["nb201-reinforce-tabular", "nb201-ddpnas-tabular"])
def test_batch_records_equal_the_per_seed_records(tmp_path: Path, bench, exp: str) -> None:
    config = str(ci_config(tmp_path))
    pattern = str(tmp_path / "batch" / "{exp}" / "seed{seed}.json")
    assert main(["search", "--config", config, "--experiment", exp, "--seeds", "0-2",
                 "--out", pattern, "--threads", "1"]) == 0  # fmt: skip
    single = tmp_path / "single.json"
    assert main(["search", "--config", config, "--experiment", exp, "--seed", "1",
                 "--out", str(single), "--threads", "1"]) == 0  # fmt: skip
    batch = [json.loads(Path(pattern.format(exp=exp, seed=s)).read_text()) for s in range(3)]
    assert [r["seed"] for r in batch] == [0, 1, 2]
    assert without_timings(batch[1]) == without_timings(json.loads(single.read_text()))
    assert batch[0]["history"] != batch[1]["history"], "each seed is its own run"


def test_a_failing_seed_leaves_no_record(tmp_path: Path, bench, monkeypatch) -> None:
    real = experiment.search_record

    def fail_on_seed_2(*args, **kwargs):
        if kwargs["seed"] == 2:
            raise DDPNASError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(experiment, "search_record", fail_on_seed_2)
    pattern = str(tmp_path / "out" / "seed{seed}.json")
    config = str(ci_config(tmp_path))
    args = ["search", "--config", config, "--experiment", "nb201-rs-tabular", "--out", pattern]
    assert main([*args, "--seeds", "0-3"]) == 2
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_batch_refuses_what_it_cannot_do(tmp_path: Path, capsys) -> None:
    config = str(ci_config(tmp_path))
    cases = [
        (["--experiment", "nb201-ddpnas-ws", "--seeds", "0-1", "--out", "x{seed}"], "tabular"),
        (["--experiment", "nb201-rs-tabular", "--seeds", "0-1", "--out", "x.json"], "{seed}"),
        (["--experiment", "nb201-rs-tabular", "--seeds", "0-1", "--out", "{x}{seed}"], "{exp}"),
        (
            ["--experiment", "nb201-rs-tabular", "--seeds", "0", "--out", "a{seed}", "--checkpoint",
             "c.pt"],
            "--checkpoint",
        ),
    ]  # fmt: skip
    for args, message in cases:
        assert main(["search", "--config", config, *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("ddpnas: error:") and message in err and "Traceback" not in err
    assert not list(tmp_path.glob("x*")) and not list(tmp_path.glob("a*"))


def test_pipeline_runs_each_tabular_experiment_in_one_job(tmp_path: Path) -> None:
    """Dry run on ci.yaml: one job per tabular experiment, per-seed jobs for the others only."""
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory",
         str(tmp_path), "--configfile", str(ci_config(tmp_path)), "-n", "--cores", "1",
         "--quiet", "rules"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    counts = dict(
        (line.split()[0], int(line.split()[1]))
        for line in out.stdout.splitlines()
        if len(line.split()) == 2 and line.split()[1].isdigit()
    )
    assert counts["search_tabular_nb201_ddpnas_tabular"] == 1  # 3 seeds
    assert counts["search_tabular_nb201_rs_tabular"] == 1  # 2 seeds
    assert counts["search_tabular_nb201_reinforce_tabular"] == 1  # 2 seeds
    ci = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())["searches"]
    per_seed = sum(len(s["seeds"]) for s in ci.values() if s["mode"] == "weight_sharing")
    assert counts["search"] == per_seed


def test_tables_report_the_standard_error(bench) -> None:
    archs = [bench.arch_str(i) for i in (1, 11, 284, 1)]
    runs = [
        {"experiment": "e", "label": "E (tabular, noise 0.5 pp)", "arch": a, "epochs": 3,
         "search_seconds": 0.1, "simulated_seconds": 10.0, "environment": {"hardware": "cpu"},
             "spec": {"space": "nb201", "strategy": "rs", "mode": "tabular"}}
        for a in archs
    ]  # fmt: skip
    row = nb201_rows(runs, bench).iloc[0]
    tests = [bench.query(a)["cifar10_test_acc"] for a in archs]
    assert row["runs"] == 4
    assert row["c10_test_std"] == pytest.approx(np.std(tests, ddof=1))
    assert row["c10_test_se"] == pytest.approx(np.std(tests, ddof=1) / 2)
    shown = nb201_display(nb201_rows(runs, bench)).iloc[0]["C10 test"]
    assert (
        shown == f"{np.mean(tests):.2f} ± {np.std(tests, ddof=1):.2f} (SE {row['c10_test_se']:.2f})"
    )


def test_rs_charges_the_validation_pass_as_the_official_api(bench) -> None:
    """NAS-Bench-201's simulate_train_eval charges train-all-time + valid-per-time; the shipped
    charge_valid_epochs is the mean valid/train time ratio of the official fixture records."""
    nats_bench = pytest.importorskip("nats_bench")
    require(NATS_FIXTURE)
    api = nats_bench.create(str(NATS_FIXTURE), "tss", fast_mode=True, verbose=False)
    ratios, official = [], {}
    for index in (0, 11, 284):
        info = api.get_more_info(index, "cifar10-valid", hp="12", is_random=False)
        ratios.append(info["valid-per-time"] / info["train-per-time"])
        official[index] = info["train-all-time"] + info["valid-per-time"]
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["searches"]
    charge = config["nb201-rs-tabular"]["tabular"]["charge_valid_epochs"]
    assert charge == pytest.approx(np.mean(ratios), abs=5e-4)
    assert config["nb201-reinforce-tabular"]["tabular"]["charge_valid_epochs"] == charge
    space = NB201Space()
    evaluator = TabularEvaluator(bench, space, seed=0, hp="12", charge_epochs=12,
                                 charge_valid_epochs=charge)  # fmt: skip
    for index, cost in official.items():
        arch = space.str_to_arch(bench.arch_str(index))
        ours = evaluator.train(arch, 0, None)["sim_seconds"]
        assert ours == pytest.approx(cost, rel=0.01)


def test_labels_say_the_noise_unit() -> None:
    spec = {"space": "nb201", "strategy": "ddpnas", "mode": "tabular", "seeds": [0]}
    noisy = validate_search({**spec, "tabular": {"noise_std": 0.5}})
    assert experiment.default_label(noisy) == "ddpnas (tabular, noise 0.5 pp)"
    assert experiment.default_label(validate_search(spec)) == "ddpnas (tabular)"
    for name in ("config", "paper", "ci"):
        config = yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())
        for block in config["searches"].values():
            if block.get("tabular", {}).get("noise_std"):
                assert f"noise {block['tabular']['noise_std']:g} pp" in block["label"]
