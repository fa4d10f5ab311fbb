"""The config as typed models: the one declaration of every key, default, bound and description.

Strategies and spaces declare their own blocks (``strategy_args``, ``supernet``) as the ``Options``
model of their registered class; :class:`Search` picks the one named by ``strategy`` / ``space``.
The JSON schema (ddpnas/schemas/config.schema.yaml, read by Snakemake) is generated from these
models by ``python -m ddpnas.schema``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from ddpnas.config_search import NonNegative, Positive, Search, Size
from ddpnas.options import Number, Options, UniqueList, Unset, absent, block

Fraction = Annotated[Number, Field(ge=0, lt=1)]


class Data(Options):
    """Where the data sets are."""

    root: str | None = Field(
        None,
        description=(
            "Folder holding CIFAR-10 (torchvision's cifar-10-batches-py, an image folder, or "
            "cifar10-jpeg.zip) and nasbench201/. null -> $DDPNAS_DATA -> torchvision download."
        ),
    )
    nb201: str | None = Field(
        None,
        description=(
            "NAS-Bench-201 source (compact table, NATS-tss-v1_0-3ffb9-simple dir or the v1_1 "
            ".pth). null -> <root>/nasbench201 -> $DDPNAS_NB201 -> $DDPNAS_DATA/nasbench201 -> "
            "$TORCH_HOME."
        ),
    )
    cache: str | None = Field(
        None, description="Decoded-image cache. null -> $DDPNAS_CACHE -> ~/.cache/ddpnas."
    )
    download: bool = Field(
        True, description="Let torchvision download CIFAR-10 when it is nowhere else."
    )


class RetrainNetwork(Options):
    C: Positive = 36
    layers: int = Field(20, ge=3)
    auxiliary: bool = True


class RetrainProtocol(Options):
    """The training protocol (defaults are DARTS's CIFAR-10 evaluation protocol)."""

    epochs: Positive = 600
    batch_size: Positive = 96
    lr: Number = Field(0.025, gt=0)
    momentum: Number = Field(0.9, ge=0)
    weight_decay: Number = Field(0.0003, ge=0)
    grad_clip: Number = Field(5.0, ge=0)
    auxiliary_weight: Number = Field(0.4, ge=0)
    drop_path_prob: Fraction = 0.2
    cutout: NonNegative = 16
    train_size: Size = Field(None, description="Training images (null = all 50k).")
    test_size: Size = Field(None, description="Test images (null = all 10k).")
    amp: bool | None = Field(
        False,
        description=(
            "Mixed precision (opt-in speed switch; the protocol is fp32; null = on for CUDA). "
            "The CIFAR-10 table marks rows retrained with it."
        ),
    )
    amp_dtype: Literal["bfloat16", "float16"] = "bfloat16"
    channels_last: bool | None = None
    eval_batch_size: Positive = 256
    eval_every: Positive = 1
    cuda_graphs: bool | Unset = absent(
        "Capture the training step once per epoch and replay it as a CUDA graph (one GPU per "
        "run, not with float16 loss scaling). Absent = off."
    )


class Retrain(Options):
    """Retrain the genotypes found by DARTS-space searches from scratch on CIFAR-10 (one run per
    search seed, with that seed) and report test accuracy."""

    searches: list[str] = Field(
        [], description="Names of DARTS-space search experiments whose genotypes are retrained."
    )
    gpus: Positive = Field(
        1, description="GPUs per node of a retraining job; more than one launches torchrun (DDP)."
    )
    nodes: Positive = Field(
        1,
        description=(
            "Nodes per retraining job (SLURM only): torchrun on each, rendezvous from SLURM's "
            'environment (see the README, "Running on a cluster").'
        ),
    )
    network: RetrainNetwork = block()
    protocol: RetrainProtocol = block()


class Ranking(Options):
    """Supernet ranking check (results/tables/nb201_ranking.*): cells scored with the final
    supernet of each listed weight-sharing NAS-Bench-201 search (its figure_seed run) vs their
    200-epoch NAS-Bench-201 accuracies."""

    experiments: list[str] = Field(
        [], description="Weight-sharing NAS-Bench-201 search experiments to check (none = skip)."
    )
    cells: Positive = Field(
        30,
        description=(
            "Cells sampled in equal shares from the deciles of the table's 200-epoch "
            "cifar10-valid accuracy (the cells each search visited are added to them)."
        ),
    )
    sample_seed: NonNegative = Field(
        0, description="Seed of that sample (the same cells for every experiment)."
    )
    bootstrap: int = Field(
        1000, ge=100, description="Bootstrap resamples for the rank-correlation intervals."
    )
    top_k: Positive = Field(
        10, description="k of the top-k overlap between supernet and table rankings."
    )


class Bound(Options):
    """`ddpnas report bound`: failure bounds of DDPNAS's pruning schedule beside a Monte-Carlo of
    the real strategy (synthetic arms and the NAS-Bench-201 table), and the accuracy of the found
    NAS-Bench-201 cell vs search cost beside baselines with the same query budget."""

    seed: NonNegative = Field(
        0, description="Master seed of every Monte-Carlo setting and baseline run."
    )
    seeds: int = Field(2000, ge=10, description="Replicates (independent searches) per setting.")
    pruning_steps: UniqueList[Positive] = Field(
        [1, 2, 3, 5, 10],
        min_length=1,
        description="T values (rounds per prune) of the synthetic settings.",
    )
    gaussian_std: Number = Field(
        0.15,
        gt=0,
        le=1,
        description="Std of the Gaussian credits (accuracy fraction, clipped to [0, 1]).",
    )
    edges: Positive = Field(
        1, description="Edges per synthetic search (the bound is a union over them)."
    )
    nb201_pruning_steps: UniqueList[Positive] = Field(
        [1, 2, 3, 4, 5],
        min_length=1,
        description="T values of the NAS-Bench-201 settings (and of the accuracy-vs-cost figure).",
    )
    nb201_noise: UniqueList[Annotated[Number, Field(ge=0)]] = Field(
        [0, 0.5, 1.0],
        min_length=1,
        description="Reward noise levels (std, percentage points) of the NAS-Bench-201 settings.",
    )
    target: Number = Field(
        0.05,
        gt=0,
        lt=1,
        description='Failure probability the table\'s "T for target" inverts the bound for.',
    )
    alpha: Number = Field(
        0.001,
        gt=0,
        lt=0.5,
        description="One-sided level at which an empirical rate counts as above a bound.",
    )
    baselines: UniqueList[str] = Field(
        ["rs"],
        description="Tabular strategies (taking budget_seconds) run with DDPNAS's query budget.",
    )
    baseline_seeds: int = Field(50, ge=2, description="Runs per baseline, budget and noise level.")


class Report(Options):
    figure_seed: int = Field(0, description="Which seed's run the theta figure shows.")
    ranking: Ranking = block()
    bound: Bound = block()


class ProtocolOverrides(Options):
    epochs: Positive | Unset = absent()
    batch_size: Positive | Unset = absent()
    eval_batch_size: Positive | Unset = absent()
    lr: Number | Unset = absent(gt=0)
    weight_decay: Number | Unset = absent(ge=0)
    train_size: Size = absent()
    test_size: Size = absent()
    amp: bool | None = absent()
    grad_clip: Number | Unset = absent(ge=0)
    label_smoothing: Fraction | Unset = absent()


class ImagenetProtocol(Options):
    """A published ImageNet protocol (ddpnas_v1: 120 epochs, batch 1024, lr 0.4 cosine, label
    smoothing 0.1, no weight decay on BN; darts_imagenet: 250 epochs, batch 128, lr 0.1 x 0.97 per
    epoch, auxiliary 0.4, clip 5) and overrides of its fields (ddpnas.train.RetrainConfig)."""

    name: Literal["ddpnas_v1", "darts_imagenet"]
    overrides: ProtocolOverrides = block()


class Standin(Options):
    """An ImageNet-format folder built from CIFAR-10 JPEGs (10 classes, upscaled)."""

    enabled: bool = True
    train_per_class: int = Field(30, ge=2)
    val_per_class: Positive = 10
    size: int = Field(64, ge=8)


class MobileNetwork(Options):
    width_mult: Number = Field(1.0, gt=0)
    dropout: Fraction = 0.3


class ImagenetRetrain(Options):
    """Retraining of the searched mobile network on ImageNet."""

    network: MobileNetwork = block()
    protocol: ImagenetProtocol | Unset = absent()


class TransferNetwork(Options):
    C: int = Field(48, ge=2)
    layers: int = Field(14, ge=3)
    auxiliary: bool = True
    dropout: Fraction = 0.3


class Transfer(Options):
    """DARTS-space cells (their search experiments) retrained on ImageNet."""

    searches: list[str] = Field([], description="DARTS-space search experiments to transfer.")
    network: TransferNetwork = block()
    protocol: ImagenetProtocol | Unset = absent()


class Imagenet(Options):
    """ImageNet stage: a mobile-space search on ImageNet's search split, retraining of the
    searched network, transfer of DARTS-space cells, and results/tables/imagenet.*. Without a
    real ImageNet, a stand-in built from the CIFAR-10 JPEGs (data.root) is used and marked so."""

    enabled: bool = False
    root: str | None = Field(
        None,
        description=(
            "ImageNet root (official ILSVRC2012 archives, or train/<wnid>/ and val/<wnid>/). "
            "null -> $DDPNAS_IMAGENET. Never downloaded. Ignored when standin.enabled."
        ),
    )
    standin: Standin = block()
    resolution: int = Field(
        224, ge=8, description="Input size for search and retraining (224 on ImageNet)."
    )
    search_resolution: int | None = Field(
        None,
        ge=8,
        description=(
            "Input size of the search (null = resolution). The search decodes its images once "
            "into memory (1.28 M ImageNet images take 15 GB at 64 px, 190 GB at 224 px)."
        ),
    )
    held_out: Positive = Field(
        50000,
        description=(
            "Class-balanced training images held out to score architectures (ProxylessNAS)."
        ),
    )
    workers: NonNegative = Field(8, description="DataLoader worker processes.")
    gpu_decode: bool | None = Field(
        None, description="Decode JPEG batches on the GPU (nvJPEG). null = when running on CUDA."
    )
    search: Search | Unset = absent(
        "The mobile-space search (a search experiment block; space must be mobile)."
    )
    retrain: ImagenetRetrain = block()
    transfer: Transfer = block()


class Generation(Options):
    """One `generate` entry: networks generated from one search record's theta."""

    experiment: str = Field(
        description=(
            "Search experiment whose record gives theta (a strategy that logs theta), or "
            "imagenet: the mobile-space search of the imagenet block "
            "(results/imagenet/search/seed<seed>.json)."
        )
    )
    seed: int | None = Field(
        None,
        description="Seed of that record; null -> report.figure_seed when the experiment runs it.",
    )
    sweep: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*=[^:=]+:[^:=]+:[0-9]+$",
        description=(
            "RESOURCE=LO:HI:N, N budgets from LO to HI (raw units, e.g. macs=10e6:220e6:15)."
        ),
    )
    budgets: dict[str, Number] = Field(
        {}, description="Fixed budgets on other resources, e.g. {params: 1.0e6}."
    )
    min_alive: Positive = Field(
        2,
        description=(
            "Survivors per edge the theta must still have (2 = just before the last prune)."
        ),
    )
    objective: Literal["log", "theta"] = Field(
        "log",
        description=(
            "log = sum of log theta (log-probability); theta = summed theta (the authors')."
        ),
    )
    network: dict[str, Any] = Field(
        {},
        description=(
            "Standalone network keyword arguments (default: the space's, e.g. NB201 C=16 N=5; for "
            "experiment imagenet: the network imagenet.retrain trains, its width_mult, "
            "resolution, classes)."
        ),
    )
    retrain: list[Annotated[dict[str, Number], Field(min_length=1)]] = Field(
        [],
        description=(
            "Networks to generate and retrain (experiment imagenet only): one budget map each, on "
            "top of budgets, e.g. [{macs: 4.0e+8}, {latency_ms: 80}]; each is generated to "
            "results/generated/<name>/seed<seed>/net<i>.json, retrained under imagenet.retrain "
            "and listed in results/tables/imagenet.* as generated under its budgets."
        ),
    )
    latency: str | None = Field(
        None,
        description=(
            "Adds resource latency_ms: 'device' (measured here, cached) or a phone-table YAML."
        ),
    )
    missing: Literal["error", "exclude"] = Field(
        "error",
        description=(
            "Choices a phone table lacks: error (list them) or exclude (never generated); never "
            "guessed."
        ),
    )


