"""Retraining protocol on a tiny synthetic task: learning, cutout, drop path, resume, DDP."""

from __future__ import annotations

import csv
import itertools
import json
import logging
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ddpnas.data.batching import iterate_batches
from ddpnas.data.cifar10 import ImageSet
from ddpnas.errors import ConfigError, DDPNASError
from ddpnas.retrain.loop import METRICS_COLUMNS, retrain
from ddpnas.retrain.setup import RetrainConfig, cutout, drop_path_schedule

TESTS = Path(__file__).resolve().parent
NUM_CLASSES = 4
COLOURS = torch.tensor([[200, 60, 60], [60, 200, 60], [60, 60, 200], [200, 200, 60]])
# small enough for a few seconds on 2 cores, large enough to learn the colour signal
TINY = RetrainConfig(epochs=5, batch_size=32, lr=0.1, eval_batch_size=64, seed=3)


class TinyNet(nn.Module):
    """Two convolutions with NetworkCIFAR's contract: (logits, aux or None), ``drop_path_prob``.

    The residual branch is dropped per sample with the global RNG, as DARTS's drop path is, so
    resume tests cover that randomness. ``stall_at_step`` hangs that training step (counted
    from 0), so that a process can be killed at a known point.
    """

    def __init__(self, stall_at_step: int | None = None) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU()
        )
        self.branch = nn.Sequential(
            nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU()
        )
        self.auxiliary_head = nn.Linear(8, NUM_CLASSES)
        self.classifier = nn.Linear(8, NUM_CLASSES)
        self.drop_path_prob = 0.0
        self.seen_drop_path: list[float] = []
        self.stall_at_step = stall_at_step
        self.steps = 0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        stem = self.stem(x)
        branch = self.branch(stem)
        aux = None
        if self.training:
            if self.steps == self.stall_at_step:
                time.sleep(600)
            self.steps += 1
            if not self.seen_drop_path or self.seen_drop_path[-1] != self.drop_path_prob:
                self.seen_drop_path.append(self.drop_path_prob)
            keep = 1.0 - self.drop_path_prob
            mask = torch.empty(len(x), 1, 1, 1, device=x.device).bernoulli_(keep)
            branch = branch * mask / keep
            aux = self.auxiliary_head(stem.mean((2, 3)))
        return self.classifier((stem + branch).mean((2, 3))), aux


def synthetic_sets(n_train: int = 256, n_test: int = 128) -> tuple[ImageSet, ImageSet]:
    """Noisy images whose mean colour gives the class away (chance is 1/4)."""
    generator = torch.Generator().manual_seed(0)

    def make(n: int) -> ImageSet:
        labels = torch.arange(n) % NUM_CLASSES
        noise = torch.randint(-50, 51, (n, 3, 32, 32), generator=generator)
        images = (COLOURS[labels][:, :, None, None] + noise).clamp(0, 255).to(torch.uint8)
        return ImageSet(images, labels, tuple(f"c{i}" for i in range(NUM_CLASSES)))

    return make(n_train), make(n_test)


def run(cfg: RetrainConfig, out: str | Path, stall_at_step: int | None = None) -> dict[str, Any]:
    """Retrain TinyNet on the synthetic sets (also the entry point of the subprocess tests)."""
    train, test = synthetic_sets()
    return retrain(lambda: TinyNet(stall_at_step), train, test, cfg, device="cpu", out_dir=out)


