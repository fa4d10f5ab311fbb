"""GPU speed check (issue 11): run by ``bash benchmarks/gpu_check.sh`` on one H100/H200.

Measures, in this order (each part prints as it finishes; a part that fails says why and the
others still run; parts are skipped, with a note, when the 10-minute budget would be exceeded):

A. eager vs captured (CUDA-graph) loss sequence of the same supernet epoch on the device;
B. DARTS-V2 retraining step (36 channels, 20 cells, batch 96, the shipped step: bf16 autocast,
   auxiliary head, drop path, clipping), eager vs captured: ms/step, images/s, and the fraction of
   wall time in host overhead, 1 - (GPU kernel time from torch.profiler) / (wall time);
C. NAS-Bench-201 DDPNAS weight-sharing search at paper scale (25k/25k, C=16, N=5, 42 epochs,
   batch 64) end to end: wall time of the ``ddpnas search`` process, captured steps;
D. DARTS-space DDPNAS search: one full paper-scale epoch (25k/25k, C=16, 8 cells) eager and
   captured, times 105 epochs (an extrapolation from one measured epoch; said so in the output);
E. a short NB201 search (14 epochs, 5k/5k images) through ``ddpnas search``, eager vs captured;
F. the same short search, N processes sharing the GPU at once vs one: throughput gain.

CIFAR-10 comes from $DDPNAS_DATA or ../shared/data; when neither holds it, a synthetic CIFAR-shaped
JPEG folder stands in (timings are valid, accuracies meaningless; the output says so).
``--dry-run`` runs every part on the CPU at toy sizes (the test suite does this).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gpu_check_common import Check
from gpu_check_searches import part_nb201_search, part_short_and_shared

from ddpnas.data.cifar10 import ImageSet, load_cifar10, nb201_split, subset
from ddpnas.engine.cuda_graph import CapturedStep
from ddpnas.engine.evaluators import SupernetEvaluator
from ddpnas.engine.loop import epoch_generator
from ddpnas.errors import DataError
from ddpnas.retrain.loop import Retrainer
from ddpnas.retrain.setup import RetrainConfig
from ddpnas.runtime import device_name
from ddpnas.spaces.darts.genotype import DARTS_V2
from ddpnas.spaces.darts.space import DartsSpace
from ddpnas.spaces.nb201 import NB201Space

REPO = Path(__file__).resolve().parents[1]
NB201_ARCH = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|"
    "+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|"
)
DARTS_ARCH = tuple(1 + e % 7 for e in range(28))  # each non-none op on 4 edges (no free paths)


def synthetic_folder(root: Path, per_class: tuple[int, int]) -> None:
    """A CIFAR-shaped JPEG folder of noise (train/<class>, test/<class>) for timing only."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in zip(("train", "test"), per_class, strict=True):
        for cls in range(10):
            folder = root / split / f"class{cls}"
            folder.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
            for i, image in enumerate(pixels):
                Image.fromarray(image).save(folder / f"{i:05d}.jpg", quality=90)


def data_root(check: Check, work: Path) -> Path:
    """CIFAR-10 the pipeline would use, else a synthetic stand-in (noted)."""
    os.environ.setdefault("DDPNAS_CACHE", str(work / "cache"))
    candidates = [
        os.environ.get("DDPNAS_DATA"),
        *(str(d / "shared" / "data") for d in (REPO.parent, REPO)),
    ]
    for root in [] if check.dry else [c for c in candidates if c]:
        try:
            load_cifar10(Path(root), cache_dir=os.environ["DDPNAS_CACHE"], download=False)
            check.figures["data"] = f"CIFAR-10 from {root}"
            return Path(root)
        except DataError:
            continue
    root = work / "synthetic"
    synthetic_folder(root, (8, 2) if check.dry else (5000, 1000))
    check.figures["data"] = "synthetic CIFAR-shaped JPEGs (timing only, accuracies meaningless)"
    return root


def nb201_sets(check: Check, root: Path, size: int | None) -> tuple[Any, Any]:
    """The NAS-Bench-201 25k/25k split (or ``size`` images of each half), as the pipeline does."""
    train_all, _ = load_cifar10(root, cache_dir=os.environ["DDPNAS_CACHE"], download=False)
    halves = nb201_split(train_all.labels)
    if size is not None:
        halves = tuple(subset(h, size, 0, labels=train_all.labels) for h in halves)
    return train_all.take(halves[0]), train_all.take(halves[1])


