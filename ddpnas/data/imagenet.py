"""ImageNet: located like CIFAR-10 but never downloaded, split as ProxylessNAS, served by workers.

The root comes from the config (``imagenet.root``), else ``$DDPNAS_IMAGENET``. It may hold the
official archives (``ILSVRC2012_img_train.tar``, ``ILSVRC2012_img_val.tar``,
``ILSVRC2012_devkit_t12.tar.gz``; read by ``torchvision.datasets.ImageNet``, which unpacks them
once) or an image folder ``train/<wnid>/*.JPEG``, ``val/<wnid>/*.JPEG``. A stand-in folder built
from CIFAR-10 (:func:`build_standin`) carries ``STANDIN.json``, and every result computed on it is
labelled a stand-in.

Two ways to feed a model:

- **streaming** (retraining at full resolution): a DataLoader with worker processes and pinned
  memory decoding and augmenting on the CPU (:func:`loader`), or, on CUDA, workers that only read
  the JPEG bytes and :func:`decode_batch` decoding the whole batch on the GPU with
  ``torchvision.io.decode_jpeg(device="cuda")``;
- **in memory** (weight-sharing search at small resolution): :func:`decode_to_imageset` decodes a
  subset once into a uint8 :class:`~ddpnas.data.cifar10.ImageSet` (shorter side resized, centre
  crop), which the search engine's evaluator serves from memory as it does CIFAR-10.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from ddpnas.data.cifar10 import ImageSet
from ddpnas.errors import ConfigError, DataError
from ddpnas.io.files import write_json

ENV_IMAGENET = "DDPNAS_IMAGENET"
CONFIG_KEY = "imagenet.root"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STANDIN_FILE = "STANDIN.json"
ARCHIVES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar", "ILSVRC2012_devkit_t12.tar.gz")
SPLITS = ("train", "val")
SEARCH_HOLDOUT = 50_000  # ProxylessNAS: class-balanced held-out training images, randperm seed 0
EVAL_CROP_RATIO = 0.875  # resize the shorter side to resolution / 0.875 (256 for 224), centre crop
# WordNet ids for CIFAR-10's classes, so the stand-in looks like ImageNet's train/<wnid>/ layout.
CIFAR_WNIDS = {
    "airplane": "n02691156",
    "automobile": "n02958343",
    "bird": "n01503061",
    "cat": "n02121808",
    "deer": "n02430045",
    "dog": "n02084071",
    "frog": "n01639765",
    "horse": "n02374451",
    "ship": "n04194289",
    "truck": "n04490091",
}


def resolve_imagenet_root(config_value: str | None) -> Path:
    """The ImageNet root from the config, else $DDPNAS_IMAGENET; never a download."""
    value = config_value or os.environ.get(ENV_IMAGENET)
    if not value:
        raise DataError(
            f"ImageNet not found: set {CONFIG_KEY} in the config or ${ENV_IMAGENET} to a folder "
            "holding the official ILSVRC2012 archives or train/<wnid>/ and val/<wnid>/ "
            "(it is never downloaded; `ddpnas imagenet standin` builds a small stand-in)"
        )
    root = Path(value).expanduser()
    if not _is_folder(root) and not all((root / a).is_file() for a in ARCHIVES[::2]):
        raise DataError(
            f"{root} (from {CONFIG_KEY} or ${ENV_IMAGENET}) holds neither train/<wnid>/ and "
            f"val/<wnid>/ nor the official archives {', '.join(ARCHIVES)}"
        )
    return root


def _is_folder(root: Path) -> bool:
    return all((root / split).is_dir() for split in SPLITS)


def is_standin(root: Path) -> bool:
    """Whether ``root`` is a CIFAR-10 stand-in built by :func:`build_standin`."""
    return (root / STANDIN_FILE).is_file()


@contextlib.contextmanager
def _codecs() -> Iterator[None]:
    """torchvision 0.29 deprecates its codecs (see ``ddpnas.data.cifar10._decode_jpegs``); they
    work."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def open_split(root: Path, split: str, transform: Callable | None = None) -> Dataset:
    """One split as a torchvision dataset (ImageFolder, or ImageNet on the official archives)."""
    from torchvision import datasets

    if split not in SPLITS:
        raise ConfigError(f"ImageNet split must be one of {SPLITS}, got {split!r}")
    if _is_folder(root) and not (root / "meta.bin").is_file():
        return datasets.ImageFolder(str(root / split), transform=transform)
    try:
        return datasets.ImageNet(str(root), split=split, transform=transform)
    except (RuntimeError, OSError) as exc:
        raise DataError(f"cannot read ImageNet {split} from {root}: {exc}") from exc