def read_metrics(out: Path) -> list[dict[str, str]]:
    with (out / "metrics.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def without_seconds(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    """A result without what legitimately differs between two runs: timing."""
    return {k: v for k, v in result.items() if k not in ("wall_seconds", "cost")}  # timings


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One intra-op thread: tiny convolutions only lose from more, badly so on a busy machine.

    Bitwise comparisons also need the same thread count in every process (subprocesses set 1).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One uninterrupted TINY run, shared by the tests that compare against it."""
    out = tmp_path_factory.mktemp("reference")
    return out, run(TINY, out)


def test_cutout_zeroes_one_clipped_square_per_image() -> None:
    batch = torch.ones(64, 3, 32, 32)
    cutout(batch, 16, torch.Generator().manual_seed(1))
    full = 0
    for image in batch:
        zero = image == 0
        assert torch.equal(zero[0], zero[1]) and torch.equal(zero[0], zero[2])
        rows = zero[0].any(1).nonzero().flatten()
        cols = zero[0].any(0).nonzero().flatten()
        h, w = len(rows), len(cols)
        assert int(zero[0].sum()) == h * w  # a solid rectangle
        assert rows.max() - rows.min() + 1 == h and cols.max() - cols.min() + 1 == w
        assert h <= 16 and w <= 16
        assert h == 16 or rows.min() == 0 or rows.max() == 31  # short only at a border
        assert w == 16 or cols.min() == 0 or cols.max() == 31
        full += h == w == 16
    assert full > 0
    again = cutout(torch.ones(64, 3, 32, 32), 16, torch.Generator().manual_seed(1))
    assert torch.equal(again, batch)  # a pure function of the generator


def test_drop_path_schedule_is_linear_from_zero(tmp_path: Path) -> None:
    assert [drop_path_schedule(0.2, e, 4) for e in range(4)] == [0.2 * e / 4 for e in range(4)]
    nets: list[TinyNet] = []

    def model_fn() -> TinyNet:
        nets.append(TinyNet())
        return nets[-1]

    train, test = synthetic_sets(64, 32)
    cfg = RetrainConfig(epochs=4, batch_size=32, drop_path_prob=0.3)
    retrain(model_fn, train, test, cfg, device="cpu", out_dir=tmp_path)
    ramp = pytest.approx([0.0, 0.075, 0.15, 0.225])
    assert nets[0].seen_drop_path == ramp  # set on the model before each epoch
    assert [float(r["drop_path_prob"]) for r in read_metrics(tmp_path)] == ramp


def test_retrain_learns_and_writes_atomic_outputs(tmp_path: Path) -> None:
    cfg = RetrainConfig(epochs=4, batch_size=32, lr=0.1, eval_every=3, seed=1)
    result = run(cfg, tmp_path)
    rows = read_metrics(tmp_path)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    assert list(rows[0]) == list(METRICS_COLUMNS)
    assert [r["test_acc"] != "" for r in rows] == [False, False, True, True]  # every 3rd + last
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert result["test_acc"] == float(rows[-1]["test_acc"]) > 0.5  # chance is 0.25
    lrs = [float(r["lr"]) for r in rows]
    assert lrs[0] == 0.1 and all(a > b for a, b in itertools.pairwise(lrs))
    net = TinyNet()
    no_aux = sum(p.numel() for n, p in net.named_parameters() if not n.startswith("auxiliary"))
    assert result["params_m"] == pytest.approx(no_aux / 1e6)
    assert result["flops_m"] > 0
    assert result["train_images"] == 256 and result["test_images"] == 128
    assert result["config"]["amp"] is False and result["config"]["channels_last"] is False
    assert json.loads((tmp_path / "result.json").read_text()) == result
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.pt",
        "metrics.csv",
        "result.json",
    ]


def test_same_seed_is_bitwise_deterministic(
    tmp_path: Path, reference: tuple[Path, dict[str, Any]]
) -> None:
    ref_dir, ref_result = reference
    result = run(TINY, tmp_path)
    assert without_seconds(read_metrics(tmp_path)) == without_seconds(read_metrics(ref_dir))
    assert comparable(result) == comparable(ref_result)


def test_resume_after_sigkill_matches_uninterrupted_run(
    tmp_path: Path, reference: tuple[Path, dict[str, Any]]
) -> None:
    ref_dir, ref_result = reference
    steps_per_epoch = 256 // TINY.batch_size
    script = (  # hangs in the fourth step of epoch 2, after epochs 0 and 1 were checkpointed
        f"import sys, torch; sys.path.insert(0, {str(TESTS)!r}); torch.set_num_threads(1); "
        f"import test_train as t; t.run(t.TINY, {str(tmp_path)!r}, {2 * steps_per_epoch + 3})"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if (tmp_path / "metrics.csv").exists() and len(read_metrics(tmp_path)) == 2:
                break
            time.sleep(0.01)
    finally:
        proc.kill()  # SIGKILL
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, stderr.decode()[-3000:]
    assert len(read_metrics(tmp_path)) == 2 and not (tmp_path / "result.json").exists()
    (tmp_path / f".checkpoint.pt.{uuid.uuid4().hex}.tmp").write_bytes(b"a kill mid-write left")
    (tmp_path / ".checkpoint.pt.mine.tmp").write_bytes(b"not ours: never removed")

    result = run(TINY, tmp_path)
    rows = read_metrics(tmp_path)
    assert [int(r["epoch"]) for r in rows] == list(range(TINY.epochs))  # no duplicated rows
    assert without_seconds(rows) == without_seconds(read_metrics(ref_dir))
    assert comparable(result) == comparable(ref_result)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".checkpoint.pt.mine.tmp",
        "checkpoint.pt",
        "metrics.csv",
        "result.json",
    ]
    assert run(TINY, tmp_path)["test_acc"] == result["test_acc"]  # finished: nothing to redo


