"""Latency tables: the shipped phone table (real file) and the table measured on this device."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA, require
from toys import ToySpace

import ddpnas.generation.latency as latency
from ddpnas.errors import DataError, DDPNASError
from ddpnas.generation.latency import (
    measured_table,
    module_latency_ms,
    phone_table,
    read_phone_table,
)
from ddpnas.spaces.nb201 import NB201Space

PHONE_TABLE = SHARED_DATA / "mobile" / "mobile_trim.yaml"
STEM = "Conv-input:224x224x3-output:112x112x32"
HEAD = ["Conv_1-input:7x7x320-output:7x7x1280", "Logits-input:7x7x1280-output:1000"]


def block(shape_in: str, shape_out: str, e: int, k: int, s: int, skip: int) -> str:
    return (
        f"expanded_conv-input:{shape_in}-output:{shape_out}-expand:{e}-kernel:{k}-stride:{s}"
        f"-idskip:{skip}"
    )


class PhoneSpace(ToySpace):
    """Two layers of the mobile space as the other branch names them: a stride-1 layer (choices
    k3e3, k7e6, zero) and a stage-first layer (k3e3, k7e6, 3x3_MBConv1, absent from the table)."""

    def __init__(self, fixed: list[str] | None = None) -> None:
        super().__init__(num_edges=2, num_ops=3)
        self.fixed = [STEM, *HEAD] if fixed is None else fixed

    def latency_key(self, edge: int, op: int) -> str | None:
        if edge == 0:
            return [
                block("28x28x40", "28x28x40", 3, 3, 1, 1),
                block("28x28x40", "28x28x40", 6, 7, 1, 1),
                None,  # zero: skipped, costs nothing
            ][op]
        return [
            block("28x28x40", "14x14x80", 3, 3, 2, 0),
            block("28x28x40", "14x14x80", 6, 7, 2, 0),
            block("28x28x40", "14x14x80", 1, 3, 2, 0),
        ][op]

    def fixed_latency_keys(self) -> list[str]:
        return self.fixed


def test_the_shipped_phone_table_parses() -> None:
    table = read_phone_table(require(PHONE_TABLE))
    assert len(table) == 72
    assert all(v > 0 for v in table.values())
    assert table[STEM] == pytest.approx(4.083755600814664)  # the entry's mean, in ms


def test_phone_table_reports_missing_choices_and_never_guesses() -> None:
    space = PhoneSpace()
    with pytest.raises(DataError, match="lacks 1 choice") as err:
        phone_table(space, require(PHONE_TABLE))
    assert "e1/op2: " + block("28x28x40", "14x14x80", 1, 3, 2, 0) in str(err.value)
    fixed, cost, excluded = phone_table(space, PHONE_TABLE, missing="exclude")
    table = read_phone_table(PHONE_TABLE)
    assert fixed == pytest.approx(sum(table[k] for k in [STEM, *HEAD]))
    assert excluded.tolist() == [[False, False, False], [False, False, True]]
    assert cost[0, 2] == 0.0 and cost[1, 2] == 0.0  # zero costs 0; the excluded entry is not used
    assert cost[1, 1] == table[block("28x28x40", "14x14x80", 6, 7, 2, 0)]


def test_phone_table_refuses_a_missing_fixed_part_and_a_bad_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="lacks the fixed part"):
        phone_table(PhoneSpace(fixed=[STEM, "Conv_1-input:7x7x999-output:7x7x1280"]), PHONE_TABLE)
    bad = tmp_path / "bad.yaml"
    bad.write_text("key: {count: 3}\n")
    with pytest.raises(DataError, match="no numeric 'mean'"):
        read_phone_table(bad)
    with pytest.raises(DDPNASError, match="missing must be"):
        phone_table(PhoneSpace(), PHONE_TABLE, missing="guess")


def test_latency_is_the_median_after_warmup(monkeypatch) -> None:
    """A fake clock: each forward advances it by the next duration; warm-up runs are dropped."""
    now = [0.0]
    durations = iter([1.0, 1.0, 0.002, 0.004, 0.003, 0.100, 0.001])

    class Tick(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            now[0] += next(durations)
            return x

    monkeypatch.setattr(latency.time, "perf_counter", lambda: now[0])
    ms = module_latency_ms(Tick(), (1, 2), torch.device("cpu"), warmup=2, repeats=5)
    assert ms == pytest.approx(3.0)  # median of 2, 4, 3, 100, 1 ms


def test_measured_table_is_cached_per_device(tmp_path: Path, monkeypatch) -> None:
    space = NB201Space()
    small = {"C": 2, "N": 1, "input_size": 8}
    device = torch.device("cpu")
    fixed, table = measured_table(
        space, device, cache_dir=tmp_path, network_kwargs=small, warmup=1, repeats=3
    )
    assert table.shape == (6, 5) and fixed > 0
    assert (table[:, 0] == 0).all() and (table[:, 1:] > 0).all()  # none computes nothing
    (path,) = (tmp_path / "latency").iterdir()
    key = json.loads(path.read_text())["key"]
    assert key["device"] == latency.device_name(device) and key["torch"] == torch.__version__
    assert key["network"] == small

    def no_measuring(*args, **kwargs):
        raise AssertionError("a cached table must not be measured again")

    monkeypatch.setattr(latency, "module_latency_ms", no_measuring)
    again = measured_table(
        space, device, cache_dir=tmp_path, network_kwargs=small, warmup=1, repeats=3
    )
    assert again[0] == fixed and np.array_equal(again[1], table)
    # Another device name is another table, not this one.
    monkeypatch.setattr(latency, "device_name", lambda d: "another device")
    with pytest.raises(AssertionError, match="must not be measured again"):
        measured_table(space, device, cache_dir=tmp_path, network_kwargs=small, warmup=1, repeats=3)
