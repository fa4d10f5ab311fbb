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
  subset once, in parallel worker processes, into a uint8 :class:`~ddpnas.data.cifar10.ImageSet`
  (shorter side resized, centre crop) cached on disk for restarts (:mod:`ddpnas.data.imagecache`),
  which the search engine's evaluator serves from memory as it does CIFAR-10.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from ddpnas.data.cifar10 import ImageSet
from ddpnas.errors import ConfigError, DataError, DDPNASError
from ddpnas.io.files import atomic_dir, write_json

log = logging.getLogger(__name__)

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
    try:
        if _is_folder(root) and not (root / "meta.bin").is_file():
            return datasets.ImageFolder(str(root / split), transform=transform, loader=load_rgb)
        return datasets.ImageNet(str(root), split=split, transform=transform, loader=load_rgb)
    except (RuntimeError, OSError) as exc:
        raise DataError(f"cannot read ImageNet {split} from {root}: {exc}") from None


class UnreadableImageError(DataError):
    """An image file that cannot be decoded. Raised in a DataLoader worker, torch re-raises it in
    the main process as ``type(exc)(text)``, ``text`` holding the worker's traceback: only the
    message (its last line) is kept, so the user still reads one line."""

    def __init__(self, message: str) -> None:
        if "Traceback (most recent call last)" in message:
            message = message.rstrip().splitlines()[-1].split(": ", 1)[-1]
        super().__init__(message)


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"


def unreadable(path: str | Path, exc: BaseException) -> UnreadableImageError:
    """The error for an image that cannot be decoded: which file, why, and what to do."""
    from PIL import UnidentifiedImageError

    why = (
        "empty, or no image format PIL knows"
        if isinstance(exc, UnidentifiedImageError)
        else _first_line(exc)
    )
    return UnreadableImageError(
        f"{path} is not a readable image ({why}); replace it with a good copy or remove it"
    )


def load_rgb(path: str) -> Any:
    """An image file as an RGB PIL image (ImageFolder's loader), or a one-line error naming it."""
    from PIL import Image

    try:
        with open(path, "rb") as handle:
            return Image.open(handle).convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise unreadable(path, exc) from None


def train_transform(
    resolution: int,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    jitter: Sequence[float] = (0.0, 0.0, 0.0, 0.0),
) -> Callable:
    """Random resized crop (area ``scale``, aspect ``ratio``), flip, optional colour jitter
    (brightness, contrast, saturation, hue; torchvision's ColorJitter), normalise."""
    from torchvision.transforms import v2

    steps: list[Any] = [
        v2.ToImage(),
        v2.RandomResizedCrop(resolution, scale=tuple(scale), ratio=tuple(ratio), antialias=True),
        v2.RandomHorizontalFlip(),
    ]
    if any(jitter):
        steps.append(v2.ColorJitter(*jitter))
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


def decode_to_imageset(
    dataset: Dataset,
    indices: Sequence[int] | torch.Tensor,
    resolution: int,
    *,
    workers: int = 0,
    cache_dir: str | Path | None = None,
    progress: bool | None = None,
) -> ImageSet:
    """Decode ``indices`` of an ImageFolder-like dataset once into uint8 resolution^2 images.

    ``workers`` processes decode in parallel; with ``cache_dir`` the images are stored there and
    a later call on the same files and resolution maps them instead of decoding
    (:mod:`ddpnas.data.imagecache`).
    """
    from ddpnas.data.imagecache import cached_decode

    samples = dataset.samples  # type: ignore[attr-defined]
    chosen = [samples[i] for i in torch.as_tensor(indices, dtype=torch.int64).tolist()]
    root = getattr(dataset, "root", "")
    images, labels, info = cached_decode(
        root, chosen, resolution, workers=workers, cache_dir=cache_dir, progress=progress
    )
    if info["cache"] == "hit":
        log.info("reused %d decoded images at %d px from %s", len(chosen), resolution, cache_dir)
    else:
        log.info(
            "decoded %d images at %d px in %.1f s with %d workers (cache: %s)",
            len(chosen), resolution, info["seconds"], workers, cache_dir or "off",
        )  # fmt: skip
    return ImageSet(images, labels, tuple(dataset.classes))  # type: ignore[attr-defined]


