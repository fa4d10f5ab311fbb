"""A paper configuration that would really run: memory per GPU (measured per image on the CPU,
refused in one line when a job cannot fit), the ImageNet search's parallel decode into a cache
reused across restarts, NAS-Bench-201's official split on the canonical CIFAR-10 release, the
offline start message, the retraining protocol switches (accumulation, per-iteration cosine,
crop and jitter, strict fp32) and the estimate of every stage with the paper plan."""

from __future__ import annotations

import json
import pickle
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ddpnas.cli.main import main
from ddpnas.config.load import load_config
from ddpnas.data.cifar10 import ImageSet, load_cifar10, read_nb201_split
from ddpnas.data.imagecache import cached_decode, fingerprint
from ddpnas.data.imagenet import decode_batch, open_split, train_transform
from ddpnas.engine.experiment import search_data
from ddpnas.errors import ConfigError, DataError
from ddpnas.report import estimate as est
from ddpnas.report import memory
from ddpnas.retrain.imagenet import PROTOCOLS
from ddpnas.retrain.loop import _scheduler, retrain
from ddpnas.retrain.setup import RetrainConfig, micro_batches, precision, strict_fp32
from tests.conftest import REPO, SHARED_DATA, require

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torchvision")
SPLIT_FILE = SHARED_DATA / "nasbench201" / "splits" / "cifar-split.txt"


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Measurements and decoded images go to this test's folder, never ~/.cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("DDPNAS_CACHE", str(cache))
    memory._stored.cache_clear()
    return cache


# ---------------------------------------------------------------------------------------- memory


def test_saved_bytes_count_each_activation_once_and_no_parameters() -> None:
    """A bias-free linear layer saves only its input (its weight is a parameter): n x 8 floats;
    a ReLU after it saves its output once more; nothing else."""
    net = nn.Sequential(nn.Linear(8, 16, bias=False), nn.ReLU())
    for n in (2, 5):
        assert memory.saved_bytes(net, net, torch.zeros(n, 8)) == n * (8 + 16) * 4
    x = torch.zeros(3, 8)
    assert memory.saved_bytes(net[0], lambda t: net[0](t) + net[0](t), x) == 3 * 8 * 4  # once


def test_measured_activations_grow_with_the_network_and_the_image() -> None:
    network = {"C": 4, "layers": 3, "auxiliary": True, "num_classes": 10}
    small = memory.measure("darts_cifar", {"network": network, "genotype": "worst"}, 32)
    wide = {"network": {**network, "C": 8}}
    large = memory.measure("darts_cifar", {**wide, "genotype": "worst"}, 32)
    v2 = memory.measure("darts_cifar", {**wide, "genotype": "DARTS_V2"}, 32)
    assert 0 < small["per_image"] < large["per_image"] and large["macs"] > small["macs"]
    assert v2["per_image"] <= large["per_image"]  # the worst cell bounds a real one
    assert memory.peak_bytes(large, 8) < memory.peak_bytes(large, 16)
    assert memory.peak_bytes(large, 8, data_bytes=1e9) == pytest.approx(
        memory.peak_bytes(large, 8) + 1e9
    )