def train_transform(
    resolution: int, scale: tuple[float, float] = (0.08, 1.0), jitter: float = 0.0
) -> Callable:
    """Random resized crop, flip, optional colour jitter (brightness, contrast, saturation)."""
    from torchvision.transforms import v2

    steps: list[Any] = [
        v2.ToImage(),
        v2.RandomResizedCrop(resolution, scale=scale, antialias=True),
        v2.RandomHorizontalFlip(),
    ]
    if jitter:
        steps.append(v2.ColorJitter(jitter, jitter, jitter))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return v2.Compose(steps)


def eval_transform(resolution: int) -> Callable:
    """Shorter side to resolution / 0.875, centre crop, normalise (256 -> 224 at full size)."""
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(round(resolution / EVAL_CROP_RATIO), antialias=True),
            v2.CenterCrop(resolution),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def search_split(
    targets: Sequence[int] | torch.Tensor, held_out: int = SEARCH_HOLDOUT, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held-out) indices of the training set, ProxylessNAS's way.

    ``held_out // classes`` images per class are held out: the first ones of each class in a
    random permutation drawn with ``seed``. Both index lists are sorted.
    """
    labels = torch.as_tensor(targets, dtype=torch.int64)
    classes, counts = torch.unique(labels, return_counts=True)
    per_class = held_out // len(classes)
    if per_class < 1 or per_class >= int(counts.min()):
        raise ConfigError(
            f"search held_out {held_out} gives {per_class} images per class; need 1.."
            f"{int(counts.min()) - 1} for {len(classes)} classes of at least {int(counts.min())}"
        )
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    rank = torch.zeros_like(labels)  # position of each image within its class in the permutation
    seen = torch.zeros(int(classes.max()) + 1, dtype=torch.int64)
    for index in order.tolist():
        cls = int(labels[index])
        rank[index] = seen[cls]
        seen[cls] += 1
    held = rank < per_class
    return torch.nonzero(~held).flatten(), torch.nonzero(held).flatten()


def targets(dataset: Dataset) -> list[int]:
    """Class labels of an ImageFolder-like dataset without decoding any image."""
    return list(dataset.targets)  # type: ignore[attr-defined]


def _resize_crop(image: torch.Tensor, resolution: int) -> torch.Tensor:
    """Shorter side to ``resolution``, centre crop to square (uint8 C x H x W in and out)."""
    from torchvision.transforms.v2 import functional as TF

    image = TF.resize(image, resolution, antialias=True)
    return TF.center_crop(image, resolution)


def decode_to_imageset(
    dataset: Dataset, indices: Sequence[int] | torch.Tensor, resolution: int
) -> ImageSet:
    """Decode ``indices`` of an ImageFolder-like dataset once into uint8 resolution^2 images."""
    from torchvision.io import ImageReadMode, decode_image

    samples = dataset.samples  # type: ignore[attr-defined]
    index = torch.as_tensor(indices, dtype=torch.int64).tolist()
    images = torch.empty(len(index), 3, resolution, resolution, dtype=torch.uint8)
    with _codecs():
        for row, i in enumerate(index):
            path = samples[i][0]
            try:
                image = decode_image(_read(path), mode=ImageReadMode.RGB)
            except RuntimeError as exc:
                raise DataError(f"{path} is not a readable image: {exc}") from exc
            images[row] = _resize_crop(image, resolution)
    labels = torch.tensor([samples[i][1] for i in index], dtype=torch.int64)
    return ImageSet(images, labels, tuple(dataset.classes))  # type: ignore[attr-defined]


def _read(path: str | Path) -> torch.Tensor:
    raw = Path(path).read_bytes()
    if not raw:
        raise DataError(f"{path} is empty, not an image")
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8)


def loader(
    dataset: Dataset,
    indices: torch.Tensor,
    batch_size: int,
    *,
    workers: int,
    pin_memory: bool,
    seed: int,
    drop_last: bool = False,
    collate_fn: Callable | None = None,
) -> DataLoader:
    """Batches of ``dataset[indices]`` in the given order, decoded by ``workers`` processes.

    Worker augmentation seeds derive from ``seed`` (DataLoader seeds each worker from its
    generator), so an epoch replays exactly for the same ``seed`` and worker count.
    """
    subset = torch.utils.data.Subset(dataset, indices.tolist())
    return DataLoader(
        subset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=pin_memory,
        drop_last=drop_last,
        persistent_workers=False,
        generator=torch.Generator().manual_seed(seed),
        collate_fn=collate_fn,
    )


class RawBytes(Dataset):
    """(JPEG bytes, label) of an ImageFolder-like dataset: workers only read, the GPU decodes."""

    def __init__(self, dataset: Dataset) -> None:
        self.samples = dataset.samples  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        return _read(path), label


def collate_raw(batch: list[tuple[torch.Tensor, int]]) -> tuple[list[torch.Tensor], torch.Tensor]:
    return [data for data, _ in batch], torch.tensor([label for _, label in batch])


def _rrc_box(
    h: int, w: int, scale: tuple[float, float], generator: torch.Generator
) -> tuple[int, int, int, int]:
    """A random-resized-crop box (top, left, height, width), aspect 3/4..4/3, as torchvision's
    (10 tries, then the centre crop), drawn from ``generator``."""
    area = h * w
    log_ratio = (math.log(3 / 4), math.log(4 / 3))
    for _ in range(10):
        u = torch.rand(4, generator=generator).tolist()
        target = area * (scale[0] + u[0] * (scale[1] - scale[0]))
        ratio = math.exp(log_ratio[0] + u[1] * (log_ratio[1] - log_ratio[0]))
        cw, ch = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            return int(u[2] * (h - ch + 1)), int(u[3] * (w - cw + 1)), ch, cw
    side = min(h, w)
    return (h - side) // 2, (w - side) // 2, side, side


def decode_batch(
    data: list[torch.Tensor],
    resolution: int,
    *,
    device: torch.device | str,
    train: bool,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
) -> torch.Tensor:
    """Decode a batch of JPEG bytes on ``device`` (nvJPEG on CUDA), crop, flip, normalise.

    Training: random resized crop and flip drawn from ``generator`` (CPU); evaluation: shorter
    side to resolution / 0.875 and centre crop. Returns float N x 3 x res x res on ``device``.
    """
    from torchvision.io import ImageReadMode, decode_jpeg
    from torchvision.transforms.v2 import functional as TF

    with _codecs():
        images = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    out = []
    for image in images:
        if train:
            top, left, h, w = _rrc_box(image.shape[1], image.shape[2], scale, generator)
            image = TF.resized_crop(image, top, left, h, w, [resolution] * 2, antialias=True)
            if torch.rand(1, generator=generator).item() < 0.5:
                image = image.flip(-1)
        else:
            image = TF.resize(image, round(resolution / EVAL_CROP_RATIO), antialias=True)
            image = TF.center_crop(image, resolution)
        out.append(image)
    batch = torch.stack(out).float().div_(255)
    mean = torch.tensor(IMAGENET_MEAN, device=batch.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=batch.device).view(1, 3, 1, 1)
    return (batch - mean) / std


def build_standin(
    cifar_zip: str | Path,
    out: str | Path,
    *,
    train_per_class: int = 30,
    val_per_class: int = 10,
    size: int = 64,
) -> Path:
    """An ImageNet-format folder from CIFAR-10 JPEGs: ``train/<wnid>/*.JPEG`` and ``val/...``.

    The first ``train_per_class`` (``val_per_class``) images of each class of the zip's train
    (test) split, in file-name order, upscaled to ``size`` x ``size``; written to a temporary
    sibling and renamed, so a killed build leaves nothing. ``STANDIN.json`` marks it.
    """
    from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg
    from torchvision.transforms.v2 import functional as TF

    if min(train_per_class, val_per_class, size) < 1:
        raise ConfigError("stand-in sizes and image counts must be >= 1")
    out = Path(out)
    try:
        archive = zipfile.ZipFile(cifar_zip)
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read the CIFAR-10 zip {cifar_zip}: {exc}") from exc
    with archive, atomic_dir(out) as tmp:
        names = sorted(n for n in archive.namelist() if n.lower().endswith((".jpg", ".jpeg")))
        counts: dict[str, dict[str, int]] = {}
        with _codecs():
            for split, source, per_class in (
                ("train", "train", train_per_class),
                ("val", "test", val_per_class),
            ):
                for cls, wnid in CIFAR_WNIDS.items():
                    files = [n for n in names if f"{source}/{cls}/" in n][:per_class]
                    if len(files) < per_class:
                        raise DataError(
                            f"{cifar_zip} has {len(files)} {source}/{cls} images, need {per_class}"
                        )
                    folder = tmp / split / wnid
                    folder.mkdir(parents=True)
                    for name in files:
                        raw = torch.frombuffer(bytearray(archive.read(name)), dtype=torch.uint8)
                        image = decode_jpeg(raw, mode=ImageReadMode.RGB)
                        image = TF.resize(image, [size, size], antialias=True)
                        stem = Path(name).stem
                        (folder / f"{wnid}_{stem}.JPEG").write_bytes(
                            encode_jpeg(image, quality=95).numpy().tobytes()
                        )
                    counts.setdefault(split, {})[wnid] = len(files)
        write_json(
            tmp / STANDIN_FILE,
            {
                "stand_in": True,
                "source": str(cifar_zip),
                "classes": CIFAR_WNIDS,
                "size": size,
                "images": counts,
            },
        )
    return out


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Build a directory in a temporary sibling; rename it over ``path`` only on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def standin_info(root: Path) -> dict[str, Any] | None:
    """The stand-in description, or None for real ImageNet."""
    if not is_standin(root):
        return None
    return json.loads((root / STANDIN_FILE).read_text())
