"""docs/paper.md quotes `ddpnas report estimate --config config/paper.yaml`: the plan table, the
total, every other "N GPU-hours" / "N GPU-days", the memory tables, the memory check's message and
the input-pipeline extrapolation. Each is recomputed here in-process from the shipped config and
code (CPU measurements of a few networks, no training), so a change to either that moves a figure
fails here until the page says the new one."""

from __future__ import annotations

import copy
import re
from typing import Any

import pandas as pd
import pytest

from ddpnas.config.load import load_config
from ddpnas.errors import ConfigError
from ddpnas.report import estimate as est
from ddpnas.report import memory
from tests.conftest import REPO

DOC = REPO / "docs" / "paper.md"
CONFIG = "config/paper.yaml"
STALE = "docs/paper.md is stale: update it from `ddpnas report estimate --config config/paper.yaml`"


@pytest.fixture(scope="module")
def paper(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The estimate of config/paper.yaml as shipped, and of the two variants the page quotes
    (ImageNet retraining without accumulation; the ImageNet search at 224 px)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DDPNAS_CACHE", str(tmp_path_factory.mktemp("cache")))
        config = load_config(REPO / CONFIG)
        df = est.estimate(config)
        whole = copy.deepcopy(config)
        whole["imagenet"]["retrain"]["protocol"]["overrides"]["accumulate"] = 1
        at224 = copy.deepcopy(config)
        at224["imagenet"]["search_resolution"] = at224["imagenet"]["resolution"]
        variants = {"shipped": df, "whole": est.estimate(whole), "at224": est.estimate(at224)}
        nets = {label: memory.measure(*spec) for label, spec in _networks(config).items()}
    return {
        "config": config,
        "df": df,
        "text": est.estimate_text(df, config, CONFIG),
        "plan": est.plan(df, config, CONFIG),
        "variants": variants,
        "nets": nets,
    }


def _networks(config: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any], int]]:
    """The per-image table's rows: (kind, options, resolution) as the estimate measures them."""
    imagenet, side = config["imagenet"], config["imagenet"]["resolution"]
    mobile = {**imagenet["retrain"]["network"], "num_classes": est.IMAGENET_CLASSES}
    transfer = {**imagenet["transfer"]["network"], "num_classes": est.IMAGENET_CLASSES}
    cifar = {**config["retrain"]["network"], "num_classes": 10}
    return {
        f"mobile space, largest network (width {mobile['width_mult']})": (
            "mobile",
            {"network": mobile},
            side,
        ),
        f"DARTS ImageNet network, largest cell (C={transfer['C']}, {transfer['layers']} cells)": (
            "darts_imagenet",
            {"network": transfer},
            side,
        ),
        f"DARTS CIFAR network, largest cell (C={cifar['C']}, {cifar['layers']} cells)": (
            "darts_cifar",
            {"network": cifar, "genotype": "worst"},
            est.CIFAR_SIDE,
        ),
        "DARTS CIFAR network, DARTS-V2 cell": (
            "darts_cifar",
            {"network": cifar, "genotype": "DARTS_V2"},
            est.CIFAR_SIDE,
        ),
    }


def table(text: str, header: list[str]) -> list[list[str]]:
    """Cells of the Markdown table whose header row is ``header`` (either padding style)."""
    lines = text.splitlines()
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    start = next((i for i, row in enumerate(cells) if row == header), None)
    assert start is not None, f"no table with header {header}"
    rows = []
    for line, row in zip(lines[start + 2 :], cells[start + 2 :], strict=True):
        if not line.startswith("|"):
            break
        rows.append(row)
    return rows


def expand(word: str) -> list[str]:
    """Bash's brace expansion of ``word`` (no nesting), as the page's targets are written."""
    match = re.search(r"\{([^{}]*)\}", word)
    if not match:
        return [word]
    head, tail = word[: match.start()], word[match.end() :]
    return [w for alt in match.group(1).split(",") for w in expand(head + alt + tail)]