def _read(path: str | Path) -> torch.Tensor:
    raw = Path(path).read_bytes()
    if not raw:
        raise UnreadableImageError(f"{path} is empty, not an image; replace it or remove it")
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
    h: int,
    w: int,
    scale: tuple[float, float],
    generator: torch.Generator,
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """A random-resized-crop box (top, left, height, width), aspect in ``ratio``, as
    torchvision's (10 tries, then the centre crop), drawn from ``generator``."""
    area = h * w
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        u = torch.rand(4, generator=generator).tolist()
        target = area * (scale[0] + u[0] * (scale[1] - scale[0]))
        aspect = math.exp(log_ratio[0] + u[1] * (log_ratio[1] - log_ratio[0]))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            return int(u[2] * (h - ch + 1)), int(u[3] * (w - cw + 1)), ch, cw
    side = min(h, w)
    return (h - side) // 2, (w - side) // 2, side, side


def _jitter(
    image: torch.Tensor, jitter: Sequence[float], generator: torch.Generator
) -> torch.Tensor:
    """ColorJitter on one uint8 image with factors and order drawn from ``generator``
    (brightness, contrast, saturation factors uniform in [1 - s, 1 + s], hue shift in [-h, h])."""
    from torchvision.transforms.v2 import functional as TF

    ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    for k in torch.randperm(4, generator=generator).tolist():
        strength = jitter[k]
        if not strength:
            continue
        u = float(torch.rand(1, generator=generator))
        if k == 3:
            image = ops[k](image, (2 * u - 1) * strength)
        else:
            image = ops[k](image, max(0.0, 1 - strength + 2 * u * strength))
    return image


def decode_batch(
    data: list[torch.Tensor],
    resolution: int,
    *,
    device: torch.device | str,
    train: bool,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    jitter: Sequence[float] = (0.0, 0.0, 0.0, 0.0),
) -> torch.Tensor:
    """Decode a batch of JPEG bytes on ``device`` (nvJPEG on CUDA), crop, flip, normalise.

    Training: random resized crop (area ``scale``, aspect ``ratio``), flip and optional colour
    ``jitter``, drawn from ``generator`` (CPU); evaluation: shorter side to resolution / 0.875 and
    centre crop. Returns float N x 3 x res x res on ``device``.
    """
    from torchvision.io import ImageReadMode, decode_jpeg
    from torchvision.transforms.v2 import functional as TF

    with _codecs():
        try:
            images = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
        except RuntimeError as exc:
            raise UnreadableImageError(
                f"an image of this batch cannot be decoded on {device} ({_first_line(exc)}); "
                "rerun with imagenet.gpu_decode: false to have the file named"
            ) from None
    out = []
    for image in images:
        if train:
            top, left, h, w = _rrc_box(image.shape[1], image.shape[2], scale, generator, ratio)
            image = TF.resized_crop(image, top, left, h, w, [resolution] * 2, antialias=True)
            if torch.rand(1, generator=generator).item() < 0.5:
                image = image.flip(-1)
            if any(jitter):
                image = _jitter(image, jitter, generator)
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
    force: bool = False,
) -> Path:
    """An ImageNet-format folder from CIFAR-10 JPEGs: ``train/<wnid>/*.JPEG`` and ``val/...``.

    The first ``train_per_class`` (``val_per_class``) images of each class of the zip's train
    (test) split, in file-name order, upscaled to ``size`` x ``size``; written to a temporary
    sibling and renamed, so a killed build leaves nothing. ``STANDIN.json`` marks it. ``out``
    must be new or empty; ``force`` lets a stand-in an earlier build wrote there be replaced
    (:func:`check_replaceable`), never anything else.
    """
    if min(train_per_class, val_per_class, size) < 1:
        raise ConfigError("stand-in sizes and image counts must be >= 1")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DDPNASError(f"stand-in folder {out} is a file; give a new or empty folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise DDPNASError(
                f"stand-in folder {out} exists and is not empty; give a new or empty folder, or "
                "--force to replace a stand-in an earlier `ddpnas imagenet standin` wrote there"
            )
        check_replaceable(out)
    try:
        archive = zipfile.ZipFile(cifar_zip)
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read the CIFAR-10 zip {cifar_zip}: {exc}") from exc
    with archive, atomic_dir(out, check_replaceable if force else None) as tmp:
        names = sorted(n for n in archive.namelist() if n.lower().endswith((".jpg", ".jpeg")))
        counts = {
            split: _standin_split(archive, names, tmp / split, source, per_class, size)
            for split, source, per_class in (
                ("train", "train", train_per_class),
                ("val", "test", val_per_class),
            )
        }
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


