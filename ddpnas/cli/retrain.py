"""``ddpnas retrain`` (a DARTS genotype on CIFAR-10) and ``ddpnas launch`` (torchrun)."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from ddpnas.cli.args import add_runtime, add_stale_checkpoint, declare_outputs, json_object
from ddpnas.errors import DDPNASError
from ddpnas.io.locks import Output

if TYPE_CHECKING:
    from ddpnas.spaces.darts.genotype import Genotype


def _cmd_retrain(args: argparse.Namespace) -> None:
    import torch

    from ddpnas.config.load import validate
    from ddpnas.config.retrain import Retrain
    from ddpnas.data.locations import resolve_cache_dir
    from ddpnas.io.files import ensure_writable
    from ddpnas.spaces.darts.genotype import Genotype

    genotype = Genotype.read(args.genotype)
    block = validate(json_object(args.retrain, "--retrain"), Retrain, where="retrain")
    data = json_object(args.data, "--data")
    ensure_writable(resolve_cache_dir(data.get("cache")), "data.cache", is_dir=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    _retrain(args, genotype, block, data)


def out_dir_output(args: argparse.Namespace) -> list[Output]:
    """``--out-dir``; torchrun's other ranks share rank 0's lock (only it writes)."""
    rank0 = int(os.environ.get("RANK", "0")) == 0
    return [Output("--out-dir", args.out_dir, is_dir=True, lock=rank0)]


def _retrain(
    args: argparse.Namespace, genotype: Genotype, block: dict[str, Any], data: dict[str, Any]
) -> None:
    from ddpnas.data.cifar10 import load_cifar10
    from ddpnas.data.locations import resolve_cache_dir, resolve_data_root
    from ddpnas.retrain.loop import retrain
    from ddpnas.retrain.setup import RetrainConfig
    from ddpnas.runtime import resolve_device
    from ddpnas.spaces.darts.space import DartsSpace

    train_set, test_set = load_cifar10(
        resolve_data_root(data.get("root")),
        cache_dir=resolve_cache_dir(data.get("cache")),
        download=data.get("download", True),
    )
    space = DartsSpace()
    result = retrain(
        lambda: space.eval_network(genotype, num_classes=10, **block["network"]),
        train_set,
        test_set,
        RetrainConfig(**block["protocol"], seed=args.seed),
        device=resolve_device(args.device),
        out_dir=args.out_dir,
        stale_checkpoint=args.stale_checkpoint,
    )
    print(f"{args.genotype}: test top-1 {result['test_acc']:.4f} after {result['epochs']} epochs")


def _cmd_launch(args: argparse.Namespace) -> None:
    from ddpnas.retrain.launch import launch

    command = args.command_args[1:] if args.command_args[:1] == ["--"] else args.command_args
    if not command:
        raise DDPNASError("ddpnas launch needs the command to run after --, e.g. -- retrain ...")
    launch(args.gpus_per_node, command)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``ddpnas retrain`` and ``ddpnas launch``."""
    retrain = sub.add_parser(
        "retrain",
        help="retrain a DARTS genotype from scratch on CIFAR-10",
        epilog="example:\n  ddpnas retrain --genotype genotype.json --data "
        '\'{"root": "../shared/data"}\' --retrain \'{"protocol": {"epochs": 1}}\' --out-dir out/',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    retrain.add_argument(
        "--genotype",
        required=True,
        help="genotype file: JSON from 'ddpnas genotype', or DARTS's Genotype(...) text",
    )
    retrain.add_argument("--retrain", help="the config's retrain block as JSON (network, protocol)")
    retrain.add_argument("--data", help="the config's data block as JSON")
    retrain.add_argument("--seed", type=int, default=0, help="the one seed of the run (default 0)")
    retrain.add_argument("--out-dir", required=True, help="metrics.csv, result.json, checkpoint")
    add_stale_checkpoint(retrain)
    add_runtime(retrain, device_default="auto")
    retrain.set_defaults(func=_cmd_retrain)
    declare_outputs(retrain, out_dir_output)

    launcher = sub.add_parser(
        "launch",
        help="run a ddpnas command once per GPU: torchrun, across SLURM nodes if any",
        epilog="example:\n  ddpnas launch --gpus-per-node 4 -- retrain --genotype g.json "
        "--out-dir out/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    launcher.add_argument(
        "--gpus-per-node", type=int, required=True, help="processes (GPUs) per node"
    )
    launcher.add_argument(
        "command_args", nargs=argparse.REMAINDER, help="-- then the ddpnas command and its args"
    )
    launcher.set_defaults(func=_cmd_launch)