def number(text: str) -> float:
    return float(text.replace(",", ""))


def test_plan_table_is_the_estimates(paper: dict[str, Any]) -> None:
    """Same subsets, what each reproduces, GPU-hours as printed (3 significant figures), and the
    targets (brace-expanded) that the estimate prints."""
    header = ["subset", "reproduces", "GPU-hours", "targets"]
    printed = {row[0]: row for row in table(paper["text"], header)}
    doc = {row[0].replace("**", ""): row for row in table(DOC.read_text(), header)}
    assert sorted(doc) == sorted(printed), STALE
    for subset, (_, reproduces, hours, targets) in printed.items():
        _, doc_reproduces, doc_hours, doc_targets = doc[subset]
        assert doc_reproduces == reproduces, f"{subset}: {STALE}"
        assert number(doc_hours) == float(hours), f"{subset}: {doc_hours} vs {hours}; {STALE}"
        words = doc_targets.replace("`", "").split()
        assert sorted(w for word in words for w in expand(word)) == sorted(targets.split()), (
            f"{subset}: targets; {STALE}"
        )


def test_total_and_every_gpu_hour_figure_are_the_estimates(paper: dict[str, Any]) -> None:
    """The first paragraph's total is the printed one; every other "N GPU-hours" or "N GPU-days"
    is one of the estimate's figures (a subset, a stage, a job, per seed or in all)."""
    doc = DOC.read_text()
    total = re.search(r"- total: (\S+) GPU-hours \((\S+) GPU-days\)", paper["text"])
    said = re.search(
        r"Run whole, it is about\s+([\d,.]+)\s+GPU-hours\s+\(([\d,.]+)\s+GPU-days", doc
    )
    assert total and said, "the total is missing from the estimate or from docs/paper.md"
    assert (number(said[1]), number(said[2])) == (float(total[1]), float(total[2])), STALE
    df = paper["df"]
    hours = pd.concat(
        [
            paper["plan"]["gpu_hours"],
            df.groupby("stage")["gpu_hours"].sum(),
            df["gpu_hours"],
            df["gpu_hours_per_seed"],
        ]
    )
    known = {
        "hours": {float(f"{h:.3g}") for h in hours},
        "days": {float(f"{h / 24:.3g}") for h in hours},
    }
    figures = re.findall(r"(\d[\d,]*(?:\.\d+)?)\s+GPU-(hours|days)", doc)
    assert len(figures) >= 8  # the prose quotes the plan
    for figure, unit in figures:
        assert number(figure) in known[unit], (
            f"'{figure} GPU-{unit}' is no estimate figure; {STALE}"
        )


def test_activations_per_image_are_the_measured_ones(paper: dict[str, Any]) -> None:
    header = ["network", "resolution", "activations per image", "params"]
    rows = {row[0]: row for row in table(DOC.read_text(), header)}
    assert sorted(rows) == sorted(paper["nets"]), STALE
    for label, net in paper["nets"].items():
        side = _networks(paper["config"])[label][2]
        expected = [label, str(side), f"{net['per_image'] / 2**20:.1f} MiB"]
        assert rows[label] == [*expected, f"{net['params'] / 1e6:.1f} M"], STALE
    # the sanity check: DARTS-V2 at DARTS's batch, with the model's context and margin
    check = re.search(
        r"(\d+) x ([\d.]+) MiB x ([\d.]+) \+ ([\d.]+) GiB is about (\d+) GiB", DOC.read_text()
    )
    v2 = paper["nets"]["DARTS CIFAR network, DARTS-V2 cell"]
    assert check and int(check[1]) == paper["config"]["retrain"]["protocol"]["batch_size"]
    assert (float(check[3]), float(check[4])) == (memory.MARGIN, memory.CONTEXT_GIB), STALE
    assert float(check[2]) == round(v2["per_image"] / 2**20, 1), STALE
    peak = memory.peak_bytes({**v2, "params": 0.0, "fixed": 0.0}, int(check[1])) / memory.GIB
    assert int(check[5]) == round(peak), STALE


