"""``ddpnas`` command line: the only entry point the Snakemake rules call."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ddpnas.errors import DDPNASError
from ddpnas.utils import json_object as _json_arg

if TYPE_CHECKING:
    from ddpnas.spaces.darts_genotype import Genotype


DEFAULT_CONFIG = "config/config.yaml"


def _check_numbers(args: argparse.Namespace) -> None:
    """Seeds and thread counts argparse accepts as ints but nothing downstream can use."""
    if getattr(args, "seed", None) is not None and args.seed < 0:
        raise DDPNASError(f"--seed must be a non-negative integer, got {args.seed}")
    if getattr(args, "threads", None) is not None and args.threads < 1:
        raise DDPNASError(
            f"--threads must be at least 1, got {args.threads}; leave it out to use the config's"
        )


def add_stale_checkpoint(parser: argparse.ArgumentParser) -> None:
    """``--stale-checkpoint``: what a resumable command does with a checkpoint of another run."""
    from ddpnas.utils import STALE_CHECKPOINT

    parser.add_argument(
        "--stale-checkpoint",
        choices=STALE_CHECKPOINT,
        default="error",
        help="a checkpoint of another config, seed, model, code version or runtime: refuse it "
        "(error, default) or remove it and start over (restart; what the pipeline passes, "
        "since it reruns a job when its inputs change); a killed run resumes either way",
    )


def parse_seeds(text: str) -> list[int]:
    """Seeds as ``0-199``, ``0,3,7`` or a mix (``0-9,20``), in the order given, no repeats."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            first, last = int(lo), int(hi if sep else lo)
        except ValueError:
            raise DDPNASError(f"--seeds {text!r}: expected e.g. 0-199 or 0,1,2") from None
        if first < 0 or last < first:
            raise DDPNASError(f"--seeds {text!r}: {part.strip()!r} is not an ascending range >= 0")
        seeds.extend(range(first, last + 1))
    if len(set(seeds)) != len(seeds):
        raise DDPNASError(f"--seeds {text!r} repeats a seed")
    return seeds


def _cmd_search(args: argparse.Namespace) -> None:
    from ddpnas.config import load_config
    from ddpnas.experiment import run_experiment, run_experiment_seeds
    from ddpnas.locations import resolve_cache_dir
    from ddpnas.utils import ensure_writable, exclusive

    if args.spec:
        spec = _json_arg(args.spec, "--spec")
        data, device, threads = _json_arg(args.data, "--data"), args.device, args.threads
    else:
        config = load_config(args.config)
        if args.experiment not in config["searches"]:
            known = ", ".join(config["searches"])
            raise DDPNASError(
                f"experiment {args.experiment!r} is not in {args.config}; known: {known}"
            )
        spec = config["searches"][args.experiment]
        data = config["data"]
        device = args.device or config["device"]
        threads = args.threads or config["threads"]
    if args.seeds is not None:
        if args.checkpoint:
            raise DDPNASError("--checkpoint is for one seed; --seeds runs take milliseconds")
        seeds = parse_seeds(args.seeds)
        records = run_experiment_seeds(
            args.experiment, spec, seeds=seeds, out=args.out, data=data, threads=threads
        )
        total = sum(r["search_seconds"] for r in records)
        print(
            f"{args.experiment}: {len(records)} seeds ({seeds[0]}..{seeds[-1]}) in {total:.2f} s "
            f"of search on {records[0]['environment']['hardware']}"
        )
        return
    ensure_writable(args.out, "--out")
    ensure_writable(args.checkpoint, "--checkpoint")
    ensure_writable(args.supernet_out, "--supernet-out")
    if isinstance(spec, dict) and spec.get("mode") == "weight_sharing":
        ensure_writable(resolve_cache_dir(data.get("cache")), "data.cache", is_dir=True)
    with exclusive([args.out, args.checkpoint, args.supernet_out], "--out/--checkpoint"):
        record = run_experiment(
            args.experiment,
            spec,
            seed=args.seed,
            out=args.out,
            checkpoint=args.checkpoint,
            stale_checkpoint=args.stale_checkpoint,
            data=data,
            device=device or "auto",
            threads=threads,
            supernet_out=args.supernet_out,
        )
    print(
        f"{args.experiment} seed {args.seed}: {record['arch']} after {record['epochs']} epochs "
        f"({record['search_seconds']:.1f} s on {record['environment']['hardware']})"
    )


