"""Decode a list of image files once, in parallel, into a uint8 cache reused across restarts.

The ImageNet search holds its 1.28 M training images in memory at a small resolution. Decoding
them one by one in one Python loop takes hours before the first search epoch, and did so again on
every restart. Here DataLoader worker processes decode and resize (shorter side, centre crop) in
parallel, the main process streams the results into a ``.npy`` file beside a small JSON header,
and a restart maps that file instead of decoding again.

The cache is keyed by a fingerprint of the file list (paths relative to the dataset root, and
labels, in order), the resolution and the decoder version: any added, removed, renamed or
relabelled file, another subset or another resolution makes a new entry. A file rewritten in place
under the same name is not detected (stat-ing 1.28 M files costs minutes on network storage);
delete the cache entry after editing images. The ``.npy`` file is written under a temporary name
and renamed, then the header, so a killed decode leaves no entry that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ddpnas.errors import DataError
from ddpnas.io.files import WRITE_LIMITS, write_json

CACHE_VERSION = 1
# What produced the pixels: torchvision's full JPEG decode, antialiased shorter-side resize,
# centre crop. Part of the fingerprint, so a change of decoder never reuses old pixels.
DECODER = "torchvision.decode_image+resize(antialias)+center_crop"
BATCH = 64  # images per worker round trip


def fingerprint(root: str | Path, samples: Sequence[tuple[str, int]], resolution: int) -> str:
    """sha256 of (version, decoder, resolution, file list relative to ``root`` with labels)."""
    digest = hashlib.sha256(f"{CACHE_VERSION}|{DECODER}|{resolution}\n".encode())
    base = str(root)
    for path, label in samples:
        digest.update(f"{os.path.relpath(path, base)}\t{label}\n".encode())
    return digest.hexdigest()


class _Decode(Dataset):
    """(uint8 3 x res x res image, error message or "") of each sample; errors travel as text so
    the main process can raise one clear line instead of a worker traceback."""

    def __init__(self, samples: Sequence[tuple[str, int]], resolution: int) -> None:
        self.samples, self.resolution = samples, resolution

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        path = self.samples[index][0]
        try:
            return decode_file(path, self.resolution), ""
        except (DataError, RuntimeError, OSError) as exc:
            blank = torch.zeros(3, self.resolution, self.resolution, dtype=torch.uint8)
            return blank, f"{path} is not a readable image: {exc}"


def decode_file(path: str | Path, resolution: int) -> torch.Tensor:
    """One image file as uint8 3 x res x res: shorter side to ``resolution``, centre crop."""
    import warnings

    from torchvision.io import ImageReadMode, decode_image
    from torchvision.transforms.v2 import functional as TF

    raw = Path(path).read_bytes()
    if not raw:
        raise DataError(f"{path} is empty, not an image")
    with warnings.catch_warnings():  # torchvision 0.29 deprecates its codecs; they work
        warnings.simplefilter("ignore", DeprecationWarning)
        image = decode_image(torch.frombuffer(bytearray(raw), dtype=torch.uint8), ImageReadMode.RGB)
    image = TF.resize(image, resolution, antialias=True)
    return TF.center_crop(image, resolution)


def _paths(cache_dir: Path, key: str, resolution: int) -> tuple[Path, Path, Path]:
    stem = cache_dir / f"images-{resolution}px-{key[:20]}"
    return Path(f"{stem}.json"), Path(f"{stem}.npy"), Path(f"{stem}.labels.npy")


def load_cached(
    cache_dir: str | Path, key: str, resolution: int, count: int
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(images, labels) of a complete cache entry, memory-mapped copy-on-write; None if absent,
    of another fingerprint or shape, or unreadable (then it is decoded again)."""
    header, images_file, labels_file = _paths(Path(cache_dir).expanduser(), key, resolution)
    try:
        meta = json.loads(header.read_text())
        if meta.get("fingerprint") != key or meta.get("version") != CACHE_VERSION:
            return None
        images = np.load(images_file, mmap_mode="c")
        labels = np.load(labels_file)
    except (OSError, ValueError, json.JSONDecodeError):
        return None
    if images.shape != (count, 3, resolution, resolution) or images.dtype != np.uint8:
        return None
    if labels.shape != (count,):
        return None
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


