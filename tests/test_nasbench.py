"""NAS-Bench-201 access: the compact table, the official back-ends against it, export, errors.

Official and table values are compared with an absolute tolerance of 1e-4: the table stores
4 decimals, so its rounding error is at most 5e-5.
"""

from __future__ import annotations

import gzip
import inspect
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import NATS_FIXTURE, NB201_TABLE, require

from ddpnas.errors import ArchError, ConfigError, DataError
from ddpnas.nasbench.files import export_table, load_bench
from ddpnas.nasbench.official import OfficialBench
from ddpnas.nasbench.table import (
    METRICS,
    METRICS_12EP,
    NATS_DIR_NAME,
    NB201_PTH_NAME,
    NUM_ARCHS,
    TABLE_COLUMNS,
    TABLE_NAME,
    NB201Bench,
    TableBench,
)

FULL_RECORDS = (0, 11, 284)  # the only indices with records in the official-format fixture
TOL = 1e-4


@pytest.fixture(scope="module")
def nats() -> NB201Bench:
    return load_bench(require(NATS_FIXTURE))


@pytest.fixture(scope="module")
def fake_pth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A NAS-Bench-201 .pth in the official layout, built from the NATS fixture's real records.

    nas_201_api reads {'meta_archs', 'arch2infos': {index: {'less': hp12, 'full': hp200}},
    'evaluated_indexes'}, each record an ArchResults state dict; NATS stores the same state dicts
    keyed by hp. Saved in torch's legacy format, like the 2020 file.
    """
    import torch
    from nats_bench.api_utils import pickle_load

    meta = pickle_load(str(require(NATS_FIXTURE) / "meta.pickle.pbz2"))
    infos = {}
    for index in FULL_RECORDS:
        record = pickle_load(str(NATS_FIXTURE / f"{index:06d}.pickle.pbz2"))
        infos[index] = {"less": record["12"], "full": record["200"]}
    content = {
        "meta_archs": meta["meta_archs"],
        "arch2infos": infos,
        "evaluated_indexes": list(FULL_RECORDS),
    }
    path = tmp_path_factory.mktemp("nb201") / NB201_PTH_NAME
    torch.save(content, path, _use_new_zipfile_serialization=False)
    return path


@pytest.fixture(scope="module")
def official(nats: NB201Bench, fake_pth: Path) -> dict[str, NB201Bench]:
    return {"nats": nats, "nas201": load_bench(fake_pth)}


def _no_leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --- the compact table -------------------------------------------------------------------------


def test_table_holds_every_cell_in_official_order(bench: NB201Bench) -> None:
    assert isinstance(bench, TableBench) and bench.backend == "table"
    assert len(bench) == NUM_ARCHS
    frame = bench.table()
    assert tuple(frame.columns) == TABLE_COLUMNS
    assert frame["index"].tolist() == list(range(NUM_ARCHS))
    strings = bench.arch_strings()
    assert strings == frame["arch"].tolist()
    assert bench.arch_str(0) == (
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|"
        "skip_connect~2|"
    )
    assert all(bench.index_of(strings[i]) == i for i in (0, 11, 284, NUM_ARCHS - 1))


@pytest.mark.parametrize(
    ("column", "best"),
    [
        ("cifar10_valid_valid_acc", 91.61),
        ("cifar10_test_acc", 94.37),
        ("cifar100_valid_acc", 73.49),
        ("cifar100_test_acc", 73.51),
        ("imagenet16_120_valid_acc", 46.73),
        ("imagenet16_120_test_acc", 47.31),
    ],
)
def test_known_optima(bench: NB201Bench, column: str, best: float) -> None:
    assert bench.optimum(column) == pytest.approx(best, abs=0.005)


def test_default_schedule_is_200_epochs(bench: NB201Bench, nats: NB201Bench) -> None:
    # Index 0: 81.98 after 200 epochs, 63.36 after 12; the best cell reaches 94.37 only at 200.
    for impl in (TableBench, OfficialBench):
        assert inspect.signature(impl.query).parameters["hp"].default == "200"
    assert bench.query(0)["cifar10_valid_valid_acc"] == pytest.approx(81.9827)
    assert nats.query(0)["cifar10_valid_valid_acc"] == pytest.approx(81.9827, abs=TOL)
    best = int(np.argmax(bench.column("cifar10_test_acc")))
    assert bench.query(best)["cifar10_test_acc"] == pytest.approx(94.37, abs=0.005)
    assert bench.query(best, hp="12")["cifar10_test_acc"] < 90.0


def test_query_keys_per_schedule(bench: NB201Bench) -> None:
    assert tuple(bench.query(284)) == METRICS
    assert bench.query(284, hp=200) == bench.query(284, hp="200")
    # The table has no 12-epoch train accuracy, test-of-cifar10-valid or train time.
    assert tuple(bench.query(284, hp="12")) == METRICS_12EP
    arch = bench.arch_str(284)
    assert bench.query(arch) == bench.query(284)


def test_bad_queries_are_clear_errors(bench: NB201Bench) -> None:
    with pytest.raises(ArchError, match="not a NAS-Bench-201 architecture"):
        bench.index_of("|conv~0|+|")
    with pytest.raises(ArchError, match="outside"):
        bench.query(NUM_ARCHS)
    with pytest.raises(ConfigError, match="hp"):
        bench.query(0, hp="90")
    with pytest.raises(ConfigError, match="seed averages"):
        bench.query(0, is_random=True)
    with pytest.raises(ConfigError, match="unknown NAS-Bench-201 column"):
        bench.optimum("cifar10_acc")


def test_cached_columns_are_read_only(bench: NB201Bench) -> None:
    column = bench.column("cifar10_test_acc")
    with pytest.raises(ValueError, match="read-only"):
        column[0] = 0.0
    assert bench.table([284, 0])["index"].tolist() == [284, 0]


# --- official back-ends ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["nats", "nas201"])
@pytest.mark.parametrize("hp", ["200", "12"])
def test_official_backends_agree_with_table(
    bench: NB201Bench, official: dict[str, NB201Bench], backend: str, hp: str
) -> None:
    api = official[backend]
    assert api.backend == backend
    assert api.arch_strings() == bench.arch_strings()
    for index in FULL_RECORDS:
        expected = bench.query(index, hp=hp)
        got = api.query(bench.arch_str(index), hp=hp)
        assert set(got) == set(METRICS)  # official files hold every metric for both schedules
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, abs=TOL), (backend, index, hp, key)


@pytest.mark.parametrize("backend", ["nats", "nas201"])
def test_official_missing_record_is_data_error(
    official: dict[str, NB201Bench], backend: str
) -> None:
    with pytest.raises(DataError, match=r"(?s)no readable record for architecture 1 .*NATS-tss"):
        official[backend].query(1)


def test_official_single_trial_on_request(official: dict[str, NB201Bench]) -> None:
    # Seed 777 alone differs from the 3-seed average the default returns.
    for api in official.values():
        single = api.query(0, is_random=777)["cifar10_valid_valid_acc"]
        assert single != pytest.approx(api.query(0)["cifar10_valid_valid_acc"], abs=TOL)


# --- export ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["nats", "nas201"])
def test_export_reproduces_table_rows(
    bench: NB201Bench, official: dict[str, NB201Bench], backend: str, tmp_path: Path
) -> None:
    out = export_table(official[backend], tmp_path / "sub" / TABLE_NAME, indices=FULL_RECORDS)
    assert out == tmp_path / "sub" / TABLE_NAME
    assert _no_leftovers(out.parent) == [TABLE_NAME]
    with gzip.open(out, "rt") as exported, gzip.open(require(NB201_TABLE), "rt") as shared:
        lines = shared.read().splitlines()
        # Same header and the very same text rows (values rounded to 4 decimals like the table).
        assert exported.read().splitlines() == [lines[0]] + [lines[1 + i] for i in FULL_RECORDS]
    assert pd.read_csv(out).equals(bench.table(FULL_RECORDS))


def test_export_with_missing_record_writes_nothing(nats: NB201Bench, tmp_path: Path) -> None:
    target = tmp_path / "out.csv.gz"
    with pytest.raises(DataError, match="architecture 1 "):
        export_table(nats, target, indices=[0, 1])
    assert _no_leftovers(tmp_path) == []


def test_export_from_table_round_trips(bench: NB201Bench, tmp_path: Path) -> None:
    out = export_table(bench, tmp_path / "copy.csv")
    assert load_bench(out).table().equals(bench.table())


# --- missing and corrupt data ------------------------------------------------------------------


def _write_table(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_truncated_gzip_is_data_error(tmp_path: Path) -> None:
    broken = tmp_path / TABLE_NAME
    data = require(NB201_TABLE).read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"(?s)corrupt.*How to get"):
        load_bench(broken)


def test_table_missing_column_is_data_error(bench: NB201Bench, tmp_path: Path) -> None:
    path = _write_table(bench.table().drop(columns="cifar10_test_acc"), tmp_path / "t.csv")
    with pytest.raises(DataError, match=r"missing column.*cifar10_test_acc"):
        load_bench(path)


def test_table_wrong_row_count_is_data_error(bench: NB201Bench, tmp_path: Path) -> None:
    path = _write_table(bench.table().head(100), tmp_path / "t.csv")
    with pytest.raises(DataError, match="100 rows, expected 15625"):
        load_bench(path)


def test_table_non_numeric_value_is_data_error(bench: NB201Bench, tmp_path: Path) -> None:
    frame = bench.table().astype({"cifar100_test_acc": object})
    frame.loc[5, "cifar100_test_acc"] = "n/a"
    with pytest.raises(DataError, match="cifar100_test_acc has empty or non-numeric"):
        load_bench(_write_table(frame, tmp_path / "t.csv"))


def test_truncated_nats_files_are_data_errors(tmp_path: Path) -> None:
    nats_dir = tmp_path / NATS_DIR_NAME
    nats_dir.mkdir()
    meta = (require(NATS_FIXTURE) / "meta.pickle.pbz2").read_bytes()
    (nats_dir / "meta.pickle.pbz2").write_bytes(meta[: len(meta) // 2])
    with pytest.raises(DataError, match=r"NATS-Bench topology data .* is corrupt"):
        load_bench(nats_dir)
    (nats_dir / "meta.pickle.pbz2").write_bytes(meta)
    record = (NATS_FIXTURE / "000000.pickle.pbz2").read_bytes()
    (nats_dir / "000000.pickle.pbz2").write_bytes(record[:1000])
    with pytest.raises(DataError, match="no readable record for architecture 0"):
        load_bench(nats_dir).query(0)


def test_truncated_pth_is_data_error(fake_pth: Path, tmp_path: Path) -> None:
    broken = tmp_path / NB201_PTH_NAME
    broken.write_bytes(fake_pth.read_bytes()[:5000])
    with pytest.raises(DataError, match="is corrupt or not in the official format"):
        load_bench(broken)


def test_missing_data_names_every_place_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DDPNAS_NB201", raising=False)
    monkeypatch.setenv("DDPNAS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (tmp_path / "torch").mkdir()
    with pytest.raises(DataError) as caught:
        load_bench()
    message = str(caught.value)
    for needle in (
        f"$DDPNAS_DATA/nasbench201: {tmp_path / 'data' / 'nasbench201'} (does not exist)",
        f"$TORCH_HOME: {tmp_path / 'torch'} (holds no usable file)",
        TABLE_NAME,
        NB201_PTH_NAME,
        "NATS-tss-v1_0-3ffb9-simple.tar",
        "DDPNAS_NB201",
    ):
        assert needle in message
    with pytest.raises(DataError, match=f"explicit path: {tmp_path / 'nope'} \\(does not exist"):
        load_bench(tmp_path / "nope")


# --- locating the data -------------------------------------------------------------------------


def test_explicit_path_beats_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DDPNAS_NB201", str(require(NATS_FIXTURE)))
    assert load_bench().backend == "nats"
    assert load_bench(require(NB201_TABLE)).backend == "table"


def test_env_var_is_used_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A set but wrong DDPNAS_NB201 is an error even when $DDPNAS_DATA would have data.
    data = tmp_path / "data" / "nasbench201"
    data.mkdir(parents=True)
    os.symlink(require(NB201_TABLE), data / TABLE_NAME)
    monkeypatch.setenv("DDPNAS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("DDPNAS_NB201", str(tmp_path / "typo"))
    with pytest.raises(DataError, match=r"\$DDPNAS_NB201: .*typo \(does not exist"):
        load_bench()
    monkeypatch.delenv("DDPNAS_NB201")
    assert load_bench().source == data / TABLE_NAME


def test_torch_home_is_the_last_resort(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DDPNAS_NB201", raising=False)
    monkeypatch.setenv("DDPNAS_DATA", str(tmp_path))
    torch_home = tmp_path / "torch"
    torch_home.mkdir()
    os.symlink(require(NATS_FIXTURE), torch_home / NATS_DIR_NAME)
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    assert load_bench().source == torch_home / NATS_DIR_NAME


def test_auto_detection(tmp_path: Path) -> None:
    shared = require(NB201_TABLE).parent
    assert load_bench(shared).backend == "table"  # the table is preferred in a directory
    assert load_bench(shared, backend="nats").source == NATS_FIXTURE
    assert load_bench(shared.parent).backend == "table"  # <data root>/nasbench201/ is searched
    renamed = tmp_path / "anything"
    shutil.copytree(require(NATS_FIXTURE), renamed)  # identified by meta.pickle.pbz2
    assert load_bench(renamed).backend == "nats"
    odd = tmp_path / "bench.bin"
    odd.write_bytes(b"x")
    with pytest.raises(DataError, match="cannot tell the NAS-Bench-201 format"):
        load_bench(odd)
    with pytest.raises(DataError, match="data for nas201 not found"):
        load_bench(shared, backend="nas201")
    with pytest.raises(ConfigError, match="unknown NAS-Bench-201 backend"):
        load_bench(shared, backend="sqlite")  # type: ignore[arg-type]