class Config(Options):
    """One file drives the pipeline (Snakemake) and the CLI. Unknown keys are errors, so a typo
    never silently falls back to a default."""

    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto picks CUDA when present."
    )
    threads: Positive = Field(
        2,
        description="CPU threads per compute job (torch.set_num_threads and Snakemake threads).",
    )
    gpu_share: Positive = Field(
        1,
        description=(
            "Weight-sharing searches that share one GPU. Each such search takes one `gpu_slots` "
            "unit and a retraining takes gpu_share per GPU, so run Snakemake with "
            "`--resources gpu=<GPUs> gpu_slots=<GPUs x gpu_share>` (a resource left out is "
            "unlimited)."
        ),
    )
    data: Data = block()
    searches: dict[str, Search] = Field(
        min_length=1, description="Named search experiments; each runs once per seed."
    )
    retrain: Retrain = block()
    report: Report = block()
    imagenet: Imagenet = block()
    generate: dict[str, Generation] = Field(
        {},
        description=(
            "Constraint-aware generation (`ddpnas generate`): per entry, the networks generated "
            "from the theta of one search record (the last theta with min_alive survivors per "
            "edge, before its prune) for a sweep of budgets on one resource, each re-measured on "
            "the built network; writes results/tables/generation_<name>.{csv,md,tex} and "
            "results/figures/generation_<name>.png. On NAS-Bench-201 the table holds each "
            "generated cell's accuracy and its gap to the benchmark's true accuracy/cost front. "
            "Name an entry after its space (nb201, mobile). An entry on the ImageNet search "
            "(experiment: imagenet) may list networks to retrain."
        ),
    )