def _cmd_genotype(args: argparse.Namespace) -> None:
    from ddpnas.report.tables import load_runs
    from ddpnas.spaces.darts_genotype import Genotype
    from ddpnas.utils import atomic_write, ensure_writable

    ensure_writable(args.out, "--out")
    (record,) = load_runs([args.record])
    if "genotype" not in record:
        raise DDPNASError(
            f"{args.record} is a {record['space']} search; only DARTS-space searches have one"
        )
    text = json.dumps(Genotype.from_record(record["genotype"]).to_json()) + "\n"
    atomic_write(args.out, lambda tmp: tmp.write_text(text))


def _cmd_retrain(args: argparse.Namespace) -> None:
    import torch

    from ddpnas.config import validate
    from ddpnas.config_models import Retrain
    from ddpnas.locations import resolve_cache_dir
    from ddpnas.spaces.darts_genotype import Genotype
    from ddpnas.utils import ensure_writable, exclusive

    genotype = Genotype.read(args.genotype)
    block = validate(_json_arg(args.retrain, "--retrain"), Retrain, where="retrain")
    data = _json_arg(args.data, "--data")
    ensure_writable(args.out_dir, "--out-dir", is_dir=True)
    ensure_writable(resolve_cache_dir(data.get("cache")), "data.cache", is_dir=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    # torchrun's other ranks share rank 0's lock: only it writes.
    lock = [args.out_dir] if int(os.environ.get("RANK", "0")) == 0 else []
    with exclusive(lock, "--out-dir"):
        _retrain(args, genotype, block, data)


def _retrain(
    args: argparse.Namespace, genotype: Genotype, block: dict[str, Any], data: dict[str, Any]
) -> None:
    from ddpnas.data import load_cifar10
    from ddpnas.locations import resolve_cache_dir, resolve_data_root
    from ddpnas.spaces.darts import DartsSpace
    from ddpnas.train import retrain
    from ddpnas.train_setup import RetrainConfig
    from ddpnas.utils import resolve_device

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


def _cmd_export_table(args: argparse.Namespace) -> None:
    from ddpnas.nasbench_io import export_table, load_bench

    bench = load_bench(args.source, backend=args.backend)
    export_table(bench, args.out, indices=args.indices)
    print(f"wrote {args.out}")


def _cmd_lookup(args: argparse.Namespace) -> None:
    from ddpnas.config import load_config
    from ddpnas.nasbench_io import load_bench

    data = load_config(args.config)["data"] if Path(args.config).exists() else {}
    bench = load_bench(args.source, data=data)
    key: int | str = int(args.arch) if args.arch.isdigit() else args.arch
    print(
        json.dumps(
            {
                "index": bench.index_of(bench.arch_str(key) if isinstance(key, int) else key),
                **bench.query(key, hp=args.hp),
            },
            indent=2,
        )
    )


def _cmd_launch(args: argparse.Namespace) -> None:
    from ddpnas.launch import launch

    command = args.command_args[1:] if args.command_args[:1] == ["--"] else args.command_args
    if not command:
        raise DDPNASError("ddpnas launch needs the command to run after --, e.g. -- retrain ...")
    launch(args.gpus_per_node, command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ddpnas", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    search = sub.add_parser("search", help="run one search experiment for one seed (or many)")
    source = search.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="YAML config; with --experiment")
    source.add_argument("--spec", help="the experiment block as JSON (what the pipeline passes)")
    search.add_argument("--experiment", required=True, help="experiment name (searches.<name>)")
    search.add_argument("--data", help="the data block as JSON (with --spec)")
    which = search.add_mutually_exclusive_group(required=True)
    which.add_argument("--seed", type=int)
    which.add_argument(
        "--seeds",
        help="tabular experiments: many seeds in this one process, e.g. 0-199 or 0,1,2; "
        "--out is then a pattern with {seed} (and optionally {exp})",
    )
    search.add_argument("--out", required=True, help="search record (JSON), or a pattern")
    search.add_argument("--checkpoint", help="checkpoint file; resumed from when it exists")
    add_stale_checkpoint(search)
    search.add_argument("--device", choices=["auto", "cpu", "cuda"])
    search.add_argument("--threads", type=int)
    search.add_argument(
        "--supernet-out", help="weight sharing: write the final supernet weights here (.pt)"
    )
    search.set_defaults(func=_cmd_search)

    genotype = sub.add_parser("genotype", help="the DARTS genotype of a DARTS-space search record")
    genotype.add_argument("--record", required=True, help="search record (JSON)")
    genotype.add_argument("--out", required=True, help="genotype file (JSON)")
    genotype.set_defaults(func=_cmd_genotype)

    retrain = sub.add_parser("retrain", help="retrain a DARTS genotype from scratch on CIFAR-10")
    retrain.add_argument(
        "--genotype",
        required=True,
        help="genotype file: JSON from 'ddpnas genotype', or DARTS's Genotype(...) text",
    )
    retrain.add_argument("--retrain", help="the config's retrain block as JSON (network, protocol)")
    retrain.add_argument("--data", help="the config's data block as JSON")
    retrain.add_argument("--seed", type=int, default=0)
    retrain.add_argument("--out-dir", required=True, help="metrics.csv, result.json, checkpoint")
    add_stale_checkpoint(retrain)
    retrain.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    retrain.add_argument("--threads", type=int)
    retrain.set_defaults(func=_cmd_retrain)

    launcher = sub.add_parser(
        "launch", help="run a ddpnas command once per GPU: torchrun, across SLURM nodes if any"
    )
    launcher.add_argument("--gpus-per-node", type=int, required=True)
    launcher.add_argument("command_args", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    launcher.set_defaults(func=_cmd_launch)

    nb201 = sub.add_parser("nb201", help="NAS-Bench-201 utilities").add_subparsers(
        dest="nb201_command", required=True
    )
    export = nb201.add_parser("export-table", help="write the compact table from an official file")
    export.add_argument("--source", required=True, help="NATS-tss dir or NAS-Bench-201 .pth")
    export.add_argument("--backend", default="auto", choices=["auto", "nats", "nas201", "table"])
    export.add_argument("--out", required=True, help="output .csv or .csv.gz")
    export.add_argument("--indices", type=int, nargs="+", help="only these indices")
    export.set_defaults(func=_cmd_export_table)
    lookup = nb201.add_parser("lookup", help="print the metrics of one architecture")
    lookup.add_argument("arch", help="official string or index")
    lookup.add_argument("--source", help="benchmark file (default: as the pipeline finds it)")
    lookup.add_argument("--config", default=DEFAULT_CONFIG, help="config whose data block is used")
    lookup.add_argument("--hp", default="200", choices=["200", "12"])
    lookup.set_defaults(func=_cmd_lookup)

    report = sub.add_parser("report", help="tables and figures").add_subparsers(
        dest="report_command", required=True
    )
    from ddpnas.report.cli import add_parsers as add_report_parsers

    add_report_parsers(report)

    from ddpnas.imagenet_cli import add_parsers as add_imagenet_parsers

    add_imagenet_parsers(sub)

    from ddpnas.generate_cli import add_parser as add_generate

    add_generate(sub)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; user errors print one clear line and exit 2 without a traceback.

    Run as a program (``argv`` None: the console script, ``python -m``, torchrun), the process
    ends right after the command: every output is already written atomically, and skipping the
    interpreter's teardown of torch (0.5-1 s of CPU) keeps a job's wall time what its record says
    (the cost table checks it against Snakemake's benchmark within 10 %).
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        _check_numbers(args)
        args.func(args)
        code = 0
    except DDPNASError as exc:
        print(f"ddpnas: error: {exc}", file=sys.stderr)
        code = 2
    if argv is None:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
