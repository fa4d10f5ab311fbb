"""``ddpnas nb201 ...``: NAS-Bench-201 utilities (export the compact table, look a cell up)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ddpnas.cli.args import declare_outputs
from ddpnas.io.locks import Output

DEFAULT_CONFIG = "config/config.yaml"


def _cmd_export_table(args: argparse.Namespace) -> None:
    from ddpnas.nasbench.files import export_table, load_bench

    bench = load_bench(args.source, backend=args.backend)
    export_table(bench, args.out, indices=args.indices)
    print(f"wrote {args.out}")


def _cmd_lookup(args: argparse.Namespace) -> None:
    from ddpnas.config.load import load_config
    from ddpnas.nasbench.files import load_bench

    key: int | str = int(args.arch) if args.arch.isdigit() else args.arch
    if isinstance(key, str):  # a bad string fails here, naming its bad token, before any load
        from ddpnas.spaces.nb201 import NB201Space

        NB201Space().str_to_arch(key)
    data = load_config(args.config)["data"] if Path(args.config).exists() else {}
    bench = load_bench(args.source, data=data)
    print(
        json.dumps(
            {
                "index": bench.index_of(bench.arch_str(key) if isinstance(key, int) else key),
                **bench.query(key, hp=args.hp),
            },
            indent=2,
        )
    )


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``ddpnas nb201 <command>``."""
    nb201 = sub.add_parser("nb201", help="NAS-Bench-201 utilities").add_subparsers(
        dest="nb201_command", required=True
    )
    export = nb201.add_parser(
        "export-table",
        help="write the compact table from an official file",
        epilog="example:\n  ddpnas nb201 export-table --source NATS-tss-v1_0-3ffb9-simple "
        "--out nb201.csv.gz",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("--source", required=True, help="NATS-tss dir or NAS-Bench-201 .pth")
    export.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "nats", "nas201", "table"],
        help="which reader opens --source (auto: by its form)",
    )
    export.add_argument("--out", required=True, help="output .csv or .csv.gz")
    export.add_argument("--indices", type=int, nargs="+", help="only these indices")
    export.set_defaults(func=_cmd_export_table)
    declare_outputs(export, lambda args: [Output("--out", args.out)])
    lookup = nb201.add_parser(
        "lookup",
        help="print the metrics of one architecture",
        epilog="examples:\n  ddpnas nb201 lookup 0\n  ddpnas nb201 lookup "
        "'|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
        "nor_conv_3x3~2|'",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lookup.add_argument("arch", help="official string or index")
    lookup.add_argument("--source", help="benchmark file (default: as the pipeline finds it)")
    lookup.add_argument("--config", default=DEFAULT_CONFIG, help="config whose data block is used")
    lookup.add_argument(
        "--hp", default="200", choices=["200", "12"], help="training epochs of the figures"
    )
    lookup.set_defaults(func=_cmd_lookup)
