"""ImageNet code paths on the CIFAR-10 stand-in: locating the root, the stand-in builder, the
search split, both readers (ImageFolder and torchvision's ImageNet), in-memory and streaming data
(CPU workers and the batch-decode path the GPU uses), the published protocols, and the CLI from
stand-in to table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from ddpnas.cli.imagenet import read_arch
from ddpnas.cli.main import main
from ddpnas.data.imagenet import (
    CIFAR_WNIDS,
    ENV_IMAGENET,
    RawBytes,
    build_standin,
    decode_batch,
    decode_to_imageset,
    is_standin,
    open_split,
    resolve_imagenet_root,
    search_split,
    targets,
)
from ddpnas.engine.experiment import run_experiment
from ddpnas.errors import ArchError, ConfigError, DataError
from ddpnas.report.imagenet_table import imagenet_display, imagenet_rows
from ddpnas.retrain.imagenet import PROTOCOLS, ImageNetSource, protocol, search_sets
from ddpnas.retrain.loop import retrain
from ddpnas.retrain.setup import RetrainConfig, param_groups
from ddpnas.spaces.darts.genotype import DARTS_V2
from ddpnas.spaces.mobile.space import MobileSpace
from tests.conftest import CIFAR_ZIP, REPO, require

SPACE = MobileSpace()


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny stand-in: 10 classes x (6 train, 2 val) images at 24 px."""
    out = tmp_path_factory.mktemp("imagenet") / "standin"
    return build_standin(require(CIFAR_ZIP), out, train_per_class=6, val_per_class=2, size=24)


def test_standin_is_an_imagenet_folder_marked_as_a_stand_in(standin: Path) -> None:
    assert is_standin(standin)
    for split, n in (("train", 6), ("val", 2)):
        folders = sorted(p.name for p in (standin / split).iterdir())
        assert folders == sorted(CIFAR_WNIDS.values())
        assert all(len(list((standin / split / w).glob("*.JPEG"))) == n for w in folders)
    info = json.loads((standin / "STANDIN.json").read_text())
    assert info["stand_in"] and info["size"] == 24
    image = open_split(standin, "val")[0][0]
    assert image.size == (24, 24)


