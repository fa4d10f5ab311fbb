"""Short, fixed CPU runs of the two training loops, shared by tests/test_speed.py.

``python tests/speed_runs.py`` rewrote tests/fixtures/speed_golden.json from the code before the
speed work (commit e1dfc3c): the test compares today's CPU runs with it, so the speed changes
provably leave CPU records unchanged.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

from ddpnas.data.cifar10 import ImageSet
from ddpnas.engine.evaluators import SupernetEvaluator
from ddpnas.engine.loop import epoch_generator
from ddpnas.retrain.loop import retrain
from ddpnas.retrain.setup import RetrainConfig
from ddpnas.spaces.darts.genotype import DARTS_V2
from ddpnas.spaces.darts.space import DartsSpace
from ddpnas.spaces.nb201 import NB201Space

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "speed_golden.json"
ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|none~2|"
# 100 images at batch 32: three full batches (two warm-up steps, then capture and replay) and a
# partial one of 4 images that the captured step must run eagerly.
TRAIN_IMAGES, VALID_IMAGES, BATCH = 100, 48, 32


def synthetic(n: int, seed: int) -> ImageSet:
    """Images whose colour gives the class, so losses move visibly within two epochs."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=generator)
    noise = torch.randint(0, 60, (n, 3, 32, 32), generator=generator)
    images = (noise + (labels * 19).view(-1, 1, 1, 1)).clamp(0, 255).to(torch.uint8)
    return ImageSet(images, labels, tuple(str(c) for c in range(10)))


def supernet_run(**options: Any) -> list[dict[str, float]]:
    """Two epochs of one fixed NAS-Bench-201 path: train metrics and validation top-1."""
    torch.manual_seed(0)
    space = NB201Space()
    arch = space.str_to_arch(ARCH)
    evaluator = SupernetEvaluator(
        space.supernet(C=4, N=1, num_classes=10),
        synthetic(TRAIN_IMAGES, 1),
        synthetic(VALID_IMAGES, 2),
        epochs=2,
        batch_size=BATCH,
        device="cpu",
        lr_min=0.0,  # the golden run predates the DARTS/NB201 cosine floor (0.001, issue 7)
        **options,
    )
    rows = []
    for epoch in range(2):
        row = evaluator.train(arch, epoch, epoch_generator(0, epoch))
        rows.append({**row, **evaluator.evaluate(arch)})
    return rows


def retrain_run(out_dir: Path, **options: Any) -> list[dict[str, Any]]:
    """Two epochs of a small DARTS-V2 network (auxiliary head, drop path, cutout): metrics rows."""
    cfg = RetrainConfig(epochs=2, batch_size=BATCH, eval_batch_size=64, seed=5, **options)
    net = DartsSpace()
    retrain(
        lambda: net.eval_network(DARTS_V2, C=4, layers=3, num_classes=10, auxiliary=True),
        synthetic(TRAIN_IMAGES, 3),
        synthetic(VALID_IMAGES, 4),
        cfg,
        device="cpu",
        out_dir=out_dir,
    )
    state = torch.load(out_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    # top-5 joined the metrics after the golden run was recorded (issue 8)
    dropped = ("seconds", "test_top5")
    return [{k: v for k, v in row.items() if k not in dropped} for row in state["history"]]


def golden_runs(tmp: Path) -> dict[str, Any]:
    torch.set_num_threads(1)
    return {"supernet": supernet_run(), "retrain": retrain_run(tmp)}


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        GOLDEN.write_text(json.dumps(golden_runs(Path(tmp)), indent=1) + "\n")
    sys.stdout.write(f"wrote {GOLDEN}\n")
