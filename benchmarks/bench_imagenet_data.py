"""Images per second of the ImageNet input paths at ImageNet size, and the time they take on a
16-core GPU host for the 1.28 M training images.

Real ImageNet is absent here, so ``--generate N`` first writes an ImageNet-format folder
(``train/<wnid>/*.JPEG``, ``val/<wnid>/*.JPEG``) of N training JPEGs 400-500 px a side: CIFAR-10
photos upscaled, with uniform pixel noise so that the files average about ImageNet's size
(ILSVRC2012 train: 1,281,167 files, about 110 KB each), since JPEG decoding time grows with the
coded bits. Timed, each with W worker processes:

- **search decode**: what ``ddpnas imagenet search`` does once before its first epoch
  (:mod:`ddpnas.data.imagecache`: full decode, shorter side to ``--search-resolution``, centre
  crop, streamed into the ``.npy`` cache), then the restart that maps the cache instead;
- **retraining**: the DataLoader path of ``ddpnas imagenet retrain`` (decode, ddpnas_v1's random
  resized crop to ``--resolution`` + flip, normalise, batch).

The extrapolation to ``--cores`` cores multiplies the best per-worker rate measured by the cores
(decoding is independent per image, so it scales with cores that are free) and assumes the disk
keeps up (1.28 M files, about 140 GB, in the time printed). On a host whose cores are shared with
other jobs (see the load printed) the rates are lower bounds.

    PYTHONPATH=. python benchmarks/bench_imagenet_data.py --folder /tmp/inet \\
        --generate 20000 --cifar-zip ../shared/data/cifar10-jpeg.zip --workers 1 2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import tempfile
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from ddpnas.data.imagecache import cached_decode
from ddpnas.data.imagenet import loader, open_split, train_transform
from ddpnas.retrain.imagenet import PROTOCOLS
from ddpnas.runtime import device_name

IMAGENET_TRAIN = 1_281_167
NOISE = 36  # uniform +-NOISE per pixel: ~110 KB files at 400-500 px, JPEG quality 90
QUALITY = 90


def _make_images(job: tuple[str, list[tuple[str, str]], int]) -> int:
    """Write one chunk of generated JPEGs: (zip, [(cifar member, out path)], seed) -> bytes."""
    from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg
    from torchvision.transforms.v2 import functional as TF

    zip_path, items, seed = job
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(seed)
    written = 0
    with zipfile.ZipFile(zip_path) as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for member, out in items:
            raw = torch.frombuffer(bytearray(archive.read(member)), dtype=torch.uint8)
            image = decode_jpeg(raw, mode=ImageReadMode.RGB)
            h, w = torch.randint(400, 501, (2,), generator=generator).tolist()
            image = TF.resize(image, [h, w], antialias=False).to(torch.int16)
            noise = torch.randint(-NOISE, NOISE + 1, image.shape, generator=generator)
            image = (image + noise).clamp_(0, 255).to(torch.uint8)
            data = encode_jpeg(image, quality=QUALITY).numpy().tobytes()
            Path(out).write_bytes(data)
            written += len(data)
    return written


def generate(folder: Path, cifar_zip: str, images: int, classes: int, val: int, procs: int) -> None:
    """An ImageNet-format folder of ``images`` training JPEGs in ``classes`` classes (+ ``val``
    per class), built in a temporary sibling and renamed."""
    with zipfile.ZipFile(cifar_zip) as archive:
        members = sorted(n for n in archive.namelist() if n.lower().endswith((".jpg", ".jpeg")))
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    jobs: list[tuple[str, str]] = []
    for split, per_class in (("train", images // classes), ("val", val)):
        for c in range(classes):
            wnid = f"n{c:08d}"
            (tmp / split / wnid).mkdir(parents=True)
            for i in range(per_class):
                member = members[(len(jobs) * 7919) % len(members)]
                jobs.append((member, str(tmp / split / wnid / f"{wnid}_{i}.JPEG")))
    chunks = [(cifar_zip, jobs[i : i + 500], i) for i in range(0, len(jobs), 500)]
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        total = sum(pool.map(_make_images, chunks))
    tmp.rename(folder)
    print(
        f"generated {len(jobs)} JPEGs ({total / len(jobs) / 1e3:.0f} KB mean) in "
        f"{time.perf_counter() - start:.0f} s with {procs} processes"
    )


def search_decode(folder: Path, resolution: int, workers: int) -> dict[str, float]:
    """Decode the whole train split into a fresh cache, then map it again (a restart)."""
    dataset = open_split(folder, "train")
    with tempfile.TemporaryDirectory(dir=folder.parent) as cache:
        start = time.perf_counter()
        cached_decode(dataset.root, dataset.samples, resolution, workers=workers, cache_dir=cache)
        decode = time.perf_counter() - start
        start = time.perf_counter()
        images, _, info = cached_decode(
            dataset.root, dataset.samples, resolution, workers=workers, cache_dir=cache
        )
        images.sum()  # touch every page, as moving it to the GPU does
        reload = time.perf_counter() - start
        assert info["cache"] == "hit"
    n = len(dataset.samples)
    return {"images": n, "seconds": decode, "rate": n / decode, "reload_rate": n / reload}


def retrain_stream(folder: Path, resolution: int, workers: int, batch: int, count: int) -> float:
    """Images/s of the retraining DataLoader (ddpnas_v1's crop and flip) after one batch."""
    v1 = PROTOCOLS["ddpnas_v1"]
    transform = train_transform(resolution, scale=v1.crop_scale, ratio=v1.crop_ratio)
    dataset = open_split(folder, "train", transform)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:count]
    batches = loader(dataset, order, batch, workers=workers, pin_memory=False, seed=0)
    seen, start = 0, None
    for i, (_, y) in enumerate(batches):
        if i == 1:  # worker start-up excluded
            start, seen = time.perf_counter(), 0
        seen += len(y)
    if start is None:
        raise SystemExit("too few images for a timed batch; raise --retrain-images")
    return seen / (time.perf_counter() - start)


