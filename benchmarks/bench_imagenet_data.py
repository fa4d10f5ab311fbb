"""Images per second of the ImageNet input pipeline (decode, crop, flip, normalise, batch).

Real ImageNet is absent here, so the images are a stand-in built from CIFAR-10 and upscaled to
``--size`` (default 375, about ImageNet's mean short side; JPEG decoding cost grows with pixels).
Rows: the CPU DataLoader path with 0..N workers (train: random resized crop 224 + flip; eval:
resize 256 + centre crop 224), and the batch-decode path (``torchvision.io.decode_jpeg`` on a
whole batch, nvJPEG on CUDA) that retraining uses with ``gpu_decode``.

    PYTHONPATH=. python benchmarks/bench_imagenet_data.py \
        --cifar-zip ../shared/data/cifar10-jpeg.zip
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from ddpnas.data.imagenet import (
    RawBytes,
    build_standin,
    collate_raw,
    decode_batch,
    eval_transform,
    loader,
    open_split,
    train_transform,
)
from ddpnas.runtime import device_name


def rate(batches: object, count: int, warmup: int = 1) -> float:
    """Images per second over the batches after ``warmup`` batches (worker start-up excluded)."""
    seen, start = 0, None
    for i, batch in enumerate(batches):  # type: ignore[attr-defined]
        if i == warmup:
            start, seen = time.perf_counter(), 0
        seen += len(batch[1])
    if start is None:
        raise SystemExit("too few images for a timed batch; raise --per-class")
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar-zip", required=True)
    parser.add_argument("--size", type=int, default=375, help="stand-in image side (px)")
    parser.add_argument("--per-class", type=int, default=40, help="train images per class")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)  # workers are the parallelism; the main process only batches
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = build_standin(
            args.cifar_zip,
            Path(tmp) / "standin",
            train_per_class=args.per_class,
            val_per_class=args.per_class,
            size=args.size,
        )
        rows = []
        for split, transform in (
            ("train", train_transform(args.resolution)),
            ("val", eval_transform(args.resolution)),
        ):
            dataset = open_split(root, split, transform)
            every = torch.arange(len(dataset))
            for workers in args.workers:
                batches = loader(
                    dataset, every, args.batch, workers=workers, pin_memory=False, seed=0
                )
                rows.append((f"DataLoader, {workers} workers", split, rate(batches, len(every))))
            raw = RawBytes(open_split(root, split))
            generator = torch.Generator().manual_seed(0)
            batches = (
                (decode_batch(d, args.resolution, device=device, train=split == "train",
                              generator=generator), y)
                for d, y in loader(raw, every, args.batch, workers=0, pin_memory=False, seed=0,
                                   collate_fn=collate_raw)
            )  # fmt: skip
            rows.append((f"batch decode_jpeg on {device.type}", split, rate(batches, len(every))))
    print(
        f"ImageNet input pipeline, {args.size}x{args.size} JPEG stand-in -> {args.resolution}, "
        f"batch {args.batch}; {device_name(torch.device('cpu'))}, torch {torch.__version__}"
        + (f", {device_name(device)}" if device.type == "cuda" else "")
    )
    print("| path | split | images/s |\n|---|---|---:|")
    for path, split, value in rows:
        print(f"| {path} | {split} | {value:.0f} |")


if __name__ == "__main__":
    main()