def evaluator(check: Check, space: Any, sets: tuple, graphs: bool, **supernet: int) -> Any:
    torch.manual_seed(0)
    model = space.supernet(**supernet, num_classes=10)
    return SupernetEvaluator(model, *sets, epochs=2, device=check.device, cuda_graphs=graphs)


def part_losses(check: Check, root: Path) -> None:
    """A: per-step losses of one epoch, eager and replayed, from the same weights and data."""
    sets = nb201_sets(check, root, None if check.dry else 64 * 60)  # dry: all 40 of a half
    space = NB201Space()
    arch = space.str_to_arch(NB201_ARCH)
    losses: dict[bool, list[torch.Tensor]] = {}
    for graphs in (False, True):
        ev = evaluator(check, space, sets, graphs, **check.nb201)
        losses[graphs] = seen = []
        if graphs:  # replays run no Python: record what each call of the captured step returns
            with _recording_capture(seen):
                ev.train(arch, 0, epoch_generator(0, 0))
        else:
            step = ev.train_step
            ev.train_step = lambda path, x, y, step=step, seen=seen: _keep(seen, step(path, x, y))
            ev.train(arch, 0, epoch_generator(0, 0))
    eager, replay = (torch.stack(losses[g]).float().cpu() for g in (False, True))
    rel = ((eager - replay).abs() / eager.abs()).max().item()
    first = ((eager[:10] - replay[:10]).abs() / eager[:10].abs()).max().item()
    ok = first < 1e-3 and abs(eager.mean() - replay.mean()).item() / eager.mean().item() < 1e-2
    check.figures["loss_check"] = {
        "steps": len(eager),
        "max_rel_diff_first10": first,
        "max_rel_diff": rel,
        "mean_eager": eager.mean().item(),
        "mean_captured": replay.mean().item(),
        "verdict": "PASS" if ok else "FAIL",
    }
    verdict = check.figures["loss_check"]["verdict"]
    print(f"   eager vs captured, {len(eager)} steps: max rel diff {first:.2e} (first 10 steps),")
    print(f"   {rel:.2e} (all); mean loss {eager.mean():.5f} vs {replay.mean():.5f}: {verdict}")


