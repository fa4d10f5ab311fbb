"""Per-epoch search cost of DDPNAS and the baselines on the same supernet, batch and device.

Each strategy proposes one epoch's plan and the shared SupernetEvaluator trains along it for
``--steps`` batches of synthetic images (the cost does not depend on pixel values); a validation
pass over ``--steps`` batches is timed too. The table gives ms per training step, ratios to DDPNAS,
and the search cost extrapolated to the paper's protocol (25k train / 25k valid images, batch 64,
the strategy's published epoch count), printed beside the published DDPNAS figure.

    python benchmarks/bench_search.py --space nb201 --C 16 --N 5
    python benchmarks/bench_search.py --space darts --C 16 --layers 8 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from ddpnas.data.cifar10 import ImageSet
from ddpnas.engine.evaluators import SupernetEvaluator
from ddpnas.engine.loop import epoch_generator
from ddpnas.runtime import device_name
from ddpnas.spaces import get_space
from ddpnas.strategies import get_strategy
from ddpnas.strategies.base import Strategy

SPLIT = 25_000  # images in each half of the NAS-Bench-201 / DARTS train/valid split
PUBLISHED_DDPNAS_GPU_HOURS = 1.8  # DDPNAS, DARTS space, one Tesla V100 (IJCV 2023 abstract)

# name -> (strategy, options, epochs of the published protocol given K ops,
#          validations of the whole valid split per epoch, and at the end).
# ENAS: 10 controller samples x 500 images per epoch = 0.2 splits; ENAS and RSPS end by
# validating 100 sampled architectures. DDPNAS and DARTS validate one path per epoch.
STRATEGIES: dict[str, tuple[str, dict, Callable[[int], int], float, int]] = {
    "DDPNAS": ("ddpnas", {}, lambda k: 3 * sum(range(2, k + 1)), 1.0, 0),
    "DARTS-1st": ("darts", {"order": 1}, lambda k: 50, 1.0, 0),
    "DARTS-2nd": ("darts", {"order": 2}, lambda k: 50, 1.0, 0),
    "ENAS": ("enas", {}, lambda k: 50, 0.2, 100),
    "RSPS": ("rsps", {}, lambda k: 50, 0.0, 100),
}


def synthetic(n: int, generator: torch.Generator) -> ImageSet:
    """Random CIFAR-shaped images (timing does not depend on content)."""
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (n,), generator=generator)
    classes = tuple(str(c) for c in range(10))
    return ImageSet(images, labels, classes)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_epoch(
    strategy: Strategy, evaluator: SupernetEvaluator, device: torch.device, repeats: int
) -> tuple[float, float]:
    """Median seconds of one training epoch along the strategy's plan, and of one validation."""
    rng = np.random.default_rng(0)
    train, valid = [], []
    for r in range(repeats + 1):  # the first round warms up kernels and caches
        plan = strategy.propose(rng)
        sync(device)
        start = time.perf_counter()
        evaluator.train(plan.train, r, epoch_generator(0, r))
        sync(device)
        middle = time.perf_counter()
        evaluator.evaluate(strategy.space.validate((1,) * strategy.space.num_edges))
        sync(device)
        if r:
            train.append(middle - start)
            valid.append(time.perf_counter() - middle)
    return statistics.median(train), statistics.median(valid)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", choices=["nb201", "darts"], default="nb201")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4, help="training steps per timed epoch")
    parser.add_argument("--repeats", type=int, default=2, help="timed epochs per strategy")
    parser.add_argument("--C", type=int, default=16)
    parser.add_argument("--N", type=int, default=5, help="cells per stage (nb201)")
    parser.add_argument("--layers", type=int, default=8, help="cells (darts)")
    parser.add_argument("--only", nargs="+", choices=list(STRATEGIES), default=list(STRATEGIES))
    return parser.parse_args()


def measure(args: argparse.Namespace, size: dict[str, int]) -> list[tuple]:
    """(label, ms per train step, paper epochs, extrapolated s/epoch, extrapolated hours)."""
    device = torch.device(args.device)
    space = get_space(args.space)
    data_gen = torch.Generator().manual_seed(0)
    train_set = synthetic(args.batch * args.steps, data_gen)
    valid_set = synthetic(args.batch * args.steps, data_gen)
    rows = []
    for label in args.only:
        name, options, epochs_of, validations, final = STRATEGIES[label]
        torch.manual_seed(0)
        strategy = get_strategy(name)(space, **options)
        evaluator = SupernetEvaluator(
            space.supernet(**size),
            train_set,
            valid_set,
            epochs=10,
            batch_size=args.batch,
            eval_batch_size=args.batch,
            device=device,
        )
        train_s, valid_s = time_epoch(strategy, evaluator, device, args.repeats)
        step_ms = 1e3 * train_s / args.steps
        valid_ms = 1e3 * valid_s / args.steps  # per batch of validation images
        epochs = epochs_of(space.num_ops)
        batches = SPLIT / args.batch
        per_epoch_s = batches * (step_ms + validations * valid_ms) / 1e3
        total_s = per_epoch_s * epochs + final * batches * valid_ms / 1e3
        rows.append((label, step_ms, epochs, per_epoch_s, total_s / 3600))
    return rows


def main() -> None:
    args = parse_args()
    size = (
        {"C": args.C, "N": args.N}
        if args.space == "nb201"
        else {"C": args.C, "layers": args.layers}
    )
    rows = measure(args, size)
    base = rows[0][1] if rows[0][0] == "DDPNAS" else float("nan")
    print(
        f"{args.space} supernet {size}, batch {args.batch}, {args.steps} steps x "
        f"{args.repeats} epochs (median); {device_name(torch.device(args.device))}; "
        f"torch {torch.__version__}\n"
    )
    print(
        "| strategy | ms/train step | ratio to DDPNAS | paper epochs | extrapolated s/epoch "
        "| extrapolated search (h) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for label, step_ms, epochs, per_epoch_s, hours in rows:
        print(
            f"| {label} | {step_ms:.1f} | {step_ms / base:.2f} | {epochs} | {per_epoch_s:.0f} "
            f"| {hours:.2f} |"
        )
    if args.space == "darts":
        print(
            f"\npublished DDPNAS search cost (DARTS space): {PUBLISHED_DDPNAS_GPU_HOURS} GPU hours "
            "on one Tesla V100"
        )
    print(
        "\nextrapolation: epochs x 25k/batch x (train step + validations per epoch x "
        "validation batch) + final validations; see STRATEGIES in this script."
    )


if __name__ == "__main__":
    main()
