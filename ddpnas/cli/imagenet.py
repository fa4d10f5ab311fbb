"""``ddpnas imagenet ...``: the ImageNet stage's commands (stand-in, search, retrain, table).

``retrain`` takes an architecture file so that any architecture can be retrained, the searched
one or one generated for a budget: a search record (its ``arch``), a JSON ``{"arch": [k per
layer]}`` (the generator's output) or ``{"arch": "<canonical string>"}``, or a text file holding
the canonical string. With ``--genotype`` it retrains a DARTS-space cell in DARTS's ImageNet network
(the transfer setting) instead.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ddpnas.cli.args import add_runtime, add_stale_checkpoint, declare_outputs, table_outputs
from ddpnas.cli.retrain import out_dir_output
from ddpnas.errors import ArchError, DDPNASError
from ddpnas.io.locks import Output

STANDIN_LABEL = "stand-in"


def _settings(args: argparse.Namespace) -> tuple[dict[str, Any], str, int]:
    """(imagenet block, device, threads) from --config FILE, or from --block JSON (the pipeline
    passes the validated block) with --device/--threads."""
    from ddpnas.config.imagenet import Imagenet
    from ddpnas.config.load import load_config, validate

    if args.config:
        config = load_config(args.config)
        return (
            config["imagenet"],
            args.device or config["device"],
            args.threads or config["threads"],
        )
    try:
        block = json.loads(args.block)
    except json.JSONDecodeError as exc:
        raise DDPNASError(f"--block is not valid JSON: {exc}") from None
    block = validate(block, Imagenet, where="imagenet")
    return block, args.device or "auto", args.threads or 2


def _root(args: argparse.Namespace, block: dict[str, Any]) -> Path:
    from ddpnas.data.imagenet import resolve_imagenet_root

    return resolve_imagenet_root(args.root or block["root"])


def _dataset_info(root: Path, resolution: int) -> dict[str, Any]:
    from ddpnas.data.imagenet import standin_info

    info = standin_info(root)
    if info is None:
        return {"stand_in": False, "name": "ImageNet", "resolution": resolution}
    return {
        "stand_in": True,
        "name": STANDIN_LABEL,
        "classes": len(info["classes"]),
        "resolution": resolution,
        "source": info["source"],
    }


def read_arch(path: str | Path) -> tuple[int, ...]:
    """A mobile-space architecture from a record, an ``{"arch": ...}`` JSON or a string file."""
    from ddpnas.spaces.mobile.space import MobileSpace

    space = MobileSpace()
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise DDPNASError(f"cannot read architecture file {path}: {exc}") from None
    if not text.startswith("{"):
        return space.str_to_arch(text)
    try:
        arch = json.loads(text).get("arch")
    except (json.JSONDecodeError, AttributeError):
        raise ArchError(f"{path} is not a JSON object with an 'arch' key") from None
    if isinstance(arch, str):
        return space.str_to_arch(arch)
    if not isinstance(arch, list) or not all(isinstance(k, int) for k in arch):
        raise ArchError(f"{path}: 'arch' must be a list of op indices or the canonical string")
    return space.validate(arch)


def generated_under(path: str | Path) -> dict[str, float]:
    """The budgets an architecture file was generated under (``ddpnas generate --out``), or {}
    for a search record or a plain architecture."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    budgets = raw.get("budgets") if isinstance(raw, dict) else None
    return budgets if isinstance(budgets, dict) else {}


def _cmd_standin(args: argparse.Namespace) -> None:
    from ddpnas.data.imagenet import build_standin

    out = build_standin(
        args.cifar_zip,
        args.out,
        train_per_class=args.train_per_class,
        val_per_class=args.val_per_class,
        size=args.size,
        force=args.force,
    )
    print(f"wrote the ImageNet stand-in {out} (CIFAR-10 images, NOT ImageNet)")


def _cmd_search(args: argparse.Namespace) -> None:
    from ddpnas.data.locations import resolve_cache_dir
    from ddpnas.engine.experiment import run_experiment
    from ddpnas.retrain.imagenet import search_protocol, search_sets

    block, device, threads = _settings(args)
    if "search" not in block:
        raise DDPNASError("the config has no imagenet.search block")
    spec = block["search"]
    if spec["space"] != "mobile":
        raise DDPNASError(f"imagenet.search must search the mobile space, not {spec['space']}")
    root = _root(args, block)
    train = spec.get("train", {})
    resolution = block["search_resolution"] or block["resolution"]
    datasets = search_sets(
        root,
        resolution,
        held_out=block["held_out"],
        train_size=train.get("train_size"),
        valid_size=train.get("valid_size"),
        workers=block["workers"],
        cache_dir=resolve_cache_dir(block.get("cache")),
    )
    record = run_experiment(
        "imagenet-search",
        spec,
        seed=args.seed,
        out=args.out,
        checkpoint=args.checkpoint,
        stale_checkpoint=args.stale_checkpoint,
        device=device,
        threads=threads,
        datasets=datasets,
        record_extra={
            "dataset": _dataset_info(root, resolution),
            **search_protocol(resolution, block["held_out"], train),
        },
    )
    print(f"imagenet search seed {args.seed}: {record['arch']} ({record['search_seconds']:.1f} s)")