def _keep(seen: list[torch.Tensor], outputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    seen.append(outputs[0].detach().clone())
    return outputs


@contextlib.contextmanager
def _recording_capture(seen: list[torch.Tensor]) -> Iterator[None]:
    """Let the evaluator's CapturedStep record the loss every call returns."""
    import ddpnas.engine.evaluators as module

    plain = module.CapturedStep

    class Recording(plain):  # type: ignore[misc, valid-type]
        def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return _keep(seen, super().__call__(x, y))

    module.CapturedStep = Recording
    try:
        yield
    finally:
        module.CapturedStep = plain


def kernel_ms(check: Check, step: Callable[[], Any], steps: int) -> float | None:
    """GPU kernel time per step (torch.profiler), None off CUDA or when nothing was recorded."""
    if check.device.type != "cuda":
        return None
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        check.sync()
    # as the profiler's own "Self CUDA time total": device-side events only (kineto), no
    # user annotations, so no kernel is counted twice through the op that launched it
    total = sum(
        e.self_device_time_total
        for e in prof.key_averages()
        if e.device_type == DeviceType.CUDA and not e.is_user_annotation
    )
    return total / 1e3 / steps if total else None


def part_retrain_step(check: Check) -> None:
    """B: DARTS-V2 retraining step at batch 96, eager vs captured.

    GPU time per step is the eager step's kernel time from torch.profiler (a graph replays the
    same kernels); host overhead = 1 - GPU time / wall time of each variant.
    """
    b = check.batch
    images = torch.randint(0, 256, (b, 3, 32, 32), dtype=torch.uint8)
    sets = ImageSet(images, torch.randint(0, 10, (b,)), tuple(map(str, range(10))))
    x = torch.randn(b, 3, 32, 32, device=check.device)
    y = torch.randint(0, 10, (b,), device=check.device)
    torch.backends.cudnn.benchmark = check.device.type == "cuda"  # as retrain() sets it
    rows = {}
    gpu = None
    for graphs in (False, True):
        cfg = RetrainConfig(cuda_graphs=graphs, seed=0)
        run = Retrainer(
            lambda: DartsSpace().eval_network(DARTS_V2, num_classes=10, **check.net),
            sets,
            sets,
            cfg,
            check.device,
            0,
            1,
        )
        run.net.drop_path_prob = 0.1
        run.net.train()
        xs = x.contiguous(memory_format=torch.channels_last) if run.cfg.channels_last else x
        step = CapturedStep(run.train_step, check.device) if graphs else run.train_step
        for _ in range(check.steps + 3):  # warm-up (and capture)
            step(xs, y)
        check.sync()
        began = time.perf_counter()
        for _ in range(check.steps):
            step(xs, y)
        check.sync()
        ms = 1e3 * (time.perf_counter() - began) / check.steps
        if not graphs:
            gpu = kernel_ms(check, lambda step=step, xs=xs: step(xs, y), 10)
        host = None if gpu is None else max(0.0, 1 - gpu / ms)
        name = "captured" if graphs else "eager"
        rows[name] = {
            "ms_per_step": ms,
            "images_per_s": 1e3 * b / ms,
            "gpu_ms": gpu,
            "host_fraction": host,
        }
        print(
            f"   {name}: {ms:.1f} ms/step (goal <= 40), {1e3 * b / ms:.0f} images/s, GPU kernels "
            f"{_fmt(gpu, '.1f')} ms/step, host overhead {_fmt(host, '.0%')}"
        )
    check.figures["retrain_step"] = rows


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def part_darts_epoch(check: Check, root: Path) -> None:
    """D: one paper-scale DARTS-space DDPNAS epoch (train + validation), eager and captured."""
    sets = nb201_sets(check, root, check.split)
    rows = {}
    for graphs in (False, True):
        ev = evaluator(check, DartsSpace(), sets, graphs, **check.darts)
        check.sync()
        began = time.perf_counter()
        ev.train(DARTS_ARCH, 0, epoch_generator(0, 0))
        ev.evaluate(DARTS_ARCH)
        check.sync()
        epoch = time.perf_counter() - began
        name = "captured" if graphs else "eager"
        rows[name] = {
            "epoch_s": epoch,
            "search_h_extrapolated": epoch * 105 / 3600,
            "images_per_s": 2 * len(sets[0]) / epoch,
        }
        rate = 2 * len(sets[0]) / epoch
        print(f"   {name}: one measured epoch {epoch:.1f} s, {rate:.0f} images/s; x 105 epochs =")
        print(f"   {epoch * 105 / 60:.1f} min (EXTRAPOLATED from that epoch; goal <= 20 min)")
    check.figures["darts_epoch"] = rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="toy sizes on the CPU (no GPU)")
    parser.add_argument("--out", help="folder for logs, records and gpu_check.json")
    parser.add_argument("--parts", default="ABCDE", help="which parts to run (default: all)")
    args = parser.parse_args()
    if not args.dry_run and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA GPU visible; run with --dry-run to check the script itself")
    work = Path(tempfile.mkdtemp(prefix="gpu_check."))
    out = Path(args.out) if args.out else work / "out"
    out.mkdir(parents=True, exist_ok=True)
    check = Check(args.dry_run, out, args.parts)
    torch.set_num_threads(1 if check.dry else 4)
    print(
        f"gpu_check on {device_name(check.device)}; torch {torch.__version__}; "
        f"{'DRY RUN (toy sizes, CPU)' if check.dry else 'paper scale'}",
        flush=True,
    )
    root = data_root(check, work)
    print(f"data: {check.figures['data']}", flush=True)
    check.part("A. eager vs captured losses", 20, lambda: part_losses(check, root))
    check.part("B. DARTS-V2 retraining step, batch 96", 40, lambda: part_retrain_step(check))
    check.part("C. NB201 DDPNAS search, paper scale", 200, lambda: part_nb201_search(check, root))
    check.part(
        "D. DARTS-space DDPNAS epoch, paper scale", 90, lambda: part_darts_epoch(check, root)
    )
    check.part(
        "E. short search eager vs captured; F. N per GPU",
        120,
        lambda: part_short_and_shared(check, root),
    )
    check.figures["notes"] = check.notes
    check.figures["total_s"] = time.perf_counter() - check.start
    (out / "gpu_check.json").write_text(json.dumps(check.figures, indent=2) + "\n")
    print(f"\nnotes: {check.notes or 'none'}")
    print(f"total {check.figures['total_s']:.0f} s; figures in {out / 'gpu_check.json'}")
    if any("FAILED" in note for note in check.notes):
        sys.exit(1)


if __name__ == "__main__":
    main()
