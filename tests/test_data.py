"""CIFAR-10 loading (image folder, zip, torchvision), the tensor cache, splits and batches.

Small trees and zips in the real layout are written in tmp_path; one test reads a slice of the
real cifar10-jpeg.zip, and one (marked slow) decodes all of it.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CIFAR_ZIP, require
from PIL import Image

from ddpnas.data import cifar10 as data
from ddpnas.data.batching import CIFAR10_MEAN, CIFAR10_STD, iterate_batches
from ddpnas.data.cifar10 import ZIP_NAME, ImageSet, load_cifar10, nb201_split, subset
from ddpnas.data.locations import resolve_cache_dir, resolve_data_root
from ddpnas.errors import ConfigError, DataError

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
# Created in this (unsorted) order; labels must follow the sorted names.
TINY_CLASSES = ("truck", "airplane", "cat")
COUNTS = {"train": 4, "test": 2}


def _grey(label: int) -> int:
    """A flat grey level per class, so a decoded image tells its label despite JPEG loss."""
    return 40 + 80 * label


def _make_tree(root: Path) -> Path:
    for split, count in COUNTS.items():
        for name in TINY_CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True)
            label = sorted(TINY_CLASSES).index(name)
            for i in range(count):
                Image.new("RGB", (32, 32), (_grey(label),) * 3).save(folder / f"{i:04d}.jpg")
    return root


def _zip_tree(tree: Path, target: Path, prefix: str = "") -> Path:
    """Zip in the layout of cifar10-jpeg.zip: directory entries, then stored files."""
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(tree.rglob("*")):
            archive.write(path, prefix + path.relative_to(tree).as_posix())
    return target


def _cache_files(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.glob("*.pt"))


# --- loading -----------------------------------------------------------------------------------


def test_image_folder_loads_in_sorted_class_order(tmp_path: Path) -> None:
    train, test = load_cifar10(
        _make_tree(tmp_path / "tree"), cache_dir=tmp_path / "c", download=False
    )
    assert train.classes == test.classes == ("airplane", "cat", "truck")
    assert train.images.shape == (12, 3, 32, 32) and test.images.shape == (6, 3, 32, 32)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert train.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    for part in (train, test):
        means = part.images.float().mean(dim=(1, 2, 3))
        expected = torch.tensor([float(_grey(int(y))) for y in part.labels])
        assert torch.allclose(means, expected, atol=2.0)
    assert len(_cache_files(tmp_path / "c")) == 1


def test_zip_loads_once_then_from_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = _make_tree(tmp_path / "tree")
    archive = _zip_tree(tree, tmp_path / ZIP_NAME)
    cache = tmp_path / "cache"
    from_folder, _ = load_cifar10(tree, cache_dir=tmp_path / "other", download=False)
    train, test = load_cifar10(archive, cache_dir=cache, download=False)
    assert torch.equal(train.images, from_folder.images)
    assert torch.equal(train.labels, from_folder.labels)
    # Extracted tree plus decoded tensors, nothing half-written.
    assert sorted(p.name for p in cache.iterdir() if p.is_dir())[0].startswith("cifar10-jpeg-")
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]

    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(data, "_decode_split", no_decoding)
    again, again_test = load_cifar10(tmp_path, cache_dir=cache, download=False)  # dir with zip
    assert torch.equal(again.images, train.images) and torch.equal(again_test.labels, test.labels)
    assert again.classes == train.classes


def test_zip_with_top_folder_and_damaged_cache(tmp_path: Path) -> None:
    archive = _zip_tree(_make_tree(tmp_path / "tree"), tmp_path / "c10.zip", prefix="cifar10/")
    cache = tmp_path / "cache"
    train, _ = load_cifar10(archive, cache_dir=cache, download=False)
    (cached,) = cache.glob("*.pt")
    cached.write_bytes(cached.read_bytes()[:100])  # a torn cache file is rebuilt, not trusted
    rebuilt, _ = load_cifar10(archive, cache_dir=cache, download=False)
    assert torch.equal(rebuilt.images, train.images)


def test_real_zip_slice(tmp_path: Path) -> None:
    """Ten real images per class and split from cifar10-jpeg.zip, in its own layout."""
    small = tmp_path / "slice.zip"
    with zipfile.ZipFile(require(CIFAR_ZIP)) as source, zipfile.ZipFile(small, "w") as target:
        for name in source.namelist():
            if name.endswith("/") or int(Path(name).stem) < 10:
                target.writestr(source.getinfo(name), source.read(name))
    train, test = load_cifar10(small, cache_dir=tmp_path / "cache", download=False)
    assert train.classes == CIFAR10_CLASSES
    assert train.images.shape == (100, 3, 32, 32) and test.images.shape == (100, 3, 32, 32)
    assert torch.bincount(train.labels).tolist() == [10] * 10
    assert train.images.float().std() > 30  # real pictures, not flat fills


@pytest.mark.slow
def test_real_zip_full(cache_dir: Path) -> None:
    """All 60,000 images (decoded once per session into the shared cache)."""
    train, test = load_cifar10(require(CIFAR_ZIP), cache_dir=cache_dir, download=False)
    assert train.images.shape == (50_000, 3, 32, 32) and test.images.shape == (10_000, 3, 32, 32)
    assert torch.bincount(train.labels).tolist() == [5000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert train.classes == CIFAR10_CLASSES


def test_torchvision_release_is_adapted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The canonical release (cannot be downloaded here): torchvision's CIFAR10 faked, HWC data."""
    import torchvision.datasets

    class FakeCIFAR10:
        def __init__(self, root: str, train: bool, download: bool) -> None:
            count = 6 if train else 3
            rng = np.random.default_rng(int(train))
            self.data = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
            self.targets = [i % 2 for i in range(count)]
            self.classes = ["airplane", "automobile"]

    (tmp_path / "cifar-10-batches-py").mkdir()
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    train, test = load_cifar10(tmp_path, cache_dir=tmp_path / "cache", download=False)
    expected = FakeCIFAR10("", True, False).data
    assert torch.equal(train.images, torch.from_numpy(expected).permute(0, 3, 1, 2))
    assert train.labels.tolist() == [0, 1, 0, 1, 0, 1] and len(test) == 3
    assert test.classes == ("airplane", "automobile")


