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


def _record(experiment: str, seed: int, arch: str = "a") -> dict:
    env = {"hardware": "AMD EPYC (2 threads)", "torch": "2.14.1", "python": "3.11.7"}
    return {"experiment": experiment, "seed": seed, "environment": env, "space": "nb201",
            "arch": arch}  # fmt: skip


#: Found cells of the tabular DDPNAS experiment by seed: b x4, a x4 (b seen first), c x2.
CELLS = ["b", "a", "b", "a", "c", "b", "a", "b", "a", "c"]
TIMING_NOTE = (
    "Pipeline wall time (first job's start to last job's end with --cores 2; jobs run in "
    "parallel where cores allow): 400 s = 6.7 min for 700 s of summed job time, on AMD EPYC, "
    "2 CPU cores."
)


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """A results folder as the pipeline leaves it: tables and search records."""
    tables = tmp_path / "results" / "config" / "tables"
    tables.mkdir(parents=True)
    for name in ("zeta", "costs", "alpha"):
        one = pd.DataFrame({"a": [1]})
        write_table(one, one, tables / name, f"Table {name}")
    nb201 = pd.DataFrame(
        {"Method": ["DDPNAS", "RS"], "Runs": ["10", "1"], "C10 test": ["93.5", "93.7"],
         "Source": ["ours: nb201-ddpnas-tabular", "ours: ws"]}
    )  # fmt: skip
    write_table(nb201, nb201, tables / "nb201", "Table nb201", notes=["a long note"])
    timing = pd.DataFrame({"Group": ["search"], "Wall (s)": ["400"]})
    write_table(timing, timing, tables / "timing", "Where the time goes", notes=[TIMING_NOTE])
    runs = [("nb201-ddpnas-tabular", s, CELLS[s]) for s in range(10)] + [("ws", 0, "a")]
    for exp, seed, arch in runs:
        path = tmp_path / "results" / "config" / "search" / exp / f"seed{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_record(exp, seed, arch)))
    (tmp_path / "README.md").write_text(
        f"# Project\n\n{readme.RUNTIME[0]}typed 5 min{readme.RUNTIME[1]}\n\n## Results\n\n"
        f"{readme.START}\nhand-typed 93.35\n{readme.END}\n\n## More\n"
    )
    return tmp_path


def test_known_tables_first_in_documented_order_then_the_rest_by_name(results: Path) -> None:
    files = readme.table_files(results / "results" / "config" / "tables")
    assert [f.stem for f in files] == ["nb201", "costs", "alpha", "timing", "zeta"]


def test_provenance_lines_name_config_machine_seed_ranges_and_top_cells() -> None:
    records = [_record("nb201-ddpnas-tabular", s, CELLS[s]) for s in range(10)]
    summary = readme.run_summary([*records, _record("ws", 0)], "config/config.yaml")
    line = readme.provenance(summary, "results/reference/config/")
    assert "`config/config.yaml`" in line
    assert "AMD EPYC (2 threads), torch 2.14.1, Python 3.11.7" in line
    assert "[results/reference/config/](results/reference/config/)" in line
    # seeds as ranges; the three most frequent cells, ties in first-seen order, never all cells
    assert readme.table_provenance(summary, "nb201") == (
        "seeds 0-9: 1 experiment; seeds 0: 1 experiment; nb201-ddpnas-tabular found `b` x4, "
        "`a` x4, `c` x2 (3 distinct cells)"
    )
    many = [_record("nb201-ddpnas-tabular", s, f"cell{s % 7}") for s in range(200)]
    line = readme.table_provenance(readme.run_summary(many, "c.yaml"), "nb201")
    assert line.startswith("seeds 0-199: 1 experiment;") and "(7 distinct cells)" in line
    assert line.count("`") == 6 and len(line) < 200


def _args(results: Path) -> list[str]:
    snapshot = results / "results" / "reference" / "config"
    return ["report", "readme", "--snapshot", str(snapshot), "--readme", str(results / "README.md")]


def test_readme_comes_from_a_committed_snapshot_of_the_run(results: Path, capsys) -> None:
    args, run = _args(results), str(results / "results" / "config")
    assert main([*args, "--check"]) == 2  # no snapshot yet
    assert main([*args, "--run", run]) == 0
    snapshot = results / "results" / "reference" / "config"
    assert sorted(p.name for p in (snapshot / "tables").iterdir()) == [
        "alpha.md", "costs.md", "nb201.md", "timing.md", "zeta.md",
    ]  # fmt: skip
    assert json.loads((snapshot / "run.json").read_text())["seeds"] == {
        "nb201-ddpnas-tabular": list(range(10)),
        "ws": [0],
    }
    text = (results / "README.md").read_text()
    assert "hand-typed" not in text and text.endswith("## More\n") and "\n# Table" not in text
    # the headline table, its headline columns only, a provenance line and a link to all of it
    section = text.split(readme.START)[1]
    assert "### Table nb201" in section and "| Method | Runs | C10 test |" in section
    assert "Source" not in section and "a long note" not in section
    assert "[full table](results/reference/config/tables/nb201.md)" in section
    assert "seeds 0-9: 1 experiment" in section
    # the other tables are linked, not copied; the runtime line comes from the timing table
    assert "### Table zeta" not in section
    assert "[zeta](results/reference/config/tables/zeta.md)" in section
    assert "took 6.7 min of wall time with --cores 2 on AMD EPYC, 2 CPU cores (" in text
    assert "typed 5 min" not in text
    # --check compares the README with the snapshot alone: the run's folder may be gone (CI)
    shutil.rmtree(results / "results" / "config")
    assert main([*args, "--check"]) == 0
    nb201 = snapshot / "tables" / "nb201.md"
    nb201.write_text(nb201.read_text().replace("93.5", "93.6"))
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
    assert "zeta" not in (results / "README.md").read_text()


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
