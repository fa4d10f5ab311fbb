"""The README's results section is generated from the tables and checked against them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO

from ddpnas.cli.main import main
from ddpnas.report import readme
from ddpnas.report.tables import write_table


def _record(experiment: str, seed: int) -> dict:
    env = {"hardware": "AMD EPYC (2 threads)", "torch": "2.14.1", "python": "3.11.7"}
    return {"experiment": experiment, "seed": seed, "environment": env}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """A results folder as the pipeline leaves it: tables and search records."""
    tables = tmp_path / "results" / "config" / "tables"
    tables.mkdir(parents=True)
    for name in ("zeta", "costs", "nb201", "alpha"):
        one = pd.DataFrame({"a": [1]})
        write_table(one, one, tables / name, f"Table {name}")
    for exp, seeds in (("tab", range(10)), ("ws", [0])):
        for seed in seeds:
            path = tmp_path / "results" / "config" / "search" / exp / f"seed{seed}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(_record(exp, seed)))
    (tmp_path / "README.md").write_text(
        f"# Project\n\n## Results\n\n{readme.START}\nhand-typed 93.35\n{readme.END}\n\n## More\n"
    )
    return tmp_path


def test_known_tables_first_in_documented_order_then_the_rest_by_name(results: Path) -> None:
    files = readme.table_files(results / "results" / "config" / "tables")
    assert [f.stem for f in files] == ["nb201", "costs", "alpha", "zeta"]


def test_generated_block_names_config_seeds_machine_and_torch(results: Path) -> None:
    records = [_record("tab", s) for s in range(10)] + [_record("ws", 0)]
    summary = readme.run_summary(records, "config/config.yaml")
    line = readme.provenance(summary, "results/reference/config/")
    assert "`config/config.yaml`" in line and "seeds 0-9: tab; seeds 0: ws" in line
    assert "AMD EPYC (2 threads), torch 2.14.1, Python 3.11.7" in line
    assert "[results/reference/config/](results/reference/config/)" in line


def _args(results: Path) -> list[str]:
    snapshot = results / "results" / "reference" / "config"
    return ["report", "readme", "--snapshot", str(snapshot), "--readme", str(results / "README.md")]


def test_readme_comes_from_a_committed_snapshot_of_the_run(results: Path, capsys) -> None:
    args, run = _args(results), str(results / "results" / "config")
    assert main([*args, "--check"]) == 2  # no snapshot yet
    assert main([*args, "--run", run]) == 0
    snapshot = results / "results" / "reference" / "config"
    assert sorted(p.name for p in (snapshot / "tables").iterdir()) == [
        "alpha.md", "costs.md", "nb201.md", "zeta.md",
    ]  # fmt: skip
    assert json.loads((snapshot / "run.json").read_text())["seeds"] == {
        "tab": list(range(10)),
        "ws": [0],
    }
    text = (results / "README.md").read_text()
    assert "hand-typed" not in text and text.endswith("## More\n") and "### Table zeta" in text
    assert "### Table nb201" in text and "\n# Table" not in text
    assert "(results/reference/config/)" in text  # linked relative to the README
    # --check compares the README with the snapshot alone: the run's folder may be gone (CI)
    shutil.rmtree(results / "results" / "config")
    assert main([*args, "--check"]) == 0
    (snapshot / "tables" / "costs.md").write_text("# Table costs\n\n| a |\n|---|\n| 2 |\n")
    capsys.readouterr()
    assert main([*args, "--check"]) == 2
    assert "differs from the committed tables" in capsys.readouterr().err
    assert (results / "README.md").read_text() == text  # --check writes nothing
    assert main([*args, "--check", "--run", "x"]) == 2


def test_a_new_run_replaces_the_snapshot_whole(results: Path) -> None:
    args, tables = _args(results), results / "results" / "config" / "tables"
    assert main([*args, "--run", str(tables.parent)]) == 0
    (tables / "zeta.md").unlink()
    assert main([*args, "--run", str(tables.parent)]) == 0
    snapshot = results / "results" / "reference" / "config" / "tables"
    assert "zeta.md" not in {p.name for p in snapshot.iterdir()}
    assert "Table zeta" not in (results / "README.md").read_text()


def test_snapshot_folder_with_foreign_files_is_refused(results: Path, capsys) -> None:
    snapshot = results / "results" / "reference" / "config"
    snapshot.mkdir(parents=True)
    (snapshot / "notes.txt").write_text("mine")
    assert main([*_args(results), "--run", str(results / "results" / "config")]) == 2
    assert "did not write" in capsys.readouterr().err
    assert (snapshot / "notes.txt").read_text() == "mine"


def test_readme_without_markers_is_a_one_line_error_before_any_work(results: Path) -> None:
    (results / "README.md").write_text("# no markers\n")
    assert main([*_args(results), "--run", str(results / "results" / "config")]) == 2
    assert not (results / "results" / "reference").exists()


def test_repository_readme_matches_its_committed_snapshot() -> None:
    """What CI checks of the README: its results section is exactly the committed tables of the
    run that results/reference/config/run.json names (no pipeline run needed)."""
    args = ["report", "readme", "--check", "--readme", str(REPO / "README.md")]
    assert main([*args, "--snapshot", str(REPO / "results" / "reference" / "config")]) == 0
    text = (REPO / "README.md").read_text()
    section = text.split(readme.START, 1)[1].split(readme.END, 1)[0]
    assert "Generated by `ddpnas report readme`" in section