def _network(
    args: argparse.Namespace, block: dict[str, Any], classes: int
) -> tuple[dict[str, Any], str, Callable[[], Any], dict[str, Any]]:
    """(config stage, default protocol, network builder, record extras) of what is retrained:
    a DARTS cell transferred (--genotype) or a mobile architecture (--arch)."""
    from ddpnas.spaces.darts.genotype import Genotype
    from ddpnas.spaces.mobile.space import MobileSpace
    from ddpnas.spaces.published_nets import darts_imagenet_network

    if args.genotype:
        stage = block["transfer"]
        genotype = Genotype.read(args.genotype)
        net = dict(stage["network"])
        extra = {"kind": "cell transferred", "genotype": genotype.to_json()}
        return (
            stage,
            "darts_imagenet",
            lambda: darts_imagenet_network(genotype, num_classes=classes, **net),
            extra,
        )
    stage = block["retrain"]
    arch = read_arch(args.arch)
    space = MobileSpace()
    extra = {"kind": "mobile", "arch": space.arch_to_str(arch)}
    budgets = generated_under(args.arch)
    if budgets:
        from ddpnas.cli.generate import budget_text

        extra |= {"kind": f"mobile, generated under {budget_text(budgets)}", "budgets": budgets}
    return (
        stage,
        "ddpnas_v1",
        lambda: space.standalone(arch, num_classes=classes, **stage["network"]),
        extra,
    )


def _cmd_retrain(args: argparse.Namespace) -> None:
    import torch

    from ddpnas.retrain.imagenet import ImageNetSource, protocol
    from ddpnas.retrain.loop import retrain
    from ddpnas.runtime import resolve_device

    block, device_name, threads = _settings(args)
    device = resolve_device(device_name)
    torch.set_num_threads(threads)
    root = _root(args, block)
    stage, default = (block["transfer"], "darts_imagenet") if args.genotype else (
        block["retrain"], "ddpnas_v1")  # fmt: skip
    chosen = stage.get("protocol", {"name": default})
    cfg = protocol(chosen["name"], chosen.get("overrides", {}), args.seed)
    source = ImageNetSource(
        root,
        block["resolution"],
        device=device,
        workers=block["workers"],
        gpu_decode=block["gpu_decode"],
        augment=cfg,
        channels_last=device.type == "cuda",
    )
    _, _, build, extra = _network(args, block, source.num_classes)
    extra |= {"protocol": chosen["name"], "dataset": _dataset_info(root, block["resolution"])}
    result = retrain(
        build,
        source,
        None,
        cfg,
        device=device,
        out_dir=args.out_dir,
        extra=extra,
        stale_checkpoint=args.stale_checkpoint,
        latency=True,
    )
    print(
        f"{args.arch or args.genotype}: top-1 {result['test_acc']:.4f}, top-5 "
        f"{result['test_top5']:.4f} after {result['epochs']} epochs ({result['dataset']['name']})"
    )


def _retrained(result: dict[str, Any]) -> str:
    """What a retrain trained, for the notes: the mobile arch, or the genotype DARTS-style."""
    from ddpnas.spaces.darts.genotype import Genotype

    return result["arch"] if "arch" in result else str(Genotype.from_record(result["genotype"]))


def _cmd_table(args: argparse.Namespace) -> None:
    from ddpnas.report.imagenet_table import LATENCY_NOTE, imagenet_display, imagenet_rows
    from ddpnas.report.tables import RETRAIN_KEYS, load_runs, write_table

    searches, retrains = load_runs(args.searches), load_runs(args.retrains, RETRAIN_KEYS)
    if len(searches) != len(retrains):
        raise DDPNASError("--searches and --retrains must pair up (same length, same order)")
    pairs = list(zip(searches, retrains, strict=True))
    notes = [
        f"**{s['experiment']}** seed {s['seed']} ({r['kind']}, protocol {r['protocol']}, "
        f"{r['epochs']} epochs): `{_retrained(r)}`; "
        f"{r['environment']['hardware']}, torch {r['environment']['torch']}."
        for s, r in pairs
    ] + [LATENCY_NOTE]
    if any(r["dataset"]["stand_in"] for r in retrains):
        notes.insert(
            0,
            "Rows marked stand-in ran on an ImageNet-format folder of upscaled CIFAR-10 images "
            "(10 classes, a few hundred images): they test the pipeline, not ImageNet accuracy.",
        )
    df = imagenet_rows(pairs)
    write_table(df, imagenet_display(df), args.out, "ImageNet: top-1 / top-5", notes=notes)


