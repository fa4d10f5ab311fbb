"""Speed work that must not change what is computed: step capture, device augmentation, imports.

CUDA graphs themselves need a GPU (benchmarks/gpu_check.sh compares them on the device); here the
replay path runs on the CPU through the same static buffers, and every CPU record is compared
with the one the code produced before the speed work (tests/fixtures/speed_golden.json).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ddpnas.config.load import validate_search
from ddpnas.data.batching import _random_crop_flip, device_generator, iterate_batches
from ddpnas.engine.cuda_graph import CapturedStep
from ddpnas.engine.evaluators import SupernetEvaluator
from ddpnas.errors import ConfigError
from ddpnas.retrain.setup import RetrainConfig
from tests.speed_runs import BATCH, GOLDEN, TRAIN_IMAGES, retrain_run, supernet_run

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """The golden runs were recorded with one thread (reductions may round differently)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def approx_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Golden rows with room for another CPU's rounding: an accuracy may move by one image.

    A protocol change (another augmentation stream, order or step) moves the losses by far more
    than 1e-4 relative; rounding does not.
    """
    return [
        {
            k: pytest.approx(v, abs=0.025) if k.endswith("_acc") else pytest.approx(v, rel=1e-4)
            for k, v in row.items()
        }
        for row in rows
    ]


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text())


def test_supernet_cpu_records_are_unchanged_with_capture_off_and_on(golden: dict) -> None:
    """Shipped defaults (capture off) reproduce the old numbers; the replay path, exactly them."""
    eager = supernet_run()
    assert eager == approx_rows(golden["supernet"])
    assert supernet_run(cuda_graphs=True) == eager


def test_retrain_cpu_records_are_unchanged_with_capture_off_and_on(
    golden: dict, tmp_path: Path
) -> None:
    eager = retrain_run(tmp_path / "off")
    assert eager == approx_rows(golden["retrain"])
    assert retrain_run(tmp_path / "on", cuda_graphs=True) == eager


def tiny_problem() -> tuple[nn.Module, torch.optim.Optimizer, list[tuple[torch.Tensor, ...]]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    gen = torch.Generator().manual_seed(1)
    sizes = [16] * 6 + [5]  # the last batch is partial
    batches = [
        (torch.randn(n, 6, generator=gen), torch.randint(0, 3, (n,), generator=gen)) for n in sizes
    ]
    return model, opt, batches


def sgd_step(model: nn.Module, opt: torch.optim.Optimizer) -> Any:
    def step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        opt.zero_grad(set_to_none=True)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        return loss.detach(), logits.detach()

    return step


def test_replayed_step_gives_the_eager_loss_sequence_and_counts_its_replays() -> None:
    model, opt, batches = tiny_problem()
    eager = [sgd_step(model, opt)(x, y)[0].item() for x, y in batches]

    model, opt, batches = tiny_problem()
    captured = CapturedStep(sgd_step(model, opt), torch.device("cpu"))
    replayed = [captured(x, y)[0].item() for x, y in batches]

    assert replayed == pytest.approx(eager, rel=1e-6)
    assert len(set(eager)) == len(eager)  # the losses move, so a stale output would show
    assert (captured.eager_calls, captured.replays) == (3, 4)  # 2 warm-up + the partial batch


def test_replayed_outputs_are_static_so_the_next_step_overwrites_them() -> None:
    """Why the loops accumulate before the next call: a kept reference changes under you."""
    model, opt, batches = tiny_problem()
    captured = CapturedStep(sgd_step(model, opt), torch.device("cpu"), warmup=1)
    captured(*batches[0])
    first = captured(*batches[1])[0]
    value = first.item()
    second = captured(*batches[2])[0]
    assert second is first and first.item() != value


def test_device_accumulation_equals_per_step_item_sums(monkeypatch: pytest.MonkeyPatch) -> None:
    """train_loss/train_acc, summed on the device and read once, equal host sums per step."""
    seen: list[tuple[float, int, int]] = []
    original = SupernetEvaluator.train_step

    def recording(self: SupernetEvaluator, path: Any, x: torch.Tensor, y: torch.Tensor) -> Any:
        loss, logits = original(self, path, x, y)
        seen.append((loss.item(), int((logits.argmax(1) == y).sum()), len(y)))
        return loss, logits

    monkeypatch.setattr(SupernetEvaluator, "train_step", recording)
    rows = supernet_run(cuda_graphs=True)
    epoch = seen[: len(seen) // 2]
    images = sum(n for _, _, n in epoch)
    assert images == TRAIN_IMAGES and len(epoch) == -(-TRAIN_IMAGES // BATCH)
    assert rows[0]["train_loss"] == pytest.approx(sum(v * n for v, _, n in epoch) / images)
    assert rows[0]["train_acc"] == sum(c for _, c, _ in epoch) / images


def reference_crop_flip(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per-image pad, crop and flip with the same draws (offsets first, then flips)."""
    b = len(batch)
    offsets = torch.randint(0, 9, (2, b), generator=generator)
    flips = torch.randint(0, 2, (b,), generator=generator)
    padded = F.pad(batch, (4, 4, 4, 4))
    out = []
    for i in range(b):
        top, left = offsets[:, i].tolist()
        crop = padded[i, :, top : top + 32, left : left + 32]
        out.append(crop.flip(-1) if flips[i] else crop)
    return torch.stack(out)


def test_batched_crop_flip_equals_the_per_image_reference() -> None:
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    got = _random_crop_flip(images, torch.Generator().manual_seed(7))
    assert torch.equal(got, reference_crop_flip(images, torch.Generator().manual_seed(7)))