# The peak table's rows: (estimate variant, stage, experiment).
PEAKS = {
    "ImageNet retraining, ddpnas_v1, 1024 = 4 x 256": ("shipped", "imagenet retrain", "mobile"),
    "the same without accumulation": ("whole", "imagenet retrain", "mobile"),
    "ImageNet search at 64 px, images held on the GPU (15 GiB)": (
        "shipped",
        "imagenet search",
        "mobile",
    ),
    "the same at 224 px (180 GiB of images)": ("at224", "imagenet search", "mobile"),
    "ImageNet transfer (DARTS, C=48)": ("shipped", "imagenet transfer", "darts-ddpnas"),
    "CIFAR-10 retraining (C=36, 20 cells)": ("shipped", "retrain", "darts-ddpnas"),
    "DARTS second order, DARTS space search": ("shipped", "search", "darts-darts2"),
}


def test_peak_memory_table_and_refusal_message_are_the_estimates(paper: dict[str, Any]) -> None:
    doc = DOC.read_text()
    rows = table(doc, ["job", "batch per GPU", "peak per GPU"])
    assert sorted(row[0] for row in rows) == sorted(PEAKS), "a row the test does not know"
    for job, batch, peak in rows:
        variant, stage, experiment = PEAKS[job]
        df = paper["variants"][variant].set_index(["stage", "experiment"])
        row = df.loc[(stage, experiment)]
        assert batch == row["batch_per_gpu"], f"{job}: {STALE}"
        assert peak.startswith(f"{row['peak_gib']:.1f} GiB"), f"{job}: {peak}; {STALE}"
        assert ("refused" in peak) == (row["fits"] == "NO"), f"{job}: {STALE}"
    # the images the search holds on the GPU, at its resolution and at the retraining's
    imagenet = paper["config"]["imagenet"]
    held = [
        round(est.IMAGENET_TRAIN * 3 * imagenet[key] ** 2 / memory.GIB)
        for key in ("search_resolution", "resolution")
    ]
    assert f"({held[0]} GiB)" in doc and f"({held[1]} GiB of images)" in doc, STALE
    # the memory check's one line, as section 1 shows it
    block = re.search(r"```\n\s*(ddpnas: error: .*?)```", doc, flags=re.DOTALL)
    with pytest.raises(ConfigError) as refused:
        est.check_memory(paper["variants"]["whole"], paper["config"]["gpu_memory_gib"])
    assert block and " ".join(block[1].split()) == f"ddpnas: error: {refused.value}", STALE
    assert f"- {memory.CONTEXT_GIB:g} GiB for the CUDA context" in doc
    assert f"activations x {memory.MARGIN:g}, for" in doc


def test_input_pipeline_extrapolation_is_the_estimates_rates(paper: dict[str, Any]) -> None:
    """Section 4's per-worker rates are the ones the estimate uses (speeds.yaml), and its
    extrapolation to the config's workers is their arithmetic."""
    rates, workers = est.speeds()["imagenet_data"], paper["config"]["imagenet"]["workers"]
    doc = DOC.read_text()
    decode = re.search(r"into the cache\) \| (\d+) images/s \| 1\.28 M images in ([\d.]+) min", doc)
    stream = re.search(r"normalise\) \| (\d+) images/s \| ([\d,]+) images/s, (\d+) min per", doc)
    assert decode and stream, "section 4's table changed shape: update this test"
    assert (
        int(decode[1]) == rates["decode_per_worker"]
        and int(stream[1]) == rates["stream_per_worker"]
    )
    minutes = est.IMAGENET_TRAIN / (rates["decode_per_worker"] * workers) / 60
    assert float(decode[2]) == round(minutes, 1), STALE
    per_second = rates["stream_per_worker"] * workers
    assert number(stream[2]) == round(per_second, -2), STALE
    assert int(stream[3]) == round(est.IMAGENET_TRAIN / per_second / 60), STALE
    assert f"extrapolated to {workers} workers" in doc, STALE