def test_checkpoint_of_another_config_is_refused_or_restarted_on_request(
    tmp_path: Path, reference: tuple[Path, dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    """A rerun after the config changed (as Snakemake reruns a job) meets the old checkpoint."""
    ref_dir, _ = reference
    shutil.copy(ref_dir / "checkpoint.pt", tmp_path / "checkpoint.pt")
    other = RetrainConfig(epochs=2, batch_size=32, lr=0.05, seed=TINY.seed)
    train, test = synthetic_sets()
    with pytest.raises(DDPNASError, match=r"another config, seed, model.*stale-checkpoint restart"):
        retrain(TinyNet, train, test, other, device="cpu", out_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # refused, kept
    with caplog.at_level(logging.WARNING, logger="ddpnas.io.checkpoints"):
        result = retrain(
            TinyNet, train, test, other, device="cpu", out_dir=tmp_path, stale_checkpoint="restart"
        )
    assert caplog.messages == [
        f"checkpoint {tmp_path / 'checkpoint.pt'} belongs to another config, seed, model or code "
        "version: removed it, starting over"
    ]
    assert [int(r["epoch"]) for r in read_metrics(tmp_path)] == [0, 1]  # trained from scratch
    assert result["epochs"] == 2 and result["config"]["lr"] == 0.05
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert len(state["history"]) == 2  # the new run's checkpoint, resumable as any other


def test_amp_float16_and_channels_last_paths_run_on_cpu(tmp_path: Path) -> None:
    cfg = RetrainConfig(
        epochs=1,
        batch_size=32,
        amp=True,
        amp_dtype="float16",
        channels_last=True,
        train_size=64,
        test_size=32,
    )
    result = run(cfg, tmp_path)
    assert result["train_images"] == 64 and result["test_images"] == 32
    assert 0.0 <= result["test_acc"] <= 1.0
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["scaler"]["scale"] > 0  # the GradScaler was on and is checkpointed


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="drop_path_prob"):
        RetrainConfig(drop_path_prob=1.0)
    with pytest.raises(ConfigError, match="amp_dtype"):
        RetrainConfig(amp_dtype="float8")
    assert RetrainConfig().epochs == 600 and RetrainConfig().batch_size == 96


def gloo_problem() -> str | None:
    """Why a gloo process group cannot start here (None when it can), probed with one rank."""
    if not (dist.is_available() and dist.is_gloo_available()):
        return "this torch build has no gloo backend"
    try:
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    except (RuntimeError, ValueError, OSError) as exc:
        return f"gloo init fails here: {type(exc).__name__}: {exc}"
    dist.destroy_process_group()
    return None


@pytest.mark.parametrize("accumulate", [1, 2])
def test_ddp_two_cpu_processes_with_gloo(tmp_path: Path, accumulate: int) -> None:
    """Two ranks; with accumulate 2 each rank's 16 images run as two micro-batches of 8, the
    gradients all-reduced once per step (DDP's no_sync on the first)."""
    problem = gloo_problem()
    if problem:
        pytest.skip(problem)
    out = tmp_path / "out"
    worker = tmp_path / "worker.py"
    worker.write_text(
        f"import sys\nsys.path.insert(0, {str(TESTS)!r})\nimport test_train as t\n"
        f"t.run(t.RetrainConfig(epochs=2, batch_size=32, lr=0.1, accumulate={accumulate}), "
        f"{str(out)!r})\n"
    )
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    proc = subprocess.run([*launch, str(worker)], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["world_size"] == 2 and result["test_images"] == 128
    assert result["config"]["accumulate"] == accumulate
    rows = read_metrics(out)
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    # the test metrics, all-reduced over both ranks' halves, are those of the checkpointed model
    net = TinyNet().eval()
    net.load_state_dict(torch.load(out / "checkpoint.pt", weights_only=True)["model"])
    _, test = synthetic_sets()
    batches = iterate_batches(
        test.images,
        test.labels,
        128,
        shuffle=False,
        augment=False,
        generator=torch.Generator(),
        device="cpu",
    )
    x, y = next(batches)
    with torch.no_grad():
        logits, _ = net(x)
    assert float(rows[-1]["test_loss"]) == pytest.approx(F.cross_entropy(logits, y).item(), 1e-6)
    assert float(rows[-1]["test_acc"]) == (logits.argmax(1) == y).double().mean().item()
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "metrics.csv", "result.json"]