def decode_all(
    samples: Sequence[tuple[str, int]],
    resolution: int,
    *,
    workers: int,
    out: np.ndarray,
    progress: bool | None = None,
) -> None:
    """Decode ``samples`` into ``out`` (uint8 N x 3 x res x res) with ``workers`` processes."""
    from tqdm import tqdm

    batches = DataLoader(
        _Decode(samples, resolution),
        batch_size=BATCH,
        num_workers=workers,
        shuffle=False,
        persistent_workers=False,
    )
    show = sys.stderr.isatty() if progress is None else progress
    row = 0
    with tqdm(total=len(samples), disable=not show, desc="decode", unit="img") as bar:
        for images, errors in batches:
            bad = next((e for e in errors if e), None)
            if bad is not None:
                raise DataError(f"{bad}; remove or replace the file and rerun")
            out[row : row + len(images)] = images.numpy()
            row += len(images)
            bar.update(len(images))


def cached_decode(
    root: str | Path,
    samples: Sequence[tuple[str, int]],
    resolution: int,
    *,
    workers: int,
    cache_dir: str | Path | None,
    progress: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """(uint8 images, int64 labels, info) of ``samples``: from the cache when its entry matches,
    else decoded in parallel and stored (``cache_dir`` None: decoded, not stored).

    ``info`` says whether the cache was hit, where, and how long the decode took.
    """
    labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
    key = fingerprint(root, samples, resolution)
    info: dict[str, Any] = {"fingerprint": key, "images": len(samples), "resolution": resolution}
    if cache_dir is not None:
        hit = load_cached(cache_dir, key, resolution, len(samples))
        if hit is not None:
            return hit[0], hit[1], {**info, "cache": "hit", "cache_dir": str(cache_dir)}
    start = time.perf_counter()
    if cache_dir is None:
        images = np.empty((len(samples), 3, resolution, resolution), dtype=np.uint8)
        decode_all(samples, resolution, workers=workers, out=images, progress=progress)
        seconds = time.perf_counter() - start
        return torch.from_numpy(images), labels, {**info, "cache": "off", "seconds": seconds}
    _store(Path(cache_dir).expanduser(), key, samples, resolution, workers, labels, progress)
    seconds = time.perf_counter() - start
    loaded = load_cached(cache_dir, key, resolution, len(samples))
    if loaded is None:  # pragma: no cover - the entry was just written
        raise DataError(f"the image cache in {cache_dir} could not be read back after writing")
    info |= {"cache": "written", "cache_dir": str(cache_dir), "seconds": seconds}
    return loaded[0], loaded[1], info


def _store(
    cache_dir: Path,
    key: str,
    samples: Sequence[tuple[str, int]],
    resolution: int,
    workers: int,
    labels: torch.Tensor,
    progress: bool | None,
) -> None:
    """Decode straight into a temporary ``.npy`` map, then rename it and write the header."""
    header, images_file, labels_file = _paths(cache_dir, key, resolution)
    shape = (len(samples), 3, resolution, resolution)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = images_file.with_name(f".{images_file.name}.{uuid.uuid4().hex}.tmp")
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            decode_all(samples, resolution, workers=workers, out=out, progress=progress)
            out.flush()
            del out
            os.replace(tmp, images_file)
        finally:
            tmp.unlink(missing_ok=True)
        np.save(labels_file, labels.numpy())
        write_json(header, {"version": CACHE_VERSION, "fingerprint": key, "decoder": DECODER,
                            "shape": list(shape)})  # fmt: skip
    except OSError as exc:
        room = " (disk full or a size limit)" if exc.errno in WRITE_LIMITS else ""
        need = np.prod(shape) / 2**30
        raise DataError(
            f"cannot write the decoded-image cache in {cache_dir}{room}: {exc.strerror or exc}; "
            f"it needs {need:.1f} GiB: point imagenet.cache (or $DDPNAS_CACHE) at a writable "
            "folder with room"
        ) from None