def test_cpu_augmentation_keeps_the_run_generator_and_gpu_draws_leave_the_order_alone() -> None:
    """Off CUDA the very same generator (old stream); a separate one changes crops, not order."""
    generator = torch.Generator().manual_seed(3)
    assert device_generator(generator, "cpu") is generator
    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(40)

    def batches(augment_generator: torch.Generator | None) -> list[tuple[torch.Tensor, ...]]:
        order = torch.Generator().manual_seed(3)
        return list(
            iterate_batches(
                images,
                labels,
                16,
                shuffle=True,
                augment=True,
                generator=order,
                device="cpu",
                augment_generator=augment_generator,
            )
        )

    shared, separate = batches(None), batches(torch.Generator().manual_seed(9))
    assert [y.tolist() for _, y in shared] == [y.tolist() for _, y in separate]
    assert not torch.equal(shared[0][0], separate[0][0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_augmentation_is_seeded_and_stays_on_the_device() -> None:
    cpu = torch.Generator().manual_seed(11)
    first, again = (device_generator(cpu, "cuda") for _ in range(2))
    assert first.device.type == "cuda"
    images = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8, device="cuda")
    assert torch.equal(_random_crop_flip(images, first), _random_crop_flip(images, again))


def test_capture_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="float16"):
        RetrainConfig(cuda_graphs=True, amp=True, amp_dtype="float16")
    RetrainConfig(cuda_graphs=True, amp=False, amp_dtype="float16")  # no loss scaling: fine
    spec = {"space": "nb201", "strategy": "ddpnas", "mode": "weight_sharing", "seeds": [0]}
    assert "cuda_graphs" not in validate_search(spec)["train"]  # absent: old records unchanged
    spec["train"] = {"cuda_graphs": True, "channels_last": None}
    assert validate_search(spec)["train"]["cuda_graphs"] is True
    spec["train"] = {"cuda_graphs": "yes"}
    with pytest.raises(ConfigError, match="cuda_graphs"):
        validate_search(spec)


def test_cli_start_and_report_commands_do_not_import_torch() -> None:
    """Every pipeline job starts the CLI: building its parser must not load torch or scipy."""
    code = (
        "import sys, ddpnas.cli.main, ddpnas.report.tables, ddpnas.report.plots;"
        "ddpnas.cli.main.build_parser();"
        "sys.exit(bool({'torch', 'scipy'} & set(sys.modules)))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    assert subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO).returncode == 0


def test_gpu_share_gives_searches_one_slot_and_retraining_its_whole_gpus(tmp_path: Path) -> None:
    """gpu_share: 3 -> a weight-sharing search takes 1 gpu_slots unit, a retraining 3 (+ gpu=1)."""
    import yaml

    config = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())
    config["gpu_share"] = 3
    config["device"] = "auto"  # device: cpu asks for no GPU at all
    path = tmp_path / "share.yaml"
    path.write_text(yaml.safe_dump(config))
    dry = subprocess.run(
        [
            "snakemake",
            "-n",
            "--nolock",
            "--forceall",
            "--configfile",
            str(path),
            "--resources",
            "gpu=1",
            "gpu_slots=3",
        ],  # as the README says: both, GPUs x gpu_share
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    assert dry.returncode == 0, dry.stderr
    jobs = dry.stdout.split("rule ")
    search = next(j for j in jobs if "exp=nb201-ddpnas-ws," in j)
    tabular = next(j for j in jobs if j.startswith("search_tabular_nb201_ddpnas_tabular:"))
    retrain = next(j for j in jobs if j.startswith("retrain:"))
    assert "gpu=0, gpu_slots=1" in search  # no whole GPU: SLURM could not share it
    assert "gpu" not in tabular.split("resources:")[-1].split("\n")[0]
    assert "gpu=1, gpu_slots=3" in retrain


@pytest.mark.slow
def test_gpu_check_script_runs_its_parts_dry_on_the_cpu(tmp_path: Path) -> None:
    """The GPU check's plumbing (data stand-in, both step variants, the ddpnas search process)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env["PYTHON"], env["OMP_NUM_THREADS"] = sys.executable, "1"
    done = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--dry-run", "--parts", "ABCD", "--out", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads((tmp_path / "gpu_check.json").read_text())
    assert figures["notes"] == [] and figures["loss_check"]["verdict"] == "PASS"
    assert set(figures["retrain_step"]) == set(figures["darts_epoch"]) == {"eager", "captured"}
    assert figures["nb201_search"]["epochs"] == 14
    assert "EXTRAPOLATED" in done.stdout and "synthetic" in figures["data"]


def test_retrain_checkpoint_resumes_with_capture_flipped(tmp_path: Path) -> None:
    """cuda_graphs is speed only: the checkpoint of an eager run is accepted by a captured one."""
    eager = retrain_run(tmp_path)
    assert retrain_run(tmp_path, cuda_graphs=True) == eager


def test_default_config_runs_two_training_jobs_at_once_on_two_cores() -> None:
    """The shipped config and profile: no training job takes the profile's one `gpu` token on a
    CPU run and each asks one thread, so `--cores 2` runs two at once (the README's timing)."""
    dry = subprocess.run(
        ["snakemake", "-n", "--nolock", "--forceall"],  # config/config.yaml, default profile
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    assert dry.returncode == 0, dry.stderr
    training = [
        j
        for j in dry.stdout.split("rule ")
        if j.startswith(("search:", "retrain:", "imagenet_search:", "imagenet_retrain:"))
    ]
    assert len(training) >= 10
    for job in training:
        resources = job.split("resources:")[-1].split("\n")[0]
        assert "gpu=0" in resources or "gpu=" not in resources, job[:300]
        assert "--threads 1 " in job, job[:300]
