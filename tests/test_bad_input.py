"""Bad input, tried as a new user would: each gives one line naming the problem and the fix, exit
status 2, no traceback, and nothing at the output path."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import pathlib
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import NB201_TABLE, REPO, SHARED_DATA, SNAKEFILE, require
from PIL import Image

from ddpnas.cli.main import main
from ddpnas.data.imagenet import CIFAR_WNIDS
from ddpnas.io.checkpoints import save_checkpoint
from ddpnas.io.files import write_json
from ddpnas.io.locks import exclusive
from ddpnas.report import readme
from ddpnas.report.tables import write_table
from ddpnas.spaces.darts.genotype import DARTS_V2
from ddpnas.spaces.mobile.space import MobileSpace

CI = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())
TABULAR = json.dumps(CI["searches"]["nb201-ddpnas-tabular"])
WS = json.dumps(CI["searches"]["nb201-ddpnas-ws"])
MOBILE_ARCH = MobileSpace().arch_to_str((1,) * MobileSpace().num_edges)  # what retrain reads
TOO_BIG = str(2**64)  # no generator takes it; 2**63 - 1 is the largest seed (test_largest_seed...)


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


def _disk_full_on(method: str, marker: str, after: int = 0, code: int = errno.ENOSPC, before=None):
    """Make ``Path.<method>`` raise ``code`` (ENOSPC: disk full; EFBIG: ``ulimit -f``) for temp
    files of ``marker`` after ``after`` calls; ``before`` sets up what the command reads."""

    def setup(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        if before is not None:
            before(tmp, monkeypatch)
        real = getattr(pathlib.Path, method)
        calls = []

        def write(self: Path, *args: object, **kwargs: object) -> object:
            if marker in self.name and self.name.endswith(".tmp"):
                calls.append(self)
                if len(calls) > after:
                    raise OSError(code, os.strerror(code))
            return real(self, *args, **kwargs)

        monkeypatch.setattr(pathlib.Path, method, write)

    return setup


def _images(root: Path, splits: dict[str, int], classes: tuple[str, ...], size: int) -> Path:
    """A tiny image folder <root>/<split>/<class>/*.jpg (one grey level per class)."""
    for split, count in splits.items():
        for label, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                grey = (40 + 80 * label + 7 * i,) * 3
                Image.new("RGB", (size, size), grey).save(folder / f"{name}_{i}.JPEG")
    return root


def _tiny_cifar(tmp: Path, monkeypatch: pytest.MonkeyPatch | None = None) -> None:
    """CIFAR-10's layout, 2 classes: 8 training images (4 + 4 in the NAS-Bench-201 split)."""
    _images(tmp / "c10", {"train": 4, "test": 2}, ("cat", "dog"), 32)


def _tiny_imagenet(tmp: Path, monkeypatch: pytest.MonkeyPatch | None = None) -> None:
    """ImageNet's folder layout, 2 classes: 12 training images, 4 validation images."""
    _images(tmp / "in", {"train": 6, "val": 2}, ("n01", "n02"), 16)


def _imagenet_block(workers: int = 0, search: dict | None = None, protocol: dict | None = None):
    """The default config's imagenet block, shrunk to the tiny folder (all of its images)."""
    block = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["imagenet"]
    block |= {"resolution": 16, "held_out": 4, "workers": workers}
    block["search"]["train"] |= {"train_size": None, "valid_size": None, "batch_size": 4}
    block["search"]["train"] |= search or {}
    block["retrain"]["protocol"]["overrides"] |= {
        "epochs": 1, "batch_size": 4, "train_size": None, "test_size": None, **(protocol or {})
    }  # fmt: skip
    return json.dumps(block)


def _imagenet(command: str, *extra: str, block: str | None = None, root: str = "in") -> list[str]:
    return ["imagenet", command, "--block", block or _imagenet_block(), "--root", root,
            "--device", "cpu", "--threads", "1", *extra]  # fmt: skip


def _retrain_in(*extra: str, block: str | None = None) -> list[str]:
    return _imagenet("retrain", "--arch", "arch.txt", "--out-dir", "run", *extra, block=block)


def _corrupt_val(content: bytes):
    """The tiny ImageNet folder with one validation JPEG replaced by ``content``."""

    def setup(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        _tiny_imagenet(tmp)
        (tmp / "in" / "val" / "n02" / "n02_1.JPEG").write_bytes(content)

    return setup


def _fake_standin(tmp: Path, monkeypatch: pytest.MonkeyPatch | None = None) -> None:
    """What ``ddpnas imagenet standin`` leaves (STANDIN.json and the JPEGs it lists), tiny."""
    _images(tmp / "st", {"train": 1, "val": 1}, ("n01",), 8)
    write_json(
        tmp / "st" / "STANDIN.json",
        {"stand_in": True, "images": {"train": {"n01": 1}, "val": {"n01": 1}}},
    )


def _standin(out: str, *extra: str) -> list[str]:
    return ["imagenet", "standin", "--cifar-zip", "no-such.zip", "--out", out, *extra]


def _keep(tmp: Path, monkeypatch: pytest.MonkeyPatch | None = None) -> None:
    (tmp / "keep").mkdir()
    (tmp / "keep" / "a.txt").write_text("precious")


def _kept(tmp: Path) -> None:
    assert (tmp / "keep" / "a.txt").read_text() == "precious"
    assert [p.name for p in (tmp / "keep").iterdir()] == ["a.txt"]


def _standin_kept(tmp: Path) -> None:
    names = sorted(str(p.relative_to(tmp / "st")) for p in (tmp / "st").rglob("*"))
    assert names == ["STANDIN.json", "notes.txt", "train", "train/n01", "train/n01/n01_0.JPEG",
                     "val", "val/n01", "val/n01/n01_0.JPEG"]  # fmt: skip


def _tabular_record(tmp: Path, monkeypatch: pytest.MonkeyPatch | None = None) -> None:
    """A real search record (rec0.json, milliseconds) for the report commands to read."""
    assert main(_search(TABULAR, "rec0.json")) == 0


def _header_only_benchmark(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tabular_record(tmp)
    (tmp / "b.tsv").write_text("s\th:m:s\tmax_rss\n")  # Snakemake's header, no timing row


def _tables(cut: Callable[[str], str]):
    """A run folder as the pipeline leaves it (a table, a record), README with the markers,
    the run's nb201.md then cut."""

    def setup(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        frame = pd.DataFrame(
            {"method": ["DDPNAS", "RS", "optimal"], "acc": ["93.5", "93.7", "94.4"]}
        )
        write_table(frame, frame, tmp / "run" / "tables" / "nb201", "NAS-Bench-201", ["a note"])
        md = tmp / "run" / "tables" / "nb201.md"
        md.write_text(cut(md.read_text()))
        (tmp / "README.md").write_text(f"# P\n{readme.START}\nold\n{readme.END}\n")
        env = {"hardware": "cpu", "torch": "2", "python": "3.11"}
        record = {"experiment": "x", "seed": 0, "environment": env}
        write_json(tmp / "run" / "search" / "x" / "seed0.json", record)

    return setup


def _readme_kept(tmp: Path) -> None:
    assert "\nold\n" in (tmp / "README.md").read_text() and not (tmp / "snap").exists()


def _foreign_checkpoint(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file torch's weights-only loader refuses (it holds a Python object)."""
    torch.save({"x": argparse.Namespace(a=1)}, tmp / "ck.pt")


def _no_download(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An existing, empty data.root; a download attempt fails the test (no network here)."""
    (tmp / "empty").mkdir()

    def download(*args: object) -> None:
        raise AssertionError("tried to download CIFAR-10 into data.root")

    monkeypatch.setattr("ddpnas.data.cifar10._load_torchvision", download)


def _generate_inputs(tmp: Path, monkeypatch: pytest.MonkeyPatch | None = None) -> None:
    (tmp / "T.json").write_text(json.dumps([[0.6, 0.4], [0.3, 0.7]]))
    (tmp / "C.json").write_text(json.dumps({"macs": [[1, 2], [1, 2]]}))


def _generate(out: str) -> list[str]:
    return ["generate", "--theta", "T.json", "--costs", "C.json", "--budget", "macs=3",
            "--out", out]  # fmt: skip


def _then(*setups: Callable):
    def setup(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> object:
        held = None
        for one in setups:
            held = one(tmp, monkeypatch)
        return held

    return setup


def _seed_config(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = {**CI, "searches": {"x": {**CI["searches"]["nb201-ddpnas-tabular"],
                                       "seeds": [2**64]}}}  # fmt: skip
    (tmp / "c.yaml").write_text(yaml.safe_dump(config))


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
    reject: list[str] = field(default_factory=list)  # must not be in the message


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
    "bad-spec-out-in-new-folders": Case(
        lambda t: _search(_spec(strategy="rs", mode="tabular",
                                strategy_args={"budget_seconds": None}), "new/sub/rec.json"),
        ["budget_seconds: null"], ["new"]),  # the folders made for it are removed again
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
    # --- issue 19: nothing deleted that the command did not create --------------------------
    "standin-over-a-folder": Case(lambda t: _standin("keep"), ["keep", "not empty", "--force"],
                                  setup=_keep, check=_kept),
    "standin-force-over-a-folder": Case(lambda t: _standin("keep", "--force"),
                                        ["keep", "not a stand-in"], setup=_keep, check=_kept),
    "standin-force-over-extra-files": Case(
        lambda t: _standin("st", "--force"), ["notes.txt", "not written by the stand-in build"],
        setup=_then(_fake_standin, lambda t, m: (t / "st" / "notes.txt").write_text("mine")),
        check=_standin_kept),
    "standin-out-is-a-file": Case(lambda t: _standin("keep/a.txt"), ["a.txt", "is a file"],
                                  setup=_keep, check=_kept),
    # --- output paths checked and locked before any work ---------------------------------------
    "imagenet-search-out-is-a-directory": Case(
        lambda t: _imagenet("search", "--out", "keep"), ["--out", "keep", "is a directory"],
        setup=_then(_tiny_imagenet, _keep), check=_kept),
    "imagenet-search-read-only-out": Case(
        lambda t: _imagenet("search", "--out", "ro/s.json"), ["--out", "ro", "read-only"],
        ["ro/s.json"], _then(_tiny_imagenet, lambda t, m: _read_only(t, m, "ro"))),
    "imagenet-search-read-only-checkpoint": Case(
        lambda t: _imagenet("search", "--out", "s.json", "--checkpoint", "ro/ck.pt"),
        ["--checkpoint", "read-only"], ["s.json", "ro/ck.pt"],
        _then(_tiny_imagenet, lambda t, m: _read_only(t, m, "ro"))),
    "imagenet-retrain-read-only-out-dir": Case(
        lambda t: _imagenet("retrain", "--arch", "arch.txt", "--out-dir", "ro/run"),
        ["--out-dir", "read-only"], ["ro/run"],
        _then(_tiny_imagenet, lambda t, m: _read_only(t, m, "ro"))),
    "imagenet-search-second-run-same-out": Case(
        lambda t: _imagenet("search", "--out", "s.json"), ["s.json", "in use"], ["s.json"],
        _then(_tiny_imagenet, _locked("s.json"))),
    "imagenet-search-second-run-same-checkpoint": Case(
        lambda t: _imagenet("search", "--out", "s2.json", "--checkpoint", "ck.pt"),
        ["ck.pt", "in use"], ["s2.json", "ck.pt"], _then(_tiny_imagenet, _locked("ck.pt"))),
    "imagenet-retrain-second-run-same-out-dir": Case(
        lambda t: _retrain_in(), ["run", "in use"], ["run"],
        _then(_tiny_imagenet, _locked("run"))),
    "generate-read-only-out": Case(lambda t: _generate("ro/a.json"), ["--out", "read-only"],
                                   ["ro/a.json"],
                                   _then(_generate_inputs, lambda t, m: _read_only(t, m, "ro"))),
    "generate-second-run-same-out": Case(lambda t: _generate("a.json"), ["a.json", "in use"],
                                         ["a.json"], _then(_generate_inputs, _locked("a.json"))),
    "search-seeds-second-run-same-out": Case(
        lambda t: ["search", "--experiment", "x", "--spec", TABULAR, "--seeds", "0-2",
                   "--out", "r{seed}.json"],
        ["r1.json", "in use"], ["r0.json", "r1.json", "r2.json"], _locked("r1.json")),
    # --- file-size limit (ulimit -f: EFBIG), full disk, partial output ------------------------
    "file-size-limit-record": Case(lambda t: _search(TABULAR), ["rec.json", "file-size limit"],
                                   setup=_disk_full_on("write_text", "rec.json",
                                                       code=errno.EFBIG)),
    "file-size-limit-nb201-table": Case(
        lambda t: ["report", "nb201-table", "--runs", "rec0.json", "--out", "t"],
        ["t.csv", "t.md", "t.tex", "file-size limit"], ["t.csv", "t.md", "t.tex"],
        _disk_full_on("write_text", "t.tex", code=errno.EFBIG, before=_tabular_record)),
    "disk-full-nb201-table-md": Case(  # .csv written first: not left alone
        lambda t: ["report", "nb201-table", "--runs", "rec0.json", "--out", "t"],
        ["t.md", "disk full"], ["t.csv", "t.md", "t.tex"],
        _disk_full_on("write_text", "t.md", before=_tabular_record)),
    "file-size-limit-imagenet-retrain": Case(
        lambda t: _retrain_in(), ["checkpoint.pt", "file-size limit"],
        ["run/checkpoint.pt", "run/metrics.csv", "run/result.json"],
        _disk_full_on("write_bytes", "checkpoint.pt", code=errno.EFBIG, before=_tiny_imagenet)),
    # --- unreadable data -----------------------------------------------------------------------
    "imagenet-retrain-empty-val-jpeg": Case(
        lambda t: _retrain_in(), ["n02_1.JPEG", "not a readable image", "replace"], ["run"],
        _corrupt_val(b"")),
    "imagenet-retrain-corrupt-val-jpeg-in-a-worker": Case(
        lambda t: _retrain_in(block=_imagenet_block(workers=1)),
        ["n02_1.JPEG", "not a readable image", "replace"], ["run"],
        _corrupt_val(b"\xff\xd8\xff\xe0 not a jpeg" * 20)),
    "costs-header-only-benchmark": Case(
        lambda t: ["report", "costs", "--searches", "rec0.json", "--search-benchmarks", "b.tsv",
                   "--out", "c"],
        ["b.tsv", "no timing row", "rerun"], ["c.csv", "c.md", "c.tex"], _header_only_benchmark),
    "readme-table-cut-mid-line": Case(
        lambda t: ["report", "readme", "--run", "run", "--snapshot", "snap", "--readme",
                   "README.md"],
        ["nb201.md", "cut short", "rerun"], [],
        _tables(lambda text: text[: text.index("| RS") + 5]), _readme_kept),
    "readme-table-missing-a-row": Case(
        lambda t: ["report", "readme", "--run", "run", "--snapshot", "snap", "--readme",
                   "README.md"],
        ["nb201.md", "cut short"], [],
        _tables(lambda text: "".join(line for line in text.splitlines(keepends=True)
                                     if not line.startswith("| optimal"))), _readme_kept),
    "corrupt-checkpoint-no-torch-advice": Case(
        lambda t: _search(TABULAR, "rec.json", "--checkpoint", "ck.pt"),
        ["ck.pt", "unreadable", "delete it"], setup=_foreign_checkpoint,
        check=lambda t: (t / "ck.pt").is_file(), reject=["weights_only", "trust"]),
    "empty-data-root-with-download": Case(
        lambda t: _search(WS, data=json.dumps({"root": "empty", "download": True,
                                               "cache": str(t / "cache")})),
        ["empty holds no CIFAR-10", "data.root to null"], setup=_no_download,
        check=lambda t: not any((t / "empty").iterdir())),
    # --- sizes and seeds beyond what there is ------------------------------------------------
    "train-size-beyond-the-split": Case(
        lambda t: _search(_spec(strategy="ddpnas", mode="weight_sharing",
                                train={"train_size": 1000000}),
                          data=json.dumps({"root": "c10", "cache": str(t / "cache")})),
        ["train.train_size", "1000000", "only 4", "at most 4"], setup=_tiny_cifar),
    "imagenet-search-train-size-beyond-the-split": Case(
        lambda t: _imagenet("search", "--out", "s.json",
                            block=_imagenet_block(search={"train_size": 1000000})),
        ["imagenet.search.train.train_size", "1000000", "at most 8"], ["s.json"], _tiny_imagenet),
    "imagenet-retrain-test-size-beyond-val": Case(
        lambda t: _retrain_in(block=_imagenet_block(protocol={"test_size": 100})),
        ["retrain test_size", "100", "at most 4"], ["run"], _tiny_imagenet),
    "seed-too-large": Case(lambda t: _search(TABULAR, seed=TOO_BIG), ["--seed", "2**63"]),
    "seeds-too-large": Case(
        lambda t: ["search", "--experiment", "x", "--spec", TABULAR, "--seeds", f"0-{TOO_BIG}",
                   "--out", "r{seed}.json"], ["--seeds", "2**63"], ["r0.json"]),
    "config-seed-too-large": Case(
        lambda t: ["search", "--config", "c.yaml", "--experiment", "x", "--seed", "0", "--out",
                   "rec.json"], ["seeds", "x"], setup=_seed_config),
    "retrain-seed-too-large": Case(
        lambda t: ["retrain", "--genotype", "cell.txt", "--out-dir", "run", "--seed", TOO_BIG],
        ["--seed", "2**63"], ["run"]),
    "imagenet-search-seed-too-large": Case(
        lambda t: _imagenet("search", "--out", "s.json", "--seed", TOO_BIG), ["--seed", "2**63"],
        ["s.json"]),
    "imagenet-retrain-seed-too-large": Case(lambda t: _retrain_in("--seed", TOO_BIG),
                                            ["--seed", "2**63"], ["run"]),
    "ranking-sample-seed-too-large": Case(
        lambda t: ["report", "ranking", "--runs", EMPTY, "--supernets", "s.pt", "--out", "r",
                   "--figure", "f.png", "--sample-seed", TOO_BIG],
        ["--sample-seed", "2**63"], ["r.csv", "f.png"]),
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
    (tmp_path / "arch.txt").write_text(MOBILE_ARCH)
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
    for needle in case.reject:
        assert needle not in err, (needle, lines[0])
    for name in case.absent:
        assert not (tmp_path / name).exists(), name
    assert not list(tmp_path.rglob(".*.tmp")), "a temp file was left behind"
    assert not list(tmp_path.rglob(".*.lock")), "a lock file was left behind"
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


# --- issue 19: outputs claimed before the work, locks removed, nothing deleted ----------------


def test_every_writing_command_declares_its_outputs() -> None:
    """A command with an output option declares its outputs, which ``main`` checks and locks
    before the command starts (so none can skip the up-front check or the lock)."""
    from ddpnas.cli.args import OUTPUT_OPTIONS
    from ddpnas.cli.main import build_parser

    def walk(parser: argparse.ArgumentParser, name: str):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield name, parser
        for sub in subs:
            for child, child_parser in sub.choices.items():
                yield from walk(child_parser, f"{name} {child}".strip())

    writers = 0
    for name, parser in walk(build_parser(), ""):
        options = {o for a in parser._actions for o in a.option_strings}
        if options & set(OUTPUT_OPTIONS):
            writers += 1
            assert parser.get_default("outputs") is not None, name
    assert writers >= 17  # search, genotype, retrain, nb201 export, 10 reports, 4 imagenet, ...


def test_locks_are_removed_after_a_run_and_taken_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require(NB201_TABLE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DDPNAS_NB201", str(NB201_TABLE))
    for _ in range(2):  # the second run takes the lock the first one released
        assert main(_search(TABULAR, "rec.json", "--checkpoint", "ck.pt")) == 0
        assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt", "rec.json"]


def test_a_lock_removed_by_its_holder_is_never_held_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unlink race: B opens the lock file, A finishes (removes it, lets go), C takes a new
    one; B's flock on the removed file then succeeds, but B must see that and refuse."""
    import fcntl

    from ddpnas.errors import DDPNASError
    from ddpnas.io import locks

    out = tmp_path / "rec.json"
    first = exclusive([out])
    first.__enter__()  # A
    real_flock = fcntl.flock
    held: list[contextlib.AbstractContextManager] = []

    def flock(fd: int, op: int) -> None:
        if not held:  # B has opened A's file and is about to lock it
            first.__exit__(None, None, None)  # A finishes
            held.append(exclusive([out]))
            held[0].__enter__()  # C takes the path's new lock file
        real_flock(fd, op)

    monkeypatch.setattr(locks.fcntl, "flock", flock)
    with pytest.raises(DDPNASError, match="in use"), exclusive([out]):  # B
        pass
    monkeypatch.setattr(locks.fcntl, "flock", real_flock)
    assert locks.lock_file(out).exists()  # C still holds it
    with pytest.raises(DDPNASError, match="in use"), exclusive([out]):
        pass
    held[0].__exit__(None, None, None)
    assert not locks.lock_file(out).exists()


def test_a_killed_command_removes_its_lock(tmp_path: Path) -> None:
    """SIGTERM (scancel, a cancelled job) unwinds the command: its lock file goes."""
    import signal

    script = (
        "import sys, time\n"
        "import ddpnas.engine.experiment as experiment\n"
        "def slow(*args, **kwargs):\n"
        "    print('started', flush=True)\n"
        "    time.sleep(60)\n"
        "experiment.run_experiment = slow\n"
        "from ddpnas.cli.main import main\n"
        f"sys.argv = ['ddpnas', *{_search(TABULAR)!r}]\n"
        "main()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=tmp_path, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
    assert (tmp_path / ".rec.json.lock").exists()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert not list(tmp_path.iterdir())


def test_a_real_file_size_limit_is_one_line(tmp_path: Path) -> None:
    """``ulimit -f``: Python ignores SIGXFSZ, the write fails with EFBIG, reported as such."""
    import resource

    require(NB201_TABLE)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    run = subprocess.run(
        [sys.executable, "-m", "ddpnas.cli.main", *_search(TABULAR)], cwd=tmp_path,
        capture_output=True, text=True, timeout=120, preexec_fn=limit,
        env={**os.environ, "DDPNAS_NB201": str(NB201_TABLE)},
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("ddpnas: error:")]
    assert len(errors) == 1 and "file-size limit" in errors[0] and "Traceback" not in run.stderr
    assert not list(tmp_path.iterdir())


def test_largest_seed_runs_every_generator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--seed accepts up to 2**63 - 1: every generator a run seeds takes it (a weight-sharing
    search's per-epoch data order included)."""
    from ddpnas.engine.loop import epoch_generator
    from ddpnas.runtime import SEED_LIMIT, seed_everything

    largest = SEED_LIMIT - 1
    seed_everything(largest)
    assert epoch_generator(largest, 10**6, stream=1).initial_seed() < SEED_LIMIT
    assert epoch_generator(7, 3).initial_seed() == (7 * 1_000_003 + 3) * 4  # records unchanged
    monkeypatch.chdir(tmp_path)
    _tiny_cifar(tmp_path)
    spec = json.loads(WS) | {"train": {"train_size": None, "valid_size": None, "batch_size": 4}}
    data = json.dumps({"root": "c10", "cache": str(tmp_path / "cache")})
    argv = _search(json.dumps(spec), data=data, seed=str(largest))
    assert main([*argv, "--device", "cpu", "--threads", "1"]) == 0
    assert json.loads((tmp_path / "rec.json").read_text())["seed"] == largest


def test_standin_force_replaces_only_an_earlier_stand_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--force over a stand-in: the new one replaces it whole; an empty folder needs no force;
    folders and files follow the umask (not mkdtemp's 0700)."""
    monkeypatch.chdir(tmp_path)
    archive = tmp_path / "cifar.zip"
    _images(tmp_path / "tree", {"train": 2, "test": 1}, tuple(CIFAR_WNIDS), 32)
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted((tmp_path / "tree").rglob("*.JPEG")):
            zipped.write(path, f"cifar10/{path.relative_to(tmp_path / 'tree').as_posix()}")
    (tmp_path / "st").mkdir()
    old = os.umask(0o027)
    try:
        argv = ["imagenet", "standin", "--cifar-zip", str(archive), "--out", "st"]
        assert main([*argv, "--train-per-class", "1", "--val-per-class", "1", "--size", "8"]) == 0
        assert main([*argv, "--train-per-class", "2", "--val-per-class", "1", "--size", "8"]) == 2
        assert main([*argv, "--train-per-class", "2", "--val-per-class", "1", "--size", "8",
                     "--force"]) == 0  # fmt: skip
    finally:
        os.umask(old)
    info = json.loads((tmp_path / "st" / "STANDIN.json").read_text())
    assert set(info["images"]["train"].values()) == {2}
    assert len(list((tmp_path / "st" / "train").rglob("*.JPEG"))) == 20
    for path in [tmp_path / "st", *(tmp_path / "st").rglob("*")]:
        assert path.stat().st_mode & 0o777 == (0o750 if path.is_dir() else 0o640), path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar.zip", "st", "tree"]