def test_memory_check_refuses_an_oversized_job_on_a_small_device_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = REPO / "config" / "ci.yaml"
    df = est.estimate(load_config(config))
    trained = df[df["peak_gib"].notna()]
    assert len(trained) and (trained["peak_gib"] > memory.CONTEXT_GIB).all()
    est.check_memory(df, None)  # nothing declared: nothing checked
    est.check_memory(df, 1000.0)
    with pytest.raises(ConfigError, match=r"search nb201-ddpnas-ws \(.* GiB.*accumulate"):
        est.check_memory(df, 0.5)
    out = tmp_path / "estimate.md"
    argv = ["report", "estimate", "--config", str(config), "--check-memory", "--out", str(out)]
    assert main([*argv, "--gpu-memory-gib", "0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ddpnas: error:") and "cannot fit gpu_memory_gib 0.5" in err
    assert len(err.splitlines()) == 1 and not out.exists()  # one line, no partial output
    assert main([*argv, "--gpu-memory-gib", "1000"]) == 0
    assert "| fits" in out.read_text() and "yes" in out.read_text()


def _fake_measure(kind: str, options: dict, resolution: int) -> dict[str, float]:
    """Per-image activations of the size the real CPU measurement gives (MiB), without it."""
    per_image = {"mobile": 110, "darts_imagenet": 73, "darts_cifar": 96, "supernet": 15}[kind]
    scale = (resolution / 224) ** 2 if kind == "supernet" and resolution > 32 else 1
    return {"per_image": per_image * scale * 2**20, "fixed": 2**20, "params": 5e6, "macs": 5e8}


def test_paper_estimate_covers_every_stage_and_accumulation_makes_imagenet_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(memory, "measure", _fake_measure)
    monkeypatch.setattr(memory, "macs", _fake_measure)
    config = load_config(REPO / "config" / "paper.yaml")
    df = est.estimate(config).set_index(["stage", "experiment"])
    for stage in ("imagenet search", "imagenet retrain", "imagenet generated",
                  "imagenet transfer", "ranking", "retrain", "search"):  # fmt: skip
        assert stage in df.index.get_level_values(0), stage
    assert not df["speed"].str.contains("not scaled").any()
    assert df["speed"].str.match(r"(measured|extrapolated|CPU|input-bound)").all()
    # the measured sizes match the paper's: measured, not extrapolated
    assert df.loc[("search", "darts-ddpnas"), "speed"].startswith("measured (NVIDIA H200")
    assert df.loc[("search", "nb201-ddpnas-ws"), "speed"].startswith("measured (NVIDIA H200")
    assert df.loc[("retrain", "darts-ddpnas"), "speed"].startswith("measured")
    assert df.loc[("imagenet retrain", "mobile"), "batch_per_gpu"] == "256 x 4"
    assert (df["fits"].drop(index="search", level=0, errors="ignore") != "NO").all()
    imagenet = config["imagenet"]
    imagenet["retrain"]["protocol"]["overrides"]["accumulate"] = 1
    again = est.estimate(config).set_index(["stage", "experiment"])
    assert again.loc[("imagenet retrain", "mobile"), "fits"] == "NO"  # 1024 images at once
    with pytest.raises(ConfigError, match="imagenet retrain mobile"):
        est.check_memory(again.reset_index(), config["gpu_memory_gib"])
    steps = est.plan(df.reset_index(), config, "config/paper.yaml")
    first = steps.iloc[0]
    assert (
        first["gpu_hours"] < 1
        and "results/paper/search/nb201-ddpnas-ws/seed0.json" in (first["targets"])
    )
    assert steps["reproduces"].str.contains("Table 3").any()
    assert steps.iloc[-1]["gpu_hours"] == pytest.approx(df["gpu_hours"].sum())


def test_paper_config_runs_every_experiment_of_the_default_one() -> None:
    """Every search of config/config.yaml has its paper-scale counterpart; tabular searches need no
    GPU, so the paper runs the default config's unchanged (seeds, protocol, label), and its bound
    compares the same baselines."""
    default = load_config(REPO / "config" / "config.yaml")
    paper = load_config(REPO / "config" / "paper.yaml")
    assert set(default["searches"]) <= set(paper["searches"])
    for name, spec in default["searches"].items():
        if spec["mode"] == "tabular":
            assert paper["searches"][name] == spec, name
            assert len(spec["seeds"]) >= 200, name
    baselines = [set(c["report"]["bound"]["baselines"]) for c in (default, paper)]
    assert baselines[0] <= baselines[1]


# ---------------------------------------------------------------------------- decode and cache


def _jpeg_folder(root: Path, per_class: int = 3, size: int = 40) -> Path:
    """A tiny ImageNet-format folder of real JPEGs (two classes)."""
    from torchvision.io import encode_jpeg

    generator = torch.Generator().manual_seed(0)
    for split in ("train", "val"):
        for wnid in ("n00000001", "n00000002"):
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for i in range(per_class):
                image = torch.randint(0, 256, (3, size, size + 8 * i), generator=generator)
                jpeg = encode_jpeg(image.to(torch.uint8), quality=90).numpy().tobytes()
                (folder / f"{wnid}_{i}.JPEG").write_bytes(jpeg)
    return root


def test_decode_cache_is_reused_and_invalidated(tmp_path: Path) -> None:
    root = _jpeg_folder(tmp_path / "inet")
    cache = tmp_path / "decoded"
    dataset = open_split(root, "train")
    samples = list(dataset.samples)

    def decode(items: list, side: int = 16, workers: int = 0) -> tuple:
        return cached_decode(dataset.root, items, side, workers=workers, cache_dir=cache)

    images, labels, info = decode(samples)
    assert info["cache"] == "written" and images.shape == (6, 3, 16, 16)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1]
    again, _, info = decode(samples, workers=1)
    assert info["cache"] == "hit" and torch.equal(again, images)
    parallel, _, info = cached_decode(dataset.root, samples, 16, workers=2, cache_dir=None)
    assert info["cache"] == "off" and torch.equal(parallel, images)  # workers: same pixels
    # another resolution, a file fewer, a relabelled file: each its own entry
    assert decode(samples, side=12)[2]["cache"] == "written"
    assert decode(samples[:-1])[2]["cache"] == "written"
    relabelled = [*samples[:-1], (samples[-1][0], 0)]
    assert decode(relabelled)[2]["cache"] == "written"
    assert len(list(cache.glob("*.npy"))) == 2 * 4  # images and labels of 4 entries
    # a moved dataset keeps its entry (paths are relative to the root)
    assert fingerprint("/a", [("/a/x/1.JPEG", 0)], 16) == fingerprint(
        "/b", [("/b/x/1.JPEG", 0)], 16
    )
    # a torn entry (header gone) is decoded again, not trusted
    for header in cache.glob("*.json"):
        header.unlink()
    assert decode(samples)[2]["cache"] == "written"
    assert not list(cache.glob(".*.tmp"))


