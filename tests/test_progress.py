"""What long runs say while they run: bars on a terminal, else short log lines (status every so
often, one line per search or retraining epoch) that summarise rather than dump."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import torch
from toys import SyntheticEvaluator, ToySpace, separated_means

from ddpnas.engine.loop import run_search, theta_summary
from ddpnas.io.progress import duration, status, tracked
from ddpnas.retrain.loop import retrain
from ddpnas.retrain.setup import RetrainConfig
from ddpnas.strategies.ddpnas import DDPNAS

# A raw theta in a log line: a float with many digits (the 17-digit matrices).
RAW_FLOAT = re.compile(r"\d\.\d{6,}")


def test_status_line_names_step_rate_and_time_left() -> None:
    assert status("epoch 1 training", 30, 120, 10.0, "batches") == (
        "epoch 1 training: 30/120 batches (25%), 3 batches/s, 30s left"
    )
    assert status("job", 3, None, 2.0, "seeds") == "job: 3 seeds, 1.5 seeds/s"
    assert [duration(s) for s in (12.4, 185, 3725, float("inf"))] == ["12s", "3m05s", "1h02m", "?"]


def test_tracked_logs_a_status_line_when_nobody_watches(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="ddpnas.io.progress"):
        assert list(tracked(range(5), "job", 5, unit="seeds", show=False, every=0.0)) == [
            0,
            1,
            2,
            3,
            4,
        ]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 5 and lines[-1].startswith("job: 5/5 seeds (100%)")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ddpnas.io.progress"):
        assert list(tracked(range(5), "job", 5, show=False, every=3600.0)) == list(range(5))
    assert not caplog.records  # not before the interval has passed


def test_theta_summary_gives_entropy_and_top_ops_not_the_matrix() -> None:
    ops = ("none", "skip", "conv")
    text = theta_summary([[0.2, 0.5, 0.3], [1.0, 0.0, 0.0]], ops)
    entropy = -(0.2 * np.log(0.2) + 0.5 * np.log(0.5) + 0.3 * np.log(0.3)) / 2
    assert f"theta entropy {entropy:.3f} nats/edge (uniform {np.log(3):.3f})" in text
    assert text.endswith("top op per edge: skip 0.50 none 1.00")
    many = theta_summary(
        np.full((28, 8), 1 / 8) + np.eye(28, 8) * 0.01, [f"op{k}" for k in range(8)]
    )
    assert "op0 x" in many and "(of 28 edges)" in many and len(many) < 200


def test_search_log_lines_summarise_theta_and_prunes(caplog: pytest.LogCaptureFixture) -> None:
    space = ToySpace(6, 5)
    evaluator = SyntheticEvaluator(separated_means(6, 5, seed=0), noise=0.01)
    with caplog.at_level(logging.INFO, logger="ddpnas.engine.loop"):
        run_search(DDPNAS(space), evaluator, seed=0)  # default: lines, as stderr is no terminal
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == DDPNAS(space).planned_epochs()  # one per epoch
    assert all("theta entropy" in line and "top op per edge" in line for line in lines)
    assert sum("pruned" in line for line in lines) == 4  # K - 1 prunes, named
    assert not any(RAW_FLOAT.search(line) for line in lines), lines[14]
    assert max(map(len, lines)) < 400
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ddpnas.engine.loop"):
        run_search(
            DDPNAS(space), SyntheticEvaluator(separated_means(6, 5, 0)), seed=0, progress=False
        )
    assert not caplog.records  # a caller reporting progress itself (many seeds per job)


def test_retrain_logs_one_line_per_epoch(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    from test_train import TinyNet, synthetic_sets

    torch.set_num_threads(1)
    train, test = synthetic_sets(64, 32)
    cfg = RetrainConfig(epochs=3, batch_size=32, lr=0.1, eval_every=2, seed=0)
    with caplog.at_level(logging.INFO, logger="ddpnas.retrain.loop"):
        retrain(TinyNet, train, test, cfg, device="cpu", out_dir=tmp_path)
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(":")[0] for line in lines] == [f"retrain epoch {i}/3" for i in (1, 2, 3)]
    for line in lines:
        assert re.search(r"train loss \d+\.\d{4}, top-1 \d+\.\d\d%", line), line
        assert re.search(r"; lr [\d.e-]+; \d+ images/s; [\d.]+ s; ETA \d+", line), line
    assert "test loss" in lines[1] and "top-5" in lines[1] and "test" not in lines[0]
    assert lines[-1].endswith("ETA 0s")