def report(args: argparse.Namespace, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The table, and the extrapolation from the largest worker count to ``--cores`` cores."""
    best = max(rows, key=lambda r: r["search"]["rate"] / r["workers"])
    per_worker = best["search"]["rate"] / best["workers"]
    search_min = IMAGENET_TRAIN / (per_worker * args.cores) / 60
    stream = max(r["retrain"] / r["workers"] for r in rows) * args.cores
    load = os.getloadavg()[0]
    print(
        f"ImageNet input paths on {device_name(torch.device('cpu'))} "
        f"({os.cpu_count()} cores, load {load:.1f} at start), torch {torch.__version__}; "
        f"{rows[0]['search']['images']} generated JPEGs (400-500 px), search decode to "
        f"{args.search_resolution} px, retraining crop {args.resolution} px, batch {args.batch}"
    )
    print("| workers | search decode (img/s) | cache reload (img/s) | retraining DataLoader "
          "(img/s) |\n|---:|---:|---:|---:|")  # fmt: skip
    for r in rows:
        print(
            f"| {r['workers']} | {r['search']['rate']:.0f} | {r['search']['reload_rate']:.0f} | "
            f"{r['retrain']:.0f} |"
        )
    print(
        f"Extrapolated to {args.cores} cores (the best per-worker rate, {per_worker:.0f} img/s "
        f"with {best['workers']} worker(s), x {args.cores}): "
        f"the search's decode of {IMAGENET_TRAIN:,} images takes {search_min:.1f} min (once; a "
        f"restart maps the cache); retraining streams {stream:.0f} img/s, "
        f"{IMAGENET_TRAIN / stream / 60:.1f} min per epoch if the GPU keeps up."
    )
    cpu = device_name(torch.device("cpu"))
    return {"rows": rows, "search_minutes": search_min, "retrain_rate": stream, "cores": args.cores,
            "load": load, "cpu": cpu, "torch": torch.__version__}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", required=True, help="ImageNet-format folder (train/, val/)")
    parser.add_argument("--generate", type=int, help="write N training JPEGs there first")
    parser.add_argument("--cifar-zip", help="cifar10-jpeg.zip (source photos for --generate)")
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--val-per-class", type=int, default=5)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--search-resolution", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--retrain-images", type=int, default=3000)
    parser.add_argument("--cores", type=int, default=16, help="cores to extrapolate to")
    parser.add_argument("--json", help="also write the numbers here")
    parser.add_argument("--remove", action="store_true", help="delete a folder it generated")
    args = parser.parse_args()
    torch.set_num_threads(1)  # workers are the parallelism; the main process only collects
    folder = Path(args.folder).resolve()
    made = False
    if args.generate and not folder.exists():
        if not args.cifar_zip:
            raise SystemExit("--generate needs --cifar-zip")
        procs = max(args.workers)
        generate(folder, args.cifar_zip, args.generate, args.classes, args.val_per_class, procs)
        made = True
    rows = []
    for workers in args.workers:
        rows.append(
            {
                "workers": workers,
                "search": search_decode(folder, args.search_resolution, workers),
                "retrain": retrain_stream(
                    folder, args.resolution, workers, args.batch, args.retrain_images
                ),
            }
        )
    summary = report(args, rows)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    if made and args.remove:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