# --- missing and corrupt data ------------------------------------------------------------------


def test_missing_data_says_where_and_how(tmp_path: Path) -> None:
    (tmp_path / "none").mkdir()  # exists but holds nothing (a missing root: test_bad_input.py)
    with pytest.raises(DataError) as caught:
        load_cifar10(tmp_path / "none", cache_dir=tmp_path / "c", download=False)
    message = str(caught.value)
    for needle in (
        "cifar-10-batches-py",
        ZIP_NAME,
        "train/<class>/",
        "download: true",
        "DDPNAS_DATA",
    ):
        assert needle in message
    broken_release = tmp_path / "release"
    (broken_release / "cifar-10-batches-py").mkdir(parents=True)
    with pytest.raises(DataError, match="missing or corrupt"):
        load_cifar10(broken_release, cache_dir=tmp_path / "c", download=False)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_zip_is_data_error(tmp_path: Path, damage: str) -> None:
    archive = _zip_tree(_make_tree(tmp_path / "tree"), tmp_path / ZIP_NAME)
    raw = archive.read_bytes()
    archive.write_bytes(b"not a zip" * 50 if damage == "garbage" else raw[: len(raw) // 2])
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=f"cannot extract {archive}"):
        load_cifar10(archive, cache_dir=cache, download=False)
    assert list(cache.iterdir()) == []  # no half-extracted tree, no cache file


def test_corrupt_jpeg_is_named(tmp_path: Path) -> None:
    tree = _make_tree(tmp_path / "tree")
    bad = tree / "train" / "cat" / "0002.jpg"
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(DataError, match=f"{bad} is not a readable JPEG"):
        load_cifar10(tree, cache_dir=tmp_path / "c", download=False)
    assert not (tmp_path / "c").exists() or _cache_files(tmp_path / "c") == []


def test_roots_from_config_then_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DDPNAS_DATA", "/env/data")
    monkeypatch.setenv("DDPNAS_CACHE", "/env/cache")
    assert resolve_data_root("/cfg/data") == Path("/cfg/data")
    assert resolve_data_root(None) == Path("/env/data")
    assert resolve_cache_dir("/cfg/cache") == Path("/cfg/cache")
    assert resolve_cache_dir(None) == Path("/env/cache")
    monkeypatch.delenv("DDPNAS_DATA")
    monkeypatch.delenv("DDPNAS_CACHE")
    assert resolve_data_root(None) is None
    assert resolve_cache_dir(None) == Path.home() / ".cache" / "ddpnas"


# --- splits ------------------------------------------------------------------------------------


def test_nb201_split_halves_each_class() -> None:
    labels = torch.arange(50_000) % 10
    train, valid = nb201_split(labels)
    assert len(train) == len(valid) == 25_000
    assert torch.bincount(labels[train]).tolist() == [2500] * 10
    assert torch.bincount(labels[valid]).tolist() == [2500] * 10
    assert torch.equal(torch.sort(torch.cat([train, valid])).values, torch.arange(50_000))
    assert torch.equal(train, torch.sort(train).values)
    again, _ = nb201_split(labels)
    other, _ = nb201_split(labels, seed=1)
    assert torch.equal(train, again) and not torch.equal(train, other)


def test_subset_is_seeded_and_stratified() -> None:
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    indices = torch.arange(100)
    picked = subset(indices, 10, seed=3, labels=labels)
    assert torch.bincount(labels[picked], minlength=3).tolist() == [6, 3, 1]
    assert torch.equal(picked, subset(indices, 10, seed=3, labels=labels))
    assert not torch.equal(picked, subset(indices, 10, seed=4, labels=labels))
    plain = subset(indices[50:], 7, seed=0)
    assert len(plain) == 7 and bool((plain >= 50).all()) and len(set(plain.tolist())) == 7
    assert torch.equal(subset(indices, 100, seed=0), indices)
    with pytest.raises(ConfigError, match=r"train_size is 500 but only 100 .* at most 100"):
        subset(indices, 500, seed=0, what="train_size")  # never a silent cap
    with pytest.raises(ConfigError):
        subset(indices, 0, seed=0)


def test_take_selects_images_and_labels() -> None:
    images = torch.arange(5, dtype=torch.uint8).view(5, 1, 1, 1).expand(5, 3, 32, 32).clone()
    part = ImageSet(images, torch.arange(5), ("a",)).take(torch.tensor([4, 1]))
    assert part.labels.tolist() == [4, 1] and part.images[:, 0, 0, 0].tolist() == [4, 1]


# --- batches -----------------------------------------------------------------------------------


def _indexed_images(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random pictures; label i belongs to image i so pairing can be checked."""
    generator = torch.Generator().manual_seed(123)
    images = torch.randint(1, 256, (count, 3, 32, 32), generator=generator, dtype=torch.uint8)
    return images, torch.arange(count)


def _epoch(seed: int, **kwargs: object) -> list[tuple[torch.Tensor, torch.Tensor]]:
    images, labels = _indexed_images(50)
    options = {"shuffle": True, "augment": True, "device": "cpu"} | kwargs
    generator = torch.Generator().manual_seed(seed)
    return list(iterate_batches(images, labels, 16, generator=generator, **options))


def test_batches_are_determined_by_the_generator() -> None:
    first, again, other = _epoch(0), _epoch(0), _epoch(1)
    assert [len(y) for _, y in first] == [16, 16, 16, 2]
    assert all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        for a, b in zip(first, again, strict=True)
    )
    assert not torch.equal(first[0][1], other[0][1])
    assert [len(y) for _, y in _epoch(0, drop_last=True)] == [16, 16, 16]
    x, _ = first[0]
    assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32
    assert _epoch(0, channels_last=True)[0][0].is_contiguous(memory_format=torch.channels_last)


def test_plain_batches_are_normalised_in_order() -> None:
    images, labels = _indexed_images(50)
    batches = _epoch(0, shuffle=False, augment=False)
    x = torch.cat([b[0] for b in batches])
    assert torch.equal(torch.cat([b[1] for b in batches]), labels)
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    assert torch.allclose(x, (images.float() / 255 - mean) / std, atol=1e-5)


def test_augmentation_is_a_padded_crop_and_flip() -> None:
    images, _ = _indexed_images(50)
    mean = torch.tensor(CIFAR10_MEAN).view(3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(3, 1, 1)
    seen_flip = seen_shift = False
    for x, y in _epoch(5):
        pixels = torch.round((x * std + mean) * 255).to(torch.uint8)
        for image, label in zip(pixels, y.tolist(), strict=True):
            padded = torch.nn.functional.pad(images[label], (4, 4, 4, 4))
            matches = [
                (dy, dx, flip)
                for dy in range(9)
                for dx in range(9)
                for flip in (False, True)
                if torch.equal(
                    image,
                    (lambda c: c.flip(-1) if flip else c)(padded[:, dy : dy + 32, dx : dx + 32]),
                )
            ]
            assert len(matches) == 1, label
            dy, dx, flip = matches[0]
            seen_flip |= flip
            seen_shift |= (dy, dx) != (4, 4)
    assert seen_flip and seen_shift


def test_extracted_zip_follows_the_umask(tmp_path: Path) -> None:
    """The extracted tree is made with mkdir (the umask's mode), not mkdtemp's 0700."""
    archive = _zip_tree(_make_tree(tmp_path / "tree"), tmp_path / ZIP_NAME)
    old = os.umask(0o022)
    try:
        load_cifar10(archive, cache_dir=tmp_path / "cache", download=False)
    finally:
        os.umask(old)
    (extracted,) = (p for p in (tmp_path / "cache").iterdir() if p.is_dir())
    assert extracted.stat().st_mode & 0o777 == 0o755
