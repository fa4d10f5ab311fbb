"""``ddpnas search`` and ``ddpnas genotype``: one search experiment, and the DARTS genotype of its
record."""

from __future__ import annotations

import argparse
import json

from ddpnas.cli.args import (
    add_runtime,
    add_stale_checkpoint,
    check_seed,
    declare_outputs,
    json_object,
)
from ddpnas.errors import DDPNASError
from ddpnas.io.locks import Output

EXAMPLES = """examples:
  ddpnas search --config config/config.yaml --experiment nb201-ddpnas-ws --seed 0 \\
      --out results/search/nb201-ddpnas-ws/seed0.json --checkpoint ckpt.pt
  ddpnas search --config config/config.yaml --experiment nb201-rs-tabular --seeds 0-199 \\
      --out 'results/search/{exp}/seed{seed}.json'
"""


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
        check_seed(last, f"--seeds {text!r}: each seed")
        seeds.extend(range(first, last + 1))
    if len(set(seeds)) != len(seeds):
        raise DDPNASError(f"--seeds {text!r} repeats a seed")
    return seeds


def _settings(args: argparse.Namespace) -> tuple[dict, dict, str | None, int | None]:
    """(experiment block, data block, device, threads) from --spec/--data or --config."""
    from ddpnas.config.load import load_config

    if args.spec:
        spec = json_object(args.spec, "--spec")
        return spec, json_object(args.data, "--data"), args.device, args.threads
    config = load_config(args.config)
    if args.experiment not in config["searches"]:
        known = ", ".join(config["searches"])
        raise DDPNASError(f"experiment {args.experiment!r} is not in {args.config}; known: {known}")
    device = args.device or config["device"]
    return (
        config["searches"][args.experiment],
        config["data"],
        device,
        args.threads or config["threads"],
    )


def _run_seeds(args: argparse.Namespace, spec: dict, data: dict, threads: int | None) -> None:
    from ddpnas.engine.experiment import run_experiment_seeds

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


def _search_outputs(args: argparse.Namespace) -> list[Output]:
    """The record (every seed's, with --seeds), checkpoint and supernet."""
    if args.seeds is not None:
        from ddpnas.engine.experiment import record_paths

        paths = record_paths(args.out, args.experiment, parse_seeds(args.seeds))
        return [Output("--out", path) for path in paths]
    return [
        Output("--out", args.out),
        Output("--checkpoint", args.checkpoint),
        Output("--supernet-out", args.supernet_out),
    ]


def _cmd_search(args: argparse.Namespace) -> None:
    from ddpnas.data.locations import resolve_cache_dir
    from ddpnas.engine.experiment import run_experiment
    from ddpnas.io.files import ensure_writable

    spec, data, device, threads = _settings(args)
    if args.seeds is not None:
        _run_seeds(args, spec, data, threads)
        return
    if isinstance(spec, dict) and spec.get("mode") == "weight_sharing":
        ensure_writable(resolve_cache_dir(data.get("cache")), "data.cache", is_dir=True)
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
    from ddpnas.io.files import atomic_write
    from ddpnas.report.tables import load_runs
    from ddpnas.spaces.darts.genotype import Genotype

    (record,) = load_runs([args.record])
    if "genotype" not in record:
        raise DDPNASError(
            f"{args.record} is a {record['space']} search; only DARTS-space searches have one"
        )
    text = json.dumps(Genotype.from_record(record["genotype"]).to_json()) + "\n"
    atomic_write(args.out, lambda tmp: tmp.write_text(text))


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``ddpnas search`` and ``ddpnas genotype``."""
    search = sub.add_parser(
        "search",
        help="run one search experiment for one seed (or many)",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = search.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="YAML config; with --experiment")
    source.add_argument("--spec", help="the experiment block as JSON (what the pipeline passes)")
    search.add_argument("--experiment", required=True, help="experiment name (searches.<name>)")
    search.add_argument("--data", help="the data block as JSON (with --spec)")
    which = search.add_mutually_exclusive_group(required=True)
    which.add_argument("--seed", type=int, help="the one seed that controls everything")
    which.add_argument(
        "--seeds",
        help="tabular experiments: many seeds in this one process, e.g. 0-199 or 0,1,2; "
        "--out is then a pattern with {seed} (and optionally {exp})",
    )
    search.add_argument("--out", required=True, help="search record (JSON), or a pattern")
    search.add_argument("--checkpoint", help="checkpoint file; resumed from when it exists")
    add_stale_checkpoint(search)
    add_runtime(search)
    search.add_argument(
        "--supernet-out", help="weight sharing: write the final supernet weights here (.pt)"
    )
    search.set_defaults(func=_cmd_search)
    declare_outputs(search, _search_outputs)

    genotype = sub.add_parser(
        "genotype",
        help="the DARTS genotype of a DARTS-space search record",
        epilog="example:\n  ddpnas genotype --record results/search/darts-ddpnas/seed0.json "
        "--out genotype.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    genotype.add_argument("--record", required=True, help="search record (JSON)")
    genotype.add_argument("--out", required=True, help="genotype file (JSON)")
    genotype.set_defaults(func=_cmd_genotype)
    declare_outputs(genotype, lambda args: [Output("--out", args.out)])
