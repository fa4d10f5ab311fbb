"""Bad input, tried as a new user would: each gives one line naming the problem and the fix, exit
status 2, no traceback, and nothing at the output path."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml
from conftest import NB201_TABLE, REPO, SHARED_DATA, SNAKEFILE, require

from ddpnas.cli.main import main
from ddpnas.io.checkpoints import save_checkpoint
from ddpnas.io.files import write_json
from ddpnas.io.locks import exclusive
from ddpnas.spaces.darts.genotype import DARTS_V2

CI = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())
TABULAR = json.dumps(CI["searches"]["nb201-ddpnas-tabular"])
WS = json.dumps(CI["searches"]["nb201-ddpnas-ws"])


def _search(
    spec: str, out: str = "rec.json", *extra: str, data: str = "{}", seed: str = "0"
) -> list[str]:
    return ["search", "--experiment", "x", "--spec", spec, "--data", data, "--seed", seed,
            "--out", out, *extra]  # fmt: skip


def _spec(**fields: object) -> str:
    return json.dumps({"space": "nb201", "seeds": [0], **fields})


def _read_only(tmp: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """A read-only directory; as root (who may write anyway) os.access is made to say so too."""
    ro = tmp / name
    ro.mkdir()
    ro.chmod(0o555)
    if os.geteuid() == 0:
        real = os.access
        monkeypatch.setattr(
            os, "access", lambda p, mode: False if Path(p).absolute() == ro else real(p, mode)
        )


def _disk_full_on(method: str, marker: str, after: int = 0):
    """Make ``Path.<method>`` raise ENOSPC for temp files of ``marker`` after ``after`` calls."""

    def setup(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        real = getattr(pathlib.Path, method)
        calls = []

        def write(self: Path, *args: object, **kwargs: object) -> object:
            if marker in self.name and self.name.endswith(".tmp"):
                calls.append(self)
                if len(calls) > after:
                    raise OSError(errno.ENOSPC, "No space left on device", str(self))
            return real(self, *args, **kwargs)

        monkeypatch.setattr(pathlib.Path, method, write)

    return setup


def _locked(*names: str):
    def setup(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> contextlib.AbstractContextManager:
        return exclusive([tmp / n for n in names])  # another process's run on these paths

    return setup


def _previous_checkpoint_intact(tmp: Path) -> None:
    state = torch.load(tmp / "ck.pt", weights_only=True)
    assert len(state["history"]) == 2  # the last good one, after two epochs


@dataclass
class Case:
    argv: Callable[[Path], list[str]]
    expect: list[str]
    absent: list[str] = field(default_factory=lambda: ["rec.json"])
    setup: Callable[[Path, pytest.MonkeyPatch], object] | None = None
    check: Callable[[Path], None] | None = None


EMPTY = "empty.json"  # a valid-JSON but empty record: {}
CASES = {
    "seed-negative": Case(lambda t: _search(TABULAR, seed="-1"), ["--seed", "non-negative"]),
    "threads-negative": Case(lambda t: _search(TABULAR, "rec.json", "--threads", "-2"),
                             ["--threads", "at least 1"]),
    "threads-zero": Case(lambda t: _search(TABULAR, "rec.json", "--threads", "0"),
                         ["--threads", "at least 1"]),
    "enas-ws-with-budget": Case(
        lambda t: _search(_spec(strategy="enas", mode="weight_sharing",
                                strategy_args={"budget_seconds": 100})),
        ["strategy_args", "budget_seconds", "unexpected"]),
    "rs-without-budget": Case(
        lambda t: _search(_spec(strategy="rs", mode="tabular",
                                strategy_args={"budget_seconds": None})),
        ["budget_seconds: null", "max_epochs"]),
    "genotype-empty-record": Case(lambda t: ["genotype", "--record", EMPTY, "--out", "g.txt"],
                                  [EMPTY, "missing experiment"], ["g.txt"]),
    "genotype-file-broken-json": Case(
        lambda t: ["retrain", "--genotype", "cell.json", "--out-dir", "run"],
        ["cell.json", "not valid JSON", "ddpnas genotype"], ["run"],
        lambda t, m: (t / "cell.json").write_text('{"normal": [["sep_conv_3x3", 0]')),
    "nb201-table-empty-record": Case(
        lambda t: ["report", "nb201-table", "--runs", EMPTY, "--out", "tab", "--bench",
                   str(NB201_TABLE)],
        [EMPTY, "missing"], ["tab.csv", "tab.md", "tab.tex"]),
    "cifar10-table-empty-records": Case(
        lambda t: ["report", "cifar10-table", "--searches", EMPTY, "--retrains", EMPTY, "--out",
                   "tab"],
        [EMPTY, "missing"], ["tab.csv", "tab.md", "tab.tex"]),
    "theta-plot-empty-record": Case(lambda t: ["report", "theta-plot", "--run", EMPTY, "--out",
                                               "t.png"], [EMPTY, "missing"], ["t.png"]),
    "theta-plot-unknown-format": Case(lambda t: ["report", "theta-plot", "--run", EMPTY, "--out",
                                                 "t.xyz"], [".xyz", ".png"], ["t.xyz"]),
    "read-only-out": Case(lambda t: _search(TABULAR, "ro/rec.json"), ["ro", "read-only"],
                          ["ro/rec.json"], lambda t, m: _read_only(t, m, "ro")),
    "read-only-checkpoint": Case(lambda t: _search(TABULAR, "rec.json", "--checkpoint", "ro/c.pt"),
                                 ["--checkpoint", "read-only"], ["rec.json", "ro/c.pt"],
                                 lambda t, m: _read_only(t, m, "ro")),
    "read-only-cache": Case(lambda t: _search(WS, data=json.dumps({"cache": str(t / "ro")})),
                            ["data.cache", "read-only"], setup=lambda t, m: _read_only(t, m, "ro")),
    "read-only-retrain-dir": Case(
        lambda t: ["retrain", "--genotype", "cell.txt", "--out-dir", "ro/run"],
        ["--out-dir", "read-only"], ["ro/run"], lambda t, m: _read_only(t, m, "ro")),
    "disk-full-record": Case(lambda t: _search(TABULAR), ["rec.json", "disk full"],
                             setup=_disk_full_on("write_text", "rec.json")),
    "disk-full-checkpoint": Case(lambda t: _search(TABULAR, "rec.json", "--checkpoint", "ck.pt"),
                                 ["ck.pt", "disk full", "intact"],
                                 setup=_disk_full_on("write_bytes", "ck.pt", after=2),
                                 check=_previous_checkpoint_intact),
    "missing-data-root": Case(lambda t: _search(WS, data=json.dumps(
        {"root": str(t / "no-such-dir"), "cache": str(t / "cache")})),
        ["data.root", "does not exist"], ["rec.json", "no-such-dir"]),
    "second-run-same-out": Case(lambda t: _search(TABULAR), ["rec.json", "in use"],
                                setup=_locked("rec.json")),
    "second-run-same-checkpoint": Case(
        lambda t: _search(TABULAR, "other.json", "--checkpoint", "ck.pt"), ["ck.pt", "in use"],
        ["other.json", "ck.pt"], _locked("ck.pt")),
    "nb201-lookup-bad-token": Case(
        lambda t: ["nb201", "lookup", "|nor_conv_3x3~0|+|none~0|nor_cnv_3x3~1|+|none~0|none~1|"
                   "none~2|"], ["'nor_cnv_3x3~1'", "unknown op", "nor_conv_3x3"]),
    "imagenet-search-without-imagenet": Case(
        lambda t: ["imagenet", "search", "--config", str(REPO / "config" / "paper.yaml"),
                   "--out", "rec.json"], ["ImageNet not found", "`ddpnas imagenet standin`"],
        setup=lambda t, m: m.delenv("DDPNAS_IMAGENET", raising=False)),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_input_gives_one_clear_line(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    require(NB201_TABLE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DDPNAS_NB201", str(NB201_TABLE))
    (tmp_path / EMPTY).write_text("{}")
    (tmp_path / "cell.txt").write_text(str(DARTS_V2))
    with contextlib.ExitStack() as stack:
        held = case.setup(tmp_path, monkeypatch) if case.setup else None
        if isinstance(held, contextlib.AbstractContextManager):
            stack.enter_context(held)
        code = main(case.argv(tmp_path))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("ddpnas: error:")]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "\n" not in lines[0].strip()
    for needle in case.expect:
        assert needle in lines[0], (needle, lines[0])
    for name in case.absent:
        assert not (tmp_path / name).exists(), name
    assert not list(tmp_path.rglob("*.tmp")), "a temp file was left behind"
    if case.check:
        case.check(tmp_path)


def test_nb201_lookup_finds_the_table_as_the_pipeline_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """No --source: the default config's data block (data.root: ../shared/data) is used."""
    require(NB201_TABLE)
    for var in ("DDPNAS_NB201", "DDPNAS_DATA"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    monkeypatch.chdir(REPO)
    assert yaml.safe_load((REPO / "config" / "config.yaml").read_text())["data"]["root"]
    assert main(["nb201", "lookup", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["index"] == 0


def test_outputs_respect_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_json(tmp_path / "r.json", {"a": 1})
        save_checkpoint(tmp_path / "c.pt", {"a": torch.zeros(1)})
    finally:
        os.umask(old)
    for name in ("r.json", "c.pt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o640, name


@pytest.mark.slow
def test_snakemake_names_the_bad_key_first(tmp_path: Path) -> None:
    config = {**CI, "thread": 2, "data": {"root": str(SHARED_DATA)}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-s", str(SNAKEFILE),
         "--directory", str(tmp_path), "--configfile", str(tmp_path / "bad.yaml")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert run.returncode != 0
    out = (run.stdout + run.stderr).splitlines()
    first = next(i for i, line in enumerate(out) if "thread" in line)
    assert "config" in out[first] and "'thread' was unexpected" in out[first]
    assert len(out) < 30, "the whole config was printed"  # ci.yaml alone is ~60 lines
    assert not (tmp_path / "results").exists()