def test_unreadable_image_is_one_line_error_naming_the_file(tmp_path: Path) -> None:
    root = _jpeg_folder(tmp_path / "inet")
    bad = next((root / "train" / "n00000002").iterdir())
    bad.write_bytes(b"not a jpeg")
    dataset = open_split(root, "train")
    for workers in (0, 1):
        with pytest.raises(DataError, match=f"{bad.name} is not a readable image"):
            cached_decode(dataset.root, dataset.samples, 8, workers=workers,
                          cache_dir=tmp_path / "c")  # fmt: skip
    assert not list((tmp_path / "c").glob("*.json"))  # nothing that looks complete


# ------------------------------------------------------------------------- split and offline


def _canonical_cifar(root: Path, per_batch: int = 10) -> torch.Tensor:
    """CIFAR-10 in torchvision's canonical format (cifar-10-batches-py pickles), 5 x
    ``per_batch`` training images whose first pixel is their index; returns those images."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    n = 5 * per_batch
    data = np.zeros((n + per_batch, 3072), dtype=np.uint8)
    data[:, 0] = np.arange(n + per_batch) % 256
    labels = [i % 10 for i in range(n + per_batch)]
    for b in range(5):
        rows = slice(b * per_batch, (b + 1) * per_batch)
        blob = {"data": data[rows], "labels": labels[rows]}
        (folder / f"data_batch_{b + 1}").write_bytes(pickle.dumps(blob))
    blob = {"data": data[n:], "labels": labels[n:]}
    (folder / "test_batch").write_bytes(pickle.dumps(blob))
    meta = {"label_names": [f"c{i}" for i in range(10)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return torch.from_numpy(data[:n].reshape(n, 3, 32, 32))


def test_official_split_is_applied_to_the_canonical_release(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision.datasets.cifar

    # a fixture in the canonical format: its files cannot match the release's md5 sums
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
    root = tmp_path / "data"
    images = _canonical_cifar(root)
    train = [str(i) for i in range(0, 50, 2)]
    valid = [str(i) for i in range(1, 50, 2)]
    split = root / "nasbench201" / "splits" / "cifar-split.txt"
    split.parent.mkdir(parents=True)
    split.write_text(json.dumps({"train": ["int", train], "valid": ["int", valid]}))
    spec = {"train": {"train_size": None, "valid_size": None}}
    data = {"root": str(root), "download": False}
    train_set, valid_set, info = search_data(spec, data)
    assert info["name"] == "cifar10-valid (NAS-Bench-201 official)"
    assert torch.equal(train_set.images, images[0::2]) and torch.equal(
        valid_set.images, images[1::2]
    )
    assert train_set.origin == "canonical"
    # an explicit data.nb201_split wins; one that indexes past the data is refused
    other = tmp_path / "other.txt"
    other.write_text(json.dumps({"train": ["int", ["0", "60"]], "valid": ["int", ["1"]]}))
    with pytest.raises(DataError, match="indexes images up to 60, but the training set has 50"):
        search_data(spec, {**data, "nb201_split": str(other)})
    # without the file: the seeded split, and the record says why it is not the official one
    split.unlink()
    _, _, info = search_data(spec, data)
    assert info["name"].startswith("stratified") and "no official cifar-split.txt" in info["name"]


def test_a_jpeg_copy_gets_the_seeded_split_and_says_so(tmp_path: Path) -> None:
    root = tmp_path / "jpeg"
    for split in ("train", "test"):
        for c in range(2):
            (root / split / f"c{c}").mkdir(parents=True)
    from torchvision.io import encode_jpeg

    for split, n in (("train", 4), ("test", 1)):
        for c in range(2):
            for i in range(n):
                image = torch.full((3, 32, 32), 40 * c + i, dtype=torch.uint8)
                jpeg = encode_jpeg(image).numpy().tobytes()
                (root / split / f"c{c}" / f"{i}.jpg").write_bytes(jpeg)
    (root / "nasbench201" / "splits").mkdir(parents=True)  # a split file beside it: not used
    (root / "nasbench201" / "splits" / "cifar-split.txt").write_text("{}")
    spec = {"train": {"train_size": None, "valid_size": None}}
    train, valid, info = search_data(spec, {"root": str(root), "cache": str(tmp_path / "c")})
    assert len(train) + len(valid) == 8 and "not the canonical CIFAR-10 release" in info["name"]


def test_the_shipped_official_split_file_parses() -> None:
    train, valid = read_nb201_split(require(SPLIT_FILE), 50_000)
    assert len(train) == len(valid) == 25_000
    assert torch.equal(torch.sort(torch.cat([train, valid])).values, torch.arange(50_000))
    with pytest.raises(DataError, match="belongs to another data set"):
        read_nb201_split(SPLIT_FILE, 10_000)


def test_offline_download_names_the_two_environment_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision.datasets

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataError) as error:
        load_cifar10(None, cache_dir=tmp_path, download=True)
    message = str(error.value)
    assert "$DDPNAS_DATA" in message and "$DDPNAS_NB201" in message and "\n" not in message


# -------------------------------------------------------------------------------- retraining


def test_micro_batches_split_a_step_and_never_leave_one_image() -> None:
    assert micro_batches(1024, 256) == [256] * 4
    assert micro_batches(96, 96) == [96]
    assert micro_batches(600, 256) == [256, 256, 88]
    assert micro_batches(513, 256) == [256, 257]
    with pytest.raises(ConfigError, match="divide batch_size"):
        RetrainConfig(batch_size=96, accumulate=5)


def _toy_set(n: int, seed: int) -> ImageSet:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=generator)
    images = torch.randint(0, 256, (n, 3, 8, 8), generator=generator, dtype=torch.uint8)
    return ImageSet(images, labels, tuple("abcd"))


def test_gradient_accumulation_takes_the_same_step_without_batch_norm(tmp_path: Path) -> None:
    """BN-free, accumulation only changes how many images are in memory at once."""

    def run(accumulate: int) -> dict:
        cfg = RetrainConfig(epochs=2, batch_size=16, accumulate=accumulate, cutout=0,
                            drop_path_prob=0.0, auxiliary_weight=0.0, seed=3)  # fmt: skip
        out = tmp_path / f"a{accumulate}"
        torch.manual_seed(0)
        retrain(lambda: nn.Sequential(nn.Flatten(), nn.Linear(192, 4)), _toy_set(40, 1),
                _toy_set(8, 2), cfg, device="cpu", out_dir=out)  # fmt: skip
        return torch.load(out / "checkpoint.pt", weights_only=True)

    one, four = run(1), run(4)
    for key, value in one["model"].items():
        assert torch.allclose(value, four["model"][key], atol=1e-6), key
    losses = [[row["train_loss"] for row in r["history"]] for r in (one, four)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_cosine_per_iteration_and_protocol_switches() -> None:
    layer = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.4)
    cfg = RetrainConfig(epochs=2, lr=0.4, lr_step="iteration")
    scheduler = _scheduler(optimizer, cfg, steps_per_epoch=5)
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == 0.4 and lrs[5] == pytest.approx(0.2) and lrs[1] < 0.4
    assert lrs == sorted(lrs, reverse=True) and optimizer.param_groups[0]["lr"] == pytest.approx(0)
    with pytest.raises(ConfigError, match="bakes one learning rate"):
        RetrainConfig(lr_step="iteration", cuda_graphs=True)
    v1, darts = PROTOCOLS["ddpnas_v1"], PROTOCOLS["darts_imagenet"]
    assert (v1.crop_scale, v1.crop_ratio, v1.jitter, v1.lr_step) == (
        (0.1, 1.0),
        (0.8, 1.25),
        (0.0, 0.0, 0.0, 0.0),
        "iteration",
    )
    assert darts.jitter == (0.4, 0.4, 0.4, 0.2) and darts.crop_scale == (0.08, 1.0)
    names = [type(t).__name__ for t in train_transform(16, jitter=darts.jitter).transforms]
    assert "ColorJitter" in names
    assert "ColorJitter" not in [type(t).__name__ for t in train_transform(16).transforms]


def test_gpu_decode_path_applies_the_protocols_jitter(tmp_path: Path) -> None:
    root = _jpeg_folder(tmp_path / "inet")
    data = [torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8)
            for p in sorted((root / "train").rglob("*.JPEG"))]  # fmt: skip

    def run(seed: int, jitter: tuple) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return decode_batch(data, 16, device="cpu", train=True, generator=generator,
                            scale=(0.1, 1.0), ratio=(0.8, 1.25), jitter=jitter)  # fmt: skip

    plain, jittered = run(0, (0, 0, 0, 0)), run(0, (0.4, 0.4, 0.4, 0.2))
    assert jittered.shape == plain.shape == (6, 3, 16, 16)
    assert torch.equal(jittered, run(0, (0.4, 0.4, 0.4, 0.2)))  # replays from the generator
    assert not torch.equal(jittered, plain)


def test_fp32_protocols_turn_tf32_off_for_the_run_only() -> None:
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    cuda = torch.device("cuda")
    with strict_fp32(cuda, precision(RetrainConfig(amp=False), cuda).startswith("fp32")):
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == before
    assert precision(RetrainConfig(amp=False), cuda) == "fp32, TF32 off"
    assert precision(RetrainConfig(amp=None), cuda) == "bfloat16 autocast"
    assert precision(RetrainConfig(amp=False), torch.device("cpu")) == "fp32"