def test_standin_build_failure_leaves_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="cannot read the CIFAR-10 zip"):
        build_standin(bad, tmp_path / "out")
    with pytest.raises(DataError, match="need 6000"):
        build_standin(require(CIFAR_ZIP), tmp_path / "out", train_per_class=6000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.zip"]


def test_root_comes_from_config_then_env_and_is_never_downloaded(
    standin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_IMAGENET, raising=False)
    with pytest.raises(DataError, match=r"imagenet\.root.*DDPNAS_IMAGENET.*never downloaded"):
        resolve_imagenet_root(None)
    assert resolve_imagenet_root(str(standin)) == standin
    monkeypatch.setenv(ENV_IMAGENET, str(standin))
    assert resolve_imagenet_root(None) == standin
    with pytest.raises(DataError, match="neither train/<wnid>/"):
        resolve_imagenet_root(str(tmp_path))


def test_torchvision_imagenet_reader_on_a_prepared_root(standin: Path, tmp_path: Path) -> None:
    """With meta.bin beside train/ and val/, datasets.ImageNet reads the root (the path that
    unpacks the official archives once); labels agree with the ImageFolder reader."""
    root = tmp_path / "prepared"
    shutil.copytree(standin, root)
    wnids = sorted(CIFAR_WNIDS.values())
    val = open_split(standin, "val")
    torch.save(
        ({w: (w,) for w in wnids}, [wnids[label] for _, label in val.samples]), root / "meta.bin"
    )
    reader = open_split(root, "val")
    assert type(reader).__name__ == "ImageNet"
    assert targets(reader) == targets(val)
    with pytest.raises(ConfigError, match="split must be one of"):
        open_split(root, "test")


def test_search_split_is_class_balanced_disjoint_and_fixed() -> None:
    labels = torch.arange(1000) % 10
    train, held = search_split(labels, held_out=50, seed=0)
    assert len(held) == 50 and len(train) == 950
    assert set(train.tolist()).isdisjoint(held.tolist())
    assert torch.bincount(labels[held]).tolist() == [5] * 10
    assert torch.equal(held, search_split(labels, held_out=50, seed=0)[1])
    assert not torch.equal(held, search_split(labels, held_out=50, seed=1)[1])
    with pytest.raises(ConfigError, match="images per class"):
        search_split(labels, held_out=1000)
    with pytest.raises(ConfigError, match="images per class"):
        search_split(labels, held_out=5)


def test_search_sets_decode_once_at_the_search_resolution(standin: Path) -> None:
    train, held = search_sets(standin, 16, held_out=20, train_size=30, valid_size=None)
    assert train.images.shape == (30, 3, 16, 16) and held.images.shape == (20, 3, 16, 16)
    assert train.images.dtype == torch.uint8 and len(train.classes) == 10
    assert torch.bincount(held.labels).tolist() == [2] * 10
    again = decode_to_imageset(open_split(standin, "train"), torch.tensor([0, 7]), 16)
    assert again.images.shape == (2, 3, 16, 16) and again.labels.tolist() == [0, 1]


def test_batch_decode_path_crops_flips_and_replays(standin: Path) -> None:
    """The nvJPEG path, run on the CPU here: same code, device="cpu"."""
    raw = RawBytes(open_split(standin, "train"))
    data = [raw[i][0] for i in range(4)]

    def run(train: bool, seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return decode_batch(data, 16, device="cpu", train=train, generator=gen)

    out = run(True, 0)
    assert out.shape == (4, 3, 16, 16) and out.dtype == torch.float32
    assert torch.equal(out, run(True, 0)) and not torch.equal(out, run(True, 1))
    assert torch.equal(run(False, 0), run(False, 1))  # evaluation has no randomness
    assert abs(run(False, 0).mean().item()) < 2  # normalised


def test_published_protocols() -> None:
    v1, darts = PROTOCOLS["ddpnas_v1"], PROTOCOLS["darts_imagenet"]
    assert (v1.epochs, v1.batch_size, v1.lr, v1.lr_schedule) == (120, 1024, 0.4, "cosine")
    assert (v1.label_smoothing, v1.bn_weight_decay, v1.nesterov) == (0.1, False, True)
    assert (darts.epochs, darts.batch_size, darts.lr) == (250, 128, 0.1)
    assert (darts.lr_schedule, darts.lr_gamma, darts.auxiliary_weight) == ("exponential", 0.97, 0.4)
    assert (darts.grad_clip, darts.label_smoothing) == (5.0, 0.1)
    cfg = protocol("darts_imagenet", {"epochs": 3}, seed=7)
    assert (cfg.epochs, cfg.seed, cfg.lr_gamma) == (3, 7, 0.97)
    with pytest.raises(ConfigError, match="unknown retrain protocol key"):
        protocol("ddpnas_v1", {"epoch": 3}, seed=0)
    with pytest.raises(ConfigError, match="unknown ImageNet protocol"):
        protocol("imagenet", {}, seed=0)
    with pytest.raises(ConfigError, match="lr_schedule"):
        RetrainConfig(lr_schedule="step")
    # the authors' crop (tanglang96/DDPNAS utils/get_data_iter.py), ProxylessNAS's per-iteration
    # cosine; DARTS's colour jitter (quark0/darts cnn/train_imagenet.py)
    assert (v1.crop_scale, v1.crop_ratio, v1.lr_step, any(v1.jitter)) == (
        (0.1, 1.0),
        (0.8, 1.25),
        "iteration",
        False,
    )
    assert (darts.jitter, darts.lr_step) == ((0.4, 0.4, 0.4, 0.2), "epoch")
    assert protocol("ddpnas_v1", {"accumulate": 4, "crop_scale": [0.2, 1]}, 0).crop_scale == (
        0.2,
        1,
    )


def test_no_weight_decay_on_batch_norm() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    net(torch.zeros(1, 3, 5, 5))
    groups = param_groups(net, PROTOCOLS["ddpnas_v1"])
    bn = {id(p) for p in net[1].parameters()}
    assert {id(p) for p in groups[1]["params"]} == bn and groups[1]["weight_decay"] == 0.0
    assert not bn & {id(p) for p in groups[0]["params"]}
    assert len(param_groups(net, RetrainConfig())) == 1


@pytest.mark.parametrize(("gpu_decode", "workers"), [(False, 1), (True, 0)])
def test_streaming_retrain_reports_top1_top5_and_resumes(
    standin: Path, tmp_path: Path, gpu_decode: bool, workers: int
) -> None:
    cfg = dataclass_cfg = protocol(
        "darts_imagenet", {"epochs": 2, "batch_size": 20, "eval_batch_size": 20}, seed=0
    )
    source = ImageNetSource(
        standin, 16, device=torch.device("cpu"), workers=workers, gpu_decode=gpu_decode
    )

    def build() -> nn.Module:
        return SPACE.standalone((6,) * 21, width_mult=0.25, num_classes=10)

    result = retrain(build, source, None, cfg, device="cpu", out_dir=tmp_path, extra={"k": 1})
    assert result["k"] == 1 and result["test_images"] == 20 and result["train_images"] == 60
    assert 0 <= result["test_acc"] <= result["test_top5"] <= 1
    assert result["macs_m"] > 0 and result["config"]["lr_schedule"] == "exponential"
    lrs = [float(r.split(",")[1]) for r in (tmp_path / "metrics.csv").read_text().split()[1:]]
    assert lrs == pytest.approx([0.1, 0.097])
    # a rerun resumes from the finished checkpoint: nothing retrained, same numbers
    assert retrain(build, source, None, dataclass_cfg, device="cpu", out_dir=tmp_path)[
        "test_top5"
    ] == pytest.approx(result["test_top5"])


def test_read_arch_takes_records_json_lists_and_strings(tmp_path: Path) -> None:
    arch = (0, 6, 1, 6, 2, 3, 4, 5, 6, 6, 6, 6, 0, 1, 2, 3, 4, 5, 6, 1, 2)
    text = SPACE.arch_to_str(arch)
    (tmp_path / "a.json").write_text(json.dumps({"arch": list(arch), "objective": 1.0}))
    (tmp_path / "b.json").write_text(json.dumps({"arch": text, "experiment": "x"}))
    (tmp_path / "c.txt").write_text(text + "\n")
    assert {read_arch(tmp_path / n) for n in ("a.json", "b.json", "c.txt")} == {arch}
    (tmp_path / "d.json").write_text(json.dumps({"arch": [7] * 21}))
    with pytest.raises(ArchError, match=r"outside 0\.\.6"):
        read_arch(tmp_path / "d.json")
    (tmp_path / "e.json").write_text("{")
    with pytest.raises(ArchError, match="not a JSON object"):
        read_arch(tmp_path / "e.json")


def test_darts_is_rejected_in_the_mobile_space(tmp_path: Path) -> None:
    spec = {"space": "mobile", "strategy": "darts", "mode": "weight_sharing", "seeds": [0]}
    with pytest.raises(ConfigError, match="mixed ops do not fit the mobile space"):
        run_experiment("m", spec, seed=0, out=tmp_path / "r.json")
    assert not (tmp_path / "r.json").exists()


@pytest.mark.slow
def test_cli_standin_search_retrain_transfer_table(
    standin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The pipeline's commands on the shipped default config, shrunk to seconds."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    block = config["imagenet"]
    block["resolution"], block["held_out"] = 16, 20
    block["search"]["train"] |= {"train_size": 20, "valid_size": 20, "batch_size": 20}
    block["cache"] = str(tmp_path / "decoded")
    block["transfer"]["network"] |= {"C": 4, "layers": 3}
    for stage in ("retrain", "transfer"):  # all 60 / 20 images (more is an error, not a cap)
        block[stage]["protocol"]["overrides"] |= {
            "epochs": 1,
            "batch_size": 20,
            "train_size": None,
            "test_size": None,
        }
    args = [
        "--block",
        json.dumps(block),
        "--root",
        str(standin),
        "--device",
        "cpu",
        "--threads",
        "1",
    ]
    assert main(["imagenet", "search", *args, "--out", str(tmp_path / "s.json")]) == 0
    record = json.loads((tmp_path / "s.json").read_text())
    assert record["space"] == "mobile" and record["dataset"]["stand_in"]
    assert record["epochs"] == 27  # DDPNAS, pruning_step 1: 7 + 6 + ... + 2 rounds
    assert record["search_protocol"]["resolution"] == 16
    assert record["split"]["name"].startswith("ProxylessNAS held-out")
    assert len(list((tmp_path / "decoded").glob("images-16px-*.json"))) == 2  # train, held-out
    out = tmp_path / "rt"
    assert main(["imagenet", "retrain", *args, "--arch", str(tmp_path / "s.json"),
                 "--out-dir", str(out)]) == 0  # fmt: skip
    result = json.loads((out / "result.json").read_text())
    assert result["arch"] == record["arch"] and result["kind"] == "mobile"
    latency = result["latency"]  # measured where it was retrained, at the table's resolution
    assert latency["ms"] > 0 and latency["device"] == result["environment"]["hardware"]
    assert latency["input"] == [1, 3, 16, 16] and latency["repeats"] >= 1
    genotype = tmp_path / "g.txt"
    genotype.write_text(str(DARTS_V2))
    assert main(["imagenet", "retrain", *args, "--genotype", str(genotype),
                 "--out-dir", str(tmp_path / "tr")]) == 0  # fmt: skip
    transfer = json.loads((tmp_path / "tr" / "result.json").read_text())
    assert transfer["genotype"] == DARTS_V2.to_json()  # DARTS's text read, JSON stored
    table = tmp_path / "imagenet"
    rows = [str(tmp_path / "s.json")] * 2
    retrains = [str(out / "result.json"), str(tmp_path / "tr" / "result.json")]
    assert main(["imagenet", "table", "--searches", *rows, "--retrains", *retrains,
                 "--out", str(table)]) == 0  # fmt: skip
    md = table.with_suffix(".md").read_text()
    assert md.count("stand-in: 10 CIFAR-10 classes") == 2 and "74.3" in md and "75.2" in md
    assert "Latency (ms, device)" in md and f"{latency['ms']:.3g} ({latency['device']})" in md
    assert f"`{DARTS_V2}`" in md  # the notes print the genotype as DARTS does
    assert table.with_suffix(".csv").exists() and table.with_suffix(".tex").exists()
    capsys.readouterr()
    assert main(["imagenet", "search", "--block", json.dumps({"enabled": True}),
                 "--out", str(tmp_path / "x.json")]) == 2  # fmt: skip
    assert "no imagenet.search block" in capsys.readouterr().err


def test_table_prints_latency_with_its_device_and_dashes_without() -> None:
    """Ours from result.json (an older one without the key renders "-"); published from Table 3."""
    env = {"device": "cuda", "hardware": "NVIDIA H200"}
    search = {"label": "Ours", "experiment": "imagenet", "seed": 0, "search_seconds": 60.0,
              "environment": env}  # fmt: skip
    retrain = {"kind": "mobile", "dataset": {"stand_in": False, "resolution": 224},
               "test_acc": 0.75, "test_top5": 0.92, "params_m": 6.7, "macs_m": 782.6,
               "epochs": 120, "wall_seconds": 3600.0, "environment": env,
               "latency": {"ms": 4.321, "device": "NVIDIA H200"}}  # fmt: skip
    old = {k: v for k, v in retrain.items() if k != "latency"}
    df = imagenet_rows([(search, retrain), (search, old)])
    column = list(imagenet_display(df)["Latency (ms, device)"])
    assert column[:2] == ["4.32 (NVIDIA H200)", "-"]
    shown = dict(zip(df["method"][2:], column[2:], strict=True))
    assert shown["DDPNAS (mobile)"] == "6.09 (GPU, model not stated)"
    assert shown["DDPNAS (IJCV 2023) (mobile)"] == "-"  # no latency published
    assert shown["DARTS (cell transferred)"] == "-"
    assert df["latency_ms"].iloc[0] == 4.321  # the CSV keeps the number


def test_streaming_retrain_killed_mid_run_resumes_to_the_same_numbers(
    standin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker-side augmentation is seeded per epoch, so a resumed run replays exactly."""
    from ddpnas.retrain import loop as train_module

    cfg = protocol("ddpnas_v1", {"epochs": 2, "batch_size": 20, "eval_batch_size": 20}, seed=1)
    source = ImageNetSource(standin, 16, device=torch.device("cpu"), workers=1)

    def build() -> nn.Module:
        return SPACE.standalone((0,) * 21, width_mult=0.25, num_classes=10)

    whole = retrain(build, source, None, cfg, device="cpu", out_dir=tmp_path / "whole")
    original = train_module.Retrainer.epoch

    def die_in_second_epoch(self: object, epoch: int) -> dict:
        if epoch == 1:
            raise KeyboardInterrupt  # stands in for a kill after epoch 0's checkpoint
        return original(self, epoch)

    monkeypatch.setattr(train_module.Retrainer, "epoch", die_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        retrain(build, source, None, cfg, device="cpu", out_dir=tmp_path / "killed")
    monkeypatch.setattr(train_module.Retrainer, "epoch", original)
    (first,) = (tmp_path / "killed" / "metrics.csv").read_text().splitlines()[1:]
    resumed = retrain(  # as the pipeline runs it: a stale checkpoint would be removed, not this
        build,
        source,
        None,
        cfg,
        device="cpu",
        out_dir=tmp_path / "killed",
        stale_checkpoint="restart",
    )
    for key in ("test_acc", "test_top5", "test_loss"):
        assert resumed[key] == whole[key]
    rows = [(tmp_path / d / "metrics.csv").read_text().splitlines() for d in ("whole", "killed")]
    assert rows[1][1] == first  # epoch 0 resumed from the checkpoint (its seconds), not rerun
    strip = [[",".join(r.split(",")[:-1]) for r in table] for table in rows]  # drop seconds
    assert strip[0] == strip[1]