def _parser(
    cmds: argparse._SubParsersAction, name: str, about: str, example: str
) -> argparse.ArgumentParser:
    """One ``imagenet`` subcommand with its help and an example in its epilog."""
    return cmds.add_parser(
        name,
        help=about,
        epilog=f"example:\n  ddpnas imagenet {name} {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _standin_parser(cmds: argparse._SubParsersAction) -> None:
    standin = _parser(
        cmds,
        "standin",
        "build an ImageNet-format stand-in from CIFAR-10",
        "--cifar-zip ../shared/data/cifar10-jpeg.zip --out standin/",
    )
    standin.add_argument("--cifar-zip", required=True, help="cifar10-jpeg.zip")
    standin.add_argument(
        "--out", required=True, help="output folder (train/, val/); new or empty, see --force"
    )
    standin.add_argument(
        "--force",
        action="store_true",
        help="replace a stand-in an earlier build wrote at --out (nothing else is ever replaced)",
    )
    standin.add_argument(
        "--train-per-class", type=int, default=30, help="training images per class (default 30)"
    )
    standin.add_argument(
        "--val-per-class", type=int, default=10, help="validation images per class (default 10)"
    )
    standin.add_argument("--size", type=int, default=64, help="image side after upscaling")
    standin.set_defaults(func=_cmd_standin)
    declare_outputs(standin, lambda args: [Output("--out", args.out, is_dir=True)])


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``ddpnas imagenet <command>``."""
    imagenet = sub.add_parser("imagenet", help="ImageNet stage (or its CIFAR-10 stand-in)")
    cmds = imagenet.add_subparsers(dest="imagenet_command", required=True)

    _standin_parser(cmds)

    def common(parser: argparse.ArgumentParser) -> None:
        given = parser.add_mutually_exclusive_group(required=True)
        given.add_argument("--config", help="YAML config (its imagenet block, device, threads)")
        given.add_argument("--block", help="the config's imagenet block as JSON")
        parser.add_argument("--root", help="ImageNet root (default: imagenet.root, then env)")
        parser.add_argument("--seed", type=int, default=0, help="the one seed of the run")
        add_runtime(parser)

    search = _parser(
        cmds,
        "search",
        "search the mobile space on ImageNet's search split",
        "--config config/paper.yaml --root /data/imagenet --seed 0 --out search.json",
    )
    common(search)
    search.add_argument("--out", required=True, help="search record (JSON)")
    search.add_argument("--checkpoint", help="checkpoint file; resumed from when it exists")
    add_stale_checkpoint(search)
    search.set_defaults(func=_cmd_search)
    declare_outputs(
        search,
        lambda args: [Output("--out", args.out), Output("--checkpoint", args.checkpoint)],
    )

    retrain = _parser(
        cmds,
        "retrain",
        "retrain a mobile arch or a DARTS cell on ImageNet",
        "--config config/paper.yaml --arch search.json --out-dir retrain/",
    )
    common(retrain)
    what = retrain.add_mutually_exclusive_group(required=True)
    what.add_argument("--arch", help="search record, {'arch': ...} JSON, or canonical string file")
    what.add_argument(
        "--genotype",
        help="DARTS genotype file, JSON or Genotype(...) text (the transfer setting)",
    )
    retrain.add_argument("--out-dir", required=True, help="metrics.csv, result.json, checkpoint")
    add_stale_checkpoint(retrain)
    retrain.set_defaults(func=_cmd_retrain)
    declare_outputs(retrain, out_dir_output)

    table = _parser(
        cmds,
        "table",
        "results/tables/imagenet.{csv,md,tex,html}",
        "--searches search.json --retrains retrain/result.json --out tables/imagenet",
    )
    table.add_argument("--searches", nargs="+", required=True, help="search records (JSON)")
    table.add_argument("--retrains", nargs="+", required=True, help="retrain result.json files")
    table.add_argument("--out", required=True, help="output stem")
    table.set_defaults(func=_cmd_table)
    declare_outputs(table, lambda args: table_outputs(args.out))