def _standin_split(
    archive: zipfile.ZipFile, names: list[str], out: Path, source: str, per_class: int, size: int
) -> dict[str, int]:
    """The first ``per_class`` JPEGs of each class of the zip's ``source`` split, upscaled to
    ``size`` x ``size``, as ``out/<wnid>/<wnid>_<name>.JPEG``; images per wnid."""
    from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg
    from torchvision.transforms.v2 import functional as TF

    counts = {}
    with _codecs():
        for cls, wnid in CIFAR_WNIDS.items():
            files = [n for n in names if f"{source}/{cls}/" in n][:per_class]
            if len(files) < per_class:
                raise DataError(
                    f"{archive.filename} has {len(files)} {source}/{cls} images, need {per_class}"
                )
            folder = out / wnid
            folder.mkdir(parents=True)
            for name in files:
                raw = torch.frombuffer(bytearray(archive.read(name)), dtype=torch.uint8)
                image = decode_jpeg(raw, mode=ImageReadMode.RGB)
                image = TF.resize(image, [size, size], antialias=True)
                (folder / f"{wnid}_{Path(name).stem}.JPEG").write_bytes(
                    encode_jpeg(image, quality=95).numpy().tobytes()
                )
            counts[wnid] = len(files)
    return counts


def check_replaceable(root: Path) -> None:
    """Raise unless ``root`` holds exactly what :func:`build_standin` writes (STANDIN.json, the
    split and class folders and the JPEGs it lists), so that ``--force`` removes nothing else."""
    info = standin_info(root) if (root / STANDIN_FILE).is_file() else None
    images = info.get("images") if isinstance(info, dict) else None
    if not isinstance(images, dict):
        raise DDPNASError(
            f"{root} is not a stand-in (no {STANDIN_FILE} of `ddpnas imagenet standin`); "
            "--force replaces only a stand-in: choose another --out"
        )
    counts = {root / split / wnid: n for split, per in images.items() for wnid, n in per.items()}
    folders = {root / split for split in images} | set(counts)
    for where, dirs, files in os.walk(root):
        here = Path(where)
        for name in dirs + files:
            path = here / name
            if path.is_symlink() or (path.is_dir() and path not in folders):
                _not_ours(path)
            ours = (here == root and name == STANDIN_FILE) or (
                here in counts and name.endswith(".JPEG")
            )
            if not path.is_dir() and not ours:
                _not_ours(path)
        if here in counts and len(files) != counts[here]:
            raise DDPNASError(
                f"{here} holds {len(files)} files, not the {counts[here]} images {STANDIN_FILE} "
                "lists; --force replaces only an unchanged stand-in: choose another --out"
            )


def _not_ours(path: Path) -> None:
    raise DDPNASError(
        f"{path} was not written by the stand-in build; --force replaces only what it wrote: "
        "move it away or choose another --out"
    )


def standin_info(root: Path) -> dict[str, Any] | None:
    """The stand-in description, or None for real ImageNet."""
    if not is_standin(root):
        return None
    return json.loads((root / STANDIN_FILE).read_text())
